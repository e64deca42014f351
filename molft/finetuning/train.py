"""``molft finetune``: adapt a (pretrained) encoder to a user's assay, as an ensemble over seeds.

A fine-tuned model is a directory::

    MODEL_DIR/
      finetune.json            targets, task type, target scaling, members, recipe, split, pretrained
      members/seed-<k>/        one PropertyModel per seed (config.json + model.safetensors)
      metrics.json             valid/test metrics per seed, of the ensemble, and mean +- std over seeds
      metrics.jsonl            one line per epoch per seed
      predictions_valid.csv    row, SMILES, label, ensemble mean and std per target
      predictions_test.csv
      learning_curve.png       validation metric per epoch per seed
      summary.md               the short human-readable account
      run.json                 command line, versions, device, seeds
      graphs/                  the featurized input and its rejects.csv
      in-progress/             only while running: the request, finished members, the member in
                               training (saved every epoch); ``resume=True`` continues from it
"""

from __future__ import annotations

import copy
import json
import math
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.special import expit
from torch_geometric.loader import DataLoader

from molft.checkpoints import load_encoder, load_model, load_training_state, save_model, save_training_state
from molft.data.assay import Assay, load_assay, split_assay
from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, PRIMARY_METRIC, evaluate, improves
from molft.finetuning.predict import FINETUNE_JSON
from molft.finetuning.recipe import (
    Recipe,
    TargetScaler,
    choose_recipe,
    lr_factor,
    parameter_groups,
    positive_weights,
    unfrozen_blocks,
)
from molft.models.encoder import EncoderConfig, GINEncoder
from molft.models.heads import PropertyModel
from molft.pretrained import resolve_pretrained
from molft.io import write_json_atomic
from molft.runtime import (
    read_json,
    resolve_device,
    rng_state,
    run_metadata,
    seed_everything,
    set_rng_state,
)
from molft.training import predict_batches, run_epoch

#: an unfinished run's state: the request, finished members' records, the member in training
PROGRESS_DIR = "in-progress"
REQUEST_JSON = "request.json"
MODES = ("finetune", "frozen")


@dataclass
class FinetuneResult:
    """What :func:`finetune` produced.

    Attributes:
        out: the model directory.
        metrics: ``metrics.json``'s content.
        recipe: the recipe used (after overrides).
    """

    out: Path
    metrics: dict[str, Any]
    recipe: Recipe
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines a person can read."""
        return (self.out / "summary.md").read_text()


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
    """Predictions in the user's units: probabilities, or values with the target scaling undone."""
    model.eval()
    raw = predict_batches(model, loader, device)
    if task_type == CLASSIFICATION:
        return expit(raw)
    return scaler.inverse(raw) if scaler is not None else raw


def _build_model(
    pretrained: Path | None, num_tasks: int, vocab: str, dropout: float, architecture: EncoderConfig | None = None
) -> tuple[PropertyModel, str]:
    if pretrained is None:
        encoder = GINEncoder(replace(architecture or EncoderConfig(), vocabulary=vocab, dropout=dropout))
        return PropertyModel(encoder, num_tasks), "none"
    encoder, config = load_encoder(pretrained)
    if encoder.config.vocabulary != vocab:
        raise InputError(
            f"{pretrained} was pretrained with the {encoder.config.vocabulary!r} vocabulary but the data is "
            f"featurized with {vocab!r}; featurize with --vocab {encoder.config.vocabulary}"
        )
    encoder.config = replace(encoder.config, dropout=dropout)  # forward reads the rate from its config
    return PropertyModel(encoder, num_tasks), str(pretrained)


