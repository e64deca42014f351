"""Shared test data: RDKit's bundled ChEMBL assay always; ../shared/data when present."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from molft.data.builtin import builtin_assay
from molft.runtime import default_data_dir


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
def data_dir() -> Path:
    """The shared data directory; tests that need it are skipped where it is absent."""
    found = default_data_dir()
    if found is None or not found.is_dir():
        pytest.skip("no data directory (set MOLFT_DATA_DIR) - real-data check skipped")
    return found


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Tiny models run fastest on one thread, and do not stall when other processes share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
