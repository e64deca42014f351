"""Test-set hygiene: keep the test molecules of molft's benchmarks out of pretraining corpora.

A corpus that holds a benchmark's test molecules, with labels (ChEMBL for the ``supervised``
objective) or even without, lets pretraining see the test set. This module finds them:

* :func:`identity_key`: what "the same molecule" means here, the **connectivity block** (first 14
  characters) of the standard InChIKey (``Chem.MolToInchiKey``) of the molecule's **neutral
  parent**: its largest fragment (``rdMolStandardize.LargestFragmentChooser``), neutralized where
  it can be (``rdMolStandardize.Uncharger``), as ChEMBL's parent compounds are. A 2D GNN learns
  from the graph, so a stereoisomer, an isotopologue, a protonation or charge state, a tautomer
  InChI treats as mobile-H, or a salt of a test molecule (``CCN.Cl`` for ``CCN``) is still leakage:
  the full InChIKey misses every one of them (its second block is stereo and isotopes, its last
  letter the protonation), and the first block alone misses salts and charges InChI does not
  normalize (a sulfonamide anion ``S(=O)(=O)[N-]``). The price is a few corpus molecules removed that
  differ from a test molecule only in stereo, charge or counterion, which costs a corpus nothing.
  Molecules RDKit cannot parse, or that have no InChI (dummy atoms ``*``), have no key: they are
  never counted as test molecules.
* :func:`benchmark_test_keys`: the keys of the test split of every registered benchmark dataset
  (:data:`molft.data.catalog.DATASETS`) found in the data directory, with the split the benchmarks
  use. ``benchmarks/label_efficiency.py`` and ``benchmarks/moleculenet_hu2020.py`` (both of its
  protocols, ``hu2020`` and ``molft``) load every dataset through ``prepare_dataset``, i.e.
  :func:`molft.data.registry.load_dataset` with the ``"scaffold"`` split (Hu et al. 2020 / OGB)
  and the ``ogb`` vocabulary; ``hu2020`` is a fine-tuning protocol, not another split. The
  label-efficiency benchmark can also be run with ``--split random`` (seed 0): pass
  ``split=("scaffold", "random")`` to cover that too. Keys are computed for the test molecules
  only and cached as JSON under ``<cache>/hygiene/`` (``molft.runtime.default_cache_dir``), one file
  per dataset, keyed by the data file's sha256, the split, the key kind and the RDKit version.
* :func:`identity_keys`, :func:`filter_corpus`, :func:`find_test_molecules`: the keys of a corpus
  (over several processes, like :func:`molft.featurize.molecule.molecule_features`) and which of
  its molecules to keep.

No torch here (though ``molft.pretraining``'s ``__init__`` imports the loop, and so torch). A
key-cache hit reads JSON only; a miss goes through ``load_dataset`` (the one implementation of the
benchmarks' splits, which builds torch tensors and caches its graphs).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rdkit
from rdkit import Chem, rdBase
from rdkit.Chem.MolStandardize import rdMolStandardize

from molft.data.catalog import get_dataset_info
from molft.data.featurized import file_sha256
from molft.errors import InputError
from molft.io import write_json_atomic
from molft.runtime import default_cache_dir, default_data_dir

logger = logging.getLogger(__name__)

#: the kind of identity key :func:`identity_key` computes (named in cache files and run records)
KEY = "inchikey14-neutral-parent"
#: the splits molft's reported benchmarks evaluate on
SPLITS = ("scaffold",)
CACHE_VERSION = 1
_CHOOSER = rdMolStandardize.LargestFragmentChooser()
_UNCHARGER = rdMolStandardize.Uncharger()


def identity_key(smiles: str) -> str | None:
    """The molecule's identity key: the first InChIKey block of its neutralized largest fragment.

    Returns:
        14 upper-case letters, or None when RDKit cannot parse ``smiles`` or makes no InChI of it.

    Example:
        >>> identity_key("C[C@H](N)C(=O)O") == identity_key("CC([NH3+])C(=O)[O-]") == identity_key("CC(N)C(=O)O.Cl")
        True
    """
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
        if mol is None or mol.GetNumAtoms() == 0:
            return None
        try:
            if len(Chem.GetMolFrags(mol)) > 1:
                mol = _CHOOSER.choose(mol)
            if any(atom.GetFormalCharge() for atom in mol.GetAtoms()):
                mol = _UNCHARGER.uncharge(mol)
            key = Chem.MolToInchiKey(mol)
        except (ValueError, RuntimeError):
            return None
    return key[:14] if len(key) >= 14 else None


def _keys_of_chunk(chunk: list[str]) -> list[str | None]:
    return [identity_key(s) for s in chunk]


def identity_keys(
    smiles: Sequence[str], *, workers: int = 1, progress: bool = False, chunk_size: int = 1024
) -> list[str | None]:
    """:func:`identity_key` of every SMILES, in order, over ``workers`` processes (same result).

    Example:
        >>> identity_keys(["CCO", "not a molecule"])
        ['LFQSCWFLJHTTHZ', None]
    """
    from tqdm.auto import tqdm

    smiles = list(smiles)
    chunks = [smiles[i : i + chunk_size] for i in range(0, len(smiles), chunk_size)]
    pool = None
    if workers > 1 and len(chunks) > 1:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pool = context.Pool(min(workers, len(chunks)))
    keys: list[str | None] = []
    try:
        outputs = pool.imap(_keys_of_chunk, chunks) if pool is not None else map(_keys_of_chunk, chunks)
        with tqdm(total=len(smiles), unit="mol", disable=None if progress else True, desc="identity keys") as bar:
            for chunk, chunk_keys in zip(chunks, outputs):
                keys.extend(chunk_keys)
                bar.update(len(chunk))
    finally:
        if pool is not None:
            pool.terminate()
    return keys


def find_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The data directory (``data_dir``, else ``$MOLFT_DATA_DIR``, else ``../shared/data``) if it
    exists, else None."""
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    return folder if folder is not None and folder.is_dir() else None


