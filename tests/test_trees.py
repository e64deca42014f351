"""Fingerprint members: forests exported to arrays, LightGBM in its text format, no pickle anywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest

from molft.baselines import fit_random_forest, morgan_fingerprints
from molft.errors import InputError
from molft.featurize.molecule import molecule_features
from molft.finetuning.trees import TREE_KINDS, TreeMember, feature_matrix, fit_tree_member


@pytest.fixture(scope="module")
def data(assay):
    """120 molecules of the built-in assay: features, pIC50, a 0/1 task with gaps, a fixed split."""
    smiles = assay["smiles"].head(120).tolist()
    arrays = molecule_features(smiles, "morgan_bits,morgan_count,rdkit2d").arrays
    pic50 = assay["pIC50"].head(120).to_numpy()
    active = (pic50 > np.median(pic50)).astype(float)
    active[::9] = np.nan
    order = np.random.default_rng(0).permutation(120)
    split = {"train": np.sort(order[:80]), "valid": np.sort(order[80:100]), "test": np.sort(order[100:])}
    return arrays, np.stack([pic50, active], axis=1), split


@pytest.mark.parametrize("task_type, column", [("regression", 0), ("classification", 1)])
def test_a_forest_member_predicts_exactly_what_scikit_learn_predicts(data, task_type, column):
    arrays, y, split = data
    features = feature_matrix(arrays, "forest")
    member = fit_tree_member("forest", features, y[:, [column]], split, task_type=task_type, seed=3)
    reference = fit_random_forest(arrays["morgan_bits"], y[:, [column]], split, task_type=task_type, seed=3)
    np.testing.assert_array_equal(member.predict(features[split["test"]]), reference.test)
    np.testing.assert_array_equal(member.predict(features[split["valid"]]), reference.valid)


@pytest.mark.parametrize("kind", list(TREE_KINDS))
def test_members_save_and_reload_to_identical_predictions(data, kind, tmp_path):
    arrays, y, split = data
    features = feature_matrix(arrays, kind)
    member = fit_tree_member(kind, features, y[:, :1], split, task_type="regression", seed=0)
    member.save(tmp_path / kind)
    again = TreeMember.load(tmp_path / kind)
    np.testing.assert_array_equal(again.predict(features), member.predict(features))
    files = sorted(p.name for p in (tmp_path / kind).iterdir())
    assert all(name.endswith((".json", ".safetensors", ".txt")) for name in files), files


def test_boosted_member_stops_early_on_validation_and_handles_nan_descriptors(data):
    arrays, y, split = data
    features = feature_matrix(arrays, "boosted")
    assert features.shape[1] == 2048 + arrays["rdkit2d"].shape[1]
    features = features.copy()
    features[::5, -10:] = np.nan  # descriptors RDKit could not compute
    member = fit_tree_member("boosted", features, y, split, task_type="regression", seed=0)
    assert all(1 <= r < 2000 for r in member.info["rounds"])
    assert np.isfinite(member.predict(features)).all()
    again = fit_tree_member("boosted", features, y, split, task_type="regression", seed=0)
    np.testing.assert_array_equal(again.predict(features), member.predict(features))  # deterministic


def test_a_task_with_one_training_class_is_predicted_as_a_constant(data):
    arrays, y, split = data
    one_class = y[:, [1]].copy()
    one_class[split["train"]] = 1.0
    for kind in TREE_KINDS:
        member = fit_tree_member(kind, feature_matrix(arrays, kind), one_class, split, task_type="classification", seed=0)
        assert member.info["constant_tasks"] == [0]
        np.testing.assert_array_equal(member.predict(feature_matrix(arrays, kind)[:3]), 1.0)


def test_bad_kinds_and_damaged_members_are_input_errors(data, tmp_path):
    arrays, y, split = data
    with pytest.raises(InputError, match="unknown fingerprint member 'svm'"):
        fit_tree_member("svm", arrays["morgan_bits"], y, split, task_type="regression", seed=0)
    with pytest.raises(InputError, match="not a molft tree member"):
        TreeMember.load(tmp_path)
    member = fit_tree_member("forest", feature_matrix(arrays, "forest"), y[:, :1], split, task_type="regression", seed=0)
    member.save(tmp_path / "m")
    (tmp_path / "m" / "forest.safetensors").write_bytes(b"\x80\x04\x95 a pickle, not safetensors")
    with pytest.raises(InputError, match="cannot be read as safetensors"):
        TreeMember.load(tmp_path / "m")
    record = json.loads((tmp_path / "m" / "member.json").read_text())
    record["tasks"][0]["model"] = "pickle"
    (tmp_path / "m" / "member.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="unknown model 'pickle'"):
        TreeMember.load(tmp_path / "m")


def test_forest_features_are_the_baseline_fingerprint(assay):
    smiles = assay["smiles"].head(5).tolist()
    arrays = molecule_features(smiles, "morgan_bits").arrays
    np.testing.assert_array_equal(feature_matrix(arrays, "forest"), morgan_fingerprints(smiles))
