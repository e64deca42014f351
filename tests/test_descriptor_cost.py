"""The descriptor-cost benchmark's measurements, on a handful of molecules."""

from __future__ import annotations

from benchmarks.descriptor_cost import FEATURES, information_kept, per_descriptor_ms, per_feature_ms
from molft.featurize.molecule import RDKIT2D_FAST_LEFT_OUT, RDKIT2D_NAMES


def test_every_descriptor_and_feature_gets_a_cost_per_molecule(assay):
    smiles = assay["smiles"].head(5).tolist()
    per_descriptor = per_descriptor_ms(smiles, rounds=1)
    assert list(per_descriptor) == list(RDKIT2D_NAMES) and min(per_descriptor.values()) >= 0
    per_feature = per_feature_ms(smiles, rounds=1)
    assert set(per_feature) == {"parse SMILES", "molft graph featurization", *FEATURES}
    assert all(ms > 0 for ms in per_feature.values())


def test_the_information_check_scores_each_left_out_group(assay):
    kept = information_kept(assay["smiles"].head(80).tolist())
    assert list(kept) == list(RDKIT2D_FAST_LEFT_OUT)
    connectivity = next(info for reason, info in kept.items() if "connectivity" in reason)
    assert connectivity["descriptors"] == 17 and connectivity["mean_r2"] > 0.5  # Chi, Kappa: near copies of size
