"""The GIN encoder of Hu et al. (ICLR 2020), sized from a feature vocabulary.

Two flavours of GIN layer, chosen by the vocabulary, so that each vocabulary gets the model its
published checkpoints were trained with:

* a vocabulary with a ``self_loop`` bond token (``hu2020``) gets the layer of
  ``snap-stanford/pretrain-gnns`` ``chem/model.py``: every node gets a self-loop edge carrying
  that token, and :math:`\\mathbf{h}_i' = \\mathrm{MLP}\\big(\\sum_{j \\in \\mathcal{N}(i) \\cup
  \\{i\\}} \\mathbf{h}_j + \\mathbf{e}_{ji}\\big)` (:class:`SelfLoopGINConv`);
* any other vocabulary (``ogb``) gets OGB's GIN (``examples/graphproppred/mol/conv.py``):
  PyG's :class:`~torch_geometric.nn.conv.GINEConv`, :math:`\\mathbf{h}_i' = \\mathrm{MLP}\\big(
  (1 + \\epsilon)\\mathbf{h}_i + \\sum_{j \\in \\mathcal{N}(i)} \\mathrm{ReLU}(\\mathbf{h}_j +
  \\mathbf{e}_{ji})\\big)` with a trainable :math:`\\epsilon` and no self-loop edges.

Either way every layer has its own bond embedding, the MLP maps ``hidden -> 2 * hidden ->
hidden``, and a BatchNorm follows each layer, with ReLU on all but the last layer, then dropout.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GINEConv, MessagePassing

from molft.errors import InputError
from molft.featurize.vocab import SELF_LOOP, Vocabulary, get_vocabulary

JK_MODES = ("last", "concat", "sum", "max")


def config_from_dict(cls: type, data: Any, what: str) -> Any:
    """Build the dataclass ``cls`` from a JSON dict, refusing unknown keys with a clear message.

    Raises:
        InputError: if ``data`` is not a dict, lacks a required key or has keys ``cls`` does not know.
    """
    if not isinstance(data, dict):
        raise InputError(f"{what} must be a JSON object, got {type(data).__name__}")
    fields = dataclasses.fields(cls)
    known = [f.name for f in fields]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(
            f"unknown key(s) in {what}: {', '.join(map(repr, unknown))}. Known keys: {', '.join(known)}"
        )
    required = [
        f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise InputError(f"missing key(s) in {what}: {', '.join(map(repr, missing))}")
    return cls(**data)


def _check_int(value: Any, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class EncoderConfig:
    """Everything needed to rebuild a :class:`GINEncoder`; saved as ``config.json``'s ``encoder``.

    Args:
        vocabulary: name of the feature vocabulary (``"ogb"``, ``"hu2020"``); embedding sizes
            and the self-loop bond token come from it.
        num_layers: message-passing layers.
        hidden_dim: width of node and bond embeddings.
        dropout: dropout after every layer.
        jk: jumping knowledge, how layer outputs (input embedding included) become the output:
            ``"last"``, ``"concat"``, ``"sum"`` or ``"max"``.
        residual: add each layer's input to its output (OGB's option).
    """

    vocabulary: str = "ogb"
    num_layers: int = 5
    hidden_dim: int = 300
    dropout: float = 0.0
    jk: str = "last"
    residual: bool = False

    def __post_init__(self) -> None:
        get_vocabulary(self.vocabulary)  # raises InputError naming the choices
        _check_int(self.num_layers, "num_layers", 1)
        _check_int(self.hidden_dim, "hidden_dim", 1)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise InputError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.jk not in JK_MODES:
            raise InputError(f"unknown jk {self.jk!r}; choose one of: {', '.join(JK_MODES)}")
        if not isinstance(self.residual, bool):
            raise InputError(f"residual must be true or false, got {self.residual!r}")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        """Rebuild a config from :meth:`to_dict`'s output.

        Raises:
            InputError: on unknown keys or invalid values.
        """
        return config_from_dict(cls, data, "encoder config")


class CategoricalEncoder(nn.Module):
    """Embed rows of categorical features as the sum of one embedding per column.

    Args:
        dims: number of categories of each column (a vocabulary's ``atom_dims`` or ``bond_dims``).
        emb_dim: embedding width.

    Shapes:
        - input: ``[num_rows, len(dims)]`` int64
        - output: ``[num_rows, emb_dim]``
    """

    def __init__(self, dims: list[int], emb_dim: int) -> None:
        super().__init__()
        self.dims = list(dims)
        self.embeddings = nn.ModuleList(nn.Embedding(dim, emb_dim) for dim in self.dims)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for embedding in self.embeddings:
            nn.init.xavier_uniform_(embedding.weight)

    def forward(self, x: Tensor) -> Tensor:
        out = self.embeddings[0](x[:, 0])
        for column, embedding in enumerate(self.embeddings[1:], start=1):
            out = out + embedding(x[:, column])
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(dims={self.dims}, emb_dim={self.embeddings[0].embedding_dim})"


class AtomEncoder(CategoricalEncoder):
    """Atom features ``x: [num_nodes, num_atom_features]`` -> ``[num_nodes, emb_dim]``.

    Example:
        >>> AtomEncoder(get_vocabulary("ogb").atom_dims, emb_dim=300)
    """


class BondEncoder(CategoricalEncoder):
    """Bond features ``edge_attr: [num_edges, num_bond_features]`` -> ``[num_edges, emb_dim]``."""


def _mlp(hidden_dim: int, batch_norm: bool) -> nn.Sequential:
    """``hidden -> 2 * hidden -> hidden``; OGB puts a BatchNorm inside, Hu et al. do not."""
    middle: list[nn.Module] = [nn.BatchNorm1d(2 * hidden_dim)] if batch_norm else []
    return nn.Sequential(
        nn.Linear(hidden_dim, 2 * hidden_dim), *middle, nn.ReLU(), nn.Linear(2 * hidden_dim, hidden_dim)
    )


class SelfLoopGINConv(MessagePassing):
    """The GIN layer of Hu et al. 2020, with a self-loop bond token and its own bond embedding.

    .. math::
        \\mathbf{h}_i' = \\mathrm{MLP}\\Big(\\sum_{j \\in \\mathcal{N}(i) \\cup \\{i\\}}
        \\mathbf{h}_j + \\mathbf{e}_{ji}\\Big)

    where the self edge :math:`(i, i)` has the bond features ``self_loop_attr``.

    Args:
        hidden_dim: node and bond embedding width.
        bond_dims: categories of each bond feature.
        self_loop_attr: the bond feature row of a self-loop edge (the vocabulary's ``self_loop``
            token in its column, index 0 in the others).

    Shapes:
        - input: ``x: [num_nodes, hidden_dim]``, ``edge_index: [2, num_edges]``,
          ``edge_attr: [num_edges, len(bond_dims)]`` int64
        - output: ``[num_nodes, hidden_dim]``
    """

    def __init__(self, hidden_dim: int, bond_dims: list[int], self_loop_attr: list[int]) -> None:
        super().__init__(aggr="add")
        self.mlp = _mlp(hidden_dim, batch_norm=False)
        self.bond_encoder = BondEncoder(bond_dims, hidden_dim)
        self.self_loop_attr = list(self_loop_attr)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for module in self.mlp:
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        self.bond_encoder.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        loops = torch.arange(x.size(0), device=edge_index.device, dtype=edge_index.dtype)
        edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
        loop_attr = edge_attr.new_tensor(self.self_loop_attr).expand(x.size(0), -1)
        edge_attr = torch.cat([edge_attr, loop_attr], dim=0)
        return self.mlp(self.propagate(edge_index, x=x, edge_attr=self.bond_encoder(edge_attr)))

    def message(self, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return x_j + edge_attr

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.mlp[0].in_features}, self_loop_attr={self.self_loop_attr})"


class BondGINEConv(nn.Module):
    """OGB's GIN layer: PyG's :class:`~torch_geometric.nn.conv.GINEConv` fed by its own bond embedding.

    .. math::
        \\mathbf{h}_i' = \\mathrm{MLP}\\Big((1 + \\epsilon)\\mathbf{h}_i + \\sum_{j \\in
        \\mathcal{N}(i)} \\mathrm{ReLU}(\\mathbf{h}_j + \\mathbf{e}_{ji})\\Big)

    Args:
        hidden_dim: node and bond embedding width.
        bond_dims: categories of each bond feature.

    Shapes:
        - input: ``x: [num_nodes, hidden_dim]``, ``edge_index: [2, num_edges]``,
          ``edge_attr: [num_edges, len(bond_dims)]`` int64
        - output: ``[num_nodes, hidden_dim]``
    """

    def __init__(self, hidden_dim: int, bond_dims: list[int]) -> None:
        super().__init__()
        self.bond_encoder = BondEncoder(bond_dims, hidden_dim)
        self.conv = GINEConv(_mlp(hidden_dim, batch_norm=True), train_eps=True)

    def reset_parameters(self) -> None:
        self.bond_encoder.reset_parameters()
        self.conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        return self.conv(x, edge_index, self.bond_encoder(edge_attr))


def self_loop_attr(vocab: Vocabulary) -> list[int] | None:
    """The bond feature row of a self-loop edge, or None if the vocabulary has no self-loop token."""
    if not any(SELF_LOOP in feature.specials for feature in vocab.bond):
        return None
    return [feature.index(SELF_LOOP) if SELF_LOOP in feature.specials else 0 for feature in vocab.bond]


class GINEncoder(nn.Module):
    """Node embeddings from a stack of GIN layers (Hu et al. 2020), sized from a vocabulary.

    Args:
        config: the architecture; see :class:`EncoderConfig`.

    Shapes:
        - input: ``x: [num_nodes, num_atom_features]``, ``edge_index: [2, num_edges]``,
          ``edge_attr: [num_edges, num_bond_features]``, all int64
        - output: ``[num_nodes, out_dim]``; ``out_dim`` is ``hidden_dim``, or
          ``(num_layers + 1) * hidden_dim`` with ``jk="concat"``.

    Example:
        >>> encoder = GINEncoder(EncoderConfig(vocabulary="hu2020"))
        >>> graph = smiles_to_graph("CCO", vocab="hu2020")
        >>> encoder(graph.x, graph.edge_index, graph.edge_attr).shape
        torch.Size([3, 300])
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab = get_vocabulary(config.vocabulary)
        hidden = config.hidden_dim
        self.atom_encoder = AtomEncoder(self.vocab.atom_dims, hidden)
        loop_attr = self_loop_attr(self.vocab)
        self.convs = nn.ModuleList(
            SelfLoopGINConv(hidden, self.vocab.bond_dims, loop_attr)
            if loop_attr is not None
            else BondGINEConv(hidden, self.vocab.bond_dims)
            for _ in range(config.num_layers)
        )
        self.batch_norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(config.num_layers))

    @property
    def out_dim(self) -> int:
        """Width of the node embeddings ``forward`` returns."""
        if self.config.jk == "concat":
            return (self.config.num_layers + 1) * self.config.hidden_dim
        return self.config.hidden_dim

    def reset_parameters(self) -> None:
        self.atom_encoder.reset_parameters()
        for conv, norm in zip(self.convs, self.batch_norms):
            conv.reset_parameters()
            norm.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        """Embed every node.

        Args:
            x: [num_nodes, num_atom_features] atom feature indices.
            edge_index: [2, num_edges] both directions of every bond.
            edge_attr: [num_edges, num_bond_features] bond feature indices.

        Returns:
            [num_nodes, out_dim] node embeddings.

        Raises:
            InputError: if the feature columns do not match the encoder's vocabulary.
        """
        self._check_columns(x, self.vocab.atom, "x", "atom")
        self._check_columns(edge_attr, self.vocab.bond, "edge_attr", "bond")
        h = self.atom_encoder(x)
        layers = [h]
        for index, (conv, norm) in enumerate(zip(self.convs, self.batch_norms)):
            h = norm(conv(h, edge_index, edge_attr))
            if index < self.config.num_layers - 1:
                h = F.relu(h)
            h = F.dropout(h, p=self.config.dropout, training=self.training)
            if self.config.residual:
                h = h + layers[-1]
            layers.append(h)
        if self.config.jk == "last":
            return layers[-1]
        if self.config.jk == "concat":
            return torch.cat(layers, dim=-1)
        stacked = torch.stack(layers, dim=0)
        return stacked.sum(dim=0) if self.config.jk == "sum" else stacked.max(dim=0).values

    def _check_columns(self, tensor: Tensor, features: tuple, name: str, kind: str) -> None:
        if tensor.dim() != 2 or tensor.size(1) != len(features) or tensor.is_floating_point():
            raise InputError(
                f"{name} should be int64 [num_rows, {len(features)}] for the {self.config.vocabulary!r} "
                f"vocabulary's {kind} features, got {tensor.dtype} {list(tensor.shape)}; featurize with "
                f"vocab={self.config.vocabulary!r}"
            )

    def __repr__(self) -> str:
        c = self.config
        return (
            f"{self.__class__.__name__}(vocabulary={c.vocabulary!r}, num_layers={c.num_layers}, "
            f"hidden_dim={c.hidden_dim}, jk={c.jk!r}, out_dim={self.out_dim})"
        )
