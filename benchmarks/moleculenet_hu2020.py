"""Full-data fine-tuning on Hu et al. 2020's eight classification sets, beside their published numbers.

For BBBP, Tox21, ToxCast, SIDER, ClinTox, MUV, HIV and BACE (molft's registry, scaffold split of
Hu et al. / OGB, every labelled training molecule), each GIN method (``scratch`` and
``pretrained:<encoder>`` for each ``--pretrained``) is trained under two protocols:

* ``hu2020``: Hu et al.'s fine-tuning, :data:`molft.finetuning.recipe.HU2020_PROTOCOL` (Adam at
  1e-3 for every layer, no weight decay, constant rate, batch 32, dropout 0.5, 100 epochs, plain
  binary cross-entropy with missing labels masked, mean pooling, JK last) reporting the test
  ROC-AUC of the **last** epoch, as their ``finetune.py`` is run and read. Two differences, stated:
  molft's OGB feature vocabulary (9 atom / 3 bond features) instead of their 2+2, and molft's
  gradient clipping at norm 5.
* ``molft``: molft's own recipe (:func:`molft.finetuning.recipe.choose_recipe`), test ROC-AUC at
  the best-validation epoch. This is exactly the label-efficiency benchmark's run at the budget that
  holds every training molecule (same split, recipe, method settings and seed), so such a run found
  in ``--reuse-runs`` (default: the committed ``label_efficiency_runs.jsonl``) is taken over, marked
  ``reused_from``, instead of being trained again; ``--reuse-runs ''`` turns that off.

Seeds 0..N-1 are model seeds (the split is fixed). Reference values are Hu et al. 2020, Table 1
(GIN; "no pre-train", "AttrMasking" and "ContextPred" rows without supervised pretraining), kept in
:data:`REFERENCE` and printed in their own table: they were measured by Hu et al. with 2M ZINC
molecules x 100 pretraining epochs, not here, and are never mixed with molft's numbers.

    python -m benchmarks.moleculenet_hu2020 --datasets bbbp,bace --seeds 10 --protocols hu2020,molft \\
        --pretrained attrmask,contextpred [--max-epochs N] [--device cuda]

Resumable through :mod:`benchmarks.harness` like the label-efficiency benchmark (one JSON line per
finished run in ``moleculenet_hu2020_runs.jsonl``; a rerun skips those; ``--stop-after``,
``--report-only``, ``--add-runs``). Writes ``moleculenet_hu2020.{json,md}``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from molft.errors import InputError
from molft.evaluate import mean_std
from molft.finetuning.recipe import HU2020_PROTOCOL, Recipe
from molft.runtime import resolve_device

from benchmarks.harness import (
    RESULTS,
    Cell,
    add_harness_arguments,
    append_run,
    comma_list,
    command_line,
    group_runs,
    hardware,
    hardware_text,
    input_errors_exit,
    markdown_table,
    read_runs,
    run_cells,
    run_key,
    start,
    utc_now,
    write_json,
)
from benchmarks.label_efficiency import BenchmarkDataset, prepare_dataset, resolve_methods, run_gnn

NAME = "moleculenet_hu2020"
DATASETS = ("bbbp", "tox21", "toxcast", "sider", "clintox", "muv", "hiv", "bace")
PROTOCOLS = ("hu2020", "molft")
FULL = 10**9  # a budget larger than any training set: every labelled training molecule

#: Hu et al. 2020, Table 1, test ROC-AUC (%) mean (std) over 10 seeds, GIN, scaffold split.
#: Transcribed by hand (check against the paper before quoting): reference values, not molft's.
REFERENCE = {
    "no pre-train": {"BBBP": (65.8, 4.5), "Tox21": (74.0, 0.8), "ToxCast": (63.4, 0.6), "SIDER": (57.3, 1.6),
                     "ClinTox": (58.0, 4.4), "MUV": (71.8, 2.5), "HIV": (75.3, 1.9), "BACE": (70.1, 5.4)},
    "AttrMasking": {"BBBP": (64.3, 2.8), "Tox21": (76.7, 0.4), "ToxCast": (64.2, 0.5), "SIDER": (61.0, 0.7),
                    "ClinTox": (71.8, 4.1), "MUV": (74.7, 1.4), "HIV": (77.2, 1.1), "BACE": (79.3, 1.6)},
    "ContextPred": {"BBBP": (68.0, 2.0), "Tox21": (75.7, 0.7), "ToxCast": (63.9, 0.6), "SIDER": (60.9, 0.6),
                    "ClinTox": (65.9, 3.8), "MUV": (75.8, 1.7), "HIV": (77.3, 1.0), "BACE": (79.6, 1.2)},
}


def run_benchmark(
    datasets: Sequence[str] = DATASETS,
    *,
    seeds: int = 10,
    protocols: Sequence[str] = PROTOCOLS,
    pretrained: Sequence[str] = ("attrmask", "contextpred"),
    max_epochs: int | None = None,
    device: str | None = None,
    data_dir: str | Path | None = None,
    results_dir: str | Path = RESULTS,
    progress: bool = True,
    command: str | None = None,
    report_only: bool = False,
    stop_after_s: float | None = None,
    reuse_runs: str | Path | None = RESULTS / "label_efficiency_runs.jsonl",
) -> dict[str, Any]:
    """Run every missing (dataset, protocol, method, seed); write JSON and Markdown (module docstring).

    ``report_only`` runs nothing and reports the recorded runs; ``stop_after_s`` starts no new run
    after that many seconds (the run in flight finishes). Cells with fewer seeds than asked say so.
    ``reuse_runs``: a label-efficiency runs file whose full-training-set runs stand for ``molft``
    protocol runs (None: train every run here).
    """
    started = time.perf_counter()
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise InputError(f"unknown protocol(s) {', '.join(unknown)}; choose from: {', '.join(PROTOCOLS)}")
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    runs_file = results_dir / f"{NAME}_runs.jsonl"
    device_ = resolve_device(device)
    command = command or command_line(NAME, None)
    methods, skipped = resolve_methods(["scratch", "pretrained"], pretrained=pretrained, max_epochs=max_epochs)
    prepared = [prepare_dataset(name, budgets=[FULL], data_dir=data_dir) for name in datasets]
    cells = [Cell({"dataset": data.name, "split": "scaffold", "data_sha256": data.base.sha256[:16],
                   "method": method.name, "settings": f"protocol={protocol};{method.settings}",
                   "n_labels": len(data.train), "seed": seed},
                  f"{data.name} {protocol} {method.name} seed={seed}", (data, protocol, method, seed))
             for data in prepared for protocol in protocols for seed in range(seeds) for method in methods]
    if reuse_runs and Path(reuse_runs).is_file():
        take_over_runs(cells, reuse_runs=Path(reuse_runs), runs_file=runs_file)

    def run(cell: Cell) -> dict[str, Any]:
        data, protocol, method, seed = cell.task
        start = time.perf_counter()
        outcome = run_gnn(data, method, data.train, seed=seed, max_epochs=max_epochs, device=device_,
                          protocol=_protocol(protocol, max_epochs=max_epochs))
        metric = data.base.metric
        return {
            **cell.fields, "protocol": protocol, "kind": method.kind, "metric": metric,
            "test": outcome["test_metrics"].get(metric, math.nan), "valid": outcome["valid_metrics"].get(metric, math.nan),
            **outcome, "wall_s": round(time.perf_counter() - start, 3), "device": str(device_),
            "torch_threads": torch.get_num_threads(), "finished_at": utc_now(),
        }

    done = run_cells(cells, run, runs_file=runs_file, report_only=report_only, stop_after_s=stop_after_s,
                     started=started, announce=_announce, desc="moleculenet (Hu et al. 2020)", progress=progress)
    result = {
        "benchmark": NAME, "command": command, "hardware": hardware(), "device": str(device_),
        "finished": utc_now(),
        "wall_s": round(time.perf_counter() - started, 1), "executed_now": done.executed, "missing": done.missing,
        "seeds": seeds, "datasets": [data.name for data in prepared],
        "max_epochs": max_epochs, "protocols": {"hu2020": HU2020_PROTOCOL.to_dict(), "molft": "choose_recipe by label count"},
        "skipped": skipped, "rows": aggregate(done.records), "reference_hu2020_table1": REFERENCE, "runs": done.records,
    }
    write_json(results_dir / f"{NAME}.json", result)
    (results_dir / f"{NAME}.md").write_text(to_markdown(result))
    return result


def _protocol(protocol: str, *, max_epochs: int | None) -> Recipe | None:
    """Hu et al.'s fixed recipe (its epochs capped at ``max_epochs``) for ``hu2020``; None (molft's
    recipe for the label count) for ``molft``."""
    if protocol != "hu2020":
        return None
    return HU2020_PROTOCOL if max_epochs is None else replace(HU2020_PROTOCOL, max_epochs=max_epochs, patience=max_epochs)


def take_over_runs(cells: Sequence[Cell], *, reuse_runs: Path, runs_file: Path) -> int:
    """Record in ``runs_file``, as finished runs of their cells, the label-efficiency runs of
    ``reuse_runs`` equal to ``molft``-protocol cells (same key, whole training split), marked
    ``reused_from``; returns how many were added. Later reruns find them in ``runs_file``."""
    reusable = {run_key(r): r for r in read_runs(reuse_runs)}
    recorded = {run_key(r) for r in read_runs(runs_file)}
    added = 0
    for cell in cells:
        data, protocol, method, _ = cell.task
        if protocol != "molft" or run_key(cell.fields) in recorded:
            continue
        reused = _full_data_run(reusable, cell.fields, method.settings, data)
        if reused is not None:
            append_run(runs_file, {**reused, **cell.fields, "protocol": protocol, "reused_from": reuse_runs.name})
            recorded.add(run_key(cell.fields))
            added += 1
    return added


def _full_data_run(reusable: dict[tuple, dict[str, Any]], key_fields: dict[str, Any], method_settings: str,
                   data: BenchmarkDataset) -> dict[str, Any] | None:
    """The label-efficiency run equal to this ``molft``-protocol run: same key, whole training split."""
    run = reusable.get(run_key({**key_fields, "settings": method_settings}))
    return run if run is not None and run.get("train_rows_sha256") == data.rows_digest(data.train) else None


def _announce(record: dict[str, Any]) -> str:
    test = "nan" if record["test"] is None else f"{record['test']:.3f}"
    return (f"{record['dataset']} {record['protocol']:>6s} {record['method']:>28s} seed={record['seed']}: "
            f"test {record['metric']} {test} (best valid epoch {record.get('best_epoch')}, {record['wall_s']:.0f} s)")


def aggregate(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± sample std over seeds per (dataset, protocol, method), ROC-AUC in %."""
    rows = []
    for (dataset, protocol, method), runs in group_runs(records, ["dataset", "protocol", "method"]):
        mean, std = mean_std([100 * r["test"] for r in runs if r["test"] is not None])
        epochs, _ = mean_std([r["best_epoch"] for r in runs if r.get("best_epoch") is not None])
        rows.append({"dataset": dataset, "protocol": protocol, "method": method, "seeds": len(runs),
                     "n_labels": runs[0]["n_labels"], "test_mean": mean, "test_std": std,
                     "best_valid_epoch_mean": epochs, "epochs_run": runs[0].get("epochs_run"),
                     "wall_s_mean": mean_std([r["wall_s"] for r in runs])[0]})
    return rows


