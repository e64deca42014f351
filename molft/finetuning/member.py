"""One ensemble member: a model, a dataset, a split, a task type and a recipe in; a trained model out.

:func:`train_member` is the fine-tuning loop (on :func:`molft.training.run_epoch`): AdamW with
the recipe's parameter groups, warmup + cosine, validation every epoch, early stopping, the best
epoch restored, and an exact resume from a per-epoch checkpoint. :func:`new_member` builds the
model it starts from; :func:`predict_scores` reads a model's outputs in the user's units.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from molft.checkpoints import load_encoder, load_training_state, save_training_state
from molft.data.dataset import GraphDataset
from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, PRIMARY_METRIC, evaluate, improves
from molft.finetuning.recipe import (
    Recipe,
    TargetScaler,
    parameter_groups,
    positive_weights,
    to_user_units,
    unfrozen_blocks,
)
from molft.models.encoder import EncoderConfig, GINEncoder
from molft.models.heads import PropertyModel
from molft.runtime import rng_state, seed_everything, set_rng_state
from molft.training import lr_scheduler, predict_batches, run_epoch


def masked_loss(
    logits: torch.Tensor, y: torch.Tensor, task_type: str, pos_weight: torch.Tensor | None, focal_gamma: float = 0.0
) -> torch.Tensor:
    """Mean loss over labelled entries only: BCE with positive weights, or MSE on scaled targets.

    Args:
        logits: [num_graphs, num_tasks].
        y: [num_graphs, num_tasks], NaN = missing.
        pos_weight: [num_tasks] weight of positive labels (classification), or None.
        focal_gamma: > 0 scales each BCE term by ``(1 - p_t) ** gamma`` (focal loss, Lin et al.
            2017), so well-classified molecules count less.
    """
    labelled = ~torch.isnan(y)
    target = torch.where(labelled, y, torch.zeros_like(y))
    if task_type == CLASSIFICATION:
        losses = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")
        if focal_gamma > 0:
            probability = torch.sigmoid(logits)
            p_true = torch.where(target > 0.5, probability, 1.0 - probability)
            losses = losses * (1.0 - p_true).pow(focal_gamma)
    else:
        losses = (logits - target) ** 2
    return (losses * labelled).sum() / labelled.sum().clamp(min=1)


def predict_scores(
    model: PropertyModel, loader: DataLoader, task_type: str, scaler: TargetScaler | None, device: torch.device | str
) -> np.ndarray:
    """Predictions in the user's units (:func:`~molft.finetuning.recipe.to_user_units`)."""
    model.eval()
    return to_user_units(predict_batches(model, loader, device), task_type, scaler)


def build_model(
    pretrained: Path | None, *, num_tasks: int, vocabulary: str, dropout: float,
    architecture: EncoderConfig | None = None, molecule_features: int = 0, pooling: str = "mean",
) -> PropertyModel:
    """A property model: the pretrained encoder (its dropout set to ``dropout``) or, with
    ``pretrained=None``, a fresh GIN of ``architecture`` (default 5 x 300), under a new head that
    reads the ``pooling`` of the atoms (:class:`molft.models.heads.GraphPooling`).

    Raises:
        InputError: the encoder was pretrained on another feature vocabulary than the data's.
    """
    if pretrained is None:
        encoder = GINEncoder(replace(architecture or EncoderConfig(), vocabulary=vocabulary, dropout=dropout))
        return PropertyModel(encoder, num_tasks, pooling, molecule_features=molecule_features)
    encoder, _ = load_encoder(pretrained)
    if encoder.config.vocabulary != vocabulary:
        raise InputError(
            f"{pretrained} was pretrained with the {encoder.config.vocabulary!r} vocabulary but the data is "
            f"featurized with {vocabulary!r}; featurize with --vocab {encoder.config.vocabulary}"
        )
    encoder.config = replace(encoder.config, dropout=dropout)  # forward reads the rate from its config
    return PropertyModel(encoder, num_tasks, pooling, molecule_features=molecule_features)


