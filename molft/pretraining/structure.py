"""Structural-property prediction: predict what a masked atom's place in the graph is like.

Structural self-supervision, after Z. Hu et al. ("Pre-training Graph Neural Networks for Generic
Structural Feature Extraction", 2019: predict each node's degree and other structural features)
and Jin et al. ("Self-supervised Learning on Graphs: Deep Insights and New Direction", 2020:
NodeProperty), made harder by masking. Atoms are masked as in attribute masking
(:func:`~molft.pretraining.masking.mask_graph`: every atom feature column of a masked atom set
to the mask row, and by default its bonds' features too); then one linear head per property
predicts, from the masked atom's embedding, properties its own input no longer shows:

========== ==================================================== ===========================
property   what it is                                           classes
========== ==================================================== ===========================
degree     bonds to other atoms in the graph (heavy-atom        0, 1, 2, 3, 4, 5 or more
           degree), counted from ``edge_index``
num_hs     hydrogens on the atom, read from the unmasked        0, 1, 2, 3, 4 or more
           ``total_num_hs`` column (vocabularies with one)
ring_size  the smallest cycle of bonds through the atom         none, 3, 4, 5, 6, 7 or more
           (:func:`smallest_ring_sizes`, from the graph alone)
in_ring    whether such a cycle exists                          no, yes
aromatic   read from the unmasked ``is_aromatic`` column, or,   no, yes
           without one, whether a bond of the atom is aromatic
========== ==================================================== ===========================

Every target comes from the featurized graph in the transform (no RDKit): columns are found by
feature name in the vocabulary, never by number. Each column of a masked atom is masked, so the
answer has to come from the neighbourhood; with ``mask_bonds`` (the default) the masked atom's
bonds are masked too, so aromaticity and ring membership cannot be read off its bond types
either and must come from the shape of the graph. ``in_ring`` is ``ring_size != none``; it is on
the menu but not in the default set, which would count ring information twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from molft.errors import InputError
from molft.featurize.vocab import Vocabulary, get_vocabulary
from molft.models.encoder import EncoderConfig
from molft.pretraining.masking import BOND_TYPE, mask_graph
from molft.pretraining.objectives import Objective, node_dim, world_mean

#: property -> number of classes (see the module doc)
STRUCTURE_PROPERTIES: dict[str, int] = {"degree": 6, "num_hs": 5, "ring_size": 6, "in_ring": 2, "aromatic": 2}
#: ring-size classes: 0 = in no ring, 1..4 = 3..6 atoms, 5 = 7 or more
RING_SIZE_CLASSES = ("none", "3", "4", "5", "6", "7+")
NUM_HS = "total_num_hs"
IS_AROMATIC = "is_aromatic"


def check_share(owner: str, name: str, value: object) -> float:
    """``value`` as a float if it is a number in [0, 1).

    Raises:
        InputError: naming the objective (``owner``) and the option (``name``).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise InputError(f"{owner}: {name} must be a number in [0, 1), got {value!r}")
    return float(value)


def check_flag(owner: str, name: str, value: object) -> bool:
    """``value`` if it is a bool; else an :class:`InputError` naming the option."""
    if not isinstance(value, bool):
        raise InputError(f"{owner}: {name} must be true or false, got {value!r}")
    return value


