"""Benchmark datasets as data: one table row per MoleculeNet task, one loader for all of them.

``DATASETS`` (:mod:`molft.data.catalog`) says, for each dataset, which file under the data
directory holds it, which columns are SMILES and labels, how it is scored, its OGB name, and where
the original is published.
:func:`load_dataset` turns a row into graphs, labels (NaN = missing) and a split. Molecules RDKit
cannot read are dropped *before* splitting, as pretrain-gnns and OGB do, and every one is kept in
``LoadedDataset.failures`` with its row and reason.

Featurized graphs and scaffolds are cached as ``.npz`` files (read with ``allow_pickle=False``)
under ``$MOLFT_CACHE_DIR`` or ``~/.cache/molft``, keyed by the file's sha256, the vocabulary (name
and a digest of its tables) and the RDKit version, so a changed file, vocabulary or toolkit never
reuses stale graphs. Bump ``CACHE_VERSION`` when the featurizer's output changes.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import rdkit
from rdkit import Chem, rdBase

from molft.data.catalog import DATASETS, DatasetInfo, get_dataset_info
from molft.data.dataset import GraphDataset
from molft.data.featurized import decode_text, encode_text, file_sha256, reason_category
from molft.data.splits import SPLIT_NAMES, column_split, group_split, murcko_scaffolds, random_split
from molft.errors import InputError
from molft.io import atomic_write
from molft.featurize.graph import Failure, GraphArrays, featurize_many
from molft.featurize.vocab import OGB, Vocabulary, get_vocabulary
from molft.runtime import DATA_DIR_ENV, PROJECT_ROOT, default_cache_dir, default_data_dir

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
SPLITS = ("scaffold", "random", "column:NAME")
_GRAPH_KEYS = ("x", "bonds", "bond_attr", "atom_ptr", "bond_ptr")


@dataclass(frozen=True)
class DatasetStatus:
    """A registry row and whether its file is in the data directory.

    Attributes:
        info: the registry row.
        path: where the file is expected (None without a data directory).
        available: whether that file exists.
    """

    info: DatasetInfo
    path: Path | None
    available: bool


def _data_dir(data_dir: str | Path | None) -> Path | None:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def list_datasets(data_dir: str | Path | None = None) -> list[DatasetStatus]:
    """Every registered dataset, in registry order, with whether its file is present.

    Args:
        data_dir: the data directory (default: ``$MOLFT_DATA_DIR``, else ``../shared/data``).
    """
    folder = _data_dir(data_dir)
    statuses = []
    for info in DATASETS:
        try:
            path: Path | None = dataset_path(info.name, folder)
        except InputError:
            path = None if folder is None else folder / info.file
            statuses.append(DatasetStatus(info, path, False))
        else:
            statuses.append(DatasetStatus(info, path, True))
    return statuses


def dataset_path(
    name: str, data_dir: str | Path | None = None, *, download: bool = False, cache_dir: str | Path | None = None
) -> Path:
    """The dataset's file: in the data directory (``info.file``, or the same name without ``.gz``),
    else a copy downloaded earlier, else (with ``download``) fetched now from ``info.download_url``.

    Downloads are checked against ``info.download_sha256`` and kept under
    ``<cache>/downloads/`` (cache: ``$MOLFT_CACHE_DIR`` or ``~/.cache/molft``).

    Raises:
        InputError: naming the paths looked at and how to get the file.
    """
    from molft.data.download import fetch

    info = get_dataset_info(name)
    folder = _data_dir(data_dir)
    looked = []
    if folder is not None:
        path = folder / info.file
        plain = path.with_name(path.name[: -len(".gz")]) if path.name.endswith(".gz") else path
        for candidate in (path, plain):  # the uncompressed original, as downloaded, works too
            if candidate.is_file():
                return candidate
        looked.append(str(path))
    else:
        looked.append(f"no data directory (${DATA_DIR_ENV} unset, {PROJECT_ROOT.parent / 'shared' / 'data'} absent)")
    downloaded = _download_path(info, cache_dir)
    if downloaded is not None:
        if downloaded.is_file():
            return downloaded
        if download:
            return fetch(info.download_url, downloaded, sha256=info.download_sha256)
        looked.append(str(downloaded))
    raise InputError(
        f"{info.name}: no file ({'; '.join(looked)}). Put {info.file} under a data directory (--data-dir DIR "
        f"or {DATA_DIR_ENV}=DIR), or download it: 'molft datasets {info.name.lower()} --download' "
        f"(original: {info.url})."
    )


def _download_path(info: DatasetInfo, cache_dir: str | Path | None) -> Path | None:
    """Where a download of ``info`` lives: the registry's file name, gzipped only if the download is."""
    if info.download_url is None:
        return None
    name = info.file if info.download_url.endswith(".gz") else info.file.removesuffix(".gz")
    return (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "downloads" / name


def resolve_columns(info: DatasetInfo, header: list[str], source: str | Path = "input") -> tuple[str, list[str]]:
    """The SMILES column and the label columns of a file with this header.

    Raises:
        InputError: when the SMILES column or a label column is missing, listing the columns found.
    """
    smiles_column = next((c for c in info.smiles_columns if c in header), None)
    found = ", ".join(header)
    if smiles_column is None:
        raise InputError(f"{source}: no SMILES column ({' or '.join(info.smiles_columns)}). Columns found: {found}")
    if info.label_columns:
        missing = [c for c in info.label_columns if c not in header]
        if missing:
            names = ", ".join(map(repr, missing))
            raise InputError(f"{source}: no label column {names} for {info.name}. Columns found: {found}")
        return smiles_column, list(info.label_columns)
    skip = {smiles_column, *info.exclude_columns}
    return smiles_column, [c for c in header if c not in skip]


def _read_csv(path: Path, **kwargs: object) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)  # type: ignore[arg-type]
    except (OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(f"{path}: cannot be read as CSV ({error})") from None


def read_task_names(name: str, data_dir: str | Path | None = None) -> list[str]:
    """The dataset's label columns, read from its header only (fast)."""
    info = get_dataset_info(name)
    path = dataset_path(name, data_dir)
    return resolve_columns(info, list(_read_csv(path, nrows=0).columns), path)[1]


def _labels(frame: pd.DataFrame, columns: list[str], path: Path) -> np.ndarray:
    raw = frame[columns]
    if all(pd.api.types.is_numeric_dtype(dtype) for dtype in raw.dtypes):
        return raw.to_numpy(dtype=np.float32).reshape(len(frame), len(columns))
    values = raw.apply(pd.to_numeric, errors="coerce")
    bad = values.isna().to_numpy() & raw.notna().to_numpy()
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{path}: row {row + 2}, column {columns[column]!r}: {raw.iat[row, column]!r} is not a number "
            "(labels must be numbers; leave a cell empty for a missing label)"
        )
    return values.to_numpy(dtype=np.float32).reshape(len(frame), len(columns))


