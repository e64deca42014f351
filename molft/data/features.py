"""Molecule features of a featurized table, computed once and cached beside its graphs.

``<table>.graphs/features/<feature key>.npy`` holds one row per graph, in graph order, for the
first ``n`` graphs computed so far; asking for more graphs computes only the missing ones and
rewrites the file (atomically), so a pretraining run on a corpus prefix pays for that prefix
only, and a second run starts at once. ``.npy`` files are read with ``allow_pickle=False``.
A ``<key>.json`` beside it records the table's source digest, the row count and the seconds spent.
:func:`table_feature_arrays` computes several features in one pass (one parse per molecule).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from molft.data.featurized import META, load_featurized
from molft.errors import InputError
from molft.featurize.molecule import MoleculeFeature, get_molecule_feature, molecule_features
from molft.io import atomic_write, write_json_atomic
from molft.runtime import read_json

logger = logging.getLogger(__name__)

FEATURES_DIR = "features"


def feature_cache_path(featurized: str | Path, feature: str | MoleculeFeature) -> Path:
    """Where ``feature`` of the featurized table ``featurized`` is cached."""
    return Path(featurized) / FEATURES_DIR / f"{get_molecule_feature(feature).key}.npy"


def _cached(path: Path, source_sha256: str | None) -> np.ndarray | None:
    record = path.with_suffix(".json")
    if not (path.is_file() and record.is_file()):
        return None
    if read_json(record).get("source_sha256") != source_sha256:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        logger.warning("ignoring the damaged feature cache %s (%s)", path, error)
        return None


def table_features(
    featurized: str | Path,
    feature: str | MoleculeFeature,
    *,
    max_graphs: int | None = None,
    workers: int = 1,
    progress: bool = False,
) -> np.ndarray:
    """``feature`` of the first ``max_graphs`` graphs (all when None) of a featurized table.

    Args:
        featurized: a directory written by ``molft featurize``.
        feature: a feature spec (``"rdkit2d"``, ``"morgan_count:1024"``) or object.
        max_graphs: how many graphs, from the first.
        workers: processes for the rows not cached yet.
        progress: show a progress bar.

    Returns:
        [num_graphs, len(feature)] array of ``feature.dtype``.

    Raises:
        InputError: not a featurized table.
    """
    return table_feature_arrays(featurized, [feature], max_graphs=max_graphs, workers=workers, progress=progress)[0]


def table_feature_arrays(
    featurized: str | Path,
    features: Sequence[str | MoleculeFeature],
    *,
    max_graphs: int | None = None,
    workers: int = 1,
    progress: bool = False,
) -> list[np.ndarray]:
    """Several features of the first ``max_graphs`` graphs of a featurized table, the rows not cached
    yet computed in one pass (one parse per molecule for all of them), each cached on its own.

    Returns:
        one [num_graphs, len(feature)] array per feature, in the order given.

    Raises:
        InputError: not a featurized table.

    Example:
        >>> specs = ["rdkit2d_fast", "morgan_bits:1024"]
        >>> descriptors, bits = table_feature_arrays("zinc.graphs", specs, workers=16)  # doctest: +SKIP
    """
    featurized = Path(featurized)
    if not (featurized / META).is_file():
        raise InputError(f"{featurized}: not a featurized dataset (no {META}); make one with 'molft featurize'")
    chosen = [get_molecule_feature(feature) for feature in features]
    meta = read_json(featurized / META)
    total = int(meta.get("counts", {}).get("featurized", 0))
    wanted = total if max_graphs is None else min(int(max_graphs), total)
    have = [_cached(feature_cache_path(featurized, feature), meta.get("source_sha256")) for feature in chosen]
    missing = [i for i, rows in enumerate(have) if rows is None or len(rows) < wanted]
    if missing:
        done = min(0 if have[i] is None else len(have[i]) for i in missing)
        table = load_featurized(featurized, text=True, max_graphs=wanted)
        smiles = table.smiles[done:wanted]
        started = time.perf_counter()
        logger.info("computing %s for %d molecules of %s", ", ".join(chosen[i].key for i in missing), len(smiles),
                    featurized)
        computed = molecule_features(smiles, [chosen[i] for i in missing], workers=workers, progress=progress)
        seconds = time.perf_counter() - started
        for i, new in zip(missing, computed.arrays.values()):
            rows = new if done == 0 else np.concatenate([have[i][:done], new])
            _store(featurized, chosen[i], rows, meta, seconds=seconds, workers=workers, extended=done > 0,
                   together=[chosen[j].key for j in missing if j != i])
            have[i] = rows
    return [rows[:wanted] for rows in have]


def _store(
    featurized: Path, feature: MoleculeFeature, rows: np.ndarray, meta: dict, *, seconds: float, workers: int,
    extended: bool, together: list[str],
) -> None:
    """Write the cache file of ``feature`` (atomically) and its record; ``seconds`` is the pass's
    time, shared with the features computed ``together`` in it, added to the earlier passes'."""
    path = feature_cache_path(featurized, feature)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        np.save(tmp, rows, allow_pickle=False)
    record = path.with_suffix(".json")
    previous = read_json(record).get("seconds", 0.0) if extended and record.is_file() else 0.0
    write_json_atomic(record, {
        "feature": feature.key, "columns": len(feature), "rows": len(rows), "source_sha256": meta.get("source_sha256"),
        "seconds": previous + seconds, "workers": workers, "computed_with": together,
    })
