"""The command line, driven in-process: exit codes, messages and files."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from molft.cli import app

runner = CliRunner()


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "featurize" in result.output and "example-data" in result.output


def test_example_data_then_featurize(tmp_path):
    csv = tmp_path / "assay.csv"
    assert runner.invoke(app, ["example-data", str(csv)]).exit_code == 0
    assert pd.read_csv(csv).columns.tolist() == ["smiles", "chembl_id", "pIC50"]
    result = runner.invoke(app, ["featurize", str(csv), "--out", str(tmp_path / "g")])
    assert result.exit_code == 0, result.output
    assert "read 1,017 rows, featurized 1,017, rejected 0" in result.output


def test_bad_input_is_a_message_not_a_traceback(tmp_path):
    table = tmp_path / "no_smiles.csv"
    table.write_text("a,b\n1,2\n")
    result = runner.invoke(app, ["featurize", str(table)])
    assert result.exit_code == 2
    assert "Columns found: a, b" in result.output and "Traceback" not in result.output
    missing = runner.invoke(app, ["featurize", str(tmp_path / "missing.csv")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_datasets_lists_the_registry_and_says_what_is_missing(tmp_path):
    result = runner.invoke(app, ["datasets", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "BBBP" in result.output and "ogbg-molhiv" in result.output and "missing" in result.output
    absent = runner.invoke(app, ["datasets", "bbbp", "--data-dir", str(tmp_path)])
    assert absent.exit_code == 2 and "MOLFT_DATA_DIR" in absent.output
