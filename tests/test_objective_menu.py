"""The rest of the objective menu: structure, link_prediction, edge_property, contrastive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from rdkit import Chem
from torch_geometric.data import Batch

from molft.data.featurized import featurize_file
from molft.errors import InputError
from molft.featurize.graph import featurize_many, smiles_to_graph
from molft.featurize.vocab import get_vocabulary
from molft.models import EncoderConfig, GINEncoder
from molft.pretraining import OBJECTIVES, build_objectives
from molft.pretraining.contrastive import augment
from molft.pretraining.loop import pretrain
from molft.pretraining.masking import atom_mask_row, bond_mask_row
from molft.pretraining.structure import RING_SIZE_CLASSES, StructurePrediction

TINY = {"num_layers": 2, "hidden_dim": 32}
MENU = ["structure", "link_prediction", "edge_property", "contrastive"]
MOLECULE = "CC(=O)Nc1ccc(O)cc1CCCCN"  # 16 atoms, 16 bonds, one ring


@pytest.fixture(scope="module")
def smiles(assay) -> list[str]:
    return assay["smiles"].head(48).tolist()


def objective(name: str, vocab: str = "ogb", **options):
    return OBJECTIVES[name](EncoderConfig(vocabulary=vocab, **TINY), **options)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("vocab", ["ogb", "hu2020"])
@pytest.mark.parametrize("name", MENU)
def test_transform_adds_its_own_attributes_and_follows_the_seed(name, vocab):
    graph = smiles_to_graph(MOLECULE, vocab=vocab)
    before = {key: value.clone() for key, value in graph.items()}
    chosen = objective(name, vocab)

    out = chosen.transform(graph, seeded(7))

    assert {key: value for key, value in graph.items()}.keys() == before.keys()  # input untouched
    assert all(torch.equal(graph[key], value) for key, value in before.items())
    added = set(out.keys()) - set(before)
    assert added and all(key.startswith(f"{name}_") for key in added)
    assert all(torch.equal(out[key], before[key]) for key in before)  # x, edge_index, edge_attr as they were
    again = chosen.transform(graph, seeded(7))
    assert all(torch.equal(out[key], again[key]) for key in added)
    other = chosen.transform(graph, seeded(8))
    assert not all(torch.equal(out[key], other[key]) for key in added)


@pytest.mark.parametrize("vocab", ["ogb", "hu2020"])
def test_structure_targets_agree_with_rdkit(smiles, vocab):
    structure = objective("structure", vocab, properties=["degree", "ring_size", "in_ring", "aromatic"])
    for text, graph in zip(smiles, featurize_many(smiles, vocab).graphs):
        mol = Chem.MolFromSmiles(text)
        rings = mol.GetRingInfo()
        targets = structure.targets(graph, torch.ones(graph.num_nodes, dtype=torch.bool))
        expected = [
            [min(a.GetDegree(), 5), RING_SIZE_CLASSES.index(_ring_class(rings.MinAtomRingSize(a.GetIdx()))),
             int(a.IsInRing()), int(a.GetIsAromatic())]
            for a in mol.GetAtoms()
        ]
        assert targets.tolist() == expected, text


def _ring_class(size: int) -> str:
    return "none" if size == 0 else "7+" if size >= 7 else str(size)


def test_structure_masks_atoms_and_their_bonds_and_targets_only_those():
    structure = objective("structure")  # ogb: degree, ring_size, aromatic, num_hs
    assert structure.properties == ["degree", "ring_size", "aromatic", "num_hs"]
    assert objective("structure", "hu2020").properties == ["degree", "ring_size", "aromatic"]  # no H counts there
    graphs = [structure.transform(smiles_to_graph(s), seeded(0)) for s in (MOLECULE, "c1ccccc1", "CCO")]
    batch = Batch.from_data_list(graphs)

    masked = batch.structure_atom_mask
    assert int(masked.sum()) == sum(int(n * 0.15 + 1) for n in (16, 6, 3))
    assert batch.structure_targets.shape == (batch.num_nodes, 4)
    assert (batch.structure_targets[~masked] == -1).all() and (batch.structure_targets[masked] >= 0).all()
    assert (batch.structure_x[masked] == torch.tensor(atom_mask_row(get_vocabulary("ogb")))).all()
    touched = masked[batch.edge_index[0]] | masked[batch.edge_index[1]]
    assert (batch.structure_edge_attr[touched] == torch.tensor(bond_mask_row(get_vocabulary("ogb")))).all()
    benzene = graphs[1].structure_targets[graphs[1].structure_atom_mask][0].tolist()
    assert benzene == [2, RING_SIZE_CLASSES.index("6"), 1, 1]  # two heavy neighbours, 6-ring, aromatic, one H


def test_link_prediction_hides_bonds_and_samples_non_bonded_pairs():
    link = objective("link_prediction")
    graph = smiles_to_graph(MOLECULE)
    out = link.transform(graph, seeded(0))
    hidden = int(16 * 0.15 + 1)  # 3 bonds

    assert out.link_prediction_edge_index.shape == (2, 32 - 2 * hidden)
    assert out.link_prediction_edge_attr.shape == (32 - 2 * hidden, 3)
    assert out.link_prediction_pair_index.shape == (2, 2 * hidden)
    assert out.link_prediction_pair_label.tolist() == [1.0] * hidden + [0.0] * hidden
    bonds = {tuple(e) for e in graph.edge_index.t().tolist()}
    kept = {tuple(e) for e in out.link_prediction_edge_index.t().tolist()}
    pairs = [tuple(p) for p in out.link_prediction_pair_index.t().tolist()]
    for u, v in pairs[:hidden]:  # hidden bonds: real bonds, gone in both directions
        assert (u, v) in bonds and (u, v) not in kept and (v, u) not in kept
    ends = {atom for pair in pairs[:hidden] for atom in pair}
    for u, v in pairs[hidden:]:  # negatives: not bonded, between atoms that each lost a bond
        assert (u, v) not in bonds and u != v and {u, v} <= ends

    batch = Batch.from_data_list([link.transform(smiles_to_graph(s), seeded(1)) for s in (MOLECULE, "CCO", "CCCC")])
    pair_index = batch.link_prediction_pair_index
    assert (batch.batch[pair_index[0]] == batch.batch[pair_index[1]]).all()  # offset per molecule


def test_edge_property_masks_bonds_only():
    edge = objective("edge_property")
    batch = Batch.from_data_list([edge.transform(smiles_to_graph(s), seeded(0)) for s in (MOLECULE, "C=CC#N")])

    chosen = batch.edge_property_bond_mask
    assert int(chosen.sum()) == int(16 * 0.15 + 1) + int(3 * 0.15 + 1)
    both = chosen | chosen.roll(1)  # the second direction of each chosen bond
    mask_row = torch.tensor(bond_mask_row(get_vocabulary("ogb")))
    assert (batch.edge_property_edge_attr[both] == mask_row).all()
    assert torch.equal(batch.edge_property_edge_attr[~both], batch.edge_attr[~both])
    assert not chosen[1::2].any()  # each bond predicted once


@pytest.mark.parametrize("augmentation", ["drop_nodes", "subgraph", "mask_atoms", "drop_bonds"])
def test_each_augmentation_keeps_the_atoms_and_edits_what_it_says(augmentation):
    graph = smiles_to_graph(MOLECULE)
    mask_row = atom_mask_row(get_vocabulary("ogb"))
    x, edge_index, edge_attr, keep = augment(graph, augmentation, 0.2, mask_row, seeded(3))

    assert x.shape == graph.x.shape and keep.shape == (16,) and edge_attr.shape == (edge_index.size(1), 3)
    assert keep[edge_index].all()  # no edge touches a dropped atom
    assert (x[~keep] == torch.tensor(mask_row)).all()
    dropped, removed_bonds = int((~keep).sum()), (32 - edge_index.size(1)) // 2
    masked = int((x != graph.x).any(dim=1).sum())
    if augmentation == "drop_nodes":
        assert dropped == int(16 * 0.2) == 3
    elif augmentation == "subgraph":
        assert int(keep.sum()) == int(16 * 0.8) == 12
        assert _connected(keep, edge_index)
    elif augmentation == "mask_atoms":
        assert dropped == 0 and masked == 3 and removed_bonds == 0
    else:
        assert dropped == 0 and masked == 0 and removed_bonds == int(16 * 0.2) == 3


def _connected(keep: torch.Tensor, edge_index: torch.Tensor) -> bool:
    atoms = keep.nonzero().view(-1).tolist()
    seen, stack = {atoms[0]}, [atoms[0]]
    while stack:
        u = stack.pop()
        for v in edge_index[1, edge_index[0] == u].tolist():
            if v not in seen:
                seen.add(v)
                stack.append(v)
    return seen == set(atoms)


def test_contrastive_views_batch_with_the_molecules_own_atoms():
    contrastive = objective("contrastive")
    batch = Batch.from_data_list([contrastive.transform(smiles_to_graph(s), seeded(i)) for i, s in enumerate(
        [MOLECULE, "c1ccccc1", "CCO"])])
    assert batch.contrastive_augmentations.shape == (3, 2)
    for view in ("view1", "view2"):
        assert batch[f"contrastive_{view}_x"].shape == batch.x.shape
        assert batch[f"contrastive_{view}_keep"].shape == (batch.num_nodes,)
        edges = batch[f"contrastive_{view}_edge_index"]
        assert (batch.batch[edges[0]] == batch.batch[edges[1]]).all()


@pytest.mark.parametrize(
    "vocab, name",
    [("ogb", "structure"), ("hu2020", "structure"), ("ogb", "link_prediction"), ("hu2020", "link_prediction"),
     ("ogb", "edge_property"), ("hu2020", "edge_property"), ("ogb", "contrastive"), ("hu2020", "contrastive")],
)
def test_objective_loss_is_finite_and_decreases(smiles, vocab, name):
    torch.manual_seed(0)
    config = EncoderConfig(vocabulary=vocab, **TINY)
    encoder, objectives = GINEncoder(config), build_objectives(name, config)
    generator = seeded(0)
    batch = Batch.from_data_list([objectives.transform(g, generator) for g in featurize_many(smiles, vocab).graphs])
    optimizer = torch.optim.Adam([*encoder.parameters(), *objectives.parameters()], lr=3e-3)
    losses = []
    for _ in range(15):
        loss, logs = objectives.loss(encoder, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(logs["loss"])
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.85 * losses[0]
    accuracies = [value for key, value in logs.items() if key.endswith("accuracy")]
    assert accuracies and all(0 <= value <= 1 for value in accuracies)


def test_the_menu_combines_with_attribute_masking(smiles):
    config = EncoderConfig(**TINY)
    objectives = build_objectives(["attr_masking", *MENU], config)
    graphs = list(featurize_many(smiles[:16]).graphs)
    originals = [g.x.clone() for g in graphs]
    batch = Batch.from_data_list([objectives.transform(g, seeded(i)) for i, g in enumerate(graphs)])
    assert all(torch.equal(g.x, x) for g, x in zip(graphs, originals))

    loss, logs = objectives.loss(GINEncoder(config), batch)
    loss.backward()
    assert np.isfinite(float(loss.detach()))
    for key in ("attr_masking/accuracy", "structure/ring_size_accuracy", "link_prediction/auc",
                "edge_property/accuracy", "contrastive/accuracy"):
        assert key in logs


@pytest.mark.parametrize("vocab", ["ogb", "hu2020"])
@pytest.mark.parametrize("molecules", [["[Na+].[Cl-]", "C", "O"], ["[Na+].[Cl-]"]])
def test_molecules_without_bonds_go_through_every_objective(vocab, molecules):
    config = EncoderConfig(vocabulary=vocab, **TINY)
    objectives = build_objectives(MENU, config)
    graphs = featurize_many(molecules, vocab).graphs
    batch = Batch.from_data_list([objectives.transform(g, seeded(0)) for g in graphs])

    loss, logs = objectives.loss(GINEncoder(config), batch)
    loss.backward()
    assert np.isfinite(float(loss.detach()))
    assert batch.link_prediction_pair_index.shape == (2, 0) and batch.edge_property_bond_mask.numel() == 0


@pytest.mark.parametrize(
    "vocab, name, options, message",
    [
        ("ogb", "structure", {"mask_rate": 1.0}, "structure: mask_rate must be a number in"),
        ("ogb", "structure", {"properties": ["colour"]}, "unknown properties entry 'colour'; choose from: degree"),
        ("ogb", "structure", {"properties": []}, "properties must be a non-empty list"),
        ("ogb", "structure", {"properties": "degree,degree"}, "properties lists an entry twice"),
        ("ogb", "structure", {"mask_bonds": "yes"}, "mask_bonds must be true or false"),
        ("hu2020", "structure", {"properties": ["num_hs"]}, "num_hs needs a vocabulary with a 'total_num_hs'"),
        ("ogb", "link_prediction", {"hide_rate": -0.1}, "link_prediction: hide_rate must be"),
        ("ogb", "link_prediction", {"negatives": "hard"}, "unknown negatives 'hard'; choose one of: endpoints"),
        ("ogb", "edge_property", {"mask_rate": "0.2"}, "edge_property: mask_rate must be a number"),
        ("ogb", "contrastive", {"temperature": 0}, "contrastive: temperature must be a number > 0"),
        ("ogb", "contrastive", {"augmentations": ["rotate"]}, "unknown augmentations entry 'rotate'"),
        ("ogb", "contrastive", {"aug_rate": 1}, "contrastive: aug_rate must be a number in"),
        ("ogb", "contrastive", {"tau": 0.1}, "objective 'contrastive'.*tau"),
    ],
)
def test_bad_options_are_refused_by_name(vocab, name, options, message):
    with pytest.raises(InputError, match=message):
        build_objectives(name, EncoderConfig(vocabulary=vocab, **TINY), {name: options})


def test_options_accept_comma_separated_names():
    structure = objective("structure", properties="degree, in_ring")
    assert structure.options == {"mask_rate": 0.15, "properties": ["degree", "in_ring"], "mask_bonds": True}
    assert isinstance(structure, StructurePrediction)
    assert objective("contrastive", augmentations="subgraph,drop_nodes").options["augmentations"] == [
        "subgraph", "drop_nodes"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, smiles) -> Path:
    folder = tmp_path_factory.mktemp("menu")
    (folder / "mols.csv").write_text("smiles\n" + "\n".join(smiles) + "\n")
    featurize_file(folder / "mols.csv", folder / "mols.graphs", progress=False)
    return folder / "mols.graphs"


def test_the_whole_menu_pretrains_and_resumes_to_the_same_weights(corpus, tmp_path):
    options = dict(
        objectives="structure,link_prediction,edge_property:0.5,contrastive:0.5",
        objective_options={"structure": {"properties": ["degree", "ring_size"]}},
        encoder={**TINY, "dropout": 0.2}, epochs=2, batch_size=16, progress=False, seed=0, checkpoint_every_steps=2,
    )
    unbroken = pretrain(corpus, tmp_path / "unbroken", **options)  # 48 molecules: 3 steps an epoch

    crashed = pretrain(corpus, tmp_path / "resumed", stop_after_steps=5, **options)
    assert not crashed.completed
    state = torch.load(tmp_path / "resumed" / "checkpoint" / "train_state.pt", weights_only=True)
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (4, 1, 1)
    resumed = pretrain(corpus, tmp_path / "resumed", resume=True, **options)

    assert resumed.resumed_from_step == 4 and resumed.steps == unbroken.steps == 6
    a = safetensors.torch.load_file(str(unbroken.encoder / "model.safetensors"))
    b = safetensors.torch.load_file(str(resumed.encoder / "model.safetensors"))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert resumed.final_losses == pytest.approx(unbroken.final_losses)
    for name in MENU:
        assert np.isfinite(unbroken.final_losses[f"{name}/loss"])
    recorded = json.loads((unbroken.encoder / "config.json").read_text())["extra"]["pretraining"]
    assert recorded["objective_options"]["structure"]["properties"] == ["degree", "ring_size"]
    assert recorded["objective_options"]["contrastive"]["temperature"] == 0.1
