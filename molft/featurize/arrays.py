"""Many molecular graphs in one compact columnar form: what featurizing produces and stores.

NumPy only; a graph becomes a ``torch_geometric.data.Data`` when it is indexed, the first time
torch and PyG are imported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch_geometric.data import Data


@dataclass
class GraphArrays:
    """Many molecular graphs in compact columnar form (one bond stored once).

    Indexing gives a ``Data`` with ``x: [num_atoms, num_atom_features]``,
    ``edge_index: [2, 2 * num_bonds]`` (both directions, bond k at columns 2k and 2k+1, as in
    OGB and pretrain-gnns) and ``edge_attr: [2 * num_bonds, num_bond_features]``, all int64.

    Attributes:
        x: [total_atoms, num_atom_features], small unsigned ints.
        bonds: [total_bonds, 2], atom indices local to each molecule.
        bond_attr: [total_bonds, num_bond_features].
        atom_ptr: [num_graphs + 1], where each graph's atoms start.
        bond_ptr: [num_graphs + 1], where each graph's bonds start.
    """

    x: np.ndarray
    bonds: np.ndarray
    bond_attr: np.ndarray
    atom_ptr: np.ndarray
    bond_ptr: np.ndarray

    def __len__(self) -> int:
        return len(self.atom_ptr) - 1

    def __getitem__(self, index: int) -> Data:
        import torch  # here, not at the top: featurizing never needs torch or PyG
        from torch_geometric.data import Data

        if not -len(self) <= index < len(self):
            raise IndexError(f"graph {index} out of range for {len(self)} graphs")
        index %= len(self)
        a0, a1 = self.atom_ptr[index], self.atom_ptr[index + 1]
        b0, b1 = self.bond_ptr[index], self.bond_ptr[index + 1]
        bonds = self.bonds[b0:b1].astype(np.int64)
        edge_index = np.empty((2, 2 * len(bonds)), dtype=np.int64)
        edge_index[0, 0::2], edge_index[1, 0::2] = bonds[:, 0], bonds[:, 1]
        edge_index[0, 1::2], edge_index[1, 1::2] = bonds[:, 1], bonds[:, 0]
        return Data(
            x=torch.from_numpy(self.x[a0:a1].astype(np.int64)),
            edge_index=torch.from_numpy(edge_index),
            edge_attr=torch.from_numpy(np.repeat(self.bond_attr[b0:b1].astype(np.int64), 2, axis=0)),
        )

    def __iter__(self) -> Iterator[Data]:
        return (self[i] for i in range(len(self)))

    @property
    def num_atoms(self) -> np.ndarray:
        """[num_graphs] atoms per graph."""
        return np.diff(self.atom_ptr)

    @property
    def num_bonds(self) -> np.ndarray:
        """[num_graphs] bonds per graph."""
        return np.diff(self.bond_ptr)

    def select(self, indices: Sequence[int] | np.ndarray) -> GraphArrays:
        """The graphs at ``indices``, in that order, as a new GraphArrays."""
        indices = np.asarray(indices, dtype=np.int64)
        atom_rows = _ranges(self.atom_ptr[indices], self.atom_ptr[indices + 1])
        bond_rows = _ranges(self.bond_ptr[indices], self.bond_ptr[indices + 1])
        return GraphArrays(
            x=self.x[atom_rows],
            bonds=self.bonds[bond_rows],
            bond_attr=self.bond_attr[bond_rows],
            atom_ptr=offsets(self.num_atoms[indices]),
            bond_ptr=offsets(self.num_bonds[indices]),
        )

    @classmethod
    def concat(cls, parts: Sequence[GraphArrays]) -> GraphArrays:
        """Join several GraphArrays end to end."""
        if not parts:
            raise ValueError("nothing to concatenate")
        return cls(
            x=np.concatenate([p.x for p in parts]),
            bonds=np.concatenate([p.bonds for p in parts]),
            bond_attr=np.concatenate([p.bond_attr for p in parts]),
            atom_ptr=offsets(np.concatenate([p.num_atoms for p in parts])),
            bond_ptr=offsets(np.concatenate([p.num_bonds for p in parts])),
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The five arrays by name, e.g. for saving."""
        return {
            "x": self.x,
            "bonds": self.bonds,
            "bond_attr": self.bond_attr,
            "atom_ptr": self.atom_ptr,
            "bond_ptr": self.bond_ptr,
        }


def offsets(counts: np.ndarray) -> np.ndarray:
    """Where each item starts when items of these counts are laid end to end: ``[len(counts) + 1]``.

    Example:
        >>> offsets(np.array([2, 0, 3])).tolist()
        [0, 2, 2, 5]
    """
    ptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(start, stop)`` for each pair, vectorized."""
    lengths = stops - starts
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - offsets(lengths)[:-1], lengths)
    return np.arange(lengths.sum(), dtype=np.int64) + shift
