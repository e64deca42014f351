"""The model a fine-tuned directory predicts with: the validation-chosen blend, its calibration
or intervals, and what to record about it (``finetune.json``'s ``model``, ``metrics.json``'s ``model``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from molft.evaluate import CLASSIFICATION, evaluate
from molft.finetuning.ensemble import blend, choose_blend
from molft.finetuning.uncertainty import (
    PlattCalibrator,
    calibration_scores,
    conformal_halfwidths,
    interval_coverage,
)


@dataclass
class ModelChoice:
    """The chosen model and its uncertainty.

    Attributes:
        weights: member kind -> weight.
        predictions: ``"valid"`` / ``"test"`` -> [n, num_tasks] final predictions (calibrated
            probabilities, or values).
        halfwidths: per task, the interval half-width (regression), else None.
        config: what prediction needs (``finetune.json``).
        metrics: what a person reads (``metrics.json``).
    """

    weights: dict[str, float]
    predictions: dict[str, np.ndarray]
    halfwidths: list[float] | None
    config: dict[str, Any]
    metrics: dict[str, Any]


def choose_model(
    member_scores: Mapping[str, Mapping[str, np.ndarray]],
    y: np.ndarray,
    split: Mapping[str, np.ndarray],
    *,
    task_type: str,
    model: str,
    coverage: float,
    targets: list[str],
) -> ModelChoice:
    """Choose the blend on validation, then calibrate it (classification) or size its intervals
    (regression) on validation, and score everything on validation and test.

    Args:
        member_scores: ``"valid"`` / ``"test"`` -> member kind -> [n, num_tasks] predictions.
        y: [num_molecules, num_tasks] labels; ``split`` indexes it.
        task_type: ``"classification"`` or ``"regression"``.
        model: the ``--model`` choice.
        coverage: the intervals' intended coverage.
        targets: task names for the metrics.
    """
    y_valid, y_test = y[split["valid"]], y[split["test"]]
    choice = choose_blend(member_scores["valid"], y_valid, task_type=task_type, model=model)
    raw = {part: blend(member_scores[part], choice.weights) for part in ("valid", "test")}
    config: dict[str, Any] = {"choice": model, "weights": choice.weights, "reason": choice.reason}
    record: dict[str, Any] = {"choice": model, **choice.to_dict()}
    halfwidths = None
    if task_type == CLASSIFICATION:
        calibrator = PlattCalibrator.fit(y_valid, raw["valid"])
        final = {part: calibrator.transform(raw[part]) for part in raw}
        config["calibration"] = calibrator.to_dict()
        record["calibration"] = {
            "method": "Platt scaling per task on the validation split",
            "test_before": calibration_scores(y_test, raw["test"]),
            "test_after": calibration_scores(y_test, final["test"]),
        }
    else:
        final = raw
        halfwidths = conformal_halfwidths(y_valid, raw["valid"], coverage=coverage)
        config.update(halfwidths=halfwidths, coverage=coverage)
        record["intervals"] = {
            "method": "split-conformal on the validation split (absolute residuals)",
            "coverage": coverage, "halfwidths": halfwidths,
            "test_coverage": interval_coverage(y_test, raw["test"], halfwidths),
        }
    for part, labels in (("valid", y_valid), ("test", y_test)):
        record[part] = evaluate(labels, final[part], task_type, targets)
    return ModelChoice(weights=choice.weights, predictions=final, halfwidths=halfwidths, config=config, metrics=record)
