"""Pretraining: masking transforms, objectives, the loop, exact resume and DDP equivalence."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from torch_geometric.data import Batch
from typer.testing import CliRunner

from molft.checkpoints import load_encoder
from molft.cli import app
from molft.data.featurized import featurize_file
from molft.errors import InputError
from molft.featurize.graph import featurize_many, smiles_to_graph
from molft.featurize.vocab import get_vocabulary
from molft.models import EncoderConfig, GINEncoder
from molft.pretraining import build_objectives, parse_objectives
from molft.pretraining.batches import epoch_batches
from molft.pretraining.corpus import corpus_cache_path
from molft.pretraining.loop import pretrain
from molft.pretraining.masking import atom_mask_row, mask_graph

TINY = {"num_layers": 2, "hidden_dim": 32}


@pytest.fixture(scope="module")
def smiles(assay) -> list[str]:
    return assay["smiles"].head(64).tolist()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, smiles) -> Path:
    """64 molecules of the built-in assay, featurized with the ogb vocabulary."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "mols.csv").write_text("smiles\n" + "\n".join(smiles) + "\n")
    featurize_file(folder / "mols.csv", folder / "mols.graphs", progress=False)
    return folder / "mols.graphs"


def run_pretrain(corpus: Path, out: Path, **options):
    settings = dict(epochs=2, batch_size=16, encoder=TINY, progress=False, seed=0)
    settings.update(options)
    return pretrain(corpus, out, **settings)


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(directory / "model.safetensors"))


def test_parse_objectives_reads_names_and_weights():
    assert parse_objectives("attr_masking:1.0, graphmae:0.5") == {"attr_masking": 1.0, "graphmae": 0.5}
    assert parse_objectives("graphmae") == {"graphmae": 1.0}
    with pytest.raises(InputError, match="unknown objective 'bert'; choose from: attr_masking"):
        parse_objectives("bert")


@pytest.mark.parametrize("vocab", ["hu2020", "ogb"])
def test_masking_masks_15_percent_and_leaves_input_alone(vocab):
    graph = smiles_to_graph("CC(=O)Nc1ccc(O)cc1CCCCN", vocab=vocab)  # 15 atoms
    original = graph.x.clone()
    masked = mask_graph(graph, get_vocabulary(vocab), "m", 0.15, True, torch.Generator().manual_seed(0))

    assert torch.equal(graph.x, original) and "m_x" not in graph
    assert int(masked.m_atom_mask.sum()) == int(15 * 0.15 + 1) == 3  # as pretrain-gnns MaskAtom
    expected_row = torch.tensor(atom_mask_row(get_vocabulary(vocab)))
    assert (masked.m_x[masked.m_atom_mask] == expected_row).all()
    assert torch.equal(masked.m_x[~masked.m_atom_mask], graph.x[~masked.m_atom_mask])
    # every bond touching a masked atom is masked, and predicted once (first direction only)
    ends = graph.edge_index[:, masked.m_bond_mask]
    assert (masked.m_atom_mask[ends[0]] | masked.m_atom_mask[ends[1]]).all()
    assert not masked.m_bond_mask[1::2].any()


def test_mask_tokens_come_from_the_vocabulary():
    hu, ogb = get_vocabulary("hu2020"), get_vocabulary("ogb")
    assert atom_mask_row(hu) == [hu.atom_feature("atomic_num").index("mask"), 0]  # [119, 0] as in Hu et al.
    assert atom_mask_row(ogb) == [feature.unknown_index for feature in ogb.atom]  # all columns to 'misc'


def test_masking_is_a_function_of_the_generator_seed():
    graph = smiles_to_graph("c1ccccc1CCOCCN")
    vocab = get_vocabulary("ogb")
    first = mask_graph(graph, vocab, "m", 0.15, False, torch.Generator().manual_seed(7))
    again = mask_graph(graph, vocab, "m", 0.15, False, torch.Generator().manual_seed(7))
    assert torch.equal(first.m_atom_mask, again.m_atom_mask)


