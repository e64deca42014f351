"""The built-in assay: a real ChEMBL pIC50 set that ships inside RDKit's wheel.

CHEMBL2321810 (RDKit ``Contrib/FreeWilson/data``): 1,017 molecules with measured pIC50, a
typical small proprietary-assay-sized set. molft uses it for its demo and its tests.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rdkit import RDConfig

from molft.errors import InputError
from molft.io import atomic_write

BUILTIN_ASSAY = "chembl2321810"
BUILTIN_TARGET = "pIC50"


def builtin_assay_dir() -> Path:
    """Where RDKit keeps the FreeWilson example data."""
    return Path(RDConfig.RDContribDir) / "FreeWilson" / "data"


def builtin_assay() -> pd.DataFrame:
    """The built-in assay as a table: ``smiles``, ``chembl_id``, ``pIC50`` (one row per molecule).

    Raises:
        InputError: if this RDKit installation lacks its Contrib data.
    """
    folder = builtin_assay_dir()
    smiles_file, activity_file = folder / "CHEMBL2321810.smi", folder / "CHEMBL2321810_act.csv"
    if not smiles_file.is_file() or not activity_file.is_file():
        raise InputError(f"RDKit's bundled assay is missing from {folder}; reinstall rdkit from PyPI")
    structures = pd.read_csv(smiles_file, sep=r"\s+", header=None, names=["smiles", "chembl_id"], dtype=str)
    activity = pd.read_csv(activity_file, dtype={"Name": str}).rename(columns={"Name": "chembl_id", "Act": BUILTIN_TARGET})
    table = structures.merge(activity, on="chembl_id", how="left", validate="one_to_one")
    return table[["smiles", "chembl_id", BUILTIN_TARGET]]


def write_builtin_assay(path: str | Path) -> Path:
    """Write the built-in assay as a CSV (creating parent folders) and return its path."""
    path = Path(path)
    with atomic_write(path) as tmp:
        builtin_assay().to_csv(tmp, index=False)
    return path
