"""The pretraining loop: a corpus of molecules in, a pretrained encoder directory out.

One function, :func:`pretrain`. A run directory looks like::

    out/
      pretrain.json        the run's settings (PretrainConfig) and run metadata
      log.jsonl            one line every ``log_every_steps`` steps and one per epoch
      loss.png             the losses against steps
      checkpoint/          the latest state, replaced atomically every epoch and every N steps:
        encoder/           config.json + model.safetensors (a loadable encoder)
        objectives.safetensors   the objectives' heads
        train_state.pt     optimizer, scheduler, epoch, step, RNG states: tensors and plain types
                           only, read with torch.load(weights_only=True)
      encoder/             the result: config.json + model.safetensors, for `molft finetune --pretrained`

**Exact resume.** Which graphs form batch ``k`` of epoch ``e`` is a function of ``(seed, e)``
(:func:`epoch_batches`), and every random draw of the per-graph transforms (which atoms to
mask) comes from a generator seeded with ``(seed, e, graph index)``. Torch's global RNG then
serves the model alone (dropout), and its state is saved in each checkpoint. So a run resumed
from a checkpoint skips the batches it already did and reaches the same weights as a run that
never stopped (bitwise on CPU with the same number of torch threads, which changes float
summation order; on GPU, up to non-deterministic kernels).

**Logs.** Step lines hold the means over the last ``log_every_steps`` steps, epoch lines the
means over the epoch, both over all ranks; ``graphs_per_s`` counts training time only (loading,
transforming, forward, backward, step; not writing checkpoints or plots).

**Distributed.** Under ``torchrun`` (``WORLD_SIZE > 1``) each process joins the process group
(gloo on CPU, NCCL on CUDA) and trains a DistributedDataParallel copy. ``batch_size`` is the
*global* batch: global batch ``k`` is the same graphs as in one process, split into contiguous
per-rank slices. Losses are means over the global batch (:func:`~molft.pretraining.objectives.world_mean`),
and BatchNorm layers normalize with global-batch statistics (:class:`GlobalBatchNorm`, which,
unlike ``torch.nn.SyncBatchNorm``, also runs on CPU); so a step under DDP equals a step of one
process on the global batch, up to float rounding. Pass ``sync_batch_norm=False`` for per-rank
statistics (faster, the usual DDP default, not equivalent). Rank 0 alone logs and checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch_geometric.data import Batch, Data
from tqdm.auto import tqdm

from molft.checkpoints import WEIGHTS, load_training_state, save_encoder, save_training_state
from molft.data.featurized import META, featurize_file, file_sha256, load_featurized
from molft.errors import InputError
from molft.featurize.graph import GraphArrays
from molft.finetuning.recipe import lr_factor
from molft.models.encoder import EncoderConfig, GINEncoder
from molft.pretraining.objectives import ObjectiveSet, build_objectives, format_objectives, parse_objectives
from molft.io import write_json_atomic
from molft.runtime import (
    default_cache_dir,
    resolve_device,
    rng_state,
    run_metadata,
    seed_everything,
    set_rng_state,
)

logger = logging.getLogger(__name__)

LOG = "log.jsonl"
PLOT = "loss.png"
CHECKPOINT = "checkpoint"
ENCODER_DIR = "encoder"
RUN_CONFIG = "pretrain.json"
HEADS = "objectives.safetensors"
TRAIN_STATE = "train_state.pt"
SCHEDULES = ("constant", "cosine")
#: settings that may change between a run and its resumption (they do not change the weights)
RESUMABLE_CHANGES = ("num_workers", "device", "progress", "log_every_steps", "checkpoint_every_steps")


@dataclass(frozen=True)
class PretrainConfig:
    """Everything that decides a pretraining run's result; saved in ``pretrain.json``.

    Attributes:
        corpus: the corpus as given (featurized directory or SMILES table), or the list of its parts.
        objectives: names and weights, e.g. ``"attr_masking:1.0"``.
        objective_options: name -> that objective's keyword options.
        encoder: the :class:`~molft.models.EncoderConfig` as a dict.
        epochs: passes over the corpus.
        batch_size: graphs per optimizer step, over all processes together.
        lr: AdamW learning rate (peak, with the cosine schedule).
        weight_decay: AdamW weight decay (Hu et al.: 0).
        lr_schedule: ``"constant"`` (Hu et al.) or ``"cosine"`` (linear warmup, then cosine to 0).
        warmup_steps: warmup length for ``"cosine"``.
        max_grad_norm: gradient-norm clipping, None for none (Hu et al.: none).
        max_molecules: train on the first this many molecules of the corpus only.
        seed: seeds initialization, data order and masks.
        sync_batch_norm: under DDP, normalize with global-batch statistics.
        num_workers: data-loader worker processes (does not change the result).
        device: ``"cpu"``, ``"cuda"``, or None for cuda when present (does not change the result on CPU).
        log_every_steps: write a log line every this many steps.
        checkpoint_every_steps: write a checkpoint every this many steps (and every epoch).
        progress: show progress bars.
    """

    corpus: str | list[str]
    objectives: str = "attr_masking:1"
    objective_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    encoder: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    max_grad_norm: float | None = None
    max_molecules: int | None = None
    seed: int = 0
    sync_batch_norm: bool = True
    num_workers: int = 0
    device: str | None = None
    log_every_steps: int = 50
    checkpoint_every_steps: int = 1000
    progress: bool = True

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
        completed: False if ``stop_after_steps`` stopped it.
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


# ----------------------------------------------------------------------------------------------
# Pure pieces: data order, per-graph seeds, the schedule


def _mix(*values: int) -> int:
    """A 63-bit seed from several integers (splitmix64 rounds); stable across Python versions."""
    state = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1
    for value in values:
        state = (state + (int(value) & mask) + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        state = z ^ (z >> 31)
    return state >> 1


def epoch_batches(
    num_graphs: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> list[np.ndarray]:
    """The graph indices of every batch of an epoch, for one rank: a pure function of its arguments.

    The epoch's order is a permutation seeded by ``(seed, epoch)``, cut into global batches of
    ``batch_size`` (the last may be smaller). With ``world_size > 1`` each global batch is split
    into ``world_size`` contiguous slices (sizes differ by one at most) and rank ``rank`` gets its
    slice; a last global batch with fewer graphs than ranks is dropped.

    Returns:
        one int64 array per batch.
    """
    generator = torch.Generator().manual_seed(_mix(seed, epoch))
    order = torch.randperm(num_graphs, generator=generator).numpy()
    batches = [order[start : start + batch_size] for start in range(0, num_graphs, batch_size)]
    if world_size > 1:
        batches = [np.array_split(b, world_size)[rank] for b in batches if len(b) >= world_size]
    return batches


def steps_per_epoch(num_graphs: int, batch_size: int, world_size: int = 1) -> int:
    """Optimizer steps in one epoch (see :func:`epoch_batches`)."""
    full, rest = divmod(num_graphs, batch_size)
    return full + (1 if rest >= max(world_size, 1) else 0)


def learning_rate_factor(schedule: str, step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the base learning rate at ``step``: 1 (constant) or warmup + cosine."""
    if schedule == "constant":
        return 1.0
    return lr_factor(step, total_steps, warmup_steps)


