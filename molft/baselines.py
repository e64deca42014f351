"""The practitioner's baseline: a random forest on Morgan fingerprints, in one fixed setting.

``molft finetune`` reports it beside its own model on the same split (``metrics.json``'s
``baselines``), and the benchmarks use it as the method to beat.

:func:`fit_random_forest` fits one scikit-learn forest per task, on that task's labelled rows,
in one fixed, documented setting (``RF_SETTINGS``): Morgan radius 2, 2,048 bits; 500 trees;
``class_weight="balanced_subsample"`` for classification; ``random_state`` = the seed. There is
nothing to select, so validation is only reported. ``n_jobs`` changes speed, never results
(scikit-learn draws every tree's seed from ``random_state`` before fanning out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdFingerprintGenerator

from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, REGRESSION, evaluate

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

#: the fixed random-forest setting, recorded with every result
RF_SETTINGS = {
    "fingerprint": "Morgan (rdFingerprintGenerator), radius 2, 2048 bits",
    "radius": 2,
    "n_bits": 2048,
    "n_estimators": 500,
    "class_weight": "balanced_subsample",
    "max_features": "sqrt (classification) / 1.0 (regression): scikit-learn defaults",
    "per_task": "one forest per task, fitted on that task's labelled training rows",
}


def morgan_fingerprints(smiles: Sequence[str], radius: int = 2, n_bits: int = 2048) -> np.ndarray:
    """Morgan (ECFP-like) bit vectors.

    Args:
        smiles: [num_molecules] SMILES RDKit can parse.
        radius: Morgan radius (2 is ECFP4).
        n_bits: fingerprint length.

    Returns:
        [num_molecules, n_bits] uint8 0/1.

    Raises:
        InputError: naming the first SMILES RDKit cannot parse and its position.
    """
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(smiles), n_bits), dtype=np.uint8)
    with rdBase.BlockLogs():
        for i, text in enumerate(smiles):
            mol = Chem.MolFromSmiles(text)
            if mol is None:
                raise InputError(f"SMILES {i} ({text!r}) cannot be parsed; leave it out before fingerprinting")
            out[i] = generator.GetFingerprintAsNumPy(mol)
    return out


@dataclass
class BaselineResult:
    """Scores of one baseline fit.

    Attributes:
        valid: [num_valid, num_tasks] scores (probabilities or values).
        test: [num_test, num_tasks] scores.
        info: facts for the record (settings, tasks predicted as a constant, epochs...).
    """

    valid: np.ndarray
    test: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def constant_prediction(labels: np.ndarray, task_type: str) -> float | None:
    """The constant a task is predicted as when no model can be fitted on its training labels
    (none, or a single class): their mean (0.5 / 0.0 without labels); None when a model can be fitted."""
    if len(labels) and not (task_type == CLASSIFICATION and len(np.unique(labels)) < 2):
        return None
    return float(labels.mean()) if len(labels) else (0.5 if task_type == CLASSIFICATION else 0.0)


def make_forest(
    task_type: str, *, seed: int, n_estimators: int = RF_SETTINGS["n_estimators"], n_jobs: int = 1
) -> RandomForestClassifier | RandomForestRegressor:
    """An unfitted scikit-learn forest in the fixed setting (:data:`RF_SETTINGS`)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    if task_type == CLASSIFICATION:
        return RandomForestClassifier(
            n_estimators=n_estimators, class_weight=RF_SETTINGS["class_weight"], n_jobs=n_jobs, random_state=seed
        )
    return RandomForestRegressor(n_estimators=n_estimators, n_jobs=n_jobs, random_state=seed)


def fit_random_forest(
    features: np.ndarray,
    y: np.ndarray,
    split: dict[str, np.ndarray],
    *,
    task_type: str,
    seed: int,
    n_estimators: int = RF_SETTINGS["n_estimators"],
    n_jobs: int = 1,
) -> BaselineResult:
    """One random forest per task on its labelled training rows; scores for validation and test.

    A classification task whose training rows hold a single class (or none) cannot be fitted; it
    is predicted as the constant fraction of positives (0.5 without labels), which scores ROC-AUC
    0.5, and it is counted in ``info["constant_tasks"]``. Likewise a regression task without
    training labels is predicted as 0.

    Args:
        features: [num_molecules, num_features] e.g. :func:`morgan_fingerprints`.
        y: [num_molecules, num_tasks] labels, NaN = missing.
        split: ``{"train", "valid", "test"}`` -> indices into ``features`` and ``y``.
        task_type: ``"classification"`` or ``"regression"``.
        seed: ``random_state`` of every forest.
        n_estimators: trees per forest (the benchmark keeps the documented 500).
        n_jobs: worker processes; results do not depend on it.
    """
    if task_type not in (CLASSIFICATION, REGRESSION):
        raise InputError(f"task_type must be {CLASSIFICATION!r} or {REGRESSION!r}; got {task_type!r}")
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    train, valid, test = split["train"], split["valid"], split["test"]
    scores = {"valid": np.zeros((len(valid), y.shape[1])), "test": np.zeros((len(test), y.shape[1]))}
    constant = []
    for task in range(y.shape[1]):
        rows = train[~np.isnan(y[train, task])]
        labels = y[rows, task]
        value = constant_prediction(labels, task_type)
        if value is not None:
            for part in scores:
                scores[part][:, task] = value
            constant.append(task)
            continue
        forest = make_forest(task_type, seed=seed, n_estimators=n_estimators, n_jobs=n_jobs)
        if task_type == CLASSIFICATION:
            forest.fit(features[rows], labels.astype(int))
            positive = list(forest.classes_).index(1)
            scores["valid"][:, task] = forest.predict_proba(features[valid])[:, positive]
            scores["test"][:, task] = forest.predict_proba(features[test])[:, positive]
        else:
            forest.fit(features[rows], labels)
            scores["valid"][:, task] = forest.predict(features[valid])
            scores["test"][:, task] = forest.predict(features[test])
    return BaselineResult(scores["valid"], scores["test"], {"constant_tasks": constant, "n_estimators": n_estimators})


def random_forest_metrics(
    fingerprints: np.ndarray, y: np.ndarray, split: dict[str, np.ndarray], *, task_type: str,
    targets: list[str] | None = None,
) -> dict[str, Any]:
    """The fixed forest (seed 0) on Morgan bits (:func:`morgan_fingerprints`, radius 2, 2,048)
    fitted on ``split``, scored like a molft model: ``{"valid": metrics, "test": metrics, "settings": ...}``."""
    fitted = fit_random_forest(fingerprints, y, split, task_type=task_type, seed=0)
    return {
        "valid": evaluate(y[split["valid"]], fitted.valid, task_type, targets),
        "test": evaluate(y[split["test"]], fitted.test, task_type, targets),
        "settings": {**RF_SETTINGS, "random_state": 0},
    }
