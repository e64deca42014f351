"""Bond-level objectives: link prediction and bond-property prediction.

Both pick a share of a molecule's bonds, ``int(num_bonds * rate + 1)`` of them (at most all,
none in a molecule without bonds; the count rule of attribute masking), and hide something
about each from the encoder:

* ``link_prediction`` (:class:`LinkPrediction`) removes the chosen bonds, both directions, from
  the encoder's input graph and asks whether two atoms are bonded: the hidden bonds against as
  many atom pairs of the same molecule that are not bonded (the graph-autoencoder task of Kipf
  & Welling 2016; the edge tasks of Jin et al. 2020 and of GPT-GNN, Hu et al. KDD 2020);
* ``edge_property`` (:class:`EdgePropertyPrediction`) keeps the bonds but sets their features to
  the mask row (:func:`~molft.pretraining.masking.bond_mask_row`) and predicts each one's bond
  type. Unlike attribute masking's ``mask_edges``, the atoms stay as they are: the task is the
  bond alone, read from its two (visible) atoms and their neighbourhoods.

Bond ``k`` of a featurized graph is the edge pair at columns ``2k`` and ``2k + 1`` of
``edge_index`` (:class:`~molft.featurize.arrays.GraphArrays`); the transforms rely on it.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data

from molft.errors import InputError
from molft.featurize.vocab import get_vocabulary
from molft.models.encoder import EncoderConfig
from molft.pretraining.masking import BOND_TYPE, bond_mask_row, sample_atom_mask
from molft.pretraining.objectives import Objective, node_dim, world_mean
from molft.pretraining.structure import check_share

NEGATIVE_SAMPLING = ("endpoints", "uniform")


def sample_bonds(num_bonds: int, rate: float, generator: torch.Generator | None = None) -> Tensor:
    """Choose ``int(num_bonds * rate + 1)`` bonds (at most all; none of none) uniformly at random.

    Returns:
        [num_bonds] bool, True for the chosen bonds.
    """
    return sample_atom_mask(num_bonds, rate, generator)  # the same draw, over bonds


def _mlp(width: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out))


def non_bonded_pairs(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Every pair ``u < v`` of atoms with no bond between them: [2, num_pairs] int64."""
    bonded = torch.zeros(num_nodes, num_nodes, dtype=torch.bool)
    bonded[edge_index[0], edge_index[1]] = True
    rows, cols = torch.triu_indices(num_nodes, num_nodes, offset=1)
    free = ~bonded[rows, cols]
    return torch.stack([rows[free], cols[free]])


def ranking_auc(scores: Tensor, labels: Tensor) -> float:
    """Share of (positive, negative) pairs whose positive scores higher (ROC-AUC; NaN without both)."""
    positive = labels > 0.5
    num_positive, num_negative = int(positive.sum()), int((~positive).sum())
    if num_positive == 0 or num_negative == 0:
        return float("nan")
    ranks = scores.detach().argsort().argsort().double()  # 0 = lowest score
    above_negatives = ranks[positive].sum() - num_positive * (num_positive - 1) / 2
    return float(above_negatives / (num_positive * num_negative))


