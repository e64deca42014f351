"""Context prediction (Hu et al., ICLR 2020, section 3.1.1): substructure/context pairs and their loss.

For each molecule a random center atom is drawn. Its *substructure* is the induced subgraph on
the atoms at most ``substructure_hops`` (K) bonds from the center; the encoder being pretrained
embeds it, and the center atom's embedding stands for it. Its *context* is the induced subgraph
on the atoms more than ``context_inner_hops`` (r1) and at most ``context_outer_hops`` (r2) bonds
away (the r2-hop neighbourhood minus the r1-hop one); a separate, shallower *context encoder*
(``r2 - r1`` layers) embeds it. The *anchor* atoms lie in both (r1 < distance <= K).

In ``"cbow"`` mode (the paper's) a context is the mean (``context_pooling``) of its anchors'
context embeddings, and a logistic classifier on the dot product of substructure and context
tells each molecule's own context from those of other molecules in the batch: the batch shifted
by one place, two places, ... (``negative_samples`` shifts). In ``"skipgram"`` mode each anchor's
embedding is scored on its own, against its molecule's substructure and shifted ones.

Follows ``snap-stanford/pretrain-gnns``: ``chem/util.py`` ``ExtractSubstructureContextPair``,
``chem/batch.py`` ``BatchSubstructContext`` and ``chem/pretrain_contextpred.py`` (defaults
K = 5 layers, r1 = K - 1 = 4, r2 = r1 + 3 = 7, one negative, cbow, mean pooling).

**Batching.** The transform adds two sub-graphs to each graph, under the prefixes ``substruct_``
and ``context_``, each with its own ``*_num_nodes``; :class:`~molft.pretraining.objectives.PretrainData`
offsets every ``*_index`` attribute by its prefix's node count, so PyG's ``DataLoader`` batches
the pairs as they are (see :func:`extract_substructure_context` for the attributes).

**Molecules without a context.** A center with no atom more than r1 bonds away (small molecules)
has an empty context. Hu et al. drop such pairs silently when collating. Here they stay in the
batch with empty context tensors, take no part in the loss, and every loss call logs how many
there were (``graphs_without_context``).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter

from molft.errors import InputError
from molft.models.encoder import EncoderConfig, GINEncoder
from molft.pretraining.objectives import Objective, PretrainData, node_dim, world_mean

MODES = ("cbow", "skipgram")
CONTEXT_POOLINGS = ("mean", "sum", "max")


def hop_distances(edge_index: Tensor, num_nodes: int, source: int, max_hops: int | None = None) -> Tensor:
    """Number of bonds on a shortest path from ``source`` to every atom (breadth-first search).

    Args:
        edge_index: [2, num_edges] edges to follow (both directions of each bond).
        num_nodes: atoms in the graph.
        source: the atom to measure from.
        max_hops: stop searching beyond this distance (None: search the whole graph).

    Returns:
        [num_nodes] int64 distances; -1 for atoms not reached (another fragment, or beyond
        ``max_hops``).

    Raises:
        InputError: if ``source`` is not an atom of the graph.

    Example:
        >>> hop_distances(smiles_to_graph("CCCO").edge_index, 4, source=0).tolist()
        [0, 1, 2, 3]
    """
    if not 0 <= source < num_nodes:
        raise InputError(f"atom {source} is out of range for a graph of {num_nodes} atoms")
    neighbours: list[list[int]] = [[] for _ in range(num_nodes)]
    for u, v in zip(*edge_index.tolist()):
        neighbours[u].append(v)
    distance = [-1] * num_nodes
    distance[source] = 0
    frontier, hops = [source], 0
    while frontier and (max_hops is None or hops < max_hops):
        hops += 1
        reached = []
        for u in frontier:
            for v in neighbours[u]:
                if distance[v] < 0:
                    distance[v] = hops
                    reached.append(v)
        frontier = reached
    return torch.tensor(distance, dtype=torch.long)


def check_hops(substructure_hops: int, context_inner_hops: int, context_outer_hops: int) -> None:
    """Check K, r1 and r2: integers with ``0 <= r1 < K`` (anchors exist) and ``r1 < r2`` (contexts exist).

    Raises:
        InputError: naming the offending value.
    """
    values = {
        "substructure_hops": substructure_hops,
        "context_inner_hops": context_inner_hops,
        "context_outer_hops": context_outer_hops,
    }
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(f"{name} must be an integer >= 0, got {value!r}")
    if not context_inner_hops < substructure_hops:
        raise InputError(
            f"context_inner_hops ({context_inner_hops}) must be below substructure_hops ({substructure_hops}); "
            "otherwise substructure and context share no anchor atoms"
        )
    if not context_inner_hops < context_outer_hops:
        raise InputError(
            f"context_outer_hops ({context_outer_hops}) must be above context_inner_hops ({context_inner_hops}); "
            "otherwise every context is empty"
        )


def extract_substructure_context(
    data: Data,
    center: int,
    substructure_hops: int = 5,
    context_inner_hops: int = 4,
    context_outer_hops: int = 7,
) -> PretrainData:
    """Cut the substructure and the context around ``center`` out of one molecule (a pure function).

    Args:
        data: a molecular graph with ``x``, ``edge_index`` and ``edge_attr``; not modified.
        center: the center atom.
        substructure_hops: K; the substructure holds the atoms at most K bonds from the center.
        context_inner_hops: r1; the context holds the atoms more than r1 ...
        context_outer_hops: r2; ... and at most r2 bonds from the center.

    Returns:
        a :class:`~molft.pretraining.objectives.PretrainData` copy of ``data`` with, added:

        - ``substruct_x: [num_substruct_atoms, num_atom_features]``, ``substruct_edge_index:
          [2, num_substruct_edges]`` (substructure numbering), ``substruct_edge_attr``,
          ``substruct_num_nodes`` (int) and ``substruct_center_index: [1]``;
        - ``context_x: [num_context_atoms, num_atom_features]`` (0 rows when empty),
          ``context_edge_index``, ``context_edge_attr``, ``context_num_nodes`` (int),
          ``context_anchor_index: [num_anchors]`` (the anchors, in context numbering) and
          ``context_num_anchors`` (int; 0 exactly when the context is empty);
        - ``substruct_atoms`` and ``context_atoms``: which atoms of the molecule each sub-graph
          holds, in the molecule's own numbering (not offset when batched; for inspection).

        Atoms keep their relative order and bonds their column order, so the two directions of
        a bond stay side by side.

    Raises:
        InputError: if ``center`` is not an atom of ``data``, or the radii do not satisfy
            ``r1 < K`` and ``r1 < r2``.

    Example:
        >>> pair = extract_substructure_context(smiles_to_graph("CCCCCCCC"), center=0)
        >>> pair.substruct_atoms.tolist(), pair.context_atoms.tolist()
        ([0, 1, 2, 3, 4, 5], [5, 6, 7])
    """
    check_hops(substructure_hops, context_inner_hops, context_outer_hops)
    num_nodes = data.x.size(0)
    # molecules are small: plain NumPy on the CPU beats torch's per-call overhead here
    edge_index = data.edge_index.cpu().numpy()
    distance = hop_distances(data.edge_index, num_nodes, center, max(substructure_hops, context_outer_hops)).numpy()
    in_substruct = (distance >= 0) & (distance <= substructure_hops)
    in_context = (distance > context_inner_hops) & (distance <= context_outer_hops)
    substruct_edges, substruct_edge_index = _induced_subgraph(in_substruct, edge_index)
    context_edges, context_edge_index = _induced_subgraph(in_context, edge_index)
    context_position = np.cumsum(in_context) - 1
    anchors = context_position[in_substruct & in_context]
    out = copy.copy(data) if isinstance(data, PretrainData) else PretrainData(**dict(data.items()))
    out.substruct_x = data.x[torch.from_numpy(in_substruct)]
    out.substruct_edge_index = torch.from_numpy(substruct_edge_index)
    out.substruct_edge_attr = data.edge_attr[torch.from_numpy(substruct_edges)]
    out.substruct_num_nodes = int(in_substruct.sum())
    out.substruct_center_index = torch.tensor([int(in_substruct[:center].sum())])
    out.substruct_atoms = torch.from_numpy(np.flatnonzero(in_substruct))
    out.context_x = data.x[torch.from_numpy(in_context)]
    out.context_edge_index = torch.from_numpy(context_edge_index)
    out.context_edge_attr = data.edge_attr[torch.from_numpy(context_edges)]
    out.context_num_nodes = int(in_context.sum())
    out.context_anchor_index = torch.from_numpy(anchors)
    out.context_num_anchors = len(anchors)
    out.context_atoms = torch.from_numpy(np.flatnonzero(in_context))
    return out


def _induced_subgraph(keep_node: np.ndarray, edge_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges between kept nodes ([num_edges] bool) and their ``edge_index``, renumbered from 0."""
    keep_edge = keep_node[edge_index[0]] & keep_node[edge_index[1]]
    new_number = np.cumsum(keep_node) - 1
    return keep_edge, new_number[edge_index[:, keep_edge]].astype(np.int64)


