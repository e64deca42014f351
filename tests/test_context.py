"""Context prediction: substructure/context pairs, their batching, and a loss that learns."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.loader import DataLoader

from molft.data.builtin import builtin_assay
from molft.errors import InputError
from molft.featurize.graph import featurize_many, smiles_to_graph
from molft.models import EncoderConfig, GINEncoder
from molft.pretraining.context import ContextPrediction, extract_substructure_context, hop_distances
from molft.pretraining.registry import OBJECTIVES, build_objectives
from molft.runtime import seed_everything

DODECANE = "C" * 12  # atom i sits |i - j| bonds from atom j
K, R1, R2 = 5, 4, 7


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, most of all on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_config(**overrides) -> EncoderConfig:
    return EncoderConfig(**{"vocabulary": "hu2020", "num_layers": 5, "hidden_dim": 32, **overrides})


@pytest.mark.parametrize("center", [0, 3, 6, 11])
def test_on_a_chain_substructure_and_context_are_hop_shells(center):
    pair = extract_substructure_context(smiles_to_graph(DODECANE), center, K, R1, R2)
    hops = [abs(atom - center) for atom in range(12)]

    substruct = pair.substruct_atoms.tolist()
    context = pair.context_atoms.tolist()
    anchors = pair.context_atoms[pair.context_anchor_index].tolist()
    assert substruct == [atom for atom in range(12) if hops[atom] <= K]
    assert context == [atom for atom in range(12) if R1 < hops[atom] <= R2]
    assert anchors == sorted(set(substruct) & set(context))
    assert substruct[int(pair.substruct_center_index)] == center
    assert pair.substruct_x.shape[0] == pair.substruct_num_nodes == len(substruct)
    assert pair.context_num_anchors == len(anchors)


def test_sub_graphs_keep_exactly_the_bonds_between_their_atoms():
    pair = extract_substructure_context(smiles_to_graph(DODECANE), center=6)  # substructure: atoms 1..11

    assert pair.substruct_edge_index.shape == (2, 2 * 10)  # the 10 bonds of a chain of 11
    assert pair.substruct_edge_index[:, :2].tolist() == [[0, 1], [1, 0]]  # both directions side by side
    assert pair.context_edge_index.tolist() == [[0, 1], [1, 0]]  # context atoms 0, 1, 11: only 0-1 is bonded
    assert pair.context_edge_attr.shape == (2, pair.edge_attr.shape[1])


@pytest.mark.parametrize("smiles", ["c1ccc2ccccc2c1CCCCN", "CC(C)(C)c1ccc(cc1)C(=O)NC1CCCCC1", "OCC.CCCCCCCCCCCCO"])
def test_on_rings_and_fragments_shells_match_networkx_distances(smiles):
    nx = pytest.importorskip("networkx")
    data = smiles_to_graph(smiles)
    graph = nx.Graph(data.edge_index.t().tolist())
    graph.add_nodes_from(range(data.num_nodes))
    for center in range(data.num_nodes):
        hops = nx.single_source_shortest_path_length(graph, center)  # what Hu et al. use
        pair = extract_substructure_context(data, center, K, R1, R2)

        assert set(pair.substruct_atoms.tolist()) == {atom for atom, d in hops.items() if d <= K}
        assert set(pair.context_atoms.tolist()) == {atom for atom, d in hops.items() if R1 < d <= R2}
        assert all(hops[atom] > R1 for atom in pair.context_atoms.tolist())  # the inner r1 hops stay out
        anchors = set(pair.context_atoms[pair.context_anchor_index].tolist())
        assert anchors == set(pair.substruct_atoms.tolist()) & set(pair.context_atoms.tolist())
        assert hop_distances(data.edge_index, data.num_nodes, center).tolist() == [
            hops.get(atom, -1) for atom in range(data.num_nodes)
        ]


def test_transform_leaves_its_input_alone_and_is_reproducible():
    objective = ContextPrediction(small_config())
    data = smiles_to_graph("CC(C)(C)c1ccc(cc1)C(=O)NC1CCCCC1", vocab="hu2020")
    before = {key: value.clone() for key, value in data.items()}

    first = objective.transform(data, torch.Generator().manual_seed(7))
    again = objective.transform(data, torch.Generator().manual_seed(7))

    assert sorted(data.keys()) == sorted(before)
    assert all(torch.equal(data[key], value) for key, value in before.items())
    assert torch.equal(first.x, data.x) and "substruct_x" not in data
    assert torch.equal(first.substruct_atoms, again.substruct_atoms)


def test_pyg_dataloader_offsets_each_sub_graph_by_its_own_size():
    graphs = [smiles_to_graph(s) for s in (DODECANE, "CCO", "C" * 9)]
    pairs = [extract_substructure_context(g, c) for g, c in zip(graphs, (6, 0, 0))]

    batch = next(iter(DataLoader(pairs, batch_size=3)))

    substruct_start = [0, 11, 14]  # substructures of 11, 3 and 6 atoms
    context_start = [0, 3, 3]  # contexts of 3, 0 and 3 atoms
    assert batch.substruct_center_index.tolist() == [5 + 0, 0 + 11, 0 + 14]
    assert batch.context_anchor_index.tolist() == [1 + 0, 2 + 0, 0 + 3]
    assert batch.context_num_anchors.tolist() == [2, 0, 1]
    assert batch.substruct_num_nodes.tolist() == [11, 3, 6]
    for i, pair in enumerate(pairs):
        own = batch.substruct_edge_index[:, batch.substruct_edge_index[0] >= substruct_start[i]]
        own = own[:, own[0] < substruct_start[i] + pair.substruct_num_nodes]
        assert torch.equal(own - substruct_start[i], pair.substruct_edge_index)
    assert torch.equal(batch.context_edge_index[:, 2:] - context_start[2], pairs[2].context_edge_index)
    assert batch.x.shape[0] == sum(g.num_nodes for g in graphs)  # the whole molecules ride along


def test_graphs_without_context_sit_out_and_are_counted():
    seed_everything(0)
    config = small_config()
    objective, encoder = ContextPrediction(config), GINEncoder(config)
    graphs = [smiles_to_graph(s, vocab="hu2020") for s in (DODECANE, "CCO", "C" * 10, "C")]
    batch = next(iter(DataLoader([extract_substructure_context(g, 0) for g in graphs], batch_size=4)))

    loss, logs = objective.loss(encoder, batch)

    assert logs["graphs_without_context"] == 2
    assert math.isfinite(loss.item()) and 0 <= logs["accuracy"] <= 1

    lonely = next(iter(DataLoader([extract_substructure_context(graphs[1], 0)], batch_size=1)))
    loss, logs = objective.loss(encoder, lonely)
    loss.backward()  # nothing to contrast: a zero that still backpropagates
    assert loss.item() == 0 and logs["graphs_without_context"] == 1


@pytest.mark.parametrize("mode", ["cbow", "skipgram"])
def test_loss_falls_while_pretraining_on_the_builtin_assay(mode):
    seed_everything(0)
    config = small_config()
    objective = ContextPrediction(config, mode=mode)
    encoder = GINEncoder(config)
    graphs = featurize_many(builtin_assay()["smiles"][:64], vocab="hu2020").graphs
    generator = torch.Generator().manual_seed(0)
    pairs = [objective.transform(graph, generator) for graph in graphs]
    loader = DataLoader(pairs, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam([*encoder.parameters(), *objective.parameters()], lr=1e-3)

    losses = []
    for _ in range(15):  # 2 batches an epoch: 30 steps
        for batch in loader:
            optimizer.zero_grad()
            loss, logs = objective.loss(encoder, batch)
            loss.backward()
            optimizer.step()
            losses.append(logs["loss"])

    assert all(math.isfinite(value) for value in losses)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_registered_as_context_prediction_with_checked_options():
    config = small_config()

    objectives = build_objectives("context_prediction", config, {"context_prediction": {"negative_samples": 2}})

    objective = objectives.objectives["context_prediction"]
    assert OBJECTIVES["context_prediction"] is ContextPrediction and isinstance(objective, ContextPrediction)
    assert objective.options["context_inner_hops"] == 4 and objective.options["context_outer_hops"] == 7
    assert objective.context_encoder.config.num_layers == 3
    combined = build_objectives("attr_masking,context_prediction", config)  # prefixes do not collide
    graphs = [smiles_to_graph(s, vocab="hu2020") for s in (DODECANE, "c1ccc2ccccc2c1CCCCN", "CCO")]
    batch = next(iter(DataLoader([combined.transform(g, torch.Generator().manual_seed(0)) for g in graphs], 3)))
    loss, logs = combined.loss(GINEncoder(config), batch)
    assert math.isfinite(loss.item()) and "context_prediction/accuracy" in logs and "attr_masking/accuracy" in logs
    with pytest.raises(InputError, match="context_inner_hops \\(5\\) must be below substructure_hops \\(5\\)"):
        ContextPrediction(config, context_inner_hops=5)
    with pytest.raises(InputError, match="jk 'last', 'sum' or 'max'"):
        ContextPrediction(small_config(jk="concat"))
    with pytest.raises(InputError, match="unknown mode 'bag'"):
        ContextPrediction(config, mode="bag")
