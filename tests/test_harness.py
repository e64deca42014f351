"""The benchmark harness: a runs file that survives crashes, a loop over cells that resumes, and
the report's mean ± std. No model is trained here: a cell's run is a plain function."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks.harness import (
    Cell,
    add_runs,
    append_run,
    clean,
    group_runs,
    markdown_table,
    mean_std_text,
    pooling_suffix,
    read_runs,
    run_cells,
    run_key,
)
from molft.errors import InputError
from molft.evaluate import mean_std


def _fields(method: str = "rf", n_labels: int = 100, seed: int = 0) -> dict:
    return {"dataset": "BBBP", "split": "scaffold", "data_sha256": "ab12", "method": method,
            "settings": "s", "n_labels": n_labels, "seed": seed}


def _cells(seeds: int = 3) -> list[Cell]:
    return [Cell(_fields(seed=seed), f"rf seed={seed}") for seed in range(seeds)]


def _fit(cell: Cell) -> dict:
    """A stand-in for training: the record is the cell's key and a score."""
    return {**cell.fields, "test": 0.7 + cell.fields["seed"] / 100}


class FakeClock:
    """Seconds that advance by ``step`` at every reading."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


# --------------------------------------------------------------------------------------------
# the runs file


def test_runs_file_keeps_every_complete_line_when_a_write_was_torn(tmp_path: Path) -> None:
    runs = tmp_path / "runs.jsonl"
    append_run(runs, _fields(seed=0))
    with open(runs, "a") as handle:
        handle.write('{"dataset": "BBBP", "se')  # a crash in the middle of a write
    append_run(runs, _fields(seed=1))  # starts on a fresh line: the torn one stays alone
    assert [r["seed"] for r in read_runs(runs)] == [0, 1]

    with open(runs, "a") as handle:
        handle.write('{"dataset": "BB')  # torn last line
    assert [r["seed"] for r in read_runs(runs)] == [0, 1]
    assert read_runs(tmp_path / "absent.jsonl") == []


def test_add_runs_merges_other_runs_files_each_run_once(tmp_path: Path) -> None:
    here, there = tmp_path / "here.jsonl", tmp_path / "there.jsonl"
    append_run(here, _fields(seed=0))
    for seed in (0, 1, 2):
        append_run(there, _fields(seed=seed))

    assert add_runs([there], here) == 2  # seed 0 was already here
    assert add_runs([there, there], here) == 0
    assert sorted(r["seed"] for r in read_runs(here)) == [0, 1, 2]
    with pytest.raises(InputError, match="no such runs file"):
        add_runs([tmp_path / "missing.jsonl"], here)


def test_run_key_ignores_everything_but_what_fixes_the_result() -> None:
    assert run_key({**_fields(), "test": 0.7, "wall_s": 3.0}) == run_key({**_fields(), "test": 0.8})
    assert run_key(_fields(seed=0)) != run_key(_fields(seed=1))


# --------------------------------------------------------------------------------------------
# the cell loop


def test_cells_run_once_each_and_are_recorded_at_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs.jsonl"
    seen = []

    def fit(cell: Cell) -> dict:
        seen.append(cell.fields["seed"])
        assert len(read_runs(runs)) == len(seen) - 1  # every earlier run is already on disk
        return _fit(cell)

    done = run_cells(_cells(), fit, runs_file=runs, progress=False)
    assert seen == [0, 1, 2] and (done.executed, done.reused, done.missing) == (3, 0, 0)
    assert [r["test"] for r in done.records] == [0.7, 0.71, 0.72]


def test_finished_cells_are_skipped_so_a_rerun_resumes(tmp_path: Path) -> None:
    runs = tmp_path / "runs.jsonl"
    append_run(runs, _fit(_cells()[1]))
    seen = []
    done = run_cells(_cells(), lambda cell: seen.append(cell.fields["seed"]) or _fit(cell), runs_file=runs,
                     progress=False)
    assert seen == [0, 2] and (done.executed, done.reused) == (2, 1)
    assert [r["seed"] for r in done.records] == [0, 1, 2]  # in cell order, the recorded one included

    again = run_cells(_cells(), lambda cell: pytest.fail("nothing is left to run"), runs_file=runs, progress=False)
    assert (again.executed, again.reused) == (0, 3)


def test_report_only_runs_nothing_and_counts_the_missing_cells(tmp_path: Path) -> None:
    runs = tmp_path / "runs.jsonl"
    append_run(runs, _fit(_cells()[0]))
    done = run_cells(_cells(), lambda cell: pytest.fail("report_only runs nothing"), runs_file=runs,
                     report_only=True, progress=False)
    assert (done.executed, done.reused, done.missing) == (0, 1, 2)


def test_stop_after_starts_no_new_run_once_the_time_is_up(tmp_path: Path) -> None:
    seen = []
    clock = FakeClock(step=10.0)  # every reading is 10 s later: the second check is past 15 s
    done = run_cells(_cells(), lambda cell: seen.append(cell.fields["seed"]) or _fit(cell),
                     runs_file=tmp_path / "runs.jsonl", stop_after_s=15, clock=clock, progress=False)
    assert seen == [0] and (done.executed, done.missing) == (1, 2)

    rerun = run_cells(_cells(), _fit, runs_file=tmp_path / "runs.jsonl", progress=False)  # continues
    assert (rerun.executed, rerun.reused) == (2, 1)


def test_records_are_cleaned_before_they_are_written(tmp_path: Path) -> None:
    runs = tmp_path / "runs.jsonl"
    run_cells(_cells(1), lambda cell: {**cell.fields, "test": math.nan}, runs_file=runs, progress=False)
    assert json.loads(runs.read_text())["test"] is None  # valid JSON: NaN became null


# --------------------------------------------------------------------------------------------
# reports


def test_mean_std_is_the_sample_std_and_skips_missing_values() -> None:
    mean, std = mean_std([0.70, 0.74, None, math.nan])
    assert mean == pytest.approx(0.72) and std == pytest.approx(math.sqrt(0.0008))  # ddof 1: /(2 - 1)
    assert mean_std([0.7]) == (0.7, None) and mean_std([]) == (None, None)
    assert mean_std_text(mean, std) == "0.720 ± 0.028"
    assert mean_std_text(0.7, None) == "0.700" and mean_std_text(None, None) == "—"


def test_group_runs_and_markdown_table() -> None:
    records = [_fields("rf", seed=1), _fields("gin", seed=0), _fields("rf", seed=0)]
    groups = group_runs(records, ["method"])
    assert [(key, [r["seed"] for r in runs]) for key, runs in groups] == [(("gin",), [0]), (("rf",), [1, 0])]
    assert markdown_table(["method", "seeds"], [["rf", "2"]], right_from=1) == [
        "| method | seeds |", "|---|---:|", "| rf | 2 |"]


def test_clean_turns_nan_and_infinity_into_null() -> None:
    assert clean({"a": [math.inf, 1.0], "b": (math.nan,)}) == {"a": [None, 1.0], "b": [None]}


def test_a_head_pooling_other_than_the_mean_names_its_runs_alike_in_every_report():
    assert pooling_suffix("mean") == "" and pooling_suffix("mean+max") == "+pool-mean+max"
    with pytest.raises(InputError, match="unknown pooling 'median'"):
        pooling_suffix("median")
