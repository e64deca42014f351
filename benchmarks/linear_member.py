r"""Would ``--model auto`` gain from a fourth member, a linear model on the frozen embedding?

The encoder probe (``benchmarks.encoder_probe``) finds that a linear model on a frozen embedding,
blended with the Morgan forest, can beat the forest where the fine-tuned GNN does not (the built-in
assay with ``descfp-zinc-full``: 0.446 vs 0.473 at 813 labels). ``molft finetune --model auto`` had
no such member when this was written: it blended the fine-tuned GNN, the forest and the boosted model. This benchmark
re-chooses the blend of finished ``auto`` runs with that member added, without training anything
again but the linear model (``auto`` has had the member since; for a run made with it, both choices
are the same):

1. for each fine-tuned model directory given (``finetune.json``, ``graphs/``, the members' saved
   validation and test predictions in ``predictions_{valid,test}.csv``), the assay is reloaded from
   its featurized graphs and split as ``molft finetune`` split it;
2. a ``linear`` member is fitted exactly as instant mode fits one
   (:func:`molft.finetuning.frozen.fit_frozen_member`: the encoder the run was fine-tuned from, frozen,
   its mean-pooled embedding standardized on the training split, ridge or logistic regression with
   the strength chosen on validation; no bootstrap) and scored on validation and test;
3. the blend is chosen twice by molft's rule (:func:`molft.finetuning.choice.choose_model`, one-SE
   against the forest on the 0.25 grid): over the run's own members, and over them plus ``linear``;
   the first reproduces the run's recorded choice (checked), the second is what ``auto`` would do
   with the new member.

Usage, after ``python -m benchmarks.builtin_assay --methods auto --pretrained NAME`` has left its
model directories under ``runs/builtin_assay/auto-NAME/seed-*``::

    python -m benchmarks.linear_member runs/builtin_assay/auto/seed-* runs/builtin_assay/auto-descfp-zinc-full/seed-*

or on the label-efficiency grid's saved ``auto`` cells, whose GNN, forest and boosted scores
``benchmarks.label_efficiency`` keeps (the linear member is fitted on each cell's nested subset)::

    python -m benchmarks.linear_member --cells benchmarks/results/label_efficiency_scores/*-auto-gin-attrmask-descfp-zinc-*.npz --encoder attrmask-descfp

Writes ``benchmarks/results/linear_member.{json,md}`` (``--results-dir``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.harness import RESULTS, command_line, group_runs, hardware, hardware_text, input_errors_exit, \
    markdown_table, mean_std_text, utc_now, write_results
from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, PRIMARY_METRIC, evaluate, higher_is_better, mean_std
from molft.finetuning.ensemble import EMBEDDING_MEMBER as LINEAR
from molft.finetuning.ensemble import describe_weights
from molft.runtime import read_json, run_metadata

NAME = "linear_member"


def saved_members(run: Path, targets: list[str], part: str, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The run's saved member predictions on ``part`` (kind -> [n, tasks]), in the split's order."""
    frame = pd.read_csv(run / f"predictions_{part}.csv")
    if not np.array_equal(frame["row"].to_numpy(), rows):
        raise InputError(f"{run}: predictions_{part}.csv does not hold the split's rows in order")
    suffix = f"{targets[0]}_"
    kinds = [c[len(suffix):] for c in frame.columns
             if c.startswith(suffix) and c[len(suffix):] not in ("pred", "lower", "upper", "std")]
    if not kinds:
        raise InputError(f"{run}: predictions_{part}.csv has no member columns (a model of one member)")
    return {kind: frame[[f"{t}_{kind}" for t in targets]].to_numpy(dtype=np.float64) for kind in kinds}


