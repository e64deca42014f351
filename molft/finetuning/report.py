"""What a fine-tuned model directory tells a person: metrics over seeds, predictions, the learning
curve and ``summary.md``. Pure functions of the run's results; nothing here trains."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molft.data.assay import Assay
from molft.evaluate import PRIMARY_METRIC, evaluate, mean_std
from molft.finetuning.ensemble import describe_weights
from molft.io import atomic_write, write_text_atomic


def summarise(
    per_seed: list[dict[str, Any]], predictions: dict[str, list[np.ndarray]], y: np.ndarray,
    split: dict[str, np.ndarray], *, task_type: str, targets: list[str],
) -> dict[str, Any]:
    """``metrics.json``: every member's scores, their mean and sample std (ddof 1; null with one
    member) per metric, and the scores of the ensemble's mean prediction."""
    metric_names = [k for k in per_seed[0]["test"] if k != "per_task"]
    summary: dict[str, Any] = {"task_type": task_type, "targets": targets, "seeds": per_seed}
    for part in ("valid", "test"):
        spread = {m: mean_std([s[part][m] for s in per_seed]) for m in metric_names}
        summary[f"{part}_mean"] = {m: (math.nan if mean is None else mean) for m, (mean, _) in spread.items()}
        summary[f"{part}_std"] = {m: std for m, (_, std) in spread.items()}
        ensemble = np.mean(predictions[part], axis=0)
        summary[f"{part}_ensemble"] = evaluate(y[split[part]], ensemble, task_type, targets)
    return summary


def write_predictions(
    path: Path, assay: Assay, indices: np.ndarray, *, prediction: np.ndarray, spread: np.ndarray | None = None,
    halfwidths: list[float] | None = None, similarity: np.ndarray | None = None,
    members: dict[str, np.ndarray] | None = None,
) -> None:
    """Row, SMILES, label and the chosen model's prediction per target for ``indices``; with
    them the spread over members, the interval, each member's prediction and the
    nearest-training-molecule similarity, where given."""
    frame = pd.DataFrame({
        "row": assay.table.rows[indices],
        "smiles": np.asarray(assay.smiles, dtype=object)[indices],
    })
    y = assay.dataset.y.numpy()[indices]
    for j, name in enumerate(assay.targets):
        frame[name] = y[:, j]
        frame[f"{name}_pred"] = prediction[:, j]
        if spread is not None:
            frame[f"{name}_std"] = spread[:, j]
        if halfwidths is not None:
            frame[f"{name}_lower"] = prediction[:, j] - halfwidths[j]
            frame[f"{name}_upper"] = prediction[:, j] + halfwidths[j]
        for kind, values in (members or {}).items():
            frame[f"{name}_{kind}"] = values[:, j]
    if similarity is not None:
        frame["nearest_train_similarity"] = similarity
    with atomic_write(path) as tmp:
        frame.to_csv(tmp, index=False)


