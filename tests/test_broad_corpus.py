"""The broad pretraining corpus: sources pooled, the probe tasks' molecules left out, one SMILES per molecule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from benchmarks.broad_corpus import build_corpus, smiles_column
from molft.errors import InputError


def test_the_corpus_keeps_each_molecule_once_and_none_of_the_probe_tasks():
    toxicology = ["CCO", "c1ccccc1O", "not a molecule", "CC(=O)[O-].[Na+]"]
    chembl = ["OCC", "CC(=O)O", "c1ccccc1N"]  # ethanol again (another SMILES), acetic acid (its salt came first)
    kept = build_corpus([toxicology, chembl], excluded=["Oc1ccccc1"], workers=1)  # phenol is a probe molecule
    assert kept == ["CCO", "CC(=O)[O-].[Na+]", "c1ccccc1N"]


def test_smiles_column_reads_smiles_or_mol_and_says_when_there_is_neither(tmp_path: Path):
    pd.DataFrame({"mol": ["CCO", None], "y": [1, 0]}).to_csv(tmp_path / "bace.csv", index=False)
    assert smiles_column(tmp_path / "bace.csv") == ["CCO"]
    pd.DataFrame({"structure": ["CCO"]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(InputError, match="no 'smiles' or 'mol' column"):
        smiles_column(tmp_path / "other.csv")