class EpochDataset(torch.utils.data.Dataset):
    """Graph ``i`` of epoch ``epoch``, transformed with a generator seeded by ``(seed, epoch, i)``."""

    def __init__(self, graphs: GraphArrays, transform: Callable[[Data, torch.Generator], Data], seed: int) -> None:
        self.graphs = graphs
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> Data:
        generator = torch.Generator().manual_seed(_mix(self.seed, self.epoch, index))
        return self.transform(self.graphs[index], generator)


def _collate(items: list[Data]) -> Batch:
    return Batch.from_data_list(items)


def make_loader(
    dataset: EpochDataset, batches: list[np.ndarray], num_workers: int = 0
) -> torch.utils.data.DataLoader:
    """A loader over precomputed batches; it never draws from torch's global RNG."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=[b.tolist() for b in batches],
        collate_fn=_collate,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
    )


# ----------------------------------------------------------------------------------------------
# Distributed helpers


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose backward sums the gradients over ranks too."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d that, in training under ``torch.distributed``, uses the global batch's statistics.

    Like ``torch.nn.SyncBatchNorm`` but built from autograd-aware ``all_reduce`` calls, so it also
    runs on CPU with gloo. Outside distributed training it is a plain BatchNorm1d; its state dict
    is the same as BatchNorm1d's.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        count = torch.tensor(float(x.shape[0]), device=x.device)
        dist.all_reduce(count)
        mean = _AllReduceSum.apply(x.sum(dim=0)) / count
        centred = x - mean
        var = _AllReduceSum.apply((centred * centred).sum(dim=0)) / count
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * (count / (count - 1)) if float(count) > 1 else var
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.detach(), alpha=momentum)
        out = centred * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        return out


def convert_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm1d`` in ``module`` by a :class:`GlobalBatchNorm` with the same state."""
    if type(module) is nn.BatchNorm1d:
        converted = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        ).to(next(iter(module.state_dict().values())).device)
        converted.load_state_dict(module.state_dict())
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        setattr(module, name, convert_batch_norm(child))
    return module


