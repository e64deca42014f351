"""Fingerprint members: a random forest and a gradient-boosted model on molecule features.

Two kinds (:data:`TREE_KINDS`), each one model per task on that task's labelled training rows:

* ``forest``: scikit-learn's random forest on Morgan bits, in the fixed setting of
  :data:`molft.baselines.RF_SETTINGS` (the practitioner's baseline, now a model molft predicts with);
* ``boosted``: LightGBM on Morgan counts + RDKit 2D descriptors (NaN handled by LightGBM), early
  stopping on the validation split (as the GNN picks its best epoch there), in the setting of
  :data:`BOOSTED_SETTINGS`.

**Saved without pickle.** A forest is exported to plain arrays (per tree node: feature,
threshold, children, leaf value) in one safetensors file and predicted by
:func:`predict_forest_arrays`, a NumPy traversal that reproduces scikit-learn's own
``predict`` / ``predict_proba`` (same float32 comparison, same tree order); LightGBM models are
kept in LightGBM's text format. Loading either runs no code.

A classification task whose training rows hold one class (or a task without training labels) is
predicted as a constant (the positive fraction, or the mean), as the baseline does, and listed in
``info["constant_tasks"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from molft.baselines import constant_prediction, make_forest
from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, REGRESSION
from molft.io import atomic_write, write_json_atomic
from molft.runtime import read_json

MEMBER_JSON = "member.json"
FOREST_FILE = "forest.safetensors"


@dataclass(frozen=True)
class TreeKind:
    """A fingerprint member kind: its molecule features (specs of :mod:`molft.featurize.molecule`)."""

    name: str
    features: tuple[str, ...]
    description: str


#: kind name -> what it reads
TREE_KINDS: dict[str, TreeKind] = {
    "forest": TreeKind("forest", ("morgan_bits",), "random forest on Morgan bits (radius 2, 2048), 500 trees"),
    "boosted": TreeKind("boosted", ("morgan_count", "rdkit2d"),
                        "LightGBM on Morgan counts (radius 2, 2048) + 217 RDKit 2D descriptors, early-stopped on validation"),
}

#: LightGBM's setting for small assays (min_child_samples 5 so 100 molecules still split;
#: column subsampling for 2,265 mostly sparse columns); ``n_estimators`` is a cap, early stopping decides
BOOSTED_SETTINGS: dict[str, Any] = {
    "n_estimators": 2000, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 5,
    "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.3, "reg_lambda": 1.0,
    "early_stopping_rounds": 100,
}


def feature_matrix(arrays: dict[str, np.ndarray], kind: str) -> np.ndarray:
    """The columns ``kind`` reads, side by side, as float32 (NaN kept)."""
    parts = [arrays[name].astype(np.float32) for name in TREE_KINDS[kind].features]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


@dataclass
class ForestArrays:
    """One fitted scikit-learn forest as arrays (all trees, nodes concatenated).

    ``left``/``right`` are global node indices (-1 at leaves); ``roots`` the first node of each
    tree; ``value`` the leaf output (probability of class 1, or the regression value).
    """

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    roots: np.ndarray

    @classmethod
    def from_forest(cls, forest: Any) -> ForestArrays:
        """Export a fitted ``RandomForestClassifier`` (binary) or ``RandomForestRegressor``."""
        classifier = hasattr(forest, "classes_")
        positive = list(forest.classes_).index(1) if classifier else 0
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("feature", "threshold", "left", "right", "value")}
        roots, offset = [], 0
        for estimator in forest.estimators_:
            tree = estimator.tree_
            roots.append(offset)
            left, right = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
            parts["left"].append(np.where(left >= 0, left + offset, -1).astype(np.int32))
            parts["right"].append(np.where(right >= 0, right + offset, -1).astype(np.int32))
            parts["feature"].append(tree.feature.astype(np.int32))
            parts["threshold"].append(tree.threshold.astype(np.float64))
            value = tree.value[:, 0, :].astype(np.float64)
            if classifier:
                total = value.sum(axis=1)
                value = value[:, positive] / np.where(total == 0, 1.0, total)
            else:
                value = value[:, 0]
            parts["value"].append(value)
            offset += tree.node_count
        return cls(**{k: np.concatenate(v) for k, v in parts.items()}, roots=np.asarray(roots, dtype=np.int64))

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{name}": getattr(self, name) for name in ("feature", "threshold", "left", "right", "value", "roots")}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> ForestArrays:
        out = cls(**{name: arrays[f"{prefix}.{name}"] for name in ("feature", "threshold", "left", "right", "value", "roots")})
        nodes = len(out.feature)
        if not (len(out.threshold) == len(out.left) == len(out.right) == len(out.value) == nodes) or (
            nodes and max(out.left.max(), out.right.max(), out.roots.max()) >= nodes
        ):
            raise InputError(f"forest arrays {prefix!r} are inconsistent (a damaged model file)")
        return out


def predict_forest_arrays(forest: ForestArrays, features: np.ndarray) -> np.ndarray:
    """Mean leaf value over the trees for each row, exactly as scikit-learn computes it.

    Rows descend every tree at once (one vectorized step per tree level); features are compared
    as float32, as scikit-learn's trees do.
    """
    x = np.asarray(features, dtype=np.float32)
    rows = np.arange(len(x))
    node = np.repeat(forest.roots[:, None], len(x), axis=1)  # [trees, rows]
    while True:
        inner = forest.left[node] >= 0
        if not inner.any():
            break
        column = np.where(inner, forest.feature[node], 0)
        go_left = x[rows[None, :], column] <= forest.threshold[node]
        node = np.where(inner, np.where(go_left, forest.left[node], forest.right[node]), node)
    leaves = forest.value[node]
    total = np.zeros(len(x), dtype=np.float64)
    for tree_values in leaves:  # in tree order, as scikit-learn accumulates
        total += tree_values
    return total / len(forest.roots)


@dataclass
class TreeMember:
    """A fitted fingerprint member: one model (or a constant) per task.

    Attributes:
        kind: ``"forest"`` or ``"boosted"``.
        task_type: ``"classification"`` or ``"regression"``.
        models: per task, a :class:`ForestArrays`, a LightGBM model in its text format, or a float
            (a constant prediction).
        info: facts for the record (constant tasks, boosting rounds...).
    """

    kind: str
    task_type: str
    models: list[ForestArrays | str | float]
    info: dict[str, Any] = field(default_factory=dict)
    boosters: dict[int, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Parse each LightGBM text once (LightGBM's own parser: it runs no code)."""
        if any(isinstance(model, str) for model in self.models):
            import lightgbm

            self.boosters = {t: lightgbm.Booster(model_str=m) for t, m in enumerate(self.models) if isinstance(m, str)}

    def predict(self, features: np.ndarray) -> np.ndarray:
        """[num_molecules, num_tasks] probabilities of class 1, or values (in the labels' units)."""
        out = np.zeros((len(features), len(self.models)), dtype=np.float64)
        for task, model in enumerate(self.models):
            if isinstance(model, ForestArrays):
                out[:, task] = predict_forest_arrays(model, features)
            elif isinstance(model, str):
                out[:, task] = self.boosters[task].predict(np.asarray(features, dtype=np.float32))
            else:
                out[:, task] = float(model)
        return out

    def save(self, directory: str | Path) -> Path:
        """Write ``member.json`` (+ ``forest.safetensors`` / ``task-<j>.lgb.txt``) into ``directory``."""
        import safetensors.numpy

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tasks, arrays = [], {}
        for task, model in enumerate(self.models):
            if isinstance(model, ForestArrays):
                arrays.update(model.to_arrays(f"task{task}"))
                tasks.append({"model": "forest"})
            elif isinstance(model, str):
                name = f"task-{task}.lgb.txt"
                with atomic_write(directory / name) as tmp:
                    tmp.write_text(model)
                tasks.append({"model": "lightgbm", "file": name})
            else:
                tasks.append({"model": "constant", "value": float(model)})
        if arrays:
            with atomic_write(directory / FOREST_FILE) as tmp:
                safetensors.numpy.save_file(arrays, str(tmp))
        write_json_atomic(directory / MEMBER_JSON, {
            "format": "molft-tree-member", "version": 1, "kind": self.kind, "task_type": self.task_type,
            "tasks": tasks, "info": self.info,
        })
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> TreeMember:
        """Read a member written by :meth:`save` (JSON, safetensors and LightGBM text: no pickle).

        Raises:
            InputError: not a tree member, or a damaged one.
        """
        import safetensors.numpy

        directory = Path(directory)
        record = read_json(directory / MEMBER_JSON) if (directory / MEMBER_JSON).is_file() else None
        if not isinstance(record, dict) or record.get("format") != "molft-tree-member":
            raise InputError(f"{directory}: not a molft tree member (no valid {MEMBER_JSON})")
        if record.get("kind") not in TREE_KINDS or record.get("task_type") not in (CLASSIFICATION, REGRESSION):
            raise InputError(f"{directory / MEMBER_JSON}: unknown kind or task type")
        arrays: dict[str, np.ndarray] = {}
        if any(task.get("model") == "forest" for task in record["tasks"]):
            try:
                arrays = safetensors.numpy.load_file(str(directory / FOREST_FILE))
            except Exception as error:  # noqa: BLE001 - a damaged or foreign file
                raise InputError(f"{directory / FOREST_FILE}: cannot be read as safetensors ({error})") from None
        models: list[ForestArrays | str | float] = []
        for task, entry in enumerate(record["tasks"]):
            kind = entry.get("model")
            if kind == "forest":
                try:
                    models.append(ForestArrays.from_arrays(arrays, f"task{task}"))
                except KeyError:
                    raise InputError(f"{directory / FOREST_FILE}: no arrays for task {task}") from None
            elif kind == "lightgbm":
                name = Path(str(entry.get("file", ""))).name  # never a path outside the member
                try:
                    models.append((directory / name).read_text())
                except (OSError, UnicodeDecodeError) as error:
                    raise InputError(f"{directory / name}: not a LightGBM model text file ({error})") from None
            elif kind == "constant":
                models.append(float(entry["value"]))
            else:
                raise InputError(f"{directory / MEMBER_JSON}: task {task} has an unknown model {kind!r}")
        try:
            return cls(kind=record["kind"], task_type=record["task_type"], models=models, info=record.get("info", {}))
        except Exception as error:  # noqa: BLE001 - LightGBM's parser raises LightGBMError on a damaged text
            raise InputError(f"{directory}: a LightGBM model text cannot be parsed ({error})") from None


