"""The GIN encoder and property model: shapes, invariances, configs, and a model that can learn."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch, Data

from molft.errors import InputError
from molft.featurize.graph import featurize_many, smiles_to_graph
from molft.featurize.vocab import get_vocabulary
from molft.models import EncoderConfig, GINEncoder, GraphPooling, PropertyModel
from molft.runtime import seed_everything

SMILES = ["CCO", "c1ccccc1O", "C[C@H](N)C(=O)O", "F/C=C/F", "[Na+].[Cl-]", "C"]


def small_encoder(vocabulary: str = "ogb", **overrides) -> GINEncoder:
    seed_everything(0)
    config = EncoderConfig(vocabulary=vocabulary, num_layers=3, hidden_dim=32, **overrides)
    return GINEncoder(config)


def batch_of(smiles: list[str], vocabulary: str) -> Batch:
    return Batch.from_data_list([smiles_to_graph(s, vocab=vocabulary) for s in smiles])


@pytest.mark.parametrize("vocabulary", ["ogb", "hu2020"])
@pytest.mark.parametrize("jk", ["last", "concat", "sum", "max"])
def test_encoder_gives_one_embedding_per_atom(vocabulary, jk):
    encoder = small_encoder(vocabulary, jk=jk)
    batch = batch_of(SMILES, vocabulary)

    nodes = encoder(batch.x, batch.edge_index, batch.edge_attr)

    assert nodes.shape == (batch.num_nodes, encoder.out_dim)
    assert encoder.out_dim == (4 * 32 if jk == "concat" else 32)


@pytest.mark.parametrize("vocabulary", ["ogb", "hu2020"])
def test_embedding_tables_are_sized_by_the_vocabulary(vocabulary):
    encoder = small_encoder(vocabulary)
    vocab = get_vocabulary(vocabulary)

    assert [e.num_embeddings for e in encoder.atom_encoder.embeddings] == vocab.atom_dims
    for conv in encoder.convs:
        assert [e.num_embeddings for e in conv.bond_encoder.embeddings] == vocab.bond_dims


@pytest.mark.parametrize("vocabulary", ["ogb", "hu2020"])
@pytest.mark.parametrize("pooling", ["mean", "sum", "max", "attention"])
def test_property_model_predicts_every_task_for_every_molecule(vocabulary, pooling):
    model = PropertyModel(small_encoder(vocabulary, jk="concat"), num_tasks=3, pooling=pooling, head_hidden=16)
    batch = batch_of(SMILES, vocabulary)

    assert model(batch).shape == (len(SMILES), 3)
    assert model.embed(batch).shape == (len(SMILES), model.encoder.out_dim)
    assert model.eval()(smiles_to_graph("CCO", vocab=vocabulary)).shape == (1, 3)  # a lone Data works too


def permute_nodes(graph: Data, generator: torch.Generator) -> Data:
    """The same molecule with its atoms numbered differently."""
    order = torch.randperm(graph.num_nodes, generator=generator)
    new_position = torch.empty_like(order)
    new_position[order] = torch.arange(graph.num_nodes)
    return Data(x=graph.x[order], edge_index=new_position[graph.edge_index], edge_attr=graph.edge_attr)


@pytest.mark.parametrize("vocabulary", ["ogb", "hu2020"])
@pytest.mark.parametrize("pooling", ["mean", "sum", "max", "attention"])
def test_graph_embeddings_do_not_depend_on_atom_order(vocabulary, pooling):
    model = PropertyModel(small_encoder(vocabulary, jk="sum"), num_tasks=1, pooling=pooling).eval()
    graphs = [smiles_to_graph(s, vocab=vocabulary) for s in SMILES]
    generator = torch.Generator().manual_seed(0)
    shuffled = [permute_nodes(g, generator) for g in graphs]

    with torch.no_grad():
        original = model.embed(Batch.from_data_list(graphs))
        permuted = model.embed(Batch.from_data_list(shuffled))

    assert torch.allclose(original, permuted, atol=1e-5)


def test_hu2020_layers_give_every_atom_a_self_loop_bond():
    encoder = small_encoder("hu2020").eval()
    methane = smiles_to_graph("C", vocab="hu2020")  # one atom, no bonds
    self_loop = get_vocabulary("hu2020").bond_feature("bond_type").index("self_loop")

    before = encoder(methane.x, methane.edge_index, methane.edge_attr)
    with torch.no_grad():
        encoder.convs[0].bond_encoder.embeddings[0].weight[self_loop] += 1.0
    after = encoder(methane.x, methane.edge_index, methane.edge_attr)

    assert not torch.allclose(before, after)


def test_ogb_layers_follow_ogb_gin_without_self_loop_edges():
    encoder = small_encoder("ogb")

    assert all(hasattr(conv.conv, "eps") for conv in encoder.convs)  # (1 + eps) * h_i instead
    assert all(not hasattr(conv, "self_loop_attr") for conv in encoder.convs)


def test_encoder_refuses_graphs_of_another_vocabulary():
    encoder = small_encoder("hu2020")
    graph = smiles_to_graph("CCO", vocab="ogb")

    with pytest.raises(InputError, match=r"int64 \[num_rows, 2\].*featurize with vocab='hu2020'"):
        encoder(graph.x, graph.edge_index, graph.edge_attr)


def test_encoder_config_round_trips_through_a_dict():
    config = EncoderConfig(vocabulary="hu2020", num_layers=2, hidden_dim=8, dropout=0.1, jk="concat", residual=True)

    assert EncoderConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"vocabulary": "ogb", "hidden": 300}, r"unknown key\(s\) in encoder config: 'hidden'. Known keys: vocabulary"),
        ({"vocabulary": "smiles2vec"}, r"unknown vocabulary 'smiles2vec'; choose one of: ogb, hu2020"),
        ({"jk": "mean"}, r"unknown jk 'mean'; choose one of: last, concat, sum, max"),
        ({"num_layers": 0}, r"num_layers must be an integer >= 1, got 0"),
        ({"dropout": 1.5}, r"dropout must be a number in \[0, 1\)"),
    ],
)
def test_encoder_config_rejects_what_it_cannot_build(data, message):
    with pytest.raises(InputError, match=message):
        EncoderConfig.from_dict(data)


def test_pooling_names_its_choices():
    with pytest.raises(InputError, match="unknown pooling 'set2set'; choose one of: mean, sum, max, attention"):
        GraphPooling("set2set")
    with pytest.raises(InputError, match="attention pooling needs in_dim"):
        GraphPooling("attention")
    with pytest.raises(InputError, match="num_tasks must be an integer >= 1, got 0"):
        PropertyModel(small_encoder(), num_tasks=0)
    with pytest.raises(InputError, match="unknown pooling 'mean\\+attention'"):
        GraphPooling("mean+attention")


def test_poolings_joined_by_plus_are_concatenated():
    encoder = small_encoder()
    graphs = Batch.from_data_list([smiles_to_graph("CCO"), smiles_to_graph("c1ccccc1CCCC")])
    both = PropertyModel(encoder, num_tasks=2, pooling="mean+max").eval()
    assert both.embedding_dim == 2 * encoder.out_dim and both(graphs).shape == (2, 2)
    with torch.no_grad():
        wide = both.embed(graphs)
        mean = PropertyModel(encoder, num_tasks=1, pooling="mean").eval().embed(graphs)
        largest = PropertyModel(encoder, num_tasks=1, pooling="max").eval().embed(graphs)
    torch.testing.assert_close(wide, torch.cat([mean, largest], dim=1))


def test_property_model_memorises_32_molecules(assay):
    seed_everything(0)
    molecules = assay.head(32)
    graphs = featurize_many(molecules["smiles"], vocab="hu2020").graphs
    batch = Batch.from_data_list(list(graphs))
    target = torch.tensor(molecules["pIC50"].to_numpy(), dtype=torch.float32)[:, None]
    target = (target - target.mean()) / target.std()
    model = PropertyModel(GINEncoder(EncoderConfig("hu2020", num_layers=3, hidden_dim=32)), num_tasks=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    for _ in range(80):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(batch), target)
        loss.backward()
        optimizer.step()

    model.eval()
    with torch.no_grad():
        error = torch.nn.functional.mse_loss(model(batch), target).item()
    assert error < 0.05, f"mean squared error {error:.3f} on standardised training targets"