def _splits(split: str | Sequence[str]) -> tuple[str, ...]:
    splits = (split,) if isinstance(split, str) else tuple(split)
    if not splits:
        raise InputError("no split given; the benchmarks use 'scaffold'")
    return splits


def _cache_path(cache_dir: Path, name: str, sha256: str, split: str) -> Path:
    """``<cache>/hygiene/<dataset>-<sha256[:16]>-<split>-<key kind>-rdkit<version>-v<n>.json``."""
    safe_split = split.replace(":", "-").replace("/", "-")
    name = f"{name.lower()}-{sha256[:16]}-{safe_split}-{KEY}-rdkit{rdkit.__version__}-v{CACHE_VERSION}.json"
    return cache_dir / "hygiene" / name


def _read_cached(path: Path, sha256: str) -> set[str] | None:
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
        if stored.get("sha256") == sha256 and stored.get("key") == KEY and isinstance(stored.get("keys"), list):
            return {str(k) for k in stored["keys"]}
    except (OSError, ValueError, AttributeError) as error:
        logger.warning("%s: unreadable cache file (%s); recomputing it", path, error)
    return None


def _test_keys(name: str, folder: Path, split: str, *, workers: int, cache: bool, cache_dir: Path) -> set[str]:
    """The keys of one dataset's test split, from the cache or computed (and cached)."""
    from molft.data.registry import dataset_path, load_dataset  # torch: only on a cache miss

    path = dataset_path(name, folder, cache_dir=cache_dir)
    sha256 = file_sha256(path)
    cached = _cache_path(cache_dir, name, sha256, split)
    if cache and (keys := _read_cached(cached, sha256)) is not None:
        return keys
    loaded = load_dataset(name, folder, split=split, workers=workers, cache=cache, cache_dir=cache_dir)
    test_smiles = [loaded.smiles[i] for i in loaded.split["test"].tolist()]
    found = identity_keys(test_smiles, workers=workers)
    keys = {k for k in found if k is not None}
    if cache:
        try:
            write_json_atomic(cached, {
                "dataset": loaded.info.name, "file": str(path), "sha256": sha256, "split": split, "key": KEY,
                "rdkit": rdkit.__version__, "test_molecules": len(test_smiles),
                "without_key": sum(k is None for k in found), "keys": sorted(keys),
            })
        except OSError as error:
            logger.warning("cannot write cache file %s (%s); going on without it", cached, error)
    return keys


