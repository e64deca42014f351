"""Label efficiency: how many labels does pretraining save? Test metric vs. number of training labels.

For each dataset (from molft's registry), the scaffold split gives fixed validation and test sets.
From the labelled training molecules, :func:`molft.data.splits.label_budgets` draws nested
subsets of 100, 300, 1,000, 3,000 and 10,000 molecules (capped at the training set; budgets that
cap to the same size run once). For a given (budget, seed) every method trains on the *same*
molecules (each run records a hash of their rows), and ``seed`` is both the subset seed and the
model seed. Methods:

* ``pretrained``: molft fine-tuning (:func:`molft.finetuning.member.train_member`, the recipe of
  :func:`~molft.finetuning.recipe.choose_recipe` for that many labels) from each ``--pretrained``
  encoder, named ``pretrained:<directory name>``;
* ``frozen``: molft's instant mode (:func:`molft.finetuning.frozen.fit_frozen_member`: a linear
  model on frozen embeddings, its strength chosen on validation), ``frozen:<directory name>``;
* ``scratch``: the same GIN (the first pretrained encoder's architecture, else ``--num-layers`` x
  ``--hidden-dim``) trained from random weights with molft's from-scratch recipe;
* ``rf``: a random forest on Morgan fingerprints in one fixed setting
  (:data:`benchmarks.baselines.RF_SETTINGS`);
* ``chemprop``: chemprop v2 through its CLI, when installed (skipped with a message otherwise), in
  its default setting but for two things: the from-scratch GIN's epoch cap and patience (100, 20;
  chemprop's 50 epochs of batch 64 are 100 steps on 100 labels, and its validation ROC-AUC was
  still rising at the last one), and its best epoch chosen on validation ROC-AUC or RMSE, like
  molft's (:data:`benchmarks.baselines.CHEMPROP_TRACKING`);
* ``auto``: molft's default model (``molft finetune --model auto``): the fine-tuned GNN of each
  ``--pretrained`` encoder beside a forest and a boosted fingerprint member, the best one or blend
  chosen on validation (:func:`molft.finetuning.choice.choose_model`), ``auto:<directory name>``;
  each run records the weights chosen, every member's scores, and the intervals' test coverage or
  the calibration; the forest member is the ``rf`` method's forest (same setting, seed and labels).
  Since 2026-12-04 it also has ``molft finetune``'s fourth member, the linear model on the frozen
  encoder (:data:`AUTO_SETTINGS`). A cell recorded with the three members before
  (:data:`EARLIER_AUTO_SETTINGS`) whose members' scores were saved is completed rather than run
  again: its GNN, forest and boosted scores are read back, only the linear member is fitted, the
  choice is made anew, and the run records where its members came from (``reused_members``, with
  the earlier run's ``wall_s``; its own ``wall_s`` is the completion's);
* ``auto-scratch``: the same with the GIN from scratch, so the table shows what pretraining adds
  inside the ensemble;
* ``boosted``: the LightGBM member alone (:data:`molft.finetuning.trees.BOOSTED_SETTINGS`).

GNNs report the test metric at the best-validation epoch (the model is restored to that epoch);
nothing is ever selected on test. Each (dataset, method, budget, seed) is one cell of
:mod:`benchmarks.harness`: its run is appended at once to ``<results>/label_efficiency_runs.jsonl``
and a rerun skips runs already there (same data file, split and settings), so an interrupted
benchmark resumes where it stopped; ``--stop-after``, ``--report-only`` and ``--add-runs`` are the
harness's (runs made side by side or on another machine join one report).

    python -m benchmarks.label_efficiency --datasets bbbp,hiv --budgets 100,300,1000 --seeds 5 \\
        --methods pretrained,frozen,scratch,rf [--pretrained DIR[,DIR...]] [--device cuda]

Writes ``<results>/label_efficiency.json`` (every run, mean ± std per cell, label equivalence),
``label_efficiency.md``, ``label_efficiency_<dataset>.png`` (metric vs labels, log x, ±std bands)
and ``label_efficiency_equivalence.png`` (from-scratch labels needed to match the pretrained
model at 100 and 1,000 labels).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.loader import DataLoader

from molft.checkpoints import load_encoder
from molft.data.dataset import GraphDataset
from molft.data.registry import LoadedDataset, load_dataset
from molft.data.splits import DEFAULT_BUDGETS, label_budgets
from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, evaluate, higher_is_better, mean_std
from molft.featurize.molecule import HeadFeatures, molecule_features, parse_molecule_features
from molft.finetuning.choice import choose_model
from molft.finetuning.ensemble import EMBEDDING_MEMBER
from molft.finetuning.frozen import fit_frozen_member
from molft.finetuning.trees import BOOSTED_SETTINGS, TREE_KINDS, feature_matrix, fit_tree_member
from molft.finetuning.recipe import Recipe, TargetScaler, choose_recipe
from molft.finetuning.member import new_member, predict_scores, train_member
from molft.models.encoder import EncoderConfig
from molft.pretrained import resolve_pretrained
from molft.runtime import resolve_device, run_metadata

from benchmarks.baselines import RF_SETTINGS, chemprop_unavailable, fit_random_forest, morgan_fingerprints, run_chemprop
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
    input_errors_exit,
    markdown_table,
    mean_std_text,
    pooling_suffix,
    read_runs,
    run_key,
    run_cells,
    start,
    text_table,
    utc_now,
    write_json,
)

NAME = "label_efficiency"
KINDS = ("pretrained", "frozen", "scratch", "rf", "chemprop", "auto", "auto-scratch", "boosted")
#: kinds that train a GNN (``auto``: molft's default model, a GNN beside fingerprint members)
GNN_KINDS = ("pretrained", "frozen", "scratch", "auto", "auto-scratch")
#: label counts at which the pretrained model is compared with from-scratch training
REFERENCE_BUDGETS = (100, 1000)
#: chemprop's epoch cap and patience: those of molft's from-scratch recipe
CHEMPROP_EPOCHS = choose_recipe(1000, pretrained=False).max_epochs
CHEMPROP_PATIENCE = choose_recipe(1000, pretrained=False).patience
#: label counts of the summary table (a smaller training set shows all its labels instead)
HEADLINE_BUDGETS = (100, 1000, 10000)


# --------------------------------------------------------------------------------------------
# methods and data


@dataclass(frozen=True)
class Method:
    """One column of the benchmark.

    Attributes:
        name: shown in tables (``scratch``, ``rf``, ``pretrained:<dir>``, ``frozen:<dir>``...).
        kind: one of ``KINDS``.
        pretrained: the encoder directory (pretrained and frozen only).
        encoder: the architecture (GNN methods).
        settings: everything else that fixes its results; part of the resume key.
        head_features: molecule features the GNN's head reads beside the pooled embedding
            (``molft finetune --molecule-features``; fine-tuned and from-scratch GNNs only).
        auxiliary: a molecule feature the trained GNN also regresses from its pooled embedding
            while fine-tuning, scaled on the training molecules, and the loss's weight
            (``Recipe.auxiliary_weight``), e.g. ``("rdkit2d", 1.0)``; None: no auxiliary loss.
        pooling: how the trained GNN's head pools the atoms (``mean``, or e.g. ``mean+sum``).
    """

    name: str
    kind: str
    pretrained: Path | None = None
    encoder: EncoderConfig | None = None
    settings: str = ""
    head_features: tuple[str, ...] = ()
    auxiliary: tuple[str, float] | None = None
    pooling: str = "mean"


@dataclass
class BenchmarkDataset:
    """A registry dataset ready for the benchmark: graphs per vocabulary, the split, the budgets.

    Attributes:
        name: the registry name.
        by_vocabulary: the loaded dataset per feature vocabulary (same molecules and split in each).
        train: the labelled training molecules (indices), from which budgets are drawn.
        budgets: requested budget -> label count, one entry per distinct label count.
    """

    name: str
    by_vocabulary: dict[str, LoadedDataset]
    train: np.ndarray
    budgets: dict[int, int]
    _fingerprints: np.ndarray | None = field(default=None, repr=False)
    _molecule_arrays: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @property
    def base(self) -> LoadedDataset:
        return next(iter(self.by_vocabulary.values()))

    @property
    def y(self) -> np.ndarray:
        return self.base.y

    def fingerprints(self) -> np.ndarray:
        """Morgan fingerprints of every molecule (computed once)."""
        if self._fingerprints is None:
            self._fingerprints = morgan_fingerprints(self.base.smiles, RF_SETTINGS["radius"], RF_SETTINGS["n_bits"])
        return self._fingerprints

    def molecule_arrays(self, extra: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """The fingerprint members' features (and ``extra`` specs) of every molecule (each computed
        once, two processes)."""
        if self._molecule_arrays is None:
            self._molecule_arrays = {}
        wanted = {spec for kind in TREE_KINDS.values() for spec in kind.features} | set(extra)
        missing = sorted(wanted - set(self._molecule_arrays))
        if missing:
            self._molecule_arrays.update(molecule_features(self.base.smiles, missing, workers=2).arrays)
        return self._molecule_arrays

    def subsets(self, seed: int) -> dict[int, np.ndarray]:
        """Requested budget -> the training indices of that budget for ``seed`` (nested)."""
        drawn = label_budgets(self.train, self.y, sorted(self.budgets), seed=seed, task_type=self.base.task_type)
        return {budget: drawn[budget] for budget in self.budgets}

    def split(self, train: np.ndarray) -> dict[str, np.ndarray]:
        return {"train": train, "valid": self.base.split["valid"], "test": self.base.split["test"]}

    def rows_digest(self, indices: np.ndarray) -> str:
        """A hash of the file rows of ``indices``: equal digests mean the same molecules."""
        rows = np.sort(self.base.row_index[indices]).astype(np.int64)
        return hashlib.sha256(rows.tobytes()).hexdigest()[:16]


def effective_budgets(budgets: Sequence[int], num_train: int) -> dict[int, int]:
    """Requested budget -> label count (capped at ``num_train``); budgets that cap alike run once.

    Example:
        >>> effective_budgets([100, 300, 3000, 10000], 1631)
        {100: 100, 300: 300, 3000: 1631}
    """
    result: dict[int, int] = {}
    for budget in sorted(set(int(b) for b in budgets)):
        count = min(budget, num_train)
        if count > 0 and count not in result.values():
            result[budget] = count
    return result


def prepare_dataset(
    name: str,
    *,
    budgets: Sequence[int],
    vocabularies: Sequence[str] = ("ogb",),
    data_dir: str | Path | None = None,
    split: str = "scaffold",
) -> BenchmarkDataset:
    """Load ``name`` once per vocabulary and check that every copy has the same molecules and split."""
    by_vocabulary: dict[str, LoadedDataset] = {}
    for vocabulary in dict.fromkeys(vocabularies):
        loaded = load_dataset(name, data_dir, vocab=vocabulary, split=split)
        if by_vocabulary:
            base = next(iter(by_vocabulary.values()))
            same = np.array_equal(base.row_index, loaded.row_index) and all(
                np.array_equal(base.split[p], loaded.split[p]) for p in base.split
            )
            if not same:
                raise InputError(
                    f"{name}: the {vocabulary!r} and {base.vocabulary!r} featurizations keep different molecules, "
                    "so methods would not see identical splits; compare encoders of one vocabulary at a time"
                )
        by_vocabulary[vocabulary] = loaded
    base = next(iter(by_vocabulary.values()))
    train = base.split["train"]
    train = train[~np.isnan(base.y[train]).all(axis=1)]  # a budget counts labelled molecules
    return BenchmarkDataset(name=base.info.name, by_vocabulary=by_vocabulary, train=train,
                            budgets=effective_budgets(budgets, len(train)))


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _encoder_names(directories: Sequence[Path]) -> list[str]:
    """Each directory's name, with as many parent folders as it takes to tell them apart."""
    depth = 1
    while True:
        names = ["/".join(d.resolve().parts[-depth:]) for d in directories]
        if len(set(names)) == len(names) or depth > 8:
            return names
        depth += 1