def check_choices(owner: str, name: str, value: object, choices: Sequence[str]) -> list[str]:
    """A non-empty list of distinct names out of ``choices`` (a comma-separated string works too).

    Raises:
        InputError: naming the option, the offending entry and the choices.
    """
    items = [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(isinstance(item, str) for item in items):
        raise InputError(
            f"{owner}: {name} must be a non-empty list of names out of {', '.join(choices)}; got {value!r}"
        )
    for item in items:
        if item not in choices:
            raise InputError(f"{owner}: unknown {name} entry {item!r}; choose from: {', '.join(choices)}")
    if len(set(items)) != len(items):
        raise InputError(f"{owner}: {name} lists an entry twice: {list(items)}")
    return list(items)


def neighbour_lists(edge_index: Tensor, num_nodes: int) -> list[list[int]]:
    """Each atom's neighbours, from ``edge_index: [2, num_edges]`` (both directions of each bond)."""
    neighbours: list[list[int]] = [[] for _ in range(num_nodes)]
    for u, v in zip(*edge_index.tolist()):
        neighbours[u].append(v)
    return neighbours


def smallest_ring_sizes(neighbours: list[list[int]], atoms: Sequence[int]) -> list[int]:
    """The number of atoms in the smallest cycle through each of ``atoms`` (0 when in none).

    A breadth-first search from the atom labels every atom with the neighbour of the source it
    was reached through; the smallest cycle through the source closes on an edge between two
    differently labelled atoms ``u``, ``v`` and has ``d(u) + d(v) + 1`` atoms. The search stops
    once no shorter cycle can turn up, or once a cycle is known and any other would also be 7+.

    Example:
        >>> graph = smiles_to_graph("C1CC1CCc1ccccc1")
        >>> smallest_ring_sizes(neighbour_lists(graph.edge_index, graph.num_nodes), [0, 3, 5])
        [3, 0, 6]
    """
    sizes = []
    for source in atoms:
        distance = {source: 0}
        branch = {source: source}
        frontier, depth, best = [source], 0, 0
        while frontier:
            if best and (best <= 2 * depth + 1 or 2 * depth + 1 >= 7):
                break
            reached = []
            for u in frontier:
                for v in neighbours[u]:
                    if v not in distance:
                        distance[v] = depth + 1
                        branch[v] = v if u == source else branch[u]
                        reached.append(v)
                    elif v != source and u != source and branch[v] != branch[u]:
                        length = distance[u] + distance[v] + 1
                        best = length if not best else min(best, length)
            frontier, depth = reached, depth + 1
        sizes.append(best)
    return sizes


def _column_table(vocab: Vocabulary, feature_name: str, classes: int) -> tuple[int, Tensor] | None:
    """(column, table) mapping an index of an int-valued atom column to ``min(value, classes - 1)``
    (-1: outside the values, e.g. ``misc``); for a bool column, to 0/1. None without the column."""
    try:
        feature = vocab.atom_feature(feature_name)
    except KeyError:
        return None
    table = torch.full((feature.dim,), -1, dtype=torch.long)
    for position, value in enumerate(feature.values):
        if isinstance(value, bool):
            table[position] = int(value)
        elif isinstance(value, int):
            table[position] = min(max(value, 0), classes - 1)
    return vocab.atom.index(feature), table


class StructurePrediction(Objective):
    """Predict structural properties of masked atoms: degree, hydrogens, ring size, aromaticity.

    See the module doc for the properties and where each target comes from. The encoder reads
    the masked graph; one linear head per property maps a masked atom's embedding to that
    property's classes; the loss is the sum over properties of the mean cross-entropy over the
    masked atoms (each mean a :func:`~molft.pretraining.objectives.world_mean`).

    Args:
        encoder_config: the encoder being pretrained.
        mask_rate: share of atoms to mask (``int(n * rate + 1)`` atoms, as attribute masking).
        properties: which properties to predict, out of ``degree``, ``num_hs``, ``ring_size``,
            ``in_ring``, ``aromatic`` (a list, or a comma-separated string). None: ``degree``,
            ``ring_size``, ``aromatic``, and ``num_hs`` where the vocabulary has hydrogen counts
            (``ogb``; ``hu2020`` has none).
        mask_bonds: also mask the bonds of masked atoms (so aromatic and ring bonds do not give
            the answers away).

    Raises:
        InputError: on an invalid option, or ``num_hs`` with a vocabulary without hydrogen counts.

    Logs:
        ``loss``, and per property ``<property>_accuracy`` over the masked atoms.

    Example:
        >>> objective = StructurePrediction(EncoderConfig(), properties=["degree", "ring_size"])
        >>> graph = objective.transform(smiles_to_graph("c1ccccc1O"), torch.Generator().manual_seed(0))
        >>> graph.structure_targets.shape   # [num_atoms, 2]; -1 on the atoms not masked
        torch.Size([7, 2])
    """

    name = "structure"

    def __init__(
        self,
        encoder_config: EncoderConfig,
        mask_rate: float = 0.15,
        properties: Sequence[str] | str | None = None,
        mask_bonds: bool = True,
    ) -> None:
        super().__init__(encoder_config)
        self.vocab = get_vocabulary(encoder_config.vocabulary)
        self.mask_rate = check_share(self.name, "mask_rate", mask_rate)
        self.mask_bonds = check_flag(self.name, "mask_bonds", mask_bonds)
        self._num_hs = _column_table(self.vocab, NUM_HS, STRUCTURE_PROPERTIES["num_hs"])
        self._aromatic = _column_table(self.vocab, IS_AROMATIC, 2)
        if properties is None:
            chosen = ["degree", "ring_size", "aromatic"] + (["num_hs"] if self._num_hs is not None else [])
        else:
            chosen = check_choices(self.name, "properties", properties, list(STRUCTURE_PROPERTIES))
        if "num_hs" in chosen and self._num_hs is None:
            raise InputError(
                f"{self.name}: properties: num_hs needs a vocabulary with a {NUM_HS!r} atom column; "
                f"{self.vocab.name!r} has none (use vocabulary 'ogb', or leave num_hs out)"
            )
        self.properties = chosen
        self.options = {"mask_rate": self.mask_rate, "properties": list(chosen), "mask_bonds": self.mask_bonds}
        bond_type = self.vocab.bond_feature(BOND_TYPE)
        self._bond_column = self.vocab.bond.index(bond_type)
        self._aromatic_bond = bond_type.values.index("AROMATIC") if "AROMATIC" in bond_type.values else None
        if "aromatic" in chosen and self._aromatic is None and self._aromatic_bond is None:
            raise InputError(f"{self.name}: vocabulary {self.vocab.name!r} tells no aromatic atoms or bonds")
        width = node_dim(encoder_config)
        self.heads = nn.ModuleDict({p: nn.Linear(width, STRUCTURE_PROPERTIES[p]) for p in chosen})

    def targets(self, data: Data, atoms: Tensor) -> Tensor:
        """The property classes of ``atoms`` ([num_nodes] bool) of an unmasked graph.

        Returns:
            [num_nodes, len(properties)] int64, one column per property in ``properties``
            order; -1 on the other atoms, and where a property is unknown (a ``misc`` count).
        """
        num_nodes = data.x.size(0)
        chosen = atoms.nonzero().view(-1)
        wanted = set(self.properties)
        columns: dict[str, Tensor] = {}
        if wanted & {"ring_size", "in_ring"}:
            found = smallest_ring_sizes(neighbour_lists(data.edge_index, num_nodes), chosen.tolist())
            sizes = torch.tensor(found, dtype=torch.long)
            columns["ring_size"] = torch.where(sizes == 0, 0, sizes.clamp(max=7) - 2)  # none, 3, ..., 7+
            columns["in_ring"] = (sizes > 0).long()
        if "degree" in wanted:
            degree = torch.bincount(data.edge_index[0], minlength=num_nodes)[chosen]
            columns["degree"] = degree.clamp(max=STRUCTURE_PROPERTIES["degree"] - 1)
        if "num_hs" in wanted and self._num_hs is not None:
            column, table = self._num_hs
            columns["num_hs"] = table[data.x[chosen, column]]
        if "aromatic" in wanted:
            columns["aromatic"] = self._aromatic_atoms(data)[chosen]
        out = torch.full((num_nodes, len(self.properties)), -1, dtype=torch.long)
        for j, prop in enumerate(self.properties):
            out[chosen, j] = columns[prop]
        return out

    def _aromatic_atoms(self, data: Data) -> Tensor:
        """[num_nodes] 0/1: the ``is_aromatic`` column, or else whether a bond of the atom is aromatic."""
        if self._aromatic is not None:
            column, table = self._aromatic
            return table[data.x[:, column]]
        aromatic_edge = data.edge_attr[:, self._bond_column] == self._aromatic_bond
        has_aromatic = torch.zeros(data.x.size(0), dtype=torch.long)
        has_aromatic[data.edge_index[0, aromatic_edge]] = 1
        return has_aromatic

    def transform(self, data: Data, generator: torch.Generator | None = None) -> Data:
        """Mask atoms (and their bonds) and add their property classes.

        Adds ``structure_x``, ``structure_atom_mask`` (and with ``mask_bonds``
        ``structure_edge_attr``, ``structure_bond_mask``) as :func:`~molft.pretraining.masking.mask_graph`
        does, and ``structure_targets: [num_nodes, len(properties)]`` (:meth:`targets`).
        """
        out = mask_graph(data, self.vocab, self.name, self.mask_rate, self.mask_bonds, generator)
        out[f"{self.name}_targets"] = self.targets(data, out[f"{self.name}_atom_mask"])
        return out

    def loss(self, encoder: nn.Module, batch: Data) -> tuple[Tensor, dict[str, float]]:
        """Summed cross-entropies of the masked atoms' property classes."""
        p = self.name
        edge_attr = batch[f"{p}_edge_attr"] if self.mask_bonds else batch.edge_attr
        h = encoder(batch[f"{p}_x"], batch.edge_index, edge_attr)
        atoms = batch[f"{p}_atom_mask"]
        embedding, targets = h[atoms], batch[f"{p}_targets"][atoms]
        total: Tensor | None = None
        logs: dict[str, float] = {}
        for j, prop in enumerate(self.properties):
            target = targets[:, j]
            known = target >= 0
            logits = self.heads[prop](embedding[known])
            part = world_mean(F.cross_entropy(logits, target[known], reduction="none"))
            total = part if total is None else total + part
            hits = logits.detach().argmax(dim=-1) == target[known]
            logs[f"{prop}_accuracy"] = float(hits.float().mean()) if hits.numel() else float("nan")
        assert total is not None  # properties is never empty
        logs["loss"] = float(total.detach())
        return total, logs
