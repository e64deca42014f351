"""Self-supervised pretraining of GIN encoders: objectives, masking and the training loop."""

# objectives first: the objective modules import its base class, and it imports them last.
from molft.pretraining.objectives import (
    OBJECTIVES,
    Objective,
    ObjectiveSet,
    PretrainData,
    build_objectives,
    parse_objectives,
    world_mean,
)
from molft.pretraining.masking import AttrMasking, GraphMAE
from molft.pretraining.loop import PretrainConfig, PretrainResult, pretrain

__all__ = [
    "OBJECTIVES",
    "AttrMasking",
    "GraphMAE",
    "Objective",
    "ObjectiveSet",
    "PretrainConfig",
    "PretrainData",
    "PretrainResult",
    "build_objectives",
    "parse_objectives",
    "pretrain",
    "world_mean",
]