def resolve_methods(
    kinds: Sequence[str],
    *,
    pretrained: Sequence[str],
    max_epochs: int | None = None,
    scratch_encoder: EncoderConfig | None = None,
    head_features: Sequence[str] = (),
    auxiliary: tuple[str, float] | None = None,
    recorded: Sequence[dict[str, Any]] = (),
    pooling: str = "mean",
) -> tuple[list[Method], dict[str, str]]:
    """Turn ``--methods`` and ``--pretrained`` into methods; say why any are skipped.

    ``--pretrained default`` that is not installed yet skips ``pretrained`` and ``frozen`` with a
    message; any other pretrained path that is not an encoder directory is an error. ``scratch``
    uses the first encoder's architecture (so it does not depend on which other methods run), or
    ``scratch_encoder`` (default: molft's 5 x 300 GIN) when there is none. With ``head_features``
    every trained GNN (all GNN kinds but ``frozen``) reads those molecule features in its head, and
    its name ends in ``+<spec>+...``; with ``auxiliary`` (feature, weight) every trained GNN also
    regresses that feature while training, and its name ends in ``+aux-<feature>`` (``-<weight>``
    unless the weight is 1); with a ``pooling`` other than mean every trained GNN's head pools that
    way, and its name ends in ``+pool-<pooling>``.

    ``recorded`` runs (a report of runs made earlier) stand in for an encoder directory that is
    gone: its methods are taken from the runs made with it (their names and settings, the latest
    settings of each), so a report can be rebuilt where a throwaway encoder no longer exists.

    Returns:
        the methods, and skipped method kind -> reason.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise InputError(f"unknown method(s) {', '.join(unknown)}; choose from: {', '.join(KINDS)}")
    head_features = tuple(head_features)
    if head_features:
        parse_molecule_features(list(head_features))  # an unknown feature fails before any work
    head_suffix = "".join(f"+{spec}" for spec in head_features)
    head_setting = f";head={','.join(head_features)}" if head_features else ""
    if auxiliary is not None:
        parse_molecule_features([auxiliary[0]])
        if not auxiliary[1] > 0:
            raise InputError(f"the auxiliary loss's weight must be > 0, got {auxiliary[1]}")
        head_suffix += f"+aux-{auxiliary[0]}" + ("" if auxiliary[1] == 1 else f"-{auxiliary[1]:g}")
        head_setting += f";auxiliary={auxiliary[0]}:{auxiliary[1]:g}"
    head_suffix += pooling_suffix(pooling)
    head_setting += f";pool={pooling}" if pooling != "mean" else ""
    skipped: dict[str, str] = {}
    encoders: list[tuple[Path, EncoderConfig, str]] = []
    gone: list[str] = []  # encoder directories that exist only in the recorded runs
    if {"pretrained", "frozen", "scratch", "auto", "auto-scratch"} & set(kinds):  # scratch copies the first encoder's
        directories = []
        missing_default = None
        for spec in pretrained:
            try:
                directories.append(resolve_pretrained(spec))
            except InputError as error:
                if spec != "default":
                    if _recorded_methods(spec, kinds, recorded):
                        gone.append(spec)  # reported from its runs below
                        continue
                    raise
                missing_default = f"no pretrained encoder: {error}"
        directories = [d for d in directories if d is not None]
        for kind in ("pretrained", "frozen", "auto"):
            if kind not in kinds:
                continue
            if not directories and not gone:
                skipped[kind] = missing_default or "no pretrained encoder given (--pretrained none)"
            elif missing_default:
                skipped[f"{kind}:default"] = missing_default
        for directory in directories:
            encoder, _ = load_encoder(directory)
            encoders.append((directory, encoder.config, _file_digest(directory / "model.safetensors")))
    epochs = f"max_epochs={max_epochs if max_epochs is not None else 'recipe'}"
    methods: list[Method] = []
    names = _encoder_names([d for d, _, _ in encoders])
    for kind in kinds:
        if kind in skipped:
            continue
        if kind in ("pretrained", "frozen", "auto"):
            for (directory, config, digest), name in zip(encoders, names):
                settings = f"encoder={digest}" + (f";{epochs}" if kind != "frozen" else f";{FROZEN_SETTINGS}")
                settings += f";{AUTO_SETTINGS}" if kind == "auto" else ""
                if kind == "frozen":
                    methods.append(Method(f"{kind}:{name}", kind, directory, config, settings))
                else:
                    methods.append(Method(f"{kind}:{name}{head_suffix}", kind, directory, config,
                                          settings + head_setting, head_features, auxiliary, pooling))
            for spec in gone:
                methods.extend(_recorded_methods(spec, [kind], recorded))
        elif kind in ("scratch", "auto-scratch"):
            architecture = encoders[0][1] if encoders else (scratch_encoder or EncoderConfig())
            arch = f"{architecture.num_layers}x{architecture.hidden_dim}-{architecture.vocabulary}-jk={architecture.jk}"
            settings = f"arch={arch};{epochs}" + (f";{ENSEMBLE_SETTINGS}" if kind == "auto-scratch" else "")
            methods.append(Method(f"{kind}{head_suffix}", kind, None, architecture, settings + head_setting,
                                  head_features, auxiliary, pooling))
        elif kind == "boosted":
            methods.append(Method("boosted", kind, settings=f"lightgbm={_settings_digest()}"))
        elif kind == "rf":
            methods.append(Method("rf", kind, settings=f"rf={RF_SETTINGS['n_estimators']}trees-morgan2-2048"))
        else:
            reason = chemprop_unavailable()
            if reason:
                skipped[kind] = reason
            else:
                methods.append(Method("chemprop", kind, settings=f"epochs={max_epochs or CHEMPROP_EPOCHS},"
                                                                  f"patience={CHEMPROP_PATIENCE},tracking=validation metric"))
    return methods, skipped


def _recorded_methods(spec: str, kinds: Sequence[str], recorded: Sequence[dict[str, Any]]) -> list[Method]:
    """The methods of ``kinds`` that the ``recorded`` runs made with encoder directory ``spec``
    (matched by its absolute path), each with the settings of its latest run."""
    path = str(Path(spec).resolve())
    latest: dict[str, dict[str, Any]] = {}
    for record in recorded:
        if record.get("pretrained") == path and record.get("kind") in kinds:
            if record["method"] not in latest or record["finished_at"] >= latest[record["method"]]["finished_at"]:
                latest[record["method"]] = record
    return [Method(name, record["kind"], Path(path), None, record["settings"]) for name, record in latest.items()]


# --------------------------------------------------------------------------------------------
# one run


#: what fixes an ensemble method's choice, part of its resume key (``auto-scratch``: no frozen embedding)
ENSEMBLE_SETTINGS = "members=gnn,forest,boosted;grid=0.25;rule=one-se;coverage=0.9"
#: ``auto`` from a pretrained encoder: ``molft finetune --model auto``'s four members
AUTO_SETTINGS = "members=gnn,forest,boosted,linear;grid=0.25;rule=one-se;coverage=0.9"
#: ``auto`` as recorded before it had the linear member (the first under the earlier blend rule);
#: such a cell's saved members complete the four-member run of the same cell
EARLIER_AUTO_SETTINGS = (ENSEMBLE_SETTINGS, "members=gnn,forest,boosted;grid=0.25;coverage=0.9")
#: instant mode's strength choice (part of the resume key: runs under the earlier validation-best choice are not reused)
FROZEN_SETTINGS = "strength=one-se-regression"


def _settings_digest() -> str:
    """A short digest of the boosted member's setting (a changed setting is a new method)."""
    return hashlib.sha256(repr(sorted(BOOSTED_SETTINGS.items())).encode()).hexdigest()[:8]


