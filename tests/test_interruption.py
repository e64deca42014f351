"""Interruption: a pretraining and a fine-tuning run killed with SIGKILL mid-epoch resume from their
last checkpoint and end exactly where an uninterrupted run ends (CPU, fixed seed).

The run to be killed goes to a child process that registers a global optimizer-step hook and
sends itself SIGKILL after a given number of steps: no cleanup code, no ``finally``, no flush.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import safetensors.torch
import torch

from molft.data.featurized import featurize_file
from molft.errors import InputError
from molft.finetuning.train import finetune
from molft.pretraining.loop import pretrain

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

KILL_AFTER_STEPS = """
import os, signal
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

torch.set_num_threads(1)
steps = 0


def kill_after_steps(optimizer, args, kwargs):
    global steps
    steps += 1
    if steps == {steps}:
        os.kill(os.getpid(), signal.SIGKILL)


register_optimizer_step_post_hook(kill_after_steps)
"""


def run_until_killed(code: str, steps: int) -> None:
    """Run ``code`` in a fresh Python that kills itself right after optimizer step ``steps``."""
    program = KILL_AFTER_STEPS.format(steps=steps) + textwrap.dedent(code)
    child = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, f"the run was not killed:\n{child.stderr[-3000:]}"


def safetensors_of(directory: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(directory / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = safetensors_of(a), safetensors_of(b)
    assert left.keys() == right.keys()
    assert all(torch.equal(left[key], right[key]) for key in left)


def test_finetuning_killed_mid_epoch_resumes_to_the_same_model(small_assay, tiny_pretrained, tmp_path):
    options = dict(targets=["pIC50"], pretrained=tiny_pretrained, seeds=2, max_epochs=4, batch_size=32, progress=False)
    unbroken = finetune(small_assay, out=tmp_path / "unbroken", **options)
    steps_per_epoch = 192 // 32  # 192 training molecules (scaffold split of 240), full batches only

    # Killed in seed 1's second epoch: seed 0 is finished, seed 1 has one epoch checkpointed.
    run_until_killed(
        f"from molft.finetuning.train import finetune\n"
        f"finetune({str(small_assay)!r}, out={str(tmp_path / 'resumed')!r}, targets=['pIC50'], "
        f"pretrained={str(tiny_pretrained)!r}, seeds=2, max_epochs=4, batch_size=32, progress=False)\n",
        steps=4 * steps_per_epoch + steps_per_epoch + 3,
    )
    progress = tmp_path / "resumed" / "in-progress"
    assert (progress / "seed-0.json").is_file() and not (tmp_path / "resumed" / "finetune.json").exists()
    assert torch.load(progress / "seed-1.pt", weights_only=True)["epoch"] == 1
    with pytest.raises(InputError, match="different settings"):
        finetune(small_assay, out=tmp_path / "resumed", resume=True, **{**options, "max_epochs": 5})

    resumed = finetune(small_assay, out=tmp_path / "resumed", resume=True, **options)

    for seed in (0, 1):
        assert_same_weights(unbroken.out / "members" / f"seed-{seed}", resumed.out / "members" / f"seed-{seed}")
    assert resumed.metrics == json.loads(json.dumps(unbroken.metrics))
    assert (resumed.out / "metrics.jsonl").read_text() == (unbroken.out / "metrics.jsonl").read_text()
    assert not progress.exists()  # a finished run leaves no resumable state behind
    with pytest.raises(InputError, match="nothing to resume"):
        finetune(small_assay, out=tmp_path / "resumed", resume=True, **options)


def test_resume_without_an_interrupted_run_is_refused(small_assay, tiny_pretrained, tmp_path):
    with pytest.raises(InputError, match="no interrupted fine-tuning"):
        finetune(small_assay, ["pIC50"], tmp_path / "fresh", pretrained=tiny_pretrained, resume=True, progress=False)


def test_pretraining_killed_mid_epoch_resumes_to_the_same_weights(assay, tmp_path):
    (tmp_path / "mols.csv").write_text("smiles\n" + "\n".join(assay["smiles"].head(64)) + "\n")
    corpus = tmp_path / "mols.graphs"
    featurize_file(tmp_path / "mols.csv", corpus, progress=False)
    options = dict(objectives="attr_masking", epochs=2, batch_size=16, seed=0, progress=False,
                   encoder={"num_layers": 2, "hidden_dim": 32, "dropout": 0.2}, checkpoint_every_steps=3)
    unbroken = pretrain(corpus, tmp_path / "unbroken", **options)

    # 4 steps per epoch: killed after step 7, mid-way through epoch 2; the last checkpoint is step 6.
    run_until_killed(
        f"from molft.pretraining.loop import pretrain\n"
        f"pretrain({str(corpus)!r}, {str(tmp_path / 'resumed')!r}, **{options!r})\n",
        steps=7,
    )
    state = torch.load(tmp_path / "resumed" / "checkpoint" / "train_state.pt", weights_only=True)
    assert state["step"] == 6
    resumed = pretrain(corpus, tmp_path / "resumed", resume=True, **options)

    assert resumed.resumed_from_step == 6 and resumed.steps == unbroken.steps == 8
    assert_same_weights(unbroken.encoder, resumed.encoder)
    assert resumed.final_losses == pytest.approx(unbroken.final_losses)


def test_killed_runs_leave_no_half_written_files(small_assay, tiny_pretrained, tmp_path):
    """Whatever the moment of the kill, every file present parses (writes go through temp + rename)."""
    run_until_killed(
        f"from molft.finetuning.train import finetune\n"
        f"finetune({str(small_assay)!r}, out={str(tmp_path / 'run')!r}, targets=['pIC50'], "
        f"pretrained={str(tiny_pretrained)!r}, seeds=1, max_epochs=3, batch_size=32, progress=False)\n",
        steps=8,
    )
    leftovers = [p for p in (tmp_path / "run").rglob("*") if p.is_file() and ".tmp" not in p.name]
    for path in leftovers:
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".pt":
            torch.load(path, weights_only=True)
        elif path.suffix == ".safetensors":
            safetensors.torch.load_file(str(path))
    assert any(p.name == "seed-0.pt" for p in leftovers)