def fit_tree_member(
    kind: str,
    features: np.ndarray,
    y: np.ndarray,
    split: dict[str, np.ndarray],
    *,
    task_type: str,
    seed: int,
    n_jobs: int = 1,
) -> TreeMember:
    """Fit one ``kind`` member per task on the labelled training rows of ``split``.

    Args:
        kind: ``"forest"`` or ``"boosted"``.
        features: [num_molecules, num_features] (:func:`feature_matrix`).
        y: [num_molecules, num_tasks] labels, NaN = missing.
        split: ``{"train", "valid", ...}`` -> indices; ``boosted`` stops early on ``valid``.
        task_type: ``"classification"`` or ``"regression"``.
        seed: every model's random state.
        n_jobs: threads; results do not depend on it.
    """
    if kind not in TREE_KINDS:
        raise InputError(f"unknown fingerprint member {kind!r}; choose from: {', '.join(TREE_KINDS)}")
    if task_type not in (CLASSIFICATION, REGRESSION):
        raise InputError(f"task_type must be {CLASSIFICATION!r} or {REGRESSION!r}; got {task_type!r}")
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    models: list[ForestArrays | str | float] = []
    constant, rounds = [], []
    for task in range(y.shape[1]):
        rows = split["train"][~np.isnan(y[split["train"], task])]
        labels = y[rows, task]
        value = constant_prediction(labels, task_type)
        if value is not None:
            models.append(value)
            constant.append(task)
            continue
        if kind == "forest":
            forest = make_forest(task_type, seed=seed, n_jobs=n_jobs)
            forest.fit(features[rows], labels.astype(int) if task_type == CLASSIFICATION else labels)
            models.append(ForestArrays.from_forest(forest))
        else:
            valid = split["valid"][~np.isnan(y[split["valid"], task])]
            text, used = _fit_boosted(features, y[:, task], rows, valid, task_type=task_type, seed=seed, n_jobs=n_jobs)
            models.append(text)
            rounds.append(used)
    info: dict[str, Any] = {"constant_tasks": constant, "seed": seed, "features": list(TREE_KINDS[kind].features)}
    if kind == "boosted":
        info["rounds"] = rounds
        info["settings"] = dict(BOOSTED_SETTINGS)
    return TreeMember(kind=kind, task_type=task_type, models=models, info=info)