def _local(loaded: LoadedDataset, split: dict[str, np.ndarray]) -> tuple[GraphDataset, dict[str, np.ndarray]]:
    """The graphs of only the molecules this run touches, and the split re-indexed into them."""
    used = np.unique(np.concatenate(list(split.values())))
    return loaded.dataset.subset(used), {part: np.searchsorted(used, indices) for part, indices in split.items()}


def _metrics(y: np.ndarray, scores: np.ndarray, task_type: str) -> dict[str, float]:
    return {k: v for k, v in evaluate(y, scores, task_type).items() if k != "per_task"}


def run_gnn(data: BenchmarkDataset, method: Method, train: np.ndarray, *, seed: int, max_epochs: int | None,
            device: torch.device, protocol: Recipe | None = None) -> dict[str, Any]:
    """Fine-tune, fit the frozen head, or train from scratch on ``train``; scores at the best-validation epoch.

    ``protocol`` replaces molft's recipe (chosen by label count) with a fixed one, e.g.
    :data:`molft.finetuning.recipe.HU2020_PROTOCOL`, which keeps the last epoch instead.
    """
    scores, info = gnn_scores(data, method, train, seed=seed, max_epochs=max_epochs, device=device, protocol=protocol)
    split, task_type = data.split(train), data.base.task_type
    metrics = {part: _metrics(data.y[split[part]], scores[part], task_type) for part in ("valid", "test")}
    return {"valid_metrics": metrics["valid"], "test_metrics": metrics["test"], **info}


#: a saved cell's file name under ``label_efficiency_scores/`` (written by :func:`run_ensemble`)
SCORES_FILE = re.compile(r"(?P<dataset>[a-z0-9]+)-(?P<method>.+)-(?P<labels>\d+)-(?P<seed>\d+)\.npz")


def read_scores(path: Path) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """A saved cell (:func:`run_ensemble`'s ``scores_file``): ``{"valid", "test"}`` -> its rows, and
    ``{"valid", "test"}`` -> member kind -> scores (float64)."""
    with np.load(path, allow_pickle=False) as saved:
        rows = {part: saved[f"{part}_rows"] for part in ("valid", "test")}
        members = {part: {key[len(part) + 1:]: saved[key].astype(np.float64) for key in saved.files
                          if key.startswith(f"{part}_") and key != f"{part}_rows"} for part in ("valid", "test")}
    return rows, members


