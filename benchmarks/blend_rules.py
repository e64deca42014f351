"""Blend rules compared on saved members: which choice on validation holds up on test.

``benchmarks.label_efficiency`` saves every ensemble member's validation and test scores
(``<results>/label_efficiency_scores/<dataset>-<method>-<labels>-<seed>.npz``). This benchmark
re-chooses the blend of those same members under several rules, so a rule can be judged on many
cells without training a GNN again:

* ``validation-best``: the best validation score on the 0.25 grid
  (:func:`molft.finetuning.ensemble.choose_blend` with ``rule="best"``; molft's ``auto`` until the
  one-SE rule replaced it);
* ``one-SE``: molft's ``auto`` (``rule="one-se"``): that choice only if its paired gain over the forest
  alone on validation exceeds one bootstrap standard error (200 resamples of the validation
  molecules), else the forest alone;
* ``halfway``: the validation-best weights averaged with the forest alone (half the weight moved
  to the forest);
* ``equal``: every member at equal weight (``--model ensemble``);
* ``forest``: the forest member alone (the baseline the issue measures against).

For regression cells it also compares two ways of sizing molft's 90% intervals around the one-SE
choice, both split-conformal on validation: ``absolute`` (molft's: one half-width from the
absolute residuals, :func:`molft.finetuning.uncertainty.conformal_halfwidths`) and
``spread-normalized`` (residuals divided by ``sigma`` = the std over all saved members plus the
median of that std on validation, so molecules where the members disagree get wider intervals;
Lei et al. 2018's locally weighted conformal). Test coverage and mean interval width are reported.

    python -m benchmarks.blend_rules

Writes benchmarks/results/blend_rules.{json,md}.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import RESULTS, command_line, group_runs, hardware, markdown_table, mean_std_text, utc_now, \
    write_results
from benchmarks.label_efficiency import SCORES_FILE, read_scores
from molft.data.registry import load_dataset
from molft.evaluate import PRIMARY_METRIC, REGRESSION, evaluate, higher_is_better, mean_std
from molft.finetuning.ensemble import blend, choose_blend
from molft.finetuning.uncertainty import conformal_halfwidths

NAME = "blend_rules"
RULES = ("validation-best", "one-SE", "halfway", "equal", "forest")


def choose(rule: str, valid: Mapping[str, np.ndarray], y_valid: np.ndarray, task_type: str) -> dict[str, float]:
    """The weights ``rule`` picks from the members' validation scores."""
    forest = {"forest": 1.0}
    if rule == "forest":
        return forest
    if rule == "equal":
        return {name: 1.0 / len(valid) for name in valid}
    if rule == "one-SE":
        return choose_blend(valid, y_valid, task_type=task_type, rule="one-se").weights
    best = choose_blend(valid, y_valid, task_type=task_type, rule="best").weights
    if rule == "validation-best" or best == forest:
        return best
    if rule == "halfway":
        moved = {name: 0.5 * best.get(name, 0.0) + (0.5 if name == "forest" else 0.0) for name in valid}
        return {name: w for name, w in moved.items() if w > 0}
    raise ValueError(f"unknown rule {rule!r}")


COVERAGE = 0.9


def interval_record(valid: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray], y_valid: np.ndarray,
                    y_test: np.ndarray, weights: Mapping[str, float]) -> dict[str, Any]:
    """Test coverage and mean width of the ``absolute`` and ``spread-normalized`` 90% intervals
    around the blend ``weights`` (first task)."""
    centre = {"valid": blend(valid, weights)[:, 0], "test": blend(test, weights)[:, 0]}
    spread = {part: np.std(np.stack([m[:, 0] for m in members.values()]), axis=0)
              for part, members in (("valid", valid), ("test", test))}
    known = {"valid": ~np.isnan(y_valid[:, 0]), "test": ~np.isnan(y_test[:, 0])}
    floor = float(np.median(spread["valid"][known["valid"]]))
    out = {}
    for name, scale in (("absolute", {p: np.ones_like(v) for p, v in spread.items()}),
                        ("spread-normalized", {p: v + floor for p, v in spread.items()})):
        score = (np.abs(y_valid[:, 0] - centre["valid"]) / scale["valid"])[known["valid"]]
        q = conformal_halfwidths(score[:, None], np.zeros((len(score), 1)), coverage=COVERAGE)[0]
        width = q * scale["test"][known["test"]]
        inside = np.abs(y_test[known["test"], 0] - centre["test"][known["test"]]) <= width
        out[name] = {"coverage": float(inside.mean()), "mean_width": float(2 * width.mean())}
    return out


