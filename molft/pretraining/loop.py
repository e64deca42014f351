"""The pretraining loop: a corpus of molecules in, a pretrained encoder directory out.

One function, :func:`pretrain`; its settings are a :class:`PretrainConfig`, validated in one
place (its ``__post_init__``). The run directory's layout is in :mod:`molft.pretraining.rundir`;
the corpus comes from :mod:`molft.pretraining.corpus`, the batches from
:mod:`molft.pretraining.batches`, and each step is :func:`molft.training.train_step`.

**Exact resume.** Which graphs form batch ``k`` of epoch ``e`` is a function of ``(seed, e)``
(:func:`~molft.pretraining.batches.epoch_batches`), and every random draw of the per-graph
transforms (which atoms to mask) comes from a generator seeded with ``(seed, e, graph index)``.
Torch's global RNG then serves the model alone (dropout), and its state is saved in each
checkpoint. So a run resumed from a checkpoint skips the batches it already did and reaches the
same weights as a run that never stopped (bitwise on CPU with the same number of torch threads,
which changes float summation order; on GPU, up to non-deterministic kernels).

**Limits.** ``max_steps`` ends a run after that many optimizer steps (it is part of the plan:
the cosine schedule decays to 0 at ``min(max_steps, epochs x steps per epoch)``), and
``time_limit_s`` ends a call at the first step boundary after that many seconds since the call
began (for a machine lent for a fixed time). Either way the run stops as a finished one does: a
checkpoint at that step, the encoder written, and the reason recorded (``stopped_by``: ``"epochs"``,
``"max_steps"`` or ``"time_limit"``) in a ``stop`` line of the log, in ``pretrain.json``'s ``end``
and in the encoder's pretraining record. The time limit never changes the trajectory, only where
a call stops, so a run it ended resumes exactly (``resume=True``, with another limit or none).

**Logs.** Step lines hold the means over the last ``log_every_steps`` steps, epoch lines the
means over the epoch, both over all ranks; ``graphs_per_s`` counts training time only (loading,
transforming, forward, backward, step; not writing checkpoints or plots).

**Distributed.** Under ``torchrun`` (``WORLD_SIZE > 1``) each process joins the process group
(gloo on CPU, NCCL on CUDA) and trains a DistributedDataParallel copy. ``batch_size`` is the
*global* batch: global batch ``k`` is the same graphs as in one process, split into contiguous
per-rank slices. Losses are means over the global batch (:func:`~molft.pretraining.objectives.world_mean`),
and BatchNorm layers normalize with global-batch statistics
(:class:`~molft.distributed.GlobalBatchNorm`, which, unlike ``torch.nn.SyncBatchNorm``, also runs
on CPU); so a step under DDP equals a step of one process on the global batch, up to float
rounding. Pass ``sync_batch_norm=False`` for per-rank statistics (faster, the usual DDP default,
not equivalent). Rank 0 alone logs and checkpoints.

**Test-set hygiene.** A corpus whose objectives read its labels (``supervised``) is first rid of
every molecule that is a test molecule of a benchmark in the data directory
(:mod:`molft.pretraining.hygiene`; ``exclude_test_molecules``), and the run records how many it
removed per benchmark dataset (``test_molecules_removed`` in ``pretrain.json`` and in the
encoder's pretraining record).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch_geometric.data import Data

from molft.distributed import convert_batch_norm, init_distributed
from molft.errors import InputError
from molft.io import append_jsonl, write_json_atomic
from molft.models.encoder import EncoderConfig, GINEncoder
from molft.pretraining import rundir
from molft.pretraining.batches import EpochDataset, epoch_batches, make_loader, steps_per_epoch
from molft.pretraining.corpus import corpus_targets, load_corpus, screen_test_molecules
from molft.pretraining.graph_targets import LABELS
from molft.pretraining.objectives import ObjectiveSet
from molft.pretraining.registry import build_objectives, format_objectives, parse_objectives
from molft.runtime import read_json, resolve_device, rng_state, run_metadata, seed_everything, set_rng_state
from molft.training import SCHEDULES, RunningMeans, lr_scheduler, require_same_settings, run_epoch

logger = logging.getLogger(__name__)

#: settings that may change between a run and its resumption (they do not change the weights)
RESUMABLE_CHANGES = ("num_workers", "device", "progress", "log_every_steps", "checkpoint_every_steps", "time_limit_s")
#: ``exclude_test_molecules`` values, with the spellings the command line uses
EXCLUDE_TEST_MOLECULES = {"labelled": "labelled", "labeled": "labelled", "always": True, "never": False}


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that decides a pretraining run's result; saved in ``pretrain.json``.

    Built (and so validated) before the corpus is read: a bad option fails at once.

    Attributes:
        corpus: the corpus as given (featurized directory or SMILES table), or the list of its parts.
        init: an encoder directory to start from (a second stage, e.g. graph-level targets after a
            node-level objective), or None for a freshly initialized encoder.
        objectives: names and weights, e.g. ``"attr_masking:1.0"`` or ``{"attr_masking": 1.0}``
            (stored in the first form).
        objective_options: name -> that objective's keyword options.
        encoder: the :class:`~molft.models.EncoderConfig` as a dict (its vocabulary is the
            corpus's when not given).
        epochs: passes over the corpus.
        max_steps: stop after this many optimizer steps (None: after ``epochs``); the cosine
            schedule then decays over ``min(max_steps, epochs x steps per epoch)`` steps.
        time_limit_s: end the call at the first step boundary this many seconds after it began
            (checkpoint and encoder written, ``stopped_by="time_limit"``); None for no limit. It
            does not change the result of the steps done, so a resumed run may change it.
        batch_size: graphs per optimizer step, over all processes together.
        lr: AdamW learning rate (peak, with the cosine schedule).
        weight_decay: AdamW weight decay (Hu et al.: 0).
        lr_schedule: ``"constant"`` (Hu et al.) or ``"cosine"`` (linear warmup, then cosine to 0).
        warmup_steps: warmup length for ``"cosine"``.
        max_grad_norm: gradient-norm clipping, None for none (Hu et al.: none).
        max_molecules: train on the first this many molecules of the corpus only (counted before
            test molecules are removed).
        exclude_test_molecules: remove the benchmarks' test molecules from the corpus
            (:mod:`molft.pretraining.hygiene`): ``"labelled"`` when an objective reads the corpus's
            labels (``supervised``), ``True`` always (descriptor or fingerprint targets, masking),
            ``False`` never. ``"always"`` and ``"never"`` are read as True and False.
        seed: seeds initialization, data order and masks.
        sync_batch_norm: under DDP, normalize with global-batch statistics.
        num_workers: data-loader worker processes (does not change the result).
        device: ``"cpu"``, ``"cuda"``, or None for cuda when present (does not change the result on CPU).
        log_every_steps: write a log line every this many steps.
        checkpoint_every_steps: write a checkpoint every this many steps (and every epoch).
        progress: show progress bars.

    Raises:
        InputError: naming the first setting that cannot be used, and what it must be.
    """

    corpus: str | list[str]
    init: str | None = None
    objectives: str | Mapping[str, float] = "attr_masking:1"
    objective_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    max_steps: int | None = None
    time_limit_s: float | None = None
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    max_grad_norm: float | None = None
    max_molecules: int | None = None
    exclude_test_molecules: bool | str = "labelled"
    seed: int = 0
    sync_batch_norm: bool = True
    num_workers: int = 0
    device: str | None = None
    log_every_steps: int = 50
    checkpoint_every_steps: int = 1000
    progress: bool = True

    def __post_init__(self) -> None:
        for name, minimum in (("epochs", 0), ("batch_size", 1), ("warmup_steps", 0), ("checkpoint_every_steps", 1),
                              ("log_every_steps", 1), ("num_workers", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
        for name in ("max_steps", "max_molecules"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InputError(f"{name} must be a positive integer or None, got {value!r}")
        limit = self.time_limit_s
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit >= 0):
            raise InputError(f"time_limit_s must be a number of seconds >= 0 or None, got {limit!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise InputError(f"lr must be a number > 0, got {self.lr!r}")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise InputError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if self.lr_schedule not in SCHEDULES:
            raise InputError(f"unknown lr_schedule {self.lr_schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise InputError(f"max_grad_norm must be a number > 0 or None, got {self.max_grad_norm!r}")
        exclude = self.exclude_test_molecules
        if not isinstance(exclude, bool):
            if not isinstance(exclude, str) or exclude.strip().lower() not in EXCLUDE_TEST_MOLECULES:
                raise InputError(
                    f"exclude_test_molecules must be 'labelled', True ('always') or False ('never'), got {exclude!r}"
                )
            object.__setattr__(self, "exclude_test_molecules", EXCLUDE_TEST_MOLECULES[exclude.strip().lower()])
        object.__setattr__(self, "objectives", format_objectives(parse_objectives(self.objectives)))
        # the architecture's own checks (the corpus's vocabulary, not known yet, is filled in later)
        EncoderConfig.from_dict({"vocabulary": "ogb", **self.encoder})

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-able dict."""
        return asdict(self)


@dataclass
class PretrainResult:
    """What :func:`pretrain` did.

    Attributes:
        out: the run directory.
        encoder: the pretrained encoder directory (None if the run was stopped early).
        molecules: molecules in the training corpus.
        epochs: epochs completed.
        steps: optimizer steps completed.
        final_losses: the last epoch's mean losses and accuracies (``"loss"``, ``"attr_masking/accuracy"``...).
        seconds: wall time of this call.
        resumed_from_step: the checkpoint step this call started from, if it resumed.
        completed: False if ``stop_after_steps`` stopped it (no encoder written).
        stopped_by: why training ended: ``"epochs"``, ``"max_steps"`` or ``"time_limit"``.
        train_seconds: wall time of this call's training loop (steps and checkpoints; not reading
            the corpus, computing targets or writing the encoder).
    """

    out: Path
    encoder: Path | None
    molecules: int
    epochs: int
    steps: int
    final_losses: dict[str, float]
    seconds: float
    resumed_from_step: int | None = None
    completed: bool = True
    stopped_by: str = "epochs"
    train_seconds: float = 0.0


class PretrainModel(nn.Module):
    """Encoder and objectives in one module, so DDP sees every parameter: forward = total loss."""

    def __init__(self, encoder: GINEncoder, objectives: ObjectiveSet) -> None:
        super().__init__()
        self.encoder = encoder
        self.objectives = objectives

    def forward(self, batch: Data) -> tuple[Tensor, dict[str, float]]:
        return self.objectives.loss(self.encoder, batch)


def pretrain(
    corpus: str | Path | Sequence[str | Path],
    out: str | Path,
    *,
    objectives: str | Mapping[str, float] = "attr_masking",
    epochs: int = 100,
    max_steps: int | None = None,
    time_limit_s: float | None = None,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    encoder: EncoderConfig | Mapping[str, Any] | None = None,
    objective_options: Mapping[str, Mapping[str, Any]] | None = None,
    lr_schedule: str = "constant",
    warmup_steps: int = 0,
    max_grad_norm: float | None = None,
    max_molecules: int | None = None,
    exclude_test_molecules: bool | str = "labelled",
    init: str | Path | None = None,
    smiles_column: str | None = None,
    checkpoint_every_steps: int = 1000,
    log_every_steps: int = 50,
    resume: bool = False,
    device: str | None = None,
    seed: int = 0,
    num_workers: int = 0,
    featurize_workers: int = 1,
    sync_batch_norm: bool = True,
    progress: bool = True,
    stop_after_steps: int | None = None,
) -> PretrainResult:
    """Pretrain a GIN encoder with self-supervised objectives on a corpus of molecules.

    Defaults follow Hu et al. 2020's attribute masking: 5 layers of width 300, batch 256, Adam(W)
    at 1e-3 without weight decay, 15% of atoms masked, 100 epochs. The options that decide the
    result are those of :class:`PretrainConfig` (see there); besides them:

    Args:
        corpus: a featurized directory (``molft featurize``) or a SMILES table, which is first
            featurized once into the cache (:func:`~molft.pretraining.corpus.corpus_cache_path`)
            and reused by later runs; or a list of them, the parts of one corpus (e.g. featurized
            on several machines), joined in the order given.
        out: the run directory (created).
        encoder: the encoder's config, or a dict of its options (``{"num_layers": 5,
            "hidden_dim": 300}``); a dict without ``vocabulary`` takes the corpus's. With
            ``init``, the architecture is the initial encoder's (options given must agree).
        init: start from this pretrained encoder directory (a shipped name such as ``"attrmask"``
            or a path): Hu et al.'s two stages are two calls. Its own pretraining record is kept
            in the new encoder's ``config.json`` (``pretraining.init``).
        smiles_column: the SMILES column of a raw table (detected when None).
        resume: continue from ``out/checkpoint``; without a checkpoint, start from scratch.
        featurize_workers: processes for featurizing a raw corpus.
        stop_after_steps: test hook: stop right after this optimizer step, as if killed, writing
            nothing for it.

    Returns:
        where things went, steps and epochs done, why training stopped, and the last epoch's
        mean losses (those of the epoch in progress when a limit ended it mid-epoch).

    Raises:
        InputError: an unreadable corpus, a vocabulary mismatch, bad options, or an ``out`` that
            already holds a run (pass ``resume=True`` to continue it).

    Example:
        >>> result = pretrain("zinc.graphs", "runs/attrmask", epochs=100)   # doctest: +SKIP
        >>> result = pretrain("zinc.graphs", "runs/desc", objectives="descriptors", time_limit_s=600,
        ...                   resume=True)                                    # doctest: +SKIP
        >>> encoder, config = load_encoder(result.encoder)                  # doctest: +SKIP
    """
    started = time.perf_counter()
    out = Path(out)
    parts = [Path(corpus)] if isinstance(corpus, (str, Path)) else [Path(part) for part in corpus]
    if not parts:
        raise InputError("no corpus given")
    encoder_options = encoder.to_dict() if isinstance(encoder, EncoderConfig) else dict(encoder or {})
    init_record = None
    if init is not None:
        init, init_record, encoder_options = _initial_encoder(init, encoder_options)
    config = PretrainConfig(
        corpus=str(parts[0]) if len(parts) == 1 else [str(part) for part in parts],
        init=None if init is None else str(init),
        objectives=objectives,
        objective_options={k: dict(v) for k, v in (objective_options or {}).items()},
        encoder=encoder_options,
        epochs=epochs, max_steps=max_steps, time_limit_s=time_limit_s, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, lr_schedule=lr_schedule,
        warmup_steps=warmup_steps, max_grad_norm=max_grad_norm, max_molecules=max_molecules,
        exclude_test_molecules=exclude_test_molecules, seed=seed,
        sync_batch_norm=sync_batch_norm, num_workers=num_workers, device=device, log_every_steps=log_every_steps,
        checkpoint_every_steps=checkpoint_every_steps, progress=progress,
    )
    if not resume and (rundir.find_checkpoint(out) is not None or (out / rundir.ENCODER_DIR / "config.json").exists()):
        raise InputError(
            f"{out}: already holds a pretraining run; pass resume=True to continue it, or choose another out"
        )

    rank, world, local_rank, created_group = init_distributed()
    try:
        if world > 1 and batch_size < world:
            raise InputError(f"batch_size {batch_size} is smaller than the {world} processes; each needs graphs")
        run_device = resolve_device(device)
        if world > 1 and run_device.type == "cuda":
            run_device = torch.device("cuda", local_rank)
            torch.cuda.set_device(run_device)
        graphs, corpus_info = load_corpus(
            parts, vocabulary=config.encoder.get("vocabulary"), smiles_column=smiles_column, workers=featurize_workers,
            rank=rank, world=world, progress=progress, max_molecules=max_molecules,
        )
        if len(graphs) == 0:
            raise InputError(f"{', '.join(map(str, parts))}: no molecules to train on")
        encoder_options = {"vocabulary": corpus_info["vocabulary"], **config.encoder}
        config = replace(config, encoder=EncoderConfig.from_dict(encoder_options).to_dict())
        return _train(config, graphs, corpus_info, out, resume=resume, rank=rank, world=world, device=run_device,
                      stop_after_steps=stop_after_steps, started=started, featurize_workers=featurize_workers,
                      init_record=init_record)
    finally:
        if created_group:
            dist.destroy_process_group()


def _initial_encoder(init: str | Path, given: dict[str, Any]) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The initial encoder's directory, its config (with its pretraining record), and the
    encoder options of the new run (the initial encoder's architecture)."""
    from molft.checkpoints import load_encoder
    from molft.pretrained import resolve_pretrained

    path = resolve_pretrained(init)
    if path is None:
        raise InputError("init 'none' names no encoder; leave init out to start from a fresh encoder")
    record = load_encoder(path)[1]
    architecture = dict(record["encoder"])
    conflicts = sorted(k for k, v in given.items() if architecture.get(k, v) != v or k not in architecture)
    if conflicts:
        raise InputError(
            f"init encoder {path} has {', '.join(f'{k}={architecture.get(k)!r}' for k in conflicts)}, "
            f"but {', '.join(f'{k}={given[k]!r}' for k in conflicts)} was asked; leave the encoder options out "
            "when starting from an encoder"
        )
    return path, record, architecture


def _raw_targets(
    objectives: ObjectiveSet, corpus_info: dict[str, Any], count: int, *, workers: int, rank: int, world: int,
    progress: bool,
) -> dict[str, np.ndarray]:
    """Source -> the raw per-graph array of every source an objective reads (empty if none)."""
    sources = objectives.target_sources()
    if not sources:
        return {}
    return corpus_targets(corpus_info, sources.values(), count=count, workers=workers, rank=rank, world=world,
                          progress=progress)


def _prepared_targets(objectives: ObjectiveSet, raw: dict[str, np.ndarray], keep: np.ndarray | None) -> dict[str, Any]:
    """``<name>_y`` -> the prepared per-graph targets of every objective that reads some; with
    ``keep``, of those graphs only (selected before preparing, so that target statistics come from
    the graphs trained on)."""
    if keep is not None:
        raw = {source: values[keep] for source, values in raw.items()}
    return {f"{name}_y": objectives.objectives[name].prepare_targets(raw[source])
            for name, source in objectives.target_sources().items()}


@dataclass
class _Position:
    """Where the run is: epochs done, batches done in the current epoch, optimizer steps done."""

    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0


def _screen(
    config: PretrainConfig, objectives: ObjectiveSet, corpus_info: dict[str, Any], count: int, *, workers: int,
    rank: int, world: int, progress: bool,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Which graphs to keep after removing benchmark test molecules, as ``exclude_test_molecules`` asks."""
    labelled = LABELS in objectives.target_sources().values()
    mode = config.exclude_test_molecules
    if mode == "labelled":
        exclude = labelled
        reason = "an objective reads the corpus's labels" if labelled else (
            "no objective reads the corpus's labels (exclude_test_molecules='labelled')")
    else:
        exclude, reason = bool(mode), f"exclude_test_molecules={mode}"
    keep, record = screen_test_molecules(corpus_info, count=count, exclude=exclude, reason=reason, workers=workers,
                                         rank=rank, world=world, progress=progress)
    return keep, {"exclude_test_molecules": mode, **record}


def _limit_reached(config: PretrainConfig, step: int, elapsed: float, world: int, device: torch.device) -> str | None:
    """``"max_steps"`` or ``"time_limit"`` when a limit ends the run after this step, else None.

    Under DDP rank 0's clock decides for every rank (a broadcast), so all stop at the same step.
    """
    if config.max_steps is not None and step >= config.max_steps:
        return "max_steps"
    if config.time_limit_s is None:
        return None
    over = elapsed >= config.time_limit_s
    if world > 1:
        flag = torch.tensor([int(over)], device=device)
        dist.broadcast(flag, src=0)
        over = bool(flag.item())
    return "time_limit" if over else None


def _saved_settings(saved: dict[str, Any], objectives: ObjectiveSet) -> dict[str, Any]:
    """A checkpoint's config, completed for runs that predate ``exclude_test_molecules``: they
    removed nothing, which is ``False`` for a labelled corpus and ``"labelled"`` otherwise."""
    if "exclude_test_molecules" in saved:
        return saved
    labelled = LABELS in objectives.target_sources().values()
    return {**saved, "exclude_test_molecules": False if labelled else "labelled"}


def _train(
    config: PretrainConfig, graphs: Any, corpus_info: dict[str, Any], out: Path, *, resume: bool, rank: int,
    world: int, device: torch.device, stop_after_steps: int | None, started: float, featurize_workers: int = 1,
    init_record: dict[str, Any] | None = None,
) -> PretrainResult:
    lead = rank == 0
    seed_everything(config.seed)
    encoder_config = EncoderConfig.from_dict(config.encoder)
    encoder = GINEncoder(encoder_config)
    if config.init is not None:
        from molft.checkpoints import load_encoder

        encoder.load_state_dict(load_encoder(config.init)[0].state_dict())
    objectives = build_objectives(config.objectives, encoder_config, config.objective_options)
    raw = _raw_targets(objectives, corpus_info, len(graphs), workers=featurize_workers, rank=rank, world=world,
                       progress=config.progress and lead)  # first: a corpus without labels fails at once
    keep, hygiene = _screen(config, objectives, corpus_info, len(graphs), workers=featurize_workers, rank=rank,
                            world=world, progress=config.progress and lead)
    targets = _prepared_targets(objectives, raw, keep)
    if keep is not None:
        graphs = graphs.select(keep)
        if len(graphs) == 0:
            raise InputError("every molecule of the corpus is a benchmark test molecule; nothing to train on")
    model = PretrainModel(encoder, objectives).to(device)
    if world > 1 and config.sync_batch_norm:
        model = convert_batch_norm(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = steps_per_epoch(len(graphs), config.batch_size, world)
    planned_steps = per_epoch * config.epochs
    if config.max_steps is not None:
        planned_steps = min(planned_steps, config.max_steps)
    scheduler = lr_scheduler(optimizer, schedule=config.lr_schedule, total_steps=planned_steps,
                             warmup_steps=config.warmup_steps)

    at = _Position()
    epoch_means = RunningMeans()
    resumed_from: int | None = None
    last_epoch_means: dict[str, float] = {}
    checkpoint = rundir.find_checkpoint(out) if resume else None
    if checkpoint is not None:
        state = rundir.read_checkpoint(checkpoint, model.encoder, model.objectives, device)
        require_same_settings(_saved_settings(state["config"], objectives), config.to_dict(), where=checkpoint,
                              may_change=RESUMABLE_CHANGES)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        at = _Position(int(state["epoch"]), int(state["batch_in_epoch"]), int(state["step"]))
        epoch_means = RunningMeans(state["epoch_means"] if lead else None)  # the sums are over all ranks already
        last_epoch_means = {k: float(v) for k, v in state.get("last_epoch_means", {}).items()}
        resumed_from = at.step
        if lead:
            rundir.truncate_log(out / rundir.LOG, at.step)
            logger.info("resuming %s from step %d (epoch %d, batch %d)", out, at.step, at.epoch, at.batch_in_epoch)
    elif resume and lead:
        logger.info("no checkpoint in %s: starting from scratch", out)

    if lead:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            out / rundir.RUN_CONFIG,
            {"config": config.to_dict(), "corpus": corpus_info, "molecules": len(graphs), "world_size": world,
             "steps_per_epoch": per_epoch, "test_molecules_removed": hygiene["test_molecules_removed"],
             "test_set_hygiene": hygiene, "run": run_metadata(device=str(device), seed=config.seed)},
        )
    trainer: nn.Module = model
    if world > 1:
        trainer = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    trainer.train()

    dataset = EpochDataset(graphs, model.objectives.transform, config.seed, targets=targets)
    window = RunningMeans()
    window_started = time.perf_counter()
    stopped = False
    stopped_by = "epochs"

    def state_now(partial_epoch: RunningMeans) -> dict[str, Any]:
        return {
            "format": "molft-pretrain-state", "version": 1, "config": config.to_dict(),
            "epoch": at.epoch, "batch_in_epoch": at.batch_in_epoch, "step": at.step, "data_seed": config.seed,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
            "epoch_means": partial_epoch.state(),  # summed over ranks
            "last_epoch_means": dict(last_epoch_means),
        }

    def after_step(batch: Any, logs: dict[str, float]) -> bool:
        """Logging window, epoch lines, checkpoints; True to stop (``stop_after_steps``, a limit)."""
        nonlocal window, window_started, epoch_means, last_epoch_means, stopped, stopped_by
        at.step += 1
        at.batch_in_epoch += 1
        if stop_after_steps is not None and at.step >= stop_after_steps:
            stopped = True
            return True
        window.add(logs, batch.num_graphs)
        epoch_means.add(logs, batch.num_graphs)
        epoch_done = at.batch_in_epoch == per_epoch
        if at.step % config.log_every_steps == 0:
            elapsed = time.perf_counter() - window_started
            merged = window.over_ranks(world)
            if lead:
                append_jsonl(out / rundir.LOG, {
                    "kind": "step", "epoch": at.epoch + 1, "step": at.step, **merged.means(),
                    "lr": scheduler.get_last_lr()[0], "graphs_per_s": merged.graphs / max(elapsed, 1e-9),
                }, fsync=False)
            window, window_started = RunningMeans(), time.perf_counter()
        if epoch_done:
            last_epoch_means = epoch_means.over_ranks(world).means()
            at.epoch, at.batch_in_epoch, epoch_means = at.epoch + 1, 0, RunningMeans()
            if lead:
                append_jsonl(out / rundir.LOG, {
                    "kind": "epoch", "epoch": at.epoch, "step": at.step, **last_epoch_means,
                    "lr": scheduler.get_last_lr()[0], "elapsed_s": time.perf_counter() - started,
                }, fsync=False)
        all_done = epoch_done and at.epoch >= config.epochs
        limit = None if all_done else _limit_reached(config, at.step, time.perf_counter() - started, world, device)
        if epoch_done or at.step % config.checkpoint_every_steps == 0 or limit is not None:
            paused = time.perf_counter()
            partial_epoch = epoch_means.over_ranks(world)  # collective: every rank joins
            if lead:
                rundir.write_checkpoint(out, model.encoder, model.objectives, state_now(partial_epoch))
            if lead and epoch_done:
                rundir.plot_losses(out / rundir.LOG, out / rundir.PLOT)
            window_started += time.perf_counter() - paused  # graphs/s counts training time only
        if limit is not None:
            stopped_by = limit
            return True
        return False

    loop_started = time.perf_counter()
    while at.epoch < config.epochs and per_epoch > 0 and stopped_by == "epochs":
        if config.max_steps is not None and at.step >= config.max_steps:  # resumed at its step limit
            stopped_by = "max_steps"
            break
        dataset.epoch = at.epoch
        batches = epoch_batches(len(graphs), config.batch_size, config.seed, at.epoch, rank, world)[at.batch_in_epoch:]
        run_epoch(
            trainer, make_loader(dataset, batches, config.num_workers), optimizer, scheduler=scheduler,
            max_grad_norm=config.max_grad_norm, device=device, progress=config.progress and lead,
            description=f"pretrain epoch {at.epoch + 1}/{config.epochs}", total=len(batches), after_step=after_step,
        )
        if stopped:
            seconds = time.perf_counter() - started
            return PretrainResult(out, None, len(graphs), at.epoch, at.step, {}, seconds, resumed_from, completed=False)
    train_seconds = time.perf_counter() - loop_started

    final_losses = last_epoch_means
    if stopped_by != "epochs" and at.batch_in_epoch > 0:  # a limit ended it mid-epoch: that epoch's means so far
        final_losses = epoch_means.over_ranks(world).means()
    encoder_dir = out / rundir.ENCODER_DIR
    if lead:
        end = {"stopped_by": stopped_by, "epochs": at.epoch, "batch_in_epoch": at.batch_in_epoch, "step": at.step,
               "max_steps": config.max_steps, "time_limit_s": config.time_limit_s,
               "elapsed_s": time.perf_counter() - started, "train_seconds": train_seconds}
        if stopped_by != "epochs":
            append_jsonl(out / rundir.LOG, {"kind": "stop", **end, **final_losses}, fsync=False)
        write_json_atomic(out / rundir.RUN_CONFIG, {**read_json(out / rundir.RUN_CONFIG), "end": end})
        pretraining = {
            "objectives": config.objectives, "objective_options": model.objectives.describe(), "corpus": corpus_info,
            "molecules": len(graphs), "epochs": at.epoch, "steps": at.step, "batch_in_epoch": at.batch_in_epoch,
            "stopped_by": stopped_by, "max_steps": config.max_steps, "time_limit_s": config.time_limit_s,
            "batch_size": config.batch_size, "lr": config.lr, "weight_decay": config.weight_decay,
            "lr_schedule": config.lr_schedule, "max_grad_norm": config.max_grad_norm, "seed": config.seed,
            "world_size": world, "final_losses": final_losses,
            "test_molecules_removed": hygiene["test_molecules_removed"], "test_set_hygiene": hygiene,
        }
        if init_record is not None:
            pretraining["init"] = {"path": config.init, "pretraining": init_record.get("extra", {}).get("pretraining")}
        rundir.save_final_encoder(model.encoder, encoder_dir, pretraining)
        if (out / rundir.LOG).is_file():
            rundir.plot_losses(out / rundir.LOG, out / rundir.PLOT)
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - started
    return PretrainResult(out, encoder_dir, len(graphs), at.epoch, at.step, final_losses, seconds, resumed_from,
                          stopped_by=stopped_by, train_seconds=train_seconds)
