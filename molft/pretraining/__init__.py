"""Self-supervised pretraining of GIN encoders: objectives, their registry, corpus and the loop."""

from molft.pretraining.loop import PretrainConfig, PretrainResult, pretrain
from molft.pretraining.masking import AttrMasking, GraphMAE
from molft.pretraining.objectives import Objective, ObjectiveSet, PretrainData, world_mean
from molft.pretraining.registry import OBJECTIVES, build_objectives, parse_objectives

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
