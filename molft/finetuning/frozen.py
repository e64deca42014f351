"""Instant mode: a linear scikit-learn model on frozen pretrained embeddings, in seconds on CPU.

The fitted coefficients are folded into the PropertyModel's linear head (standardisation
included), so a frozen-mode model is saved, loaded and used for prediction exactly like a
fine-tuned one. Ensemble members beyond the first are fitted on bootstrap resamples of the
training set, so their spread is a real uncertainty estimate.

The regularisation strength is chosen on validation. For regression by the one-standard-error rule,
as ``--model auto`` chooses its blend: the strongest penalty whose validation RMSE is within one
bootstrap standard error of the best one; a small scaffold validation split otherwise picks weak
penalties by chance (built-in assay, default encoder: test RMSE 0.967 ± 0.371 -> 0.674 ± 0.081;
Lipophilicity unchanged). For classification the best validation score: there the rule took the
strongest penalty almost always and lowered BBBP's test ROC-AUC by 0.01-0.05 (``RULES``).

A richer readout of the frozen encoder (every layer, mean- and sum- or max-pooled:
:data:`molft.embedding.READOUT_CHOICES`) is a better feature for the encoder probe's linear model,
but chosen per assay, on validation or by cross-validation on the training labels, it did not make
``--model auto`` better (2026-12-05: three grid cells better, three worse, the built-in assay worse;
``benchmarks/results/linear_member_readout/``), so instant mode reads the last layer, mean-pooled;
``readouts`` and ``clip`` keep the alternatives measurable.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.linalg import LinAlgWarning
from sklearn.linear_model import LogisticRegression, Ridge
from torch_geometric.loader import DataLoader

from molft.checkpoints import load_encoder
from molft.data.dataset import GraphDataset
from molft.embedding import readout_model
from molft.evaluate import CLASSIFICATION, PRIMARY_METRIC, improves, primary_score, task_metric
from molft.finetuning.ensemble import bootstrap_gain
from molft.finetuning.recipe import TargetScaler
from molft.models.heads import PropertyModel
from molft.training import predict_batches

#: regularisation strengths tried, chosen on the validation split per task
STRENGTHS = (0.01, 0.1, 1.0, 10.0, 100.0)
#: how the strength is chosen, by task type (measured in ``benchmarks.builtin_assay`` / ``label_efficiency``)
RULES = {"regression": "one-se", "classification": "best"}


def fit_linear_head(
    x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray, task_type: str, seed: int
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Fit one linear model per task (labelled rows only); pick its strength on validation by the
    task type's rule in :data:`RULES` (one-SE: the strongest within one bootstrap SE of the best score).

    Args:
        x_train: [n, dim] standardised embeddings; y_train: [n, tasks] labels (NaN = missing).

    Returns:
        weight [tasks, dim], bias [tasks] (logits or scaled values) and the chosen strengths.
    """
    weights, biases, chosen = [], [], []
    for j in range(y_train.shape[1]):
        rows = ~np.isnan(y_train[:, j])
        fits = []
        for strength in STRENGTHS:
            if task_type == CLASSIFICATION:
                model = LogisticRegression(C=1.0 / strength, class_weight="balanced", max_iter=2000, random_state=seed)
            else:
                model = Ridge(alpha=strength * len(x_train) / 100.0)
            with warnings.catch_warnings():
                # The weakest ridge strengths are ill-conditioned when molecules < dimensions (100 labels,
                # 300 features): SciPy warns, the fit is still a fit, and validation decides among strengths.
                warnings.simplefilter("ignore", LinAlgWarning)
                model.fit(x_train[rows], y_train[rows, j])
            w, b = np.ravel(model.coef_), float(np.ravel(model.intercept_)[0])
            fits.append((strength, w, b, x_valid @ w + b))
        strength, w, b = _choose_strength(fits, y_valid[:, j], task_type, rule=RULES[task_type])
        weights.append(w)
        biases.append(b)
        chosen.append(strength)
    return np.stack(weights), np.asarray(biases), chosen


def _best(metric: str, scores: list[float]) -> int:
    """The index of the best of ``scores`` in ``metric`` (the first of equals)."""
    best = 0
    for i, score in enumerate(scores):
        if improves(score, scores[best], metric):
            best = i
    return best


