"""Benchmark datasets as data: one table row per MoleculeNet task, one loader for all of them.

``DATASETS`` says, for each dataset, which file under the data directory holds it, which columns
are SMILES and labels, how it is scored, its OGB name, and where the original is published.
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

from molft.data.dataset import GraphDataset
from molft.data.featurized import decode_text, encode_text, file_sha256, reason_category
from molft.data.splits import SPLIT_NAMES, column_split, group_split, murcko_scaffolds, random_split
from molft.errors import InputError
from molft.io import atomic_write
from molft.evaluate import CLASSIFICATION, REGRESSION
from molft.featurize.graph import Failure, GraphArrays, featurize_many
from molft.featurize.vocab import OGB, Vocabulary, get_vocabulary
from molft.runtime import DATA_DIR_ENV, PROJECT_ROOT, default_cache_dir, default_data_dir

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
SPLITS = ("scaffold", "random", "column:NAME")
_S3 = "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/"
# Pinned copies (shared/data/SOURCES.md): the CSVs there are these bytes (gzipped, or as they are).
_GLAMBARD = "https://raw.githubusercontent.com/GLambard/Molecules_Dataset_Collection/beb35cd0b76db5adef6cb1fa55807e4cd309aaed/originals/"
_DEEPCHEM = "https://raw.githubusercontent.com/deepchem/deepchem/"
_CHEMPROP = "https://raw.githubusercontent.com/chemprop/chemprop/3f2b73372a8968f0f73b2fb279a5780cae918d58/"
_GRAPH_KEYS = ("x", "bonds", "bond_attr", "atom_ptr", "bond_ptr")


@dataclass(frozen=True)
class DatasetInfo:
    """One benchmark dataset: where it lives, what to read, how to score it.

    Args:
        name: molft's name (``"BBBP"``); look-ups ignore case and also accept ``ogb_name`` and
            ``aliases``.
        file: the file, relative to the data directory.
        task_type: ``"classification"`` or ``"regression"``.
        metric: the metric Hu et al. 2020 / MoleculeNet report (a key of ``molft.evaluate.METRICS``).
        ogb_name: the OGB dataset with the same molecules, for ``ogb.graphproppred.Evaluator``.
        url: where DeepChem publishes the original MoleculeNet file.
        sha256: sha256 of the copy in molft's data directory (``shared/data/SOURCES.md``). It is
            *not* the hash of the file at ``url``: some originals are uncompressed there, and
            our BACE, MUV and ClinTox copies deviate slightly (see SOURCES.md). None if no copy.
        label_columns: the task columns. Empty means "every column of the header except the
            SMILES column and ``exclude_columns``" (Tox21, ToxCast, SIDER, MUV, PCBA).
        exclude_columns: non-label columns, used when ``label_columns`` is empty.
        smiles_columns: the SMILES column: the first of these the header has.
        canonical_split_smiles: compute scaffolds from RDKit-canonical SMILES, as pretrain-gnns
            does for BBBP, ClinTox and ToxCast (its loaders write ``MolToSmiles`` for these);
            for a handful of molecules the scaffold differs from that of the file's SMILES.
        aliases: other names accepted by look-ups.
        download_url: a pinned address (a fixed commit) :func:`dataset_path` fetches the file
            from when the data directory lacks it and ``download=True``.
        download_sha256: sha256 of the bytes at ``download_url`` (None: not known, PCBA).
    """

    name: str
    file: str
    task_type: str
    metric: str
    ogb_name: str | None
    url: str
    sha256: str | None
    label_columns: tuple[str, ...] = ()
    exclude_columns: tuple[str, ...] = ()
    smiles_columns: tuple[str, ...] = ("smiles",)
    canonical_split_smiles: bool = False
    aliases: tuple[str, ...] = ()
    download_url: str | None = None
    download_sha256: str | None = None

    def names(self) -> tuple[str, ...]:
        """Every lower-case name this dataset answers to."""
        return tuple(n.lower() for n in (self.name, self.ogb_name or "", *self.aliases) if n)


DATASETS: tuple[DatasetInfo, ...] = (
    DatasetInfo(
        "BBBP", "moleculenet/BBBP.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molbbbp", _S3 + "BBBP.csv",
        "d211b6aff488acfb47138edfcf23667af599858b3fe036045541f7137930e548",
        label_columns=("p_np",), canonical_split_smiles=True,
        download_url=_GLAMBARD + "BBBP.csv",
        download_sha256="d07a38487aeac5cee5508413e468043ef3097451d2a112701c2d60be9ec6b662",
    ),
    DatasetInfo(
        "Tox21", "moleculenet/tox21.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-moltox21", _S3 + "tox21.csv.gz",
        "b0712b58280c1c87660d6abc23e199389372979a9d85f850cb27cdec6aa7c2af",
        exclude_columns=("mol_id",),
        download_url=_GLAMBARD + "tox21.csv",
        download_sha256="7d7e7facd853a63e79ddce4e9c3fcb7a0d83a1c300b603031c0f2c64fbe77761",
    ),
    DatasetInfo(
        "ToxCast", "moleculenet/toxcast_data.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-moltoxcast",
        _S3 + "toxcast_data.csv.gz", "56041515e0bb63c1787a26ecdbeb2bd7ae1f538681caa1b03f768853cf81b1a7",
        canonical_split_smiles=True,
        download_url=_DEEPCHEM + "446b5b25edc0c3bd5f4bf97c864a9f29774762a1/examples/toxcast/processing/toxcast_data.csv.gz",
        download_sha256="56041515e0bb63c1787a26ecdbeb2bd7ae1f538681caa1b03f768853cf81b1a7",
    ),
    DatasetInfo(
        "SIDER", "moleculenet/sider.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molsider", _S3 + "sider.csv.gz",
        "3ffbbdea85ccc74a54e762ff03547c189bb087866fcf1cae9c8d08b394811509",
        download_url=_GLAMBARD + "sider.csv",
        download_sha256="71efc6ac4ca82d6545bc512509863281be0f17234afd7adaf71a71899988302e",
    ),
    DatasetInfo(
        "ClinTox", "moleculenet/clintox.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molclintox",
        _S3 + "clintox.csv.gz", "b8f03d8e402771e42370e1b17e97fe064199177ffb45092944dbaab3446f24d5",
        label_columns=("FDA_APPROVED", "CT_TOX"), canonical_split_smiles=True,
        download_url=_GLAMBARD + "clintox.csv",
        download_sha256="0bd655529cebe6d94addd48b8afdab6fa0438b4503a470866231793f235d7e61",
    ),
    DatasetInfo(
        "MUV", "moleculenet/muv.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molmuv", _S3 + "muv.csv.gz",
        "ee68d1fad0b10440dc494ac3a74cf99168a0b0da9683556b2b48220b88172135",
        exclude_columns=("mol_id",),
        download_url=_CHEMPROP + "data/muv.csv.gz",
        download_sha256="ee68d1fad0b10440dc494ac3a74cf99168a0b0da9683556b2b48220b88172135",
    ),
    DatasetInfo(
        "HIV", "moleculenet/HIV.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molhiv", _S3 + "HIV.csv",
        "8d4a211ed33d242d3303f28e9160acfa94d606675c9d30944fd12373bb810ebc",
        label_columns=("HIV_active",),
        download_url=_GLAMBARD + "HIV.csv",
        download_sha256="54713c3205055055ea4214e8c4b0d22d93af7e54ad2c48f4edc866e161e57262",
    ),
    DatasetInfo(
        "BACE", "moleculenet/bace.csv.gz", CLASSIFICATION, "roc_auc", "ogbg-molbace", _S3 + "bace.csv",
        "fb56d9386eaa076dc1474bc93040e53ccc59d740329d564779d2bc6fa5d7cd5f",
        label_columns=("Class",), smiles_columns=("smiles", "mol"),
        download_url=_GLAMBARD + "bace.csv",
        download_sha256="d36f089649984f7bfaa4589ccc3ae907b831780a01ccfd065a5b604939e1a5df",
    ),
    DatasetInfo(
        # Not in the data directory (SOURCES.md: too large for the snapshot store).
        "PCBA", "moleculenet/pcba.csv.gz", CLASSIFICATION, "pr_auc", "ogbg-molpcba", _S3 + "pcba.csv.gz",
        None, exclude_columns=("mol_id",),
        download_url=_S3 + "pcba.csv.gz",
        download_sha256=None,
    ),
    DatasetInfo(
        "ESOL", "moleculenet/delaney-processed.csv.gz", REGRESSION, "rmse", "ogbg-molesol",
        _S3 + "delaney-processed.csv", "5d3f47386ea1a6ff54a67e90d9f1106180a8d60be5f3bc259781726f56410b00",
        label_columns=("measured log solubility in mols per litre",), aliases=("delaney",),
        download_url=_DEEPCHEM + "fbe3b911a94a6eb8c84c1a9e7ac67a472c49ea80/datasets/delaney-processed.csv",
        download_sha256="8c06a76f0c6487d29ab0f903e6a7a7139f189ab3c1178f159c8be8964602f189",
    ),
    DatasetInfo(
        "FreeSolv", "moleculenet/SAMPL.csv.gz", REGRESSION, "rmse", "ogbg-molfreesolv", _S3 + "SAMPL.csv",
        "658dce87944365ad8fc03b8b137e561320deb64316bda57fe74a5069d0859b13",
        label_columns=("expt",), aliases=("sampl",),
        download_url=_GLAMBARD + "FreeSolv_SAMPL.csv",
        download_sha256="ab5895d914ee87cb563bd7b9611e869527bba45bec6b014d34dc495a0f9dcb72",
    ),
    DatasetInfo(
        "Lipophilicity", "moleculenet/Lipophilicity.csv.gz", REGRESSION, "rmse", "ogbg-mollipo",
        _S3 + "Lipophilicity.csv", "b63bb8a9fbb8c68bc62949e63d841a59c2e78571a3f0087c47b83f484ee45468",
        label_columns=("exp",), aliases=("lipo",),
        download_url=_GLAMBARD + "Lipophilicity.csv",
        download_sha256="aed41590cb30609d51d8e08ad3ff06495a76e80e211358801f596b10da69bacd",
    ),
)


def get_dataset_info(name: str) -> DatasetInfo:
    """The registry row for ``name`` (``"bbbp"``, ``"BBBP"`` and ``"ogbg-molbbbp"`` all work).

    Raises:
        InputError: listing the known names.
    """
    for info in DATASETS:
        if name.strip().lower() in info.names():
            return info
    raise InputError(f"unknown dataset {name!r}; choose one of: {', '.join(i.name for i in DATASETS)}")


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
    name: str, data_dir: str | Path | None = None, download: bool = False, cache_dir: str | Path | None = None
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
            return fetch(info.download_url, downloaded, info.download_sha256)
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
    path = dataset_path(info.name, data_dir, download, cache_dir)
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