def new_member(
    pretrained: Path | None, *, seed: int, num_tasks: int, vocabulary: str, recipe: Recipe,
    architecture: EncoderConfig | None = None, molecule_features: int = 0, pooling: str = "mean",
) -> PropertyModel:
    """Seed every generator with ``seed``, then :func:`build_model`: the model a member starts from.

    Seeding first makes a from-scratch member's initial weights (and the dropout draws of
    :func:`train_member` after it) a function of ``seed``.
    """
    seed_everything(seed)
    return build_model(pretrained, num_tasks=num_tasks, vocabulary=vocabulary, dropout=recipe.dropout,
                       architecture=architecture, molecule_features=molecule_features, pooling=pooling)


def train_member(
    model: PropertyModel,
    dataset: GraphDataset,
    split: dict[str, np.ndarray],
    *,
    task_type: str,
    recipe: Recipe,
    seed: int,
    scaler: TargetScaler | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    log: list[dict] | None = None,
    checkpoint: Path | None = None,
) -> tuple[PropertyModel, dict[str, Any]]:
    """Train one ensemble member with early stopping on validation; restore the best epoch.

    Args:
        model: the model to train (e.g. from :func:`new_member`); trained in place.
        dataset: graphs with ``y`` ([num_graphs, num_tasks], NaN = missing), in the user's units.
        split: train/valid/test indices into ``dataset``.
        task_type: ``"classification"`` or ``"regression"``.
        recipe: learning rates, epochs, patience, freezing, clipping.
        seed: data order (and, through torch's global generator as the caller left it, dropout).
        scaler: regression target scaling (None for classification).
        device: where to train.
        progress: show a progress bar per epoch.
        log: per-epoch records (seed, epoch, train loss, validation metric) are appended here.
        checkpoint: a file to save the state to after every epoch; when it exists, training
            continues from it and ends with the same weights as an uninterrupted run.

    Returns:
        the model at its best validation epoch (or its last, with ``recipe.select == "last"``;
        eval mode) and ``best_epoch``, the validation metric there, ``epochs_run`` and ``selected``.
    """
    log = [] if log is None else log
    device = torch.device(device)
    y = dataset.y.numpy()
    train_data = dataset
    if scaler is not None:
        train_data = copy.copy(dataset)
        train_data.y = torch.from_numpy(scaler.transform(y).astype(np.float32))
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train_data.subset(split["train"]), batch_size=recipe.batch_size, shuffle=True,
                              generator=generator, drop_last=len(split["train"]) > recipe.batch_size)
    valid_loader = DataLoader(dataset.subset(split["valid"]), batch_size=256)

    auxiliary_head = _auxiliary_head(model, dataset, recipe)
    model.to(device)
    if recipe.freeze_encoder:
        model.encoder.requires_grad_(False)
    after_encoder = model.readout if auxiliary_head is None else torch.nn.ModuleList([model.readout, auxiliary_head])
    optimizer = torch.optim.AdamW(parameter_groups(model.encoder, after_encoder.to(device), recipe))
    total = recipe.max_epochs * max(1, len(train_loader))
    scheduler = lr_scheduler(optimizer, schedule=recipe.schedule, total_steps=total,
                             warmup_steps=int(recipe.warmup_fraction * total))
    pos_weight = (
        torch.as_tensor(positive_weights(y[split["train"]]), dtype=torch.float32, device=device)
        if task_type == CLASSIFICATION and recipe.positive_weighting else None
    )
    metric = PRIMARY_METRIC[task_type]
    state = {"epoch": 0, "best_epoch": -1, "best_value": math.nan, "best_state": None, "stale": 0, "log": []}
    if checkpoint is not None and checkpoint.is_file():
        saved = load_training_state(checkpoint)
        if saved.get("seed") != seed:
            raise InputError(f"{checkpoint}: holds seed {saved.get('seed')}, not {seed}; delete it to start over")
        model.load_state_dict(saved["model"])
        if auxiliary_head is not None:
            auxiliary_head.load_state_dict(saved["auxiliary_head"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        set_rng_state(saved["rng"])
        state = {key: saved[key] for key in state}
        log.extend(state["log"])

    def loss_of(batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        if auxiliary_head is None:
            return masked_loss(model(batch), batch.y, task_type, pos_weight, recipe.focal_gamma), {}
        embedding = model.embed(batch)
        task = masked_loss(model.predict_from(embedding, batch), batch.y, task_type, pos_weight, recipe.focal_gamma)
        auxiliary = F.mse_loss(auxiliary_head(embedding), batch.auxiliary_y)
        logs = {"task_loss": float(task.detach()), "auxiliary_loss": float(auxiliary.detach())}
        return task + recipe.auxiliary_weight * auxiliary, logs

    stopped = state["stale"] >= recipe.patience
    blocks = _encoder_blocks(model.encoder)
    for epoch in range(state["epoch"], 0 if stopped else recipe.max_epochs):
        model.train()
        if recipe.freeze_encoder:
            model.encoder.eval()  # frozen batch-norm statistics stay those of pretraining
        elif recipe.gradual_unfreezing:
            _train_top_blocks(blocks, unfrozen_blocks(epoch, len(blocks), gradual=True))
        means = run_epoch(
            loss_of, train_loader, optimizer, scheduler=scheduler, max_grad_norm=recipe.max_grad_norm,
            device=device, progress=progress, description=f"seed {seed} epoch {epoch + 1}",
        ).means()
        value = evaluate(y[split["valid"]], predict_scores(model, valid_loader, task_type, scaler, device), task_type)[metric]
        record = {"seed": seed, "epoch": epoch + 1, "train_loss": means.get("loss", 0.0), f"valid_{metric}": value}
        if auxiliary_head is not None:
            record["train_auxiliary_loss"] = means.get("auxiliary_loss", math.nan)
        log.append(record)
        state["log"].append(record)
        state["epoch"] = epoch + 1
        if state["best_state"] is None or improves(value, state["best_value"], metric):
            state.update(best_epoch=epoch + 1, best_value=value, best_state=copy.deepcopy(model.state_dict()), stale=0)
        else:
            state["stale"] += 1
        if checkpoint is not None:
            save_training_state(checkpoint, {
                "seed": seed, **state, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                **({"auxiliary_head": auxiliary_head.state_dict()} if auxiliary_head is not None else {}),
                "scheduler": scheduler.state_dict(), "generator": generator.get_state(), "rng": rng_state(),
            })
        if state["stale"] >= recipe.patience:
            break
    if recipe.select == "best":
        model.load_state_dict(state["best_state"])
    model.eval()
    return model, {"best_epoch": state["best_epoch"], f"valid_{metric}": state["best_value"], "epochs_run": state["epoch"],
                   "selected": recipe.select}


def _auxiliary_head(model: PropertyModel, dataset: GraphDataset, recipe: Recipe) -> torch.nn.Module | None:
    """The second head of ``recipe.auxiliary_weight`` (pooled embedding -> hidden -> the dataset's
    auxiliary targets, as the pretraining heads), or None without an auxiliary loss, or with a
    frozen encoder (the loss could not reach it).

    Raises:
        InputError: an auxiliary weight but no auxiliary targets in the dataset.
    """
    if recipe.auxiliary_weight == 0 or recipe.freeze_encoder:
        return None
    if dataset.auxiliary_y is None:
        raise InputError("the recipe has an auxiliary loss (auxiliary_weight > 0) but the dataset holds no auxiliary "
                         "targets (auxiliary_y)")
    width = model.embedding_dim
    return torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(),
                               torch.nn.Linear(width, dataset.auxiliary_y.shape[1]))


def _encoder_blocks(encoder: GINEncoder) -> list[list[torch.nn.Module]]:
    """The encoder's blocks bottom-up: the atom embedding, then each (convolution, batch norm)."""
    return [[encoder.atom_encoder]] + [[conv, norm] for conv, norm in zip(encoder.convs, encoder.batch_norms)]


def _train_top_blocks(blocks: list[list[torch.nn.Module]], count: int) -> None:
    """Let only the top ``count`` blocks learn; the others keep their weights and batch-norm statistics."""
    for index, modules in enumerate(blocks):
        trainable = index >= len(blocks) - count
        for module in modules:
            module.requires_grad_(trainable)
            module.train(trainable)
