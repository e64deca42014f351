"""Fine-tuning, prediction and embeddings on the bundled ChEMBL assay, with tiny encoders."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.loader import DataLoader
from typer.testing import CliRunner

from molft.checkpoints import load_encoder, load_model, save_model
from molft.cli import app
from molft.data.assay import load_assay, split_assay
from molft.embedding import embed
from molft.errors import InputError
from molft.evaluate import evaluate
from molft.finetuning.frozen import _choose_readout, _choose_strength, fit_frozen_member, fit_linear_head
from molft.finetuning.predict import predict
from molft.finetuning.recipe import HU2020_PROTOCOL, Recipe, TargetScaler
from molft.finetuning.member import masked_loss, new_member, predict_scores, train_member
from molft.finetuning.train import finetune
from molft.models.encoder import EncoderConfig
from molft.training import predict_batches

TINY = EncoderConfig(num_layers=2, hidden_dim=32)


@pytest.fixture(scope="module")
def regression_model(tmp_path_factory, small_assay, tiny_pretrained):
    out = tmp_path_factory.mktemp("models") / "pic50"
    finetune(small_assay, ["pIC50"], out, pretrained=tiny_pretrained, seeds=2, max_epochs=3, progress=False)
    return out


def test_finetune_writes_a_complete_model_directory(regression_model):
    for name in ("finetune.json", "metrics.json", "metrics.jsonl", "predictions_valid.csv",
                 "predictions_test.csv", "learning_curve.png", "summary.md", "run.json", "graphs/rejects.csv"):
        assert (regression_model / name).exists(), name
    config = json.loads((regression_model / "finetune.json").read_text())
    assert config["task_type"] == "regression" and config["members"] == ["members/seed-0", "members/seed-1"]
    assert config["recipe"]["name"] == "full-small-lr"  # 192 training labels: all layers, small encoder rate
    metrics = json.loads((regression_model / "metrics.json").read_text())
    assert {"rmse", "mae", "r2"} <= set(metrics["test_mean"]) and len(metrics["seeds"]) == 2
    assert set(metrics["members"]) == {"gnn", "forest", "boosted", "linear"}  # linear: on the frozen encoder
    assert config["model"]["linear_member"] == "members/linear" and (regression_model / "members/linear").is_dir()
    summary = (regression_model / "summary.md").read_text()
    assert "**model:" in summary and "member: boosted | test" in summary and "split-conformal" in summary


def test_finetune_reports_a_random_forest_on_the_same_split(regression_model):
    metrics = json.loads((regression_model / "metrics.json").read_text())
    forest = metrics["baselines"]["random_forest"]
    assert forest["settings"]["n_estimators"] == 500 and forest["settings"]["radius"] == 2
    assert np.isfinite(forest["test"]["rmse"]) and forest["test"]["rmse"] > 0
    assert forest["test"] == metrics["members"]["forest"]["test"]  # the forest member is that baseline


def test_saved_model_predicts_what_training_reported(regression_model, small_assay):
    reported = pd.read_csv(regression_model / "predictions_test.csv")
    table = pd.read_csv(small_assay, dtype=str)
    scored = predict(regression_model, small_assay, progress=False)
    assert len(scored) == len(table) and scored["chembl_id"].tolist() == table["chembl_id"].tolist()
    again = scored.set_index(table.index + 2).loc[reported["row"], "pIC50_pred"]  # row 2 is the first data row
    assert np.allclose(again.to_numpy(), reported["pIC50_pred"].to_numpy(), atol=1e-5)
    weights = json.loads((regression_model / "finetune.json").read_text())["model"]["weights"]
    assert ("pIC50_std" in scored) == (len(weights) > 1 or ("gnn" in weights))  # two GNN seeds spread too
    assert (scored["pIC50_lower"] < scored["pIC50_pred"]).all() and (scored["pIC50_pred"] < scored["pIC50_upper"]).all()
    assert scored["nearest_train_similarity"].between(0, 1).all()


@pytest.mark.parametrize("model", ["linear", "ensemble"])
def test_a_blend_with_the_linear_member_predicts_what_training_reported(tmp_path, small_assay, tiny_pretrained, model):
    out = tmp_path / model
    finetune(small_assay, ["pIC50"], out, pretrained=tiny_pretrained, model=model, max_epochs=1, progress=False)
    weights = json.loads((out / "finetune.json").read_text())["model"]["weights"]
    assert "linear" in weights and (len(weights) == 4) == (model == "ensemble")
    reported = pd.read_csv(out / "predictions_test.csv")
    scored = predict(out, small_assay, progress=False)
    again = scored.set_index(pd.RangeIndex(len(scored)) + 2).loc[reported["row"], "pIC50_pred"]
    assert np.allclose(again.to_numpy(), reported["pIC50_pred"].to_numpy(), atol=1e-5)


def test_no_linear_member_without_a_pretrained_encoder_or_in_instant_mode(tmp_path, small_assay, tiny_pretrained):
    out = tmp_path / "scratch"
    finetune(small_assay, ["pIC50"], out, pretrained="none", max_epochs=1, progress=False)
    assert set(json.loads((out / "metrics.json").read_text())["members"]) == {"gnn", "forest", "boosted"}
    with pytest.raises(InputError, match="--model linear"):
        finetune(small_assay, ["pIC50"], tmp_path / "bad", pretrained=tiny_pretrained, mode="frozen", model="linear",
                 progress=False)


def test_predict_keeps_every_row_and_explains_failures(regression_model, tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("name,smiles\na,CCO\nb,C1CC\nc,\nd,c1ccccc1N\n")
    out = tmp_path / "preds.csv"
    scored = predict(regression_model, new, out=out, progress=False)
    assert scored["name"].tolist() == ["a", "b", "c", "d"]
    assert scored["pIC50_pred"].isna().tolist() == [False, True, True, False]
    assert scored["error"].iloc[1].startswith("unparsable") and scored["error"].iloc[2] == "empty SMILES"
    assert len(pd.read_csv(out)) == 4


def test_predict_never_overwrites_a_column_of_the_input(regression_model, tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("smiles,error,pIC50_pred\nCCO,lab note,7.1\nC1CC,,\n")
    scored = predict(regression_model, new, progress=False)
    assert scored["error"].tolist() == ["lab note", ""]  # the input's own column, exactly as written
    assert scored["pIC50_pred"].iloc[0] == "7.1"  # the user's value, as text, untouched
    renamed = {k: v for k, v in scored.attrs["added_columns"].items() if k != v}
    assert renamed == {"pIC50_pred": "molft_pIC50_pred", "error": "molft_error"}
    assert np.isfinite(scored["molft_pIC50_pred"].iloc[0]) and scored["molft_error"].iloc[1].startswith("unparsable")

    result = CliRunner().invoke(app, ["predict", str(regression_model), str(new), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 0, result.output
    assert "'molft_error' (the table already has 'error')" in result.output
    assert "1 failed, see the 'molft_error' column" in result.output


def test_multitask_classification_with_missing_labels_from_scratch(tmp_path, small_assay):
    out = tmp_path / "model"
    result = finetune(small_assay, ["active", "potent"], out, pretrained="none", max_epochs=2, split="random",
                      encoder_config=TINY, progress=False)
    assert result.recipe.name == "scratch"
    assert 0.0 <= result.metrics["test_mean"]["roc_auc"] <= 1.0
    predictions = pd.read_csv(out / "predictions_valid.csv")
    assert predictions["active_pred"].between(0, 1).all() and predictions["potent_pred"].between(0, 1).all()
    assert predictions["potent"].isna().any()  # missing labels stay missing in the report


def test_frozen_mode_folds_the_linear_model_into_the_head(tmp_path, small_assay, tiny_pretrained):
    out = tmp_path / "instant"
    finetune(small_assay, ["pIC50"], out, pretrained=tiny_pretrained, mode="frozen", progress=False)
    model, _ = load_model(out / "members" / "seed-0")
    original, _ = load_encoder(tiny_pretrained)
    for key, value in original.state_dict().items():  # instant mode leaves the encoder untouched
        assert torch.equal(value, model.encoder.state_dict()[key]), key

    assay = load_assay(small_assay, ["pIC50"], graphs_dir=tmp_path / "graphs", progress=False)
    split = split_assay(assay)
    embeddings = predict_batches(model.embed, DataLoader(assay.dataset, batch_size=64))
    y = assay.dataset.y.numpy()
    scaler = TargetScaler.fit(y[split["train"]])
    mean, std = embeddings[split["train"]].mean(0), embeddings[split["train"]].std(0) + 1e-6
    standard = (embeddings - mean) / std
    weight, bias, _ = fit_linear_head(standard[split["train"]], scaler.transform(y)[split["train"]],
                                      standard[split["valid"]], scaler.transform(y)[split["valid"]], "regression", 0)
    expected = scaler.inverse(standard[split["valid"]] @ weight.T + bias)
    reported = pd.read_csv(out / "predictions_valid.csv")["pIC50_pred"].to_numpy()
    assert np.allclose(reported, expected[:, 0], atol=1e-4)


def test_a_clipped_frozen_member_on_another_readout_predicts_as_it_was_fitted(tmp_path, small_assay, tiny_pretrained):
    assay = load_assay(small_assay, ["pIC50"], graphs_dir=tmp_path / "graphs", progress=False)
    split = split_assay(assay)
    model, info = fit_frozen_member(assay.dataset, split, task_type="regression", seed=0, pretrained=tiny_pretrained,
                                    readouts=("all:mean+max",), clip=3.0)
    assert info["readout"] == "all:mean+max" and model.head_config.embedding_clip == 3.0
    save_model(model, tmp_path / "member")
    loaded, config = load_model(tmp_path / "member")
    assert config["head"]["pooling"] == "mean+max" and config["encoder"]["jk"] == "concat"
    valid = DataLoader(assay.dataset.subset(split["valid"]), batch_size=64)
    embeddings = predict_batches(model.embed, valid)
    standard = np.clip((embeddings - model.embedding_mean.numpy()) / model.embedding_std.numpy(), -3.0, 3.0)
    expected = standard @ model.head.weight.detach().numpy().T + model.head.bias.detach().numpy()
    assert np.abs(standard).max() <= 3.0
    np.testing.assert_allclose(predict_batches(loaded, valid), expected, atol=1e-4)


def test_instant_mode_keeps_the_simplest_readout_unless_another_wins_by_more_than_noise():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(60, 1))
    fit = lambda readout, noise: (readout, None, [1.0], y + rng.normal(scale=noise, size=(60, 1)))  # noqa: E731
    best = fit("all", 0.50)
    close = ("last", None, [1.0], best[3] + rng.normal(scale=0.05, size=(60, 1)))
    rmse = lambda fit: float(np.sqrt(np.mean((fit[3] - y) ** 2)))  # noqa: E731
    if rmse(close) < rmse(best):  # make "all" the better one on validation, by a hair
        close, best = ("last", None, [1.0], best[3]), ("all", None, [1.0], close[3])
    assert _choose_readout([close, best], y, "regression") == 0  # ... but only by noise
    assert _choose_readout([fit("last", 2.0), fit("all", 0.50)], y, "regression") == 1
    labels = (y > 0).astype(float)
    assert _choose_readout([fit("last", 2.0), fit("all", 0.1)], labels, "classification") == 1


def test_instant_mode_regression_prefers_the_stronger_penalty_unless_the_weaker_wins_by_more_than_noise():
    rng = np.random.default_rng(0)
    y = rng.normal(size=60)
    weak = (0.1, np.ones(1), 0.0, y + rng.normal(scale=0.50, size=60))
    strong_close = (100.0, np.zeros(1), 0.0, y + rng.normal(scale=0.55, size=60))
    strong_far = (100.0, np.zeros(1), 0.0, rng.normal(size=60))
    rmse = lambda fit: float(np.sqrt(np.mean((fit[3] - y) ** 2)))  # noqa: E731
    assert rmse(weak) < rmse(strong_close) < rmse(strong_far)  # the weak penalty is best on validation
    assert _choose_strength([weak, strong_close], y, "regression", rule="one-se")[0] == 100.0  # ... but only by noise
    assert _choose_strength([weak, strong_far], y, "regression", rule="one-se")[0] == 0.1
    assert _choose_strength([weak, strong_close], y, "regression", rule="best")[0] == 0.1


def test_masked_loss_ignores_missing_labels():
    logits = torch.tensor([[0.0, 5.0], [1.0, -2.0]])
    y = torch.tensor([[1.0, float("nan")], [0.0, float("nan")]])
    loss = masked_loss(logits, y, "classification", None)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0], y[:, 0])
    assert torch.isclose(loss, expected)


def test_label_errors_are_clear(tmp_path, small_assay):
    with pytest.raises(InputError, match="no column 'potency'"):
        load_assay(small_assay, ["potency"], graphs_dir=tmp_path / "g1", progress=False)
    single = tmp_path / "single.csv"
    single.write_text("smiles,active\nCCO,1\nCC,1\nCCC,\n")
    with pytest.raises(InputError, match="single class"):
        load_assay(single, ["active"], graphs_dir=tmp_path / "g2", task_type="classification", progress=False)
    assay = load_assay(single, ["active"], graphs_dir=tmp_path / "g3", task_type="regression", progress=False)
    with pytest.raises(InputError, match="only 2 molecules have labels"):
        split_assay(assay)


def test_split_column_and_unknown_split(tmp_path, assay):
    table = assay.iloc[:40].copy()
    table["fold"] = ["train"] * 30 + ["valid"] * 5 + ["test"] * 5
    path = tmp_path / "folds.csv"
    table.to_csv(path, index=False)
    loaded = load_assay(path, ["pIC50"], graphs_dir=tmp_path / "g", progress=False)
    parts = split_assay(loaded, "fold")
    assert [len(parts[name]) for name in ("train", "valid", "test")] == [30, 5, 5]
    with pytest.raises(InputError, match="unknown split 'folds'"):
        split_assay(loaded, "folds")


def test_embed_writes_one_row_per_input(tmp_path, tiny_pretrained):
    table = tmp_path / "mols.smi"
    table.write_text("CCO a\nC1CC b\nc1ccccc1 c\n")
    done, failed = embed(tiny_pretrained, table, tmp_path / "emb.npy", progress=False)
    matrix = np.load(tmp_path / "emb.npy", allow_pickle=False)
    assert (done, failed) == (2, 1) and matrix.shape == (3, 32)
    assert np.isnan(matrix[1]).all() and not np.isnan(matrix[[0, 2]]).any()
    embed(tiny_pretrained, table, tmp_path / "emb.csv", progress=False)
    assert pd.read_csv(tmp_path / "emb.csv", keep_default_na=False)["error"].iloc[1].startswith("unparsable")


def test_embed_all_layers_concatenates_every_layer_the_last_one_last(tmp_path, tiny_pretrained):
    table = tmp_path / "mols.smi"
    table.write_text("CCO a\nc1ccccc1O b\n")
    embed(tiny_pretrained, table, tmp_path / "last.npy", progress=False)
    result = CliRunner().invoke(app, ["embed", str(tiny_pretrained), str(table), "--out", str(tmp_path / "all.npy"),
                                      "--layers", "all"])
    assert result.exit_code == 0, result.output
    last, every = (np.load(tmp_path / f"{name}.npy", allow_pickle=False) for name in ("last", "all"))
    layers = json.loads((tiny_pretrained / "config.json").read_text())["encoder"]["num_layers"]
    assert every.shape == (2, (layers + 1) * last.shape[1])
    np.testing.assert_allclose(every[:, -last.shape[1]:], last, rtol=1e-5, atol=1e-6)  # mean pooling commutes
    with pytest.raises(InputError, match="unknown layers 'first'"):
        embed(tiny_pretrained, table, tmp_path / "x.npy", progress=False, layers="first")


def test_embed_with_two_poolings_writes_both_side_by_side(tmp_path, tiny_pretrained):
    table = tmp_path / "mols.smi"
    table.write_text("CCO a\nc1ccccc1O b\n")
    embed(tiny_pretrained, table, tmp_path / "mean.npy", progress=False)
    embed(tiny_pretrained, table, tmp_path / "max.npy", progress=False, pooling="max")
    result = CliRunner().invoke(app, ["embed", str(tiny_pretrained), str(table), "--out", str(tmp_path / "both.npy"),
                                      "--pooling", "mean+max"])
    assert result.exit_code == 0, result.output
    mean, largest, both = (np.load(tmp_path / f"{name}.npy", allow_pickle=False) for name in ("mean", "max", "both"))
    np.testing.assert_allclose(both, np.hstack([mean, largest]), rtol=1e-5, atol=1e-6)
    result = CliRunner().invoke(app, ["embed", str(tiny_pretrained), str(table), "--out", str(tmp_path / "x.npy"),
                                      "--pooling", "median"])
    assert result.exit_code != 0 and "unknown pooling 'median'" in result.output


def test_cli_finetune_then_predict(tmp_path, small_assay, tiny_pretrained):
    runner = CliRunner()
    model = tmp_path / "cli-model"
    result = runner.invoke(app, ["finetune", str(small_assay), "--target", "pIC50", "--out", str(model),
                                 "--pretrained", str(tiny_pretrained), "--max-epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "rmse" in result.output
    again = runner.invoke(app, ["finetune", str(small_assay), "--target", "pIC50", "--out", str(model),
                                "--pretrained", str(tiny_pretrained)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    scored = runner.invoke(app, ["predict", str(model), str(small_assay), "--out", str(tmp_path / "p.csv")])
    assert scored.exit_code == 0 and "predicted 240 of 240 rows" in scored.output
    missing = runner.invoke(app, ["finetune", str(small_assay), "--target", "pIC50", "--out", str(tmp_path / "x"),
                                  "--pretrained", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not a pretrained encoder directory" in missing.output


def test_a_last_epoch_recipe_keeps_the_final_weights(small_assay, tiny_pretrained, tmp_path):
    assay = load_assay(small_assay, ["active"], graphs_dir=tmp_path / "graphs", progress=False)
    split = split_assay(assay)
    recipe = replace(HU2020_PROTOCOL, max_epochs=3, patience=3)
    log: list[dict] = []
    model = new_member(tiny_pretrained, seed=0, num_tasks=1, vocabulary="ogb", recipe=recipe)
    model, info = train_member(model, assay.dataset, split, task_type=assay.task_type, recipe=recipe, seed=0, log=log)
    assert info["selected"] == "last" and info["epochs_run"] == 3 and len(log) == 3
    valid = DataLoader(assay.dataset.subset(split["valid"]), batch_size=256)
    final = evaluate(assay.dataset.y.numpy()[split["valid"]], predict_scores(model, valid, assay.task_type, None, "cpu"),
                  assay.task_type)["roc_auc"]
    assert final == pytest.approx(log[-1]["valid_roc_auc"])  # the model is the last epoch's, not the best's


def test_focal_loss_discounts_well_classified_molecules():
    logits = torch.tensor([[4.0], [-4.0], [0.0]])  # confident right, confident wrong, unsure
    y = torch.tensor([[1.0], [1.0], [1.0]])
    plain = masked_loss(logits, y, "classification", None)
    assert masked_loss(logits, y, "classification", None, focal_gamma=0.0) == plain
    per_molecule = [masked_loss(logits[i:i + 1], y[i:i + 1], "classification", None, focal_gamma=2.0) /
                    masked_loss(logits[i:i + 1], y[i:i + 1], "classification", None) for i in range(3)]
    assert per_molecule[0] < 0.001 and per_molecule[1] > 0.9 and per_molecule[2] == pytest.approx(0.25)


def test_gradual_unfreezing_trains_only_the_head_in_the_first_epoch(small_assay, tiny_pretrained, tmp_path):
    finetune(small_assay, ["active"], tmp_path / "m", pretrained=tiny_pretrained, max_epochs=1,
             gradual_unfreezing=True, focal_gamma=2.0, compare_rf=False, progress=False)
    model, _ = load_model(tmp_path / "m" / "members" / "seed-0")
    original, _ = load_encoder(tiny_pretrained)
    for key, value in original.state_dict().items():  # weights and batch-norm statistics untouched
        assert torch.equal(value, model.encoder.state_dict()[key]), key
    recipe = json.loads((tmp_path / "m" / "finetune.json").read_text())["recipe"]
    assert recipe["gradual_unfreezing"] and recipe["focal_gamma"] == 2.0

    assay = load_assay(small_assay, ["active"], graphs_dir=tmp_path / "graphs", progress=False)
    recipe = Recipe("test", encoder_lr=1e-3, head_lr=1e-3, max_epochs=2, gradual_unfreezing=True, select="last")
    model = new_member(tiny_pretrained, seed=0, num_tasks=1, vocabulary="ogb", recipe=recipe)
    model, _ = train_member(model, assay.dataset, split_assay(assay), task_type=assay.task_type, recipe=recipe, seed=0)
    state = model.encoder.state_dict()
    top = [k for k in state if k.startswith("convs.1.")]
    bottom = [k for k in state if k.startswith(("convs.0.", "atom_encoder."))]
    assert any(not torch.equal(state[k], original.state_dict()[k]) for k in top)  # epoch 2: top layer learns
    assert all(torch.equal(state[k], original.state_dict()[k]) for k in bottom)


def _assert_predict_reproduces_the_test_predictions(out, table_path):
    reported = pd.read_csv(out / "predictions_test.csv")
    table = pd.read_csv(table_path, dtype=str)
    scored = predict(out, table_path, progress=False).set_index(table.index + 2).loc[reported["row"], "pIC50_pred"]
    assert np.allclose(scored.to_numpy(), reported["pIC50_pred"].to_numpy(), atol=1e-5)


def test_a_gnn_head_can_read_molecule_features_and_predict_reproduces_it(tmp_path, small_assay, tiny_pretrained):
    out = tmp_path / "with-features"
    finetune(small_assay, ["pIC50"], out, pretrained=tiny_pretrained, model="gnn", max_epochs=2, progress=False,
             molecule_features="morgan_count:256,rdkit2d")
    model, config = load_model(out / "members" / "seed-0")
    assert config["head"]["molecule_features"] == 256 + 217
    assert model.head.in_features == 32 + 256 + 217
    saved = json.loads((out / "finetune.json").read_text())["molecule_features"]
    assert saved["specs"] == ["morgan_count:256", "rdkit2d"] and set(saved["scalers"]) == {"rdkit2d"}
    _assert_predict_reproduces_the_test_predictions(out, small_assay)
    with pytest.raises(InputError, match="unknown molecule feature 'ecfp'"):
        finetune(small_assay, ["pIC50"], tmp_path / "bad", molecule_features="ecfp", progress=False)


def test_a_gnn_head_can_pool_the_atoms_by_mean_and_max_and_predict_reproduces_it(tmp_path, small_assay,
                                                                                 tiny_pretrained):
    out = tmp_path / "mean-max"
    finetune(small_assay, ["pIC50"], out, pretrained=tiny_pretrained, model="gnn", max_epochs=2, progress=False,
             pooling="mean+max")
    model, config = load_model(out / "members" / "seed-0")
    assert config["head"]["pooling"] == "mean+max" and model.head.in_features == 2 * 32
    _assert_predict_reproduces_the_test_predictions(out, small_assay)
    with pytest.raises(InputError, match="unknown pooling 'median'"):
        finetune(small_assay, ["pIC50"], tmp_path / "bad", pooling="median", progress=False)
    with pytest.raises(InputError, match="--pooling is for a fine-tuned GNN head"):
        finetune(small_assay, ["pIC50"], tmp_path / "bad", pretrained=tiny_pretrained, mode="frozen",
                 pooling="mean+max", progress=False)


def test_an_auxiliary_loss_regresses_descriptors_beside_the_labels_and_leaves_the_model_unchanged_in_shape(
        small_assay, tiny_pretrained, tmp_path):
    from molft.data.features import table_features
    from molft.featurize.molecule import HeadFeatures

    assay = load_assay(small_assay, ["active"], graphs_dir=tmp_path / "graphs", progress=False)
    split = split_assay(assay)
    arrays = {"rdkit2d": table_features(tmp_path / "graphs", "rdkit2d", progress=False)}
    targets = HeadFeatures.fit(arrays, ["rdkit2d"], split["train"]).transform(arrays)
    recipe = Recipe("test", encoder_lr=1e-3, head_lr=1e-3, max_epochs=3, patience=3, auxiliary_weight=1.0)
    with pytest.raises(InputError, match="no auxiliary targets"):
        train_member(new_member(tiny_pretrained, seed=0, num_tasks=1, vocabulary="ogb", recipe=recipe),
                     assay.dataset, split, task_type=assay.task_type, recipe=recipe, seed=0)

    def trained(weight: float, log: list[dict] | None = None):
        chosen = replace(recipe, auxiliary_weight=weight)
        model = new_member(tiny_pretrained, seed=0, num_tasks=1, vocabulary="ogb", recipe=chosen)
        return train_member(model, assay.dataset.with_auxiliary_targets(targets), split, task_type=assay.task_type,
                            recipe=chosen, seed=0, log=log)[0]

    log: list[dict] = []
    with_auxiliary, without = trained(1.0, log), trained(0.0)
    assert log[-1]["train_auxiliary_loss"] < log[0]["train_auxiliary_loss"]  # the descriptors are being learned
    assert set(with_auxiliary.state_dict()) == set(without.state_dict())  # the second head is not part of the model
    weights = with_auxiliary.encoder.state_dict()
    assert any(not torch.equal(weights[k], without.encoder.state_dict()[k]) for k in weights)
    assert all(torch.equal(a, b) for a, b in zip(trained(1.0).state_dict().values(), with_auxiliary.state_dict().values()))
