"""A pretraining run directory on disk: the atomic checkpoint, the log and its plot.

::

    out/
      pretrain.json        the run's settings (PretrainConfig) and run metadata; ``end``: why and where
                           the last call stopped (``stopped_by``: epochs, max_steps or time_limit)
      log.jsonl            one line every ``log_every_steps`` steps, one per epoch, and a ``stop``
                           line where a step or time limit ended a call
      loss.png             the losses against steps
      checkpoint/          the latest state, replaced atomically every epoch and every N steps:
        encoder/           config.json + model.safetensors (a loadable encoder)
        objectives.safetensors   the objectives' heads
        train_state.pt     optimizer, scheduler, epoch, step, RNG states: tensors and plain types
                           only, read with torch.load(weights_only=True)
      encoder/             the result: config.json + model.safetensors, for `molft finetune --pretrained`
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from molft.checkpoints import WEIGHTS, load_training_state, save_encoder, save_training_state
from molft.io import atomic_write, complete_directory, read_jsonl, replace_directory, write_jsonl_atomic
from molft.models.encoder import GINEncoder
from molft.pretraining.objectives import ObjectiveSet

LOG = "log.jsonl"
PLOT = "loss.png"
CHECKPOINT = "checkpoint"
ENCODER_DIR = "encoder"
RUN_CONFIG = "pretrain.json"
HEADS = "objectives.safetensors"
TRAIN_STATE = "train_state.pt"


def plain_encoder(encoder: GINEncoder) -> GINEncoder:
    """A fresh GINEncoder (plain BatchNorm, on CPU) holding ``encoder``'s weights."""
    with torch.random.fork_rng(devices=[]):  # its random init must not move the training RNG
        plain = GINEncoder(encoder.config)
    plain.load_state_dict({k: v.detach().cpu() for k, v in encoder.state_dict().items()})
    return plain


def write_checkpoint(out: Path, encoder: GINEncoder, objectives: ObjectiveSet, state: dict[str, Any]) -> None:
    """Write ``out/checkpoint`` through a temporary directory and renames."""
    partial = out / (CHECKPOINT + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    save_encoder(plain_encoder(encoder), partial / ENCODER_DIR, extra={"checkpoint_step": state["step"]})
    safetensors.torch.save_file(
        {k: v.detach().cpu().contiguous() for k, v in objectives.state_dict().items()}, str(partial / HEADS)
    )
    save_training_state(partial / TRAIN_STATE, state)
    replace_directory(partial, out / CHECKPOINT)


def find_checkpoint(out: Path) -> Path | None:
    """The latest complete checkpoint (``checkpoint/``, or ``checkpoint.old/`` after a crash mid-swap)."""
    return complete_directory(out / CHECKPOINT, TRAIN_STATE)


def read_checkpoint(path: Path, encoder: GINEncoder, objectives: ObjectiveSet, device: torch.device) -> dict[str, Any]:
    state = load_training_state(path / TRAIN_STATE)
    safetensors.torch.load_model(encoder, str(path / ENCODER_DIR / WEIGHTS), strict=True, device=str(device))
    safetensors.torch.load_model(objectives, str(path / HEADS), strict=True, device=str(device))
    return state


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines written after checkpoint ``step`` (they are about to be redone)."""
    if path.is_file():
        write_jsonl_atomic(path, [record for record in read_jsonl(path) if record.get("step", 0) <= step])


def plot_losses(log: str | Path, path: str | Path) -> None:
    """Plot every ``*loss`` of the step lines of ``log.jsonl`` against the step, into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_jsonl(log)
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
    with atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)


def save_final_encoder(encoder: GINEncoder, directory: Path, pretraining: dict[str, Any]) -> None:
    """Write the pretrained encoder (``config.json`` records ``pretraining``: corpus, objectives, losses)."""
    save_encoder(plain_encoder(encoder), directory, extra={"pretraining": pretraining}, overwrite=True)
