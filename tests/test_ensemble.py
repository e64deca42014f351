"""Choosing the model on validation, and the uncertainty that comes with it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from molft.errors import InputError
from molft.evaluate import primary_score
from molft.finetuning.choice import choose_model
from molft.finetuning.ensemble import blend, bootstrap_gain, choose_blend, members_for, weight_grid
from molft.finetuning.uncertainty import (
    PlattCalibrator,
    calibration_scores,
    conformal_halfwidths,
    interval_coverage,
    nearest_similarity,
)

RNG = np.random.default_rng(0)


def test_the_grid_holds_every_single_member_and_sums_to_one():
    grid = weight_grid(["gnn", "forest", "boosted"], step=0.25)
    assert len(grid) == 15
    assert {"gnn": 1.0} in grid and {"forest": 0.25, "boosted": 0.75} in grid
    assert all(math.isclose(sum(w.values()), 1.0) for w in grid)
    with pytest.raises(InputError, match="step must divide 1"):
        weight_grid(["a"], step=0.3)


def test_model_choices_name_their_members():
    assert members_for("auto") == members_for("ensemble") == ("gnn", "forest", "boosted", "linear")
    assert members_for("auto", embedding=False) == ("gnn", "forest", "boosted")  # no encoder to read frozen
    assert members_for("forest") == ("forest",)
    with pytest.raises(InputError, match="--model linear .* needs --pretrained"):
        members_for("linear", embedding=False)
    with pytest.raises(InputError, match="unknown model 'svm'; choose one of: auto, ensemble, gnn"):
        members_for("svm")


def _regression(n=100):
    y = RNG.normal(size=(n, 1))
    good = y + RNG.normal(scale=0.3, size=y.shape)
    other = y + RNG.normal(scale=0.3, size=y.shape)  # independent errors: the blend is better
    bad = RNG.normal(size=y.shape)
    return y, {"gnn": bad, "forest": good, "boosted": other}


def test_auto_prefers_a_blend_of_members_whose_errors_differ_and_is_deterministic():
    y, predictions = _regression()
    first = choose_blend(predictions, y, task_type="regression")
    again = choose_blend(dict(predictions), y.copy(), task_type="regression")
    assert first.weights == again.weights and first.valid_score == again.valid_score
    assert set(first.weights) == {"forest", "boosted"} and "better than the best single member" in first.reason
    assert first.candidates[0]["valid"] == first.valid_score
    assert all(first.valid_score <= c["valid"] for c in first.candidates)  # RMSE: lower is better


def test_one_se_keeps_the_forest_unless_the_gain_exceeds_its_noise():
    y = RNG.normal(size=(60, 1))
    forest = y + RNG.normal(scale=0.5, size=y.shape)
    slightly = forest + RNG.normal(scale=0.02, size=y.shape)  # a gain, if any, well inside the noise
    predictions = {"gnn": slightly, "forest": forest}
    best = choose_blend(predictions, y, task_type="regression", rule="best")
    kept = choose_blend(predictions, y, task_type="regression")
    assert best.weights != {"forest": 1.0} and best.rule == "best" and best.gain is None
    assert kept.weights == {"forest": 1.0} and kept.rule == "one-se"
    assert 0 < kept.gain <= kept.gain_se and "one-standard-error rule" in kept.reason
    assert kept.valid_score == next(c["valid"] for c in kept.candidates if c["weights"] == {"forest": 1.0})
    assert choose_blend(dict(predictions), y.copy(), task_type="regression").to_dict() == kept.to_dict()

    y, predictions = _regression()  # forest + boosted, independent errors: a clear gain
    clear = choose_blend(predictions, y, task_type="regression")
    assert set(clear.weights) == {"forest", "boosted"} and clear.gain > clear.gain_se > 0
    assert "exceeds one bootstrap standard error" in clear.reason
    with pytest.raises(InputError, match="unknown blend rule"):
        choose_blend(predictions, y, task_type="regression", rule="vote")


def test_bootstrap_gain_is_signed_so_that_positive_is_better():
    y = np.array([[0.0], [1.0]] * 20)
    perfect, random_ = y * 0.8 + 0.1, RNG.uniform(size=y.shape)
    gain, se = bootstrap_gain(y, perfect, random_, task_type="classification")
    assert gain > 0 and se >= 0
    rmse_gain, _ = bootstrap_gain(y, y, y + 1.0, task_type="regression")
    assert rmse_gain == pytest.approx(1.0)


@pytest.mark.parametrize("task_type", ["classification", "regression"])
def test_bootstrap_gain_equals_the_metric_on_each_resample(task_type):
    rng = np.random.default_rng(3)
    shape = (40, 3)
    y = (rng.uniform(size=shape) < 0.2).astype(float) if task_type == "classification" else rng.normal(size=shape)
    y[rng.uniform(size=shape) < 0.25] = np.nan  # missing labels, and resamples where a task has one class
    candidate, reference = np.round(rng.uniform(size=shape), 1), rng.uniform(size=shape)  # ties in candidate
    gain, se = bootstrap_gain(y, candidate, reference, task_type=task_type, resamples=50, seed=7)

    draws, direct = np.random.default_rng(7), []
    for _ in range(50):  # the same resamples, scored molecule by molecule with scikit-learn
        rows = draws.integers(0, len(y), len(y))
        difference = primary_score(y[rows], candidate[rows], task_type) - primary_score(y[rows], reference[rows], task_type)
        direct.append(difference if task_type == "classification" else -difference)
    direct = np.asarray(direct)[np.isfinite(direct)]
    assert se == pytest.approx(direct.std(ddof=1), abs=1e-12)
    sign = 1 if task_type == "classification" else -1
    assert gain == pytest.approx(sign * (primary_score(y, candidate, task_type) - primary_score(y, reference, task_type)))


def test_a_tie_goes_to_fewer_members():
    y = np.array([[0.0], [1.0], [0.0], [1.0]])
    same = np.array([[0.2], [0.9], [0.1], [0.8]])
    choice = choose_blend({"gnn": same, "forest": same.copy()}, y, task_type="classification", rule="best")
    assert choice.weights == {"gnn": 1.0}


def test_forced_and_equal_weight_models():
    y, predictions = _regression()
    assert choose_blend(predictions, y, task_type="regression", model="gnn").weights == {"gnn": 1.0}
    equal = choose_blend(predictions, y, task_type="regression", model="ensemble")
    assert equal.weights == {name: pytest.approx(1 / 3) for name in predictions}
    np.testing.assert_allclose(blend(predictions, equal.weights), np.mean(list(predictions.values()), axis=0))


def test_conformal_halfwidth_is_the_finite_sample_quantile():
    residuals = np.arange(1, 20, dtype=float)[:, None]  # 19 residuals: rank ceil(20 * 0.9) = 18
    assert conformal_halfwidths(residuals, np.zeros_like(residuals), coverage=0.9) == [18.0]
    assert conformal_halfwidths(residuals[:5], np.zeros((5, 1)), coverage=0.9) == [math.inf]  # too few
    with pytest.raises(ValueError):
        conformal_halfwidths(residuals, residuals, coverage=1.0)


def test_conformal_intervals_cover_exchangeable_molecules():
    y = RNG.normal(size=(4000, 1))
    prediction = y + RNG.normal(scale=0.5, size=y.shape)
    widths = conformal_halfwidths(y[:2000], prediction[:2000], coverage=0.9)
    assert interval_coverage(y[2000:], prediction[2000:], widths)[0] == pytest.approx(0.9, abs=0.02)


def test_platt_calibration_fixes_overconfidence_and_keeps_the_ranking():
    truth = RNG.uniform(size=(2000, 1))
    y = (RNG.uniform(size=truth.shape) < truth).astype(float)
    overconfident = 1 / (1 + np.exp(-4 * (np.log(truth / (1 - truth)))))
    calibrator = PlattCalibrator.fit(y[:1000], overconfident[:1000])
    calibrated = calibrator.transform(overconfident[1000:])
    before = calibration_scores(y[1000:], overconfident[1000:])
    after = calibration_scores(y[1000:], calibrated)
    assert after["ece"] < before["ece"] and after["brier"] < before["brier"]
    order = np.argsort(overconfident[1000:, 0], kind="stable")
    assert (np.diff(calibrated[order, 0]) >= 0).all()  # monotone: the ranking (ROC-AUC) is unchanged
    again = PlattCalibrator.from_dict(calibrator.to_dict())
    np.testing.assert_array_equal(again.transform(overconfident), calibrator.transform(overconfident))


def test_one_class_validation_leaves_probabilities_uncalibrated():
    calibrator = PlattCalibrator.fit(np.ones((5, 1)), np.full((5, 1), 0.7))
    np.testing.assert_allclose(calibrator.transform(np.array([[0.7]])), 0.7)


def test_validation_scores_that_rank_backwards_never_invert_the_ranking():
    """HIV at 100 labels had a seed whose validation set ranked the boosted member backwards: Platt's
    negative slope turned its test ROC-AUC 0.447 into 0.553. Such a task now stays uncalibrated."""
    scores = np.linspace(0.05, 0.95, 40)[:, None]
    backwards = (scores[:, 0] < 0.5).astype(float)[:, None]
    calibrator = PlattCalibrator.fit(backwards, scores)
    assert calibrator.a == (1.0,) and calibrator.b == (0.0,)
    np.testing.assert_allclose(calibrator.transform(scores), scores)


def test_nearest_similarity_is_the_largest_tanimoto():
    reference = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.uint8)
    query = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=np.uint8)
    np.testing.assert_allclose(nearest_similarity(query, reference), [1.0, 1 / 3, 0.0])
    assert np.isnan(nearest_similarity(query, reference[:0])).all()


def test_choose_model_calibrates_classification_and_sizes_regression_intervals():
    y, predictions = _regression(200)
    split = {"valid": np.arange(100), "test": np.arange(100, 200)}
    scores = {part: {k: v[idx] for k, v in predictions.items()} for part, idx in split.items()}
    chosen = choose_model(scores, y, split, task_type="regression", model="auto", coverage=0.9, targets=["y"])
    assert chosen.halfwidths and chosen.metrics["intervals"]["coverage"] == 0.9
    assert 0.7 <= chosen.metrics["intervals"]["test_coverage"][0] <= 1.0
    assert chosen.config["weights"] == chosen.weights and "calibration" not in chosen.config

    labels = (y > 0).astype(float)
    probabilities = {part: {k: 1 / (1 + np.exp(-3 * v)) for k, v in per.items()} for part, per in scores.items()}
    chosen = choose_model(probabilities, labels, split, task_type="classification", model="auto", coverage=0.9,
                          targets=["y"])
    assert chosen.halfwidths is None and set(chosen.config["calibration"]) == {"a", "b"}
    assert chosen.metrics["test"]["roc_auc"] > 0.8
