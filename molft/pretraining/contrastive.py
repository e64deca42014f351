"""Graph contrastive learning (GraphCL, You et al., NeurIPS 2020): two views of a molecule agree.

Each molecule gets two *views*, each made by one augmentation drawn at random from
``augmentations``: GraphCL's four, with the counts of its code (``Shen-Lab/GraphCL``,
``transferLearning_MoleculeNet_PPI/chem/loader.py``; their ``random`` mode draws from the first
two only):

* ``drop_nodes``: drop ``int(n * aug_rate)`` atoms chosen uniformly (GraphCL's ``dropN``);
* ``subgraph``: keep ``int(n * (1 - aug_rate))`` atoms, grown from a random atom by adding a
  random neighbour of the atoms kept so far, until the size is reached or the fragment runs out
  (``subgraph``);
* ``mask_atoms``: set ``int(n * aug_rate)`` atoms to the vocabulary's mask row
  (:func:`~molft.pretraining.masking.atom_mask_row`; GraphCL's ``maskN``), keeping them;
* ``drop_bonds``: remove ``int(num_bonds * aug_rate)`` bonds, both directions (``permE``, which
  for molecules only drops).

At least one atom is always kept. **Batching:** a view has the molecule's own atoms, so its
``*_edge_index`` is offset by ``num_nodes`` as usual: a dropped atom is set to the mask row,
loses every bond, and is left out of the pooling by the view's per-atom ``keep`` mask.

Each view is encoded, mean-pooled over its kept atoms, and projected by a two-layer MLP
(``width -> width -> width``); the loss is NT-Xent (SimCLR's normalized temperature-scaled
cross-entropy): for each of the ``2N`` views of a batch of ``N`` molecules, a softmax over
cosine similarities / ``temperature`` to the other ``2N - 1`` views, whose target is the other
view of the same molecule. (GraphCL's ``chem/pretrain_graphcl.py`` scores each first view
against the second views only, the positive left out of the denominator; SimCLR's form used here
also takes same-side views as negatives and is symmetric in the two views.)

**Under DistributedDataParallel** the negatives are the views of this rank's slice of the batch
only (nothing is gathered across ranks), so the loss is not that of one process on the global
batch: each rank contrasts its own ``N / world_size`` molecules. The mean over anchors is a
:func:`~molft.pretraining.objectives.world_mean`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import global_mean_pool

from molft.errors import InputError
from molft.featurize.vocab import get_vocabulary
from molft.models.encoder import EncoderConfig
from molft.pretraining.masking import atom_mask_row
from molft.pretraining.objectives import Objective, node_dim, world_mean
from molft.pretraining.structure import check_choices, check_share, neighbour_lists

AUGMENTATIONS = ("drop_nodes", "subgraph", "mask_atoms", "drop_bonds")
VIEWS = ("view1", "view2")


def _random_subgraph(data: Data, size: int, generator: torch.Generator | None) -> Tensor:
    """[num_nodes] bool: ``size`` atoms grown from a random atom through random neighbours."""
    num_nodes = data.x.size(0)
    neighbours = neighbour_lists(data.edge_index, num_nodes)
    start = int(torch.randint(num_nodes, (), generator=generator))
    kept, frontier = {start}, sorted(set(neighbours[start]))
    while len(kept) < size and frontier:
        chosen = frontier[int(torch.randint(len(frontier), (), generator=generator))]
        kept.add(chosen)
        frontier = sorted((set(frontier) | set(neighbours[chosen])) - kept)
    keep = torch.zeros(num_nodes, dtype=torch.bool)
    keep[list(kept)] = True
    return keep


def augment(
    data: Data, augmentation: str, aug_rate: float, mask_row: list[int], generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One augmented view of a molecule, on its own atoms (see the module doc).

    Args:
        data: the molecule (``x``, ``edge_index``, ``edge_attr``); not changed.
        augmentation: one of :data:`AUGMENTATIONS`.
        aug_rate: the share of atoms or bonds it acts on.
        mask_row: the atom feature row of a masked or dropped atom.
        generator: the source of every random draw.

    Returns:
        ``x: [num_nodes, num_atom_features]``, ``edge_index: [2, num_kept_edges]``,
        ``edge_attr: [num_kept_edges, num_bond_features]`` and ``keep: [num_nodes]`` bool.
    """
    num_nodes, num_bonds = data.x.size(0), data.edge_index.size(1) // 2
    x = data.x.clone()
    keep = torch.ones(num_nodes, dtype=torch.bool)
    kept_bonds = torch.ones(num_bonds, dtype=torch.bool)
    if augmentation == "mask_atoms":
        x[torch.randperm(num_nodes, generator=generator)[: int(num_nodes * aug_rate)]] = x.new_tensor(mask_row)
    elif augmentation == "drop_bonds":
        kept_bonds[torch.randperm(num_bonds, generator=generator)[: int(num_bonds * aug_rate)]] = False
    elif augmentation == "drop_nodes":
        dropped = min(int(num_nodes * aug_rate), num_nodes - 1)
        keep[torch.randperm(num_nodes, generator=generator)[: max(dropped, 0)]] = False
    elif augmentation == "subgraph":
        if num_nodes > 0:
            keep = _random_subgraph(data, max(int(num_nodes * (1 - aug_rate)), 1), generator)
    else:
        raise InputError(f"unknown augmentation {augmentation!r}; choose from: {', '.join(AUGMENTATIONS)}")
    x[~keep] = x.new_tensor(mask_row)
    kept_edges = kept_bonds.repeat_interleave(2) & keep[data.edge_index[0]] & keep[data.edge_index[1]]
    return x, data.edge_index[:, kept_edges], data.edge_attr[kept_edges], keep


