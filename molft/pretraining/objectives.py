"""Self-supervised pretraining objectives: one interface, one registry, weighted combinations.

An objective is an :class:`Objective`, an ``nn.Module`` that owns its prediction heads and
supplies two things to the pretraining loop (:func:`molft.pretraining.loop.pretrain`):

* ``transform(data, generator) -> data``: a per-graph transform applied in the data loader
  (masking, context sampling). It never mutates its input and draws every random number from
  ``generator``, which the loop seeds from ``(seed, epoch, graph index)``; that makes the data a
  pure function of those three numbers, whatever the worker count, world size or resume point.
* ``loss(encoder, batch) -> (loss, logs)``: a scalar loss tensor and a dict of floats to log
  (e.g. ``{"loss": 1.2, "accuracy": 0.6}``).

Several objectives train together with weights, written ``"attr_masking:1.0,context_prediction:0.5"``
(:func:`molft.pretraining.registry.parse_objectives`); the registry of names lives in
:mod:`molft.pretraining.registry`, which imports this base module and the objective modules. Their transforms run in sequence on the same graph, and each one
only *adds* attributes named with its own prefix (``attr_masking_x``, ``graphmae_atom_mask``...),
leaving ``x``, ``edge_index`` and ``edge_attr`` untouched; so any combination works, and each
loss reads the original graph plus its own attributes.

Rules for an objective's transform, so its attributes batch correctly:

* Per-node attributes (first dimension ``num_nodes``) and per-edge attributes (first
  dimension ``num_edges``) concatenate along dimension 0: use boolean masks rather than index
  lists where you can (``attr_masking_atom_mask: [num_nodes] bool``).
* An attribute whose name contains ``index`` is offset when graphs are batched. By PyG's rule
  the offset is ``num_nodes``; :class:`PretrainData` adds one more rule: if the name starts with
  a prefix ``p`` such that ``p_num_nodes`` is an attribute too (``context_edge_index`` with
  ``context_num_nodes``), the offset is ``p_num_nodes``. Store ``p_num_nodes`` as a plain int.
  Names with ``index`` concatenate along the last dimension (``[2, num_edges]``).

Under DistributedDataParallel every rank sees a slice of the global batch. Take means with
:func:`world_mean` (always called, on every rank, even with nothing selected), and the
gradient equals that of one process over the whole global batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch_geometric.data import Data

from molft.models.encoder import EncoderConfig


class PretrainData(Data):
    """A ``Data`` graph whose batching also offsets a sub-graph's own indices (see module doc)."""

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if "index" in key and "batch" not in key:
            prefix = key.split("_", 1)[0]
            count = f"{prefix}_num_nodes"
            if prefix != key and count in self:
                return int(self[count])
        return super().__inc__(key, value, *args, **kwargs)


class Objective(nn.Module):
    """Base class of a pretraining objective: heads, a per-graph transform and a loss.

    Subclasses take the encoder's config first, then their options as keyword arguments with
    defaults, and record those options in ``self.options`` (JSON-able; it goes into the
    pretrained encoder's ``config.json``).

    Args:
        encoder_config: the encoder being pretrained (vocabulary, widths).

    Attributes:
        name: the registry name; also the prefix of the attributes ``transform`` adds.
        options: the objective's options, as given.
    """

    name: ClassVar[str] = "objective"

    def __init__(self, encoder_config: EncoderConfig) -> None:
        super().__init__()
        self.encoder_config = encoder_config
        self.options: dict[str, Any] = {}

    def transform(self, data: Data, generator: torch.Generator | None = None) -> Data:
        """Prepare one graph for this objective, without mutating ``data``.

        Args:
            data: one graph (``x``, ``edge_index``, ``edge_attr`` and attributes of earlier
                objectives).
            generator: the source of every random draw (None: torch's global generator).

        Returns:
            a shallow copy of ``data`` with this objective's attributes added.
        """
        return data

    def loss(self, encoder: nn.Module, batch: Data) -> tuple[Tensor, dict[str, float]]:
        """The objective's loss on a batch of transformed graphs.

        Args:
            encoder: maps ``(x, edge_index, edge_attr)`` to ``[num_nodes, out_dim]`` node embeddings.
            batch: a PyG batch of graphs that went through :meth:`transform`.

        Returns:
            the scalar loss, and floats to log (``"loss"`` at least).
        """
        raise NotImplementedError

    def target_source(self) -> str | None:
        """What the objective reads per molecule besides the graph: a molecule-feature spec
        (``"rdkit2d"``, computed once per corpus and cached), ``"labels"`` (the corpus's label
        columns), or None (the graph alone; the default)."""
        return None

    def prepare_targets(self, raw: Any) -> Any:
        """Training targets from the raw per-molecule array of :meth:`target_source` (a pure
        function of the whole array; the loop attaches row ``i`` to graph ``i`` as ``<name>_y``)."""
        return raw


