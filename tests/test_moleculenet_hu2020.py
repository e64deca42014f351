"""The Hu et al. 2020 side-by-side benchmark: both protocols per method, resumable, reported apart
from the published reference values. Data: ``tiny_data_dir`` (a 200-molecule BBBP stand-in)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import label_efficiency
from benchmarks.harness import read_runs
from benchmarks.moleculenet_hu2020 import REFERENCE, main, run_benchmark


def test_both_protocols_for_scratch_and_each_encoder_resumable_and_beside_hu_et_al(
    tmp_path: Path, tiny_data_dir: Path, tiny_pretrained: Path
) -> None:
    results = tmp_path / "results"
    options = dict(datasets=["bbbp"], seeds=1, protocols=["hu2020", "molft"], pretrained=[str(tiny_pretrained)],
                   max_epochs=1, device="cpu", data_dir=tiny_data_dir, results_dir=results, progress=False,
                   reuse_runs=None)
    result = run_benchmark(**options)

    runs = read_runs(results / "moleculenet_hu2020_runs.jsonl")
    assert sorted((r["protocol"], r["kind"]) for r in runs) == [
        ("hu2020", "pretrained"), ("hu2020", "scratch"), ("molft", "pretrained"), ("molft", "scratch")]
    assert {r["recipe"] for r in runs if r["protocol"] == "hu2020"} == {"hu2020"}
    assert all(r["epochs_run"] == 1 and 0 <= r["test"] <= 1 for r in runs)
    assert len({r["n_labels"] for r in runs}) == 1  # every labelled training molecule, for every method

    report = (results / "moleculenet_hu2020.md").read_text()
    no_pretrain_bbbp = "{:.1f} ({:.1f})".format(*REFERENCE["no pre-train"]["BBBP"])
    assert "## Reference: Hu et al. 2020" in report and no_pretrain_bbbp in report
    measured = report.split("## Reference")[0]
    assert no_pretrain_bbbp not in measured  # reference values stay out of the measured table
    assert f"| no pre-train | {no_pretrain_bbbp} | {REFERENCE['no pre-train']['BBBP'][0]:.1f} |" in report  # mean column
    assert "Epochs capped at 1" in report
    assert json.loads((results / "moleculenet_hu2020.json").read_text())["executed_now"] == 4 == result["executed_now"]

    assert run_benchmark(**options)["executed_now"] == 0  # a rerun reuses every finished run

    # with --stop-after, no new run starts once the time is up, and cells say how many seeds they hold
    stopped = run_benchmark(**{**options, "seeds": 2, "stop_after_s": 0})
    assert stopped["executed_now"] == 0 and stopped["missing"] == 4
    assert "(1 of 2 seeds)" in (results / "moleculenet_hu2020.md").read_text()


def test_report_only_gathers_runs_made_elsewhere(tmp_path: Path, tiny_data_dir: Path, tiny_pretrained: Path,
                                                 capsys) -> None:
    elsewhere = tmp_path / "elsewhere"
    run_benchmark(["bbbp"], seeds=1, protocols=["hu2020"], pretrained=[str(tiny_pretrained)], max_epochs=1,
                  device="cpu", data_dir=tiny_data_dir, results_dir=elsewhere, progress=False)
    here = tmp_path / "here"
    main(["--datasets", "bbbp", "--seeds", "1", "--protocols", "hu2020", "--pretrained", str(tiny_pretrained),
          "--max-epochs", "1", "--data-dir", str(tiny_data_dir), "--results-dir", str(here), "--no-progress",
          "--report-only", "--add-runs", str(elsewhere / "moleculenet_hu2020_runs.jsonl")])
    assert len(read_runs(here / "moleculenet_hu2020_runs.jsonl")) == 2
    summary = json.loads((here / "moleculenet_hu2020.json").read_text())
    assert summary["executed_now"] == 0 and summary["missing"] == 0 and len(summary["runs"]) == 2
    assert "| hu2020 | scratch |" in capsys.readouterr().out


def test_molft_protocol_takes_over_the_label_efficiency_run_on_the_whole_training_set(
    tmp_path: Path, tiny_data_dir: Path, tiny_pretrained: Path
) -> None:
    efficiency = tmp_path / "efficiency"
    label_efficiency.run_benchmark(["bbbp"], budgets=[50, 10_000], seeds=1, methods=["pretrained"],
                                   pretrained=[str(tiny_pretrained)], max_epochs=1,
                                   device="cpu", data_dir=tiny_data_dir, results_dir=efficiency, progress=False)
    full_run = max(read_runs(efficiency / "label_efficiency_runs.jsonl"), key=lambda r: r["n_labels"])

    results = tmp_path / "results"
    result = run_benchmark(["bbbp"], seeds=1, protocols=["molft"], pretrained=[str(tiny_pretrained)], max_epochs=1,
                           device="cpu", data_dir=tiny_data_dir, results_dir=results, progress=False,
                           reuse_runs=efficiency / "label_efficiency_runs.jsonl")
    assert result["executed_now"] == 1  # scratch was not in the label-efficiency runs: trained here
    taken_over = next(r for r in result["runs"] if r["kind"] == "pretrained")
    assert taken_over["reused_from"] == "label_efficiency_runs.jsonl" and taken_over["protocol"] == "molft"
    assert taken_over["test"] == full_run["test"] and taken_over["n_labels"] == full_run["n_labels"]
    assert "reused_from" not in next(r for r in result["runs"] if r["kind"] == "scratch")
    assert len(read_runs(results / "moleculenet_hu2020_runs.jsonl")) == 2  # recorded, so a rerun finds it
    assert "1 `molft`-protocol run(s) are the label-efficiency benchmark's runs" in (results / "moleculenet_hu2020.md").read_text()
