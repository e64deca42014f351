"""The prepared GPU pretraining script, run end to end on CPU on a few hundred molecules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.gpu_pretrain import EXPORTED, main, train_time_limit
from molft.checkpoints import load_encoder

TINY = ["--num-layers", "2", "--hidden-dim", "32", "--batch-size", "64", "--workers", "1", "--loader-workers", "0"]


@pytest.fixture(scope="module")
def smiles_csv(tmp_path_factory, assay) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "mols.csv"
    assay[["smiles"]].head(200).to_csv(path, index=False)
    return path


def test_the_script_featurizes_computes_targets_trains_and_reports(smiles_csv, tmp_path, capsys):
    out = tmp_path / "out"
    main(["--corpus", str(smiles_csv), "--out", str(out), "--work", str(tmp_path / "work"), "--epochs", "1", *TINY])

    report = json.loads((out / "gpu_pretrain.json").read_text())
    assert sorted(report["files"]) == sorted([*EXPORTED, "gpu_pretrain.json", "gpu_pretrain.md"])
    assert all((out / name).is_file() for name in report["files"])  # 7 files: what a device call brings back
    assert report["molecules"] == {"read": 200, "featurized": 200, "rejected": 0}
    training = report["training"]
    assert (training["steps"], training["epochs"], training["stopped_by"]) == (4, 1, "epochs")  # 200 / 64 -> 4 steps
    assert training["graphs_seen"] == 200 and training["descriptor_columns"] == 97
    assert set(report["seconds"]) == {"featurize", "targets", "train", "train_loop", "export", "total"}
    assert report["command"].startswith("python -m benchmarks.gpu_pretrain --corpus")
    assert "| featurize |" in (out / "gpu_pretrain.md").read_text()
    assert "Training stopped by **epochs**" in capsys.readouterr().out

    encoder, config = load_encoder(out / "encoder")
    record = config["extra"]["pretraining"]
    assert encoder.config.num_layers == 2 and record["objectives"] == "descriptors:1,fingerprint:1"
    assert record["objective_options"]["descriptors"]["feature"] == "rdkit2d_fast"
    # the targets were computed once, by the targets stage, and pretraining read them from the cache
    cached = sorted(p.name for p in (tmp_path / "work" / "featurized" / "mols.graphs" / "features").glob("*.npy"))
    assert len(cached) == 2


def test_a_spent_budget_still_trains_one_step_and_says_the_time_limit_ended_it(smiles_csv, tmp_path):
    out = tmp_path / "out"
    main(["--corpus", str(smiles_csv), "--out", str(out), "--work", str(tmp_path / "work"), "--budget", "0", *TINY])

    training = json.loads((out / "gpu_pretrain.json").read_text())["training"]
    assert (training["stopped_by"], training["steps"], training["time_limit_s"]) == ("time_limit", 1, 0)
    assert load_encoder(out / "encoder")[1]["extra"]["pretraining"]["stopped_by"] == "time_limit"
    with pytest.raises(SystemExit, match="already holds an encoder"):
        main(["--corpus", str(smiles_csv), "--out", str(out), "--work", str(tmp_path / "other"), *TINY])


def test_training_gets_what_the_budget_has_left():
    assert train_time_limit(510, 20, 130.5) == 359.5
    assert train_time_limit(120, 20, 150) == 0.0


def test_a_run_can_start_from_a_pretrained_encoder(smiles_csv, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    main(["--corpus", str(smiles_csv), "--out", str(first), "--work", str(tmp_path / "w1"), "--budget", "0", *TINY])
    main(["--corpus", str(smiles_csv), "--out", str(second), "--work", str(tmp_path / "w2"), "--budget", "0",
          "--init", str(first / "encoder"), *TINY])

    assert json.loads((second / "gpu_pretrain.json").read_text())["settings"]["init"] == str(first / "encoder")
    assert f"from the encoder `{first / 'encoder'}`" in (second / "gpu_pretrain.md").read_text()
    record = load_encoder(second / "encoder")[1]["extra"]["pretraining"]
    assert Path(record["init"]["path"]).resolve() == (first / "encoder").resolve()  # both stages recorded
    assert record["init"]["pretraining"]["objectives"] == "descriptors:1,fingerprint:1"
