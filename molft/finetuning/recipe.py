"""The fine-tuning recipe as small pure functions: each choice can be read, tested and overridden.

Defaults follow what the literature and practice agree on for adapting a pretrained GNN
(Hu et al. 2020; ULMFiT/BERT-style transfer): a small learning rate for the pretrained encoder and
a larger one for the new head, linear warmup then cosine decay, how much to train chosen by how
many labels there are, early stopping on validation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from molft.errors import InputError
from molft.evaluate import CLASSIFICATION
from molft.training import SCHEDULES

SELECTIONS = ("best", "last")
#: the recipe settings a user (CLI option or keyword) may override
OVERRIDABLE = ("max_epochs", "batch_size", "encoder_lr", "head_lr", "freeze_encoder", "focal_gamma",
               "gradual_unfreezing")


@dataclass(frozen=True)
class Recipe:
    """How to train: learning rates, freezing, schedule and stopping.

    Attributes:
        name: which regime this is (for the record).
        encoder_lr: learning rate of the encoder (0 with ``freeze_encoder``).
        head_lr: learning rate of the new head.
        freeze_encoder: train the head only.
        weight_decay: AdamW weight decay.
        warmup_fraction: share of steps with linear warmup.
        max_epochs: the cap.
        patience: epochs without validation improvement before stopping.
        batch_size: molecules per step.
        dropout: encoder dropout while fine-tuning.
        schedule: ``"cosine"`` (warmup then cosine decay) or ``"constant"``.
        select: ``"best"`` (restore the best-validation epoch) or ``"last"`` (keep the final epoch).
        positive_weighting: weight positives by negatives/positives per task (classification).
        focal_gamma: focal loss exponent for classification (0: plain binary cross-entropy).
        gradual_unfreezing: train the head alone first, then unfreeze one more encoder block
            (top layer first, the atom embedding last) each epoch (ULMFiT).
        max_grad_norm: clip the gradients' global norm to this (None: no clipping).
        auxiliary_weight: weight of an auxiliary loss: the training molecules' label-free targets
            (``dataset.auxiliary_y``, e.g. the scaled RDKit descriptors the encoder was pretrained
            to regress) regressed from the pooled embedding by a second head that is dropped
            after training, so fine-tuning keeps what pretraining taught (0: none). Measured
            in ``benchmarks.label_efficiency --auxiliary`` (README), not part of ``molft finetune``.
    """

    name: str
    encoder_lr: float
    head_lr: float
    freeze_encoder: bool = False
    weight_decay: float = 1e-2
    warmup_fraction: float = 0.06
    max_epochs: int = 40
    patience: int = 8
    batch_size: int = 32
    dropout: float = 0.1
    schedule: str = "cosine"
    select: str = "best"
    positive_weighting: bool = True
    focal_gamma: float = 0.0
    gradual_unfreezing: bool = False
    max_grad_norm: float | None = 5.0
    auxiliary_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise InputError(f"unknown schedule {self.schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.select not in SELECTIONS:
            raise InputError(f"unknown selection {self.select!r}; choose one of: {', '.join(SELECTIONS)}")
        if not self.focal_gamma >= 0:
            raise InputError(f"focal_gamma must be >= 0, got {self.focal_gamma!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise InputError(f"max_grad_norm must be > 0 or None, got {self.max_grad_norm!r}")
        if not self.auxiliary_weight >= 0:
            raise InputError(f"auxiliary_weight must be >= 0, got {self.auxiliary_weight!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def choose_recipe(num_labels: int, pretrained: bool) -> Recipe:
    """Pick the recipe by how many labelled training molecules there are.

    Pretrained encoder: under 100 labels, freeze it and train the head; 100-1,000, all layers at a
    small rate (1e-4); over 1,000, all layers at a moderate rate (3e-4). The head always gets 1e-3.
    From scratch: every layer at 1e-3, more epochs and patience, as a from-scratch GNN needs.
    """
    if not pretrained:
        return Recipe("scratch", encoder_lr=1e-3, head_lr=1e-3, max_epochs=100, patience=20, dropout=0.2)
    if num_labels < 100:
        return Recipe("frozen-encoder", encoder_lr=0.0, head_lr=1e-3, freeze_encoder=True, max_epochs=60, patience=12)
    if num_labels <= 1000:
        return Recipe("full-small-lr", encoder_lr=1e-4, head_lr=1e-3)
    return Recipe("full-moderate-lr", encoder_lr=3e-4, head_lr=1e-3)


#: Hu et al. 2020's fine-tuning protocol (pretrain-gnns ``finetune.py`` defaults): Adam at 1e-3
#: for every layer, no weight decay, constant rate, batch 32, dropout 0.5, 100 epochs, plain
#: binary cross-entropy, and the model of the final epoch (no early stopping).
HU2020_PROTOCOL = Recipe(
    "hu2020", encoder_lr=1e-3, head_lr=1e-3, weight_decay=0.0, warmup_fraction=0.0, max_epochs=100,
    patience=100, batch_size=32, dropout=0.5, schedule="constant", select="last", positive_weighting=False,
)


def apply_overrides(recipe: Recipe, **overrides: Any) -> Recipe:
    """``recipe`` with the user's overrides (None = keep the recipe's), made consistent.

    Asking for the encoder to train (``freeze_encoder=False``, or gradual unfreezing without
    ``freeze_encoder``) unfreezes a recipe that freezes it, and an encoder that trains at rate 0
    gets 1e-4, the small-data rate.

    Example:
        >>> apply_overrides(choose_recipe(50, pretrained=True), freeze_encoder=False).encoder_lr
        0.0001

    Raises:
        InputError: an override that is not a recipe setting (see :data:`OVERRIDABLE`).
    """
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise InputError(f"not recipe settings: {', '.join(unknown)}; choose from: {', '.join(OVERRIDABLE)}")
    given = {key: value for key, value in overrides.items() if value is not None}
    recipe = replace(recipe, **given)
    freeze = overrides.get("freeze_encoder")
    if (freeze is False or (overrides.get("gradual_unfreezing") and freeze is None)) and recipe.freeze_encoder:
        recipe = replace(recipe, freeze_encoder=False)
    if not recipe.freeze_encoder and recipe.encoder_lr == 0.0:
        recipe = replace(recipe, encoder_lr=1e-4)
    return recipe


def unfrozen_blocks(epoch: int, num_blocks: int, gradual: bool) -> int:
    """How many of the encoder's top blocks train in ``epoch`` (0-based).

    All of them, or with gradual unfreezing none in the first epoch (head only) and one more each
    epoch after.

    Example:
        >>> [unfrozen_blocks(epoch, 3, gradual=True) for epoch in range(5)]
        [0, 1, 2, 3, 3]
    """
    return min(num_blocks, epoch) if gradual else num_blocks


def parameter_groups(encoder: torch.nn.Module, head: torch.nn.Module, recipe: Recipe) -> list[dict]:
    """AdamW parameter groups: the encoder at ``encoder_lr`` (absent when frozen), the head at ``head_lr``.

    Biases and normalisation parameters get no weight decay.
    """
    groups = []
    for module, lr, name in ((encoder, recipe.encoder_lr, "encoder"), (head, recipe.head_lr, "head")):
        if name == "encoder" and recipe.freeze_encoder:
            continue
        decay = [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim <= 1]
        groups.append({"params": decay, "lr": lr, "weight_decay": recipe.weight_decay, "name": name})
        groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{name}-no-decay"})
    return [g for g in groups if g["params"]]


def positive_weights(y: np.ndarray, cap: float = 100.0) -> np.ndarray:
    """Per-task weight of positives in the loss: negatives / positives, at least 1, at most ``cap``.

    Args:
        y: [num_molecules, num_tasks] 0/1 labels, NaN = missing.
    """
    positives = np.nansum(y == 1, axis=0).astype(float)
    negatives = np.nansum(y == 0, axis=0).astype(float)
    return np.clip(negatives / np.maximum(positives, 1.0), 1.0, cap)


@dataclass(frozen=True)
class TargetScaler:
    """Per-task standardisation of regression targets (fitted on training labels only)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, y: np.ndarray) -> TargetScaler:
        mean = np.nanmean(y, axis=0)
        std = np.nanstd(y, axis=0)
        std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        return cls(tuple(float(m) for m in mean), tuple(float(s) for s in std))

    def transform(self, y: np.ndarray) -> np.ndarray:
        return (y - np.asarray(self.mean)) / np.asarray(self.std)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * np.asarray(self.std) + np.asarray(self.mean)


def to_user_units(raw: np.ndarray, task_type: str, scaler: TargetScaler | None) -> np.ndarray:
    """A model's raw outputs in the user's units: probabilities (classification), or values with
    the target scaling undone (regression)."""
    if task_type == CLASSIFICATION:
        return expit(raw)
    return scaler.inverse(raw) if scaler is not None else raw