class LinkPrediction(Objective):
    """Link prediction: hide bonds from the encoder and tell them from atom pairs that are not bonded.

    The transform hides ``int(num_bonds * hide_rate + 1)`` bonds (both directions leave the
    encoder's ``edge_index`` and ``edge_attr``; see the module doc) and draws as many
    *negatives*, pairs of atoms of the same molecule without a bond between them (fewer when the
    molecule has fewer such pairs). An MLP (``width -> width -> 1``) on the elementwise product of
    the two atoms' embeddings scores each pair; the loss is the binary cross-entropy, averaged
    over positives and negatives.

    With the ``ogb`` vocabulary an atom's own features (degree, hydrogens, hybridization) tell
    how many bonds it should have, so an atom that lost a bond shows it: a random non-bonded pair
    rarely joins two such atoms, and "both lost a bond" would solve most pairs. So by default
    (``negatives="endpoints"``) negatives are drawn first among pairs of atoms that *both* lost a
    bond (and are not bonded to each other), and only the rest uniformly; the encoder then has to
    tell *which* of the damaged atoms belong together.

    Args:
        encoder_config: the encoder being pretrained.
        hide_rate: share of bonds to hide.
        negatives: ``"endpoints"`` (see above) or ``"uniform"`` (any non-bonded pair).

    Logs:
        ``loss``, ``accuracy`` (at logit 0), ``auc`` (positives ranked above negatives, over the batch).
    """

    name = "link_prediction"

    def __init__(self, encoder_config: EncoderConfig, hide_rate: float = 0.15, negatives: str = "endpoints") -> None:
        super().__init__(encoder_config)
        self.hide_rate = check_share(self.name, "hide_rate", hide_rate)
        if negatives not in NEGATIVE_SAMPLING:
            raise InputError(
                f"{self.name}: unknown negatives {negatives!r}; choose one of: {', '.join(NEGATIVE_SAMPLING)}"
            )
        self.negatives = negatives
        self.options = {"hide_rate": self.hide_rate, "negatives": negatives}
        self.head = _mlp(node_dim(encoder_config), 1)

    def transform(self, data: Data, generator: torch.Generator | None = None) -> Data:
        """Hide bonds and draw the pairs to score; ``data`` is not changed.

        Adds ``link_prediction_edge_index: [2, num_edges - 2 * hidden]`` and
        ``link_prediction_edge_attr`` (the graph without the hidden bonds),
        ``link_prediction_pair_index: [2, num_pairs]`` (hidden bonds first, then negatives) and
        ``link_prediction_pair_label: [num_pairs]`` float (1 for a hidden bond, 0 for a negative).
        """
        num_nodes = data.x.size(0)
        hidden = sample_bonds(data.edge_index.size(1) // 2, self.hide_rate, generator)
        hidden_edge = hidden.repeat_interleave(2)
        positives = data.edge_index[:, 0::2][:, hidden]
        candidates = non_bonded_pairs(data.edge_index, num_nodes)
        priority = torch.rand(candidates.size(1), generator=generator)
        if self.negatives == "endpoints":
            damaged = torch.zeros(num_nodes, dtype=torch.bool)
            damaged[positives.reshape(-1)] = True
            priority = priority + (~(damaged[candidates[0]] & damaged[candidates[1]])).float()  # both damaged first
        negatives = candidates[:, priority.argsort()[: positives.size(1)]]
        out = copy.copy(data)
        p = self.name
        out[f"{p}_edge_index"] = data.edge_index[:, ~hidden_edge]
        out[f"{p}_edge_attr"] = data.edge_attr[~hidden_edge]
        out[f"{p}_pair_index"] = torch.cat([positives, negatives], dim=1)
        labels = [torch.ones(positives.size(1)), torch.zeros(negatives.size(1))]
        out[f"{p}_pair_label"] = torch.cat(labels)
        return out

    def loss(self, encoder: nn.Module, batch: Data) -> tuple[Tensor, dict[str, float]]:
        """Binary cross-entropy of bonded (hidden) against non-bonded pairs."""
        p = self.name
        h = encoder(batch.x, batch[f"{p}_edge_index"], batch[f"{p}_edge_attr"])
        pairs, labels = batch[f"{p}_pair_index"], batch[f"{p}_pair_label"]
        scores = self.head(h[pairs[0]] * h[pairs[1]]).view(-1)
        loss = world_mean(F.binary_cross_entropy_with_logits(scores, labels, reduction="none"))
        hits = (scores.detach() > 0) == (labels > 0.5)
        accuracy = float(hits.float().mean()) if hits.numel() else float("nan")
        return loss, {"loss": float(loss.detach()), "accuracy": accuracy, "auc": ranking_auc(scores, labels)}


class EdgePropertyPrediction(Objective):
    """Bond-property prediction: mask bonds' features and predict each masked bond's type.

    The transform sets the features of ``int(num_bonds * mask_rate + 1)`` bonds (both
    directions) to the vocabulary's bond mask row; atoms are untouched. An MLP (``width -> width
    -> bond types``) on the sum of the bond's two atom embeddings predicts its ``bond_type``
    (cross-entropy over the vocabulary's entries, averaged over the masked bonds).

    Args:
        encoder_config: the encoder being pretrained.
        mask_rate: share of bonds to mask.

    Logs:
        ``loss``, ``accuracy``.
    """

    name = "edge_property"

    def __init__(self, encoder_config: EncoderConfig, mask_rate: float = 0.15) -> None:
        super().__init__(encoder_config)
        self.mask_rate = check_share(self.name, "mask_rate", mask_rate)
        self.options = {"mask_rate": self.mask_rate}
        self.vocab = get_vocabulary(encoder_config.vocabulary)
        bond_type = self.vocab.bond_feature(BOND_TYPE)
        self._bond_column = self.vocab.bond.index(bond_type)
        self.head = _mlp(node_dim(encoder_config), bond_type.dim)

    def transform(self, data: Data, generator: torch.Generator | None = None) -> Data:
        """Mask bonds; ``data`` is not changed.

        Adds ``edge_property_edge_attr: [num_edges, num_bond_features]`` (masked bonds' rows
        replaced, both directions) and ``edge_property_bond_mask: [num_edges]`` bool, True at the
        first direction of each masked bond (each is predicted once).
        """
        masked = sample_bonds(data.edge_index.size(1) // 2, self.mask_rate, generator)
        masked_edge = masked.repeat_interleave(2)
        attr = data.edge_attr.clone()
        attr[masked_edge] = attr.new_tensor(bond_mask_row(self.vocab))
        out = copy.copy(data)
        out[f"{self.name}_edge_attr"] = attr
        out[f"{self.name}_bond_mask"] = masked_edge & (torch.arange(masked_edge.numel()) % 2 == 0)
        return out

    def loss(self, encoder: nn.Module, batch: Data) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy of the masked bonds' types."""
        p = self.name
        h = encoder(batch.x, batch.edge_index, batch[f"{p}_edge_attr"])
        bonds = batch[f"{p}_bond_mask"]
        ends = batch.edge_index[:, bonds]
        logits = self.head(h[ends[0]] + h[ends[1]])
        target = batch.edge_attr[bonds, self._bond_column]
        loss = world_mean(F.cross_entropy(logits, target, reduction="none"))
        hits = logits.detach().argmax(dim=-1) == target
        accuracy = float(hits.float().mean()) if hits.numel() else float("nan")
        return loss, {"loss": float(loss.detach()), "accuracy": accuracy}
