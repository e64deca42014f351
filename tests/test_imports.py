"""Imports follow the layers: featurizing and the command line's light paths never load torch or PyG.

Each check runs in a fresh interpreter, since this test process has torch loaded already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEAVY = ("torch", "torch_geometric")
ROOT = Path(__file__).resolve().parent.parent


def _python(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def test_featurizing_modules_import_without_torch():
    code = textwrap.dedent(
        f"""
        import json, sys
        import molft, molft.runtime, molft.featurize, molft.featurize.graph, molft.data.tables
        import molft.data.featurized, molft.cli
        from molft.featurize.graph import GraphArrays, smiles_to_graph  # names still where they were
        from molft.runtime import seed_everything, rng_state, set_rng_state, resolve_device
        print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))
        """
    )
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_cli_help_errors_and_featurize_run_without_torch(tmp_path):
    table = tmp_path / "tiny.csv"
    table.write_text("smiles,y\nCCO,1\nc1ccccc1,0\nnot-a-smiles,1\n")
    invocations = [
        ["--help"],
        *([command, "--help"] for command in ("featurize", "pretrain", "finetune", "predict", "embed", "datasets")),
        ["featurize", str(tmp_path / "missing.csv")],  # InputError: exit 2
        ["featurize", str(table), "--no-such-option"],  # usage error: exit 2
        ["featurize", str(table), "--workers", "0"],  # out of range: exit 2
        ["featurize", str(table), "--out", str(tmp_path / "tiny.graphs")],
    ]
    code = textwrap.dedent(
        f"""
        import json, sys
        from molft.cli import run
        report = []
        for argv in {invocations!r}:
            sys.argv = ["molft", *argv]
            try:
                run()
                status = 0
            except SystemExit as exit:
                status = exit.code or 0
            report.append([argv, status, [name for name in {HEAVY!r} if name in sys.modules]])
        print(json.dumps(report))
        """
    )
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    statuses = [status for _argv, status, _loaded in report]
    assert statuses == [0] * 7 + [2, 2, 2, 0], result.stdout + result.stderr
    assert all(loaded == [] for _argv, _status, loaded in report), report
    assert (tmp_path / "tiny.graphs" / "meta.json").is_file()
    assert "read 3 rows, featurized 2, rejected 1" in result.stderr + result.stdout


@pytest.mark.parametrize("argv", [["--help"], ["featurize", "{table}"]])
def test_python_m_molft_never_imports_torch(tmp_path, argv):
    """The real entry point, watched with ``-X importtime`` (one line per module imported)."""
    table = tmp_path / "tiny.csv"
    table.write_text("smiles\nCCO\nCC(=O)O\n")
    result = _python("-X", "importtime", "-m", "molft", *(a.format(table=table) for a in argv))
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "molft.cli" in imported
    assert not {name for name in imported if name.split(".")[0] in HEAVY}


def test_predicting_with_fingerprint_members_alone_never_imports_torch(tmp_path, small_assay, tiny_pretrained):
    """A model whose blend holds no GNN (here: ``model="forest"``) loads and predicts without torch or PyG."""
    from molft import finetune

    finetune(small_assay, ["pIC50"], tmp_path / "m", pretrained=tiny_pretrained, model="forest", progress=False)
    table = tmp_path / "new.csv"
    table.write_text("smiles\nCCO\nnot-a-smiles\nc1ccccc1O\n")
    code = textwrap.dedent(
        f"""
        import json, sys
        from molft.finetuning.predict import predict
        frame = predict({str(tmp_path / "m")!r}, {str(table)!r}, progress=False)
        print(json.dumps([[name for name in {HEAVY!r} if name in sys.modules], frame["pIC50_pred"].isna().tolist()]))
        """
    )
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr
    loaded, missing = json.loads(result.stdout.splitlines()[-1])
    assert loaded == []
    assert missing == [False, True, False]
