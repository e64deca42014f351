"""The featurizer: vocabularies as data, SMILES -> graphs, every failure kept with its reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from ogb.utils import smiles2graph

from molft.errors import InvalidSmilesError
from molft.featurize import HU2020, OGB, featurize_many, get_vocabulary, smiles_to_graph


def test_ethanol_graph_has_atoms_and_both_bond_directions():
    graph = smiles_to_graph("CCO")
    assert graph.num_nodes == 3
    assert graph.x.shape == (3, len(OGB.atom))
    assert graph.edge_index.tolist() == [[0, 1, 1, 2], [1, 0, 2, 1]]
    assert graph.edge_attr.shape == (4, len(OGB.bond))


def test_decoded_features_read_like_chemistry():
    graph = smiles_to_graph("c1ccccc1O")
    oxygen = OGB.decode_atom(graph.x[6].tolist())
    assert oxygen["atomic_num"] == 8 and oxygen["total_num_hs"] == 1 and oxygen["is_aromatic"] is False
    ring_bond = OGB.decode_bond(graph.edge_attr[0].tolist())
    assert ring_bond == {"bond_type": "AROMATIC", "bond_stereo": "STEREONONE", "is_conjugated": True}


def test_failures_keep_their_index_and_reason():
    result = featurize_many(["CCO", "c1ccccc1", "C1CC", "", "CN(C)(C)(C)C", "  CC  "])
    assert result.indices.tolist() == [0, 1, 5]
    assert result.graphs[1].num_nodes == 6
    reasons = {f.index: f.reason for f in result.failures}
    assert reasons[2].startswith("unparsable SMILES") and "unclosed ring" in reasons[2]
    assert reasons[3] == "empty SMILES"
    assert "AtomValenceException" in reasons[4]


def test_invalid_smiles_raises_with_reason():
    with pytest.raises(InvalidSmilesError, match="unclosed ring"):
        smiles_to_graph("C1CC")


def test_molecule_without_bonds_has_empty_edges():
    graph = smiles_to_graph("[Na+].[Cl-]")
    assert graph.num_nodes == 2 and graph.edge_index.shape == (2, 0) and graph.edge_attr.shape == (0, 3)


def test_unusual_values_fall_into_the_other_bucket():
    dummy = smiles_to_graph("*C")  # atomic number 0 is outside 1..118
    assert dummy.x[0, 0].item() == OGB.atom_feature("atomic_num").unknown_index
    assert smiles_to_graph("*C", vocab="hu2020").x[0, 0].item() == HU2020.atom_feature("atomic_num").index("other")


def test_hu2020_indices_match_pretrain_gnns():
    atomic_num = HU2020.atom_feature("atomic_num")
    bond_type = HU2020.bond_feature("bond_type")
    assert atomic_num.index(6) == 5 and atomic_num.index("mask") == 119 and atomic_num.dim == 120
    assert bond_type.index("self_loop") == 4 and bond_type.index("mask") == 5
    graph = smiles_to_graph("F/C=C/F", vocab="hu2020")
    assert graph.x[:, 0].tolist() == [8, 5, 5, 8]
    directions = {HU2020.decode_bond(row)["bond_dir"] for row in graph.edge_attr.tolist()}
    assert directions == {"NONE", "ENDUPRIGHT"}


def test_stereo_shortcuts_still_read_stereo_when_present():
    chiral = smiles_to_graph("C[C@H](N)O")
    assert OGB.decode_atom(chiral.x[1].tolist())["chirality"] == "CHI_TETRAHEDRAL_CCW"
    trans = smiles_to_graph("C/C=C/C")
    stereo = {OGB.decode_bond(row)["bond_stereo"] for row in trans.edge_attr.tolist()}
    assert stereo == {"STEREONONE", "STEREOE"}


def test_workers_do_not_change_the_result():
    smiles = ["CCO", "C1CC", "c1ccccc1", "[Na+].[Cl-]", "CC(=O)O"] * 40
    one = featurize_many(smiles, workers=1, chunk_size=16)
    two = featurize_many(smiles, workers=2, chunk_size=16)
    for key, array in one.graphs.arrays().items():
        assert np.array_equal(array, two.graphs.arrays()[key]), key
    assert one.indices.tolist() == two.indices.tolist() and one.failures == two.failures


def test_unknown_vocabulary_lists_the_choices():
    with pytest.raises(ValueError, match="ogb, hu2020"):
        get_vocabulary("nope")


def _assert_identical_to_ogb(smiles: list[str]) -> int:
    result = featurize_many(smiles)
    for position, graph in zip(result.indices, result.graphs):
        reference = smiles2graph(smiles[position])
        assert np.array_equal(graph.x.numpy(), reference["node_feat"]), smiles[position]
        assert np.array_equal(graph.edge_index.numpy(), reference["edge_index"]), smiles[position]
        assert np.array_equal(graph.edge_attr.numpy(), reference["edge_feat"]), smiles[position]
    return len(result.indices)


def test_identical_to_ogb_smiles2graph_on_the_bundled_chembl_assay(assay):
    assert _assert_identical_to_ogb(assay["smiles"].tolist()) == len(assay)


@pytest.mark.parametrize(
    "relative, column",
    [
        ("zinc/moses_test.csv.gz", "SMILES"),
        ("moleculenet/tox21.csv.gz", "smiles"),
        ("moleculenet/BBBP.csv.gz", "smiles"),
        ("moleculenet/clintox.csv.gz", "smiles"),
    ],
)
def test_identical_to_ogb_smiles2graph_on_real_data(data_dir, relative, column):
    smiles = pd.read_csv(data_dir / relative, nrows=1500)[column].tolist()
    assert _assert_identical_to_ogb(smiles) > 1400


# Each SMILES defeats one of the featurizer's syntax shortcuts if that shortcut were wrong:
# sanitization charges a nitro group with no bracket, RDKit makes bonds to a metal dative, arrows
# write dative bonds, CXSMILES sets radicals, and acyclic, quadruple and stereo bonds; explicit and
# isotopic hydrogens check that parsing without stereo perception removes hydrogens as RDKit does
# (and '[nH]', a hydrogen count, that a molecule without hydrogen atoms is sanitized in place).
SHORTCUT_EDGE_CASES = [
    "CN(=O)=O",
    "O=n1ccccc1",
    "Cc1cc2c(cc1C)N3C=N2[Co+]N3",
    "N1=CC=CC=C1[Pt]Cl",
    "C->[Fe]<-N",
    "[NH3]->[Cu+2]",
    "CC |^1:0|",
    "[CH2]C",
    "C=CC=CC#N",
    "C$C",
    "F/C=C/F",
    "C[C@H](N)C(=O)O",
    "c1cc[se]c1",
    "[Na+].[Cl-]",
    "[H]C([H])([H])[H]",
    "[H]OC(=O)C",
    "C[N+]([H])(C)C",
    "[2H]C([2H])Cl",
    "[H][H]",
    "[H]",
    "[Na+].[H-]",
    "[#1]C",
    "OC([2H])=O",
    "c1cc[nH]c1",
    "[Hg+2].[Cl-].[Cl-]",
]


@pytest.mark.parametrize("smiles", SHORTCUT_EDGE_CASES)
def test_syntax_shortcuts_never_change_the_features(smiles):
    assert _assert_identical_to_ogb([smiles]) == 1