def train_member(
    assay: Assay,
    split: dict[str, np.ndarray],
    seed: int,
    recipe: Recipe,
    pretrained: Path | None,
    scaler: TargetScaler | None,
    device: torch.device,
    progress: bool = False,
    log: list[dict] | None = None,
    architecture: EncoderConfig | None = None,
    checkpoint: Path | None = None,
) -> tuple[PropertyModel, dict[str, Any]]:
    """Train one ensemble member with early stopping on validation; restore the best epoch.

    Args:
        assay: the featurized assay (``dataset`` with ``y``, NaN = missing; ``task_type``).
        split: train/valid/test indices into ``assay.dataset``.
        seed: initialisation, data order and dropout seed.
        recipe: learning rates, epochs, patience, freezing.
        pretrained: encoder directory, or None for a from-scratch GIN of ``architecture``.
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
    seed_everything(seed)
    log = [] if log is None else log
    task_type = assay.task_type
    y = assay.dataset.y.numpy()
    train_y = y[split["train"]]
    dataset = assay.dataset
    if scaler is not None:
        dataset = copy.copy(dataset)
        dataset.y = torch.from_numpy(scaler.transform(y).astype(np.float32))
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(dataset.subset(split["train"]), batch_size=recipe.batch_size, shuffle=True,
                              generator=generator, drop_last=len(split["train"]) > recipe.batch_size)
    valid_loader = DataLoader(assay.dataset.subset(split["valid"]), batch_size=256)

    model, _ = _build_model(pretrained, len(assay.targets), assay.table.meta["vocabulary"], recipe.dropout, architecture)
    model.to(device)
    if recipe.freeze_encoder:
        model.encoder.requires_grad_(False)
    optimizer = torch.optim.AdamW(parameter_groups(model.encoder, model.readout, recipe))
    total = recipe.max_epochs * max(1, len(train_loader))
    warmup = int(recipe.warmup_fraction * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup, recipe.schedule)
    )
    pos_weight = (
        torch.as_tensor(positive_weights(train_y), dtype=torch.float32, device=device)
        if task_type == CLASSIFICATION and recipe.positive_weighting else None
    )
    metric = PRIMARY_METRIC[task_type]
    state = {"epoch": 0, "best_epoch": -1, "best_value": math.nan, "best_state": None, "stale": 0, "log": []}
    if checkpoint is not None and checkpoint.is_file():
        saved = load_training_state(checkpoint)
        if saved.get("seed") != seed:
            raise InputError(f"{checkpoint}: holds seed {saved.get('seed')}, not {seed}; delete it to start over")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        set_rng_state(saved["rng"])
        state = {key: saved[key] for key in state}
        log.extend(state["log"])
    stopped = state["stale"] >= recipe.patience
    blocks = _encoder_blocks(model.encoder)
    for epoch in range(state["epoch"], 0 if stopped else recipe.max_epochs):
        model.train()
        if recipe.freeze_encoder:
            model.encoder.eval()  # frozen batch-norm statistics stay those of pretraining
        elif recipe.gradual_unfreezing:
            _train_top_blocks(blocks, unfrozen_blocks(epoch, len(blocks), gradual=True))
        loss = run_epoch(
            lambda batch: masked_loss(model(batch), batch.y, task_type, pos_weight, recipe.focal_gamma),
            train_loader, optimizer, scheduler, device, progress, f"seed {seed} epoch {epoch + 1}",
        )
        value = evaluate(y[split["valid"]], predict_scores(model, valid_loader, task_type, scaler, device), task_type)[metric]
        record = {"seed": seed, "epoch": epoch + 1, "train_loss": loss, f"valid_{metric}": value}
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
                "scheduler": scheduler.state_dict(), "generator": generator.get_state(), "rng": rng_state(),
            })
        if state["stale"] >= recipe.patience:
            break
    if recipe.select == "best":
        model.load_state_dict(state["best_state"])
    model.eval()
    return model, {"best_epoch": state["best_epoch"], f"valid_{metric}": state["best_value"], "epochs_run": state["epoch"],
                   "selected": recipe.select}


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


def finetune(
    table: str | Path,
    targets: list[str],
    out: str | Path,
    pretrained: str | Path | None = "default",
    split: str = "scaffold",
    seeds: int = 1,
    split_seed: int = 0,
    task_type: str | None = None,
    smiles_column: str | None = None,
    mode: str = "finetune",
    max_epochs: int | None = None,
    batch_size: int | None = None,
    encoder_lr: float | None = None,
    head_lr: float | None = None,
    freeze_encoder: bool | None = None,
    device: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    encoder_config: EncoderConfig | None = None,
    resume: bool = False,
    compare_rf: bool = True,
    focal_gamma: float | None = None,
    gradual_unfreezing: bool | None = None,
) -> FinetuneResult:
    """Fine-tune on an assay table and write a model directory (see the module docstring).

    Args:
        table: assay table (.csv, .smi, ...) or a featurized directory.
        targets: label columns.
        out: the model directory to write.
        pretrained: ``"default"`` (molft's shipped encoder), a pretrained directory, or
            ``None``/``"none"`` to train from scratch.
        split: ``"scaffold"``, ``"random"`` or the name of a column holding train/valid/test.
        seeds: ensemble members (seeds 0..seeds-1); their spread is the prediction uncertainty.
        split_seed: seed of the random split (the scaffold split is deterministic).
        task_type: ``"classification"`` / ``"regression"``; inferred when None.
        smiles_column: SMILES column (default: detected).
        mode: ``"finetune"`` (train encoder + head) or ``"frozen"`` (instant mode: a linear
            scikit-learn model on frozen pretrained embeddings, seconds on CPU).
        max_epochs, batch_size, encoder_lr, head_lr, freeze_encoder, focal_gamma,
            gradual_unfreezing: override the recipe (see :class:`~molft.finetuning.recipe.Recipe`).
        device: ``cpu``, ``cuda``...; default cuda when present.
        workers: featurization processes.
        overwrite: replace an existing model directory.
        progress: show progress bars.
        encoder_config: architecture of a from-scratch encoder (default: 5 layers x 300, as Hu et
            al.); a pretrained encoder keeps its own.
        resume: continue an interrupted run in ``out`` (same arguments): finished members are
            kept, the member in training continues from its last epoch, and the result equals
            an uninterrupted run's.
        compare_rf: also fit the fixed random forest on Morgan fingerprints
            (:mod:`molft.baselines`) on the same split and report it beside the model.

    Raises:
        InputError: bad table or labels, an unknown split column, too few molecules to split,
            or nothing (or something different) to resume.
    """
    out = Path(out)
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    if seeds < 1:
        raise InputError("--seeds must be at least 1")
    if (out / FINETUNE_JSON).exists() and not overwrite:
        if resume:
            raise InputError(f"{out} holds a finished model; there is nothing to resume")
        raise InputError(f"{out} already holds a model; pass --overwrite to replace it, or choose another --out")
    pretrained_dir = resolve_pretrained(pretrained)
    if mode == "frozen" and pretrained_dir is None:
        raise InputError("--mode frozen needs a pretrained encoder; drop --pretrained none")
    request = {
        "table": str(Path(table).resolve()), "table_sha256": _content_hash(Path(table)), "targets": list(targets),
        "pretrained": str(pretrained_dir) if pretrained_dir else "none", "split": split, "seeds": seeds,
        "split_seed": split_seed, "task_type": task_type, "smiles_column": smiles_column, "mode": mode,
        "max_epochs": max_epochs, "batch_size": batch_size, "encoder_lr": encoder_lr, "head_lr": head_lr,
        "freeze_encoder": freeze_encoder, "encoder_config": encoder_config.to_dict() if encoder_config else None,
        "focal_gamma": focal_gamma, "gradual_unfreezing": gradual_unfreezing,
    }
    progress_dir = out / PROGRESS_DIR
    if resume:
        _check_resumable(progress_dir, request)
    elif progress_dir.exists():
        shutil.rmtree(progress_dir)  # an interrupted run's state: this run starts over
    progress_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(progress_dir / REQUEST_JSON, request)
    assay = load_assay(table, targets, out / "graphs", smiles_column, task_type,
                       vocab=_vocabulary_of(pretrained_dir), workers=workers, progress=progress)
    split_indices = split_assay(assay, split, split_seed)
    recipe = choose_recipe(len(split_indices["train"]), pretrained=pretrained_dir is not None)
    overrides = {"max_epochs": max_epochs, "batch_size": batch_size, "encoder_lr": encoder_lr,
                 "head_lr": head_lr, "freeze_encoder": freeze_encoder, "focal_gamma": focal_gamma,
                 "gradual_unfreezing": gradual_unfreezing}
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    if (freeze_encoder is False or (gradual_unfreezing and freeze_encoder is None)) and recipe.freeze_encoder:
        recipe = replace(recipe, freeze_encoder=False)  # asked to train the encoder: unfreeze it
    if not recipe.freeze_encoder and recipe.encoder_lr == 0.0:
        recipe = replace(recipe, encoder_lr=1e-4)
    device_ = resolve_device(device)
    y = assay.dataset.y.numpy()
    scaler = TargetScaler.fit(y[split_indices["train"]]) if assay.task_type != CLASSIFICATION else None

    from molft.finetuning.frozen import fit_frozen_member

    loaders = {part: DataLoader(assay.dataset.subset(split_indices[part]), batch_size=256) for part in ("valid", "test")}
    epoch_log: list[dict] = []
    members, per_seed, predictions = [], [], {"valid": [], "test": []}
    for seed in range(seeds):
        member_dir = out / "members" / f"seed-{seed}"
        finished = progress_dir / f"seed-{seed}.json"
        if finished.is_file():  # resuming: this member was done before the interruption
            done = read_json(finished)
            model, info = load_model(member_dir, device_)[0], done["info"]
            epoch_log.extend(done["log"])
        else:
            member_log: list[dict] = []
            if mode == "frozen":
                model, info = fit_frozen_member(assay, split_indices, seed, pretrained_dir, device_, scaler)
            else:
                model, info = train_member(assay, split_indices, seed, recipe, pretrained_dir, scaler, device_,
                                           progress, member_log, encoder_config, progress_dir / f"seed-{seed}.pt")
            save_model(model, member_dir, extra={"seed": seed, **info}, overwrite=True)
            write_json_atomic(finished, {"info": info, "log": member_log})
            (progress_dir / f"seed-{seed}.pt").unlink(missing_ok=True)  # its training state is done with
            epoch_log.extend(member_log)
        members.append(str(member_dir.relative_to(out)))
        scores = {part: predict_scores(model, loaders[part], assay.task_type, scaler, device_) for part in loaders}
        for part in loaders:
            predictions[part].append(scores[part])
        per_seed.append({
            "seed": seed, **info,
            **{part: evaluate(y[split_indices[part]], scores[part], assay.task_type, assay.targets) for part in loaders},
        })

    metrics = _summarise(per_seed, predictions, y, split_indices, assay)
    if compare_rf:
        metrics["baselines"] = {"random_forest": _random_forest_metrics(assay, split_indices)}
    config = {
        "format": "molft-finetuned", "version": 1, "mode": mode,
        "targets": assay.targets, "task_type": assay.task_type,
        "scaler": None if scaler is None else {"mean": scaler.mean, "std": scaler.std},
        "vocabulary": assay.table.meta["vocabulary"], "members": members,
        "recipe": recipe.to_dict(), "pretrained": str(pretrained_dir) if pretrained_dir else "none",
        "split": split, "split_seed": split_seed,
        "split_sizes": {part: int(len(idx)) for part, idx in split_indices.items()},
    }
    write_json_atomic(out / FINETUNE_JSON, config)
    write_json_atomic(out / "metrics.json", metrics)
    write_json_atomic(out / "run.json", run_metadata(device=str(device_), seeds=list(range(seeds)), split_seed=split_seed))
    (out / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in epoch_log))
    for part in loaders:
        _write_predictions(out / f"predictions_{part}.csv", assay, split_indices[part], predictions[part])
    if epoch_log:
        _plot_learning_curve(out / "learning_curve.png", epoch_log, PRIMARY_METRIC[assay.task_type])
    (out / "summary.md").write_text(_summary_text(config, metrics, assay))
    shutil.rmtree(progress_dir)
    return FinetuneResult(out=out, metrics=metrics, recipe=recipe)


def _random_forest_metrics(assay: Assay, split: dict[str, np.ndarray]) -> dict[str, Any]:
    """The fixed Morgan-fingerprint random forest (seed 0) on the same split, scored like the model."""
    from molft.baselines import RF_SETTINGS, fit_random_forest, morgan_fingerprints

    y = assay.dataset.y.numpy()
    fitted = fit_random_forest(morgan_fingerprints(assay.smiles), y, split, assay.task_type, seed=0)
    return {
        "valid": evaluate(y[split["valid"]], fitted.valid, assay.task_type, assay.targets),
        "test": evaluate(y[split["test"]], fitted.test, assay.task_type, assay.targets),
        "settings": {**RF_SETTINGS, "random_state": 0},
    }


def _content_hash(table: Path) -> str | None:
    """SHA-256 of a table file (of meta.json for a featurized directory), to check a resume's input."""
    from molft.data.featurized import META, file_sha256

    path = table / META if table.is_dir() else table
    return file_sha256(path) if path.is_file() else None


def _check_resumable(progress_dir: Path, request: dict[str, Any]) -> None:
    """Refuse to resume a run that is not there or was started with other arguments."""
    path = progress_dir / REQUEST_JSON
    if not path.is_file():
        raise InputError(f"{progress_dir.parent}: no interrupted fine-tuning to resume (no {PROGRESS_DIR}/{REQUEST_JSON})")
    saved = read_json(path)
    differing = [f"{key}: {saved.get(key)!r} then, {value!r} now" for key, value in request.items() if saved.get(key) != value]
    if differing:
        raise InputError(
            f"{progress_dir.parent}: cannot resume with different arguments ({'; '.join(differing)}); rerun with "
            "the same ones, or start over without --resume"
        )


def _vocabulary_of(pretrained_dir: Path | None) -> str:
    if pretrained_dir is None:
        return "ogb"
    path = pretrained_dir / "config.json"
    config = read_json(path)
    if not isinstance(config, dict) or not isinstance(config.get("encoder", config), dict):
        raise InputError(f"{path}: not a molft model config; a pretrained encoder comes from 'molft pretrain'")
    return config.get("encoder", config).get("vocabulary", "ogb")


def _summarise(per_seed, predictions, y, split_indices, assay) -> dict[str, Any]:
    metric_names = [k for k in per_seed[0]["test"] if k != "per_task"]
    summary: dict[str, Any] = {"task_type": assay.task_type, "targets": assay.targets, "seeds": per_seed}
    for part in ("valid", "test"):
        summary[f"{part}_mean"] = {m: float(np.nanmean([s[part][m] for s in per_seed])) for m in metric_names}
        summary[f"{part}_std"] = {m: float(np.nanstd([s[part][m] for s in per_seed])) for m in metric_names}
        ensemble = np.mean(predictions[part], axis=0)
        summary[f"{part}_ensemble"] = evaluate(y[split_indices[part]], ensemble, assay.task_type, assay.targets)
    return summary


def _write_predictions(path: Path, assay: Assay, indices: np.ndarray, member_scores: list[np.ndarray]) -> None:
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
    frame.to_csv(path, index=False)


def _plot_learning_curve(path: Path, log: list[dict], metric: str) -> None:
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
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _summary_text(config: dict, metrics: dict, assay: Assay) -> str:
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
        cells = [f"{metrics[f'{part}_mean'][m]:.3f} ± {metrics[f'{part}_std'][m]:.3f}" for m in metrics[f"{part}_mean"]]
        lines.append(f"| {part} (mean ± std over seeds) | " + " | ".join(cells) + " |")
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
