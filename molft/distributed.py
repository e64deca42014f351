"""Distributed-training pieces: joining the process group, and BatchNorm over the global batch.

Used by pretraining under ``torchrun`` (``WORLD_SIZE > 1``); in one process every function here
is a no-op or a plain BatchNorm.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


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


def init_distributed() -> tuple[int, int, int, bool]:
    """Join the process group when run under ``torchrun`` (gloo on CPU, NCCL on CUDA).

    Returns:
        (rank, world size, local rank, whether this call created the process group).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return 0, 1, 0, False
    created = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        created = True
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), created
