"""scikit-learn-style estimators: ``fit`` on SMILES and labels, ``predict`` on SMILES.

They wrap :func:`molft.finetune` and :class:`~molft.finetuning.predict.FinetunedModel`, so an
estimator trains exactly what ``molft finetune`` trains (the held-out split included: its
metrics are in ``metrics_``) and keeps the model directory it wrote (``model_dir_``)::

    >>> from molft import MolftRegressor
    >>> model = MolftRegressor(seeds=3).fit(train_smiles, train_pic50)   # doctest: +SKIP
    >>> mean, std = model.predict(new_smiles, return_std=True)          # doctest: +SKIP

Molecules that cannot be featurized get NaN predictions (never an exception, never a dropped
row); ``last_failures_`` says which and why.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, REGRESSION
from molft.finetuning.predict import FinetunedModel, Prediction
from molft.finetuning.train import finetune
from molft.runtime import resolve_device


class _MolftEstimator(BaseEstimator):
    """Shared fit/predict; subclasses fix the task type and the output convention."""

    task_type: str

    def __init__(
        self,
        pretrained: str | Path | None = "default",
        mode: str = "finetune",
        model: str = "auto",
        seeds: int = 1,
        split: str = "scaffold",
        max_epochs: int | None = None,
        device: str | None = None,
        model_dir: str | Path | None = None,
        progress: bool = False,
    ) -> None:
        self.pretrained = pretrained
        self.mode = mode
        self.model = model
        self.seeds = seeds
        self.split = split
        self.max_epochs = max_epochs
        self.device = device
        self.model_dir = model_dir
        self.progress = progress

    def fit(self, smiles: Sequence[str], y: Any) -> _MolftEstimator:
        """Fine-tune on ``smiles`` and labels ``y`` ([n] or [n, tasks]; NaN = missing).

        Target names come from a DataFrame's columns or a Series' name, else ``y`` / ``y0, y1...``.

        The molecules are split like ``molft finetune`` splits a table (``split``): training,
        validation for early stopping, and a test part whose metrics land in ``metrics_``.

        Raises:
            InputError: lengths differ, or the labels do not suit the task type.
        """
        smiles = [str(s) for s in smiles]
        if isinstance(y, pd.Series) and y.name is not None:
            labels = y.to_frame()  # a named column keeps its name as the target's
        else:
            labels = pd.DataFrame(y) if np.ndim(y) == 2 else pd.DataFrame({"y": np.asarray(y)})
        if len(labels) != len(smiles):
            raise InputError(f"{len(smiles)} SMILES but {len(labels)} labels")
        labels.columns = [str(c) if not isinstance(c, int) else f"y{c}" for c in labels.columns]
        workdir = Path(self.model_dir) if self.model_dir is not None else Path(tempfile.mkdtemp(prefix="molft-"))
        workdir.mkdir(parents=True, exist_ok=True)
        table = workdir / "fit.csv"
        pd.concat([pd.DataFrame({"smiles": smiles}), labels.reset_index(drop=True)], axis=1).to_csv(table, index=False)
        result = finetune(
            table, list(labels.columns), workdir / "model", pretrained=self.pretrained, split=self.split,
            seeds=self.seeds, task_type=self.task_type, smiles_column="smiles", mode=self.mode, model=self.model,
            max_epochs=self.max_epochs, device=self.device, overwrite=True, progress=self.progress,
        )
        self.model_dir_ = result.out
        self.metrics_ = result.metrics
        self.targets_ = list(labels.columns)
        self.model_ = FinetunedModel.load(result.out, resolve_device(self.device))
        return self

    def _prediction(self, smiles: Sequence[str]) -> Prediction:
        """The chosen model's predictions; NaN where a SMILES could not be featurized."""
        if not hasattr(self, "model_"):
            raise InputError(f"this {type(self).__name__} is not fitted yet; call fit(smiles, y) first")
        prediction = self.model_.predict_smiles([str(s) for s in smiles], resolve_device(self.device),
                                                progress=self.progress)
        self.last_failures_ = prediction.failures
        return prediction

    def _squeeze(self, values: np.ndarray) -> np.ndarray:
        return values[:, 0] if len(self.targets_) == 1 else values


class MolftRegressor(RegressorMixin, _MolftEstimator):
    """Regressor on SMILES (one or several targets): the model ``molft finetune --model`` chooses."""

    task_type = REGRESSION

    def predict(self, smiles: Sequence[str], return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predictions ([n], or [n, tasks]); with ``return_std``, also the spread over the members
        (zeros with a single member)."""
        prediction = self._prediction(smiles)
        mean = self._squeeze(prediction.value)
        if not return_std:
            return mean
        spread = prediction.spread if prediction.spread is not None else np.where(np.isnan(prediction.value), np.nan, 0.0)
        return mean, self._squeeze(spread)


class MolftClassifier(ClassifierMixin, _MolftEstimator):
    """Classifier on SMILES with 0/1 labels (one or several tasks): the model ``molft finetune --model`` chooses."""

    task_type = CLASSIFICATION

    def fit(self, smiles: Sequence[str], y: Any) -> MolftClassifier:
        super().fit(smiles, y)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, smiles: Sequence[str]) -> np.ndarray:
        """Calibrated probability of the positive class: [n, 2] columns (0, 1) for one task, else [n, tasks]."""
        positive = self._prediction(smiles).value
        if len(self.targets_) == 1:
            return np.stack([1.0 - positive[:, 0], positive[:, 0]], axis=1)
        return positive

    def predict(self, smiles: Sequence[str]) -> np.ndarray:
        """0/1 labels at probability 0.5 (float, NaN for molecules that could not be featurized)."""
        positive = self._prediction(smiles).value
        return self._squeeze(np.where(np.isnan(positive), np.nan, (positive >= 0.5).astype(float)))
