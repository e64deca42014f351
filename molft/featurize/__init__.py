"""SMILES -> graphs: vocabularies as data and a fast, loss-free featurizer."""

from molft.featurize.graph import (
    Failure,
    FeaturizeResult,
    GraphArrays,
    describe_failure,
    Featurizer,
    featurize_many,
    smiles_to_graph,
)
from molft.featurize.vocab import HU2020, OGB, VOCABULARIES, Feature, Vocabulary, get_vocabulary

__all__ = [
    "HU2020", "OGB", "VOCABULARIES", "Failure", "Feature", "FeaturizeResult", "GraphArrays",
    "Vocabulary", "describe_failure", "Featurizer", "featurize_many", "get_vocabulary",
    "smiles_to_graph",
]
