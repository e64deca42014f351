"""A PyG dataset over compact graphs, with optional labels (NaN = missing)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch_geometric.data import Data, Dataset

from molft.featurize.graph import GraphArrays


class GraphDataset(Dataset):
    """Molecular graphs for training and inference, kept compact in memory.

    Args:
        graphs: the featurized molecules.
        y: optional [num_graphs, num_tasks] float labels; NaN marks a missing label.
        ids: optional [num_graphs] integer id per graph (e.g. the input row number).

    Each item is a ``Data`` with ``x``, ``edge_index``, ``edge_attr`` (int64), ``y: [1, num_tasks]``
    when labels are given, and ``id`` when ids are given; a PyG ``DataLoader`` batches them.
    """

    def __init__(
        self,
        graphs: GraphArrays,
        y: np.ndarray | None = None,
        ids: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if y is not None:
            y = np.asarray(y, dtype=np.float32)
            if y.ndim == 1:
                y = y[:, None]
            if len(y) != len(graphs):
                raise ValueError(f"labels for {len(y)} graphs, but {len(graphs)} graphs")
        if ids is not None and len(ids) != len(graphs):
            raise ValueError(f"ids for {len(ids)} graphs, but {len(graphs)} graphs")
        self.graphs = graphs
        self.y = None if y is None else torch.from_numpy(y)
        self.ids = None if ids is None else torch.as_tensor(np.asarray(ids, dtype=np.int64))

    @property
    def num_tasks(self) -> int:
        """Number of label columns (0 without labels)."""
        return 0 if self.y is None else self.y.shape[1]

    def len(self) -> int:
        return len(self.graphs)

    def get(self, idx: int) -> Data:
        data = self.graphs[idx]
        if self.y is not None:
            data.y = self.y[idx : idx + 1]
        if self.ids is not None:
            data.id = self.ids[idx : idx + 1]
        return data

    def subset(self, indices: Sequence[int] | np.ndarray) -> GraphDataset:
        """A new GraphDataset of the graphs at ``indices`` (compact copy, not a view)."""
        indices = np.asarray(indices, dtype=np.int64)
        return GraphDataset(
            self.graphs.select(indices),
            None if self.y is None else self.y.numpy()[indices],
            None if self.ids is None else self.ids.numpy()[indices],
        )