def run_ensemble(data: BenchmarkDataset, method: Method, train: np.ndarray, *, seed: int, max_epochs: int | None,
                 device: torch.device, scores_file: Path | None = None,
                 earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """molft's default model on ``train``: the GNN (pretrained for ``auto``, from scratch for
    ``auto-scratch``), the forest and boosted members and, for ``auto``, the linear model on the
    frozen encoder (instant mode's, seed 0, as ``molft finetune`` fits it), chosen or blended on
    validation exactly as ``molft finetune --model auto`` does
    (:func:`molft.finetuning.choice.choose_model`); or, for ``boosted``, that member alone. Each
    member's own scores are recorded beside the choice, and with ``scores_file`` every member's
    validation and test scores are saved there (``.npz``: ``<part>_<member>`` and ``<part>_rows``),
    so another choice rule can be evaluated on the same members without training them again.

    ``earlier``: the three-member record of this ``auto`` cell; when ``scores_file`` holds its
    members (same rows, the recorded GNN test score), they are read back instead of trained."""
    split, task_type = data.split(train), data.base.task_type
    member_scores: dict[str, dict[str, np.ndarray]] = {"valid": {}, "test": {}}
    info: dict[str, Any] = {}
    saved = _earlier_members(earlier, scores_file, data, split) if method.kind == "auto" else None
    if saved is not None:
        member_scores = saved
        info = {key: earlier[key] for key in ("best_epoch", "epochs_run", "recipe", "max_epochs", "patience")
                if key in earlier}
        info["reused_members"] = {"settings": earlier["settings"], "finished_at": earlier["finished_at"],
                                  "wall_s": earlier["wall_s"]}
    else:
        if method.kind != "boosted":
            gnn, info = gnn_scores(data, method, train, seed=seed, max_epochs=max_epochs, device=device)
            for part in member_scores:
                member_scores[part]["gnn"] = gnn[part]
        kinds = ("boosted",) if method.kind == "boosted" else tuple(TREE_KINDS)
        for kind in kinds:
            member = fit_tree_member(kind, feature_matrix(data.molecule_arrays(), kind), data.y, split,
                                     task_type=task_type, seed=seed)
            for part in member_scores:
                member_scores[part][kind] = member.predict(feature_matrix(data.molecule_arrays(), kind)[split[part]])
    if method.kind == "auto":
        linear, _ = gnn_scores(data, replace(method, kind="frozen"), train, seed=0, max_epochs=None, device=device)
        for part in member_scores:
            member_scores[part][EMBEDDING_MEMBER] = linear[part]
    chosen = choose_model(member_scores, data.y, split, task_type=task_type,
                          model="boosted" if method.kind == "boosted" else "auto", coverage=0.9,
                          targets=list(data.base.task_names))
    if scores_file is not None:
        scores_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(scores_file, **{f"{part}_rows": split[part] for part in member_scores},
                            **{f"{part}_{kind}": np.asarray(values, dtype=np.float32)
                               for part, by_kind in member_scores.items() for kind, values in by_kind.items()})
    metrics = {part: {k: v for k, v in chosen.metrics[part].items() if k != "per_task"} for part in ("valid", "test")}
    members = {kind: {part: _metrics(data.y[split[part]], member_scores[part][kind], task_type)
                      for part in ("valid", "test")} for kind in member_scores["valid"]}
    uncertainty = {k: chosen.metrics[k] for k in ("intervals", "calibration") if k in chosen.metrics}
    return {"valid_metrics": metrics["valid"], "test_metrics": metrics["test"], **info, "model_seed": seed,
            "weights": chosen.weights, "members": members, **uncertainty}


def _earlier_auto_runs(records: Sequence[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """Three-member ``auto`` runs by the resume key of the four-member run of the same cell
    (the latest run where a cell has several)."""
    earlier: dict[tuple, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("finished_at", "")):
        for settings in EARLIER_AUTO_SETTINGS:
            if record.get("kind") == "auto" and f";{settings}" in record["settings"]:
                earlier[run_key({**record, "settings": record["settings"].replace(settings, AUTO_SETTINGS)})] = record
    return earlier


def _earlier_members(earlier: dict[str, Any] | None, scores_file: Path | None, data: BenchmarkDataset,
                     split: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]] | None:
    """The GNN, forest and boosted scores an earlier three-member run of this cell saved, or None
    when there is no such run or its file no longer matches it."""
    if earlier is None or scores_file is None or not scores_file.is_file():
        return None
    rows, members = read_scores(scores_file)
    if any(not np.array_equal(rows[part], split[part]) for part in rows):
        return None
    if any(not {"gnn", *TREE_KINDS} <= set(members[part]) for part in members):
        return None
    gnn_test = _metrics(data.y[split["test"]], members["test"]["gnn"], data.base.task_type).get(data.base.metric)
    recorded = earlier.get("members", {}).get("gnn", {}).get("test", {}).get(data.base.metric)
    if recorded is None or gnn_test is None or not math.isclose(gnn_test, recorded, rel_tol=1e-4, abs_tol=1e-4):
        return None  # saved at float32: equal to about 1e-6
    return {part: {kind: members[part][kind] for kind in ("gnn", *TREE_KINDS)} for part in members}


def gnn_scores(data: BenchmarkDataset, method: Method, train: np.ndarray, *, seed: int, max_epochs: int | None,
               device: torch.device, protocol: Recipe | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The GNN of ``method`` trained on ``train``: its validation and test scores (in the order of
    ``data.split(train)``), and facts about the run."""
    vocabulary = method.encoder.vocabulary if method.encoder is not None else "ogb"
    loaded = data.by_vocabulary[vocabulary]
    head_width = 0
    if method.head_features and method.kind != "frozen":
        # scaled on the training labels' molecules only, as molft finetune does
        arrays = data.molecule_arrays(method.head_features)
        head = HeadFeatures.fit(arrays, method.head_features, train)
        loaded = replace(loaded, dataset=loaded.dataset.with_molecule_features(head.transform(arrays)))
        head_width = len(head)
    if method.auxiliary is not None and method.kind != "frozen":
        spec = method.auxiliary[0]
        arrays = data.molecule_arrays([spec])
        targets = HeadFeatures.fit(arrays, [spec], train).transform(arrays)  # scaled on the training molecules
        loaded = replace(loaded, dataset=loaded.dataset.with_auxiliary_targets(targets))
    dataset, split = _local(loaded, data.split(train))
    task_type = loaded.task_type
    y = dataset.y.numpy()
    scaler = TargetScaler.fit(y[split["train"]]) if task_type != CLASSIFICATION else None
    info: dict[str, Any] = {}
    if method.kind == "frozen":
        # Model seed 0: fit_frozen_member bootstraps the training set for seeds > 0 (ensemble
        # diversity), which would change the molecules this method sees. Its fit is deterministic.
        model, member = fit_frozen_member(dataset, split, task_type=task_type, seed=0, pretrained=method.pretrained,
                                          device=device, scaler=scaler)
        info.update(best_epoch=None, epochs_run=None, model_seed=0, recipe="frozen-linear",
                    strengths=member["strengths"])
    else:
        recipe = protocol or choose_recipe(len(train), pretrained=method.pretrained is not None)
        if max_epochs is not None:
            recipe = replace(recipe, max_epochs=max_epochs)
        if method.auxiliary is not None:
            recipe = replace(recipe, auxiliary_weight=method.auxiliary[1])
        model = new_member(method.pretrained, seed=seed, num_tasks=len(loaded.task_names), vocabulary=vocabulary,
                           recipe=recipe, architecture=method.encoder, molecule_features=head_width,
                           pooling=method.pooling)
        model, member = train_member(model, dataset, split, task_type=task_type, recipe=recipe, seed=seed,
                                     scaler=scaler, device=device)
        info.update(best_epoch=member["best_epoch"], epochs_run=member["epochs_run"], model_seed=seed,
                    recipe=recipe.name, max_epochs=recipe.max_epochs, patience=recipe.patience)
    scores = {}
    for part in ("valid", "test"):
        loader = DataLoader(dataset.subset(split[part]), batch_size=256)
        scores[part] = predict_scores(model, loader, task_type, scaler, device)
    return scores, info


def run_baseline(data: BenchmarkDataset, method: Method, train: np.ndarray, *, seed: int, max_epochs: int | None,
                 device: torch.device, rf_jobs: int = 1) -> dict[str, Any]:
    """The random forest or chemprop on ``train``."""
    split = data.split(train)
    task_type = data.base.task_type
    if method.kind == "rf":
        result = fit_random_forest(data.fingerprints(), data.y, split, task_type=task_type, seed=seed,
                                   n_jobs=rf_jobs)
        info = {"best_epoch": None, "epochs_run": None, "model_seed": seed, "constant_tasks": len(result.info["constant_tasks"])}
    else:
        result = run_chemprop(data.base.smiles, data.y, split, task_type, seed, epochs=max_epochs or CHEMPROP_EPOCHS,
                              patience=CHEMPROP_PATIENCE, device=str(device))
        info = {"best_epoch": result.info["best_epoch"], "epochs_run": result.info["epochs"], "model_seed": seed}
    y = data.y
    return {"valid_metrics": _metrics(y[split["valid"]], result.valid, task_type),
            "test_metrics": _metrics(y[split["test"]], result.test, task_type), **info}


# --------------------------------------------------------------------------------------------
# summaries


def aggregate(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean ± sample std (ddof=1) over seeds per (dataset, method, label count)."""
    rows = []
    for (dataset, method, n_labels), runs in group_runs(records, ["dataset", "method", "n_labels"]):
        test_mean, test_std = mean_std([r["test"] for r in runs])
        valid_mean, valid_std = mean_std([r["valid"] for r in runs])
        epochs, _ = mean_std([r["best_epoch"] for r in runs if r.get("best_epoch") is not None])
        wall, _ = mean_std([r["wall_s"] for r in runs])
        rows.append({
            "dataset": dataset, "method": method, "kind": runs[0]["kind"], "budget": runs[0]["budget"],
            "n_labels": n_labels, "metric": runs[0]["metric"], "seeds": sorted(r["seed"] for r in runs),
            "test_mean": test_mean, "test_std": test_std, "valid_mean": valid_mean, "valid_std": valid_std,
            "best_epoch_mean": epochs, "wall_s_mean": wall,
        })
    return rows


def ensemble_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dataset, ensemble method, labels): the chosen model's test score beside each member's
    alone, the mean weight each member got, how many seeds the choice was at least as good as the
    forest member (the forest baseline: same forest, same seed), and the regression intervals'
    test coverage."""
    rows = []
    ensembles = [r for r in records if r["kind"] in ("auto", "auto-scratch") and r.get("members")]
    for (dataset, method, n_labels), runs in group_runs(ensembles, ["dataset", "method", "n_labels"]):
        metric = runs[0]["metric"]
        lower = not higher_is_better(metric)
        kinds = list(runs[0]["members"])
        members = {kind: mean_std([r["members"][kind]["test"].get(metric) for r in runs]) for kind in kinds}
        weights = {kind: float(np.mean([r["weights"].get(kind, 0.0) for r in runs])) for kind in kinds}
        as_good = sum((r["test"] <= r["members"]["forest"]["test"][metric]) if lower
                      else (r["test"] >= r["members"]["forest"]["test"][metric]) for r in runs)
        coverage = [c for r in runs for c in ((r.get("intervals") or {}).get("test_coverage") or [])]
        rows.append({"dataset": dataset, "method": method, "kind": runs[0]["kind"], "n_labels": n_labels,
                     "metric": metric, "seeds": len(runs), "test": mean_std([r["test"] for r in runs]),
                     "members": members, "weights": weights, "as_good_as_forest": as_good,
                     "interval_coverage": coverage})
    return rows


def labels_to_match(curve: Sequence[tuple[float, float]], target: float, higher_better: bool) -> tuple[float | None, str]:
    """Fewest labels at which a learning curve reaches ``target``, interpolating on log(labels).

    Args:
        curve: (labels, score) points, e.g. from-scratch mean test ROC-AUC per budget.
        target: the score to reach (e.g. the pretrained model's at 100 labels).
        higher_better: whether larger scores are better.

    Returns:
        ``(labels, "interpolated")`` at the first crossing; ``(smallest, "at_or_below_smallest")``
        when the curve already reaches ``target`` at its smallest budget; ``(None, "not_reached")``
        when it never does within the tested budgets.

    Example:
        >>> labels, status = labels_to_match([(100, 0.70), (1000, 0.80)], 0.75, True)
        >>> round(labels), status
        (316, 'interpolated')
    """
    points = sorted((float(n), float(s)) for n, s in curve if s is not None and not math.isnan(s))
    reaches = (lambda s: s >= target) if higher_better else (lambda s: s <= target)
    if not points:
        return None, "not_reached"
    if reaches(points[0][1]):
        return points[0][0], "at_or_below_smallest"
    for (n0, s0), (n1, s1) in zip(points, points[1:]):
        if reaches(s1):
            fraction = (target - s0) / (s1 - s0)
            return float(math.exp(math.log(n0) + fraction * (math.log(n1) - math.log(n0)))), "interpolated"
    return None, "not_reached"


def label_equivalence(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each pretrained-encoder method and reference budget: from-scratch labels that match it."""
    result = []
    for dataset in sorted({r["dataset"] for r in rows}):
        here = [r for r in rows if r["dataset"] == dataset]
        scratch = [(r["n_labels"], r["test_mean"]) for r in here if r["kind"] == "scratch"]
        if not scratch:
            continue
        tested = max(n for n, _ in scratch)
        for row in here:
            if row["kind"] not in ("pretrained", "frozen") or row["budget"] not in REFERENCE_BUDGETS:
                continue
            if row["test_mean"] is None:
                continue
            labels, status = labels_to_match(scratch, row["test_mean"], higher_is_better(row["metric"]))
            result.append({
                "dataset": dataset, "method": row["method"], "kind": row["kind"], "reference_budget": row["budget"],
                "reference_labels": row["n_labels"], "target": row["test_mean"], "metric": row["metric"],
                "scratch_labels": labels, "status": status, "max_scratch_labels": tested,
                "ratio": None if labels is None else labels / row["n_labels"],
            })
    return result


def _equivalence_text(entry: dict[str, Any]) -> str:
    if entry["status"] == "not_reached":
        return f"not reached within tested budgets (> {entry['max_scratch_labels']:,})"
    if entry["status"] == "at_or_below_smallest":
        return f"≤ {entry['scratch_labels']:,.0f} (scratch matches at its smallest budget)"
    return f"≈ {entry['scratch_labels']:,.0f} ({entry['ratio']:.1f}×)"


def _matrix(rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    counts = sorted({r["n_labels"] for r in rows})
    header = ["method", *[f"{n:,}" for n in counts]]
    table = []
    for method in methods:
        by_count = {r["n_labels"]: r for r in rows if r["method"] == method}
        if by_count:
            table.append([method, *[mean_std_text(by_count[n]["test_mean"], by_count[n]["test_std"]) if n in by_count else "—"
                                    for n in counts]])
    return header, table


def aggregate_across(rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """Per method and requested budget: mean rank over datasets (1 = best), and mean ROC-AUC over
    the classification datasets, counting only datasets where every method has that budget."""
    result = []
    datasets = sorted({r["dataset"] for r in rows})
    for budget in sorted({r["budget"] for r in rows}):
        ranks: dict[str, list[float]] = {m: [] for m in methods}
        aucs: dict[str, list[float]] = {m: [] for m in methods}
        counted = []
        for dataset in datasets:
            here = {r["method"]: r for r in rows if r["dataset"] == dataset and r["budget"] == budget}
            if any(m not in here or here[m]["test_mean"] is None for m in methods):
                continue
            counted.append(dataset)
            metric = here[methods[0]]["metric"]
            ordered = sorted(methods, key=lambda m: here[m]["test_mean"], reverse=higher_is_better(metric))
            for rank, method in enumerate(ordered, start=1):
                ranks[method].append(rank)
                if metric == "roc_auc":
                    aucs[method].append(here[method]["test_mean"])
        for method in methods:
            if ranks[method]:
                result.append({"budget": budget, "method": method, "datasets": counted,
                               "mean_rank": float(np.mean(ranks[method])),
                               "mean_roc_auc": float(np.mean(aucs[method])) if aucs[method] else None,
                               "roc_auc_datasets": len(aucs[method])})
    return result


def headline_methods(rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[str]:
    """The headline's columns: the first fine-tuned and first frozen encoder, scratch, RF and chemprop."""
    kind_of = {r["method"]: r["kind"] for r in rows}
    firsts = {}
    for method in methods:
        if method in kind_of:
            firsts.setdefault(kind_of[method], method)
    return [firsts[kind] for kind in ("auto", "auto-scratch", "pretrained", "frozen", "scratch", "boosted", "rf", "chemprop")
            if kind in firsts]


def headline(rows: Sequence[dict[str, Any]], methods: Sequence[str], train_labelled: dict[str, int]) -> list[dict[str, Any]]:
    """The summary table: each headline method at 100 / 1,000 / 10,000 labels, per dataset and averaged.

    A dataset with fewer labelled training molecules than a headline count shows its whole
    training set instead (once: a dataset of 800 labels has a 100 row and an 800 row). The
    ``mean`` rows average test ROC-AUC over the classification datasets (two or more) where every
    headline method has that cell (``datasets`` names them; ``some_capped``: some showed all
    their labels, fewer than the headline count).

    Returns:
        One entry per (headline count, dataset) and per headline count ``dataset="mean"``, each
        ``{"budget", "dataset", "n_labels", "metric", "scores": {method: [mean, std, seeds]}}``.
    """
    shown = headline_methods(rows, methods)
    result = []
    for previous, budget in zip((0, *HEADLINE_BUDGETS), HEADLINE_BUDGETS):
        complete: dict[str, dict[str, float]] = {}
        capped = False
        for dataset, labelled in sorted(train_labelled.items()):
            n_labels = min(budget, labelled)
            if min(previous, labelled) == n_labels:
                continue  # the whole training set is already the previous headline row
            here = {r["method"]: r for r in rows if r["dataset"] == dataset and r["n_labels"] == n_labels}
            if not here:
                continue
            metric = next(iter(here.values()))["metric"]
            scores = {m: [here[m]["test_mean"], here[m]["test_std"], len(here[m]["seeds"])] for m in shown
                      if m in here and here[m]["test_mean"] is not None}
            result.append({"budget": budget, "dataset": dataset, "n_labels": n_labels, "metric": metric, "scores": scores})
            if metric == "roc_auc" and len(scores) == len(shown):
                complete[dataset] = {m: scores[m][0] for m in shown}
                capped |= n_labels < budget
        if len(complete) > 1:
            result.append({"budget": budget, "dataset": "mean", "n_labels": None, "metric": "roc_auc",
                           "datasets": sorted(complete), "some_capped": capped,
                           "scores": {m: [float(np.mean([c[m] for c in complete.values()])), None, None] for m in shown}})
    return result


def _headline_cell(score: list, seeds: int) -> str:
    mean, std, ran = score
    return mean_std_text(mean, std) + (f" ({ran} of {seeds} seeds)" if ran is not None and ran < seeds else "")


def _headline_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    entries = result.get("headline") or []
    shown = headline_methods(result["aggregates"], result["methods"])
    table = []
    for entry in entries:
        if entry["dataset"] == "mean":
            labels = f"{entry['budget']:,}" + (" or all" if entry["some_capped"] else "")
            name = f"mean ROC-AUC ({len(entry['datasets'])} datasets)"
        else:
            labels = f"{entry['n_labels']:,}" if entry["n_labels"] == entry["budget"] else f"all {entry['n_labels']:,}"
            name = f"{entry['dataset']} ({entry['metric']})"
        table.append([labels, name, *(_headline_cell(entry["scores"][m], len(result["settings"]["seeds"]))
                                      if m in entry["scores"] else "—" for m in shown)])
    return ["labels", "dataset", *shown], table


def plot_dataset(path: Path, dataset: str, rows: Sequence[dict[str, Any]], methods: Sequence[str], command: str) -> None:
    """Test metric vs labels (log x), one line per method with a ±std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.8))
    metric = rows[0]["metric"]
    for method in methods:
        points = sorted((r["n_labels"], r["test_mean"], r["test_std"] or 0.0) for r in rows
                        if r["method"] == method and r["test_mean"] is not None)
        if not points:
            continue
        n, mean, std = (np.asarray(v, dtype=float) for v in zip(*points))
        line, = axis.plot(n, mean, marker="o", label=method)
        axis.fill_between(n, mean - std, mean + std, color=line.get_color(), alpha=0.15)
    counts = sorted({r["n_labels"] for r in rows})
    axis.set_xscale("log")
    axis.set_xticks(counts, [f"{c:,}" for c in counts])
    axis.minorticks_off()
    better = "higher" if higher_is_better(metric) else "lower"
    seeds = max(len(r["seeds"]) for r in rows)
    axis.set(xlabel="labelled training molecules (log scale)", ylabel=f"test {metric} ({better} is better)",
             title=f"{dataset}: test {metric} vs labels (mean ± std, up to {seeds} seeds)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout(rect=(0, command_footer(figure, command), 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_equivalence(path: Path, rows: Sequence[dict[str, Any]], equivalence: Sequence[dict[str, Any]], command: str) -> None:
    """Per dataset: the from-scratch curve, the fine-tuned models' levels at 100 / 1,000 labels, and where
    they cross (the frozen ones are in the Markdown table only, to keep the figure readable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    equivalence = [e for e in equivalence if e["kind"] == "pretrained"] or list(equivalence)
    datasets = sorted({e["dataset"] for e in equivalence})
    figure, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
    for axis, dataset in zip(axes[0], datasets):
        scratch = sorted((r["n_labels"], r["test_mean"]) for r in rows
                         if r["dataset"] == dataset and r["kind"] == "scratch" and r["test_mean"] is not None)
        n, mean = zip(*scratch)
        axis.plot(n, mean, marker="o", color="black", label="scratch")
        for index, entry in enumerate(e for e in equivalence if e["dataset"] == dataset):
            color = f"C{index}"
            label = f"{entry['method']} @ {entry['reference_labels']:,}: {_equivalence_text(entry)}"
            axis.axhline(entry["target"], color=color, linestyle="--", linewidth=1, label=label)
            axis.plot([entry["reference_labels"]], [entry["target"]], marker="s", color=color)
            if entry["scratch_labels"] is not None:
                axis.plot([entry["scratch_labels"]], [entry["target"]], marker="*", markersize=12, color=color)
        axis.set_xscale("log")
        axis.set_xticks(list(n), [f"{c:,}" for c in n])
        axis.minorticks_off()
        metric = next(r["metric"] for r in rows if r["dataset"] == dataset)
        axis.set(xlabel="labelled training molecules (log scale)", ylabel=f"test {metric}",
                 title=f"{dataset}: from-scratch labels matching pretrained")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6, loc="best")
    figure.tight_layout(rect=(0, command_footer(figure, command), 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    settings = result["settings"]
    hardware = result["hardware"]
    run = result["run"]
    lines = [
        "# Label efficiency: test metric vs number of training labels",
        "",
        f"Command: `{result['command']}`",
        "",
        f"- Finished {result['finished_at']}; this invocation took {result['elapsed_s'] / 60:.1f} min wall "
        f"({result['runs_executed']} run(s) executed now, {result['runs_reused']} reused from "
        f"`{result['runs_file']}`); the {len(result['runs'])} runs reported took {result['run_seconds_total'] / 60:.1f} "
        "min in total."
        + (f" **{result['runs_missing']} requested run(s) are not in the runs file yet** (`--report-only`, `--stop-after`, or "
           "a run stopped early): cells show how many seeds they have." if result.get("runs_missing") else ""),
        f"- Hardware: {hardware['cpu'] or 'unknown CPU'}, {hardware['cpu_count']} cores, torch threads "
        f"{hardware['torch_threads']}, device {settings['device']}"
        + (f" ({hardware['gpu']})" if hardware["gpu"] else "") + ".",
        f"- Versions: molft {run['molft']}, torch {run['torch']}, PyG {run['torch_geometric']}, RDKit {run['rdkit']}, "
        f"scikit-learn {result['sklearn']}; git {run.get('git_sha') or 'unknown'}.",
        f"- Protocol: {settings['split']} split (Hu et al. 2020 / OGB), fixed validation and test; nested label budgets "
        f"from `label_budgets` over the labelled training molecules, identical for every method (each run records "
        f"`train_rows_sha256`); seed = budget seed = model seed, seeds {settings['seeds']}. GNNs: test metric at the "
        f"best-validation epoch; max epochs {settings['max_epochs'] or 'as the recipe (scratch 100, fine-tune 40)'}"
        f"{' (a short cap: a smoke-test setting, not the real benchmark)' if settings['max_epochs'] and settings['max_epochs'] < 30 else ''}. "
        "Frozen: linear head on frozen embeddings, strength chosen on validation, model seed 0 (deterministic; the "
        "spread is the subset's). RF: Morgan r=2, 2,048 bits, 500 trees, class_weight=balanced_subsample, one forest "
        "per task, random_state = seed, no selection. chemprop: v2 CLI defaults (D-MPNN, batch 64) with the "
        "from-scratch GIN's epoch cap and patience (100, 20), its best epoch chosen on validation ROC-AUC or RMSE "
        "(`--tracking-metric`), as molft's are.",
        "- Mean ± sample std (ddof=1) over seeds; budgets above the training set are capped at it and run once.",
    ]
    for kind, reason in result["skipped"].items():
        lines.append(f"- Skipped `{kind}`: {reason}")
    header, table = _headline_table(result)
    if table:
        lines += ["", "## Headline: 100, 1,000 and 10,000 labels", "",
                  "Test metric, mean ± std over seeds. A dataset with fewer labelled training molecules shows all of "
                  "them (`all N`). The mean rows average ROC-AUC over the classification datasets where every "
                  "column has that cell.", ""]
        lines += markdown_table(header, table, right_from=2)
    if result.get("ensembles"):
        lines += ["", "## molft's default model: its members and its choice", "",
                  "`auto` (pretrained GNN, and since 2026-12-04 the linear model on the frozen encoder) and "
                  "`auto-scratch` (GNN from scratch): the blend chosen on validation "
                  "(`molft finetune --model auto`), each member alone on the same split and seed, the mean weight "
                  "each member got, the seeds where the choice was at least as good as the forest member alone "
                  "(the Morgan forest, the same as `rf`), and the test coverage of the stated 90% intervals "
                  "(regression; one value per seed).", "",
                  "| dataset | labels | method | seeds | chosen | GNN alone | forest alone | boosted alone | "
                  "linear alone | mean weights (GNN / forest / boosted / linear) | ≥ forest | 90% coverage |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|"]
        kinds = ("gnn", "forest", "boosted", EMBEDDING_MEMBER)
        for row in result["ensembles"]:
            members = [mean_std_text(*row["members"].get(k, (None, None))) for k in kinds]
            weights = " / ".join(f"{row['weights'].get(k, 0.0):.2f}" for k in kinds)
            coverage = ", ".join(f"{c:.0%}" for c in row["interval_coverage"]) or "—"
            lines.append(f"| {row['dataset']} | {row['n_labels']:,} | {row['method']} | {row['seeds']} | "
                         f"{mean_std_text(*row['test'])} | {' | '.join(members)} | {weights} | "
                         f"{row['as_good_as_forest']}/{row['seeds']} | {coverage} |")
    for name, info in result["datasets"].items():
        rows = [r for r in result["aggregates"] if r["dataset"] == name]
        if not rows:
            continue
        metric = rows[0]["metric"]
        better = "higher" if higher_is_better(metric) else "lower"
        sizes = info["split_sizes"]
        lines += [
            "", f"## {name}: test {metric} ({better} is better)", "",
            f"{info['molecules']:,} molecules, {info['tasks']} task(s); {settings['split']} split train/valid/test "
            f"{sizes['train']:,} / {sizes['valid']:,} / {sizes['test']:,} ({info['train_labelled']:,} labelled "
            "training molecules).", "",
        ]
        header, table = _matrix(rows, result["methods"])
        lines += markdown_table(header, table)
        lines += ["", "| method | labels | seeds | test | valid | best epoch (mean) | wall s (mean) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for method in result["methods"]:
            for row in sorted((r for r in rows if r["method"] == method), key=lambda r: r["n_labels"]):
                epoch = "—" if row["best_epoch_mean"] is None else f"{row['best_epoch_mean']:.1f}"
                lines.append(f"| {method} | {row['n_labels']:,} | {len(row['seeds'])} | "
                             f"{mean_std_text(row['test_mean'], row['test_std'])} | {mean_std_text(row['valid_mean'], row['valid_std'])} | "
                             f"{epoch} | {row['wall_s_mean']:.1f} |")
        lines += ["", f"![{name}]({NAME}_{name.lower()}.png)"]
    if len(result["datasets"]) > 1 and result["across"]:
        lines += ["", "## Aggregate over datasets", "",
                  "Mean rank over datasets (1 = best; only datasets where every method ran at that budget) and "
                  "mean test ROC-AUC over the classification datasets among them.", "",
                  "| budget | method | datasets | mean rank | mean ROC-AUC |", "|---:|---|---:|---:|---:|"]
        for row in result["across"]:
            auc = "—" if row["mean_roc_auc"] is None else f"{row['mean_roc_auc']:.3f}"
            lines.append(f"| {row['budget']:,} | {row['method']} | {len(row['datasets'])} | {row['mean_rank']:.2f} | {auc} |")
    lines += ["", "## Label equivalence", ""]
    if result["equivalence"]:
        lines += ["From-scratch labels needed to match the pretrained model's mean test metric at 100 and 1,000 labels "
                  "(linear interpolation of the from-scratch mean curve on log(labels); first crossing).", "",
                  "| dataset | method | at labels | its test metric | from-scratch labels to match |",
                  "|---|---|---:|---:|---|"]
        for entry in result["equivalence"]:
            lines.append(f"| {entry['dataset']} | {entry['method']} | {entry['reference_labels']:,} | "
                         f"{entry['target']:.3f} | {_equivalence_text(entry)} |")
        lines += ["", f"![label equivalence]({NAME}_equivalence.png)"]
    else:
        lines.append("Not computed: it needs `scratch` and a pretrained method (`pretrained` or `frozen`) run at "
                     "100 or 1,000 labels.")
    path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------------------------
# the benchmark


def run_benchmark(
    datasets: Sequence[str],
    *,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    seeds: int = 5,
    methods: Sequence[str] = KINDS,
    pretrained: Sequence[str] = ("default",),
    max_epochs: int | None = None,
    device: str | None = None,
    data_dir: str | Path | None = None,
    results_dir: str | Path = RESULTS,
    split: str = "scaffold",
    scratch_encoder: EncoderConfig | None = None,
    head_features: Sequence[str] = (),
    auxiliary: tuple[str, float] | None = None,
    pooling: str = "mean",
    rf_jobs: int = 1,
    progress: bool = True,
    command: str | None = None,
    report_only: bool = False,
    stop_after_s: float | None = None,
) -> dict[str, Any]:
    """Run every missing (dataset, method, budget, seed) and write the results (see the module docstring).

    Args:
        datasets: registry names.
        budgets: label budgets (capped at each training set).
        seeds: seeds 0..seeds-1 (each the subset seed and the model seed).
        methods: kinds from ``KINDS``.
        pretrained: encoder directories or shipped names for ``pretrained`` and ``frozen``.
        max_epochs: cap on GNN (and chemprop) epochs; None keeps the recipe's.
        device: ``cpu``, ``cuda``...; default cuda when present.
        data_dir: the data directory (default ``$MOLFT_DATA_DIR`` / ``../shared/data``).
        results_dir: where the runs file, JSON, Markdown and PNGs go.
        split: ``scaffold`` or ``random``.
        scratch_encoder: the from-scratch architecture when no pretrained encoder is given.
        head_features: molecule features every trained GNN's head reads (``--molecule-features``).
        auxiliary: (feature, weight): every trained GNN also regresses that molecule feature while
            training (``--auxiliary rdkit2d:1``, ``Recipe.auxiliary_weight``).
        pooling: how every trained GNN's head pools the atoms (``--pooling mean+sum``).
        rf_jobs: processes per random forest (speed only).
        progress: show a progress bar.
        command: the command line to record.
        report_only: run nothing; report the runs already in the runs file (cells without all
            their seeds show how many they have).
        stop_after_s: start no new run after this many seconds (a run in flight finishes); the
            report counts the runs left, and a rerun continues with them. For machines lent for
            a fixed time.

    Returns:
        what ``label_efficiency.json`` holds.
    """
    started = time.perf_counter()
    if seeds < 1:
        raise InputError("--seeds must be at least 1")
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    runs_file = results_dir / f"{NAME}_runs.jsonl"
    device_ = resolve_device(device)
    command = command or command_line(NAME, None)
    chosen, skipped = resolve_methods(list(dict.fromkeys(methods)), pretrained=pretrained, max_epochs=max_epochs,
                                      scratch_encoder=scratch_encoder, head_features=head_features,
                                      auxiliary=auxiliary, recorded=read_runs(runs_file) if report_only else (),
                                      pooling=pooling)
    method_names = [m.name for m in chosen]
    vocabularies = [m.encoder.vocabulary for m in chosen if m.encoder is not None] or ["ogb"]
    prepared = [prepare_dataset(name, budgets=budgets, vocabularies=vocabularies, data_dir=data_dir, split=split)
                for name in datasets]

    subsets_cache: dict[tuple[str, int], dict[int, np.ndarray]] = {}
    scores_dir = results_dir / f"{NAME}_scores"
    earlier_auto = {} if report_only else _earlier_auto_runs(read_runs(runs_file))

    def run(cell: Cell) -> dict[str, Any]:
        data, budget, seed, method = cell.task
        if (data.name, seed) not in subsets_cache:
            subsets_cache[(data.name, seed)] = data.subsets(seed)
        train = subsets_cache[(data.name, seed)][budget]
        start = time.perf_counter()
        if method.kind in ("pretrained", "frozen", "scratch"):
            outcome = run_gnn(data, method, train, seed=seed, max_epochs=max_epochs, device=device_)
        elif method.kind in ("auto", "auto-scratch", "boosted"):
            scores_file = scores_dir / re.sub(r"[^a-z0-9.]+", "-", f"{data.name}-{method.name}-{budget}-{seed}.npz".lower())
            outcome = run_ensemble(data, method, train, seed=seed, max_epochs=max_epochs, device=device_,
                                   scores_file=scores_file, earlier=earlier_auto.get(run_key(cell.fields)))
        else:
            outcome = run_baseline(data, method, train, seed=seed, max_epochs=max_epochs, device=device_,
                                   rf_jobs=rf_jobs)
        metric = data.base.metric
        return {
            **cell.fields, "kind": method.kind, "budget": budget, "metric": metric,
            "test": outcome["test_metrics"].get(metric, math.nan), "valid": outcome["valid_metrics"].get(metric, math.nan),
            **outcome, "wall_s": round(time.perf_counter() - start, 3), "train_rows_sha256": data.rows_digest(train),
            "pretrained": str(method.pretrained) if method.pretrained else None, "device": str(device_),
            "torch_threads": torch.get_num_threads(), "finished_at": utc_now(),
        }

    done = run_cells(_cells(prepared, chosen, seeds=seeds, split=split), run, runs_file=runs_file,
                     report_only=report_only, stop_after_s=stop_after_s, started=started, announce=_announce,
                     desc="label efficiency", progress=progress)
    records = done.records
    rows = aggregate(records)
    equivalence = label_equivalence(rows)
    from sklearn import __version__ as sklearn_version

    result = clean({
        "benchmark": NAME,
        "command": command,
        "settings": {"datasets": [d.name for d in prepared], "budgets": sorted(int(b) for b in budgets),
                     "seeds": list(range(seeds)), "methods": list(methods), "pretrained": list(pretrained),
                     "max_epochs": max_epochs, "device": str(device_), "split": split, "rf": RF_SETTINGS,
                     "head_features": list(head_features), "pooling": pooling,
                     "auxiliary": list(auxiliary) if auxiliary else None,
                     "reference_budgets": list(REFERENCE_BUDGETS)},
        "methods": method_names,
        "method_settings": {m.name: m.settings for m in chosen},
        "skipped": skipped,
        "datasets": {d.name: {"molecules": len(d.base.smiles), "tasks": len(d.base.task_names),
                              "task_type": d.base.task_type, "metric": d.base.metric,
                              "split_sizes": {p: int(len(i)) for p, i in d.base.split.items()},
                              "train_labelled": int(len(d.train)), "budgets": d.budgets,
                              "file": str(d.base.path), "sha256": d.base.sha256}
                     for d in prepared},
        "runs": sorted(records, key=lambda r: (r["dataset"], r["method"], r["n_labels"], r["seed"])),
        "aggregates": rows,
        "across": aggregate_across(rows, method_names),
        "headline": headline(rows, method_names, {d.name: int(len(d.train)) for d in prepared}),
        "equivalence": equivalence,
        "ensembles": ensemble_rows(records),
        "hardware": hardware(),
        "run": run_metadata(device=str(device_)),
        "sklearn": sklearn_version,
        "runs_file": str(runs_file),
        "runs_executed": done.executed,
        "runs_missing": done.missing,
        "runs_reused": done.reused,
        "run_seconds_total": float(sum(r["wall_s"] for r in records)),
        "elapsed_s": time.perf_counter() - started,
        "finished_at": utc_now(),
    })
    write_json(results_dir / f"{NAME}.json", result)
    write_markdown(results_dir / f"{NAME}.md", result)
    for data in prepared:
        here = [r for r in rows if r["dataset"] == data.name]
        if here:
            plot_dataset(results_dir / f"{NAME}_{data.name.lower()}.png", data.name, here, method_names, command)
    if equivalence:
        plot_equivalence(results_dir / f"{NAME}_equivalence.png", rows, equivalence, command)
    return result


def _cells(prepared: Sequence[BenchmarkDataset], methods: Sequence[Method], *, seeds: int, split: str) -> list[Cell]:
    """Every (dataset, budget, seed, method), budgets outermost so that small budgets finish first."""
    cells = []
    for data in prepared:
        for budget in sorted(data.budgets):
            for seed in range(seeds):
                for method in methods:
                    fields = {"dataset": data.name, "split": split, "data_sha256": data.base.sha256[:16],
                              "method": method.name, "settings": method.settings, "n_labels": data.budgets[budget],
                              "seed": seed}
                    cells.append(Cell(fields, f"{data.name} {method.name} n={data.budgets[budget]} seed={seed}",
                                      (data, budget, seed, method)))
    return cells


def _announce(record: dict[str, Any]) -> str:
    test = "nan" if record["test"] is None else f"{record['test']:.3f}"
    return (f"{record['dataset']} {record['method']:>24s} n={record['n_labels']:>6,} seed={record['seed']}: "
            f"test {record['metric']} {test} ({record['wall_s']:.1f} s)")


def print_tables(result: dict[str, Any]) -> None:
    """The per-dataset tables, the headline and the label equivalence, as plain text."""
    for name in result["datasets"]:
        rows = [r for r in result["aggregates"] if r["dataset"] == name]
        if rows:
            print(f"\n{name}: test {rows[0]['metric']} (mean ± std over seeds) by number of labels")
            print(text_table(*_matrix(rows, result["methods"])))
    header, table = _headline_table(result)
    if table:
        print("\nHeadline: test metric at 100, 1,000 and 10,000 labels (or all a dataset has)")
        print(text_table(header, table))
    for entry in result["equivalence"]:
        print(f"{entry['dataset']}: {entry['method']} at {entry['reference_labels']:,} labels "
              f"({entry['target']:.3f}) = from-scratch {_equivalence_text(entry)}")
    for kind, reason in result["skipped"].items():
        print(f"skipped {kind}: {reason}")
    print(f"\n{result['runs_executed']} run(s) now, {result['runs_reused']} reused; {result['elapsed_s'] / 60:.1f} min. "
          f"Wrote {NAME}.json, {NAME}.md and PNGs under {Path(result['runs_file']).parent}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=comma_list, default=["bbbp"], help="registry names, comma-separated")
    parser.add_argument("--budgets", type=comma_ints, default=list(DEFAULT_BUDGETS), help="label budgets, comma-separated")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per cell (subset seed = model seed)")
    parser.add_argument("--methods", type=comma_list, default=list(KINDS), help=f"comma-separated: {','.join(KINDS)}")
    parser.add_argument("--pretrained", type=comma_list, default=["default"],
                        help="encoder directories or shipped names, comma-separated (default: molft's shipped encoder)")
    parser.add_argument("--max-epochs", type=int, default=None, help="cap GNN/chemprop epochs (default: the recipe's)")
    parser.add_argument("--split", default="scaffold", choices=["scaffold", "random"])
    parser.add_argument("--num-layers", type=int, default=5, help="from-scratch GIN depth when no pretrained encoder")
    parser.add_argument("--hidden-dim", type=int, default=300, help="from-scratch GIN width when no pretrained encoder")
    parser.add_argument("--pooling", default="mean",
                        help="how every trained GNN's head pools the atoms: mean (molft's), or e.g. mean+sum, "
                             "mean+max; methods get a '+pool-<pooling>' suffix")
    parser.add_argument("--head-features", type=comma_list, default=[],
                        help="molecule features the trained GNNs' heads also read, e.g. rdkit2d (as molft finetune "
                             "--molecule-features); methods get a '+rdkit2d' suffix")
    parser.add_argument("--auxiliary", type=_feature_weight, default=None, metavar="FEATURE[:WEIGHT]",
                        help="the trained GNNs also regress this molecule feature from the pooled embedding while "
                             "training, at this loss weight (default 1), e.g. rdkit2d:1; methods get '+aux-rdkit2d'")
    parser.add_argument("--rf-jobs", type=int, default=1, help="processes per random forest (speed only, same results)")
    add_harness_arguments(parser, results_dir=RESULTS)
    args = parser.parse_args(argv)
    with input_errors_exit():
        start(args, runs_file=Path(args.results_dir) / f"{NAME}_runs.jsonl")
        result = run_benchmark(
            args.datasets, budgets=args.budgets, seeds=args.seeds, methods=args.methods, pretrained=args.pretrained,
            max_epochs=args.max_epochs, device=args.device, data_dir=args.data_dir, results_dir=args.results_dir,
            split=args.split, scratch_encoder=EncoderConfig(num_layers=args.num_layers, hidden_dim=args.hidden_dim),
            head_features=args.head_features, auxiliary=args.auxiliary, pooling=args.pooling, rf_jobs=args.rf_jobs, progress=not args.no_progress, command=command_line(NAME, argv),
            report_only=args.report_only, stop_after_s=args.stop_after_s,
        )
    print_tables(result)


def _feature_weight(text: str) -> tuple[str, float]:
    """``"rdkit2d:0.5"`` -> ``("rdkit2d", 0.5)``; the weight defaults to 1."""
    feature, _, weight = text.partition(":")
    try:
        return feature.strip(), float(weight) if weight else 1.0
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FEATURE[:WEIGHT], e.g. rdkit2d:0.5, got {text!r}") from None


if __name__ == "__main__":
    main()
