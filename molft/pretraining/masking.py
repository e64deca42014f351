"""Masked-atom objectives: attribute masking (Hu et al. 2020) and GraphMAE (Hou et al. 2022).

**Which rows mask an atom or a bond** (:func:`atom_mask_row`, :func:`bond_mask_row`) is read from
the vocabulary:

* ``hu2020`` has a ``mask`` token, as in ``snap-stanford/pretrain-gnns`` ``chem/util.py``
  ``MaskAtom``: a masked atom becomes ``[mask, 0]`` (atom type = the mask token, chirality index
  0) and a masked bond ``[mask, 0]`` (bond type = the mask token, direction index 0), exactly their
  ``[num_atom_type, 0]`` and ``[num_edge_type, 0]``.
* ``ogb`` has no mask token, and molft adds none to it (a vocabulary is a published format).
  There the other columns would give the atom away (degree, hydrogens, hybridization, aromaticity
  pin the element down most of the time), so a masked atom gets *every* column set to that
  feature's unknown bucket (``misc``; ``False`` for the two yes/no columns, which have none), and
  a masked bond likewise. The ``misc`` rows are almost never seen in real molecules, so they
  act as the mask token; at fine-tuning time an atom outside the vocabulary lands on the same
  rows, which is what "unknown" should mean anyway. This keeps the encoder's input plain
  indices, so nothing of the masking survives into the saved encoder.

**How many atoms**: ``int(num_atoms * mask_rate + 1)``, at most all of them, as in ``MaskAtom``
(so at least one; about 15% plus one atom with the default rate).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import MessagePassing

from molft.errors import InputError
from molft.featurize.vocab import MASK, Vocabulary, get_vocabulary
from molft.models.encoder import BondEncoder, EncoderConfig
from molft.pretraining.objectives import Objective, node_dim, world_mean

ATOM_TYPE = "atomic_num"
BOND_TYPE = "bond_type"


def atom_mask_row(vocab: Vocabulary) -> list[int]:
    """The atom feature row that replaces a masked atom (see module doc)."""
    atom_type = vocab.atom_feature(ATOM_TYPE)
    if MASK in atom_type.specials:
        return [atom_type.index(MASK) if feature is atom_type else 0 for feature in vocab.atom]
    return [feature.unknown_index for feature in vocab.atom]


def bond_mask_row(vocab: Vocabulary) -> list[int]:
    """The bond feature row that replaces a masked bond (see module doc)."""
    bond_type = vocab.bond_feature(BOND_TYPE)
    if MASK in bond_type.specials:
        return [bond_type.index(MASK) if feature is bond_type else 0 for feature in vocab.bond]
    return [feature.unknown_index for feature in vocab.bond]


def sample_atom_mask(num_nodes: int, mask_rate: float, generator: torch.Generator | None = None) -> Tensor:
    """Choose ``int(num_nodes * mask_rate + 1)`` atoms (at most all) uniformly at random.

    Returns:
        [num_nodes] bool, True for the chosen atoms.
    """
    count = min(num_nodes, int(num_nodes * mask_rate + 1))
    chosen = torch.randperm(num_nodes, generator=generator)[:count]
    mask = torch.zeros(num_nodes, dtype=torch.bool)
    mask[chosen] = True
    return mask


def mask_graph(
    data: Data,
    vocab: Vocabulary,
    prefix: str,
    mask_rate: float,
    mask_edges: bool,
    generator: torch.Generator | None = None,
) -> Data:
    """A copy of ``data`` with masked atom (and bond) features added under ``prefix``.

    Adds ``{prefix}_x: [num_nodes, num_atom_features]`` (``x`` with masked atoms replaced) and
    ``{prefix}_atom_mask: [num_nodes]`` bool. With ``mask_edges``, also
    ``{prefix}_edge_attr: [num_edges, num_bond_features]`` (every bond touching a masked atom
    replaced, both directions) and ``{prefix}_bond_mask: [num_edges]`` bool, True at the first
    direction of each such bond (each bond is predicted once). ``data`` is not changed.
    """
    out = copy.copy(data)
    atom_mask = sample_atom_mask(data.num_nodes, mask_rate, generator)
    masked_x = data.x.clone()
    masked_x[atom_mask] = masked_x.new_tensor(atom_mask_row(vocab))
    out[f"{prefix}_x"] = masked_x
    out[f"{prefix}_atom_mask"] = atom_mask
    if mask_edges:
        touched = atom_mask[data.edge_index[0]] | atom_mask[data.edge_index[1]]
        masked_attr = data.edge_attr.clone()
        masked_attr[touched] = masked_attr.new_tensor(bond_mask_row(vocab))
        first_direction = torch.arange(touched.numel()) % 2 == 0
        out[f"{prefix}_edge_attr"] = masked_attr
        out[f"{prefix}_bond_mask"] = touched & first_direction
    return out


def _check_rate(mask_rate: float) -> None:
    if isinstance(mask_rate, bool) or not isinstance(mask_rate, (int, float)) or not 0 <= mask_rate < 1:
        raise InputError(f"mask_rate must be a number in [0, 1), got {mask_rate!r}")


class AttrMasking(Objective):
    """Attribute masking (Hu et al., ICLR 2020): predict the type of masked atoms (and bonds).

    The encoder reads the graph with masked atoms (see the module doc for what a mask is in
    each vocabulary); a linear head on each masked atom's embedding predicts its original atom
    type (cross-entropy over the vocabulary's ``atomic_num`` entries). With ``mask_edges``, the
    bonds touching masked atoms are masked too, and a linear head on the sum of the two end
    atoms' embeddings predicts each one's bond type; the two losses add, as in their code.

    Args:
        encoder_config: the encoder being pretrained.
        mask_rate: share of atoms to mask (``int(n * rate + 1)`` atoms, as in ``MaskAtom``).
        mask_edges: also mask and predict the bonds incident to masked atoms.

    Logs:
        ``loss``, ``accuracy`` (atom type), and with ``mask_edges`` ``bond_loss``, ``bond_accuracy``.
    """

    name = "attr_masking"

    def __init__(self, encoder_config: EncoderConfig, mask_rate: float = 0.15, mask_edges: bool = False) -> None:
        super().__init__(encoder_config)
        _check_rate(mask_rate)
        self.options = {"mask_rate": float(mask_rate), "mask_edges": bool(mask_edges)}
        self.vocab = get_vocabulary(encoder_config.vocabulary)
        self.mask_rate = float(mask_rate)
        self.mask_edges = bool(mask_edges)
        width = node_dim(encoder_config)
        self.atom_head = nn.Linear(width, self.vocab.atom_feature(ATOM_TYPE).dim)
        self._atom_column = self.vocab.atom.index(self.vocab.atom_feature(ATOM_TYPE))
        self.bond_head = nn.Linear(width, self.vocab.bond_feature(BOND_TYPE).dim) if mask_edges else None
        self._bond_column = self.vocab.bond.index(self.vocab.bond_feature(BOND_TYPE))

    def transform(self, data: Data, generator: torch.Generator | None = None) -> Data:
        """Mask atoms (and bonds); see :func:`mask_graph`."""
        return mask_graph(data, self.vocab, self.name, self.mask_rate, self.mask_edges, generator)

    def loss(self, encoder: nn.Module, batch: Data) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy of the masked atoms' (and bonds') types."""
        p = self.name
        edge_attr = batch[f"{p}_edge_attr"] if self.mask_edges else batch.edge_attr
        h = encoder(batch[f"{p}_x"], batch.edge_index, edge_attr)
        atoms = batch[f"{p}_atom_mask"]
        logits = self.atom_head(h[atoms])
        target = batch.x[atoms, self._atom_column]
        loss = world_mean(F.cross_entropy(logits, target, reduction="none"))
        logs = {"loss": float(loss.detach()), "accuracy": _accuracy(logits, target)}
        if self.bond_head is not None:
            bonds = batch[f"{p}_bond_mask"]
            ends = batch.edge_index[:, bonds]
            bond_logits = self.bond_head(h[ends[0]] + h[ends[1]])
            bond_target = batch.edge_attr[bonds, self._bond_column]
            bond_loss = world_mean(F.cross_entropy(bond_logits, bond_target, reduction="none"))
            logs.update(bond_loss=float(bond_loss.detach()), bond_accuracy=_accuracy(bond_logits, bond_target))
            loss = loss + bond_loss
            logs["loss"] = float(loss.detach())
        return loss, logs


def _accuracy(logits: Tensor, target: Tensor) -> float:
    if target.numel() == 0:
        return float("nan")
    return float((logits.argmax(dim=-1) == target).float().mean())


class GINDecoderLayer(MessagePassing):
    """One GIN layer from ``in_dim`` to ``out_dim``, GraphMAE's decoder.

    .. math::
        \\mathbf{y}_i = \\mathrm{MLP}\\Big(\\mathbf{z}_i + \\sum_{j \\in \\mathcal{N}(i)}
        \\mathbf{z}_j + \\mathbf{e}_{ji}\\Big), \\quad \\mathrm{MLP}: \\text{in} \\to 2\\,\\text{in} \\to \\text{out}

    Args:
        in_dim: node input width.
        out_dim: output width.
        bond_dims: categories of each bond feature (its own bond embedding).

    Shapes:
        - input: ``z: [num_nodes, in_dim]``, ``edge_index: [2, num_edges]``,
          ``edge_attr: [num_edges, len(bond_dims)]`` int64
        - output: ``[num_nodes, out_dim]``
    """

    def __init__(self, in_dim: int, out_dim: int, bond_dims: list[int]) -> None:
        super().__init__(aggr="add")
        self.bond_encoder = BondEncoder(bond_dims, in_dim)
        self.mlp = nn.Sequential(nn.Linear(in_dim, 2 * in_dim), nn.ReLU(), nn.Linear(2 * in_dim, out_dim))

    def forward(self, z: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        return self.mlp(z + self.propagate(edge_index, z=z, edge_attr=self.bond_encoder(edge_attr)))

    def message(self, z_j: Tensor, edge_attr: Tensor) -> Tensor:
        return z_j + edge_attr


def scaled_cosine_error(prediction: Tensor, target: Tensor, gamma: float) -> Tensor:
    """GraphMAE's scaled cosine error per row: ``(1 - cos(prediction, target)) ** gamma``.

    Args:
        prediction: [num_rows, dim].
        target: [num_rows, dim].

    Returns:
        [num_rows] errors in [0, 2 ** gamma].
    """
    cosine = F.cosine_similarity(prediction, target, dim=-1)
    return (1.0 - cosine).pow(gamma)


GRAPHMAE_TARGETS = ("atom_type", "features")


class GraphMAE(Objective):
    """GraphMAE (Hou et al., KDD 2022): reconstruct masked atoms' features through a re-masked decoder.

    The encoder reads the masked graph (masks as in :class:`AttrMasking`). Its node embeddings
    go through PReLU and a bias-free linear map; the rows of masked atoms are then set to zero
    again ("re-masking", so the decoder must rebuild them from their neighbours), and a one-layer
    GIN decoder (:class:`GINDecoderLayer`) outputs a vector per atom, scored against the target
    with the scaled cosine error, averaged over the masked atoms.

    The target is fixed input data, never a learned embedding: a learned target can collapse
    (encoder and target embedding agree on a constant) unless it is frozen or stop-gradient'd,
    and GraphMAE's own molecular pretraining (``THUDM/GraphMAE`` ``chem/``) reconstructs the
    one-hot atom type. So:

    * ``target="atom_type"`` (default): the one-hot of the atom type over the vocabulary's
      ``atomic_num`` entries, as GraphMAE's ``chem`` code does.
    * ``target="features"``: the concatenated one-hots of every atom feature column; worth it
      with the ``ogb`` vocabulary, whose masks hide all nine columns.

    Args:
        encoder_config: the encoder being pretrained.
        mask_rate: share of atoms to mask (GraphMAE's molecular setting: 0.25).
        gamma: the exponent of the scaled cosine error (>= 1; larger down-weights easy atoms).
            The paper tunes it in 1..3; GraphMAE's ``chem`` script defaults to 1. molft uses 2:
            most masked atoms are carbons, which become easy quickly, and a larger gamma lets
            the rarer, harder atoms weigh more.
        target: ``"atom_type"`` or ``"features"``.

    Logs:
        ``loss``, ``accuracy`` (argmax of the atom-type block vs the true type).
    """

    name = "graphmae"

    def __init__(
        self, encoder_config: EncoderConfig, mask_rate: float = 0.25, gamma: float = 2.0, target: str = "atom_type"
    ) -> None:
        super().__init__(encoder_config)
        _check_rate(mask_rate)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 1:
            raise InputError(f"gamma must be a number >= 1, got {gamma!r}")
        if target not in GRAPHMAE_TARGETS:
            raise InputError(f"unknown GraphMAE target {target!r}; choose one of: {', '.join(GRAPHMAE_TARGETS)}")
        self.options = {"mask_rate": float(mask_rate), "gamma": float(gamma), "target": target}
        self.vocab = get_vocabulary(encoder_config.vocabulary)
        self.mask_rate, self.gamma, self.target = float(mask_rate), float(gamma), target
        self._atom_column = self.vocab.atom.index(self.vocab.atom_feature(ATOM_TYPE))
        self._columns = [self._atom_column] if target == "atom_type" else list(range(len(self.vocab.atom)))
        self._dims = [self.vocab.atom_dims[c] for c in self._columns]
        hidden = encoder_config.hidden_dim
        self.activation = nn.PReLU()
        self.encoder_to_decoder = nn.Linear(node_dim(encoder_config), hidden, bias=False)
        self.decoder = GINDecoderLayer(hidden, sum(self._dims), self.vocab.bond_dims)

    def transform(self, data: Data, generator: torch.Generator | None = None) -> Data:
        """Mask atoms; see :func:`mask_graph`."""
        return mask_graph(data, self.vocab, self.name, self.mask_rate, False, generator)

    def target_of(self, x: Tensor) -> Tensor:
        """The reconstruction target of atoms ``x: [num_atoms, num_atom_features]``: [num_atoms, sum(dims)]."""
        parts = [F.one_hot(x[:, c], dim) for c, dim in zip(self._columns, self._dims)]
        return torch.cat(parts, dim=-1).float()

    def loss(self, encoder: nn.Module, batch: Data) -> tuple[Tensor, dict[str, float]]:
        """Scaled cosine error between the decoded masked atoms and their original features."""
        p = self.name
        atoms = batch[f"{p}_atom_mask"]
        h = encoder(batch[f"{p}_x"], batch.edge_index, batch.edge_attr)
        z = self.encoder_to_decoder(self.activation(h))
        z = z.masked_fill(atoms[:, None], 0.0)
        reconstruction = self.decoder(z, batch.edge_index, batch.edge_attr)[atoms]
        target = self.target_of(batch.x[atoms])
        loss = world_mean(scaled_cosine_error(reconstruction, target, self.gamma))
        type_block = self._columns.index(self._atom_column)
        start = sum(self._dims[:type_block])
        logits = reconstruction[:, start : start + self._dims[type_block]]
        accuracy = _accuracy(logits.detach(), batch.x[atoms, self._atom_column])
        return loss, {"loss": float(loss.detach()), "accuracy": accuracy}