def _choose_strength(
    fits: list[tuple[float, np.ndarray, float, np.ndarray]], y_valid: np.ndarray, task_type: str, *, rule: str
) -> tuple[float, np.ndarray, float]:
    """From (strength, weight, bias, validation scores) fits, the best on validation (``rule="best"``)
    or (``"one-se"``) the strongest whose validation score is within one bootstrap standard error of
    the best one's (the best when none is)."""
    metric = PRIMARY_METRIC[task_type]
    best = _best(metric, [task_metric(metric, y_valid, valid) for *_, valid in fits])
    if rule == "best":
        return fits[best][:3]
    for i in sorted(range(len(fits)), key=lambda i: -fits[i][0]):
        if fits[i][0] <= fits[best][0]:
            break
        gain, se = bootstrap_gain(y_valid, fits[best][3], fits[i][3], task_type=task_type)
        if gain <= se:
            return fits[i][:3]
    return fits[best][:3]


def fit_frozen_member(
    dataset: GraphDataset,
    split: dict[str, np.ndarray],
    *,
    task_type: str,
    seed: int,
    pretrained: Path,
    device: torch.device | str = "cpu",
    scaler: TargetScaler | None = None,
    readouts: tuple[str, ...] = ("last",),
    clip: float | None = None,
) -> tuple[PropertyModel, dict[str, Any]]:
    """One instant-mode ensemble member: frozen encoder, linear head fitted by scikit-learn.

    ``dataset.y`` holds the labels in the user's units; seeds above 0 fit on a bootstrap resample
    of the training split.

    Args:
        readouts: the readouts (:func:`molft.embedding.parse_readout`) to choose among on validation
            (:func:`_choose_readout`); molft uses the last layer, mean-pooled (see the module docstring).
        clip: clip the standardized embedding to ±clip, inside the model (``embedding_clip``); None
            folds the standardization into the linear head.
    """
    # Only the molecules the fit reads are embedded (a benchmark's 100-label subset of HIV: 8,300 of 41,000).
    used = np.unique(np.concatenate([split["train"], split["valid"]]))
    y = dataset.y.numpy()[used]
    if scaler is not None:
        y = scaler.transform(y)
    train = np.searchsorted(used, split["train"])
    valid = np.searchsorted(used, split["valid"])
    if seed > 0:
        train = np.random.default_rng(seed).choice(train, size=len(train), replace=True)
    loader = DataLoader(dataset.subset(used), batch_size=256)
    fits = []
    for readout in readouts:
        model = readout_model(load_encoder(pretrained)[0], readout, num_tasks=dataset.y.shape[1],
                              embedding_clip=clip).to(device).eval()
        if not isinstance(model.head, torch.nn.Linear):
            raise TypeError("instant mode needs a linear head")
        embeddings = predict_batches(model.embed, loader, device)
        mean = embeddings[train].mean(axis=0)
        std = embeddings[train].std(axis=0)
        # A feature (almost) constant on the training set carries nothing to learn from; dividing by
        # its tiny spread would turn any test-time variation into huge predictions. Leave it unscaled.
        std = np.where(std > 1e-4, std, 1.0)
        standard = (embeddings - mean) / std
        if clip is not None:
            standard = np.clip(standard, -clip, clip)
        weight, bias, chosen = fit_linear_head(standard[train], y[train], standard[valid], y[valid], task_type, seed)
        with torch.no_grad():
            if clip is not None:  # the model standardizes and clips: the head holds the fitted coefficients
                model.embedding_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
                model.embedding_std.copy_(torch.as_tensor(std, dtype=torch.float32))
                model.head.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
                model.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
            else:  # fold the standardisation into the head: w.(e - mu)/sd + b
                model.head.weight.copy_(torch.as_tensor(weight / std, dtype=torch.float32))
                model.head.bias.copy_(torch.as_tensor(bias - (weight * mean / std).sum(axis=1), dtype=torch.float32))
        fits.append((readout, model, chosen, standard[valid] @ weight.T + bias))
    readout, model, chosen, _ = fits[_choose_readout(fits, y[valid], task_type)]
    return model, {"best_epoch": 0, "strengths": chosen, "readout": readout, "bootstrap": seed > 0}


def _choose_readout(fits: list[tuple[str, PropertyModel, list[float], np.ndarray]], y_valid: np.ndarray,
                    task_type: str) -> int:
    """The index of the chosen readout: the best validation score (mean over tasks), or for
    regression (``RULES``) the first, simplest, within one bootstrap standard error of the best."""
    best = _best(PRIMARY_METRIC[task_type], [primary_score(y_valid, valid, task_type) for *_, valid in fits])
    if RULES[task_type] == "one-se":
        for i in range(best):
            gain, se = bootstrap_gain(y_valid, fits[best][3], fits[i][3], task_type=task_type)
            if gain <= se:
                return i
    return best