def _fit_boosted(
    features: np.ndarray, labels: np.ndarray, train: np.ndarray, valid: np.ndarray, *, task_type: str, seed: int,
    n_jobs: int,
) -> tuple[str, int]:
    """One LightGBM model; early-stopped on ``valid`` when it has labels (of both classes)."""
    import lightgbm

    settings = {k: v for k, v in BOOSTED_SETTINGS.items() if k != "early_stopping_rounds"}
    common = dict(random_state=seed, n_jobs=n_jobs, deterministic=True, force_row_wise=True, verbosity=-1, **settings)
    if task_type == CLASSIFICATION:
        model = lightgbm.LGBMClassifier(class_weight="balanced", **common)
        target = np.nan_to_num(labels).astype(int)  # only labelled rows (train, valid) are read
    else:
        model = lightgbm.LGBMRegressor(**common)
        target = labels
    usable_valid = len(valid) > 0 and (task_type != CLASSIFICATION or len(np.unique(target[valid])) == 2)
    fit_options: dict[str, Any] = {}
    if usable_valid:
        fit_options = {
            "eval_X": (features[valid],), "eval_y": (target[valid],),
            "callbacks": [lightgbm.early_stopping(BOOSTED_SETTINGS["early_stopping_rounds"], verbose=False)],
        }
    model.fit(features[train], target[train], **fit_options)
    best = model.best_iteration_ if usable_valid and model.best_iteration_ else model.n_estimators
    return model.booster_.model_to_string(num_iteration=best), int(best)
