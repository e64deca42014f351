"""Which model to predict with: a member kind alone or a weighted blend, chosen on validation.

The members (``gnn``: the fine-tuned GNN, averaged over its seeds; ``forest`` and ``boosted``:
:mod:`molft.finetuning.trees`) each give validation predictions. :func:`choose_blend` scores every
candidate of a coarse grid on the simplex (weights in steps of ``step``, 0.25 by default: 15
candidates for three members, each single member among them) with the task's primary metric
(ROC-AUC, or RMSE) on the validation split, and keeps the best; a tie goes to the candidate with
fewer members, then to the earlier member order. A grid this coarse has few degrees of freedom,
so 100 validation molecules cannot be fitted by it the way free weights could be.

``--model`` (:data:`MODEL_CHOICES`): ``auto`` (the default: choose as above), ``ensemble`` (equal
weights over every member), or one member kind forced.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from molft.errors import InputError
from molft.evaluate import PRIMARY_METRIC, evaluate, higher_is_better

MEMBER_KINDS = ("gnn", "forest", "boosted")
MODEL_CHOICES = ("auto", "ensemble", *MEMBER_KINDS)


def members_for(model: str) -> tuple[str, ...]:
    """The member kinds a ``--model`` choice trains."""
    if model not in MODEL_CHOICES:
        raise InputError(f"unknown model {model!r}; choose one of: {', '.join(MODEL_CHOICES)}")
    return MEMBER_KINDS if model in ("auto", "ensemble") else (model,)


def weight_grid(names: Sequence[str], step: float = 0.25) -> list[dict[str, float]]:
    """Every weighting of ``names`` with weights in multiples of ``step`` summing to 1."""
    parts = round(1 / step)
    if not np.isclose(parts * step, 1.0) or parts < 1:
        raise InputError(f"step must divide 1 (e.g. 0.25, 0.1), got {step}")
    grid = []
    for counts in itertools.product(range(parts + 1), repeat=len(names)):
        if sum(counts) == parts:
            grid.append({name: count / parts for name, count in zip(names, counts) if count})
    return grid


def blend(predictions: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The weighted mean of the members' predictions (probabilities or values)."""
    total = sum(weights.values())
    return sum(predictions[name] * (weight / total) for name, weight in weights.items())


@dataclass
class BlendChoice:
    """What :func:`choose_blend` chose, and how every candidate scored on validation.

    Attributes:
        weights: member kind -> weight (only members with weight > 0).
        metric: the primary metric's name.
        valid_score: the chosen candidate's validation score.
        candidates: ``{"weights", "valid"}`` of every candidate, best first.
        reason: one sentence for ``summary.md``.
    """

    weights: dict[str, float]
    metric: str
    valid_score: float
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "metric": self.metric, "valid": self.valid_score,
                "reason": self.reason, "candidates": self.candidates}


def describe_weights(weights: Mapping[str, float]) -> str:
    """``"gnn 0.25 + forest 0.75"``."""
    return " + ".join(f"{name} {weight:g}" for name, weight in weights.items()) if len(weights) > 1 else next(iter(weights))


def choose_blend(
    valid_predictions: Mapping[str, np.ndarray],
    y_valid: np.ndarray,
    *,
    task_type: str,
    model: str = "auto",
    step: float = 0.25,
) -> BlendChoice:
    """Choose the model to predict with from the members' validation predictions.

    Args:
        valid_predictions: member kind -> [num_valid, num_tasks] predictions, in member order.
        y_valid: [num_valid, num_tasks] labels (NaN = missing).
        task_type: ``"classification"`` or ``"regression"``.
        model: ``"auto"`` (grid search), ``"ensemble"`` (equal weights) or a member kind.
        step: the grid's weight step.

    Returns:
        the choice, deterministic for the same inputs.
    """
    names = list(valid_predictions)
    metric = PRIMARY_METRIC[task_type]
    sign = 1.0 if higher_is_better(metric) else -1.0

    def score(weights: dict[str, float]) -> float:
        value = float(evaluate(y_valid, blend(valid_predictions, weights), task_type)[metric])
        return value if np.isfinite(value) else -sign * float("inf")  # undefined: never chosen over a score

    if model == "auto":
        grid = weight_grid(names, step)
    elif model == "ensemble":
        grid = [{name: 1.0 / len(names) for name in names}]
    elif model in names:
        grid = [{model: 1.0}]
    else:
        raise InputError(f"model {model!r} is not among the members trained ({', '.join(names)})")
    scored = [(weights, score(weights)) for weights in grid]
    order = {name: i for i, name in enumerate(names)}
    ranked = sorted(
        scored,
        key=lambda item: (-sign * item[1], len(item[0]), [order[n] for n in item[0]]),
    )
    best, best_score = ranked[0]
    candidates = [{"weights": w, "valid": s} for w, s in ranked]
    if model == "auto":
        singles = {next(iter(w)): s for w, s in scored if len(w) == 1}
        best_single = max(singles, key=lambda n: sign * singles[n])
        if len(best) == 1:
            reason = (f"{describe_weights(best)} alone scored the best validation {metric} ({best_score:.4f}) of {len(grid)} "
                      f"candidate blends (weights in steps of {step:g})")
        else:
            reason = (f"the blend {describe_weights(best)} scored validation {metric} {best_score:.4f}, better than "
                      f"the best single member ({best_single}, {singles[best_single]:.4f}), of {len(grid)} candidates "
                      f"(weights in steps of {step:g})")
    elif model == "ensemble":
        reason = f"--model ensemble: equal weights over {', '.join(names)} (validation {metric} {best_score:.4f})"
    else:
        reason = f"--model {model}: that member alone (validation {metric} {best_score:.4f})"
    return BlendChoice(weights=dict(best), metric=metric, valid_score=best_score, candidates=candidates, reason=reason)
