"""benchmarks.linear_member: a finished auto run re-blended with a linear member on the frozen embedding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import linear_member
from molft.data.registry import load_dataset
from molft.errors import InputError
from molft.finetuning.train import finetune


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory: pytest.TempPathFactory, small_assay: Path, tiny_pretrained: Path) -> Path:
    out = tmp_path_factory.mktemp("linear_member") / "model"
    finetune(small_assay, ["pIC50"], out, pretrained=tiny_pretrained, max_epochs=2, progress=False)
    return out


def test_the_runs_own_choice_is_reproduced_and_the_linear_member_is_offered(auto_run: Path) -> None:
    record = linear_member.rechoose(auto_run)
    recorded = json.loads((auto_run / "finetune.json").read_text())["model"]["weights"]
    assert record["recorded members"]["weights"] == recorded
    assert set(record["with linear"]["weights"]) <= {"gnn", "forest", "boosted", "linear"}
    assert record["metric"] == "rmse" and record["linear alone"]["test"] > 0
    assert linear_member.rechoose(auto_run) == record  # nothing random


def test_the_report_counts_runs_per_encoder(auto_run: Path, tmp_path: Path) -> None:
    linear_member.main([str(auto_run), str(auto_run), "--results-dir", str(tmp_path)])
    markdown = (tmp_path / "linear_member.md").read_text()
    assert "| encoder | dataset | labels | runs |" in markdown
    assert "| encoder | pIC50 | 192 | 2 | rmse |" in markdown


def test_a_run_of_one_member_is_refused(small_assay: Path, tiny_pretrained: Path, tmp_path: Path) -> None:
    out = tmp_path / "gnn-only"
    finetune(small_assay, ["pIC50"], out, pretrained=tiny_pretrained, model="gnn", max_epochs=1, progress=False)
    with pytest.raises(InputError, match="not an --model auto run"):
        linear_member.rechoose(out)


def test_a_saved_grid_cell_gets_a_linear_member_fitted_on_its_nested_subset(tmp_path: Path, tiny_data_dir: Path,
                                                                            tiny_pretrained: Path,
                                                                            save_auto_cell) -> None:
    data = load_dataset("bbbp", tiny_data_dir)
    cell = save_auto_cell(tmp_path / "bbbp-auto-gin-x-100-0.npz", data, np.random.default_rng(0))
    record = linear_member.rechoose_cell(cell, str(tiny_pretrained), data_dir=tiny_data_dir, cache={})
    assert record["dataset"] == data.info.name and record["n_labels"] == 100 and record["seed"] == 0
    assert record["metric"] == "roc_auc" and 0 <= record["linear alone"]["test"] <= 1
    assert set(record["with linear"]["weights"]) <= {"gnn", "forest", "linear"}
    with pytest.raises(InputError, match="not a saved label-efficiency cell"):
        linear_member.rechoose_cell(tmp_path / "notes.npz", str(tiny_pretrained), data_dir=tiny_data_dir, cache={})


def test_cross_validated_score_tells_a_feature_from_noise() -> None:
    from benchmarks.linear_member import cross_validated_score

    rng = np.random.default_rng(0)
    signal = rng.normal(size=(80, 3))
    labels = (signal[:, 0] > 0).astype(float)
    assert cross_validated_score(signal, labels, 1.0, "classification") > 0.9
    assert cross_validated_score(rng.normal(size=(80, 3)), labels, 1.0, "classification") < 0.75
    values = signal[:, 1] * 2.0
    assert cross_validated_score(signal, values, 0.01, "regression") < 0.1  # RMSE
