"""The Python API as a user meets it: ``import molft`` and scikit-learn-style estimators on SMILES."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import molft
from molft import MolftClassifier, MolftRegressor


@pytest.fixture(scope="module")
def table(small_assay) -> pd.DataFrame:
    return pd.read_csv(small_assay)


@pytest.fixture(scope="module")
def regressor(table, tiny_pretrained, tmp_path_factory) -> MolftRegressor:
    model = MolftRegressor(pretrained=tiny_pretrained, seeds=2, max_epochs=2,
                           model_dir=tmp_path_factory.mktemp("estimator"))
    return model.fit(table["smiles"], table["pIC50"])


def test_import_molft_is_light_and_exposes_the_api():
    code = "import sys, molft; assert 'torch' not in sys.modules, 'import molft pulled in torch'; print(molft.__version__)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
    for name in ("featurize_file", "pretrain", "finetune", "predict", "embed", "MolftRegressor", "load_dataset"):
        assert callable(getattr(molft, name)), name
    with pytest.raises(AttributeError):
        molft.no_such_thing


def test_regressor_predicts_what_molft_predict_writes(regressor, table, tmp_path):
    new = ["CCOc1ccccc1", "C1CC", table["smiles"].iloc[0]]
    mean, std = regressor.predict(new, return_std=True)
    assert mean.shape == std.shape == (3,)
    assert np.isnan(mean[1]) and "unparsable" in regressor.last_failures_[0].reason
    (tmp_path / "new.csv").write_text("smiles\n" + "\n".join(new) + "\n")
    written = molft.predict(regressor.model_dir_, tmp_path / "new.csv", progress=False)
    assert regressor.targets_ == ["pIC50"]  # the Series' name
    one_member = np.where(np.isnan(mean), np.nan, 0.0)  # the spread column is left out for a single member
    written_std = written["pIC50_std"] if "pIC50_std" in written else one_member
    assert np.allclose(written["pIC50_pred"], mean, equal_nan=True) and np.allclose(written_std, std, equal_nan=True)
    assert {"rmse", "r2"} <= set(regressor.metrics_["test_mean"])


def test_regressor_scores_like_a_scikit_learn_model(regressor, table):
    r2 = regressor.score(table["smiles"][:50], table["pIC50"][:50])  # RegressorMixin.score: R^2
    assert np.isfinite(r2)
    assert clone(regressor).get_params()["seeds"] == 2  # clone copies settings, not the fit


def test_classifier_on_two_tasks_with_missing_labels(table, tiny_pretrained):
    labels = table[["active", "potent"]]
    model = MolftClassifier(pretrained=tiny_pretrained, max_epochs=1).fit(table["smiles"], labels)
    assert model.targets_ == ["active", "potent"]
    proba = model.predict_proba(table["smiles"][:5])
    assert proba.shape == (5, 2) and ((proba >= 0) & (proba <= 1)).all()
    assert set(np.unique(model.predict(table["smiles"][:5]))) <= {0.0, 1.0}


def test_single_task_classifier_gives_both_class_columns(table, tiny_pretrained):
    model = MolftClassifier(pretrained=tiny_pretrained, mode="frozen").fit(table["smiles"], table["active"])
    proba = model.predict_proba(["CCO", "c1ccccc1O"])
    assert proba.shape == (2, 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_unfitted_or_mismatched_input_is_a_clear_error(tiny_pretrained):
    with pytest.raises(molft.InputError, match="not fitted"):
        MolftRegressor().predict(["CCO"])
    with pytest.raises(molft.InputError, match="3 SMILES but 2 labels"):
        MolftRegressor(pretrained=tiny_pretrained).fit(["CCO", "CCN", "CCC"], [1.0, 2.0])
