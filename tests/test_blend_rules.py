"""benchmarks.blend_rules: blend rules re-chosen on saved ensemble members."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import blend_rules
from molft.data.registry import load_dataset
from molft.evaluate import evaluate


def test_each_rule_rechooses_the_saved_members_and_the_forest_rule_is_the_forest(tmp_path: Path, tiny_data_dir: Path,
                                                                                  save_auto_cell) -> None:
    data = load_dataset("bbbp", tiny_data_dir)
    rng = np.random.default_rng(0)
    scores = tmp_path / "scores"
    scores.mkdir()
    for seed in range(2):
        save_auto_cell(scores / f"bbbp-auto-gin-x-100-{seed}.npz", data, rng)
    (scores / "notes.txt").write_text("not a cell")

    records = blend_rules.rechoose(scores, data_dir=tiny_data_dir)
    assert len(records) == 2 * len(blend_rules.RULES)
    assert {r["rule"] for r in records} == set(blend_rules.RULES)
    for record in (r for r in records if r["rule"] == "forest"):
        with np.load(scores / f"bbbp-auto-gin-x-100-{record['seed']}.npz") as saved:
            forest = evaluate(data.y[saved["test_rows"]], saved["test_forest"], data.task_type)["roc_auc"]
        assert record["weights"] == {"forest": 1.0} and record["test"] == pytest.approx(forest)
    assert all(r["weights"] == {"forest": 0.5, "gnn": 0.5} for r in records if r["rule"] == "equal")
    assert records == blend_rules.rechoose(scores, data_dir=tiny_data_dir)  # bootstrap seeded: deterministic
    assert not any("intervals" in r for r in records)  # classification: no intervals

    blend_rules.main(["--scores-dir", str(scores), "--data-dir", str(tiny_data_dir), "--results-dir", str(tmp_path)])
    markdown = (tmp_path / "blend_rules.md").read_text()
    assert "| BBBP | auto-gin-x | 100 | 2 |" in markdown


def test_intervals_around_the_choice_cover_about_as_stated() -> None:
    rng = np.random.default_rng(1)
    y_valid, y_test = rng.normal(size=(400, 1)), rng.normal(size=(400, 1))
    members = {part: {"forest": y + rng.normal(0, 0.5, y.shape), "gnn": y + rng.normal(0, 0.5, y.shape)}
               for part, y in (("valid", y_valid), ("test", y_test))}
    record = blend_rules.interval_record(members["valid"], members["test"], y_valid, y_test, {"forest": 1.0})
    assert set(record) == {"absolute", "spread-normalized"}
    for kind in record.values():  # exchangeable validation and test: close to the stated 90%
        assert 0.85 <= kind["coverage"] <= 0.95 and kind["mean_width"] > 0