def rechoose(run: Path, readout: str = "last") -> dict[str, Any]:
    """One record: the run's choice recomputed, and the choice with a linear member added."""
    from molft.data.assay import load_assay, split_assay

    config = read_json(run / "finetune.json")
    if config.get("model", {}).get("choice") != "auto" or config.get("pretrained") in (None, "none"):
        raise InputError(f"{run}: not an --model auto run from a pretrained encoder")
    targets, task_type = list(config["targets"]), config["task_type"]
    assay = load_assay(run / "graphs", targets, task_type=task_type, progress=False)
    split = split_assay(assay, config["split"], config["split_seed"])
    members = {part: saved_members(run, targets, part, assay.table.rows[split[part]]) for part in ("valid", "test")}
    recorded = {part: dict(scores) for part, scores in members.items()}  # a run made since auto has the member holds one
    strengths, readout = _add_linear_member(members, assay.dataset, split, task_type, Path(config["pretrained"]),
                                            readout)
    record: dict[str, Any] = {"run": str(run), "encoder": Path(config["pretrained"]).name,
                              "dataset": ", ".join(targets), "n_labels": int(len(split["train"])),
                              "metric": PRIMARY_METRIC[task_type], "targets": targets, "strengths": strengths,
                              "readout": readout, "recorded_linear": LINEAR in recorded["valid"],
                              **_choices(members, recorded, assay.dataset.y.numpy(), split, task_type, targets)}
    recorded = config["model"]["weights"]
    if record["recorded members"]["weights"] != recorded:
        raise InputError(f"{run}: re-choosing its own members gave {record['recorded members']['weights']}, "
                         f"not the recorded {recorded}")
    return record


#: ``--readout``: how the linear member reads the frozen encoder. ``last``: as ``molft finetune``
#: does (the last layer, mean-pooled); ``valid``: the readout of :data:`molft.embedding.READOUT_CHOICES`
#: chosen on validation with the strength (standardized embedding clipped to ±:data:`CLIP`);
#: ``cv``: the same readouts, each with its validation-chosen strength, chosen by 5-fold
#: cross-validation on the training labels, so the validation split the blend is chosen on is not
#: also spent on the readout
READOUT_RULES = ("last", "valid", "cv")
CLIP = 5.0


def cross_validated_score(x: np.ndarray, y: np.ndarray, strength: float, task_type: str, *, folds: int = 5) -> float:
    """The primary metric of instant mode's linear model (strength fixed) over ``folds``-fold
    out-of-fold predictions on ``x`` [n, dim], ``y`` [n] (stratified for classification, seed 0)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import KFold, StratifiedKFold

    from molft.evaluate import primary_score

    splitter = (StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y.astype(int))
                if task_type == CLASSIFICATION else KFold(folds, shuffle=True, random_state=0).split(x))
    predicted = np.zeros(len(y))
    for fit_rows, held_out in splitter:
        model = (LogisticRegression(C=1.0 / strength, class_weight="balanced", max_iter=2000)
                 if task_type == CLASSIFICATION else Ridge(alpha=strength * len(fit_rows) / 100.0))
        model.fit(x[fit_rows], y[fit_rows])
        predicted[held_out] = model.decision_function(x[held_out]) if task_type == CLASSIFICATION \
            else model.predict(x[held_out])
    return primary_score(y[:, None], predicted[:, None], task_type)


def fit_linear(dataset: Any, split: dict[str, np.ndarray], task_type: str, encoder: Path, scaler: Any,
               readout: str = "last") -> tuple[Any, dict[str, Any]]:
    """Instant mode's linear member (no bootstrap) read as ``readout`` (:data:`READOUT_RULES`)."""
    from torch_geometric.loader import DataLoader

    from molft.embedding import READOUT_CHOICES
    from molft.evaluate import improves
    from molft.finetuning.frozen import fit_frozen_member
    from molft.training import predict_batches

    if readout == "last":
        return fit_frozen_member(dataset, split, task_type=task_type, seed=0, pretrained=encoder, scaler=scaler)
    if readout == "valid":
        return fit_frozen_member(dataset, split, task_type=task_type, seed=0, pretrained=encoder, scaler=scaler,
                                 readouts=READOUT_CHOICES, clip=CLIP)
    if readout != "cv":
        raise InputError(f"--readout {readout!r}: choose one of {', '.join(READOUT_RULES)}")
    if dataset.y.shape[1] != 1:
        raise InputError("--readout cv handles single-task cells only")
    y = dataset.y.numpy()[split["train"]]
    y = scaler.transform(y) if scaler is not None else y
    labelled = ~np.isnan(y[:, 0])
    best = None
    for candidate in READOUT_CHOICES:
        model, info = fit_frozen_member(dataset, split, task_type=task_type, seed=0, pretrained=encoder, scaler=scaler,
                                        readouts=(candidate,), clip=CLIP)
        embedded = predict_batches(model.embed, DataLoader(dataset.subset(split["train"]), batch_size=256), "cpu")
        x = np.clip((embedded - model.embedding_mean.numpy()) / model.embedding_std.numpy(), -CLIP, CLIP)
        score = cross_validated_score(x[labelled], y[labelled, 0], info["strengths"][0], task_type)
        if best is None or improves(score, best[0], PRIMARY_METRIC[task_type]):
            best = (score, model, {**info, "cv_score": score})
    return best[1], best[2]


