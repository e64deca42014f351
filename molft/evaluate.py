"""NaN-aware multi-task metrics on scikit-learn: missing labels are skipped, never counted as 0."""

from __future__ import annotations

import math

import numpy as np

from molft.errors import InputError

CLASSIFICATION = "classification"
REGRESSION = "regression"

#: metric name -> (the ``sklearn.metrics`` function computing it, higher is better); scikit-learn is
#: imported on the first metric computed, so loading a model to predict does not pay for it
METRICS = {
    "roc_auc": ("roc_auc_score", True),
    "pr_auc": ("average_precision_score", True),
    "rmse": ("root_mean_squared_error", False),
    "mae": ("mean_absolute_error", False),
    "r2": ("r2_score", True),
}
METRICS_BY_TASK_TYPE = {CLASSIFICATION: ("roc_auc", "pr_auc"), REGRESSION: ("rmse", "mae", "r2")}
#: the metric early stopping and model selection use
PRIMARY_METRIC = {CLASSIFICATION: "roc_auc", REGRESSION: "rmse"}


def infer_task_type(y: np.ndarray) -> str:
    """``"classification"`` when every label present is 0 or 1, else ``"regression"``.

    Raises:
        InputError: if there are no labels at all.
    """
    present = y[~np.isnan(y)]
    if present.size == 0:
        raise InputError("no labels: every target cell is empty")
    return CLASSIFICATION if np.isin(present, (0.0, 1.0)).all() else REGRESSION


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better."""
    return METRICS[metric][1]


def improves(score: float, incumbent: float, metric: str) -> bool:
    """Whether ``score`` beats ``incumbent`` on ``metric`` (NaN never wins; anything beats NaN)."""
    if math.isnan(score):
        return False
    if math.isnan(incumbent):
        return True
    return score > incumbent if higher_is_better(metric) else score < incumbent


def mean_std(values) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof 1) of the finite values, as every molft table reports them.

    None and NaN are left out; the std is None with fewer than two values, and both are None with none.

    Example:
        >>> mean_std([0.70, 0.74, float("nan")])
        (0.72, 0.028284271247461926)
    """
    finite = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return None, None
    return float(np.mean(finite)), (float(np.std(finite, ddof=1)) if len(finite) > 1 else None)


def task_metric(metric: str, y_true: np.ndarray, y_score: np.ndarray) -> float:
    """One metric on one task, skipping NaN labels.

    Returns NaN where the metric is undefined (no labels; one class only for ROC/PR-AUC).
    """
    labelled = ~np.isnan(y_true)
    y_true, y_score = y_true[labelled], y_score[labelled]
    if len(y_true) == 0:
        return math.nan
    if metric in ("roc_auc", "pr_auc") and len(np.unique(y_true)) < 2:
        return math.nan
    if metric == "r2" and len(y_true) < 2:
        return math.nan
    import sklearn.metrics

    return float(getattr(sklearn.metrics, METRICS[metric][0])(y_true, y_score))


def primary_score(y_true: np.ndarray, y_score: np.ndarray, task_type: str) -> float:
    """The task type's :data:`PRIMARY_METRIC` averaged over the tasks where it is defined (NaN if none):
    what model selection compares, without the other metrics :func:`evaluate` computes."""
    y_true, y_score = np.atleast_2d(np.asarray(y_true, float).T).T, np.atleast_2d(np.asarray(y_score, float).T).T
    metric = PRIMARY_METRIC[task_type]
    values = [task_metric(metric, y_true[:, j], y_score[:, j]) for j in range(y_true.shape[1])]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def evaluate(
    y_true: np.ndarray, y_score: np.ndarray, task_type: str, task_names: list[str] | None = None
) -> dict[str, object]:
    """Every metric of the task type, per task and averaged over the tasks where it is defined.

    Args:
        y_true: [num_molecules, num_tasks] labels, NaN = missing.
        y_score: [num_molecules, num_tasks] probabilities (classification) or values (regression).
        task_type: ``"classification"`` or ``"regression"``.
        task_names: names for the per-task entries (default ``task_0``, ...).

    Returns:
        ``{"roc_auc": mean, ..., "per_task": {name: {"roc_auc": ..., ...}}}``.
    """
    y_true, y_score = np.atleast_2d(np.asarray(y_true, float).T).T, np.atleast_2d(np.asarray(y_score, float).T).T
    if y_true.shape != y_score.shape:
        raise ValueError(f"labels have shape {y_true.shape} but predictions {y_score.shape}")
    names = task_names or [f"task_{i}" for i in range(y_true.shape[1])]
    per_task = {
        name: {metric: task_metric(metric, y_true[:, j], y_score[:, j]) for metric in METRICS_BY_TASK_TYPE[task_type]}
        for j, name in enumerate(names)
    }
    result: dict[str, object] = {}
    for metric in METRICS_BY_TASK_TYPE[task_type]:
        values = [scores[metric] for scores in per_task.values() if not math.isnan(scores[metric])]
        result[metric] = float(np.mean(values)) if values else math.nan
    result["per_task"] = per_task
    return result
