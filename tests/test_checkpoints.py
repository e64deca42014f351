"""Model directories: save -> load is exact, configs are checked, pickles never run code."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from torch_geometric.data import Batch

from molft.checkpoints import import_pretrain_gnns, load_encoder, load_model, save_encoder, save_model
from molft.errors import InputError, UnsafeFileError
from molft.featurize.graph import smiles_to_graph
from molft.featurize.vocab import get_vocabulary
from molft.models import EncoderConfig, GINEncoder, PropertyModel
from molft.runtime import seed_everything
from molft.pretrained import SHIPPED, resolve_pretrained

SMILES = ["CCO", "c1ccccc1O", "C[C@H](N)C(=O)O", "F/C=C/F", "C"]


def trained_looking(module: torch.nn.Module) -> torch.nn.Module:
    """Give BatchNorm non-default running statistics, as training would."""
    for norm in (m for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d)):
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
    return module.eval()


def small_model(vocabulary: str = "ogb") -> PropertyModel:
    seed_everything(0)
    encoder = GINEncoder(EncoderConfig(vocabulary=vocabulary, num_layers=2, hidden_dim=16, jk="concat"))
    return trained_looking(PropertyModel(encoder, num_tasks=2, pooling="attention", head_hidden=8))


def batch_of(vocabulary: str) -> Batch:
    return Batch.from_data_list([smiles_to_graph(s, vocab=vocabulary) for s in SMILES])


@pytest.mark.parametrize("vocabulary", ["ogb", "hu2020"])
def test_saved_model_predicts_exactly_as_before(tmp_path, vocabulary):
    model, batch = small_model(vocabulary), batch_of(vocabulary)

    save_model(model, tmp_path / "model", extra={"task_names": ["a", "b"]})
    loaded, config = load_model(tmp_path / "model")

    with torch.no_grad():
        assert torch.equal(loaded(batch), model(batch))
    assert not loaded.training
    assert config["kind"] == "property_model" and config["encoder"]["vocabulary"] == vocabulary
    assert config["extra"] == {"task_names": ["a", "b"]}
    assert config["metadata"]["torch"] == torch.__version__
    assert sorted(os.listdir(tmp_path / "model")) == ["config.json", "model.safetensors"]


def test_saved_encoder_embeds_exactly_as_before(tmp_path):
    encoder, batch = small_model("hu2020").encoder, batch_of("hu2020")

    save_encoder(encoder, tmp_path / "encoder", extra={"objectives": ["attr_masking"]})
    loaded, config = load_encoder(tmp_path / "encoder")

    with torch.no_grad():
        graphs = (batch.x, batch.edge_index, batch.edge_attr)
        assert torch.equal(loaded(*graphs), encoder(*graphs))
    assert config["extra"]["objectives"] == ["attr_masking"]


def test_the_encoder_of_a_property_model_loads_on_its_own(tmp_path):
    model, batch = small_model(), batch_of("ogb")
    save_model(model, tmp_path / "model")

    encoder, _ = load_encoder(tmp_path / "model" / "model.safetensors")

    with torch.no_grad():
        graphs = (batch.x, batch.edge_index, batch.edge_attr)
        assert torch.equal(encoder(*graphs), model.encoder(*graphs))


def test_saving_never_replaces_a_model_unless_asked(tmp_path):
    model = small_model()
    save_model(model, tmp_path / "model")

    with pytest.raises(InputError, match="already holds a model; pass overwrite=True"):
        save_model(model, tmp_path / "model")
    save_model(model, tmp_path / "model", overwrite=True)


def edit_config(directory, edit) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(notes="hi"), r"unknown key\(s\) 'notes'.*put your own facts under 'extra'"),
        (lambda c: c["encoder"].update(layers=3), r"unknown key\(s\) in encoder config: 'layers'"),
        (lambda c: c["encoder"].update(vocabulary="smiles2vec"), r"unknown vocabulary 'smiles2vec'"),
        (lambda c: c["head"].pop("num_tasks"), r"missing key\(s\) in head config: 'num_tasks'"),
        (lambda c: c.update(format_version=99), r"format_version 99; this molft reads version 1"),
        (
            lambda c: c["encoder"].update(hidden_dim=24),
            r"wrong shape: encoder.atom_encoder.embeddings.0.weight \[119, 16\] \(config implies \[119, 24\]\)",
        ),
        (lambda c: c["encoder"].update(num_layers=3), r"weights do not match config.json \(missing: encoder.convs.2"),
        (lambda c: c["head"].update(num_tasks=5), r"wrong shape: head.2.weight \[2, 8\] \(config implies \[5, 8\]\)"),
    ],
)
def test_loading_explains_what_is_wrong_with_a_config(tmp_path, edit, message):
    save_model(small_model(), tmp_path / "model")
    edit_config(tmp_path / "model", edit)

    with pytest.raises(InputError, match=message):
        load_model(tmp_path / "model")


def test_an_encoder_is_not_a_property_model(tmp_path):
    save_encoder(small_model().encoder, tmp_path / "encoder")

    with pytest.raises(InputError, match="holds a 'encoder', not a property model; load it with load_encoder"):
        load_model(tmp_path / "encoder")


class RunsCode:
    """Unpickling this runs a shell command: what a malicious checkpoint does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def write_malicious(tmp_path, style: str):
    sentinel = tmp_path / f"SENTINEL-{style}"
    path = tmp_path / f"evil-{style}.pt"
    payload = {"x_embedding1.weight": torch.zeros(2, 2), "payload": RunsCode(f"touch {sentinel}")}
    if style == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    return path, sentinel


