"""The built-in assay benchmark's report: rows per method and encoder, side by side."""

from __future__ import annotations

import pytest

from benchmarks.builtin_assay import base_method, main, row_label, to_markdown


def test_another_encoder_gets_rows_of_its_own_and_methods_without_one_keep_their_name():
    assert row_label("pretrained", "default") == "pretrained"
    assert row_label("pretrained", "attrmask-descfp-500k") == "pretrained:attrmask-descfp-500k"
    assert row_label("frozen", "attrmask") == "frozen:attrmask"
    assert row_label("pretrained", "/work/runs/enc/chembl-supdescfp") == "pretrained:chembl-supdescfp"
    assert [row_label(m, "attrmask") for m in ("scratch", "rf", "auto-scratch", "boosted")] == [
        "scratch", "rf", "auto-scratch", "boosted"]
    assert base_method("pretrained:attrmask-descfp-500k") == "pretrained" and base_method("rf") == "rf"


def test_molecule_features_in_the_gnn_head_label_only_the_methods_that_train_a_gnn():
    assert row_label("pretrained", "default", "rdkit2d") == "pretrained+rdkit2d"
    assert row_label("auto", "attrmask", "rdkit2d,morgan_count") == "auto:attrmask+rdkit2d+morgan_count"
    assert [row_label(m, "default", "rdkit2d") for m in ("frozen", "rf", "boosted", "auto-scratch")] == [
        "frozen", "rf", "boosted", "auto-scratch+rdkit2d"]
    assert base_method("auto:attrmask+rdkit2d") == "auto" and base_method("auto-scratch+rdkit2d") == "auto-scratch"


def test_a_head_pooling_labels_only_the_methods_that_train_a_gnn():
    assert row_label("pretrained", "default", pooling="mean+max") == "pretrained+pool-mean+max"
    assert row_label("auto", "attrmask", "rdkit2d", "mean+max") == "auto:attrmask+rdkit2d+pool-mean+max"
    assert [row_label(m, "default", pooling="mean+max") for m in ("frozen", "rf", "boosted", "pretrained")] == [
        "frozen", "rf", "boosted", "pretrained+pool-mean+max"]
    assert row_label("pretrained", "default", pooling="mean") == "pretrained"


def test_an_unknown_head_pooling_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--methods", "rf", "--pooling", "median", "--work", str(tmp_path), "--results-dir", str(tmp_path)])
    assert "unknown pooling 'median'" in capsys.readouterr().err and not any(tmp_path.iterdir())


def _row(method: str, rmse: float, **extra) -> dict:
    stats = {m: {"mean": rmse, "std": 0.01} for m in ("rmse", "mae", "r2")}
    return {"method": method, "seeds": [], "test": stats, "test_ensemble": {m: rmse for m in stats},
            "best_epochs": [3, 4], "wall_s": 10.0, **extra}


def test_the_table_names_each_rows_encoder_and_says_when_an_old_row_did_not_record_it():
    report = {"command": "python -m benchmarks.builtin_assay", "finished": "now", "threads": 1,
              "split_sizes": {"train": 8, "valid": 1, "test": 1}, "n_seeds": 2,
              "hardware": {"cpu": "test CPU", "cpu_count": 2, "torch_threads": 1, "gpu": None},
              "methods": [_row("pretrained", 0.6), _row("pretrained:attrmask-descfp-500k", 0.5,
                                                        encoder="gin-attrmask-descfp-zinc500k"),
                          _row("rf", 0.47, encoder=None)]}
    lines = to_markdown(report).splitlines()
    assert "| pretrained | not recorded | 0.600 ± 0.010 |" in "\n".join(lines)
    assert any(line.startswith("| pretrained:attrmask-descfp-500k | gin-attrmask-descfp-zinc500k | 0.500") for line in lines)
    assert any(line.startswith("| rf | — | 0.470") for line in lines)