def _distributed() -> tuple[int, int, int, bool]:
    """(rank, world size, local rank, whether this call created the process group)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return 0, 1, 0, False
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        created = True
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), created


class PretrainModel(nn.Module):
    """Encoder and objectives in one module, so DDP sees every parameter: forward = total loss."""

    def __init__(self, encoder: GINEncoder, objectives: ObjectiveSet) -> None:
        super().__init__()
        self.encoder = encoder
        self.objectives = objectives

    def forward(self, batch: Data) -> tuple[Tensor, dict[str, float]]:
        return self.objectives.loss(self.encoder, batch)


# ----------------------------------------------------------------------------------------------
# Corpus


def corpus_cache_path(table: Path, vocabulary: str, cache_dir: Path | None = None) -> Path:
    """Where a SMILES table is featurized once for pretraining, keyed by its content hash and vocabulary.

    ``<cache>/corpora/<file name>-<sha256[:16]>-<vocabulary>.graphs`` (cache: ``$MOLFT_CACHE_DIR`` or
    ``~/.cache/molft``), so every run on the same file and vocabulary shares one featurization.
    """
    digest = file_sha256(table)[:16]
    return (cache_dir or default_cache_dir()) / "corpora" / f"{table.name}-{digest}-{vocabulary}.graphs"


def _cached_corpus_matches(featurized: Path, table: Path, vocabulary: str) -> bool:
    """A complete featurization (``meta.json`` is written last) of this very file with this vocabulary."""
    if not (featurized / META).is_file():
        return False
    meta = json.loads((featurized / META).read_text())
    return meta.get("source_sha256") == file_sha256(table) and meta.get("vocabulary") == vocabulary


def _featurized_directory(
    corpus: Path, vocabulary: str | None, smiles_column: str | None, workers: int, rank: int, world: int,
    progress: bool,
) -> Path:
    """The featurized directory of one corpus part: the part itself, or, for a SMILES table, its
    cache entry (featurized once, by rank 0, and reused by later runs)."""
    if not corpus.exists():
        raise InputError(f"{corpus}: no such file or directory; give a SMILES table or a featurized directory")
    if corpus.is_dir():
        return corpus
    vocab = vocabulary or "ogb"
    featurized = corpus_cache_path(corpus, vocab)
    if rank == 0:
        if _cached_corpus_matches(featurized, corpus, vocab):
            logger.info("reusing the featurized corpus %s", featurized)
        else:
            featurize_file(corpus, featurized, smiles_column, vocab, workers=workers, progress=progress,
                           overwrite=True)
    if world > 1:
        dist.barrier()
    return featurized


def _load_corpus(
    parts: list[Path],
    vocabulary: str | None,
    smiles_column: str | None,
    workers: int,
    rank: int,
    world: int,
    progress: bool,
    max_molecules: int | None,
) -> tuple[GraphArrays, dict[str, Any]]:
    """The corpus's graphs (at least its first ``max_molecules``) and a description of each part
    (path, source, sha256, vocabulary): parts (e.g. files featurized on different machines) are
    joined in the order given, all in one vocabulary. One part is described on its own, several as
    ``{"parts": [...], "vocabulary": ...}``. Only graphs are loaded, never the SMILES text: a
    corpus costs its compact arrays, about 1 GiB per million ZINC molecules in memory."""
    graphs, infos = [], []
    for part in parts:
        still_needed = None if max_molecules is None else max_molecules - sum(map(len, graphs))
        if still_needed is not None and still_needed <= 0:
            break
        featurized = _featurized_directory(part, vocabulary, smiles_column, workers, rank, world, progress)
        table = load_featurized(featurized, text=False, max_graphs=still_needed)
        if vocabulary is not None and table.meta["vocabulary"] != vocabulary:
            raise InputError(
                f"{part} is featurized with the {table.meta['vocabulary']!r} vocabulary, but the encoder uses "
                f"{vocabulary!r}; featurize the corpus with --vocab {vocabulary}, or leave the encoder's "
                "vocabulary unset"
            )
        vocabulary = table.meta["vocabulary"]  # the first part's vocabulary binds the others
        graphs.append(table.graphs)
        infos.append({
            "corpus": str(part),
            "featurized": str(featurized),
            "source": table.meta.get("source"),
            "source_sha256": table.meta.get("source_sha256"),
            "vocabulary": table.meta["vocabulary"],
            "rejected": table.meta.get("counts", {}).get("rejected"),
        })
    if len(infos) == 1:
        return graphs[0], infos[0]
    return GraphArrays.concat(graphs), {"parts": infos, "vocabulary": infos[0]["vocabulary"]}


# ----------------------------------------------------------------------------------------------
# Checkpoints and logs


def _plain_encoder(encoder: GINEncoder) -> GINEncoder:
    """A fresh GINEncoder (plain BatchNorm, on CPU) holding ``encoder``'s weights."""
    with torch.random.fork_rng(devices=[]):  # its random init must not move the training RNG
        plain = GINEncoder(encoder.config)
    plain.load_state_dict({k: v.detach().cpu() for k, v in encoder.state_dict().items()})
    return plain


