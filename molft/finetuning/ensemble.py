"""Which model to predict with: a member kind alone or a weighted blend, chosen on validation.

The members (``gnn``: the fine-tuned GNN, averaged over its seeds; ``forest`` and ``boosted``:
:mod:`molft.finetuning.trees`; ``linear``: instant mode's linear model on the frozen pretrained
embedding, :mod:`molft.finetuning.frozen`, trained only when there is a pretrained encoder and the
GNN is fine-tuned) each give validation predictions. :func:`choose_blend` scores every
candidate of a coarse grid on the simplex (weights in steps of ``step``, 0.25 by default: 15
candidates for three members, 35 for four, each single member among them) with the task's primary metric
(ROC-AUC, or RMSE) on the validation split; a tie goes to the candidate with fewer members, then to
the earlier member order. A grid this coarse has few degrees of freedom, so 100 validation molecules
cannot be fitted by it the way free weights could be.

Then the one-standard-error rule (``rule="one-se"``, the default; Hastie et al., *Elements of
Statistical Learning*, 7.10): the forest on Morgan bits is the reference, the member whose setting
is fixed and never selected on validation. The best candidate replaces it only if its paired gain
over the forest alone on validation exceeds one bootstrap standard error (:data:`BOOTSTRAP`
resamples of the validation molecules, a fixed random state, so the choice is deterministic);
otherwise molft predicts with the forest. A scaffold split's validation part is small and often
unlike its test part, and the gain of the best of 15 candidates is biased upward: a gain inside the
noise is not evidence. ``rule="best"`` keeps the best validation score whatever its margin.

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
from molft.evaluate import PRIMARY_METRIC, higher_is_better, primary_score

MEMBER_KINDS = ("gnn", "forest", "boosted", "linear")
#: the member that reads a pretrained encoder's frozen embedding (none without an encoder)
EMBEDDING_MEMBER = "linear"
MODEL_CHOICES = ("auto", "ensemble", *MEMBER_KINDS)
#: how ``auto`` turns validation scores into a choice (see the module docstring)
BLEND_RULES = ("one-se", "best")
#: the member a candidate must beat by more than its noise under ``one-se``
REFERENCE_MEMBER = "forest"
#: bootstrap resamples of the validation molecules for the standard error of a gain
BOOTSTRAP = 200


def members_for(model: str, *, embedding: bool = True) -> tuple[str, ...]:
    """The member kinds a ``--model`` choice trains.

    ``embedding=False`` (no pretrained encoder, or instant mode, whose GNN members already are linear
    models on the frozen embedding) leaves out the ``linear`` member.

    Example:
        >>> members_for("auto"), members_for("auto", embedding=False)
        (('gnn', 'forest', 'boosted', 'linear'), ('gnn', 'forest', 'boosted'))
    """
    if model not in MODEL_CHOICES:
        raise InputError(f"unknown model {model!r}; choose one of: {', '.join(MODEL_CHOICES)}")
    if model == EMBEDDING_MEMBER and not embedding:
        raise InputError("--model linear is a linear model on a pretrained encoder's frozen embedding: it needs "
                         "--pretrained and --mode finetune (or use --mode frozen)")
    kinds = MEMBER_KINDS if model in ("auto", "ensemble") else (model,)
    return tuple(kind for kind in kinds if embedding or kind != EMBEDDING_MEMBER)


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
        rule: the rule ``auto`` applied (None for a forced model).
        gain: under ``one-se``, the best candidate's validation gain over the forest alone
            (signed: positive = better), with ``gain_se`` its bootstrap standard error.
    """

    weights: dict[str, float]
    metric: str
    valid_score: float
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""
    rule: str | None = None
    gain: float | None = None
    gain_se: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.weights, "metric": self.metric, "valid": self.valid_score,
                "reason": self.reason, "rule": self.rule, "gain": self.gain, "gain_se": self.gain_se,
                "candidates": self.candidates}


def describe_weights(weights: Mapping[str, float]) -> str:
    """``"gnn 0.25 + forest 0.75"``."""
    return " + ".join(f"{name} {weight:g}" for name, weight in weights.items()) if len(weights) > 1 else next(iter(weights))


def _weighted_scores(y: np.ndarray, scores: np.ndarray, weights: np.ndarray, task_type: str) -> np.ndarray:
    """The primary metric of one task under each row of ``weights`` ([resamples, n]: how often each
    molecule was drawn), for labelled ``y`` ([n]): ROC-AUC as the weighted Mann-Whitney statistic (ties
    count one half, as scikit-learn's), RMSE as the weighted root mean square. Equal to the metric on
    the resampled molecules; NaN where it is undefined (one class only)."""
    if task_type == "regression":
        return np.sqrt((weights * (y - scores) ** 2).sum(axis=1) / weights.sum(axis=1))
    order = np.argsort(scores, kind="stable")
    sorted_scores, positive = scores[order], y[order] == 1
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])  # tie groups, ascending
    w = weights[:, order]
    pos = np.add.reduceat(np.where(positive, w, 0), starts, axis=1)
    neg = np.add.reduceat(np.where(positive, 0, w), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, (pos * (below + 0.5 * neg)).sum(axis=1) / pairs, np.nan)


