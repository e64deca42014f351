"""The one training loop, shared by pretraining and fine-tuning: objectives supply the loss."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch_geometric.data import Batch
from tqdm.auto import tqdm


def run_epoch(
    loss_of: Callable[[Batch], torch.Tensor],
    loader: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: torch.device | str = "cpu",
    progress: bool = False,
    description: str = "train",
    max_grad_norm: float | None = 5.0,
) -> float:
    """One pass over ``loader``: forward, backward, step; returns the mean loss per batch.

    Args:
        loss_of: maps a batch (already on ``device``) to a scalar loss.
        loader: batches.
        optimizer: steps once per batch.
        scheduler: steps once per batch, after the optimizer.
        device: where batches go.
        progress: show a progress bar with the running loss.
        description: the bar's label.
        max_grad_norm: gradient clipping (None for none).
    """
    total, batches = 0.0, 0
    bar = tqdm(loader, desc=description, leave=False, disable=None if progress else True)
    for batch in bar:
        batch = batch.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(batch)
        loss.backward()
        if max_grad_norm is not None:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += float(loss.detach())
        batches += 1
        bar.set_postfix(loss=f"{total / batches:.4f}", refresh=False)
    return total / max(batches, 1)


@torch.no_grad()
def predict_batches(
    forward: Callable[[Batch], torch.Tensor], loader: Iterable[Batch], device: torch.device | str = "cpu"
) -> np.ndarray:
    """Concatenate ``forward(batch)`` over ``loader`` as a NumPy array ([num_graphs, ...])."""
    outputs = [forward(batch.to(device)).detach().cpu() for batch in loader]
    return torch.cat(outputs).numpy() if outputs else np.zeros((0,), dtype=np.float32)