def _write_checkpoint(out: Path, encoder: GINEncoder, objectives: ObjectiveSet, state: dict[str, Any]) -> None:
    """Write ``out/checkpoint`` through a temporary directory and renames."""
    final = out / CHECKPOINT
    partial = out / (CHECKPOINT + ".partial")
    old = out / (CHECKPOINT + ".old")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    save_encoder(_plain_encoder(encoder), partial / ENCODER_DIR, extra={"checkpoint_step": state["step"]})
    safetensors.torch.save_file(
        {k: v.detach().cpu().contiguous() for k, v in objectives.state_dict().items()}, str(partial / HEADS)
    )
    save_training_state(partial / TRAIN_STATE, state)
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
    os.replace(partial, final)
    if old.exists():
        shutil.rmtree(old)


def _find_checkpoint(out: Path) -> Path | None:
    """The latest complete checkpoint (``checkpoint/``, or ``checkpoint.old/`` after a crash mid-swap)."""
    for name in (CHECKPOINT, CHECKPOINT + ".old"):
        path = out / name
        if (path / TRAIN_STATE).is_file() and (path / ENCODER_DIR / WEIGHTS).is_file():
            return path
    return None


def _read_checkpoint(path: Path, encoder: GINEncoder, objectives: ObjectiveSet, device: torch.device) -> dict[str, Any]:
    state = load_training_state(path / TRAIN_STATE)
    safetensors.torch.load_model(encoder, str(path / ENCODER_DIR / WEIGHTS), strict=True, device=str(device))
    safetensors.torch.load_model(objectives, str(path / HEADS), strict=True, device=str(device))
    return state


