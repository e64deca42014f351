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


def write_predictions(path: Path, assay: Assay, indices: np.ndarray, member_scores: list[np.ndarray]) -> None:
    """Row, SMILES, label, ensemble mean and spread (std over members) per target, for ``indices``."""
    stacked = np.stack(member_scores)
    frame = pd.DataFrame({
        "row": assay.table.rows[indices],
        "smiles": np.asarray(assay.smiles, dtype=object)[indices],
    })
    y = assay.dataset.y.numpy()[indices]
    for j, name in enumerate(assay.targets):
        frame[name] = y[:, j]
        frame[f"{name}_pred"] = stacked[:, :, j].mean(axis=0)
        frame[f"{name}_std"] = stacked[:, :, j].std(axis=0)
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
    """``summary.md``: data, split, recipe, metrics over seeds and of the ensemble, the forest beside them."""
    primary = PRIMARY_METRIC[assay.task_type]
    report = assay.report
    lines = [
        f"# molft model: {', '.join(config['targets'])} ({config['task_type']})",
        "",
        f"- mode: {config['mode']}; pretrained encoder: {config['pretrained']}",
        f"- molecules: {len(assay.dataset):,} featurized"
        + (f" of {report.read:,} rows ({report.rejected:,} rejected, see graphs/rejects.csv)" if report else ""),
        f"- split: {config['split']} {config['split_sizes']}",
        f"- recipe: {config['recipe']['name']} (encoder lr {config['recipe']['encoder_lr']:g}, "
        f"head lr {config['recipe']['head_lr']:g}, up to {config['recipe']['max_epochs']} epochs)",
        f"- ensemble of {len(config['members'])} seed(s)",
        "",
        "| split | " + " | ".join(m for m in metrics["test_mean"]) + " |",
        "|---|" + "---:|" * len(metrics["test_mean"]),
    ]
    for part in ("valid", "test"):
        cells = [_mean_std_cell(metrics[f"{part}_mean"][m], metrics[f"{part}_std"][m]) for m in metrics[f"{part}_mean"]]
        lines.append(f"| {part} (mean ± sample std over seeds) | " + " | ".join(cells) + " |")
        ensemble = [f"{metrics[f'{part}_ensemble'][m]:.3f}" for m in metrics[f"{part}_mean"]]
        lines.append(f"| {part} (ensemble) | " + " | ".join(ensemble) + " |")
    forest = metrics.get("baselines", {}).get("random_forest")
    if forest:
        for part in ("valid", "test"):
            cells = [f"{forest[part][m]:.3f}" for m in metrics[f"{part}_mean"]]
            lines.append(f"| {part}: random forest on Morgan fingerprints (baseline) | " + " | ".join(cells) + " |")
    best_epochs = [s.get("best_epoch") for s in metrics["seeds"]]
    lines += ["", f"Selected on validation {primary}; best epochs per seed: {best_epochs}."]
    undefined = sorted(
        {f"{part}/{task}" for seed in metrics["seeds"] for part in ("valid", "test")
         for task, scores in seed[part]["per_task"].items() if any(math.isnan(v) for v in scores.values())}
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