def _cell(mean: float | None, std: float | None) -> str:
    """Hu et al.'s way: ``mean (std)`` in %, one decimal."""
    if mean is None:
        return "—"
    return f"{mean:.1f} ({std:.1f})" if std is not None else f"{mean:.1f}"


def _seeded_cell(row: dict[str, Any], seeds: int) -> str:
    cell = _cell(row["test_mean"], row["test_std"])
    return cell if row["seeds"] >= seeds else f"{cell} ({row['seeds']} of {seeds} seeds)"


def _average(values: Sequence[float | None]) -> str:
    """Mean of one row's dataset values, or a dash when a dataset is missing."""
    return "—" if not values or any(v is None for v in values) else f"{sum(values) / len(values):.1f}"


def to_markdown(result: dict[str, Any]) -> str:
    """The report: molft's measured table, wall times, and Hu et al.'s Table 1 apart."""
    rows = result["rows"]
    datasets = result.get("datasets") or sorted({r["dataset"] for r in rows})
    lines = [
        "# MoleculeNet, full training sets: molft beside Hu et al. 2020",
        "",
        f"Command: `{result['command']}`",
        "",
        f"- Finished {result['finished']}; {result['executed_now']} run(s) executed by this invocation in "
        f"{result['wall_s'] / 60:.1f} min; hardware: {hardware_text(result['hardware'])}; device {result['device']}.",
        f"- Test ROC-AUC (%), mean (sample std) over {result['seeds']} model seed(s); scaffold split (Hu et al. / OGB), "
        "every labelled training molecule.",
        "- `hu2020`: Adam 1e-3 all layers, no decay, constant rate, batch 32, dropout 0.5, plain BCE, "
        f"{result['max_epochs'] or 100} epochs, **last epoch** reported; "
        "`molft`: molft's recipe, best-validation epoch.",
    ]
    if result["max_epochs"]:
        lines.append(f"- **Epochs capped at {result['max_epochs']}** (`--max-epochs`): not Hu et al.'s 100; "
                     "a reduced run, not the full protocol.")
    if result["skipped"]:
        lines += [f"- Skipped `{kind}`: {reason}" for kind, reason in result["skipped"].items()]
    reused = [r for r in result.get("runs", []) if r.get("reused_from")]
    if reused:
        lines.append(f"- {len(reused)} `molft`-protocol run(s) are the label-efficiency benchmark's runs on the whole "
                     f"training split (same split, recipe, settings and seed), taken over from "
                     f"`{reused[0]['reused_from']}` rather than trained again (`--reuse-runs`).")
    if result.get("missing"):
        lines.append(f"- {result['missing']} run(s) not yet made (`--stop-after` or `--report-only`); "
                     "a cell with fewer seeds than asked says how many it has.")
    measured = []
    for protocol, method in sorted({(r["protocol"], r["method"]) for r in rows}):
        found = [next((r for r in rows if (r["dataset"], r["protocol"], r["method"]) == (d, protocol, method)), None)
                 for d in datasets]
        measured.append([protocol, method, *[_seeded_cell(row, result["seeds"]) if row else "—" for row in found],
                         _average([r and r["test_mean"] for r in found])])
    lines += ["", "## Measured by molft", "",
              "The last column averages a row over the datasets, when it has all of them (as Hu et al.'s Table 1 does).", ""]
    lines += markdown_table(["protocol", "method", *datasets, "mean"], measured, right_from=2)
    timing = [[row["dataset"], row["protocol"], row["method"], str(row["seeds"]), f"{row['wall_s_mean']:.0f}",
               "—" if row["best_valid_epoch_mean"] is None else f"{row['best_valid_epoch_mean']:.1f}"] for row in rows]
    lines += ["", "Mean wall time per run (s) and mean best-validation epoch:", ""]
    lines += markdown_table(["dataset", "protocol", "method", "seeds", "wall s", "best valid epoch"], timing, right_from=3)
    reference = [[name, *[_cell(*values[d]) if d in values else "—" for d in datasets],
                  _average([values[d][0] if d in values else None for d in datasets])] for name, values in REFERENCE.items()]
    lines += ["", "## Reference: Hu et al. 2020, Table 1 (their pretraining: 2M ZINC molecules, 100 epochs)", ""]
    lines += markdown_table(["Hu et al. row", *datasets, "mean"], reference)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=comma_list, default=list(DATASETS), help="registry names, comma-separated")
    parser.add_argument("--seeds", type=int, default=10, help="model seeds 0..N-1 (the split is fixed)")
    parser.add_argument("--protocols", type=comma_list, default=list(PROTOCOLS), help=f"comma-separated: {','.join(PROTOCOLS)}")
    parser.add_argument("--pretrained", type=comma_list, default=["attrmask", "contextpred"],
                        help="shipped names or encoder directories, comma-separated")
    parser.add_argument("--max-epochs", type=int, default=None, help="cap epochs (reported as a reduced run)")
    parser.add_argument("--reuse-runs", default=str(RESULTS / "label_efficiency_runs.jsonl"), metavar="FILE",
                        help="label-efficiency runs file whose full-data runs stand for molft-protocol runs ('' = none)")
    add_harness_arguments(parser, results_dir=RESULTS)
    args = parser.parse_args(argv)
    with input_errors_exit():
        start(args, runs_file=Path(args.results_dir) / f"{NAME}_runs.jsonl")
        result = run_benchmark(
            args.datasets, seeds=args.seeds, protocols=args.protocols, pretrained=args.pretrained,
            max_epochs=args.max_epochs, device=args.device, data_dir=args.data_dir, results_dir=args.results_dir,
            progress=not args.no_progress, command=command_line(NAME, argv), report_only=args.report_only,
            stop_after_s=args.stop_after_s, reuse_runs=args.reuse_runs or None,
        )
    print(to_markdown(result))


if __name__ == "__main__":
    main()
