"""The fine-tuning recipe and metrics: pure functions, one story each."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from molft.errors import InputError
from molft.evaluate import evaluate, infer_task_type, task_metric
from molft.finetuning.recipe import (
    HU2020_PROTOCOL,
    Recipe,
    TargetScaler,
    apply_overrides,
    choose_recipe,
    parameter_groups,
    positive_weights,
    unfrozen_blocks,
)
from molft.training import lr_factor


def test_freezing_is_chosen_by_the_number_of_labels():
    assert choose_recipe(50, pretrained=True).freeze_encoder
    few = choose_recipe(500, pretrained=True)
    many = choose_recipe(5000, pretrained=True)
    assert not few.freeze_encoder and few.encoder_lr < many.encoder_lr < few.head_lr
    scratch = choose_recipe(500, pretrained=False)
    assert scratch.encoder_lr == scratch.head_lr and scratch.max_epochs > few.max_epochs


def test_learning_rate_warms_up_then_decays_to_zero():
    factors = [lr_factor(step, total_steps=100, warmup_steps=10) for step in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert lr_factor(100, 100, 10) == pytest.approx(0.0)


def test_parameter_groups_give_the_head_a_larger_rate_and_skip_a_frozen_encoder():
    encoder, head = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
    groups = parameter_groups(encoder, head, choose_recipe(500, pretrained=True))
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["encoder"] == 1e-4 and rates["head"] == 1e-3
    assert next(g for g in groups if g["name"] == "head-no-decay")["weight_decay"] == 0.0
    frozen = parameter_groups(encoder, head, choose_recipe(50, pretrained=True))
    assert {g["name"] for g in frozen} == {"head", "head-no-decay"}


def test_task_type_and_class_weights_ignore_missing_labels():
    y = np.array([[1, 0], [0, np.nan], [0, 1], [0, 1]], dtype=float)
    assert infer_task_type(y) == "classification"
    assert infer_task_type(np.array([[5.1], [np.nan], [6.0]])) == "regression"
    assert positive_weights(y).tolist() == [3.0, 1.0]
    with pytest.raises(InputError, match="no labels"):
        infer_task_type(np.full((3, 1), np.nan))


def test_target_scaler_round_trips():
    y = np.array([[1.0, 10.0], [3.0, np.nan], [5.0, 30.0]])
    scaler = TargetScaler.fit(y)
    z = scaler.transform(y)
    assert np.nanmean(z, axis=0) == pytest.approx([0, 0])
    assert np.allclose(scaler.inverse(z), y, equal_nan=True)


def test_metrics_skip_missing_labels_and_single_class_tasks():
    y_true = np.array([[1, 0], [0, 0], [1, np.nan], [0, 0]], dtype=float)
    y_score = np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.9], [0.3, 0.1]])
    result = evaluate(y_true, y_score, "classification", ["a", "b"])
    assert result["per_task"]["a"]["roc_auc"] == 1.0
    assert math.isnan(result["per_task"]["b"]["roc_auc"])  # one class only: undefined, not 0.5
    assert result["roc_auc"] == 1.0
    assert task_metric("rmse", np.array([1.0, np.nan, 3.0]), np.array([2.0, 100.0, 3.0])) == pytest.approx(
        math.sqrt(0.5)
    )


def test_hu2020_protocol_is_constant_rate_last_epoch_and_unweighted():
    assert [lr_factor(step, 1000, 0, HU2020_PROTOCOL.schedule) for step in (0, 500, 999)] == [1.0, 1.0, 1.0]
    assert HU2020_PROTOCOL.select == "last" and not HU2020_PROTOCOL.positive_weighting
    assert (HU2020_PROTOCOL.max_epochs, HU2020_PROTOCOL.batch_size, HU2020_PROTOCOL.dropout) == (100, 32, 0.5)
    with pytest.raises(InputError, match="unknown schedule"):
        Recipe("x", 1e-3, 1e-3, schedule="linear")


def test_gradual_unfreezing_opens_one_block_per_epoch_from_the_top():
    assert [unfrozen_blocks(epoch, 6, gradual=True) for epoch in range(8)] == [0, 1, 2, 3, 4, 5, 6, 6]
    assert unfrozen_blocks(0, 6, gradual=False) == 6


def test_overrides_replace_recipe_settings_and_asking_to_train_unfreezes_the_encoder():
    frozen = choose_recipe(50, pretrained=True)
    assert frozen.freeze_encoder and frozen.encoder_lr == 0.0
    assert apply_overrides(frozen, max_epochs=5, head_lr=None) == Recipe(**{**frozen.to_dict(), "max_epochs": 5})
    unfrozen = apply_overrides(frozen, freeze_encoder=False)
    assert not unfrozen.freeze_encoder and unfrozen.encoder_lr == 1e-4
    assert not apply_overrides(frozen, gradual_unfreezing=True).freeze_encoder
    with pytest.raises(InputError, match="not recipe settings: dropout"):
        apply_overrides(frozen, dropout=0.3)


def test_gradient_clipping_is_a_recorded_recipe_setting():
    assert choose_recipe(500, pretrained=True).to_dict()["max_grad_norm"] == 5.0
    assert HU2020_PROTOCOL.max_grad_norm == 5.0  # molft clips Hu et al.'s protocol too (a stated difference)
    with pytest.raises(InputError, match="max_grad_norm"):
        Recipe("x", encoder_lr=1e-4, head_lr=1e-3, max_grad_norm=0.0)