@pytest.mark.parametrize(
    "vocab, spec, options",
    [
        ("hu2020", "attr_masking", {}),
        ("ogb", "attr_masking", {"attr_masking": {"mask_edges": True}}),
        ("ogb", "graphmae", {}),
        ("hu2020", "graphmae", {"graphmae": {"target": "features"}}),
    ],
)
def test_objective_loss_is_finite_and_decreases(smiles, vocab, spec, options):
    torch.manual_seed(0)
    config = EncoderConfig(vocabulary=vocab, **TINY)
    encoder, objectives = GINEncoder(config), build_objectives(spec, config, options)
    generator = torch.Generator().manual_seed(0)
    batch = Batch.from_data_list([objectives.transform(g, generator) for g in featurize_many(smiles, vocab).graphs])
    optimizer = torch.optim.Adam([*encoder.parameters(), *objectives.parameters()], lr=3e-3)
    losses = []
    for _ in range(8):
        loss, logs = objectives.loss(encoder, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(logs["loss"])
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0]


def test_data_order_depends_on_seed_and_epoch_only():
    first = np.concatenate(epoch_batches(50, 16, seed=0, epoch=3))
    assert sorted(first) == list(range(50))
    assert np.array_equal(first, np.concatenate(epoch_batches(50, 16, seed=0, epoch=3)))
    assert not np.array_equal(first, np.concatenate(epoch_batches(50, 16, seed=0, epoch=4)))
    # two ranks see contiguous halves of the same global batches
    halves = zip(epoch_batches(50, 16, 0, 3, rank=0, world_size=2), epoch_batches(50, 16, 0, 3, rank=1, world_size=2))
    for single, (rank0, rank1) in zip(epoch_batches(50, 16, 0, 3), halves):
        assert np.array_equal(single, np.concatenate([rank0, rank1]))