def _add_linear_member(members: dict[str, dict[str, np.ndarray]], dataset: Any, split: dict[str, np.ndarray],
                       task_type: str, encoder: Path, readout: str = "last") -> tuple[list[float], str | None]:
    """Fit the linear member as ``molft finetune`` does (:func:`molft.finetuning.train._linear_member`:
    instant mode's model, no bootstrap), or read as ``readout``, and put its validation and test
    scores in ``members`` (in place of one recorded there); returns the chosen strengths and readout."""
    from torch_geometric.loader import DataLoader

    from molft.finetuning.member import predict_scores
    from molft.finetuning.recipe import TargetScaler

    y = dataset.y.numpy()
    scaler = TargetScaler.fit(y[split["train"]]) if task_type != CLASSIFICATION else None
    model, info = fit_linear(dataset, split, task_type, encoder, scaler, readout)
    for part in members:
        members[part][LINEAR] = predict_scores(model, DataLoader(dataset.subset(split[part]), batch_size=256),
                                               task_type, scaler, "cpu")
    return info["strengths"], info.get("readout")


def _choices(members: dict[str, dict[str, np.ndarray]], recorded: dict[str, dict[str, np.ndarray]], y: np.ndarray,
             split: dict[str, np.ndarray], task_type: str, targets: list[str]) -> dict[str, Any]:
    """molft's choice over the ``recorded`` members and over ``members`` (the recorded ones plus, or
    with a new, ``linear``), with test scores."""
    from molft.finetuning.choice import choose_model

    metric = PRIMARY_METRIC[task_type]
    out: dict[str, Any] = {}
    for name, candidates in (("recorded members", recorded), ("with linear", members)):
        scores = {part: dict(candidates[part]) for part in candidates}
        chosen = choose_model(scores, y, split, task_type=task_type, model="auto", coverage=0.9, targets=targets)
        out[name] = {"weights": chosen.config["weights"],
                     "test": float(evaluate(y[split["test"]], chosen.predictions["test"], task_type)[metric])}
    out["linear alone"] = {"test": float(evaluate(y[split["test"]], members["test"][LINEAR], task_type)[metric])}
    return out


def rechoose_cell(path: Path, encoder: str, *, data_dir: Path | None, cache: dict[str, Any],
                  readout: str = "last") -> dict[str, Any]:
    """One saved label-efficiency ``auto`` cell (its members' scores, ``.npz``) re-blended without and
    with a linear member on ``encoder``'s frozen embedding, fitted on the cell's nested subset (a cell
    that already holds one, from an earlier ``auto``, is re-blended with the new one in its place:
    what the current instant mode would have given)."""
    from benchmarks.label_efficiency import SCORES_FILE, read_scores
    from molft.data.registry import load_dataset
    from molft.data.splits import label_budgets
    from molft.pretrained import resolve_pretrained

    match = SCORES_FILE.fullmatch(path.name)
    if match is None:
        raise InputError(f"{path}: not a saved label-efficiency cell (<dataset>-<method>-<labels>-<seed>.npz)")
    if match["dataset"] not in cache:
        cache[match["dataset"]] = load_dataset(match["dataset"], data_dir)
    loaded = cache[match["dataset"]]
    budget, seed, task_type, y = int(match["labels"]), int(match["seed"]), loaded.task_type, loaded.y
    rows, members = read_scores(path)
    train = label_budgets(loaded.split["train"], y, [budget], seed=seed, task_type=task_type)[budget]
    split = {"train": train, **rows}
    recorded = {part: dict(scores) for part, scores in members.items()}
    strengths, readout = _add_linear_member(members, loaded.dataset, split, task_type, resolve_pretrained(encoder),
                                            readout)
    return {"run": path.name, "encoder": f"{match['method']} + linear:{Path(encoder).name}",
            "dataset": loaded.info.name, "n_labels": budget, "seed": seed, "metric": PRIMARY_METRIC[task_type],
            "strengths": strengths, "readout": readout, "recorded_linear": LINEAR in recorded["valid"],
            **_choices(members, recorded, y, split, task_type, list(loaded.task_names))}


