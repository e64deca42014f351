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
    SumAggregation,
)

from molft.errors import InputError
from molft.models.encoder import GINEncoder, _check_int, config_from_dict

POOLINGS = ("mean", "sum", "max", "attention")


class GraphPooling(nn.Module):
    """Pool node embeddings into one embedding per graph, with PyG's aggregation modules.

    Args:
        kind: ``"mean"``, ``"sum"``, ``"max"`` or ``"attention"`` (a learned gate, as in Hu et al.'s
            ``GlobalAttention`` pooling).
        in_dim: node embedding width; needed for ``"attention"``.

    Shapes:
        - input: ``x: [num_nodes, in_dim]``, ``batch: [num_nodes]`` graph index of each node
        - output: ``[num_graphs, in_dim]``
    """

    def __init__(self, kind: str = "mean", in_dim: int | None = None) -> None:
        super().__init__()
        if kind not in POOLINGS:
            raise InputError(f"unknown pooling {kind!r}; choose one of: {', '.join(POOLINGS)}")
        if kind == "attention" and in_dim is None:
            raise InputError("attention pooling needs in_dim, the node embedding width")
        self.kind = kind
        self.aggr: Aggregation
        if kind == "attention":
            self.aggr = AttentionalAggregation(gate_nn=nn.Linear(in_dim, 1))
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
            [num_graphs, in_dim] graph embeddings.
        """
        return self.aggr(x, batch, dim_size=num_graphs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.kind!r})"


@dataclass(frozen=True)
class HeadConfig:
    """The part of a :class:`PropertyModel` after the encoder; saved as ``config.json``'s ``head``.

    Args:
        num_tasks: outputs per molecule.
        pooling: one of ``"mean"``, ``"sum"``, ``"max"``, ``"attention"``.
        head_hidden: width of a hidden layer in the head (None: a single linear layer).
        molecule_features: width of the molecule-level feature vector the head also reads
            (concatenated to the pooled embedding, as chemprop's extra descriptors; 0: none).
    """

    num_tasks: int
    pooling: str = "mean"
    head_hidden: int | None = None
    molecule_features: int = 0

    def __post_init__(self) -> None:
        _check_int(self.num_tasks, "num_tasks", 1)
        if self.pooling not in POOLINGS:
            raise InputError(f"unknown pooling {self.pooling!r}; choose one of: {', '.join(POOLINGS)}")
        if self.head_hidden is not None:
            _check_int(self.head_hidden, "head_hidden", 1)
        _check_int(self.molecule_features, "molecule_features", 0)

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
        pooling: ``"mean"``, ``"sum"``, ``"max"`` or ``"attention"``.
        head_hidden: width of the head's hidden layer; None for a single linear layer.
        molecule_features: width of ``data.molecule_x``, which the head reads beside the pooled
            embedding (0: none).

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
        molecule_features: int = 0,
    ) -> None:
        super().__init__()
        self.head_config = HeadConfig(num_tasks=num_tasks, pooling=pooling, head_hidden=head_hidden,
                                      molecule_features=molecule_features)
        self.encoder = encoder
        self.pool = GraphPooling(pooling, in_dim=encoder.out_dim)
        width = encoder.out_dim + molecule_features
        if head_hidden is None:
            self.head: nn.Module = nn.Linear(width, num_tasks)
        else:
            self.head = nn.Sequential(nn.Linear(width, head_hidden), nn.ReLU(), nn.Linear(head_hidden, num_tasks))

    @property
    def num_tasks(self) -> int:
        return self.head_config.num_tasks

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
            [num_graphs, encoder.out_dim]
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
        if self.head_config.molecule_features:
            features = getattr(data, "molecule_x", None)
            if features is None or features.shape[-1] != self.head_config.molecule_features:
                found = "none" if features is None else features.shape[-1]
                raise InputError(f"this model's head reads {self.head_config.molecule_features} molecule features "
                                 f"per graph (data.molecule_x); found {found}")
            embedding = torch.cat([embedding, features.view(embedding.shape[0], -1)], dim=1)
        return self.head(embedding)
