"""From node embeddings to graph predictions: pooling and a task head on top of an encoder."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn.aggr import (
    Aggregation,
    AttentionalAggregation,
    MaxAggregation,
    MeanAggregation,
    MultiAggregation,
    SumAggregation,
)

from molft.errors import InputError
from molft.models.encoder import GINEncoder, _check_int, config_from_dict

POOLINGS = ("mean", "sum", "max", "attention")


def pooling_parts(kind: str) -> list[str]:
    """The poolings of ``kind``: one of :data:`POOLINGS`, or several of mean, sum and max joined by
    ``+`` (``"mean+max"``: both, concatenated).

    Raises:
        InputError: an unknown pooling, one named twice, or attention in a combination.
    """
    parts = [part.strip() for part in str(kind).split("+")]
    unknown = [part for part in parts if part not in POOLINGS]
    if unknown or len(set(parts)) < len(parts) or (len(parts) > 1 and "attention" in parts):
        raise InputError(f"unknown pooling {kind!r}; choose one of: {', '.join(POOLINGS)}, or several of mean, sum "
                         f"and max joined by + (mean+max)")
    return parts


class GraphPooling(nn.Module):
    """Pool node embeddings into one embedding per graph, with PyG's aggregation modules.

    Args:
        kind: ``"mean"``, ``"sum"``, ``"max"`` or ``"attention"`` (a learned gate, as in Hu et al.'s
            ``GlobalAttention`` pooling), or several of mean, sum and max joined by ``+``
            (concatenated, PyG's ``MultiAggregation``: ``"mean+max"`` is twice as wide).
        in_dim: node embedding width; needed for ``"attention"``.

    Shapes:
        - input: ``x: [num_nodes, in_dim]``, ``batch: [num_nodes]`` graph index of each node
        - output: ``[num_graphs, in_dim * len(kind.split("+"))]``
    """

    def __init__(self, kind: str = "mean", in_dim: int | None = None) -> None:
        super().__init__()
        parts = pooling_parts(kind)
        if kind == "attention" and in_dim is None:
            raise InputError("attention pooling needs in_dim, the node embedding width")
        self.kind = kind
        self.width = len(parts)  # output width in node-embedding widths
        self.aggr: Aggregation
        if kind == "attention":
            self.aggr = AttentionalAggregation(gate_nn=nn.Linear(in_dim, 1))
        elif len(parts) > 1:
            self.aggr = MultiAggregation(parts, mode="cat")
        else:
            self.aggr = {"mean": MeanAggregation, "sum": SumAggregation, "max": MaxAggregation}[kind]()

    def reset_parameters(self) -> None:
        self.aggr.reset_parameters()

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int | None = None) -> Tensor:
        """Pool.

        Args:
            x: [num_nodes, in_dim] node embeddings.
            batch: [num_nodes] graph index of each node.
            num_graphs: number of graphs (default: ``batch.max() + 1``).

        Returns:
            [num_graphs, in_dim * width] graph embeddings.
        """
        return self.aggr(x, batch, dim_size=num_graphs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.kind!r})"


@dataclass(frozen=True)
class HeadConfig:
    """The part of a :class:`PropertyModel` after the encoder; saved as ``config.json``'s ``head``.

    Args:
        num_tasks: outputs per molecule.
        pooling: one of ``"mean"``, ``"sum"``, ``"max"``, ``"attention"``, or several of mean, sum and
            max joined by ``+`` (:func:`pooling_parts`).
        head_hidden: width of a hidden layer in the head (None: a single linear layer).
        molecule_features: width of the molecule-level feature vector the head also reads
            (concatenated to the pooled embedding, as chemprop's extra descriptors; 0: none).
        embedding_clip: standardize the pooled embedding with stored statistics (buffers
            ``embedding_mean`` and ``embedding_std``) and clip it to ±this before the head, as instant
            mode's linear model was fitted (None: the head reads the embedding as it is).
    """

    num_tasks: int
    pooling: str = "mean"
    head_hidden: int | None = None
    molecule_features: int = 0
    embedding_clip: float | None = None

    def __post_init__(self) -> None:
        _check_int(self.num_tasks, "num_tasks", 1)
        pooling_parts(self.pooling)
        if self.head_hidden is not None:
            _check_int(self.head_hidden, "head_hidden", 1)
        _check_int(self.molecule_features, "molecule_features", 0)
        if self.embedding_clip is not None and not (isinstance(self.embedding_clip, (int, float))
                                                    and self.embedding_clip > 0):
            raise InputError(f"embedding_clip must be a positive number or None, got {self.embedding_clip!r}")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadConfig:
        """Rebuild a config from :meth:`to_dict`'s output.

        Raises:
            InputError: on unknown keys or invalid values.
        """
        return config_from_dict(cls, data, "head config")


class PropertyModel(nn.Module):
    """Molecular property model: encoder, graph pooling and a linear (or 2-layer MLP) head.

    Args:
        encoder: the (pretrained) node encoder.
        num_tasks: outputs per molecule (logits for classification, values for regression).
        pooling: ``"mean"``, ``"sum"``, ``"max"`` or ``"attention"``, or several of mean, sum and max
            joined by ``+`` (``"mean+max"``, concatenated).
        head_hidden: width of the head's hidden layer; None for a single linear layer.
        molecule_features: width of ``data.molecule_x``, which the head reads beside the pooled
            embedding (0: none).
        embedding_clip: the head reads the pooled embedding standardized (buffers ``embedding_mean``,
            ``embedding_std``, set by whoever fits the head) and clipped to ±this (None: as it is).

    Shapes:
        - input: a PyG ``Batch`` (or a single ``Data``) with ``x``, ``edge_index``, ``edge_attr``
          (and ``molecule_x: [num_graphs, molecule_features]`` when the head reads features)
        - output: ``[num_graphs, num_tasks]``

    Example:
        >>> model = PropertyModel(GINEncoder(EncoderConfig()), num_tasks=1)
        >>> model(Batch.from_data_list([smiles_to_graph("CCO"), smiles_to_graph("c1ccccc1")])).shape
        torch.Size([2, 1])
    """

    def __init__(
        self, encoder: GINEncoder, num_tasks: int, pooling: str = "mean", head_hidden: int | None = None,
        molecule_features: int = 0, *, embedding_clip: float | None = None,
    ) -> None:
        super().__init__()
        self.head_config = HeadConfig(num_tasks=num_tasks, pooling=pooling, head_hidden=head_hidden,
                                      molecule_features=molecule_features, embedding_clip=embedding_clip)
        self.encoder = encoder
        self.pool = GraphPooling(pooling, in_dim=encoder.out_dim)
        width = self.embedding_dim + molecule_features
        if embedding_clip is not None:
            self.register_buffer("embedding_mean", torch.zeros(self.embedding_dim))
            self.register_buffer("embedding_std", torch.ones(self.embedding_dim))
        if head_hidden is None:
            self.head: nn.Module = nn.Linear(width, num_tasks)
        else:
            self.head = nn.Sequential(nn.Linear(width, head_hidden), nn.ReLU(), nn.Linear(head_hidden, num_tasks))

    @property
    def num_tasks(self) -> int:
        return self.head_config.num_tasks

    @property
    def embedding_dim(self) -> int:
        """Width of :meth:`embed`'s output: the encoder's output width times the poolings concatenated."""
        return self.encoder.out_dim * self.pool.width

    @property
    def readout(self) -> nn.ModuleList:
        """Everything after the encoder (pooling and head).

        For example ``parameter_groups(model.encoder, model.readout, recipe)`` gives attention
        pooling the head's learning rate.
        """
        return nn.ModuleList([self.pool, self.head])

    def embed(self, data: Data) -> Tensor:
        """Graph embeddings: pooled encoder output.

        Args:
            data: a ``Batch`` or a single ``Data`` with ``x``, ``edge_index``, ``edge_attr``.

        Returns:
            [num_graphs, embedding_dim]
        """
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(data.num_nodes, dtype=torch.long, device=data.x.device)
            num_graphs = 1
        else:
            num_graphs = int(data.num_graphs)
        nodes = self.encoder(data.x, data.edge_index, data.edge_attr)
        return self.pool(nodes, batch, num_graphs)

    def forward(self, data: Data) -> Tensor:
        """Predict every task for every graph.

        Args:
            data: a ``Batch`` or a single ``Data`` with ``x``, ``edge_index``, ``edge_attr``.

        Returns:
            [num_graphs, num_tasks]
        """
        return self.predict_from(self.embed(data), data)

    def predict_from(self, embedding: Tensor, data: Data) -> Tensor:
        """The head's outputs for pooled ``embedding`` (:meth:`embed`) and the molecule features in ``data``.

        ``model(data)`` is ``model.predict_from(model.embed(data), data)``; a training loop that
        also uses the embedding (an auxiliary loss) calls the two itself and runs the encoder once.
        """
        clip = self.head_config.embedding_clip
        if clip is not None:
            embedding = ((embedding - self.embedding_mean) / self.embedding_std).clamp(-clip, clip)
        if self.head_config.molecule_features:
            features = getattr(data, "molecule_x", None)
            if features is None or features.shape[-1] != self.head_config.molecule_features:
                found = "none" if features is None else features.shape[-1]
                raise InputError(f"this model's head reads {self.head_config.molecule_features} molecule features "
                                 f"per graph (data.molecule_x); found {found}")
            embedding = torch.cat([embedding, features.view(embedding.shape[0], -1)], dim=1)
        return self.head(embedding)
