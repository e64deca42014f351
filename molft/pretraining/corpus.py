"""The pretraining corpus: featurized directories or SMILES tables (featurized once into a cache),
one or several parts joined in order, loaded as compact graph arrays; and which of its molecules
are benchmark test molecules (:func:`screen_test_molecules`, see :mod:`molft.pretraining.hygiene`)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molft.data.featurized import META, featurize_file, file_sha256, load_featurized
from molft.errors import InputError
from molft.featurize.graph import GraphArrays
from molft.runtime import default_cache_dir

logger = logging.getLogger(__name__)


def corpus_cache_path(table: Path, vocabulary: str, cache_dir: Path | None = None, *, sha256: str | None = None) -> Path:
    """Where a SMILES table is featurized once for pretraining, keyed by its content hash and vocabulary.

    ``<cache>/corpora/<file name>-<sha256[:16]>-<vocabulary>.graphs`` (cache: ``$MOLFT_CACHE_DIR`` or
    ``~/.cache/molft``), so every run on the same file and vocabulary shares one featurization.
    ``sha256``: the table's digest when the caller has it already (hashing a corpus takes a while).
    """
    digest = (sha256 or file_sha256(table))[:16]
    return (cache_dir or default_cache_dir()) / "corpora" / f"{table.name}-{digest}-{vocabulary}.graphs"


def _cached_corpus_matches(featurized: Path, sha256: str, vocabulary: str) -> bool:
    """A complete featurization (``meta.json`` is written last) of the file with this digest and vocabulary."""
    if not (featurized / META).is_file():
        return False
    meta = json.loads((featurized / META).read_text())
    return meta.get("source_sha256") == sha256 and meta.get("vocabulary") == vocabulary


def _featurized_directory(
    corpus: Path, vocabulary: str | None, smiles_column: str | None, workers: int, rank: int, world: int,
    progress: bool,
) -> Path:
    """The featurized directory of one corpus part: the part itself, or, for a SMILES table, its
    cache entry (featurized once, by rank 0, and reused by later runs)."""
    if not corpus.exists():
        raise InputError(f"{corpus}: no such file or directory; give a SMILES table or a featurized directory")
    if corpus.is_dir():
        return corpus
    vocab = vocabulary or "ogb"
    sha256 = file_sha256(corpus)  # once: it names the cache entry and checks it
    featurized = corpus_cache_path(corpus, vocab, sha256=sha256)
    if rank == 0:
        if _cached_corpus_matches(featurized, sha256, vocab):
            logger.info("reusing the featurized corpus %s", featurized)
        else:
            featurize_file(corpus, featurized, smiles_column=smiles_column, vocab=vocab, workers=workers, progress=progress,
                           overwrite=True)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return featurized


def _part_infos(corpus_info: dict[str, Any]) -> list[dict[str, Any]]:
    return corpus_info["parts"] if "parts" in corpus_info else [corpus_info]


def label_columns(featurized: str | Path, max_graphs: int | None = None) -> tuple[list[str], np.ndarray]:
    """The numeric label columns of a featurized table (every carried column but the SMILES
    whose non-empty cells are all numbers) and their values, [num_graphs, num_labels] float32
    with NaN for empty cells."""
    table = load_featurized(featurized, text=True, max_graphs=max_graphs)
    names, values = [], []
    for name in table.columns.columns:
        if name == table.meta["smiles_column"]:
            continue
        text = table.columns[name].str.strip()
        numbers = pd.to_numeric(text.where(text != "", None), errors="coerce")
        if (numbers.isna() & (text != "")).any():
            continue  # an id or name column
        names.append(name)
        values.append(numbers.to_numpy(dtype=np.float32))
    count = len(table.graphs) if max_graphs is None else min(max_graphs, len(table.graphs))
    array = np.stack(values, axis=1)[:count] if values else np.zeros((count, 0), dtype=np.float32)
    return names, array


def corpus_targets(
    corpus_info: dict[str, Any],
    sources: Iterable[str],
    *,
    count: int,
    workers: int = 1,
    rank: int = 0,
    world: int = 1,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """The per-molecule arrays the objectives read, for the first ``count`` graphs of the corpus.

    Args:
        corpus_info: :func:`load_corpus`'s description of the corpus.
        sources: molecule-feature specs (computed once, all in one pass, and cached beside each
            part's graphs by :func:`~molft.data.features.table_feature_arrays`; rank 0 computes,
            the others wait and read) and/or ``"labels"`` (the parts' numeric label columns,
            which must be the same in every part).
        count: graphs in the training corpus.

    Raises:
        InputError: ``"labels"`` asked of a corpus without label columns, or parts whose label
            columns differ.
    """
    from molft.data.features import table_feature_arrays

    sources = list(dict.fromkeys(sources))
    features = [source for source in sources if source != "labels"]
    pieces: dict[str, list[np.ndarray]] = {source: [] for source in sources}
    names_seen, remaining = None, count
    for part in _part_infos(corpus_info):
        if remaining <= 0:
            break
        rows = 0
        if "labels" in pieces:
            names, values = label_columns(part["featurized"], max_graphs=remaining)
            if not names:
                raise InputError(f"{part['corpus']}: no numeric label columns for the supervised objective")
            if names_seen is not None and names != names_seen:
                raise InputError(f"{part['corpus']}: its label columns differ from the first part's")
            names_seen = names
            pieces["labels"].append(values)
            rows = len(values)
        if features:  # every feature of the part in one pass over its molecules
            if rank == 0:
                arrays = table_feature_arrays(part["featurized"], features, max_graphs=remaining, workers=workers,
                                              progress=progress)
            if world > 1:
                import torch.distributed as dist

                dist.barrier()
            if rank != 0:
                arrays = table_feature_arrays(part["featurized"], features, max_graphs=remaining)
            for source, values in zip(features, arrays):
                pieces[source].append(values)
            rows = len(arrays[0])
        remaining -= rows
    return {source: np.concatenate(arrays) if len(arrays) > 1 else arrays[0] for source, arrays in pieces.items()}


def corpus_smiles(corpus_info: dict[str, Any], *, count: int) -> list[str]:
    """The SMILES of the first ``count`` graphs of the corpus, read from its featurized parts."""
    smiles: list[str] = []
    for part in _part_infos(corpus_info):
        remaining = count - len(smiles)
        if remaining <= 0:
            break
        smiles.extend(load_featurized(part["featurized"], text=True, max_graphs=remaining).smiles[:remaining])
    return smiles


def screen_test_molecules(
    corpus_info: dict[str, Any],
    *,
    count: int,
    exclude: bool,
    reason: str,
    workers: int = 1,
    rank: int = 0,
    world: int = 1,
    progress: bool = False,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Which of the corpus's first ``count`` graphs to train on: all but the test molecules of the
    benchmarks in the data directory (:func:`molft.pretraining.hygiene.benchmark_test_keys`).

    Args:
        corpus_info: :func:`load_corpus`'s description of the corpus.
        count: graphs in the corpus.
        exclude: check the corpus at all (the caller's decision, e.g. only for a labelled corpus).
        reason: why it is checked or not, for the record.

    Returns:
        ``(keep, record)``: sorted int64 indices of the graphs to keep (None: keep every graph,
        nothing was checked), and a JSON-able record whose ``"test_molecules_removed"`` holds the
        removed molecules per benchmark dataset and ``"total"``, or None with a ``"reason"`` when
        the corpus was not checked. A missing data directory, or one without benchmark files, is
        logged as a warning and recorded; it does not stop the run.
    """
    from molft.pretraining import hygiene

    record: dict[str, Any] = {"test_molecules_removed": None, "reason": reason}
    if not exclude:
        return None, record
    folder = hygiene.find_data_dir()
    test_keys: dict[str, set[str]] = {}
    if folder is not None:
        if rank == 0:  # fills the key cache; the other ranks then read it
            test_keys = hygiene.benchmark_test_keys(folder, split=hygiene.SPLITS, workers=workers)
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
        if rank != 0:
            test_keys = hygiene.benchmark_test_keys(folder, split=hygiene.SPLITS, workers=workers)
    if not test_keys:
        where = "no data directory ($MOLFT_DATA_DIR unset or missing, ../shared/data absent)" if folder is None else (
            f"no benchmark dataset files in the data directory {folder}")
        record["reason"] = f"{where}: the corpus could not be checked for benchmark test molecules ({reason})"
        logger.warning("%s; pretraining on it unchecked", record["reason"])
        return None, record
    found = hygiene.find_test_molecules(corpus_smiles(corpus_info, count=count), test_keys, workers=workers,
                                        progress=progress)
    keep = np.flatnonzero(found.keep).astype(np.int64)
    record.update({
        "test_molecules_removed": found.counts(), "data_dir": str(folder), "split": list(hygiene.SPLITS),
        "key": hygiene.KEY, "test_keys": {name: len(keys) for name, keys in test_keys.items()},
        "molecules_before": count, "molecules_after": int(len(keep)),
    })
    logger.info("removed %d benchmark test molecules from the corpus (%s)", found.removed,
                ", ".join(f"{name} {n}" for name, n in found.per_dataset.items() if n) or "none found")
    return keep, record


