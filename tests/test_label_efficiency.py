"""The label-efficiency benchmark runner: one record per run, identical subsets, resumable.

The data are ``tiny_data_dir`` (conftest): RDKit's bundled ChEMBL assay written as a tiny BBBP and a
tiny Lipophilicity, read through molft's registry.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.baselines import chemprop_unavailable, fit_random_forest, morgan_fingerprints, run_chemprop
from benchmarks.harness import add_runs, read_runs
from benchmarks.label_efficiency import (
    AUTO_SETTINGS,
    ENSEMBLE_SETTINGS,
    _feature_weight,
    effective_budgets,
    headline,
    labels_to_match,
    resolve_methods,
    run_benchmark,
)
from molft.checkpoints import save_encoder
from molft.errors import InputError
from molft.data.registry import load_dataset
from molft.data.splits import label_budgets
from molft.models.encoder import EncoderConfig, GINEncoder



@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLFT_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("encoder") / "tiny-random"
    return save_encoder(GINEncoder(EncoderConfig(num_layers=2, hidden_dim=32)), directory)


def _digest(loaded, indices: np.ndarray) -> str:
    rows = np.sort(loaded.row_index[indices]).astype(np.int64)
    return hashlib.sha256(rows.tobytes()).hexdigest()[:16]


def test_one_record_per_run_identical_subsets_and_resume(tmp_path: Path, tiny_data_dir: Path, encoder_dir: Path) -> None:
    results = tmp_path / "results"
    runs_file = results / "label_efficiency_runs.jsonl"
    options = dict(datasets=["bbbp"], budgets=[100, 1000], seeds=1, methods=["pretrained", "frozen", "scratch", "rf"],
                   pretrained=[str(encoder_dir)], max_epochs=2, device="cpu", data_dir=tiny_data_dir,
                   results_dir=results, progress=False)
    result = run_benchmark(**options)

    runs = read_runs(runs_file)
    loaded = load_dataset("bbbp", tiny_data_dir)
    n_train = len(loaded.split["train"])
    assert n_train < 1000  # so budget 1000 is capped at the whole training set
    methods = ["pretrained:tiny-random", "frozen:tiny-random", "scratch", "rf"]
    assert sorted((r["method"], r["n_labels"], r["seed"]) for r in runs) == sorted(
        itertools.product(methods, [100, n_train], [0])
    )
    assert result["runs_executed"] == 8 and result["runs_reused"] == 0
    assert all(math.isfinite(r["test"]) and math.isfinite(r["valid"]) for r in runs)
    assert all(r["best_epoch"] in (1, 2) for r in runs if r["kind"] in ("pretrained", "scratch"))

    # every method trained on the same molecules for a given budget and seed: label_budgets' subset
    subsets = label_budgets(loaded.split["train"], loaded.y, [100, n_train], seed=0)
    for n_labels in (100, n_train):
        assert {r["train_rows_sha256"] for r in runs if r["n_labels"] == n_labels} == {_digest(loaded, subsets[n_labels])}

    for name in ("label_efficiency.json", "label_efficiency.md", "label_efficiency_bbbp.png",
                 "label_efficiency_equivalence.png"):
        assert (results / name).is_file(), name
    summary = json.loads((results / "label_efficiency.json").read_text())
    assert len(summary["runs"]) == 8 and len(summary["aggregates"]) == 8
    assert {e["reference_budget"] for e in summary["equivalence"]} == {100, 1000}
    assert "python -m benchmarks.label_efficiency" in (results / "label_efficiency.md").read_text()

    # a rerun skips every finished run
    again = run_benchmark(**options)
    assert again["runs_executed"] == 0 and again["runs_reused"] == 8
    assert len(read_runs(runs_file)) == 8

    # an interrupted run (two runs missing, a torn last line) resumes with only the missing runs
    lines = runs_file.read_text().splitlines(keepends=True)
    missing = [i for i, line in enumerate(lines) if json.loads(line)["kind"] in ("pretrained", "scratch")][:2]
    kept = [line for i, line in enumerate(lines) if i not in missing]
    runs_file.write_text("".join(kept) + lines[missing[0]][:40])
    resumed = run_benchmark(**options)
    assert resumed["runs_executed"] == 2 and resumed["runs_reused"] == 6
    assert len({(r["method"], r["n_labels"], r["seed"]) for r in read_runs(runs_file)}) == 8

    # a second seed adds runs on another subset and reuses the first seed's
    more = run_benchmark(**{**options, "seeds": 2, "methods": ["scratch"]})
    assert more["runs_executed"] == 2 and more["runs_reused"] == 2
    seed_digests = {(r["seed"], r["n_labels"]): r["train_rows_sha256"] for r in more["runs"]}
    assert seed_digests[(0, 100)] != seed_digests[(1, 100)]
    assert seed_digests[(0, n_train)] == seed_digests[(1, n_train)]  # the whole training set either way

    # runs made elsewhere are added once, however often they are offered
    elsewhere = tmp_path / "elsewhere"
    other = run_benchmark(**{**options, "seeds": 3, "methods": ["rf"], "results_dir": elsewhere})
    assert other["runs_executed"] == 6
    assert add_runs([elsewhere / "label_efficiency_runs.jsonl"], runs_file) == 4  # seeds 1, 2; seed 0 was here
    assert add_runs([elsewhere / "label_efficiency_runs.jsonl"], runs_file) == 0

    # with --stop-after, no new run starts once the time is up; the report counts the runs left
    stopped = run_benchmark(**{**options, "seeds": 3, "methods": ["scratch"], "stop_after_s": 0})
    assert stopped["runs_executed"] == 0 and stopped["runs_reused"] == 4 and stopped["runs_missing"] == 2


def test_regression_dataset_reports_rmse(tmp_path: Path, tiny_data_dir: Path) -> None:
    result = run_benchmark(["lipo"], budgets=[60], seeds=1, methods=["scratch", "rf"], pretrained=["none"],
                           max_epochs=2, device="cpu", data_dir=tiny_data_dir, results_dir=tmp_path,
                           scratch_encoder=EncoderConfig(num_layers=2, hidden_dim=32), progress=False)
    assert {(r["method"], r["metric"]) for r in result["runs"]} == {("scratch", "rmse"), ("rf", "rmse")}
    assert all(0 < r["test"] < 10 for r in result["runs"])  # pIC50 units, not standardised ones
    assert result["equivalence"] == []


def test_ensemble_methods_run_molfts_default_model_and_record_its_members(tmp_path: Path, tiny_data_dir: Path,
                                                                         encoder_dir: Path) -> None:
    result = run_benchmark(["bbbp", "lipo"], budgets=[60], seeds=1,
                           methods=["auto", "auto-scratch", "boosted", "rf", "frozen"],
                           pretrained=[str(encoder_dir)], max_epochs=2, device="cpu", data_dir=tiny_data_dir,
                           results_dir=tmp_path, progress=False)
    runs = {(r["dataset"], r["kind"]): r for r in result["runs"]}
    assert {kind for _, kind in runs} == {"auto", "auto-scratch", "boosted", "rf", "frozen"}
    for dataset in ("BBBP", "Lipophilicity"):
        auto = runs[(dataset, "auto")]
        assert set(auto["members"]) == {"gnn", "forest", "boosted", "linear"}
        assert sum(auto["weights"].values()) == pytest.approx(1)
        assert set(runs[(dataset, "auto-scratch")]["members"]) == {"gnn", "forest", "boosted"}
        # the forest member is the rf baseline itself, the linear member instant mode's model
        assert auto["members"]["forest"]["test"] == pytest.approx(runs[(dataset, "rf")]["test_metrics"])
        assert auto["members"]["linear"]["test"] == pytest.approx(runs[(dataset, "frozen")]["test_metrics"])
        assert runs[(dataset, "boosted")]["weights"] == {"boosted": 1.0}
    assert "intervals" in runs[("Lipophilicity", "auto")] and "calibration" in runs[("BBBP", "auto")]


def test_a_three_member_auto_cell_is_completed_from_its_saved_members(tmp_path: Path, tiny_data_dir: Path,
                                                                        encoder_dir: Path) -> None:
    options = dict(budgets=[60], seeds=1, methods=["auto"], pretrained=[str(encoder_dir)], max_epochs=2,
                   device="cpu", data_dir=tiny_data_dir, results_dir=tmp_path, progress=False)
    (fresh,) = run_benchmark(["lipo"], **options)["runs"]
    runs_file = tmp_path / "label_efficiency_runs.jsonl"
    # the same cell as recorded before auto had the linear member: three members, earlier settings
    earlier = {**fresh, "settings": fresh["settings"].replace(AUTO_SETTINGS, ENSEMBLE_SETTINGS),
               "members": {k: v for k, v in fresh["members"].items() if k != "linear"}}
    runs_file.write_text(json.dumps(earlier) + "\n")
    (completed,) = run_benchmark(["lipo"], **options)["runs"]
    assert completed["settings"] == fresh["settings"]
    assert completed["reused_members"]["settings"] == earlier["settings"]
    # the members' scores were saved at float32: equal to about 1e-6
    assert {k: m["test"]["rmse"] for k, m in completed["members"].items()} == pytest.approx(
        {k: m["test"]["rmse"] for k, m in fresh["members"].items()}, rel=1e-5)
    assert completed["weights"] == fresh["weights"] and completed["best_epoch"] == fresh["best_epoch"]
    assert completed["test"] == pytest.approx(fresh["test"], rel=1e-5)

    # a saved file that is not the recorded run's members is not used: the cell runs afresh
    changed = {**earlier, "members": {**earlier["members"], "gnn": {"valid": {}, "test": {"rmse": 99.0}}}}
    runs_file.write_text(json.dumps(changed) + "\n")
    (rerun,) = run_benchmark(["lipo"], **options)["runs"]
    assert "reused_members" not in rerun and rerun["members"] == fresh["members"] and rerun["test"] == fresh["test"]


def test_head_features_feed_the_gnn_heads_and_name_the_methods(tmp_path: Path, tiny_data_dir: Path,
                                                               encoder_dir: Path) -> None:
    methods, _ = resolve_methods(["pretrained", "frozen", "scratch"], pretrained=[str(encoder_dir)],
                                 head_features=["rdkit2d"])
    assert [m.name for m in methods] == ["pretrained:tiny-random+rdkit2d", "frozen:tiny-random", "scratch+rdkit2d"]
    assert [m.head_features for m in methods] == [("rdkit2d",), (), ("rdkit2d",)]
    with pytest.raises(Exception, match="nonsense"):
        resolve_methods(["scratch"], pretrained=["none"], head_features=["nonsense"])

    common = dict(budgets=[60], seeds=1, pretrained=[str(encoder_dir)], max_epochs=2, device="cpu",
                  data_dir=tiny_data_dir, progress=False)
    plain = run_benchmark(["bbbp"], methods=["pretrained"], results_dir=tmp_path / "plain", **common)
    read = run_benchmark(["bbbp"], methods=["pretrained"], head_features=["rdkit2d"], results_dir=tmp_path / "head",
                         **common)
    (before,), (after,) = plain["runs"], read["runs"]
    assert after["method"] == "pretrained:tiny-random+rdkit2d" and after["settings"].endswith(";head=rdkit2d")
    assert after["train_rows_sha256"] == before["train_rows_sha256"]  # the same labels, other inputs
    assert after["test"] != before["test"]


def test_a_pooling_names_the_trained_gnns_and_widens_their_heads(tmp_path: Path, tiny_data_dir: Path,
                                                                  encoder_dir: Path) -> None:
    methods, _ = resolve_methods(["pretrained", "frozen", "scratch"], pretrained=[str(encoder_dir)], pooling="mean+sum")
    assert [m.name for m in methods] == ["pretrained:tiny-random+pool-mean+sum", "frozen:tiny-random",
                                         "scratch+pool-mean+sum"]
    assert [m.pooling for m in methods] == ["mean+sum", "mean", "mean+sum"]
    with pytest.raises(Exception, match="unknown pooling 'median'"):
        resolve_methods(["scratch"], pretrained=["none"], pooling="median")
    result = run_benchmark(["bbbp"], methods=["pretrained"], pooling="mean+sum", budgets=[60], seeds=1,
                           pretrained=[str(encoder_dir)], max_epochs=2, device="cpu", data_dir=tiny_data_dir,
                           progress=False, results_dir=tmp_path / "pooled")
    (run,) = result["runs"]
    assert run["settings"].endswith(";pool=mean+sum") and run["test"] is not None


def test_labels_to_match_interpolates_on_log_labels() -> None:
    curve = [(100, 0.70), (1000, 0.80), (10000, 0.85)]
    labels, status = labels_to_match(curve, 0.75, higher_better=True)
    assert status == "interpolated" and labels == pytest.approx(math.sqrt(100 * 1000))
    assert labels_to_match(curve, 0.65, True) == (100, "at_or_below_smallest")
    assert labels_to_match(curve, 0.90, True) == (None, "not_reached")
    rmse = [(100, 1.2), (1000, 0.9)]
    assert labels_to_match(rmse, 1.05, higher_better=False)[1] == "interpolated"


def _row(dataset: str, method: str, n_labels: int, test: float, metric: str = "roc_auc") -> dict:
    kind = method.split(":")[0]
    return {"dataset": dataset, "method": method, "kind": kind, "n_labels": n_labels, "metric": metric,
            "test_mean": test, "test_std": 0.01, "seeds": [0, 1, 2, 3, 4]}


def test_headline_shows_100_1000_10000_labels_or_all_a_dataset_has_and_averages_complete_datasets() -> None:
    methods = ["pretrained:a", "pretrained:b", "scratch", "rf"]
    rows = [_row(d, m, n, score) for d, sizes in (("BIG", (100, 1000, 10000)), ("SMALL", (100, 800)))
            for n in sizes for m, score in zip(methods, (0.8, 0.7, 0.6, 0.75))]
    rows.append(_row("LIPO", "rf", 100, 1.1, metric="rmse"))
    table = headline(rows, methods, {"BIG": 30000, "SMALL": 800, "LIPO": 3000})
    shown = {(e["budget"], e["dataset"]): e for e in table}
    assert set(shown) == {(100, "BIG"), (100, "SMALL"), (100, "LIPO"), (100, "mean"),
                          (1000, "BIG"), (1000, "SMALL"), (1000, "mean"), (10000, "BIG")}
    assert shown[1000, "SMALL"]["n_labels"] == 800  # all it has, shown once
    assert list(shown[100, "BIG"]["scores"]) == ["pretrained:a", "scratch", "rf"]  # the first encoder only
    assert shown[100, "mean"]["datasets"] == ["BIG", "SMALL"]  # RMSE is not averaged with ROC-AUC
    assert shown[1000, "mean"]["some_capped"] and not shown[100, "mean"]["some_capped"]
    assert shown[100, "LIPO"]["scores"] == {"rf": [1.1, 0.01, 5]}


def test_budgets_capped_at_the_training_set_run_once() -> None:
    assert effective_budgets([100, 300, 1000, 3000, 10000], 1631) == {100: 100, 300: 300, 1000: 1000, 3000: 1631}


@pytest.mark.skipif(chemprop_unavailable() is None, reason="chemprop is installed here")
def test_chemprop_is_skipped_with_a_message_when_absent() -> None:
    methods, skipped = resolve_methods(["rf", "chemprop"], pretrained=["none"])
    assert [m.name for m in methods] == ["rf"]
    assert "not installed" in skipped["chemprop"]


FAKE_CHEMPROP = '''
import csv, pathlib, sys
args = sys.argv[1:]
value = lambda flag: args[args.index(flag) + 1]
if args[0] == "train":
    with open(value("--data-path")) as handle:
        rows = list(csv.DictReader(handle))
    assert {row["split"] for row in rows} == {"train", "val", "test"}
    model = pathlib.Path(value("--output-dir")) / "model_0"
    (model / "checkpoints").mkdir(parents=True)
    (model / "checkpoints" / "best-epoch=3-val_loss=0.50.ckpt").write_text("")
    (model / "best.pt").write_text(str(sum(c.startswith("t") for c in rows[0])))
else:
    tasks = int(pathlib.Path(value("--model-paths")).read_text())
    with open(value("--test-path")) as handle:
        smiles = [row["smiles"] for row in csv.DictReader(handle)]
    with open(value("--preds-path"), "w") as handle:
        handle.write(",".join(["smiles"] + [f"t{j}" for j in range(tasks)]) + "\\n")
        handle.writelines(",".join([s] + ["0.5"] * tasks) + "\\n" for s in smiles)
'''


def test_chemprop_adapter_writes_the_split_and_reads_predictions(tmp_path: Path, assay) -> None:
    script = tmp_path / "chemprop"
    script.write_text(FAKE_CHEMPROP)
    smiles = assay["smiles"].tolist()[:30]
    y = (np.arange(30) % 2).astype(float)[:, None]
    split = {"train": np.arange(20), "valid": np.arange(20, 25), "test": np.arange(25, 30)}
    result = run_chemprop(smiles, y, split, "classification", seed=0, epochs=5, workdir=tmp_path / "work",
                          command=[sys.executable, str(script)])
    assert result.valid.shape == (5, 1) and result.test.shape == (5, 1)
    assert result.info["best_epoch"] == 4
    log = (tmp_path / "work" / "chemprop.log").read_text()
    assert "--splits-column split" in log and "--pytorch-seed 0" in log
    assert "--tracking-metric roc" in log  # selected on validation ROC-AUC, as molft's models are


def test_random_forest_predicts_every_task_on_its_labelled_rows(assay) -> None:
    features = morgan_fingerprints(assay["smiles"].tolist()[:60])
    y = np.stack([np.arange(60) % 2, np.full(60, np.nan)], axis=1).astype(float)
    y[:10, 1] = 1.0  # task 1: one class among its training labels -> a constant
    split = {"train": np.arange(40), "valid": np.arange(40, 50), "test": np.arange(50, 60)}
    result = fit_random_forest(features, y, split, task_type="classification", seed=0, n_estimators=20)
    assert result.test.shape == (10, 2) and result.info["constant_tasks"] == [1]
    assert np.all(result.test[:, 1] == 1.0)


def test_an_auxiliary_loss_names_the_trained_gnns_and_changes_their_training(tmp_path: Path, tiny_data_dir: Path,
                                                                             encoder_dir: Path) -> None:
    methods, _ = resolve_methods(["pretrained", "frozen", "scratch"], pretrained=[str(encoder_dir)],
                                 auxiliary=("rdkit2d", 0.5))
    assert [m.name for m in methods] == ["pretrained:tiny-random+aux-rdkit2d-0.5", "frozen:tiny-random",
                                         "scratch+aux-rdkit2d-0.5"]
    assert methods[0].settings.endswith(";auxiliary=rdkit2d:0.5") and methods[1].auxiliary is None
    assert _feature_weight("rdkit2d") == ("rdkit2d", 1.0)
    with pytest.raises(Exception, match="weight must be > 0"):
        resolve_methods(["scratch"], pretrained=["none"], auxiliary=("rdkit2d", 0.0))

    # 150 labels: the recipe trains the encoder (under 100 it is frozen, and the auxiliary loss could not reach it)
    common = dict(budgets=[150], seeds=1, pretrained=[str(encoder_dir)], max_epochs=2, device="cpu",
                  data_dir=tiny_data_dir, progress=False, methods=["pretrained"])
    plain = run_benchmark(["lipophilicity"], results_dir=tmp_path / "plain", **common)  # RMSE: sees small changes
    auxiliary = run_benchmark(["lipophilicity"], auxiliary=("rdkit2d", 1.0), results_dir=tmp_path / "aux", **common)
    (before,), (after,) = plain["runs"], auxiliary["runs"]
    assert after["method"] == "pretrained:tiny-random+aux-rdkit2d"
    assert after["train_rows_sha256"] == before["train_rows_sha256"] and after["test"] != before["test"]


def test_a_report_keeps_the_runs_of_an_encoder_directory_that_is_gone(tmp_path: Path, tiny_data_dir: Path,
                                                                       encoder_dir: Path) -> None:
    throwaway = tmp_path / "throwaway"
    shutil.copytree(encoder_dir, throwaway)
    options = dict(budgets=[60], seeds=1, methods=["pretrained", "rf"], max_epochs=1, device="cpu",
                   data_dir=tiny_data_dir, progress=False, results_dir=tmp_path / "results")
    made = run_benchmark(["bbbp"], pretrained=[str(encoder_dir), str(throwaway)], **options)
    shutil.rmtree(throwaway)
    with pytest.raises(InputError, match="not a pretrained encoder directory"):
        resolve_methods(["pretrained"], pretrained=[str(throwaway)])
    report = run_benchmark(["bbbp"], pretrained=[str(encoder_dir), str(throwaway)], report_only=True, **options)
    assert report["methods"] == made["methods"] == ["pretrained:tiny-random", "pretrained:throwaway", "rf"]
    assert report["runs"] == made["runs"] and report["runs_missing"] == 0
    alone = run_benchmark(["bbbp"], pretrained=[str(throwaway)], report_only=True, **options)  # no encoder left at all
    assert alone["methods"] == ["pretrained:throwaway", "rf"] and alone["runs_missing"] == 0
