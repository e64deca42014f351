"""Train/valid/test splits and nested label budgets, as pure functions of their inputs.

Every split is a dict ``{"train": idx, "valid": idx, "test": idx}`` of sorted int64 index arrays
(the names of OGB's ``get_idx_split()``), so the same indices can be handed to every method.

* :func:`scaffold_split`: the deterministic Bemis-Murcko scaffold split of Hu et al. 2020
  (``snap-stanford/pretrain-gnns`` ``chem/splitters.py``), which OGB's ``ogbg-mol*`` splits reuse.
* :func:`random_split`: the seeded random split of the same file.
* :func:`column_split`: a split a user wrote down in a column (``train``/``valid``/``test``).
* :func:`label_budgets`: nested subsets of the training set (100, 300, ... labels) for
  label-efficiency curves; validation and test are never touched.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import random
from collections.abc import Hashable, Sequence

import numpy as np
from rdkit import rdBase
from rdkit.Chem.Scaffolds import MurckoScaffold

from molft.errors import InputError, InvalidSmilesError

SPLIT_NAMES = ("train", "valid", "test")
DEFAULT_FRAC = (0.8, 0.1, 0.1)
DEFAULT_BUDGETS = (100, 300, 1000, 3000, 10000)
#: values :func:`column_split` accepts (compared case-insensitively) and the part each names
SPLIT_VALUES = {
    "train": "train",
    "training": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "test": "test",
}


def check_frac(frac: Sequence[float]) -> tuple[float, float, float]:
    """Check train/valid/test fractions: three non-negative numbers that sum to 1.

    Raises:
        InputError: naming what was given.
    """
    values = tuple(float(f) for f in frac)
    if len(values) != 3 or any(not math.isfinite(f) or f < 0 for f in values) or abs(sum(values) - 1) > 1e-6:
        raise InputError(
            f"split fractions must be three non-negative numbers (train, valid, test) summing to 1; "
            f"got {tuple(frac)}"
        )
    return values  # type: ignore[return-value]


def _as_split(parts: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    return {name: np.sort(np.asarray(part, dtype=np.int64)) for name, part in zip(SPLIT_NAMES, parts)}


def murcko_scaffold(smiles: str, include_chirality: bool = True) -> str:
    """The Bemis-Murcko scaffold of a molecule as SMILES (``""`` for a molecule without rings).

    Uses ``MurckoScaffold.MurckoScaffoldSmiles(smiles=..., includeChirality=...)``, as Hu et al.
    and OGB do, so scaffolds and therefore splits match theirs.

    Raises:
        InvalidSmilesError: if RDKit cannot parse ``smiles``; drop such molecules before
            splitting (:func:`molft.data.registry.load_dataset` does).
    """
    try:
        with rdBase.BlockLogs():
            scaffold = MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=include_chirality)
    except (ValueError, RuntimeError) as error:  # RDKit: 'No molecule provided', sanitization errors
        raise InvalidSmilesError(
            smiles, f"no scaffold ({error}); leave out molecules RDKit cannot parse before splitting"
        ) from None
    return scaffold or ""


def murcko_scaffolds(smiles: Sequence[str], include_chirality: bool = True, workers: int = 1) -> list[str]:
    """:func:`murcko_scaffold` of each SMILES, optionally over ``workers`` processes (same result)."""
    scaffold = functools.partial(murcko_scaffold, include_chirality=include_chirality)
    if workers <= 1 or len(smiles) < 2:
        return [scaffold(s) for s in smiles]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(workers) as pool:
        return pool.map(scaffold, smiles, chunksize=max(1, min(1024, len(smiles) // (4 * workers))))


def group_split(groups: Sequence[Hashable], frac: Sequence[float] = DEFAULT_FRAC) -> dict[str, np.ndarray]:
    """The deterministic scaffold-split rule, applied to any grouping of the molecules.

    Exactly Hu et al. 2020 ``scaffold_split`` (and OGB): molecules are grouped by key, groups are
    sorted by ``(size, first index)`` with ``reverse=True``, i.e. largest first and, among groups of
    equal size, the one whose first molecule comes *later* first. Groups then go whole to train
    while ``len(train) + len(group) <= frac_train * n``, else to valid while
    ``len(train) + len(valid) + len(group) <= (frac_train + frac_valid) * n``, else to test.

    Args:
        groups: [num_molecules] a group key per molecule (e.g. its scaffold).
        frac: train, valid and test fractions.

    Returns:
        ``{"train", "valid", "test"}`` -> sorted int64 indices into ``groups``.
    """
    frac_train, frac_valid, _ = check_frac(frac)
    members: dict[Hashable, list[int]] = {}
    for index, key in enumerate(groups):
        members.setdefault(key, []).append(index)
    ordered = sorted(members.values(), key=lambda ids: (len(ids), ids[0]), reverse=True)
    train_cutoff = frac_train * len(groups)
    valid_cutoff = (frac_train + frac_valid) * len(groups)
    train: list[int] = []
    valid: list[int] = []
    test: list[int] = []
    for ids in ordered:
        if len(train) + len(ids) > train_cutoff:
            if len(train) + len(valid) + len(ids) > valid_cutoff:
                test.extend(ids)
            else:
                valid.extend(ids)
        else:
            train.extend(ids)
    return _as_split((train, valid, test))


def scaffold_split(
    smiles: Sequence[str], frac: Sequence[float] = DEFAULT_FRAC, workers: int = 1
) -> dict[str, np.ndarray]:
    """Split molecules by Bemis-Murcko scaffold, exactly as Hu et al. 2020 and OGB do.

    Scaffolds come from ``MurckoScaffoldSmiles(smiles=..., includeChirality=True)``; the
    assignment rule is :func:`group_split`. Deterministic: there is no seed.

    Args:
        smiles: [num_molecules] SMILES RDKit can parse.
        frac: train, valid and test fractions.
        workers: processes for computing scaffolds; the split is the same for any number.

    Returns:
        ``{"train", "valid", "test"}`` -> sorted int64 indices into ``smiles``.

    Raises:
        InvalidSmilesError: for a SMILES RDKit cannot parse.

    Example:
        >>> split = scaffold_split(["c1ccccc1O", "c1ccccc1N", "C1CCCCC1", "CCO"], frac=(0.5, 0.25, 0.25))
        >>> split["train"].tolist(), split["valid"].tolist(), split["test"].tolist()
        ([0, 1], [3], [2])
    """
    check_frac(frac)
    return group_split(murcko_scaffolds(smiles, workers=workers), frac)


def random_split(n: int, frac: Sequence[float] = DEFAULT_FRAC, seed: int = 0) -> dict[str, np.ndarray]:
    """Split ``n`` molecules at random, as Hu et al. 2020 ``random_split`` does.

    The permutation is Python's ``random.Random(seed).shuffle`` of ``range(n)``; train takes the
    first ``int(frac_train * n)``, valid the next ``int(frac_valid * n)``, test the rest.

    Returns:
        ``{"train", "valid", "test"}`` -> sorted int64 indices in ``[0, n)``.
    """
    frac_train, frac_valid, _ = check_frac(frac)
    if n < 0:
        raise InputError(f"cannot split {n} molecules")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_train, n_valid = int(frac_train * n), int(frac_valid * n)
    return _as_split((order[:n_train], order[n_train : n_train + n_valid], order[n_train + n_valid :]))


def column_split(values: Sequence[object]) -> dict[str, np.ndarray]:
    """A split written down by the user: one ``train``/``valid``/``test`` value per molecule.

    Values are compared case-insensitively, ignoring surrounding spaces; ``training``,
    ``validation`` and ``val`` are accepted too (see ``SPLIT_VALUES``).

    Returns:
        ``{"train", "valid", "test"}`` -> sorted int64 indices into ``values``.

    Raises:
        InputError: naming the first value that is none of these, its position and the count.

    Example:
        >>> column_split(["Train", "test", "VALID", "train"])["train"].tolist()
        [0, 3]
    """
    parts: dict[str, list[int]] = {name: [] for name in SPLIT_NAMES}
    unknown: list[int] = []
    for index, value in enumerate(values):
        part = SPLIT_VALUES.get(str(value).strip().lower()) if isinstance(value, str) else None
        if part is None:
            unknown.append(index)
        else:
            parts[part].append(index)
    if unknown:
        first = unknown[0]
        raise InputError(
            f"{len(unknown):,} of {len(values):,} split values are not train/valid/test "
            f"(first: {values[first]!r} at index {first}). Allowed, in any case: "
            f"{', '.join(sorted(SPLIT_VALUES))}."
        )
    return _as_split([parts[name] for name in SPLIT_NAMES])


def _is_binary(y: np.ndarray) -> bool:
    labelled = y[~np.isnan(y)]
    return labelled.size > 0 and bool(np.isin(labelled, (0.0, 1.0)).all())


def _cover_first(order: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Reorder ``order`` so that it starts with a greedy cover of every (task, class) pair.

    Each step takes the molecule that adds the most (task, class) pairs not yet present (the first
    such in ``order`` on ties), until every pair present in ``order`` is covered.
    """
    labels = y[order]
    has = np.concatenate([labels == 1, labels == 0], axis=1)  # [n, 2 * num_tasks]
    uncovered = has.any(axis=0)
    chosen: list[int] = []
    available = np.ones(len(order), dtype=bool)
    while uncovered.any():
        gains = has[:, uncovered].sum(axis=1) * available
        best = int(np.argmax(gains))
        if gains[best] == 0:
            break
        chosen.append(best)
        available[best] = False
        uncovered &= ~has[best]
    return np.concatenate([order[chosen], order[available]])