class ContextPrediction(Objective):
    """Context prediction (Hu et al., ICLR 2020): tell a substructure's own context from others'.

    See the module doc for the method. The objective owns the context encoder, a
    :class:`~molft.models.GINEncoder` like the one being pretrained (same vocabulary, width,
    dropout and jumping knowledge) with ``r2 - r1`` layers; it is used only during pretraining.

    Args:
        encoder_config: the encoder being pretrained.
        substructure_hops: K (None: the encoder's ``num_layers``, as Hu et al.).
        context_inner_hops: r1 (None: K - 1).
        context_outer_hops: r2 (None: r1 + 3).
        mode: ``"cbow"`` (pool the anchors, the paper's best) or ``"skipgram"`` (each anchor alone).
        context_pooling: ``"mean"``, ``"sum"`` or ``"max"`` over the anchors, in cbow mode.
        negative_samples: how many shifted copies of the batch give negatives; the negatives'
            loss is weighted by this number, as in ``pretrain_contextpred.py``.

    Raises:
        InputError: on invalid options, or with ``jk="concat"``, where the two encoders'
            embeddings would differ in width.

    Logs:
        ``loss``; ``balanced_loss`` (positive plus negative loss, what Hu et al. print);
        ``accuracy`` (mean of the positives' and negatives' accuracy at logit 0);
        ``graphs_without_context``, how many graphs of the batch had no context and sat out.

    Example:
        >>> objective = ContextPrediction(EncoderConfig(vocabulary="hu2020"))
        >>> pair = objective.transform(smiles_to_graph("CCCCCCCCCC", vocab="hu2020"))
    """

    name = "context_prediction"

    def __init__(
        self,
        encoder_config: EncoderConfig,
        substructure_hops: int | None = None,
        context_inner_hops: int | None = None,
        context_outer_hops: int | None = None,
        mode: str = "cbow",
        context_pooling: str = "mean",
        negative_samples: int = 1,
    ) -> None:
        super().__init__(encoder_config)
        k = _hops_or("substructure_hops", substructure_hops, encoder_config.num_layers)
        r1 = _hops_or("context_inner_hops", context_inner_hops, k - 1)
        r2 = _hops_or("context_outer_hops", context_outer_hops, r1 + 3)
        check_hops(k, r1, r2)
        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
        if context_pooling not in CONTEXT_POOLINGS:
            choices = ", ".join(CONTEXT_POOLINGS)
            raise InputError(f"unknown context_pooling {context_pooling!r}; choose one of: {choices}")
        if isinstance(negative_samples, bool) or not isinstance(negative_samples, int) or negative_samples < 1:
            raise InputError(f"negative_samples must be an integer >= 1, got {negative_samples!r}")
        context_config = dataclasses.replace(encoder_config, num_layers=r2 - r1)
        if node_dim(context_config) != node_dim(encoder_config):
            raise InputError(
                f"context prediction needs substructure and context embeddings of one width, but jk="
                f"{encoder_config.jk!r} gives {node_dim(encoder_config)} and {node_dim(context_config)}; "
                "use jk 'last', 'sum' or 'max'"
            )
        self.substructure_hops, self.context_inner_hops, self.context_outer_hops = k, r1, r2
        self.mode, self.context_pooling, self.negative_samples = mode, context_pooling, negative_samples
        self.options = {
            "substructure_hops": k,
            "context_inner_hops": r1,
            "context_outer_hops": r2,
            "mode": mode,
            "context_pooling": context_pooling,
            "negative_samples": negative_samples,
        }
        self.context_encoder = GINEncoder(context_config)

    def transform(self, data: Data, generator: torch.Generator | None = None) -> Data:
        """Add the substructure and context around a random center atom (:func:`extract_substructure_context`).

        Raises:
            InputError: for a graph without atoms.
        """
        num_nodes = data.x.size(0)
        if num_nodes == 0:
            raise InputError("context prediction cannot pick a center atom in a graph without atoms")
        center = int(torch.randint(num_nodes, (), generator=generator))
        return extract_substructure_context(
            data, center, self.substructure_hops, self.context_inner_hops, self.context_outer_hops
        )

    def loss(self, encoder: nn.Module, batch: Data) -> tuple[Tensor, dict[str, float]]:
        """Logistic loss of true contexts (label 1) against contexts of shifted molecules (label 0).

        Graphs without a context sit out. With fewer than two graphs that have one, there is
        nothing to contrast: the loss is 0, attached to both encoders with zero gradients.
        """
        num_anchors = torch.as_tensor(batch.context_num_anchors, device=batch.substruct_x.device).view(-1)
        has_context = num_anchors > 0
        num_graphs = num_anchors.numel()
        num_used = int(has_context.sum())
        logs = {"graphs_without_context": float(num_graphs - num_used)}
        if num_used < 2:
            # touch every parameter (zero gradients), as DistributedDataParallel expects
            parameters = [*encoder.parameters(), *self.context_encoder.parameters()]
            nothing = torch.cat([p.reshape(-1)[:0] for p in parameters])
            loss = world_mean(nothing) + self.negative_samples * world_mean(nothing)
            logs.update(loss=0.0, balanced_loss=0.0, accuracy=float("nan"))
            return loss, logs

        substruct = encoder(batch.substruct_x, batch.substruct_edge_index, batch.substruct_edge_attr)
        center = substruct[batch.substruct_center_index]  # [num_graphs, dim]
        context = self.context_encoder(batch.context_x, batch.context_edge_index, batch.context_edge_attr)
        anchors = context[batch.context_anchor_index]  # [num_anchors_in_batch, dim]
        graph_of_anchor = torch.repeat_interleave(torch.arange(num_graphs, device=num_anchors.device), num_anchors)
        shifts = range(1, min(self.negative_samples, num_used - 1) + 1)
        if self.mode == "cbow":
            pooled = scatter(anchors, graph_of_anchor, dim=0, dim_size=num_graphs, reduce=self.context_pooling)
            center, pooled = center[has_context], pooled[has_context]
            positive = (center * pooled).sum(dim=-1)
            # the negatives of molecule i are the contexts of molecules i + 1, i + 2, ... (cycle_index)
            negative = torch.cat([(center * pooled.roll(-shift, dims=0)).sum(dim=-1) for shift in shifts])
        else:
            positive = (center[graph_of_anchor] * anchors).sum(dim=-1)
            used = has_context.nonzero().view(-1)
            rank = torch.cumsum(has_context, dim=0) - 1  # position of each graph among those used
            negative = torch.cat(
                [(center[used[(rank[graph_of_anchor] + shift) % num_used]] * anchors).sum(dim=-1) for shift in shifts]
            )
        positive_loss = world_mean(_bce(positive, 1.0))
        negative_loss = world_mean(_bce(negative, 0.0))
        loss = positive_loss + self.negative_samples * negative_loss
        accuracy = 0.5 * (float((positive > 0).float().mean()) + float((negative < 0).float().mean()))
        logs.update(
            loss=float(loss.detach()),
            balanced_loss=float(positive_loss.detach() + negative_loss.detach()),
            accuracy=accuracy,
        )
        return loss, logs


def _hops_or(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def _bce(logits: Tensor, label: float) -> Tensor:
    """[num_scores] binary cross-entropy of each logit against one label."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label), reduction="none")