def nt_xent(first: Tensor, second: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """NT-Xent per view: each row of ``first`` and ``second`` against the other ``2N - 1`` rows.

    Args:
        first: [N, dim] projections of the first views.
        second: [N, dim] projections of the second views (row ``i`` pairs with row ``i`` of ``first``).
        temperature: divides the cosine similarities.

    Returns:
        [2N] cross-entropies, and [2N] bool: whether the most similar other row is the positive.
    """
    num = first.size(0)
    z = F.normalize(torch.cat([first, second]), dim=-1)
    similarity = (z @ z.t()) / temperature
    self_pairs = torch.eye(2 * num, dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_pairs, float("-inf"))
    positive = torch.cat([torch.arange(num, 2 * num), torch.arange(num)]).to(z.device)
    losses = F.cross_entropy(similarity, positive, reduction="none")
    return losses, similarity.detach().argmax(dim=-1) == positive


class GraphContrastive(Objective):
    """GraphCL: pull two augmented views of a molecule together, push other molecules' views away.

    See the module doc for the augmentations, the batching and the NT-Xent loss (and why, under
    DDP, it only contrasts each rank's own molecules). Two encoder passes per step, one per view.

    Args:
        encoder_config: the encoder being pretrained.
        augmentations: the augmentations each view draws one from, uniformly (a list, or a
            comma-separated string), out of ``drop_nodes``, ``subgraph``, ``mask_atoms``, ``drop_bonds``.
        aug_rate: the share of atoms or bonds an augmentation acts on (GraphCL: 0.2).
        temperature: NT-Xent temperature (> 0; GraphCL's molecular pretraining uses 0.1).

    Logs:
        ``loss``; ``accuracy`` (share of views whose nearest other view is their positive);
        ``positive_similarity`` (mean cosine similarity of the two views' projections; near 1
        for every pair *and* near 1 for negatives would mean collapse).
    """

    name = "contrastive"

    def __init__(
        self,
        encoder_config: EncoderConfig,
        augmentations: list[str] | str = AUGMENTATIONS,
        aug_rate: float = 0.2,
        temperature: float = 0.1,
    ) -> None:
        super().__init__(encoder_config)
        self.augmentations = check_choices(self.name, "augmentations", augmentations, AUGMENTATIONS)
        self.aug_rate = check_share(self.name, "aug_rate", aug_rate)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise InputError(f"{self.name}: temperature must be a number > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.options = {"augmentations": list(self.augmentations), "aug_rate": self.aug_rate,
                        "temperature": self.temperature}
        self._mask_row = atom_mask_row(get_vocabulary(encoder_config.vocabulary))
        width = node_dim(encoder_config)
        self.projection = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def transform(self, data: Data, generator: torch.Generator | None = None) -> Data:
        """Add two augmented views; ``data`` is not changed.

        Adds, for ``v`` in ``view1``, ``view2``: ``contrastive_<v>_x: [num_nodes, num_atom_features]``,
        ``contrastive_<v>_edge_index: [2, num_view_edges]``, ``contrastive_<v>_edge_attr`` and
        ``contrastive_<v>_keep: [num_nodes]`` bool (atoms in the view); and
        ``contrastive_augmentations: [1, 2]`` (which augmentation made each view, an index into
        ``augmentations``).
        """
        out = copy.copy(data)
        chosen = torch.randint(len(self.augmentations), (2,), generator=generator)
        for view, which in zip(VIEWS, chosen.tolist()):
            x, edge_index, edge_attr, keep = augment(
                data, self.augmentations[which], self.aug_rate, self._mask_row, generator
            )
            p = f"{self.name}_{view}"
            out[f"{p}_x"], out[f"{p}_edge_index"], out[f"{p}_edge_attr"] = x, edge_index, edge_attr
            out[f"{p}_keep"] = keep
        out[f"{self.name}_augmentations"] = chosen.view(1, 2)
        return out

    def embed_view(self, encoder: nn.Module, batch: Data, view: str) -> Tensor:
        """[num_graphs, width] projections of one view of every molecule of ``batch``."""
        p = f"{self.name}_{view}"
        h = encoder(batch[f"{p}_x"], batch[f"{p}_edge_index"], batch[f"{p}_edge_attr"])
        keep = batch[f"{p}_keep"]
        return self.projection(global_mean_pool(h[keep], batch.batch[keep], size=batch.num_graphs))

    def loss(self, encoder: nn.Module, batch: Data) -> tuple[Tensor, dict[str, float]]:
        """NT-Xent between the two views of every molecule, the batch's other views as negatives."""
        first, second = (self.embed_view(encoder, batch, view) for view in VIEWS)
        losses, hits = nt_xent(first, second, self.temperature)
        loss = world_mean(losses)
        cosine = F.cosine_similarity(first.detach(), second.detach(), dim=-1)
        return loss, {
            "loss": float(loss.detach()),
            "accuracy": float(hits.float().mean()),
            "positive_similarity": float(cosine.mean()),
        }