def rechoose(scores_dir: Path, *, data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One record per (saved cell, rule): the weights chosen and their test score."""
    labels: dict[str, tuple[np.ndarray, str, str]] = {}
    records = []
    for path in sorted(scores_dir.glob("*.npz")):
        match = SCORES_FILE.fullmatch(path.name)
        if match is None:
            continue
        dataset = match["dataset"]
        if dataset not in labels:
            loaded = load_dataset(dataset, data_dir)
            labels[dataset] = (loaded.y, loaded.task_type, loaded.info.name)
        y, task_type, display = labels[dataset]
        rows, parts = read_scores(path)
        if "forest" not in parts["valid"] or len(parts["valid"]) < 2:
            continue  # a member run alone (e.g. ``boosted``), not an ensemble
        metric = PRIMARY_METRIC[task_type]
        for rule in RULES:
            weights = choose(rule, parts["valid"], y[rows["valid"]], task_type)
            test = float(evaluate(y[rows["test"]], blend(parts["test"], weights), task_type)[metric])
            record = {"dataset": display, "method": match["method"], "n_labels": int(match["labels"]),
                      "seed": int(match["seed"]), "rule": rule, "metric": metric, "weights": weights, "test": test}
            if rule == "one-SE" and task_type == REGRESSION:
                record["intervals"] = interval_record(parts["valid"], parts["test"], y[rows["valid"]],
                                                      y[rows["test"]], weights)
            records.append(record)
    return records


def to_markdown(result: dict[str, Any]) -> str:
    lines = ["# Blend rules on saved ensemble members", "", f"Command: `{result['command']}`", "",
             f"- Finished {result['finished_at']}; reads `{result['scores_dir']}` (saved by "
             "`benchmarks.label_efficiency`; the members are trained there, nothing is trained here).",
             "- Rules: see the module's docstring. Test metric (ROC-AUC up, RMSE down), mean ± sample std over "
             "seeds; `vs forest` = seeds where the rule is at least as good as the forest alone.", ""]
    header = ["dataset", "method", "labels", "seeds", *RULES, *(f"{r} vs forest" for r in RULES[:-1])]
    table = []
    for (dataset, method, n_labels), runs in group_runs(result["records"], ["dataset", "method", "n_labels"]):
        by_rule = {rule: {r["seed"]: r["test"] for r in runs if r["rule"] == rule} for rule in RULES}
        lower = not higher_is_better(runs[0]["metric"])
        row = [dataset, method, f"{n_labels:,}", str(len(by_rule["forest"]))]
        row += [mean_std_text(*mean_std(list(by_rule[rule].values()))) for rule in RULES]
        for rule in RULES[:-1]:
            paired = [(v, by_rule["forest"][s]) for s, v in by_rule[rule].items() if s in by_rule["forest"]]
            wins = sum((v <= f) if lower else (v >= f) for v, f in paired)
            row.append(f"{wins}/{len(paired)}")
        table.append(row)
    lines += markdown_table(header, table, right_from=2)
    sized = [r for r in result["records"] if "intervals" in r]
    if sized:
        lines += ["", f"Intervals around molft's (one-SE) choice, regression cells: test coverage of the stated "
                  f"{COVERAGE:.0%} interval and its mean width (mean ± std over seeds):", ""]
        kinds = ("absolute", "spread-normalized")
        rows = []
        for (dataset, method, n_labels), runs in group_runs(sized, ["dataset", "method", "n_labels"]):
            row = [dataset, method, f"{n_labels:,}", str(len(runs))]
            for kind in kinds:
                row += [mean_std_text(*mean_std([r["intervals"][kind][key] for r in runs]))
                        for key in ("coverage", "mean_width")]
            rows.append(row)
        lines += markdown_table(["dataset", "method", "labels", "seeds", *(f"{k} {what}" for k in kinds
                                                                           for what in ("coverage", "width"))],
                                rows, right_from=2)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scores-dir", type=Path, default=RESULTS / "label_efficiency_scores")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    records = rechoose(args.scores_dir, data_dir=args.data_dir)
    result = {"benchmark": NAME, "command": command_line(NAME, argv), "scores_dir": str(args.scores_dir),
              "records": records, "hardware": hardware(), "finished_at": utc_now()}
    write_results(NAME, result, to_markdown(result), args.results_dir)


if __name__ == "__main__":
    main()
