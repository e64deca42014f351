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
        molecule_x: optional [num_graphs, num_features] float molecule-level features (scaled),
            read by a :class:`~molft.models.PropertyModel` whose head takes them.
        auxiliary_y: optional [num_graphs, num_targets] float label-free targets (e.g. scaled
            descriptors) that fine-tuning also regresses
            (:attr:`~molft.finetuning.recipe.Recipe.auxiliary_weight`).

    Each item is a ``Data`` with ``x``, ``edge_index``, ``edge_attr`` (int64), ``y: [1, num_tasks]``
    when labels are given, ``id`` when ids are given, ``molecule_x: [1, num_features]`` when
    molecule features are given and ``auxiliary_y: [1, num_targets]`` when auxiliary targets are
    given; a PyG ``DataLoader`` batches them.
    """

    def __init__(
        self,
        graphs: GraphArrays,
        y: np.ndarray | None = None,
        ids: Sequence[int] | np.ndarray | None = None,
        molecule_x: np.ndarray | None = None,
        auxiliary_y: np.ndarray | None = None,
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
        if molecule_x is not None and len(molecule_x) != len(graphs):
            raise ValueError(f"molecule features for {len(molecule_x)} graphs, but {len(graphs)} graphs")
        if auxiliary_y is not None and len(auxiliary_y) != len(graphs):
            raise ValueError(f"auxiliary targets for {len(auxiliary_y)} graphs, but {len(graphs)} graphs")
        self.molecule_x = None if molecule_x is None else torch.from_numpy(np.asarray(molecule_x, dtype=np.float32))
        self.auxiliary_y = None if auxiliary_y is None else torch.from_numpy(np.asarray(auxiliary_y, dtype=np.float32))
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
        if self.molecule_x is not None:
            data.molecule_x = self.molecule_x[idx : idx + 1]
        if self.auxiliary_y is not None:
            data.auxiliary_y = self.auxiliary_y[idx : idx + 1]
        return data

    def subset(self, indices: Sequence[int] | np.ndarray) -> GraphDataset:
        """A new GraphDataset of the graphs at ``indices`` (compact copy, not a view)."""
        indices = np.asarray(indices, dtype=np.int64)
        return GraphDataset(
            self.graphs.select(indices),
            None if self.y is None else self.y.numpy()[indices],
            None if self.ids is None else self.ids.numpy()[indices],
            None if self.molecule_x is None else self.molecule_x.numpy()[indices],
            None if self.auxiliary_y is None else self.auxiliary_y.numpy()[indices],
        )

    def with_molecule_features(self, molecule_x: np.ndarray | None) -> GraphDataset:
        """The same graphs, labels, ids and auxiliary targets with these molecule features (None: without)."""
        return GraphDataset(self.graphs, None if self.y is None else self.y.numpy(),
                            None if self.ids is None else self.ids.numpy(), molecule_x,
                            None if self.auxiliary_y is None else self.auxiliary_y.numpy())

    def with_auxiliary_targets(self, auxiliary_y: np.ndarray | None) -> GraphDataset:
        """The same graphs, labels, ids and molecule features with these auxiliary targets (None: without)."""
        return GraphDataset(self.graphs, None if self.y is None else self.y.numpy(),
                            None if self.ids is None else self.ids.numpy(),
                            None if self.molecule_x is None else self.molecule_x.numpy(), auxiliary_y)