def load_corpus(
    parts: list[Path],
    *,
    vocabulary: str | None,
    smiles_column: str | None = None,
    workers: int = 1,
    rank: int = 0,
    world: int = 1,
    progress: bool = False,
    max_molecules: int | None = None,
) -> tuple[GraphArrays, dict[str, Any]]:
    """The corpus's graphs (at least its first ``max_molecules``) and a description of each part
    (path, source, sha256, vocabulary): parts (e.g. files featurized on different machines) are
    joined in the order given, all in one vocabulary. One part is described on its own, several as
    ``{"parts": [...], "vocabulary": ...}``. Only graphs are loaded, never the SMILES text: a
    corpus costs its compact arrays, about 1 GiB per million ZINC molecules in memory.

    A SMILES table is featurized once by rank 0 into the cache (:func:`corpus_cache_path`);
    the other ranks wait for it.
    """
    graphs, infos = [], []
    for part in parts:
        still_needed = None if max_molecules is None else max_molecules - sum(map(len, graphs))
        if still_needed is not None and still_needed <= 0:
            break
        featurized = _featurized_directory(part, vocabulary, smiles_column, workers, rank, world, progress)
        table = load_featurized(featurized, text=False, max_graphs=still_needed)
        if vocabulary is not None and table.meta["vocabulary"] != vocabulary:
            raise InputError(
                f"{part} is featurized with the {table.meta['vocabulary']!r} vocabulary, but the encoder uses "
                f"{vocabulary!r}; featurize the corpus with --vocab {vocabulary}, or leave the encoder's "
                "vocabulary unset"
            )
        vocabulary = table.meta["vocabulary"]  # the first part's vocabulary binds the others
        graphs.append(table.graphs)
        infos.append({
            "corpus": str(part),
            "featurized": str(featurized),
            "source": table.meta.get("source"),
            "source_sha256": table.meta.get("source_sha256"),
            "vocabulary": table.meta["vocabulary"],
            "rejected": table.meta.get("counts", {}).get("rejected"),
        })
    joined = graphs[0] if len(infos) == 1 else GraphArrays.concat(graphs)
    if max_molecules is not None and max_molecules < len(joined):
        joined = joined.select(np.arange(max_molecules))
    if len(infos) == 1:
        return joined, infos[0]
    return joined, {"parts": infos, "vocabulary": infos[0]["vocabulary"]}
