"""Molecule features of a featurized table, computed once and cached beside its graphs.

``<table>.graphs/features/<feature key>.npy`` holds one row per graph, in graph order, for the
first ``n`` graphs computed so far; asking for more graphs computes only the missing ones and
rewrites the file (atomically), so a pretraining run on a corpus prefix pays for that prefix
only, and a second run starts at once. ``.npy`` files are read with ``allow_pickle=False``.
A ``<key>.json`` beside it records the table's source digest, the row count and the seconds spent.
"""

from __future__ import annotations

import logging
import time
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
    featurized = Path(featurized)
    if not (featurized / META).is_file():
        raise InputError(f"{featurized}: not a featurized dataset (no {META}); make one with 'molft featurize'")
    chosen = get_molecule_feature(feature)
    meta = read_json(featurized / META)
    total = int(meta.get("counts", {}).get("featurized", 0))
    wanted = total if max_graphs is None else min(int(max_graphs), total)
    path = feature_cache_path(featurized, chosen)
    have = _cached(path, meta.get("source_sha256"))
    if have is not None and len(have) >= wanted:
        return have[:wanted]
    done = 0 if have is None else len(have)
    table = load_featurized(featurized, text=True, max_graphs=wanted)
    smiles = table.smiles[done:wanted]
    started = time.perf_counter()
    logger.info("computing %s for %d molecules of %s", chosen.key, len(smiles), featurized)
    new = next(iter(molecule_features(smiles, [chosen], workers=workers, progress=progress).arrays.values()))
    seconds = time.perf_counter() - started
    rows = new if have is None else np.concatenate([have, new])
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        np.save(tmp, rows, allow_pickle=False)
    previous = read_json(path.with_suffix(".json")).get("seconds", 0.0) if have is not None else 0.0
    write_json_atomic(path.with_suffix(".json"), {
        "feature": chosen.key, "columns": len(chosen), "rows": len(rows), "source_sha256": meta.get("source_sha256"),
        "seconds": previous + seconds, "workers": workers,
    })
    return rows