def test_the_malicious_file_really_would_run_code(tmp_path):
    path, sentinel = write_malicious(tmp_path, "pickle")

    pickle.loads(path.read_bytes())  # what molft never does

    assert sentinel.exists()


@pytest.mark.parametrize("style", ["pickle", "torch.save"])
@pytest.mark.parametrize(
    "load",
    [load_encoder, load_model, import_pretrain_gnns],
    ids=["load_encoder", "load_model", "import_pretrain_gnns"],
)
def test_every_loader_refuses_a_pickle_that_would_run_code(tmp_path, style, load):
    path, sentinel = write_malicious(tmp_path, style)

    with pytest.raises(UnsafeFileError, match="refused; reading it would need full unpickling"):
        load(path)

    assert not sentinel.exists()


@pytest.mark.parametrize("load", [load_encoder, load_model], ids=["load_encoder", "load_model"])
def test_a_model_directory_with_a_malicious_pickle_is_refused(tmp_path, load):
    save_model(small_model(), tmp_path / "model")
    (tmp_path / "model" / "model.safetensors").unlink()
    path, sentinel = write_malicious(tmp_path, "torch.save")
    path.rename(tmp_path / "model" / "model.pt")

    with pytest.raises(UnsafeFileError):
        load(tmp_path / "model")

    assert not sentinel.exists()


def test_a_plain_tensor_pickle_beside_the_config_still_loads(tmp_path):
    model, batch = small_model(), batch_of("ogb")
    save_model(model, tmp_path / "model")
    (tmp_path / "model" / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "model" / "model.pt")

    loaded, _ = load_model(tmp_path / "model")

    with torch.no_grad():
        assert torch.equal(loaded(batch), model(batch))


def test_a_renamed_pickle_is_not_a_safetensors_file(tmp_path):
    save_model(small_model(), tmp_path / "model")
    path, sentinel = write_malicious(tmp_path, "torch.save")
    os.replace(path, tmp_path / "model" / "model.safetensors")

    with pytest.raises(InputError, match="not a readable safetensors file"):
        load_model(tmp_path / "model")

    assert not sentinel.exists()


# Shapes of the published snap-stanford/pretrain-gnns GIN checkpoints (chem/model.py, class GNN):
# 120 atom types (incl. mask), 3 chirality tags, 6 bond types (incl. self-loop and mask), 3 bond
# directions, 5 layers of width 300.
PUBLISHED_ROWS = {"x_embedding1": 120, "x_embedding2": 3, "edge_embedding1": 6, "edge_embedding2": 3}


def pretrain_gnns_state(num_layers: int = 5, width: int = 300) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)

    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.1

    state = {"x_embedding1.weight": rand(120, width), "x_embedding2.weight": rand(3, width)}
    for i in range(num_layers):
        state |= {
            f"gnns.{i}.mlp.0.weight": rand(2 * width, width),
            f"gnns.{i}.mlp.0.bias": rand(2 * width),
            f"gnns.{i}.mlp.2.weight": rand(width, 2 * width),
            f"gnns.{i}.mlp.2.bias": rand(width),
            f"gnns.{i}.edge_embedding1.weight": rand(6, width),
            f"gnns.{i}.edge_embedding2.weight": rand(3, width),
        }
    for i in range(num_layers):
        state |= {
            f"batch_norms.{i}.weight": 1 + rand(width),
            f"batch_norms.{i}.bias": rand(width),
            f"batch_norms.{i}.running_mean": rand(width),
            f"batch_norms.{i}.running_var": 1 + rand(width).abs(),
            f"batch_norms.{i}.num_batches_tracked": torch.tensor(1000),
        }
    return state