def to_markdown(result: dict[str, Any]) -> str:
    lines = ["# A linear member on the frozen embedding inside `--model auto`", "", f"Command: `{result['command']}`", "",
             f"- Finished {result['finished_at']}. Hardware: {hardware_text(result['hardware'])}.",
             "- Each run: a finished `molft finetune --model auto` directory, or a saved `benchmarks.label_efficiency` "
             "`auto` cell (its members' validation and test scores; the linear member then reads `--encoder` and is "
             "fitted on the cell's nested label subset). The members' saved predictions are re-blended by molft's rule "
             "(one-SE against the forest, 0.25 grid) without and with a `linear` member (instant mode's model on the "
             "frozen encoder, read as `--readout` says: `last` as instant mode, `valid` or `cv` a chosen readout); the first choice "
             "reproduces the recorded one. A run that holds a linear member already (made by an `auto` that had one) "
             "is re-blended with the new one in its place. Test metric per run; mean ± sample std over runs (seeds).",
             ""]
    header = ["encoder", "dataset", "labels", "runs", "metric", "auto (recorded members)", "auto with linear",
              "linear alone", "runs better / worse", "chosen with linear", "linear's readout"]
    table = []
    for (encoder, dataset, n_labels), runs in group_runs(result["records"], ["encoder", "dataset", "n_labels"]):
        metric = runs[0]["metric"]
        sign = 1 if higher_is_better(metric) else -1
        diffs = [sign * (r["with linear"]["test"] - r["recorded members"]["test"]) for r in runs]
        table.append([encoder, dataset, f"{n_labels:,}", str(len(runs)), metric,
                      *(mean_std_text(*mean_std([r[k]["test"] for r in runs]))
                        for k in ("recorded members", "with linear", "linear alone")),
                      f"{sum(d > 0 for d in diffs)} / {sum(d < 0 for d in diffs)}",
                      "; ".join(describe_weights(r["with linear"]["weights"]) for r in runs),
                      "; ".join(str(r.get("readout") or "last") for r in runs)])
    return "\n".join([*lines, *markdown_table(header, table, right_from=1), ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="finished --model auto model directories")
    parser.add_argument("--cells", nargs="*", type=Path, default=[],
                        help="saved label-efficiency auto cells (label_efficiency_scores/*.npz)")
    parser.add_argument("--encoder", default="default",
                        help="the encoder of the cells' linear member: a shipped name or a directory")
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory of the cells' datasets")
    parser.add_argument("--readout", choices=READOUT_RULES, default="last",
                        help="how the linear member reads the frozen encoder: as molft does (last), the readout "
                             "chosen on validation (valid) or by cross-validation on the training labels (cv)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.runs and not args.cells:
        parser.error("give model directories, --cells, or both")
    with input_errors_exit():
        records, cache = [], {}
        work = [(run, lambda run=run: rechoose(run, args.readout)) for run in args.runs]
        work += [(cell, lambda cell=cell: rechoose_cell(cell, args.encoder, data_dir=args.data_dir, cache=cache,
                                                        readout=args.readout))
                 for cell in args.cells]
        for source, job in work:
            records.append(job())
            r = records[-1]
            print(f"{source}: {r['metric']} {r['recorded members']['test']:.3f} -> {r['with linear']['test']:.3f} "
                  f"({describe_weights(r['with linear']['weights'])}); linear alone {r['linear alone']['test']:.3f}",
                  flush=True)
        result = {"benchmark": NAME, "command": command_line(NAME, argv), "finished_at": utc_now(), "readout": args.readout,
                  "hardware": hardware(), "run": run_metadata(), "records": records}
        write_results(NAME, result, to_markdown(result), args.results_dir)


if __name__ == "__main__":
    main()
