"""The objective registry: names -> objective classes, and building weighted combinations of them.

It sits above the objective modules (they import only the base classes of
:mod:`molft.pretraining.objectives`), so there is no circular import. Add an objective by
writing its module and adding its class to :data:`OBJECTIVES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from molft.errors import InputError
from molft.models.encoder import EncoderConfig
from molft.pretraining.context import ContextPrediction
from molft.pretraining.contrastive import GraphContrastive
from molft.pretraining.edges import EdgePropertyPrediction, LinkPrediction
from molft.pretraining.graph_targets import DescriptorRegression, FingerprintPrediction, SupervisedLabels
from molft.pretraining.masking import AttrMasking, GraphMAE
from molft.pretraining.objectives import Objective, ObjectiveSet
from molft.pretraining.structure import StructurePrediction

#: name -> objective class (each class's ``name``).
OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (
        AttrMasking, GraphMAE, ContextPrediction, StructurePrediction,  # node level
        LinkPrediction, EdgePropertyPrediction,  # bond level
        GraphContrastive,  # graph level, self-supervised
        DescriptorRegression, FingerprintPrediction, SupervisedLabels,  # graph level
    )
}


def parse_objectives(spec: str | Mapping[str, float] | Iterable[str]) -> dict[str, float]:
    """Turn ``"attr_masking:1.0,context_prediction:0.5"`` into ``{name: weight}``.

    A name without a weight gets 1.0. A dict passes through (checked); a list of names gets
    weights 1.0.

    Raises:
        InputError: an unknown objective, a repeated one, or a weight that is not a number >= 0.
    """
    if isinstance(spec, Mapping):
        items = [(str(name), weight) for name, weight in spec.items()]
    else:
        parts = spec.split(",") if isinstance(spec, str) else list(spec)
        items = []
        for part in (p.strip() for p in parts):
            if not part:
                continue
            name, _, weight = part.partition(":")
            items.append((name.strip(), weight.strip() or 1.0))
    if not items:
        raise InputError(f"no objective given; choose from: {', '.join(OBJECTIVES)}")
    weights: dict[str, float] = {}
    for name, weight in items:
        if name not in OBJECTIVES:
            raise InputError(f"unknown objective {name!r}; choose from: {', '.join(OBJECTIVES)}")
        if name in weights:
            raise InputError(f"objective {name!r} is given twice in {spec!r}")
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise InputError(f"objective {name!r}: weight {weight!r} is not a number") from None
        if not value >= 0:
            raise InputError(f"objective {name!r}: weight must be >= 0, got {value}")
        weights[name] = value
    return weights


def format_objectives(weights: Mapping[str, float]) -> str:
    """Inverse of :func:`parse_objectives`: ``{"attr_masking": 1.0}`` -> ``"attr_masking:1.0"``."""
    return ",".join(f"{name}:{weight:g}" for name, weight in weights.items())


def build_objectives(
    spec: str | Mapping[str, float] | Iterable[str],
    encoder_config: EncoderConfig,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> ObjectiveSet:
    """Build the objectives named in ``spec`` for an encoder.

    Args:
        spec: names and weights, e.g. ``"attr_masking:1.0,graphmae:0.5"``.
        encoder_config: the encoder being pretrained.
        options: name -> keyword options of that objective, e.g. ``{"attr_masking": {"mask_rate": 0.15}}``.

    Raises:
        InputError: an unknown objective or option.
    """
    weights = parse_objectives(spec)
    options = dict(options or {})
    stray = sorted(set(options) - set(weights))
    if stray:
        raise InputError(f"options given for objective(s) not being trained: {', '.join(stray)}")
    objectives = {}
    for name in weights:
        cls = OBJECTIVES[name]
        try:
            objectives[name] = cls(encoder_config, **dict(options.get(name, {})))
        except TypeError as error:
            raise InputError(f"objective {name!r}: {error}") from None
    return ObjectiveSet(objectives, weights)
