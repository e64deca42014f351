"""Shared test data: RDKit's bundled ChEMBL assay always; ../shared/data when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molft.checkpoints import save_encoder
from molft.data.builtin import builtin_assay
from molft.models.encoder import EncoderConfig, GINEncoder
from molft.runtime import default_data_dir, seed_everything


@pytest.fixture(scope="session")
def assay() -> pd.DataFrame:
    """The built-in assay: 1,017 molecules with smiles, chembl_id, pIC50."""
    return builtin_assay()


@pytest.fixture(scope="session")
def assay_csv(tmp_path_factory: pytest.TempPathFactory, assay: pd.DataFrame) -> Path:
    path = tmp_path_factory.mktemp("assay") / "assay.csv"
    assay.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def small_assay(tmp_path_factory: pytest.TempPathFactory, assay: pd.DataFrame) -> Path:
    """240 molecules of the bundled assay, with two derived 0/1 tasks that have missing labels."""
    table = assay.iloc[:240].copy()
    table["active"] = (table["pIC50"] > table["pIC50"].median()).astype(float)
    table["potent"] = (table["pIC50"] > table["pIC50"].quantile(0.75)).astype(float)
    table.loc[table.index[::7], "active"] = np.nan
    table.loc[table.index[3::5], "potent"] = np.nan
    path = tmp_path_factory.mktemp("assay") / "small.csv"
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2 x 32 GIN saved as a pretrained encoder directory."""
    seed_everything(0)
    directory = tmp_path_factory.mktemp("pretrained") / "encoder"
    save_encoder(GINEncoder(EncoderConfig(num_layers=2, hidden_dim=32)), directory, extra={"objectives": ["test"]})
    return directory


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data directory; tests that need it are skipped where it is absent."""
    found = default_data_dir()
    if found is None or not found.is_dir():
        pytest.skip("no data directory (set MOLFT_DATA_DIR) - real-data check skipped")
    return found


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory, assay: pd.DataFrame) -> Path:
    """A data directory with 200-molecule stand-ins for BBBP (made-up 0/1 labels, both classes in
    every part of the scaffold split) and Lipophilicity (the bundled assay's pIC50), read through
    molft's registry like the real files."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "moleculenet").mkdir()
    table = assay.iloc[:200]
    labels = (np.arange(len(table)) % 3 == 0).astype(int)
    table.assign(p_np=labels)[["smiles", "p_np"]].to_csv(folder / "moleculenet" / "BBBP.csv.gz", index=False)
    table.rename(columns={"pIC50": "exp"})[["smiles", "exp"]].to_csv(
        folder / "moleculenet" / "Lipophilicity.csv.gz", index=False
    )
    return folder


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory):
    """Featurization caches go to a temporary folder, never to the user's ~/.cache/molft."""
    previous = os.environ.get("MOLFT_CACHE_DIR")
    os.environ["MOLFT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if previous is None:
        os.environ.pop("MOLFT_CACHE_DIR", None)
    else:
        os.environ["MOLFT_CACHE_DIR"] = previous


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models run fastest on one thread, and do not stall when other processes share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def save_auto_cell():
    """Writes a label-efficiency ``auto`` cell as ``benchmarks.label_efficiency`` saves one (``.npz``:
    ``<part>_rows`` and ``<part>_<member>``), with a forest and a noisier GNN member around the labels."""

    def save(path: Path, data, rng: np.random.Generator) -> Path:
        members = {}
        for part in ("valid", "test"):
            y = data.y[data.split[part]]
            members[f"{part}_rows"] = data.split[part]
            members[f"{part}_forest"] = (y + rng.normal(0, 0.8, y.shape)).astype(np.float32)
            members[f"{part}_gnn"] = (y + rng.normal(0, 1.5, y.shape)).astype(np.float32)
        np.savez(path, **members)
        return path

    return save
