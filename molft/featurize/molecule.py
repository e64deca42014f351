"""Molecule-level features as data: fingerprints and descriptors, one vector per molecule.

A feature is a small frozen dataclass that knows its name, its length (``len(feature)``), a
``key`` that names its exact setting (cache files are keyed by it), and how to compute one row
from an RDKit molecule. The named presets are in :data:`MOLECULE_FEATURES`; a spec string picks
one, with an optional size (``"morgan_count"``, ``"morgan_count:1024"``).

* ``morgan_bits``: Morgan (ECFP4-like) bits, radius 2, 2,048 bits (RDKit ``rdFingerprintGenerator``).
* ``morgan_count``: the same environments counted (uint8, counts above 255 saturate).
* ``rdkit2d``: every descriptor of ``rdkit.Chem.Descriptors._descList`` (217 in RDKit 2026.09),
  in that order; a descriptor that raises, is not finite, or exceeds float32 becomes NaN.
* ``rdkit2d_fast``: the 97 of them that cost least, for descriptor targets on millions of molecules:
  about a fifth of ``rdkit2d``'s time per molecule. What it leaves out, and why, is data
  (:data:`RDKIT2D_FAST_LEFT_OUT`); the costs are measured by ``python -m benchmarks.descriptor_cost``.

:func:`molecule_features` computes several features for many SMILES in one parse per molecule,
over a pool of processes (the result never depends on the worker count). :class:`FeatureScaler`
standardizes continuous features on a training split (clipped to the split's quantiles first, so a
heavy-tailed descriptor such as ``Ipc`` cannot dominate) and is saved as JSON.

RDKit + NumPy only: no torch.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import Descriptors, rdFingerprintGenerator

from molft.errors import InputError

_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class MorganFingerprint:
    """Morgan fingerprint, as bits (0/1) or counts, radius ``radius``, ``size`` positions."""

    radius: int = 2
    size: int = 2048
    counts: bool = False

    @property
    def name(self) -> str:
        return "morgan_count" if self.counts else "morgan_bits"

    @property
    def key(self) -> str:
        """The exact setting, for cache names: ``morgan_count-r2-2048``."""
        return f"{self.name}-r{self.radius}-{self.size}"

    dtype = np.dtype(np.uint8)
    continuous = False  # bits and small counts need no scaling for trees; a GNN head scales them

    def __len__(self) -> int:
        return self.size

    def columns(self) -> list[str]:
        return [f"{self.name}_{i}" for i in range(self.size)]

    def generator(self) -> Any:
        return rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.size)

    def compute(self, mol: Chem.Mol, generator: Any) -> np.ndarray:
        if self.counts:
            return np.minimum(generator.GetCountFingerprintAsNumPy(mol), 255).astype(np.uint8)
        return generator.GetFingerprintAsNumPy(mol).astype(np.uint8)


#: the RDKit 2D descriptors, by name, in RDKit's order
RDKIT2D_NAMES: tuple[str, ...] = tuple(name for name, _ in Descriptors._descList)


@dataclass(frozen=True)
class RDKitDescriptors:
    """RDKit 2D descriptors (``names``: a subset of :data:`RDKIT2D_NAMES`, default all), float32."""

    names: tuple[str, ...] = RDKIT2D_NAMES

    def __post_init__(self) -> None:
        unknown = [name for name in self.names if name not in _DESCRIPTOR_FUNCTIONS]
        if unknown:
            raise InputError(f"unknown RDKit descriptor(s): {', '.join(unknown)}; see molft.featurize.molecule.RDKIT2D_NAMES")

    name = "rdkit2d"
    dtype = np.dtype(np.float32)
    continuous = True

    @property
    def key(self) -> str:
        """``rdkit2d-<rdkit version>-<count>``, plus a digest of the names for a subset."""
        from hashlib import sha256

        key = f"rdkit2d-{rdBase.rdkitVersion}-{len(self.names)}"
        if self.names != RDKIT2D_NAMES:
            key += "-" + sha256(",".join(self.names).encode()).hexdigest()[:8]
        return key

    def __len__(self) -> int:
        return len(self.names)

    def columns(self) -> list[str]:
        return list(self.names)

    def generator(self) -> Any:
        return [_DESCRIPTOR_FUNCTIONS[name] for name in self.names]

    def compute(self, mol: Chem.Mol, generator: Any) -> np.ndarray:
        row = np.full(len(generator), np.nan, dtype=np.float64)
        for i, function in enumerate(generator):
            try:
                row[i] = float(function(mol))
            except Exception:  # noqa: BLE001 - RDKit descriptors raise assorted errors on odd molecules
                continue
        row[~np.isfinite(row) | (np.abs(row) > _FLOAT32_MAX)] = np.nan
        return row.astype(np.float32)


_DESCRIPTOR_FUNCTIONS: dict[str, Callable[[Chem.Mol], float]] = dict(Descriptors._descList)
# The four EState summaries each recompute the EState indices (``force=1``); with ``force=0`` the
# first computes them and caches them on the molecule, the other three reuse them: the same values.
for _name in ("MaxAbsEStateIndex", "MaxEStateIndex", "MinAbsEStateIndex", "MinEStateIndex"):
    _DESCRIPTOR_FUNCTIONS[_name] = functools.partial(_DESCRIPTOR_FUNCTIONS[_name], force=0)

#: the descriptors ``rdkit2d_fast`` leaves out, by reason (per-molecule costs on ZINC:
#: benchmarks/results/descriptor_cost.md; together about four fifths of ``rdkit2d``'s time)
RDKIT2D_FAST_LEFT_OUT: dict[str, tuple[str, ...]] = {
    "costly composite score; its parts (MolWt, MolLogP, HBA, HBD, TPSA, rotatable bonds, aromatic rings) are kept": (
        "qed",
    ),
    "costly whole-graph indices: Burden-matrix eigenvalues, graph complexity, information content, spatial score": (
        "BCUT2D_MWHI", "BCUT2D_MWLOW", "BCUT2D_CHGHI", "BCUT2D_CHGLO", "BCUT2D_LOGPHI", "BCUT2D_LOGPLOW",
        "BCUT2D_MRHI", "BCUT2D_MRLOW", "BertzCT", "Ipc", "AvgIpc", "SPS",
    ),
    "connectivity and shape indices enumerated path by path in Python (size and branching of the graph itself)": (
        "Chi0", "Chi0n", "Chi0v", "Chi1", "Chi1n", "Chi1v", "Chi2n", "Chi2v", "Chi3n", "Chi3v", "Chi4n", "Chi4v",
        "Kappa1", "Kappa2", "Kappa3", "Phi", "BalabanJ",
    ),
    "substructure counts and Morgan densities: the fingerprint objective predicts the substructures": (
        "FpDensityMorgan1", "FpDensityMorgan2", "FpDensityMorgan3", *(n for n in RDKIT2D_NAMES if n.startswith("fr_")),
    ),
    "per-atom Python loops that repeat MolWt (valence electrons) or are 0 on ZINC (radicals)": (
        "NumValenceElectrons", "NumRadicalElectrons",
    ),
}
#: the descriptors of ``rdkit2d_fast``, in RDKit's order
RDKIT2D_FAST_NAMES: tuple[str, ...] = tuple(
    name for name in RDKIT2D_NAMES if not any(name in names for names in RDKIT2D_FAST_LEFT_OUT.values())
)

MoleculeFeature = MorganFingerprint | RDKitDescriptors

#: preset name -> feature
MOLECULE_FEATURES: dict[str, MoleculeFeature] = {
    "morgan_bits": MorganFingerprint(),
    "morgan_count": MorganFingerprint(counts=True),
    "rdkit2d": RDKitDescriptors(),
    "rdkit2d_fast": RDKitDescriptors(names=RDKIT2D_FAST_NAMES),
}


def get_molecule_feature(spec: str | MoleculeFeature) -> MoleculeFeature:
    """The feature named by ``spec``: a preset (``"rdkit2d"``), a Morgan preset with a size
    (``"morgan_count:1024"``), or a feature object (returned as is).

    Raises:
        InputError: an unknown name or a bad size, listing the presets.
    """
    if not isinstance(spec, str):
        return spec
    name, _, size = spec.strip().partition(":")
    if name not in MOLECULE_FEATURES:
        raise InputError(f"unknown molecule feature {name!r}; choose from: {', '.join(MOLECULE_FEATURES)}")
    feature = MOLECULE_FEATURES[name]
    if not size:
        return feature
    if not isinstance(feature, MorganFingerprint) or not size.isdigit() or int(size) < 1:
        raise InputError(f"molecule feature {spec!r}: only Morgan features take a size, a positive integer "
                         "('morgan_count:1024')")
    return MorganFingerprint(radius=feature.radius, size=int(size), counts=feature.counts)


def parse_molecule_features(spec: str | Sequence[str | MoleculeFeature]) -> list[MoleculeFeature]:
    """``"morgan_count,rdkit2d"`` (or a list) -> features, each named once.

    Raises:
        InputError: an unknown or repeated feature, or none at all.
    """
    parts = [p for p in (spec.split(",") if isinstance(spec, str) else spec) if not isinstance(p, str) or p.strip()]
    features = [get_molecule_feature(p) for p in parts]
    if not features:
        raise InputError(f"no molecule feature given; choose from: {', '.join(MOLECULE_FEATURES)}")
    keys = [f.key for f in features]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise InputError(f"molecule feature(s) given twice: {', '.join(repeated)}")
    return features


@dataclass
class MoleculeFeatures:
    """What :func:`molecule_features` computed.

    Attributes:
        arrays: feature spec as given (``"morgan_count:1024"``; a feature object: its name, or its
            key when two features share a name) ->
            [num_molecules, len(feature)] array (``feature.dtype``).
        failed: (index, SMILES) of each molecule RDKit could not parse; its rows are 0 (NaN for
            continuous features).
    """

    arrays: dict[str, np.ndarray]
    failed: list[tuple[int, str]] = field(default_factory=list)


def _compute_chunk(features: Sequence[MoleculeFeature], smiles: Sequence[str]) -> tuple[list[np.ndarray], list[int]]:
    generators = [feature.generator() for feature in features]
    out = [
        np.full((len(smiles), len(f)), np.nan if f.continuous else 0, dtype=f.dtype) for f in features
    ]
    failed = []
    with rdBase.BlockLogs():
        for i, text in enumerate(smiles):
            mol = Chem.MolFromSmiles(text) if isinstance(text, str) else None
            if mol is None:
                failed.append(i)
                continue
            for array, feature, generator in zip(out, features, generators):
                array[i] = feature.compute(mol, generator)
    return out, failed


_WORKER_FEATURES: list[MoleculeFeature] = []


def _init_worker(features: list[MoleculeFeature]) -> None:
    global _WORKER_FEATURES
    _WORKER_FEATURES = features


def _chunk_in_worker(smiles: list[str]) -> tuple[list[np.ndarray], list[int]]:
    return _compute_chunk(_WORKER_FEATURES, smiles)


def molecule_features(
    smiles: Sequence[str],
    features: str | Sequence[str | MoleculeFeature],
    *,
    workers: int = 1,
    progress: bool = False,
    chunk_size: int = 256,
) -> MoleculeFeatures:
    """Compute molecule-level features for many SMILES (one parse per molecule for all of them).

    Args:
        smiles: the molecules.
        features: a spec (``"morgan_count,rdkit2d"``) or a list of names / feature objects.
        workers: processes to use; the result is the same for any number.
        progress: show a progress bar (on stderr, only on a terminal).
        chunk_size: molecules per task sent to a worker.

    Example:
        >>> out = molecule_features(["CCO", "c1ccccc1"], "morgan_bits,rdkit2d")
        >>> out.arrays["morgan_bits"].shape, out.arrays["rdkit2d"].shape[0]
        ((2, 2048), 2)
    """
    from tqdm.auto import tqdm

    chosen = parse_molecule_features(features)
    given = features.split(",") if isinstance(features, str) else list(features)
    names = [g.strip() if isinstance(g, str) else g.name for g in given if not isinstance(g, str) or g.strip()]
    names = [feature.key if names.count(name) > 1 else name for name, feature in zip(names, chosen)]
    smiles = list(smiles)
    chunks = [smiles[i : i + chunk_size] for i in range(0, len(smiles), chunk_size)]
    parts: list[list[np.ndarray]] = []
    failed: list[tuple[int, str]] = []
    pool = None
    if workers > 1 and len(chunks) > 1:
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pool = context.Pool(min(workers, len(chunks)), initializer=_init_worker, initargs=(chosen,))
    try:
        outputs = pool.imap(_chunk_in_worker, chunks) if pool is not None else (
            _compute_chunk(chosen, chunk) for chunk in chunks
        )
        with tqdm(total=len(smiles), unit="mol", disable=None if progress else True, desc="molecule features") as bar:
            offset = 0
            for chunk, (arrays, bad) in zip(chunks, outputs):
                parts.append(arrays)
                failed.extend((offset + i, chunk[i]) for i in bad)
                offset += len(chunk)
                bar.update(len(chunk))
    finally:
        if pool is not None:
            pool.terminate()
    arrays = {}
    for j, feature in enumerate(chosen):
        empty = np.zeros((0, len(feature)), dtype=feature.dtype)
        arrays[names[j]] = np.concatenate([p[j] for p in parts]) if parts else empty
    return MoleculeFeatures(arrays, failed)


@dataclass(frozen=True)
class FeatureScaler:
    """Standardize features with statistics of a training split; JSON round trip.

    Each column is clipped to the training split's ``[quantile, 1 - quantile]`` range, then
    standardized with the clipped values' mean and std (std 0 -> 1), then clipped to ``±clip``.
    Missing values (NaN) stay NaN, or become ``fill`` (0 = the training mean) when asked.
    """

    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    clip: float = 5.0

    @classmethod
    def fit(cls, values: np.ndarray, *, quantile: float = 0.005, clip: float = 5.0) -> FeatureScaler:
        """Statistics of ``values`` ([num_molecules, num_features]; NaN = missing, ignored).

        A column with no finite value gets mean 0, std 1 (so it scales to NaN / ``fill``).
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or len(values) == 0:
            raise InputError(f"cannot fit a feature scaler on an array of shape {values.shape}; need molecules x features")
        finite = np.isfinite(values)
        masked = np.where(finite, values, np.nan)
        empty = ~finite.any(axis=0)
        filled = np.where(empty[None, :], 0.0, masked)  # keep nan-functions quiet on empty columns
        low = np.nanquantile(filled, quantile, axis=0)
        high = np.nanquantile(filled, 1 - quantile, axis=0)
        clipped = np.clip(filled, low, high)
        mean = np.nanmean(clipped, axis=0)
        std = np.nanstd(clipped, axis=0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        mean = np.where(empty, 0.0, mean)
        return cls(low=low, high=high, mean=mean, std=std, clip=float(clip))

    def transform(self, values: np.ndarray, *, fill: float | None = None) -> np.ndarray:
        """Scaled float32 copy of ``values``; NaN stays NaN unless ``fill`` is given."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.mean):
            raise InputError(f"feature scaler fitted on {len(self.mean)} features, given an array of shape {values.shape}")
        values = np.where(np.isfinite(values), values, np.nan)
        scaled = np.clip((np.clip(values, self.low, self.high) - self.mean) / self.std, -self.clip, self.clip)
        if fill is not None:
            scaled = np.where(np.isnan(scaled), fill, scaled)
        return scaled.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low.tolist(), "high": self.high.tolist(), "mean": self.mean.tolist(),
                "std": self.std.tolist(), "clip": self.clip}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureScaler:
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in ("low", "high", "mean", "std")}
        if len({a.shape for a in arrays.values()}) != 1:
            raise InputError("a feature scaler's low, high, mean and std differ in length")
        return cls(**arrays, clip=float(data.get("clip", 5.0)))


@dataclass(frozen=True)
class HeadFeatures:
    """Molecule features as a model input: several features side by side, each made comparable.

    Bits stay 0/1, counts become ``log1p(count)``, and continuous features (descriptors) are
    scaled by a :class:`FeatureScaler` fitted on the training split, missing values filled with
    0 (the training mean). Saved as JSON (:meth:`to_dict`).

    Attributes:
        specs: the feature specs, in column order (``("morgan_count", "rdkit2d")``).
        scalers: spec -> scaler of each continuous feature.
    """

    specs: tuple[str, ...]
    scalers: dict[str, FeatureScaler]

    @classmethod
    def fit(cls, arrays: dict[str, np.ndarray], specs: Sequence[str], train: np.ndarray) -> HeadFeatures:
        """Fit on the rows ``train`` of ``arrays`` (spec -> [num_molecules, len(feature)])."""
        chosen = {spec: get_molecule_feature(spec) for spec in specs}
        scalers = {spec: FeatureScaler.fit(arrays[spec][train]) for spec, f in chosen.items() if f.continuous}
        return cls(tuple(specs), scalers)

    def __len__(self) -> int:
        return sum(len(get_molecule_feature(spec)) for spec in self.specs)

    def transform(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """[num_molecules, len(self)] float32 model inputs."""
        parts = []
        for spec in self.specs:
            feature, values = get_molecule_feature(spec), arrays[spec]
            if spec in self.scalers:
                parts.append(self.scalers[spec].transform(values, fill=0.0))
            elif isinstance(feature, MorganFingerprint) and feature.counts:
                parts.append(np.log1p(values.astype(np.float32)))
            else:
                parts.append(values.astype(np.float32))
        return np.concatenate(parts, axis=1)

    def to_dict(self) -> dict[str, Any]:
        return {"specs": list(self.specs), "scalers": {k: v.to_dict() for k, v in self.scalers.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadFeatures:
        specs = tuple(str(s) for s in data["specs"])
        parse_molecule_features(list(specs))  # known features only
        return cls(specs, {k: FeatureScaler.from_dict(v) for k, v in data.get("scalers", {}).items()})