def node_dim(config: EncoderConfig) -> int:
    """Width of the node embeddings a :class:`~molft.models.GINEncoder` with ``config`` returns."""
    return (config.num_layers + 1) * config.hidden_dim if config.jk == "concat" else config.hidden_dim


def world_mean(values: Tensor) -> Tensor:
    """Mean of ``values`` over the whole global batch, as seen by DDP's gradient averaging.

    In one process this is ``values.mean()`` (0, still attached to the graph, when empty). Under
    ``torch.distributed`` it is ``values.sum() * world_size / global_count``: DDP averages the
    ranks' gradients, so the update equals that of the mean over every rank's items. It is a
    collective call: every rank must make it, the same number of times.

    Args:
        values: [num_items] per-item losses of this rank.
    """
    count = torch.tensor(float(values.numel()), device=values.device)
    world = 1
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        world = dist.get_world_size()
        dist.all_reduce(count)
    if float(count) == 0:
        return values.sum() * 0.0
    return values.sum() * (world / count)


class SharedForward:
    """An encoder that remembers its outputs by input tensors, for the objectives of one step.

    Calls with the very same ``(x, edge_index, edge_attr)`` tensor objects return the first
    call's output (autograd handles a tensor used by several losses); any other attribute is the
    encoder's own.
    """

    def __init__(self, encoder: nn.Module) -> None:
        self.encoder = encoder
        self._outputs: dict[tuple[int, ...], tuple[tuple[Tensor, ...], Tensor]] = {}

    def __call__(self, *inputs: Tensor) -> Tensor:
        key = tuple(id(t) for t in inputs)
        if key not in self._outputs:
            self._outputs[key] = (inputs, self.encoder(*inputs))  # holding the inputs keeps their ids unique
        return self._outputs[key][1]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)


class ObjectiveSet(nn.Module):
    """Several objectives with weights, behaving as one objective.

    ``transform`` applies every objective's transform in order, on a :class:`PretrainData` copy
    of the graph; ``loss`` is the weighted sum, and the logs are prefixed with each objective's
    name (``"attr_masking/accuracy"``), plus ``"loss"``, the total.

    Args:
        objectives: name -> objective.
        weights: name -> weight of its loss.
    """

    def __init__(self, objectives: Mapping[str, Objective], weights: Mapping[str, float]) -> None:
        super().__init__()
        if set(objectives) != set(weights):
            raise ValueError(f"objectives {sorted(objectives)} and weights {sorted(weights)} differ")
        self.objectives = nn.ModuleDict(dict(objectives))
        self.weights = {name: float(weights[name]) for name in objectives}

    @property
    def spec(self) -> str:
        """The objectives and weights as :func:`~molft.pretraining.registry.parse_objectives` reads them."""
        return ",".join(f"{name}:{weight:g}" for name, weight in self.weights.items())

    def describe(self) -> dict[str, Any]:
        """Name -> weight and options, for ``config.json``."""
        return {name: {"weight": self.weights[name], **o.options} for name, o in self.objectives.items()}

    def transform(self, data: Data, generator: torch.Generator | None = None) -> Data:
        """Apply every objective's transform in order; ``data`` itself is not changed."""
        out: Data = PretrainData(**{key: value for key, value in data.items()})
        for objective in self.objectives.values():
            out = objective.transform(out, generator)
        return out

    def target_sources(self) -> dict[str, str]:
        """Objective name -> what it reads per molecule (see :meth:`Objective.target_source`)."""
        sources = {name: o.target_source() for name, o in self.objectives.items()}
        return {name: source for name, source in sources.items() if source is not None}

    def loss(self, encoder: nn.Module, batch: Data) -> tuple[Tensor, dict[str, float]]:
        """Weighted sum of the objectives' losses, and their logs under ``name/key``.

        The encoder runs once per distinct input: objectives that read the same graph tensors
        (the clean graph, for the graph-level targets) share one forward pass.
        """
        total: Tensor | None = None
        logs: dict[str, float] = {}
        shared = SharedForward(encoder)
        for name, objective in self.objectives.items():
            loss, parts = objective.loss(shared, batch)
            total = loss * self.weights[name] if total is None else total + loss * self.weights[name]
            logs.update({f"{name}/{key}": value for key, value in parts.items()})
        assert total is not None  # an ObjectiveSet always holds one objective at least
        logs["loss"] = float(total.detach())
        return total, logs
