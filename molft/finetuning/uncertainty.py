"""Uncertainty a chemist can use: intervals, calibrated probabilities, distance to the training set.

* :func:`conformal_halfwidths`: split-conformal prediction intervals for regression. On the
  validation split, the absolute residuals of the chosen model give, per task, the half-width
  ``q`` such that ``prediction ± q`` covers a new molecule's value with probability at least
  ``coverage`` when validation and new molecules are exchangeable (Vovk et al.; Lei et al. 2018):
  ``q`` is the ``ceil((n + 1) * coverage)``-th smallest of the ``n`` residuals. The validation
  split also chose the model, so the stated coverage is slightly optimistic; test coverage is
  measured and reported beside it. A scaffold split makes test molecules less like validation
  ones than exchangeability assumes: read the measured coverage.
* :class:`PlattCalibrator`: per-task logistic calibration of probabilities on the validation
  split (Platt 1999) - monotone, so ROC-AUC is unchanged; Brier score and expected calibration
  error are reported.
* :func:`nearest_similarity`: the Tanimoto similarity of each molecule's Morgan bits to its
  nearest training molecule (applicability domain: below ~0.4, the model extrapolates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def conformal_halfwidths(y: np.ndarray, predictions: np.ndarray, *, coverage: float = 0.9) -> list[float]:
    """Per task, the split-conformal half-width at ``coverage`` (inf with too few residuals).

    Args:
        y: [num_valid, num_tasks] labels (NaN = missing).
        predictions: [num_valid, num_tasks] the model's predictions.
        coverage: the interval's intended coverage, in (0, 1).
    """
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    widths = []
    for task in range(y.shape[1]):
        known = ~np.isnan(y[:, task])
        residuals = np.sort(np.abs(y[known, task] - predictions[known, task]))
        rank = math.ceil((len(residuals) + 1) * coverage)
        widths.append(float(residuals[rank - 1]) if rank <= len(residuals) else math.inf)
    return widths


def interval_coverage(y: np.ndarray, predictions: np.ndarray, halfwidths: list[float]) -> list[float]:
    """Per task, the share of labelled molecules whose value lies within ``prediction ± halfwidth``."""
    out = []
    for task, width in enumerate(halfwidths):
        known = ~np.isnan(y[:, task])
        inside = np.abs(y[known, task] - predictions[known, task]) <= width
        out.append(float(inside.mean()) if known.any() else math.nan)
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class PlattCalibrator:
    """``p' = sigmoid(a * logit(p) + b)`` per task (identity: a = 1, b = 0)."""

    a: tuple[float, ...]
    b: tuple[float, ...]

    @classmethod
    def fit(cls, y: np.ndarray, probabilities: np.ndarray) -> PlattCalibrator:
        """Fit on validation labels and probabilities; a task with one class stays uncalibrated, and so
        does one whose fitted slope is not positive (validation scores that do not rank its labels):
        a calibration may move probabilities but must never invert or erase the model's ranking."""
        from sklearn.linear_model import LogisticRegression

        a, b = [], []
        for task in range(y.shape[1]):
            known = ~np.isnan(y[:, task])
            labels = y[known, task]
            slope, intercept = 1.0, 0.0  # identity
            if len(np.unique(labels)) == 2:
                model = LogisticRegression(C=1.0).fit(_logit(probabilities[known, task])[:, None], labels.astype(int))
                if model.coef_[0, 0] > 0:
                    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
            a.append(slope)
            b.append(intercept)
        return cls(tuple(a), tuple(b))

    def transform(self, probabilities: np.ndarray) -> np.ndarray:
        z = _logit(probabilities) * np.asarray(self.a) + np.asarray(self.b)
        return 1 / (1 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return {"a": list(self.a), "b": list(self.b)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlattCalibrator:
        return cls(tuple(float(v) for v in data["a"]), tuple(float(v) for v in data["b"]))


def calibration_scores(y: np.ndarray, probabilities: np.ndarray, *, bins: int = 10) -> dict[str, float]:
    """Brier score and expected calibration error (equal-width bins), over all labelled entries."""
    known = ~np.isnan(y)
    labels, p = y[known], probabilities[known]
    if len(labels) == 0:
        return {"brier": math.nan, "ece": math.nan}
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(labels[which == k].mean() - p[which == k].mean()) * (which == k).mean()
              for k in range(bins) if (which == k).any())
    return {"brier": float(np.mean((p - labels) ** 2)), "ece": float(ece)}


def nearest_similarity(query: np.ndarray, reference: np.ndarray, *, chunk: int = 2048) -> np.ndarray:
    """For each query fingerprint, the largest Tanimoto similarity to any reference fingerprint.

    Args:
        query: [num_query, num_bits] 0/1.
        reference: [num_reference, num_bits] 0/1.

    Returns:
        [num_query] in [0, 1] (NaN without reference molecules; 0 for an empty query fingerprint).
    """
    if len(reference) == 0:
        return np.full(len(query), np.nan)
    ref = reference.astype(np.float32)
    ref_counts = ref.sum(axis=1)
    out = np.zeros(len(query))
    for start in range(0, len(query), chunk):
        q = query[start : start + chunk].astype(np.float32)
        shared = q @ ref.T
        union = q.sum(axis=1)[:, None] + ref_counts[None, :] - shared
        similarity = np.where(union > 0, shared / np.maximum(union, 1), 0.0)
        out[start : start + chunk] = similarity.max(axis=1)
    return out
