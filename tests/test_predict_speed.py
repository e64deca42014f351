"""benchmarks/predict_speed.py: the stage breakdown and the report, on a tiny model (no timing thresholds)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import predict_speed
from benchmarks.predict_speed import BREAKDOWN_ONLY, STAGES, stage_seconds
from molft.finetuning.train import finetune
from molft.models.encoder import EncoderConfig


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, assay: pd.DataFrame) -> Path:
    """A default (``auto``) model: 2 x 32 GIN from scratch, 1 epoch on 40 molecules, plus forest and boosted."""
    folder = tmp_path_factory.mktemp("predict-speed")
    assay.iloc[:40].to_csv(folder / "assay.csv", index=False)
    finetune(folder / "assay.csv", ["pIC50"], folder / "model", pretrained="none", max_epochs=1, progress=False,
             encoder_config=EncoderConfig(num_layers=2, hidden_dim=32), compare_rf=False)
    return folder / "model"


def test_stage_breakdown_times_every_stage(tiny_model: Path, assay: pd.DataFrame) -> None:
    smiles = [*assay["smiles"].iloc[100:119], "not a smiles"]
    out = stage_seconds(tiny_model, smiles)
    assert set(out["seconds"]) == set(STAGES)  # every stage, whatever the blend
    assert all(seconds >= 0 for seconds in out["seconds"].values())
    assert out["failures"] == 1
    runs = out["runs"]
    assert {"load model", "featurize graphs", "molecule features", "similarity"} <= set(runs)
    assert not set(BREAKDOWN_ONLY) & set(runs)
    weights = predict_speed.model_facts(tiny_model)["weights"]
    assert ("GNN members" in runs) == ("gnn" in weights)
    assert ("forest" in runs) == ("forest" in weights) and ("boosted" in runs) == ("boosted" in weights)
    assert out["total"] == pytest.approx(sum(out["seconds"][s] for s in runs))


def test_summary_and_report(tiny_model: Path, assay: pd.DataFrame, tmp_path: Path) -> None:
    smiles = assay["smiles"].iloc[200:220].tolist()
    table = tmp_path / "molecules.csv"
    pd.DataFrame({"smiles": smiles}).to_csv(table, index=False)
    in_process = predict_speed.in_process_seconds(tiny_model, table, tmp_path / "p.csv", workers=1)
    stages = stage_seconds(tiny_model, smiles)
    configs = {}
    for model in predict_speed.MODELS:  # the tiny model stands for both; one round, made-up command seconds
        configs[predict_speed.config_name(model, 1)] = {
            "model": model, "workers": 1, "command_s": [12.0 if model == "ensemble" else 4.0],
            "in_process_s": [in_process], "stages": [stages]}
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(smiles)
    measured = {"startup_s": [predict_speed.process_seconds([sys.executable, "-c", "pass"])],
                "imports_s": {"python (nothing)": [0.05]}, "configs": configs}
    summary = predict_speed.summarise(measured)
    auto, ensemble = summary["configs"].values()
    assert auto["passes"] and not ensemble["passes"]
    assert auto["dominant_stage"] in [predict_speed.START_UP, *auto["stages_predict_runs"]]
    assert auto["largest_in_process_stage"] in auto["stages_predict_runs"]
    assert summary["imports_s_median"] == {"python (nothing)": 0.05}
    facts = predict_speed.model_facts(tiny_model)
    result = {
        "command": "python -m benchmarks.predict_speed --rounds 1", "finished": "now", "target_s": 10.0,
        "molecules": len(smiles), "source": "test", "failures": 0, "rounds": 1, "max_epochs": 1,
        "models": {"auto": facts, "ensemble": facts}, "example_command": "molft predict MODEL molecules.csv",
        "load_average": {"start": [2.0, 2.0, 2.0], "end": [2.5, 2.0, 2.0]},
        "hardware": {"cpu": "test CPU", "cpu_count": 2, "torch_threads": 2, "gpu": None}, "lightgbm": "x",
        "run": {"platform": "linux", "python": "3", "torch": "2", "torch_geometric": "2", "rdkit": "2026",
                "molft": "0.1.0", "git_sha": None},
        "summary": summary,
    }
    result["findings"] = predict_speed.findings(result)
    text = predict_speed.markdown(result)
    assert "| auto (" in text and "| FAIL |" in text and "| pass |" in text
    assert "load average 2.00 / 2.00 / 2.00" in text and "What dominates" in text and "| `pass` (python" in text
    for stage in STAGES:
        assert f"| {stage} |" in text
    header, rows = predict_speed.stage_rows(result)
    assert len(header) == 1 + len(configs) and all(len(row) == len(header) for row in rows)


def test_molecules_fall_back_to_the_builtin_assay(tmp_path: Path) -> None:
    smiles, source = predict_speed.load_molecules(tmp_path, 30)  # a data directory without ZINC
    assert len(smiles) == 30 and "built-in" in source


def test_main_writes_the_results(tiny_model: Path, assay: pd.DataFrame, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line end to end, the timing replaced by one quick stage round (no subprocesses)."""
    import shutil

    def train(root: Path, **_: object) -> dict[str, Path]:  # into the temporary folder, as the real one does
        return {model: Path(shutil.copytree(tiny_model, root / model)) for model in predict_speed.MODELS}

    def measure(models: dict[str, Path], smiles: list[str], work: Path, **_: object) -> dict:
        stages = stage_seconds(models["auto"], smiles)
        configs = {predict_speed.config_name(m, 1): {"model": m, "workers": 1, "command_s": [5.0],
                                                      "in_process_s": [1.0], "stages": [stages]} for m in models}
        return {"startup_s": [3.0], "imports_s": {"torch + torch_geometric": [2.0]}, "configs": configs,
                "table": str(work / "molecules.csv")}

    monkeypatch.setattr(predict_speed, "train_models", train)
    monkeypatch.setattr(predict_speed, "measure", measure)
    predict_speed.main(["--molecules", "10", "--data-dir", str(tmp_path), "--results-dir", str(tmp_path / "out")])
    result = json.loads((tmp_path / "out" / "predict_speed.json").read_text())
    assert result["molecules"] == 10 and result["models"]["auto"]["split_sizes"]["train"] > 0
    assert len(result["load_average"]["start"]) == 3
    assert all(config["passes"] for config in result["summary"]["configs"].values())
    assert "Command: `python -m benchmarks.predict_speed --molecules 10" in (tmp_path / "out" / "predict_speed.md").read_text()
