"""Graph-level pretraining targets: descriptors, fingerprints, corpus labels; stages with --init."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
from torch_geometric.data import Batch

from molft.data.featurized import featurize_file
from molft.errors import InputError
from molft.featurize.graph import featurize_many
from molft.featurize.molecule import FeatureScaler, molecule_features
from molft.models import EncoderConfig, GINEncoder
from molft.pretraining import build_objectives
from molft.pretraining import graph_targets
from molft.pretraining.graph_targets import binarize_labels, scaler_rows
from molft.pretraining.loop import pretrain
from molft.pretraining.objectives import SharedForward

TINY = {"num_layers": 2, "hidden_dim": 32}


@pytest.fixture(scope="module")
def labelled_corpus(tmp_path_factory, assay) -> Path:
    """64 molecules with two label columns (a pIC50-like value, a sparse 0/1) and an id column."""
    folder = tmp_path_factory.mktemp("labelled")
    table = assay.head(64)[["smiles", "pIC50"]].copy()
    table["name"] = [f"mol-{i}" for i in range(64)]
    table["binary"] = (np.arange(64) % 2).astype(float)
    table.loc[table.index[::3], "binary"] = np.nan
    table.to_csv(folder / "mols.csv", index=False)
    featurize_file(folder / "mols.csv", folder / "mols.graphs", progress=False)
    return folder / "mols.graphs"


def run(corpus: Path, out: Path, **options):
    # test-set hygiene has its own tests (tests/test_hygiene.py); here it would read every benchmark file
    settings = dict(epochs=2, batch_size=16, encoder=TINY, progress=False, seed=0, exclude_test_molecules=False)
    settings.update(options)
    return pretrain(corpus, out, **settings)


def batch_with_targets(smiles, spec, config, options=None):
    objectives = build_objectives(spec, config, options)
    raw = molecule_features(smiles, list(objectives.target_sources().values())).arrays
    generator = torch.Generator().manual_seed(0)
    graphs = []
    for i, graph in enumerate(featurize_many(smiles).graphs):
        for name, source in objectives.target_sources().items():
            prepared = objectives.objectives[name].prepare_targets(raw[source])
            graph[f"{name}_y"] = torch.from_numpy(prepared[i : i + 1])
        graphs.append(objectives.transform(graph, generator))
    return objectives, Batch.from_data_list(graphs)


@pytest.mark.parametrize(
    "spec, options",
    [("descriptors", None), ("fingerprint", None), ("fingerprint", {"fingerprint": {"feature": "morgan_count:256"}}),
     ("descriptors", {"descriptors": {"head": "linear"}}), ("fingerprint", {"fingerprint": {"head": "linear"}})],
)
def test_graph_targets_have_one_row_per_graph_and_their_loss_decreases(assay, spec, options):
    torch.manual_seed(0)
    smiles = assay["smiles"].head(48).tolist()
    config = EncoderConfig(**TINY)
    objectives, batch = batch_with_targets(smiles, spec, config, options)
    name = spec
    assert batch[f"{name}_y"].shape == (48, objectives.objectives[name].num_targets)
    encoder = GINEncoder(config)
    optimizer = torch.optim.Adam([*encoder.parameters(), *objectives.parameters()], lr=3e-3)
    losses = []
    for _ in range(30):
        loss, logs = objectives.loss(encoder, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and losses[-1] < losses[0] * 0.9
    assert f"{name}/loss" in logs


def test_a_linear_head_is_one_layer_on_the_pooled_embedding_and_is_recorded():
    config = EncoderConfig(**TINY)
    objectives = build_objectives("descriptors,fingerprint", config, {"descriptors": {"head": "linear"}})
    linear, mlp = objectives.objectives["descriptors"].head, objectives.objectives["fingerprint"].head
    assert isinstance(linear, torch.nn.Linear) and (linear.in_features, linear.out_features) == (32, 217)
    assert isinstance(mlp, torch.nn.Sequential) and len(mlp) == 3
    described = objectives.describe()
    assert described["descriptors"]["head"] == "linear" and described["fingerprint"]["head"] == "mlp"
    with pytest.raises(InputError, match="head must be one of mlp, linear"):
        build_objectives("descriptors", config, {"descriptors": {"head": "transformer"}})


def test_objectives_that_read_the_clean_graph_share_one_encoder_pass(assay):
    config = EncoderConfig(**TINY)
    objectives, batch = batch_with_targets(assay["smiles"].head(8).tolist(), "descriptors,fingerprint", config)
    encoder = GINEncoder(config)
    calls = []
    encoder.register_forward_hook(lambda *args: calls.append(1))
    objectives.loss(encoder, batch)
    assert len(calls) == 1
    shared = SharedForward(encoder)
    assert shared(batch.x, batch.edge_index, batch.edge_attr) is shared(batch.x, batch.edge_index, batch.edge_attr)
    assert len(list(shared.parameters())) == len(list(encoder.parameters()))


def test_descriptor_targets_are_standardized_and_missing_ones_masked():
    config = EncoderConfig(**TINY)
    objective = build_objectives("descriptors", config).objectives["descriptors"]
    raw = molecule_features(["CCO", "c1ccccc1", "CCN", "CCCCCCO"] * 5, "rdkit2d").arrays["rdkit2d"]
    raw[0, 0] = np.nan
    targets = objective.prepare_targets(raw)
    assert targets.dtype == np.float32 and np.isnan(targets[0, 0]) and np.nanmax(np.abs(targets)) <= 5
    output = torch.zeros(targets.shape, requires_grad=True)
    loss, logs = objective._loss(output, torch.from_numpy(targets))
    assert np.isfinite(float(loss.detach())) and logs["r2"] == pytest.approx(1 - logs["loss"])


def test_a_large_corpus_scales_its_descriptors_with_the_statistics_of_evenly_spread_rows(monkeypatch):
    objective = build_objectives("descriptors:1", EncoderConfig(**TINY), {"descriptors": {"feature": "rdkit2d_fast"}})
    raw = molecule_features(["CCO", "c1ccccc1", "CCN", "CCCCCCO", "CC(=O)O"] * 2, "rdkit2d_fast").arrays["rdkit2d_fast"]
    everything = objective.objectives["descriptors"].prepare_targets(raw)  # 10 rows: all of them
    np.testing.assert_array_equal(everything, FeatureScaler.fit(raw).transform(raw))

    monkeypatch.setattr(graph_targets, "SCALER_FIT_ROWS", 4)  # as if the corpus were larger than the limit
    assert scaler_rows(10, 4).tolist() == [0, 3, 6, 9]
    spread = objective.objectives["descriptors"].prepare_targets(raw)
    np.testing.assert_array_equal(spread, FeatureScaler.fit(raw[[0, 3, 6, 9]]).transform(raw))
    assert spread.shape == raw.shape


def test_labels_are_binarized_per_column():
    raw = np.array([[5.0, 1.0], [7.5, np.nan], [np.nan, 0.0], [6.0, 1.0]], dtype=np.float32)
    out = binarize_labels(raw, threshold=6.0)
    np.testing.assert_array_equal(out[:, 0], [0.0, 1.0, np.nan, 1.0])
    np.testing.assert_array_equal(out[:, 1], [1.0, np.nan, 0.0, 1.0])


def test_pretraining_on_graph_targets_is_deterministic_resumable_and_caches_its_targets(tmp_path, assay):
    pd.DataFrame({"smiles": assay["smiles"].head(48)}).to_csv(tmp_path / "mols.csv", index=False)
    options = dict(objectives="attr_masking,descriptors:1,fingerprint:0.5", checkpoint_every_steps=2,
                   objective_options={"fingerprint": {"feature": "morgan_bits:128"}})
    first = run(tmp_path / "mols.csv", tmp_path / "a", **options)
    assert {"descriptors/loss", "fingerprint/accuracy", "attr_masking/loss"} <= set(first.final_losses)
    record = json.loads((first.out / "pretrain.json").read_text())
    features = Path(record["corpus"]["featurized"]) / "features"
    assert sorted(p.suffix for p in features.iterdir()) == [".json", ".json", ".npy", ".npy"]

    again = run(tmp_path / "mols.csv", tmp_path / "b", **options)  # targets read from the cache
    crashed = run(tmp_path / "mols.csv", tmp_path / "c", stop_after_steps=3, **options)
    assert not crashed.completed
    resumed = run(tmp_path / "mols.csv", tmp_path / "c", resume=True, **options)
    a, b, c = (safetensors.torch.load_file(str(r.encoder / "model.safetensors")) for r in (first, again, resumed))
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)


def test_supervised_reads_the_corpus_label_columns(labelled_corpus, tmp_path):
    result = run(labelled_corpus, tmp_path / "sup", objectives="supervised")
    config = json.loads((result.encoder / "config.json").read_text())
    options = config["extra"]["pretraining"]["objective_options"]["supervised"]
    assert options["num_tasks"] == 2  # pIC50 and binary; the name column is not a label
    assert 0 < result.final_losses["supervised/known"] < 2


def test_supervised_needs_label_columns(tmp_path, assay):
    pd.DataFrame({"smiles": assay["smiles"].head(20)}).to_csv(tmp_path / "mols.csv", index=False)
    with pytest.raises(InputError, match="no numeric label columns"):
        run(tmp_path / "mols.csv", tmp_path / "sup", objectives="supervised")


def test_a_second_stage_starts_from_the_first_and_records_it(labelled_corpus, tmp_path):
    stage_one = run(labelled_corpus, tmp_path / "one", objectives="attr_masking", epochs=1)
    stage_two = run(labelled_corpus, tmp_path / "two", objectives="supervised", epochs=0, encoder=None,
                    init=str(stage_one.encoder))
    a = safetensors.torch.load_file(str(stage_one.encoder / "model.safetensors"))
    b = safetensors.torch.load_file(str(stage_two.encoder / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # zero epochs: the initial weights, unchanged
    record = json.loads((stage_two.encoder / "config.json").read_text())["extra"]["pretraining"]
    assert record["init"]["path"] == str(stage_one.encoder)
    assert record["init"]["pretraining"]["objectives"] == "attr_masking:1"
    with pytest.raises(InputError, match="init encoder .* hidden_dim=32"):
        run(labelled_corpus, tmp_path / "three", encoder={"hidden_dim": 64}, init=str(stage_one.encoder))


def test_the_command_line_takes_objective_options_as_json(labelled_corpus, tmp_path):
    from typer.testing import CliRunner

    from molft.cli import app

    base = ["pretrain", str(labelled_corpus), "--objectives", "fingerprint", "--max-steps", "2",
            "--num-layers", "1", "--hidden-dim", "16", "--batch-size", "16", "--exclude-test-molecules", "never"]
    options = '{"fingerprint": {"feature": "morgan_bits:64", "head": "linear"}}'
    command = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "run"), "--objective-options", options])
    assert command.exit_code == 0, command.output
    config = json.loads((tmp_path / "run" / "encoder" / "config.json").read_text())
    recorded = config["extra"]["pretraining"]["objective_options"]["fingerprint"]
    assert (recorded["head"], recorded["targets"]) == ("linear", 64)

    bad = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "bad"), "--objective-options", "{head: linear}"])
    assert bad.exit_code == 2 and "--objective-options: not valid JSON" in bad.output
