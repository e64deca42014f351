"""Test-set hygiene: benchmark test molecules are found, and kept out of a labelled pretraining corpus."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rdkit import Chem
from rdkit.Chem.EnumerateStereoisomers import EnumerateStereoisomers
from typer.testing import CliRunner

import molft.data.registry
from molft.checkpoints import load_training_state, save_training_state
from molft.cli import app
from molft.data.featurized import featurize_file
from molft.data.registry import load_dataset
from molft.errors import InputError
from molft.pretraining.corpus import load_corpus, screen_test_molecules
from molft.pretraining.hygiene import benchmark_test_keys, filter_corpus, find_test_molecules, identity_key
from molft.pretraining.loop import PretrainConfig, pretrain
from molft.pretraining.rundir import TRAIN_STATE, find_checkpoint

TINY = {"num_layers": 2, "hidden_dim": 32}


def test_smiles(data_dir: Path, name: str) -> list[str]:
    """The test-split SMILES of a stand-in dataset, as the benchmarks split it."""
    loaded = load_dataset(name, data_dir)
    return [loaded.smiles[i] for i in loaded.split["test"]]


test_smiles.__test__ = False  # a helper, not a test


def deprotonated(smiles: str) -> str:
    """The molecule with its first N-H deprotonated (e.g. a sulfonamide anion): a charge variant."""
    mol = Chem.RWMol(Chem.MolFromSmiles(smiles))
    atom = next(a for a in mol.GetAtoms() if a.GetSymbol() == "N" and a.GetTotalNumHs() > 0)
    atom.SetFormalCharge(-1)
    atom.SetNumExplicitHs(atom.GetTotalNumHs() - 1)
    atom.SetNoImplicit(True)
    Chem.SanitizeMol(mol)
    return Chem.MolToSmiles(mol)


@pytest.fixture()
def stand_in_data(tiny_data_dir, monkeypatch) -> Path:
    monkeypatch.setenv("MOLFT_DATA_DIR", str(tiny_data_dir))
    return tiny_data_dir


def test_keys_are_those_of_each_datasets_test_split_and_are_cached(tiny_data_dir, monkeypatch):
    keys = benchmark_test_keys(tiny_data_dir)
    assert sorted(keys) == ["BBBP", "Lipophilicity"]  # the datasets present, no others
    for name in keys:
        expected = {identity_key(s) for s in test_smiles(tiny_data_dir, name)}
        assert keys[name] == expected and all(len(k) == 14 for k in keys[name])

    def no_loading(*args, **kwargs):
        raise AssertionError("a cached key set must not load the dataset again")

    monkeypatch.setattr(molft.data.registry, "load_dataset", no_loading)
    assert benchmark_test_keys(tiny_data_dir, datasets=["bbbp"]) == {"BBBP": keys["BBBP"]}
    with pytest.raises(InputError, match="no data directory"):
        benchmark_test_keys(tiny_data_dir / "missing")


def test_stereo_charge_and_salt_variants_of_a_test_molecule_are_caught(tiny_data_dir):
    keys = benchmark_test_keys(tiny_data_dir)["BBBP"]
    with_centre = [s for s in test_smiles(tiny_data_dir, "BBBP") if Chem.FindMolChiralCenters(
        Chem.MolFromSmiles(s), includeUnassigned=True) and "NS(=O)" in s]
    molecule = with_centre[0]  # one unassigned stereocentre, and a sulfonamide N-H
    variants = [
        *(Chem.MolToSmiles(m) for m in EnumerateStereoisomers(Chem.MolFromSmiles(molecule))),  # R and S
        deprotonated(molecule),  # the sulfonamide anion
        deprotonated(molecule) + ".[Na+]",  # its sodium salt
        molecule + ".Cl",  # a hydrochloride
    ]
    assert len({*variants, molecule}) == 6
    assert filter_corpus(variants, keys).tolist() == [False] * 5
    assert filter_corpus(["C[C@H](N)C(=O)O", "CC([NH3+])C(=O)[O-]", "CCC(N)C(=O)O"], {identity_key("CC(N)C(=O)O")}
                         ).tolist() == [False, False, True]


def test_a_corpus_filter_keeps_everything_else_in_order(tiny_data_dir, assay):
    keys = benchmark_test_keys(tiny_data_dir)
    tests = test_smiles(tiny_data_dir, "Lipophilicity")[:5]
    others = assay["smiles"].iloc[300:320].tolist()  # not in the stand-ins at all
    corpus = others[:7] + tests[:2] + others[7:15] + tests[2:] + others[15:] + ["not a molecule", "*CC"]
    found = find_test_molecules(corpus, keys)
    assert [s for s, kept in zip(corpus, found.keep) if kept] == others + ["not a molecule", "*CC"]
    assert found.counts()["Lipophilicity"] == 5 and found.counts()["total"] == 5
    assert np.array_equal(find_test_molecules(corpus, keys, workers=2).keep, found.keep)  # same over processes
    assert filter_corpus(corpus, keys).tolist() == found.keep.tolist()


@pytest.fixture()
def leaky_corpus(tmp_path, tiny_data_dir, assay) -> tuple[Path, list[int]]:
    """A labelled corpus of 40 other molecules with 6 BBBP stand-in test molecules among them."""
    tests = test_smiles(tiny_data_dir, "BBBP")[:6]
    smiles = assay["smiles"].iloc[300:340].tolist()
    positions = [0, 5, 17, 18, 30, 45]
    for position, molecule in zip(positions, tests):
        smiles.insert(position, molecule)
    table = pd.DataFrame({"smiles": smiles, "pIC50": np.linspace(4, 9, len(smiles))})
    table["binary"] = (np.arange(len(smiles)) % 2).astype(float)
    table.to_csv(tmp_path / "chembl_like.csv", index=False)
    featurize_file(tmp_path / "chembl_like.csv", tmp_path / "chembl_like.graphs", progress=False)
    return tmp_path / "chembl_like.graphs", positions


def test_supervised_pretraining_removes_the_test_molecules_and_records_them(stand_in_data, leaky_corpus, tmp_path):
    corpus, positions = leaky_corpus
    graphs, info = load_corpus([corpus], vocabulary=None)
    keep, record = screen_test_molecules(info, count=len(graphs), exclude=True, reason="asked")
    assert keep.tolist() == [i for i in range(46) if i not in positions]  # exactly those, order kept

    result = pretrain(corpus, tmp_path / "run", objectives="supervised", epochs=2, batch_size=16, encoder=TINY,
                      progress=False)
    assert result.molecules == 40 and np.isfinite(result.final_losses["supervised/loss"])
    run = json.loads((result.out / "pretrain.json").read_text())
    keys = benchmark_test_keys(stand_in_data)
    lipophilicity = sum(identity_key(s) in keys["Lipophilicity"] for s in test_smiles(stand_in_data, "BBBP")[:6])
    assert run["test_molecules_removed"] == {"BBBP": 6, "Lipophilicity": lipophilicity, "total": 6}
    assert run["config"]["exclude_test_molecules"] == "labelled" and run["molecules"] == 40
    encoder = json.loads((result.encoder / "config.json").read_text())["extra"]["pretraining"]
    assert encoder["test_molecules_removed"] == run["test_molecules_removed"]
    assert encoder["test_set_hygiene"]["molecules_before"] == 46

    stopped = pretrain(corpus, tmp_path / "resumed", objectives="supervised", epochs=2, batch_size=16, encoder=TINY,
                       progress=False, checkpoint_every_steps=1, stop_after_steps=2)
    assert not stopped.completed
    with pytest.raises(InputError, match="exclude_test_molecules: 'labelled' then, False now"):
        pretrain(corpus, tmp_path / "resumed", objectives="supervised", epochs=2, batch_size=16, encoder=TINY,
                 progress=False, checkpoint_every_steps=1, resume=True, exclude_test_molecules="never")


def test_never_and_always_do_what_they_say_from_the_command_line_too(stand_in_data, leaky_corpus, tmp_path):
    corpus, _ = leaky_corpus
    out = tmp_path / "never"
    result = CliRunner().invoke(app, ["pretrain", str(corpus), "--out", str(out), "--objectives", "supervised",
                                      "--epochs", "1", "--batch-size", "16", "--num-layers", "2", "--hidden-dim", "32",
                                      "--exclude-test-molecules", "never"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "pretrain.json").read_text())
    assert run["molecules"] == 46 and run["config"]["exclude_test_molecules"] is False
    assert run["test_molecules_removed"] is None
    masking = pretrain(corpus, tmp_path / "masking", objectives="attr_masking", epochs=1, batch_size=16, encoder=TINY,
                       progress=False)  # no labels: by default unchecked ...
    assert masking.molecules == 46 and "no objective reads" in json.loads(
        (masking.out / "pretrain.json").read_text())["test_set_hygiene"]["reason"]
    always = pretrain(corpus, tmp_path / "always", objectives="attr_masking", epochs=1, batch_size=16, encoder=TINY,
                      progress=False, exclude_test_molecules=True)  # ... unless asked
    assert always.molecules == 40
    with pytest.raises(InputError, match="exclude_test_molecules must be"):
        PretrainConfig(corpus=str(corpus), exclude_test_molecules="sometimes")


def test_without_a_data_directory_a_labelled_run_says_it_could_not_check(leaky_corpus, tmp_path, monkeypatch,
                                                                          caplog):
    monkeypatch.setenv("MOLFT_DATA_DIR", str(tmp_path / "no-such-dir"))
    corpus, _ = leaky_corpus
    with caplog.at_level(logging.WARNING, logger="molft.pretraining.corpus"):
        result = pretrain(corpus, tmp_path / "run", objectives="supervised", epochs=1, batch_size=16, encoder=TINY,
                          progress=False)
    assert result.molecules == 46
    assert "could not be checked for benchmark test molecules" in caplog.text
    hygiene = json.loads((result.out / "pretrain.json").read_text())["test_set_hygiene"]
    assert hygiene["test_molecules_removed"] is None and "no data directory" in hygiene["reason"]


def test_a_run_started_before_this_option_existed_still_resumes(stand_in_data, leaky_corpus, tmp_path):
    corpus, _ = leaky_corpus
    options = dict(objectives="attr_masking", epochs=2, batch_size=16, encoder=TINY, progress=False,
                   checkpoint_every_steps=1)
    assert not pretrain(corpus, tmp_path / "old", stop_after_steps=2, **options).completed
    state_file = find_checkpoint(tmp_path / "old") / TRAIN_STATE
    state = load_training_state(state_file)
    del state["config"]["exclude_test_molecules"]  # as an older molft wrote it
    save_training_state(state_file, state)
    assert pretrain(corpus, tmp_path / "old", resume=True, **options).completed  # it removed nothing: 'labelled'
