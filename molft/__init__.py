"""molft: molecular property prediction with pretrained graph neural networks.

The command line (``molft --help``) is a thin layer over these functions::

    import molft

    molft.featurize_file("smiles.csv", "smiles.graphs")            # SMILES -> graphs, rejects kept
    molft.pretrain("zinc.graphs", "runs/my-encoder")               # self-supervised encoder
    result = molft.finetune("assay.csv", ["pIC50"], "my-model")    # default: the shipped encoder
    scored = molft.predict("my-model", "new.csv", "scored.csv")    # every row kept, with 'error'
    model = molft.MolftRegressor().fit(smiles, values)             # scikit-learn style

Names are imported on first use, so ``import molft`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "featurize_file": "molft.data.featurized",
    "load_featurized": "molft.data.featurized",
    "smiles_to_graph": "molft.featurize.graph",
    "featurize_many": "molft.featurize.graph",
    "load_dataset": "molft.data.registry",
    "list_datasets": "molft.data.registry",
    "pretrain": "molft.pretraining.loop",
    "finetune": "molft.finetuning.train",
    "predict": "molft.finetuning.predict",
    "FinetunedModel": "molft.finetuning.predict",
    "embed": "molft.embedding",
    "MolftRegressor": "molft.estimator",
    "MolftClassifier": "molft.estimator",
    "load_encoder": "molft.checkpoints",
    "load_model": "molft.checkpoints",
    "InputError": "molft.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'molft' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