def test_pretrain_writes_an_encoder_that_loads_in_a_fresh_process(corpus, tmp_path, smiles):
    result = run_pretrain(corpus, tmp_path / "run", objectives="attr_masking", log_every_steps=2)

    assert result.completed and result.steps == 8 and result.molecules == 64
    assert np.isfinite(result.final_losses["attr_masking/loss"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["kind"] == "epoch"] == [4, 8]
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0
    config = json.loads((result.encoder / "config.json").read_text())
    assert config["extra"]["pretraining"]["corpus"]["source_sha256"]
    assert config["extra"]["pretraining"]["molecules"] == 64

    graphs = Batch.from_data_list(list(featurize_many(smiles[:8]).graphs))
    inputs = {"x": graphs.x, "edge_index": graphs.edge_index, "edge_attr": graphs.edge_attr}
    safetensors.torch.save_file(inputs, str(tmp_path / "inputs.safetensors"))
    script = textwrap.dedent(
        f"""
        import safetensors.torch, torch
        from molft.checkpoints import load_encoder
        encoder, _ = load_encoder({str(result.encoder)!r})
        inputs = safetensors.torch.load_file({str(tmp_path / "inputs.safetensors")!r})
        with torch.no_grad():
            h = encoder(inputs["x"], inputs["edge_index"], inputs["edge_attr"])
        safetensors.torch.save_file({{"h": h}}, {str(tmp_path / "h.safetensors")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"}, check=True)
    encoder, _ = load_encoder(result.encoder)
    with torch.no_grad():
        here = encoder(**inputs)
    assert torch.equal(here, safetensors.torch.load_file(str(tmp_path / "h.safetensors"))["h"])


def test_resume_after_a_crash_reaches_the_same_weights(corpus, tmp_path):
    options = dict(
        objectives="attr_masking,graphmae:0.5",
        encoder={**TINY, "dropout": 0.2},  # dropout draws from the RNG that checkpoints must restore
        checkpoint_every_steps=3,
    )
    unbroken = run_pretrain(corpus, tmp_path / "unbroken", **options)

    crashed = run_pretrain(corpus, tmp_path / "resumed", stop_after_steps=7, **options)  # dies after step 7
    assert not crashed.completed and crashed.encoder is None
    state = torch.load(tmp_path / "resumed" / "checkpoint" / "train_state.pt", weights_only=True)
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (6, 1, 2)  # mid-epoch checkpoint
    with pytest.raises(InputError, match="resume=True"):
        run_pretrain(corpus, tmp_path / "resumed", **options)
    resumed = run_pretrain(corpus, tmp_path / "resumed", resume=True, **options)

    assert resumed.resumed_from_step == 6 and resumed.steps == unbroken.steps == 8
    a, b = weights(unbroken.encoder), weights(resumed.encoder)
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert resumed.final_losses == pytest.approx(unbroken.final_losses)


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_a_step_limit_ends_the_run_with_an_encoder_and_says_why(corpus, tmp_path):
    result = run_pretrain(corpus, tmp_path / "run", max_steps=5, lr_schedule="cosine", log_every_steps=1)

    assert result.completed and result.stopped_by == "max_steps"
    assert (result.steps, result.epochs) == (5, 1)  # 4 steps per epoch: one epoch and one step
    record = json.loads((result.encoder / "config.json").read_text())["extra"]["pretraining"]
    assert (record["stopped_by"], record["steps"], record["batch_in_epoch"]) == ("max_steps", 5, 1)
    log = read_log(tmp_path / "run")
    assert log[-1]["kind"] == "stop" and log[-1]["stopped_by"] == "max_steps" and log[-1]["step"] == 5
    assert [r["lr"] for r in log if r["kind"] == "step"][-1] == 0.0  # the cosine schedule ends at the limit
    assert json.loads((tmp_path / "run" / "pretrain.json").read_text())["end"]["stopped_by"] == "max_steps"

    command = CliRunner().invoke(app, ["pretrain", str(corpus), "--out", str(tmp_path / "cli"), "--max-steps", "3",
                                       "--num-layers", "1", "--hidden-dim", "16", "--batch-size", "16"])
    assert command.exit_code == 0, command.output
    assert "3 steps" in command.output and "stopped by --max-steps" in command.output


def test_a_time_limit_ends_the_call_at_a_step_and_the_run_resumes_exactly(corpus, tmp_path):
    options = dict(objectives="attr_masking", encoder={**TINY, "dropout": 0.2}, checkpoint_every_steps=100)
    unbroken = run_pretrain(corpus, tmp_path / "unbroken", **options)

    limited = run_pretrain(corpus, tmp_path / "run", time_limit_s=0, **options)  # over after its first step
    assert limited.stopped_by == "time_limit" and limited.steps == 1 and limited.encoder is not None
    record = json.loads((limited.encoder / "config.json").read_text())["extra"]["pretraining"]
    assert (record["stopped_by"], record["time_limit_s"], record["steps"]) == ("time_limit", 0, 1)
    assert read_log(tmp_path / "run")[-1]["stopped_by"] == "time_limit"
    state = torch.load(tmp_path / "run" / "checkpoint" / "train_state.pt", weights_only=True)
    assert state["step"] == 1  # checkpointed at the step it stopped, though checkpoints come every 100

    resumed = run_pretrain(corpus, tmp_path / "run", resume=True, **options)  # no limit now: allowed
    assert resumed.resumed_from_step == 1 and resumed.stopped_by == "epochs" and resumed.steps == unbroken.steps == 8
    a, b = weights(unbroken.encoder), weights(resumed.encoder)
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert resumed.final_losses == pytest.approx(unbroken.final_losses)
    assert json.loads((tmp_path / "run" / "pretrain.json").read_text())["end"]["stopped_by"] == "epochs"


def test_resume_refuses_changed_settings(corpus, tmp_path):
    run_pretrain(corpus, tmp_path / "run", epochs=1, stop_after_steps=5, checkpoint_every_steps=2)
    with pytest.raises(InputError, match="lr: 0.001 then, 0.01 now"):
        run_pretrain(corpus, tmp_path / "run", epochs=1, lr=1e-2, resume=True)


def test_pretrain_checks_the_corpus_vocabulary(corpus, tmp_path):
    with pytest.raises(InputError, match="featurized with the 'ogb' vocabulary.*--vocab hu2020"):
        run_pretrain(corpus, tmp_path / "run", encoder={**TINY, "vocabulary": "hu2020"})


def test_a_corpus_in_parts_trains_exactly_as_the_whole(corpus, tmp_path, smiles):
    # e.g. two machines each featurize their own file; pretraining joins the parts in order
    for name, part in [("a", smiles[:40]), ("b", smiles[40:])]:
        (tmp_path / f"{name}.csv").write_text("smiles\n" + "\n".join(part) + "\n")
        featurize_file(tmp_path / f"{name}.csv", tmp_path / f"{name}.graphs", progress=False)
    parts = [tmp_path / "a.graphs", tmp_path / "b.graphs"]
    joined = run_pretrain(parts, tmp_path / "parts", epochs=1)
    whole = run_pretrain(corpus, tmp_path / "whole", epochs=1)
    assert joined.molecules == whole.molecules == 64
    assert all(torch.equal(a, b) for a, b in zip(weights(joined.encoder).values(), weights(whole.encoder).values()))
    config = json.loads((joined.encoder / "config.json").read_text())["extra"]["pretraining"]
    assert [part["featurized"] for part in config["corpus"]["parts"]] == [str(p) for p in parts]
    assert run_pretrain(parts, tmp_path / "prefix", epochs=1, max_molecules=30).molecules == 30


def test_the_pretrain_command_takes_a_corpus_in_parts(corpus, tmp_path):
    result = CliRunner().invoke(app, [
        "pretrain", str(corpus), str(corpus), "--out", str(tmp_path / "run"), "--epochs", "1",
        "--num-layers", "1", "--hidden-dim", "16", "--batch-size", "32",
    ])
    assert result.exit_code == 0, result.output
    assert "pretrained on 128 molecules, 1 epochs, 4 steps" in result.output
    assert load_encoder(tmp_path / "run" / "encoder")[0].config.num_layers == 1


def test_pretrain_featurizes_a_smiles_table_first(tmp_path, smiles):
    table = tmp_path / "mols.csv"
    table.write_text("smiles\n" + "\n".join(smiles[:20] + ["not a smiles"]) + "\n")
    result = run_pretrain(table, tmp_path / "run", epochs=1, encoder={**TINY, "vocabulary": "hu2020"})
    assert result.molecules == 20
    cached = corpus_cache_path(table, "hu2020")
    assert (cached / "meta.json").is_file() and cached.is_relative_to(os.environ["MOLFT_CACHE_DIR"])
    encoder, _ = load_encoder(result.encoder)
    assert encoder.config.vocabulary == "hu2020"

    stamp = (cached / "meta.json").stat().st_mtime_ns
    run_pretrain(table, tmp_path / "again", epochs=1, encoder={**TINY, "vocabulary": "hu2020"})
    assert (cached / "meta.json").stat().st_mtime_ns == stamp  # featurized once, reused by the next run
    table.write_text("smiles\n" + "\n".join(smiles[:10]) + "\n")  # new content: a new cache entry
    assert run_pretrain(table, tmp_path / "third", epochs=1, encoder=TINY).molecules == 10


DDP_OPTIONS = dict(
    objectives="attr_masking,graphmae", epochs=1, objective_options={"attr_masking": {"mask_edges": True}}
)


def _free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def _ddp_rank(rank: int, corpus: Path, out: Path, port: int, sync_batch_norm: bool) -> None:
    """One process of a 2-process run, set up as torchrun would (env:// rendezvous)."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    run_pretrain(corpus, out, sync_batch_norm=sync_batch_norm, **DDP_OPTIONS)


def run_ddp(corpus: Path, out: Path, sync_batch_norm: bool = True) -> Path:
    # fork: the children reuse this process's imports (torchrun would start fresh interpreters)
    args = (corpus, out, _free_port(), sync_batch_norm)
    torch.multiprocessing.start_processes(_ddp_rank, args=args, nprocs=2, start_method="fork")
    return out / "encoder"


# A Linear bias feeding a BatchNorm gets an exactly-zero gradient in exact arithmetic (BatchNorm
# subtracts it again), so its gradient is rounding noise, which Adam scales up to +-lr per step,
# and the BatchNorm's running mean follows it. Neither changes what the encoder computes in
# training mode; everything else must agree.
NOISE_ONLY = re.compile(r"(conv\.nn\.[03]\.bias|running_mean)$")


def test_ddp_on_two_processes_matches_one_process(corpus, tmp_path, smiles):
    ddp = run_ddp(corpus, tmp_path / "ddp")
    single = run_pretrain(corpus, tmp_path / "single", **DDP_OPTIONS).encoder

    config = json.loads((ddp / "config.json").read_text())
    assert config["extra"]["pretraining"]["world_size"] == 2 and config["extra"]["pretraining"]["steps"] == 4
    a, b = weights(single), weights(ddp)
    for key in a:
        if not NOISE_ONLY.search(key):
            assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key
    batch = Batch.from_data_list(list(featurize_many(smiles[:16]).graphs))
    embeddings = []
    for directory in (single, ddp):
        encoder, _ = load_encoder(directory)
        with torch.no_grad():
            embeddings.append(encoder.train()(batch.x, batch.edge_index, batch.edge_attr))
    assert torch.allclose(*embeddings, atol=1e-4)

    # per-rank BatchNorm statistics (sync_batch_norm=False) are measurably different
    local = weights(run_ddp(corpus, tmp_path / "ddp-local", sync_batch_norm=False))
    assert max((a[k].float() - local[k].float()).abs().max() for k in a if not NOISE_ONLY.search(k)) > 1e-4
