"""The one training loop, shared by pretraining and fine-tuning.

A caller supplies ``loss_of(batch) -> (loss, logs)`` and its optimizer; :func:`train_step` does
the rest of a step (zero the gradients, forward, backward, clip, optimizer step, scheduler step)
and :func:`run_epoch` walks a loader with it, keeping running means of the logs. What differs
between pretraining and fine-tuning (a logging window, checkpoints every N steps, a stop-after
hook, validation at the end of the epoch) stays with the caller, as the ``after_step`` hook and
the code around the epoch. The learning-rate schedule (:func:`lr_factor`, :func:`lr_scheduler`)
and the check that a resumed run has its original settings (:func:`require_same_settings`) live
here once too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch
from tqdm.auto import tqdm

from molft.errors import InputError

#: learning-rate schedules: ``constant``, or ``cosine`` (linear warmup, then cosine decay to 0)
SCHEDULES = ("constant", "cosine")

LossFunction = Callable[[Batch], tuple[Tensor, Mapping[str, float]]]


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str = "cosine") -> float:
    """Multiplier of the base learning rate at ``step``: 1 (constant), or linear warmup to 1 then
    cosine decay to 0.

    Example:
        >>> [round(lr_factor(s, total_steps=10, warmup_steps=2), 2) for s in (0, 1, 2, 6, 10)]
        [0.5, 1.0, 1.0, 0.5, 0.0]
    """
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    if schedule == "constant":
        return 1.0
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lr_scheduler(
    optimizer: torch.optim.Optimizer, *, schedule: str, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler that scales every group's rate by :func:`lr_factor`; step it once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, schedule)
    )


def train_step(
    loss_of: LossFunction,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    max_grad_norm: float | None = None,
) -> dict[str, float]:
    """One optimizer step on ``batch``; returns the step's logs, ``"loss"`` among them.

    Gradients are clipped to ``max_grad_norm`` (None: not clipped) over every parameter the
    optimizer updates; the scheduler, if any, steps after the optimizer.
    """
    optimizer.zero_grad(set_to_none=True)
    loss, logs = loss_of(batch)
    loss.backward()
    if max_grad_norm is not None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return {**logs, "loss": float(loss.detach())}


class RunningMeans:
    """Running sums of logged floats (NaN skipped) and of graph counts; its state is plain types.

    ``means()`` is the mean per logged step of each key. Under ``torch.distributed``,
    :meth:`over_ranks` adds every rank's sums (a collective call).
    """

    def __init__(self, state: Mapping[str, Any] | None = None) -> None:
        self.sums: dict[str, float] = defaultdict(float, (state or {}).get("sums", {}))
        self.counts: dict[str, int] = defaultdict(int, (state or {}).get("counts", {}))
        self.graphs = int((state or {}).get("graphs", 0))

    def add(self, logs: Mapping[str, float], graphs: int = 0) -> None:
        for key, value in logs.items():
            if not math.isnan(value):
                self.sums[key] += value
                self.counts[key] += 1
        self.graphs += graphs

    def means(self) -> dict[str, float]:
        return {key: self.sums[key] / self.counts[key] for key in sorted(self.sums) if self.counts[key]}

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts), "graphs": self.graphs}

    def over_ranks(self, world: int) -> RunningMeans:
        """These sums added over all ranks (a collective call under DDP; itself in one process)."""
        if world <= 1:
            return self
        import torch.distributed as dist

        states: list[Any] = [None] * world
        dist.all_gather_object(states, self.state())
        merged = RunningMeans()
        for state in states:
            for key, value in state["sums"].items():
                merged.sums[key] += value
                merged.counts[key] += state["counts"][key]
            merged.graphs += state["graphs"]
        return merged


def run_epoch(
    loss_of: LossFunction,
    loader: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    max_grad_norm: float | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    description: str = "train",
    total: int | None = None,
    after_step: Callable[[Batch, dict[str, float]], bool] | None = None,
) -> RunningMeans:
    """One pass over ``loader`` with :func:`train_step`; returns the running means of its logs.

    Args:
        loss_of: maps a batch (already on ``device``) to ``(loss, logs)``.
        loader: batches.
        optimizer: steps once per batch; ``scheduler`` after it.
        max_grad_norm: gradient clipping (None for none).
        device: where batches go.
        progress: show a progress bar with the running loss; ``description`` labels it,
            ``total`` is its length when the loader has none.
        after_step: called with the batch and its logs after every step; returning True ends
            the epoch there (a stop-after hook).
    """
    means = RunningMeans()
    # the bar counts steps but never iterates the loader itself: tqdm.auto's asyncio variant calls
    # iter() on what it wraps, which would start a second, unused set of data-loader workers
    if total is None and hasattr(loader, "__len__"):
        total = len(loader)  # type: ignore[arg-type]
    bar = tqdm(total=total, desc=description, leave=False, disable=None if progress else True)
    for batch in loader:
        batch = batch.to(device)
        logs = train_step(loss_of, batch, optimizer, scheduler=scheduler, max_grad_norm=max_grad_norm)
        means.add(logs, batch.num_graphs)
        bar.update()
        bar.set_postfix(loss=f"{means.sums['loss'] / max(means.counts['loss'], 1):.4f}", refresh=False)
        if after_step is not None and after_step(batch, logs):
            break
    bar.close()
    return means


@torch.no_grad()
def predict_batches(
    forward: Callable[[Batch], torch.Tensor], loader: Iterable[Batch], device: torch.device | str = "cpu"
) -> np.ndarray:
    """Concatenate ``forward(batch)`` over ``loader`` as a NumPy array ([num_graphs, ...])."""
    outputs = [forward(batch.to(device)).detach().cpu() for batch in loader]
    return torch.cat(outputs).numpy() if outputs else np.zeros((0,), dtype=np.float32)


def require_same_settings(
    saved: Mapping[str, Any], current: Mapping[str, Any], *, where: Path, may_change: Iterable[str] = ()
) -> None:
    """Refuse to resume a run whose settings differ from those it was started with.

    Args:
        saved: the settings recorded when the run started.
        current: the settings of this call.
        where: the run (named in the message).
        may_change: keys that do not change the result (workers, progress...).

    Raises:
        InputError: naming every setting that differs, then and now.
    """
    free = set(may_change)
    differing = [
        f"{key}: {saved.get(key)!r} then, {current.get(key)!r} now"
        for key in sorted(set(saved) | set(current))
        if key not in free and saved.get(key) != current.get(key)
    ]
    if differing:
        raise InputError(
            f"{where}: cannot resume with different settings ({'; '.join(differing)}); rerun with the "
            "same ones, or start over in another directory (or without resume)"
        )