def label_budgets(
    train_indices: Sequence[int] | np.ndarray,
    y: np.ndarray,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
    *,
    seed: int = 0,
    task_type: str | None = None,
) -> dict[int, np.ndarray]:
    """Nested label budgets: subsets of the training set with 100, 300, ... labelled molecules.

    One seeded ordering of the training molecules is made, and budget ``b`` is its first ``b``
    molecules, so every larger budget contains every smaller one. The result depends only on
    (``train_indices`` as a set, ``y``, ``seed``): every method given the same dataset, split and
    seed trains on the same molecules. For classification the ordering starts with a greedy
    cover, so that the smallest budgets hold a positive and a negative of every task where the
    training set has one (which enriches rare positives in small budgets, e.g. MUV); the rest
    follows a permutation seeded by ``seed``. Regression uses the permutation alone.

    Args:
        train_indices: the training split's indices into ``y``.
        y: [num_molecules, num_tasks] labels for the whole dataset, NaN = missing.
        budgets: label counts; each is capped at the training set size.
        seed: the budget seed (keep it apart from the model seed).
        task_type: ``"classification"`` or ``"regression"``; inferred when None
            (classification when every label is 0 or 1).

    Returns:
        budget -> sorted int64 indices into ``y``, ``min(budget, len(train_indices))`` of them.

    Raises:
        InputError: for non-positive budgets or indices outside ``y``.
    """
    train = np.unique(np.asarray(train_indices, dtype=np.int64))
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if train.size and (train[0] < 0 or train[-1] >= len(y)):
        raise InputError(f"train indices must lie in [0, {len(y)}) for labels of {len(y)} molecules")
    bad = [b for b in budgets if int(b) != b or b <= 0]
    if bad:
        raise InputError(f"label budgets must be positive integers; got {bad}")
    if task_type is None:
        task_type = "classification" if _is_binary(y[train]) else "regression"
    if task_type not in ("classification", "regression"):
        raise InputError(f"task_type must be 'classification' or 'regression'; got {task_type!r}")
    order = train[np.random.default_rng(seed).permutation(len(train))]
    if task_type == "classification" and order.size:
        order = _cover_first(order, y)
    return {int(b): np.sort(order[: min(int(b), len(order))]) for b in budgets}
