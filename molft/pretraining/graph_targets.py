"""Graph-level pretraining targets: computed descriptors, fingerprints, and measured labels.

Each objective predicts one vector per molecule from the mean-pooled embedding of the
*unmasked* graph, through a two-layer MLP head (``width -> width -> targets``), or with
``head="linear"`` a single linear layer, which asks the embedding itself to hold the targets
linearly (what a linear probe, or a frozen-embedding model, reads):

* ``descriptors`` (:class:`DescriptorRegression`): standardized, clipped RDKit 2D descriptors
  (``rdkit2d``, 217 of them), mean squared error over the finite ones (CheMeleon, Burns et al.
  2025, pretrain on Mordred descriptors the same way);
* ``fingerprint`` (:class:`FingerprintPrediction`): Morgan bits (binary cross-entropy per bit)
  or counts (squared error of ``log1p(count)``), 1,024 positions by default;
* ``supervised`` (:class:`SupervisedLabels`): multitask binary classification on the corpus's
  own label columns, missing labels masked (Hu et al. 2020's graph-level stage on ChEMBL);
  values that are not 0/1 (ChEMBL pChEMBL values) are read as active when ``>= threshold``.

The targets come from the corpus: an objective names what it reads (:meth:`~GraphTarget.target_source`:
a molecule-feature spec, computed once per corpus and cached beside the featurized graphs by
:func:`molft.data.features.table_features`, or ``"labels"``), turns the raw array into training
targets once (:meth:`~GraphTarget.prepare_targets`, a pure function of the whole array), and the
loop's dataset attaches row ``i`` to graph ``i`` as ``<name>_y`` (``[1, num_targets]``).

When several objectives read the clean graph, the encoder runs on it once per step: the
:class:`~molft.pretraining.objectives.ObjectiveSet` shares one forward per input.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.data import Data
from torch_geometric.nn import global_mean_pool

from molft.errors import InputError
from molft.featurize.molecule import FeatureScaler, MorganFingerprint, RDKitDescriptors, get_molecule_feature
from molft.models.encoder import EncoderConfig
from molft.pretraining.objectives import Objective, node_dim, world_mean

LABELS = "labels"
#: descriptor statistics (quantiles, mean, std) come from at most this many molecules, evenly spread
#: over the corpus: on 1.94M rows a fit of all takes ~40 s, of these ~2 s, and the means agree within
#: 0.005 standard deviations, the standard deviations within 1%
SCALER_FIT_ROWS = 250_000
#: the heads a graph-level objective can put on the pooled embedding
HEADS = ("mlp", "linear")


class GraphTarget(Objective):
    """Base of the graph-level objectives: a head (:data:`HEADS`) on the pooled clean-graph embedding.

    Subclasses call :meth:`_set_head_kind`, then :meth:`_build_head` with the number of targets,
    and implement :meth:`target_source`, :meth:`prepare_targets` and :meth:`_loss`.
    """

    head_kind = "mlp"

    def _set_head_kind(self, head: str) -> None:
        if head not in HEADS:
            raise InputError(f"{self.name}: head must be one of {', '.join(HEADS)}; got {head!r}")
        self.head_kind = head

    def _build_head(self, num_targets: int) -> None:
        width = node_dim(self.encoder_config)
        self.num_targets = int(num_targets)
        if self.head_kind == "linear":
            self.head = nn.Linear(width, self.num_targets)
        else:
            self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, self.num_targets))

    def target_source(self) -> str:
        """What the objective reads per molecule: a molecule-feature spec, or ``"labels"``."""
        raise NotImplementedError

    def prepare_targets(self, raw: np.ndarray) -> np.ndarray:
        """Training targets (float32, NaN = no target) from the raw per-molecule array."""
        raise NotImplementedError

    def predict(self, encoder: nn.Module, batch: Data) -> Tensor:
        """[num_graphs, num_targets] raw outputs for the clean graphs of ``batch``."""
        h = encoder(batch.x, batch.edge_index, batch.edge_attr)
        return self.head(global_mean_pool(h, batch.batch, size=batch.num_graphs))

    def loss(self, encoder: nn.Module, batch: Data) -> tuple[Tensor, dict[str, float]]:
        target = batch[f"{self.name}_y"].float()
        return self._loss(self.predict(encoder, batch), target)

    def _loss(self, output: Tensor, target: Tensor) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError


def _masked_mean(values: Tensor, known: Tensor) -> Tensor:
    """World mean over the known entries only (each entry weighs the same)."""
    return world_mean(values[known])


class DescriptorRegression(GraphTarget):
    """Regress standardized RDKit 2D descriptors of each molecule from its pooled embedding.

    Targets: each descriptor clipped to the corpus's 0.5-99.5% quantiles, standardized with the
    corpus's mean and std, clipped to ``±clip`` (:class:`~molft.featurize.molecule.FeatureScaler`;
    statistics of :func:`scaler_rows`, every molecule of a corpus up to 250,000); a descriptor
    RDKit could not compute is left out of the loss.

    Args:
        encoder_config: the encoder being pretrained.
        feature: the descriptor set: ``"rdkit2d"`` (all 217), or ``"rdkit2d_fast"`` (the 97 cheapest,
            about a fifth of the cost per molecule, for corpora of millions).
        clip: bound of the standardized targets.
        head: ``"mlp"`` (two layers) or ``"linear"``.

    Logs:
        ``loss`` (mean squared error over known targets; 1.0 = predicting the mean), ``r2``
        (``1 - loss``, the share of standardized variance explained).
    """

    name = "descriptors"

    def __init__(self, encoder_config: EncoderConfig, feature: str = "rdkit2d", clip: float = 5.0,
                 head: str = "mlp") -> None:
        super().__init__(encoder_config)
        self._set_head_kind(head)
        chosen = get_molecule_feature(feature)
        if not isinstance(chosen, RDKitDescriptors):
            raise InputError(
                f"descriptors: feature must be a descriptor set ('rdkit2d' or 'rdkit2d_fast'), got {feature!r}"
            )
        if not clip > 0:
            raise InputError(f"descriptors: clip must be > 0, got {clip!r}")
        self.feature, self.clip = feature, float(clip)
        self.options = {"feature": feature, "clip": self.clip, "targets": len(chosen), "head": head}
        self._build_head(len(chosen))

    def target_source(self) -> str:
        return self.feature

    def prepare_targets(self, raw: np.ndarray) -> np.ndarray:
        return FeatureScaler.fit(raw[scaler_rows(len(raw), SCALER_FIT_ROWS)], clip=self.clip).transform(raw)

    def _loss(self, output: Tensor, target: Tensor) -> tuple[Tensor, dict[str, float]]:
        known = ~torch.isnan(target)
        loss = _masked_mean((output - torch.nan_to_num(target)) ** 2, known)
        value = float(loss.detach())
        return loss, {"loss": value, "r2": 1.0 - value}


def scaler_rows(count: int, limit: int = SCALER_FIT_ROWS) -> np.ndarray:
    """The rows a descriptor scaler is fitted on: all ``count`` of them up to ``limit``, else
    ``limit`` rows evenly spread from the first to the last.

    Example:
        >>> scaler_rows(5).tolist(), scaler_rows(10, limit=4).tolist()
        ([0, 1, 2, 3, 4], [0, 3, 6, 9])
    """
    if count <= limit:
        return np.arange(count)
    return np.linspace(0, count - 1, limit).round().astype(np.int64)


class FingerprintPrediction(GraphTarget):
    """Predict each molecule's Morgan fingerprint from its pooled embedding.

    Args:
        encoder_config: the encoder being pretrained.
        feature: ``"morgan_bits:<size>"`` (binary cross-entropy per bit) or
            ``"morgan_count:<size>"`` (squared error of ``log1p(count)``).
        head: ``"mlp"`` (two layers) or ``"linear"``.

    Logs:
        ``loss``; for bits ``accuracy`` (per bit) and ``on_recall`` (share of set bits predicted set).
    """

    name = "fingerprint"

    def __init__(self, encoder_config: EncoderConfig, feature: str = "morgan_bits:1024", head: str = "mlp") -> None:
        super().__init__(encoder_config)
        self._set_head_kind(head)
        chosen = get_molecule_feature(feature)
        if not isinstance(chosen, MorganFingerprint):
            raise InputError(f"fingerprint: feature must be a Morgan fingerprint ('morgan_bits:1024'), got {feature!r}")
        self.feature, self.counts = feature, chosen.counts
        self.options = {"feature": feature, "targets": len(chosen), "head": head}
        self._build_head(len(chosen))

    def target_source(self) -> str:
        return self.feature

    def prepare_targets(self, raw: np.ndarray) -> np.ndarray:
        return np.log1p(raw.astype(np.float32)) if self.counts else raw.astype(np.float32)

    def _loss(self, output: Tensor, target: Tensor) -> tuple[Tensor, dict[str, float]]:
        known = torch.ones_like(target, dtype=torch.bool)
        if self.counts:
            loss = _masked_mean((output - target) ** 2, known)
            return loss, {"loss": float(loss.detach())}
        loss = _masked_mean(F.binary_cross_entropy_with_logits(output, target, reduction="none"), known)
        predicted = output > 0
        on = target > 0.5
        logs = {"loss": float(loss.detach()), "accuracy": float((predicted == on).float().mean())}
        logs["on_recall"] = float((predicted & on).sum() / on.sum().clamp(min=1))
        return loss, logs


class SupervisedLabels(GraphTarget):
    """Multitask binary classification on the corpus's label columns (Hu et al.'s supervised stage).

    Every numeric column of the corpus table other than the SMILES is a task; an empty cell is a
    missing label, left out of the loss. Columns of 0/1 are used as they are; other values (e.g.
    ChEMBL pChEMBL) count as active when ``>= threshold``.

    Args:
        encoder_config: the encoder being pretrained.
        num_tasks: the number of label columns (set from the corpus by :meth:`prepare_targets`).
        threshold: activity threshold for non-binary columns (6.0 = 1 µM for pChEMBL values).

    Logs:
        ``loss`` (mean binary cross-entropy over known labels), ``accuracy``, ``known`` (labels per graph).
    """

    name = "supervised"

    def __init__(self, encoder_config: EncoderConfig, num_tasks: int = 0, threshold: float = 6.0) -> None:
        super().__init__(encoder_config)
        if isinstance(num_tasks, bool) or not isinstance(num_tasks, int) or num_tasks < 0:
            raise InputError(f"supervised: num_tasks must be an integer >= 0, got {num_tasks!r}")
        self.threshold = float(threshold)
        self.options = {"threshold": self.threshold, "num_tasks": num_tasks}
        self._build_head(max(num_tasks, 1))

    def target_source(self) -> str:
        return LABELS

    def prepare_targets(self, raw: np.ndarray) -> np.ndarray:
        """0/1 labels (see :func:`binarize_labels`); also sizes the head to the corpus's columns
        (the loop calls this before training and before reading a checkpoint)."""
        if raw.shape[1] != self.num_targets:
            self.options["num_tasks"] = int(raw.shape[1])
            self._build_head(raw.shape[1])
        return binarize_labels(raw, self.threshold)

    def _loss(self, output: Tensor, target: Tensor) -> tuple[Tensor, dict[str, float]]:
        known = ~torch.isnan(target)
        clean = torch.nan_to_num(target)
        loss = _masked_mean(F.binary_cross_entropy_with_logits(output, clean, reduction="none"), known)
        hits = ((output > 0) == (clean > 0.5)) & known
        logs: dict[str, Any] = {"loss": float(loss.detach())}
        logs["accuracy"] = float(hits.sum() / known.sum().clamp(min=1))
        logs["known"] = float(known.sum()) / max(len(target), 1)
        return loss, logs


def binarize_labels(raw: np.ndarray, threshold: float) -> np.ndarray:
    """Labels as 0/1 float32 (NaN kept): a column of only 0/1 as it is, others ``>= threshold``."""
    raw = np.asarray(raw, dtype=np.float32)
    out = np.full(raw.shape, np.nan, dtype=np.float32)
    for j in range(raw.shape[1]):
        column = raw[:, j]
        known = ~np.isnan(column)
        binary = np.isin(column[known], (0.0, 1.0)).all()
        out[known, j] = column[known] if binary else (column[known] >= threshold).astype(np.float32)
    return out