def bootstrap_gain(
    y: np.ndarray, candidate: np.ndarray, reference: np.ndarray, *, task_type: str, resamples: int = BOOTSTRAP,
    seed: int = 0,
) -> tuple[float, float]:
    """The paired gain of ``candidate`` over ``reference`` in the primary metric (signed so that
    positive is better) on the molecules of ``y``, and its bootstrap standard error: the sample std
    of the gain over ``resamples`` resamples of the molecules (a task whose metric is undefined in a
    resample, e.g. one class only, is left out of that resample's mean over tasks, as in
    :func:`molft.evaluate.primary_score`; a resample with none left is dropped; NaN with fewer than two).

    Vectorised over resamples (each a vector of draw counts), so hundreds of tasks cost seconds."""
    y, candidate, reference = (np.atleast_2d(np.asarray(a, float).T).T for a in (y, candidate, reference))
    sign = 1.0 if higher_is_better(PRIMARY_METRIC[task_type]) else -1.0
    gain = sign * (primary_score(y, candidate, task_type) - primary_score(y, reference, task_type))
    rng = np.random.default_rng(seed)
    n = len(y)
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)]).astype(float)
    per_task = []
    for task in range(y.shape[1]):
        known = ~np.isnan(y[:, task])
        weights = counts[:, known]
        drawn = weights.sum(axis=1) > 0
        difference = (_weighted_scores(y[known, task], candidate[known, task], weights, task_type)
                      - _weighted_scores(y[known, task], reference[known, task], weights, task_type))
        per_task.append(np.where(drawn, difference, np.nan))
    stacked = np.stack(per_task, axis=1)
    defined = np.isfinite(stacked).any(axis=1)
    gains = sign * np.nanmean(stacked[defined], axis=1)
    return float(gain), float(gains.std(ddof=1)) if len(gains) > 1 else float("nan")


def choose_blend(
    valid_predictions: Mapping[str, np.ndarray],
    y_valid: np.ndarray,
    *,
    task_type: str,
    model: str = "auto",
    step: float = 0.25,
    rule: str = "one-se",
) -> BlendChoice:
    """Choose the model to predict with from the members' validation predictions.

    Args:
        valid_predictions: member kind -> [num_valid, num_tasks] predictions, in member order.
        y_valid: [num_valid, num_tasks] labels (NaN = missing).
        task_type: ``"classification"`` or ``"regression"``.
        model: ``"auto"`` (grid search), ``"ensemble"`` (equal weights) or a member kind.
        step: the grid's weight step.
        rule: ``"one-se"`` (keep the forest unless the best candidate beats it by more than one
            bootstrap standard error on validation) or ``"best"`` (the best validation score); ``auto`` only.

    Returns:
        the choice, deterministic for the same inputs.
    """
    if rule not in BLEND_RULES:
        raise InputError(f"unknown blend rule {rule!r}; choose one of: {', '.join(BLEND_RULES)}")
    names = list(valid_predictions)
    metric = PRIMARY_METRIC[task_type]
    sign = 1.0 if higher_is_better(metric) else -1.0

    def score(weights: dict[str, float]) -> float:
        value = primary_score(y_valid, blend(valid_predictions, weights), task_type)
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
    if model != "auto":
        reason = (f"--model ensemble: equal weights over {', '.join(names)} (validation {metric} {best_score:.4f})"
                  if model == "ensemble" else f"--model {model}: that member alone (validation {metric} {best_score:.4f})")
        return BlendChoice(weights=dict(best), metric=metric, valid_score=best_score, candidates=candidates,
                           reason=reason)
    singles = {next(iter(w)): s for w, s in scored if len(w) == 1}
    best_single = max(singles, key=lambda n: sign * singles[n])
    grid_text = f"of {len(grid)} candidate blends (weights in steps of {step:g})"
    if len(best) == 1:
        reason = f"{describe_weights(best)} alone scored the best validation {metric} ({best_score:.4f}) {grid_text}"
    else:
        reason = (f"the blend {describe_weights(best)} scored validation {metric} {best_score:.4f}, better than "
                  f"the best single member ({best_single}, {singles[best_single]:.4f}), {grid_text}")
    choice = BlendChoice(weights=dict(best), metric=metric, valid_score=best_score, candidates=candidates,
                         reason=reason, rule=rule)
    reference = {REFERENCE_MEMBER: 1.0}
    if rule == "best" or REFERENCE_MEMBER not in names or best == reference:
        return choice
    gain, se = bootstrap_gain(y_valid, blend(valid_predictions, best), blend(valid_predictions, reference),
                              task_type=task_type)
    choice.gain, choice.gain_se = gain, se
    if np.isfinite(se) and gain > se:
        choice.reason += (f"; its gain over the {REFERENCE_MEMBER} alone ({gain:+.4f}) exceeds one bootstrap standard "
                          f"error ({se:.4f}, {BOOTSTRAP} resamples of the validation molecules)")
        return choice
    choice.weights, choice.valid_score = dict(reference), singles[REFERENCE_MEMBER]
    choice.reason = (f"the {REFERENCE_MEMBER} alone (validation {metric} {singles[REFERENCE_MEMBER]:.4f}): the best "
                     f"candidate, {describe_weights(best)} ({best_score:.4f}, {grid_text}), gains {gain:+.4f} over it, "
                     + (f"not more than one bootstrap standard error ({se:.4f}, {BOOTSTRAP} resamples of the validation "
                        "molecules)" if np.isfinite(se) else "and the validation split is too small to tell its "
                        "standard error")
                     + ", so the fixed-setting forest is kept (one-standard-error rule)")
    return choice
