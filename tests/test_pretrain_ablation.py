"""benchmarks.pretrain_ablation: arms at equal steps, pretrained once, then probed."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import pretrain_ablation
from benchmarks.harness import read_runs
from benchmarks.pretrain_ablation import ARM_NAMES, arm_settings, run_ablation
from molft.errors import InputError


def test_every_arm_gets_the_epochs_nearest_the_same_steps():
    assert arm_settings(ARM_NAMES["descriptors"], molecules=51_200, steps=400) == {"epochs": 2}
    assert arm_settings(ARM_NAMES["descriptors"], molecules=51_200, steps=200) == {"epochs": 1}
    assert arm_settings(ARM_NAMES["random"], molecules=51_200, steps=400) == {"epochs": 0}
    assert arm_settings(ARM_NAMES["supervised"], molecules=51_200, steps=200) == {"epochs": 2}  # 93 steps an epoch


def test_arms_pretrain_once_then_the_probe_ranks_them(tmp_path: Path, tiny_data_dir: Path, assay: pd.DataFrame,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data_dir)
    (data_dir / "zinc").mkdir()
    with gzip.open(data_dir / "zinc" / "moses_train.csv.gz", "wt") as handle:
        handle.write("SMILES\n" + "\n".join(assay["smiles"].iloc[:100]) + "\n")
    options = dict(molecules=64, steps=1, tasks=["bbbp"], budgets=[40], seeds=1, workdir=tmp_path / "work",
                   data_dir=data_dir, results_dir=tmp_path / "results", device="cpu", progress=False)
    result = run_ablation(["random", "attr_masking"], **options)

    runs = read_runs(tmp_path / "results" / "pretrain_ablation_runs.jsonl")
    assert [(r["arm"], r["steps"], r["molecules"]) for r in runs] == [("random", 0, 64), ("attr_masking", 1, 64)]
    assert (tmp_path / "work" / "corpus" / "zinc_moses_train_64.csv").read_text().count("\n") == 65
    ranks = result["probe_summary"]["mean_rank"]
    assert sorted(ranks.values()) == [1, 2]  # one probe cell: the two arms ranked 1 and 2
    assert set(result["forest"]) == {"BBBP|40"}
    markdown = (tmp_path / "results" / "pretrain_ablation.md").read_text()
    assert "python -m benchmarks.pretrain_ablation" in markdown and "| attr_masking | `attr_masking` | 1 |" in markdown
    assert (tmp_path / "results" / "pretrain_ablation" / "encoder_probe_runs.jsonl").is_file()
    assert json.loads((tmp_path / "results" / "pretrain_ablation.json").read_text())["steps"] == 1

    monkeypatch.setattr(pretrain_ablation, "pretrain_arm", lambda *a, **k: pytest.fail("pretrained a finished arm"))
    again = run_ablation(["random", "attr_masking"], **options)
    assert again["probe_summary"]["mean_rank"] == ranks
    shutil.rmtree(tmp_path / "work")  # a fresh checkout: the runs are committed, the encoders are not
    reported = run_ablation(["random", "attr_masking"], **options, report_only=True)
    assert reported["probe_summary"]["mean_rank"] == ranks
    with pytest.raises(InputError, match="unknown arm"):
        run_ablation(["bert"], **options)
