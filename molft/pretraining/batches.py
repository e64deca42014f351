"""Which graphs form each pretraining batch: a pure function of ``(seed, epoch)``.

Every random draw of the per-graph transforms comes from a generator seeded with ``(seed, epoch,
graph index)`` (:class:`EpochDataset`), and the loader never touches torch's global RNG
(:func:`make_loader`); so the data of any step is the same whatever the worker count, the world
size or the step a run resumed from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from molft.featurize.graph import GraphArrays


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


class EpochDataset(torch.utils.data.Dataset):
    """Graph ``i`` of epoch ``epoch``, transformed with a generator seeded by ``(seed, epoch, i)``.

    ``targets``: attribute name -> [num_graphs, k] array; graph ``i`` gets row ``i`` as a
    ``[1, k]`` tensor under that name (graph-level targets, batched to ``[num_graphs, k]``).
    """

    def __init__(
        self, graphs: GraphArrays, transform: Callable[[Data, torch.Generator], Data], seed: int,
        targets: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.graphs = graphs
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.targets = dict(targets or {})
        for name, values in self.targets.items():
            if len(values) != len(graphs):
                raise ValueError(f"targets {name!r} has {len(values)} rows for {len(graphs)} graphs")

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> Data:
        generator = torch.Generator().manual_seed(_mix(self.seed, self.epoch, index))
        graph = self.graphs[index]
        for name, values in self.targets.items():
            graph[name] = torch.from_numpy(np.ascontiguousarray(values[index : index + 1]))
        return self.transform(graph, generator)


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