def _cached(path: Path | None, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays from the ``.npz`` at ``path`` if it is readable, else computed and saved there."""
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {key: stored[key] for key in stored.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            logger.warning("%s: unreadable cache file (%s); recomputing it", path, error)
    arrays = compute()
    if path is not None:
        try:
            with atomic_write(path) as tmp, open(tmp, "wb") as handle:
                np.savez(handle, **arrays)
        except OSError as error:
            logger.warning("cannot write cache file %s (%s); going on without it", path, error)
    return arrays


@dataclass
class LoadedDataset:
    """A benchmark dataset ready for training: graphs, labels, SMILES, failures and a split.

    Attributes:
        info: the registry row.
        dataset: the kept molecules; ``y: [num_molecules, num_tasks]`` float32 with NaN for
            missing labels, ``ids`` = ``row_index``.
        smiles: [num_molecules] SMILES of the kept molecules, as in the file (stripped).
        row_index: [num_molecules] 0-based data-row position of each kept molecule in the file
            (pretrain-gnns' ``data.id``; the spreadsheet row is ``row_index + 2``).
        failures: every row RDKit could not read (``index`` = its 0-based data-row position),
            dropped before splitting.
        task_names: the label columns, in order.
        split: ``{"train", "valid", "test"}`` -> sorted int64 indices into ``dataset``.
        split_name: ``"scaffold"``, ``"random"`` or ``"column:NAME"``.
        split_seed: the seed of a random split (unused by the deterministic scaffold split).
        path: the file read.
        sha256: the file's sha256.
        num_rows: data rows in the file.
        vocabulary: the name of the feature vocabulary of the graphs.
    """

    info: DatasetInfo
    dataset: GraphDataset
    smiles: list[str]
    row_index: np.ndarray
    failures: list[Failure]
    task_names: list[str]
    split: dict[str, np.ndarray]
    split_name: str
    split_seed: int
    path: Path
    sha256: str
    num_rows: int
    vocabulary: str = OGB.name

    @property
    def task_type(self) -> str:
        """``"classification"`` or ``"regression"``."""
        return self.info.task_type

    @property
    def metric(self) -> str:
        """The metric to report (``"roc_auc"``, ``"rmse"``, ...)."""
        return self.info.metric

    @property
    def y(self) -> np.ndarray:
        """[num_molecules, num_tasks] float32 labels, NaN = missing."""
        assert self.dataset.y is not None
        return self.dataset.y.numpy()

    def failure_reasons(self) -> dict[str, int]:
        """Dropped rows per kind of reason, most common first."""
        return dict(Counter(reason_category(f.reason) for f in self.failures).most_common())

    def part(self, name: str) -> GraphDataset:
        """The molecules of one part of the split (``"train"``, ``"valid"`` or ``"test"``)."""
        if name not in self.split:
            raise InputError(f"no split part {name!r}; choose one of: {', '.join(self.split)}")
        return self.dataset.subset(self.split[name])

    def summary(self) -> str:
        """One line a person can read."""
        sizes = " / ".join(f"{len(self.split[n]):,}" for n in SPLIT_NAMES)
        text = (
            f"{self.info.name}: {self.num_rows:,} rows, {len(self.smiles):,} molecules, "
            f"{len(self.task_names)} task(s), {self.split_name} split {sizes}"
        )
        if self.failures:
            reasons = "; ".join(f"{n:,} {r}" for r, n in self.failure_reasons().items())
            first = self.failures[0]
            text += f"; dropped {len(self.failures):,} rows ({reasons}; first: row {first.index + 2}, {first.smiles!r})"
        return text


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    vocab: str | Vocabulary = OGB,
    split: str = "scaffold",
    split_seed: int = 0,
    workers: int = 1,
    cache: bool = True,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    download: bool = False,
) -> LoadedDataset:
    """Load a benchmark dataset as graphs with labels and a train/valid/test split.

    Molecules RDKit cannot read are dropped before splitting (as pretrain-gnns and OGB do) and
    listed in ``failures``. Featurized graphs and scaffolds are cached on disk.

    Args:
        name: a registry name (``"bbbp"``, ``"Tox21"``, ``"ogbg-molhiv"``...); see :func:`list_datasets`.
        data_dir: the data directory (default: ``$MOLFT_DATA_DIR``, else ``../shared/data``).
        vocab: feature vocabulary name or object.
        split: ``"scaffold"`` (Hu et al. / OGB, deterministic), ``"random"`` (seeded by
            ``split_seed``) or ``"column:NAME"`` (train/valid/test values in column NAME,
            e.g. ``"column:Model"`` for BACE).
        split_seed: seed of the random split.
        workers: processes for featurization and scaffolds; results never depend on it.
        cache: read and write the on-disk cache.
        cache_dir: cache folder (default: ``$MOLFT_CACHE_DIR``, else ``~/.cache/molft``).
        progress: show a featurization progress bar.
        download: fetch the file (pinned address, checked sha256) when no copy is found.

    Raises:
        InputError: unknown dataset or split, missing file (naming the path), missing columns,
            non-numeric labels, a failed download.

    Example:
        >>> bbbp = load_dataset("bbbp")
        >>> train = bbbp.part("train")
    """
    info = get_dataset_info(name)
    split_column = split[len("column:") :] if split.startswith("column:") else None
    if split not in ("scaffold", "random") and not split_column:
        raise InputError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    path = dataset_path(info.name, data_dir, download=download, cache_dir=cache_dir)
    sha256 = file_sha256(path)
    if info.sha256 is not None and sha256 != info.sha256:
        logger.warning("%s: sha256 %s differs from the known copy's %s", path, sha256, info.sha256)
    header = list(_read_csv(path, nrows=0).columns)
    smiles_column, task_names = resolve_columns(info, header, path)
    if split_column and split_column not in header:
        raise InputError(f"{path}: no split column {split_column!r}. Columns found: {', '.join(header)}")
    usecols = list(dict.fromkeys([smiles_column, *task_names, *([split_column] if split_column else [])]))
    frame = _read_csv(path, usecols=usecols, dtype={smiles_column: str})
    all_smiles = [s.strip() for s in frame[smiles_column].fillna("").astype(str)]
    labels = _labels(frame, task_names, path)

    vocabulary = get_vocabulary(vocab)
    folder = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / "datasets"
    key = f"{info.name.lower()}-{sha256[:16]}-rdkit{rdkit.__version__}-v{CACHE_VERSION}"

    def featurize() -> dict[str, np.ndarray]:
        result = featurize_many(all_smiles, vocabulary, workers=workers, progress=progress)
        reason, reason_ptr = encode_text([f.reason for f in result.failures])
        failed = np.asarray([f.index for f in result.failures], dtype=np.int64)
        return {**result.graphs.arrays(), "kept": result.indices, "failed": failed, "reason": reason,
                "reason_ptr": reason_ptr}

    vocab_digest = hashlib.sha256(repr(vocabulary).encode()).hexdigest()[:8]  # edits to a vocabulary
    arrays = _cached(folder / f"{key}-{vocabulary.name}-{vocab_digest}.npz" if cache else None, featurize)
    graphs = GraphArrays(**{k: arrays[k] for k in _GRAPH_KEYS})
    kept = arrays["kept"].astype(np.int64)
    reasons = decode_text(arrays["reason"], arrays["reason_ptr"])
    failures = [Failure(int(i), all_smiles[i], r) for i, r in zip(arrays["failed"].tolist(), reasons)]
    smiles = [all_smiles[i] for i in kept]
    if failures:
        loaded_reasons = Counter(reason_category(f.reason) for f in failures)
        logger.warning(
            "%s: %d of %d rows could not be read by RDKit and are left out before splitting (%s)",
            path, len(failures), len(all_smiles), ", ".join(f"{n} {r}" for r, n in loaded_reasons.most_common()),
        )

    if split == "scaffold":
        def scaffolds() -> dict[str, np.ndarray]:
            inputs = _canonical(smiles) if info.canonical_split_smiles else smiles
            text, ptr = encode_text(murcko_scaffolds(inputs, workers=workers))
            return {"kept": kept, "scaffold": text, "scaffold_ptr": ptr}

        stored = _cached(folder / f"{key}-scaffolds.npz" if cache else None, scaffolds)
        if not np.array_equal(stored["kept"], kept):  # cache from other parse results: redo
            stored = _cached(None, scaffolds)
        split_indices = group_split(decode_text(stored["scaffold"], stored["scaffold_ptr"]))
    elif split == "random":
        split_indices = random_split(len(kept), seed=split_seed)
    else:
        split_indices = _column_split(frame[split_column], kept, path, split_column)

    return LoadedDataset(
        info=info,
        dataset=GraphDataset(graphs, labels[kept], ids=kept),
        smiles=smiles,
        row_index=kept,
        failures=failures,
        task_names=task_names,
        split=split_indices,
        split_name=split,
        split_seed=split_seed,
        path=path,
        sha256=sha256,
        num_rows=len(all_smiles),
        vocabulary=vocabulary.name,
    )


def _canonical(smiles: list[str]) -> list[str]:
    """RDKit-canonical SMILES (``MolToSmiles`` defaults), as pretrain-gnns writes for some datasets."""
    with rdBase.BlockLogs():
        return [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in smiles]


def _column_split(values: pd.Series, kept: np.ndarray, path: Path, column: str) -> dict[str, np.ndarray]:
    try:
        by_row = column_split(values.fillna("").astype(str).tolist())
    except InputError as error:
        raise InputError(f"{path}: column {column!r}: {error} (index 0 is spreadsheet row 2)") from None
    position = {row: i for i, row in enumerate(kept.tolist())}
    return {
        part: np.asarray([position[r] for r in rows.tolist() if r in position], dtype=np.int64)
        for part, rows in by_row.items()
    }
