"""Molecule-level features: presets as data, one parse per molecule, workers, scaling, the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from molft.data.featurized import featurize_file
from molft.data.features import feature_cache_path, table_feature_arrays, table_features
from molft.errors import InputError
from molft.featurize.molecule import (
    MOLECULE_FEATURES,
    RDKIT2D_FAST_LEFT_OUT,
    RDKIT2D_FAST_NAMES,
    RDKIT2D_NAMES,
    FeatureScaler,
    MorganFingerprint,
    RDKitDescriptors,
    get_molecule_feature,
    molecule_features,
    parse_molecule_features,
)
from molft.baselines import morgan_fingerprints

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "not a smiles", "C1CCCCC1N"]


def test_presets_are_data_with_lengths_and_keys():
    assert set(MOLECULE_FEATURES) == {"morgan_bits", "morgan_count", "rdkit2d", "rdkit2d_fast"}
    assert len(get_molecule_feature("morgan_count:1024")) == 1024
    assert get_molecule_feature("morgan_count:1024").key == "morgan_count-r2-1024"
    assert len(get_molecule_feature("rdkit2d")) == len(RDKIT2D_NAMES) > 200
    assert RDKitDescriptors(names=("MolWt", "TPSA")).key != RDKitDescriptors().key


def test_the_fast_descriptor_set_is_rdkit2d_minus_the_listed_costly_ones():
    fast = get_molecule_feature("rdkit2d_fast")
    left_out = {name for names in RDKIT2D_FAST_LEFT_OUT.values() for name in names}
    assert fast.names == RDKIT2D_FAST_NAMES == tuple(n for n in RDKIT2D_NAMES if n not in left_out)  # RDKit's order
    assert len(fast) == len(RDKIT2D_NAMES) - len(left_out) == 97 and left_out <= set(RDKIT2D_NAMES)
    assert {"qed", "SPS", "BCUT2D_MWHI", "BertzCT", "fr_amide"} <= left_out
    assert {"MolLogP", "TPSA", "MolWt", "NumHDonors", "NumRotatableBonds", "MaxPartialCharge"} <= set(fast.names)
    assert fast.key != get_molecule_feature("rdkit2d").key  # its own cache file


def test_fast_descriptors_are_finite_and_equal_the_full_sets_columns():
    out = molecule_features(SMILES, "rdkit2d,rdkit2d_fast")
    full, fast = out.arrays["rdkit2d"], out.arrays["rdkit2d_fast"]
    good = [0, 1, 2, 4]
    assert fast.shape == (5, 97) and np.isfinite(fast[good]).all() and np.isnan(fast[3]).all()
    columns = [RDKIT2D_NAMES.index(name) for name in RDKIT2D_FAST_NAMES]
    np.testing.assert_array_equal(fast[good], full[good][:, columns])


@pytest.mark.parametrize("spec", ["ecfp", "rdkit2d:10", "morgan_bits:0", "morgan_bits:x"])
def test_bad_specs_name_the_choices(spec):
    with pytest.raises(InputError, match="molecule feature"):
        get_molecule_feature(spec)


def test_repeated_or_empty_feature_lists_are_refused():
    with pytest.raises(InputError, match="twice"):
        parse_molecule_features("morgan_bits,morgan_bits")
    with pytest.raises(InputError, match="no molecule feature"):
        parse_molecule_features(" , ")


def test_features_of_many_molecules_keep_every_row():
    out = molecule_features(SMILES, "morgan_bits,morgan_count,rdkit2d")
    assert out.failed == [(3, "not a smiles")]
    bits, counts, descriptors = (out.arrays[k] for k in ("morgan_bits", "morgan_count", "rdkit2d"))
    assert bits.shape == counts.shape == (5, 2048) and bits.dtype == counts.dtype == np.uint8
    assert descriptors.shape == (5, len(RDKIT2D_NAMES)) and descriptors.dtype == np.float32
    good = [0, 1, 2, 4]
    np.testing.assert_array_equal(bits[good], morgan_fingerprints([SMILES[i] for i in good]))
    np.testing.assert_array_equal(bits, (counts > 0).astype(np.uint8))
    assert np.isnan(descriptors[3]).all() and not bits[3].any()
    weight = descriptors[0, RDKIT2D_NAMES.index("MolWt")]
    assert weight == pytest.approx(46.07, abs=0.01)


def test_workers_do_not_change_the_result():
    many = SMILES * 30
    one = molecule_features(many, "morgan_count,rdkit2d", chunk_size=16)
    two = molecule_features(many, "morgan_count,rdkit2d", workers=2, chunk_size=16)
    for name in one.arrays:
        np.testing.assert_array_equal(one.arrays[name], two.arrays[name])
    assert one.failed == two.failed


def test_counts_saturate_at_255():
    long_chain = "C" * 400
    counts = molecule_features([long_chain], [MorganFingerprint(counts=True)]).arrays["morgan_count"]
    assert counts.max() == 255


def test_scaler_clips_standardizes_and_round_trips():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, size=(400, 3))
    values[0, 0] = 1e9  # a heavy tail cannot dominate
    values[:, 2] = 7.0  # constant
    values[5, 1] = np.nan
    scaler = FeatureScaler.fit(values)
    scaled = scaler.transform(values)
    assert np.abs(np.nanmean(scaled[:, :2], axis=0)).max() < 0.05
    assert np.nanmax(np.abs(scaled)) <= 5.0 and scaled[0, 0] < 5.0
    assert np.isnan(scaled[5, 1]) and scaler.transform(values, fill=0.0)[5, 1] == 0.0
    np.testing.assert_array_equal(scaled[:, 2], 0.0)
    again = FeatureScaler.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.transform(values), scaled)
    with pytest.raises(InputError, match="fitted on 3 features"):
        scaler.transform(values[:, :2])


def test_scaler_on_an_all_missing_column_fills():
    values = np.array([[1.0, np.nan], [2.0, np.nan], [3.0, np.nan]])
    scaled = FeatureScaler.fit(values).transform(values, fill=0.0)
    np.testing.assert_array_equal(scaled[:, 1], 0.0)


def test_table_features_are_cached_and_extended_for_a_longer_prefix(tmp_path, assay):
    pd.DataFrame({"smiles": assay["smiles"].head(40)}).to_csv(tmp_path / "m.csv", index=False)
    featurized = featurize_file(tmp_path / "m.csv", tmp_path / "m.graphs", progress=False).output
    first = table_features(featurized, "morgan_count:64", max_graphs=10)
    path = feature_cache_path(featurized, "morgan_count:64")
    assert first.shape == (10, 64) and np.load(path).shape == (10, 64)
    longer = table_features(featurized, "morgan_count:64", max_graphs=25)
    np.testing.assert_array_equal(longer[:10], first)
    assert np.load(path).shape == (25, 64)
    direct = molecule_features(assay["smiles"].head(25).tolist(), "morgan_count:64").arrays["morgan_count:64"]
    np.testing.assert_array_equal(longer, direct)
    path.write_bytes(b"\x80\x04not an array")  # damaged (or a pickle): recomputed, never unpickled
    np.testing.assert_array_equal(table_features(featurized, "morgan_count:64"), molecule_features(
        assay["smiles"].head(40).tolist(), "morgan_count:64").arrays["morgan_count:64"])


def test_several_table_features_are_computed_in_one_pass_and_cached_apart(tmp_path, assay):
    pd.DataFrame({"smiles": assay["smiles"].head(30)}).to_csv(tmp_path / "m.csv", index=False)
    featurized = featurize_file(tmp_path / "m.csv", tmp_path / "m.graphs", progress=False).output
    table_features(featurized, "morgan_bits:64", max_graphs=10)  # one of them cached for a shorter prefix
    descriptors, bits = table_feature_arrays(featurized, ["rdkit2d_fast", "morgan_bits:64"], max_graphs=20)

    direct = molecule_features(assay["smiles"].head(20).tolist(), "rdkit2d_fast,morgan_bits:64").arrays
    np.testing.assert_array_equal(descriptors, direct["rdkit2d_fast"])
    np.testing.assert_array_equal(bits, direct["morgan_bits:64"])
    for spec in ("rdkit2d_fast", "morgan_bits:64"):
        assert np.load(feature_cache_path(featurized, spec)).shape[0] == 20
        np.testing.assert_array_equal(table_features(featurized, spec, max_graphs=20), direct[spec])


def test_table_features_need_a_featurized_table(tmp_path):
    with pytest.raises(InputError, match="not a featurized dataset"):
        table_features(tmp_path, "rdkit2d")
