"""Models: the GIN encoder of Hu et al. 2020, graph pooling and property heads."""

from molft.models.encoder import AtomEncoder, BondEncoder, EncoderConfig, GINEncoder
from molft.models.heads import GraphPooling, HeadConfig, PropertyModel

__all__ = [
    "AtomEncoder",
    "BondEncoder",
    "EncoderConfig",
    "GINEncoder",
    "GraphPooling",
    "HeadConfig",
    "PropertyModel",
]