def _append_log(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after checkpoint ``step`` (they are about to be redone)."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def plot_losses(log: str | Path, path: str | Path) -> None:
    """Plot every ``*loss`` of the step lines of ``log.jsonl`` against the step, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    steps = [r for r in records if r.get("kind") == "step"]
    keys = sorted({k for r in steps for k in r if k.endswith("loss")})
    figure, axis = plt.subplots(figsize=(7, 4))
    for key in keys:
        points = [(r["step"], r[key]) for r in steps if key in r and r[key] is not None]
        if points:
            axis.plot(*zip(*points), label=key)
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.set_title(f"pretraining loss ({Path(log).parent.name})")
    if keys:
        axis.legend()
    figure.tight_layout()
    tmp = Path(path).with_name(Path(path).name + ".tmp.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    os.replace(tmp, path)


class _Means:
    """Running sums of logged floats (NaN skipped) and graph counts; plain types only."""

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        self.sums: dict[str, float] = defaultdict(float, (state or {}).get("sums", {}))
        self.counts: dict[str, int] = defaultdict(int, (state or {}).get("counts", {}))
        self.graphs = int((state or {}).get("graphs", 0))

    def add(self, logs: Mapping[str, float], graphs: int) -> None:
        for key, value in logs.items():
            if not math.isnan(value):
                self.sums[key] += value
                self.counts[key] += 1
        self.graphs += graphs

    def means(self) -> dict[str, float]:
        return {key: self.sums[key] / self.counts[key] for key in sorted(self.sums) if self.counts[key]}

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts), "graphs": self.graphs}

    def over_ranks(self, world: int) -> _Means:
        """These sums added over all ranks (a collective call under DDP; itself in one process)."""
        if world <= 1:
            return self
        states: list[Any] = [None] * world
        dist.all_gather_object(states, self.state())
        merged = _Means()
        for state in states:
            for key, value in state["sums"].items():
                merged.sums[key] += value
                merged.counts[key] += state["counts"][key]
            merged.graphs += state["graphs"]
        return merged


# ----------------------------------------------------------------------------------------------
# The loop


def pretrain(
    corpus: str | Path | Sequence[str | Path],
    out: str | Path,
    objectives: str | Mapping[str, float] = "attr_masking",
    epochs: int = 100,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    encoder: EncoderConfig | Mapping[str, Any] | None = None,
    objective_options: Mapping[str, Mapping[str, Any]] | None = None,
    lr_schedule: str = "constant",
    warmup_steps: int = 0,
    max_grad_norm: float | None = None,
    max_molecules: int | None = None,
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
    at 1e-3 without weight decay, 15% of atoms masked, 100 epochs.

    Args:
        corpus: a featurized directory (``molft featurize``) or a SMILES table, which is first
            featurized once into the cache (:func:`corpus_cache_path`) and reused by later runs;
            or a list of them, the parts of one corpus (e.g. featurized on several machines),
            joined in the order given.
        out: the run directory (created).
        objectives: names and weights, e.g. ``"attr_masking"`` or ``"attr_masking:1,graphmae:0.5"``.
        epochs: passes over the corpus.
        batch_size: graphs per step, over all processes together.
        lr: learning rate.
        weight_decay: AdamW weight decay.
        encoder: the encoder's config, or a dict of its options (``{"num_layers": 5,
            "hidden_dim": 300}``); a dict without ``vocabulary`` takes the corpus's.
        objective_options: name -> options of that objective (``{"attr_masking": {"mask_edges": True}}``).
        lr_schedule: ``"constant"`` or ``"cosine"`` (warmup then cosine decay to 0).
        warmup_steps: warmup steps of the cosine schedule.
        max_grad_norm: clip gradients to this norm (None: no clipping).
        max_molecules: use only the first this many molecules of the corpus.
        smiles_column: the SMILES column of a raw table (detected when None).
        checkpoint_every_steps: write ``out/checkpoint`` every this many steps (and every epoch).
        log_every_steps: write a line to ``out/log.jsonl`` every this many steps (and every epoch).
        resume: continue from ``out/checkpoint``; without a checkpoint, start from scratch.
        device: ``"cpu"``, ``"cuda"``... (None: cuda when present).
        seed: seeds initialization, data order and masking.
        num_workers: data-loader processes (the result does not depend on it).
        featurize_workers: processes for featurizing a raw corpus.
        sync_batch_norm: under DDP, normalize with global-batch statistics (see module doc).
        progress: show progress bars (rank 0 only).
        stop_after_steps: test hook: stop right after this optimizer step, as if killed, writing
            nothing for it.

    Returns:
        where things went, steps and epochs done, and the last epoch's mean losses.

    Raises:
        InputError: an unreadable corpus, a vocabulary mismatch, bad options, or an ``out`` that
            already holds a run (pass ``resume=True`` to continue it).

    Example:
        >>> result = pretrain("zinc.graphs", "runs/attrmask", epochs=100)
        >>> encoder, config = load_encoder(result.encoder)
    """
    started = time.perf_counter()
    out = Path(out)
    parts = [Path(corpus)] if isinstance(corpus, (str, Path)) else [Path(part) for part in corpus]
    if not parts:
        raise InputError("no corpus given")
    _check_options(
        epochs, batch_size, lr, weight_decay, lr_schedule, warmup_steps, checkpoint_every_steps, log_every_steps,
        max_molecules,
    )
    weights = parse_objectives(objectives)
    encoder_options = encoder.to_dict() if isinstance(encoder, EncoderConfig) else dict(encoder or {})
    if not resume and (_find_checkpoint(out) is not None or (out / ENCODER_DIR / "config.json").exists()):
        raise InputError(
            f"{out}: already holds a pretraining run; pass resume=True to continue it, or choose another out"
        )

    rank, world, local_rank, created_group = _distributed()
    try:
        if world > 1 and batch_size < world:
            raise InputError(f"batch_size {batch_size} is smaller than the {world} processes; each needs graphs")
        run_device = resolve_device(device)
        if world > 1 and run_device.type == "cuda":
            run_device = torch.device("cuda", local_rank)
            torch.cuda.set_device(run_device)
        graphs, corpus_info = _load_corpus(
            parts, encoder_options.get("vocabulary"), smiles_column, featurize_workers, rank, world, progress,
            max_molecules,
        )
        if max_molecules is not None and max_molecules < len(graphs):
            graphs = graphs.select(np.arange(max_molecules))
        if len(graphs) == 0:
            raise InputError(f"{', '.join(map(str, parts))}: no molecules to train on")
        encoder_options.setdefault("vocabulary", corpus_info["vocabulary"])
        encoder_config = EncoderConfig.from_dict(encoder_options)
        config = PretrainConfig(
            corpus=str(parts[0]) if len(parts) == 1 else [str(part) for part in parts],
            objectives=format_objectives(weights),
            objective_options={k: dict(v) for k, v in (objective_options or {}).items()},
            encoder=encoder_config.to_dict(),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            lr_schedule=lr_schedule,
            warmup_steps=warmup_steps,
            max_grad_norm=max_grad_norm,
            max_molecules=max_molecules,
            seed=seed,
            sync_batch_norm=sync_batch_norm,
            num_workers=num_workers,
            device=device,
            log_every_steps=log_every_steps,
            checkpoint_every_steps=checkpoint_every_steps,
            progress=progress,
        )
        return _train(config, graphs, corpus_info, out, resume, rank, world, run_device, stop_after_steps, started)
    finally:
        if created_group:
            dist.destroy_process_group()


def _check_options(
    epochs: Any, batch_size: Any, lr: Any, weight_decay: Any, lr_schedule: Any, warmup_steps: Any,
    checkpoint_every: Any, log_every: Any, max_molecules: Any,
) -> None:
    for name, value, minimum in (
        ("epochs", epochs, 0),
        ("batch_size", batch_size, 1),
        ("warmup_steps", warmup_steps, 0),
        ("checkpoint_every_steps", checkpoint_every, 1),
        ("log_every_steps", log_every, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if max_molecules is not None and (not isinstance(max_molecules, int) or max_molecules < 1):
        raise InputError(f"max_molecules must be a positive integer or None, got {max_molecules!r}")
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise InputError(f"lr must be a number > 0, got {lr!r}")
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise InputError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    if lr_schedule not in SCHEDULES:
        raise InputError(f"unknown lr_schedule {lr_schedule!r}; choose one of: {', '.join(SCHEDULES)}")


def _compare_configs(saved: Mapping[str, Any], current: Mapping[str, Any], where: Path) -> None:
    differing = [
        f"{key}: {saved.get(key)!r} in the checkpoint, {current.get(key)!r} now"
        for key in sorted(set(saved) | set(current))
        if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key)
    ]
    if differing:
        raise InputError(
            f"{where}: cannot resume with different settings ({'; '.join(differing)}); rerun with the "
            "checkpoint's settings, or start a new run in another out"
        )


def _train(
    config: PretrainConfig,
    graphs: GraphArrays,
    corpus_info: dict[str, Any],
    out: Path,
    resume: bool,
    rank: int,
    world: int,
    device: torch.device,
    stop_after_steps: int | None,
    started: float,
) -> PretrainResult:
    lead = rank == 0
    seed_everything(config.seed)
    encoder_config = EncoderConfig.from_dict(config.encoder)
    encoder = GINEncoder(encoder_config)
    objectives = build_objectives(config.objectives, encoder_config, config.objective_options)
    model = PretrainModel(encoder, objectives).to(device)
    if world > 1 and config.sync_batch_norm:
        model = convert_batch_norm(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = steps_per_epoch(len(graphs), config.batch_size, world)
    total_steps = per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: learning_rate_factor(config.lr_schedule, step, total_steps, config.warmup_steps)
    )

    epoch, batch_in_epoch, step = 0, 0, 0
    epoch_means = _Means()
    resumed_from: int | None = None
    saved_last_means: dict[str, float] = {}
    checkpoint = _find_checkpoint(out) if resume else None
    if checkpoint is not None:
        state = _read_checkpoint(checkpoint, model.encoder, model.objectives, device)
        _compare_configs(state["config"], config.to_dict(), checkpoint)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        epoch, batch_in_epoch, step = int(state["epoch"]), int(state["batch_in_epoch"]), int(state["step"])
        epoch_means = _Means(state["epoch_means"] if lead else None)  # the sums are over all ranks already
        saved_last_means = {k: float(v) for k, v in state.get("last_epoch_means", {}).items()}
        resumed_from = step
        if lead:
            _truncate_log(out / LOG, step)
            logger.info("resuming %s from step %d (epoch %d, batch %d)", out, step, epoch, batch_in_epoch)
    elif resume and lead:
        logger.info("no checkpoint in %s: starting from scratch", out)

    if lead:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            out / RUN_CONFIG,
            {"config": config.to_dict(), "corpus": corpus_info, "molecules": len(graphs), "world_size": world,
             "steps_per_epoch": per_epoch, "run": run_metadata(device=str(device), seed=config.seed)},
        )
    trainer: nn.Module = model
    if world > 1:
        trainer = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    trainer.train()

    dataset = EpochDataset(graphs, model.objectives.transform, config.seed)
    window = _Means()
    window_started = time.perf_counter()
    last_epoch_means: dict[str, float] = dict(saved_last_means)

    def state_now(partial_epoch: _Means) -> dict[str, Any]:
        return {
            "format": "molft-pretrain-state",
            "version": 1,
            "config": config.to_dict(),
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "step": step,
            "data_seed": config.seed,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            "epoch_means": partial_epoch.state(),  # summed over ranks
            "last_epoch_means": dict(last_epoch_means),
        }

    while epoch < config.epochs:
        dataset.epoch = epoch
        batches = epoch_batches(len(graphs), config.batch_size, config.seed, epoch, rank, world)[batch_in_epoch:]
        loader = make_loader(dataset, batches, config.num_workers)
        bar = tqdm(
            loader, total=len(batches), desc=f"pretrain epoch {epoch + 1}/{config.epochs}", leave=False,
            disable=(None if config.progress else True) if lead else True,
        )
        for batch in bar:
            batch = batch.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss, logs = trainer(batch)
            loss.backward()
            if config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            batch_in_epoch += 1
            if stop_after_steps is not None and step >= stop_after_steps:
                seconds = time.perf_counter() - started
                return PretrainResult(out, None, len(graphs), epoch, step, {}, seconds, resumed_from, completed=False)
            window.add(logs, batch.num_graphs)
            epoch_means.add(logs, batch.num_graphs)
            bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
            epoch_done = batch_in_epoch == per_epoch
            if step % config.log_every_steps == 0:
                elapsed = time.perf_counter() - window_started
                merged = window.over_ranks(world)
                if lead:
                    _append_log(out / LOG, {
                        "kind": "step", "epoch": epoch + 1, "step": step, **merged.means(),
                        "lr": scheduler.get_last_lr()[0], "graphs_per_s": merged.graphs / max(elapsed, 1e-9),
                    })
                window, window_started = _Means(), time.perf_counter()
            if epoch_done:
                last_epoch_means = epoch_means.over_ranks(world).means()
                epoch, batch_in_epoch, epoch_means = epoch + 1, 0, _Means()
                if lead:
                    _append_log(out / LOG, {
                        "kind": "epoch", "epoch": epoch, "step": step, **last_epoch_means,
                        "lr": scheduler.get_last_lr()[0], "elapsed_s": time.perf_counter() - started,
                    })
            if epoch_done or step % config.checkpoint_every_steps == 0:
                paused = time.perf_counter()
                partial_epoch = epoch_means.over_ranks(world)  # collective: every rank joins
                if lead:
                    _write_checkpoint(out, model.encoder, model.objectives, state_now(partial_epoch))
                if lead and epoch_done:
                    plot_losses(out / LOG, out / PLOT)
                window_started += time.perf_counter() - paused  # graphs/s counts training time only
        if per_epoch == 0:
            break

    encoder_dir = out / ENCODER_DIR
    if lead:
        extra = {
            "pretraining": {
                "objectives": config.objectives,
                "objective_options": model.objectives.describe(),
                "corpus": corpus_info,
                "molecules": len(graphs),
                "epochs": epoch,
                "steps": step,
                "batch_size": config.batch_size,
                "lr": config.lr,
                "weight_decay": config.weight_decay,
                "lr_schedule": config.lr_schedule,
                "seed": config.seed,
                "world_size": world,
                "final_losses": last_epoch_means,
            }
        }
        save_encoder(_plain_encoder(model.encoder), encoder_dir, extra=extra, overwrite=True)
        if (out / LOG).is_file():
            plot_losses(out / LOG, out / PLOT)
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - started
    return PretrainResult(out, encoder_dir, len(graphs), epoch, step, last_epoch_means, seconds, resumed_from)