def plot_learning_curve(path: Path, log: list[dict], metric: str) -> None:
    """Training loss and validation ``metric`` per epoch, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.DataFrame(log)
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for seed, rows in frame.groupby("seed"):
        left.plot(rows["epoch"], rows["train_loss"], label=f"seed {seed}")
        right.plot(rows["epoch"], rows[f"valid_{metric}"], label=f"seed {seed}")
    left.set(xlabel="epoch", ylabel="training loss", title="training loss")
    right.set(xlabel="epoch", ylabel=f"validation {metric}", title=f"validation {metric}")
    right.legend()
    figure.tight_layout()
    with atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


def summary_text(config: dict, metrics: dict, assay: Assay) -> str:
    """``summary.md``: data, split, what model was chosen and why, every member's scores beside
    it (and the GNN's over seeds), the Morgan forest baseline, and the uncertainty measured."""
    primary = PRIMARY_METRIC[assay.task_type]
    report = assay.report
    chosen = metrics["model"]
    names = [m for m in chosen["test"] if m != "per_task"]
    lines = [
        f"# molft model: {', '.join(config['targets'])} ({config['task_type']})",
        "",
        f"- **model: {describe_weights(chosen['weights'])}** (`--model {chosen['choice']}`): {chosen['reason']}.",
        f"- molecules: {len(assay.dataset):,} featurized"
        + (f" of {report.read:,} rows ({report.rejected:,} rejected, see graphs/rejects.csv)" if report else ""),
        f"- split: {config['split']} {config['split_sizes']}",
    ]
    if config["members"]:
        lines += [
            f"- GNN: mode {config['mode']}; pretrained encoder: {config['pretrained']}; {len(config['members'])} seed(s); "
            f"recipe {config['recipe']['name']} (encoder lr {config['recipe']['encoder_lr']:g}, "
            f"head lr {config['recipe']['head_lr']:g}, up to {config['recipe']['max_epochs']} epochs)",
        ]
    lines += ["", "| model | split | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]

    def row(label: str, part: str, scores: dict) -> None:
        lines.append(f"| {label} | {part} | " + " | ".join(f"{scores[m]:.3f}" for m in names) + " |")

    for part in ("valid", "test"):
        row(f"**chosen: {describe_weights(chosen['weights'])}**", part, chosen[part])
    for kind, scores in metrics["members"].items():
        for part in ("valid", "test"):
            row(f"member: {kind}" + (" (mean prediction of the seeds)" if kind == "gnn" else ""), part, scores[part])
    if "test_mean" in metrics:
        for part in ("valid", "test"):
            cells = [_mean_std_cell(metrics[f"{part}_mean"][m], metrics[f"{part}_std"][m]) for m in names]
            lines.append(f"| GNN seeds (mean ± sample std) | {part} | " + " | ".join(cells) + " |")
    forest = metrics.get("baselines", {}).get("random_forest")
    if forest and "forest" not in metrics["members"]:
        for part in ("valid", "test"):
            row("baseline: random forest on Morgan bits", part, forest[part])
    lines.append("")
    if "intervals" in chosen:
        intervals = chosen["intervals"]
        widths = ", ".join(f"±{w:.3f}" for w in intervals["halfwidths"])
        covered = ", ".join(f"{c:.0%}" for c in intervals["test_coverage"])
        lines.append(f"Intervals: {intervals['coverage']:.0%} split-conformal on validation, {widths}; "
                     f"test molecules covered: {covered}.")
        if any(math.isinf(w) for w in intervals["halfwidths"]):
            needed = math.ceil(intervals["coverage"] / (1 - intervals["coverage"]))
            lines.append(f"An infinite interval means too few labelled validation molecules for a "
                         f"{intervals['coverage']:.0%} interval (at least {needed} are needed); predictions carry "
                         "unbounded intervals until the validation split is larger.")
    if "calibration" in chosen:
        before, after = chosen["calibration"]["test_before"], chosen["calibration"]["test_after"]
        lines.append(f"Calibration (Platt, on validation): test Brier {before['brier']:.3f} -> {after['brier']:.3f}, "
                     f"ECE {before['ece']:.3f} -> {after['ece']:.3f}.")
    if "seeds" in metrics:
        best_epochs = [s.get("best_epoch") for s in metrics["seeds"]]
        lines.append(f"GNN epochs selected on validation {primary}; best epochs per seed: {best_epochs}.")
    undefined = sorted(
        {f"{part}/{task}" for part in ("valid", "test")
         for task, scores in chosen[part]["per_task"].items() if any(math.isnan(v) for v in scores.values())}
    )
    if undefined:
        lines.append(
            f"Undefined metrics (NaN) for {', '.join(undefined)}: that split holds a single class or no labels "
            "for the task; try --split random or more data."
        )
    return "\n".join(lines) + "\n"


def _mean_std_cell(mean: float, std: float | None) -> str:
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def write_summary(path: Path, config: dict, metrics: dict, assay: Assay) -> None:
    """Write :func:`summary_text` to ``path``."""
    write_text_atomic(path, summary_text(config, metrics, assay))