def pretrain_gnns_forward(state, x, edge_index, edge_attr, num_layers):
    """Their GNN.forward in eval mode (JK last), written out with plain tensor operations."""
    h = state["x_embedding1.weight"][x[:, 0]] + state["x_embedding2.weight"][x[:, 1]]
    loops = torch.arange(x.size(0))
    edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    edge_attr = torch.cat([edge_attr, torch.tensor([[4, 0]]).expand(x.size(0), 2)])  # self-loop bond type 4
    for i in range(num_layers):
        layer = lambda name: state[f"gnns.{i}.{name}"]  # noqa: E731
        edges = layer("edge_embedding1.weight")[edge_attr[:, 0]] + layer("edge_embedding2.weight")[edge_attr[:, 1]]
        summed = torch.zeros_like(h).index_add_(0, edge_index[1], h[edge_index[0]] + edges)
        h = torch.relu(summed @ layer("mlp.0.weight").T + layer("mlp.0.bias"))
        h = h @ layer("mlp.2.weight").T + layer("mlp.2.bias")
        norm = lambda name: state[f"batch_norms.{i}.{name}"]  # noqa: E731
        h = (h - norm("running_mean")) / torch.sqrt(norm("running_var") + 1e-5) * norm("weight") + norm("bias")
        if i < num_layers - 1:
            h = torch.relu(h)
    return h


def test_pretrain_gnns_weights_compute_what_their_model_computes(tmp_path):
    state = pretrain_gnns_state()
    torch.save(state, tmp_path / "supervised_contextpred.pth")

    encoder = import_pretrain_gnns(tmp_path / "supervised_contextpred.pth")

    assert (encoder.config.num_layers, encoder.config.hidden_dim, encoder.config.vocabulary) == (5, 300, "hu2020")
    batch = batch_of("hu2020")
    with torch.no_grad():  # in float64, so that only a real difference can show
        ours = encoder.double()(batch.x, batch.edge_index, batch.edge_attr)
    state = {key: value.double() if value.is_floating_point() else value for key, value in state.items()}
    theirs = pretrain_gnns_forward(state, batch.x, batch.edge_index, batch.edge_attr, num_layers=5)
    assert torch.allclose(ours, theirs, rtol=1e-9, atol=1e-9)


def test_pretrain_gnns_tables_are_padded_where_molft_has_more_rows(tmp_path):
    state = pretrain_gnns_state(num_layers=2, width=8)
    torch.save(state, tmp_path / "model.pth")
    vocab = get_vocabulary("hu2020")

    encoder = import_pretrain_gnns(tmp_path / "model.pth")

    chirality = encoder.atom_encoder.embeddings[1].weight
    assert chirality.shape[0] == vocab.atom_feature("chirality").dim == 4
    assert torch.equal(chirality[:3], state["x_embedding2.weight"]) and not chirality[3:].any()
    bond_type = encoder.convs[1].bond_encoder.embeddings[0].weight
    assert bond_type.shape[0] == vocab.bond_feature("bond_type").dim == 7
    assert torch.equal(bond_type[:6], state["gnns.1.edge_embedding1.weight"]) and not bond_type[6:].any()


def test_pretrain_gnns_import_checks_shapes_and_names(tmp_path):
    wrong_width = pretrain_gnns_state(num_layers=2, width=8)
    wrong_width["gnns.1.mlp.2.weight"] = torch.zeros(8, 10)
    torch.save(wrong_width, tmp_path / "wrong_width.pth")
    gcn = pretrain_gnns_state(num_layers=2, width=8)
    gcn["gnns.0.linear.weight"] = torch.zeros(8, 8)
    torch.save(gcn, tmp_path / "gcn.pth")

    with pytest.raises(InputError, match=r"convs.1.mlp.2.weight: \[8, 10\] in the file, \[8, 16\] in molft"):
        import_pretrain_gnns(tmp_path / "wrong_width.pth")
    with pytest.raises(InputError, match=r"not a pretrain-gnns GIN checkpoint.*unexpected keys: gnns.0.linear.weight"):
        import_pretrain_gnns(tmp_path / "gcn.pth")
    with pytest.raises(InputError, match="looks like a pretrain-gnns checkpoint: use import_pretrain_gnns"):
        load_encoder(tmp_path / "gcn.pth")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_shipped_encoder_loads_with_its_documented_architecture(name):
    directory = resolve_pretrained(name)
    encoder, config = load_encoder(directory)
    assert (encoder.config.num_layers, encoder.config.hidden_dim, encoder.config.vocabulary) == (5, 300, "ogb")
    assert (directory / "README.md").is_file() and (directory / "log.jsonl").is_file()
    stages, stage = [], config["extra"]["pretraining"]  # this encoder's stage, then the ones it started from
    while stage:
        stages.append(stage)
        stage = (stage.get("init") or {}).get("pretraining")
    assert stages[0]["molecules"] == json.loads((directory / "pretrain.json").read_text())["molecules"]
    assert max(s["molecules"] for s in stages) >= 250_000  # the minimum scale, in one stage at least


def test_unknown_encoder_names_are_refused_listing_the_shipped_ones():
    with pytest.raises(InputError, match="contextpred"):
        resolve_pretrained("no-such-encoder")