def benchmark_test_keys(
    data_dir: str | Path | None = None,
    *,
    datasets: Sequence[str] | None = None,
    split: str | Sequence[str] = "scaffold",
    workers: int = 1,
    cache: bool = True,
    cache_dir: str | Path | None = None,
) -> dict[str, set[str]]:
    """The identity keys of the test molecules of every benchmark dataset in the data directory.

    Args:
        data_dir: the data directory (default: ``$MOLFT_DATA_DIR``, else ``../shared/data``).
        datasets: registry names to use (default: every registered dataset whose file is found).
        split: the split, or several (their test sets are joined): ``"scaffold"`` (what the
            benchmarks report), ``"random"`` (seed 0), ``"column:NAME"``.
        workers: processes for a cache miss (featurizing, scaffolds, keys); the result is the same.
        cache: read and write the JSON key cache (and ``load_dataset``'s caches).
        cache_dir: cache folder (default: ``$MOLFT_CACHE_DIR``, else ``~/.cache/molft``).

    Returns:
        dataset name (as in the registry, ``"BBBP"``) -> the keys of its test molecules.

    Raises:
        InputError: no data directory, or a named dataset whose file is not there.

    Example:
        >>> keys = benchmark_test_keys()                        # doctest: +SKIP
        >>> sorted(keys), len(keys["BBBP"])                     # doctest: +SKIP
        (['BACE', 'BBBP', ...], 203)
    """
    from molft.data.registry import list_datasets

    folder = find_data_dir(data_dir)
    if folder is None:
        raise InputError(
            f"no data directory ({data_dir or '$MOLFT_DATA_DIR unset, ../shared/data absent'}); "
            "cannot find the benchmarks' test molecules"
        )
    splits = _splits(split)
    cache_folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if datasets is None:
        names = [status.info.name for status in list_datasets(folder) if status.available]
    else:
        names = list(dict.fromkeys(get_dataset_info(name).name for name in datasets))
    out: dict[str, set[str]] = {}
    for name in names:
        keys: set[str] = set()
        for one in splits:
            keys |= _test_keys(name, folder, one, workers=workers, cache=cache, cache_dir=cache_folder)
        out[name] = keys
    return out


@dataclass(frozen=True)
class CorpusMatches:
    """Which corpus molecules are test molecules of which benchmark.

    Attributes:
        keep: [num_molecules] True for a molecule that is no benchmark's test molecule.
        per_dataset: dataset name -> how many corpus molecules are among its test molecules (a
            molecule in the test sets of two datasets counts in both).
    """

    keep: np.ndarray
    per_dataset: dict[str, int]

    @property
    def removed(self) -> int:
        """Corpus molecules that are some benchmark's test molecule (each counted once)."""
        return int((~self.keep).sum())

    def counts(self) -> dict[str, int]:
        """``per_dataset`` and ``"total"`` (= :attr:`removed`), for a run record."""
        return {**self.per_dataset, "total": self.removed}


def find_test_molecules(
    smiles: Sequence[str], test_keys: Mapping[str, set[str]], *, workers: int = 1, progress: bool = False
) -> CorpusMatches:
    """Match a corpus against :func:`benchmark_test_keys` (a molecule without a key is kept).

    Example:
        >>> found = find_test_molecules(["CCO", "C[C@H](N)O", "CCN"], {"X": {identity_key("CC(N)O")}})
        >>> found.keep.tolist(), found.counts()
        ([True, False, True], {'X': 1, 'total': 1})
    """
    keys = identity_keys(smiles, workers=workers, progress=progress)
    keep = np.ones(len(keys), dtype=bool)
    per_dataset: dict[str, int] = {}
    for name, dataset_keys in test_keys.items():
        hit = np.fromiter((k is not None and k in dataset_keys for k in keys), dtype=bool, count=len(keys))
        per_dataset[name] = int(hit.sum())
        keep &= ~hit
    return CorpusMatches(keep, per_dataset)


def filter_corpus(
    smiles: Sequence[str], keys: set[str] | Mapping[str, set[str]], *, workers: int = 1
) -> np.ndarray:
    """A keep-mask over ``smiles``: False for every molecule whose identity key is in ``keys``
    (one set, or :func:`benchmark_test_keys`'s dict of them).

    Example:
        >>> filter_corpus(["CCO", "CC[NH3+]", "CCN.Cl"], {identity_key("CCN")}).tolist()
        [True, False, False]
    """
    test_keys: Mapping[str, set[str]] = keys if isinstance(keys, Mapping) else {"keys": set(keys)}
    return find_test_molecules(smiles, test_keys, workers=workers).keep

