"""Non-molft baselines for the benchmarks: a random forest on Morgan fingerprints, and chemprop.

Both take the same inputs as molft's own methods (SMILES, labels with NaN for missing, and index
arrays for the training subset, validation and test), so a benchmark hands every method the
identical split. Both return scores for validation and test in the user's units
(probabilities for classification, values for regression).

* :func:`molft.baselines.fit_random_forest` (re-exported here): the fixed random forest that
  ``molft finetune`` also reports.
* :func:`run_chemprop`: chemprop v2 through its command line (``chemprop train`` then
  ``chemprop predict``), when the ``chemprop`` package is installed; :func:`chemprop_unavailable`
  says why not otherwise. molft never installs it.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from molft.baselines import RF_SETTINGS, BaselineResult, fit_random_forest, morgan_fingerprints

__all__ = ["CHEMPROP_TRACKING", "RF_SETTINGS", "BaselineResult", "chemprop_unavailable", "fit_random_forest", "morgan_fingerprints", "run_chemprop"]


# --------------------------------------------------------------------------------------------
# chemprop (v2 command line)


def chemprop_command() -> list[str] | None:
    """The ``chemprop`` executable: beside this Python first, else on PATH; None if absent."""
    beside = Path(sys.executable).with_name("chemprop")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("chemprop")
    return [found] if found else None


def chemprop_unavailable() -> str | None:
    """Why chemprop cannot run here (None when it can): the package or its CLI is missing."""
    if importlib.util.find_spec("chemprop") is None:
        return "the 'chemprop' package is not installed (pip install chemprop); chemprop skipped"
    if chemprop_command() is None:
        return "the 'chemprop' package is importable but its 'chemprop' command is not on PATH; chemprop skipped"
    return None


def _run(command: list[str], log: Path) -> None:
    with open(log, "a") as handle:
        handle.write("$ " + " ".join(command) + "\n")
        handle.flush()
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-20:])
        raise RuntimeError(f"{command[0]} {command[1]} failed (exit {done.returncode}); last lines of {log}:\n{tail}")


def _best_epoch(output_dir: Path) -> int | None:
    """Epoch (1-based) of chemprop's best checkpoint, read from its name ``best-epoch=K-...ckpt``."""
    for checkpoint in sorted(output_dir.glob("**/checkpoints/best*.ckpt")):
        match = re.search(r"epoch=(\d+)", checkpoint.name)
        if match:
            return int(match.group(1)) + 1
    return None


#: chemprop's ``--tracking-metric`` (and ``--metrics``) per task type: the validation metric molft selects on
CHEMPROP_TRACKING = {"classification": "roc", "regression": "rmse"}


def run_chemprop(
    smiles: Sequence[str],
    y: np.ndarray,
    split: dict[str, np.ndarray],
    task_type: str,
    seed: int,
    epochs: int | None = None,
    patience: int | None = None,
    device: str = "cpu",
    workdir: str | Path | None = None,
    command: Sequence[str] | None = None,
) -> BaselineResult:
    """Train chemprop v2 on the given split through its CLI and score validation and test.

    Writes one CSV (``smiles``, targets renamed ``t0..tN`` so any column name works, and a
    ``split`` column of ``train``/``val``/``test``), runs ``chemprop train --splits-column split``,
    then ``chemprop predict`` with the saved best model on the validation and test SMILES.

    chemprop keeps the epoch with the best validation value of :data:`CHEMPROP_TRACKING` (the metric
    molft's own models are selected on: ROC-AUC or RMSE), not its default validation loss: under a
    scaffold split the label balance shifts (BBBP: 83% positive in a 100-label training subset,
    40% in validation) and the validation loss is then lowest at the first epoch, an untrained model.

    Args:
        smiles: [num_molecules] SMILES.
        y: [num_molecules, num_tasks] labels, NaN = missing.
        split: ``{"train", "valid", "test"}`` -> indices into ``smiles`` / ``y``.
        task_type: ``"classification"`` or ``"regression"``.
        seed: ``--pytorch-seed`` and ``--data-seed``.
        epochs: ``--epochs`` (chemprop's default, 50, when None).
        patience: ``--patience``, epochs without validation improvement before stopping (chemprop's
            default when None).
        device: ``cpu`` or ``cuda[:k]`` (mapped to ``--accelerator gpu --devices 1``).
        workdir: where to keep the CSVs, model and log (a temporary folder, removed, when None).
        command: the chemprop executable (default: :func:`chemprop_command`).

    Raises:
        RuntimeError: when chemprop is unavailable or a command fails (with the log's last lines).
    """
    command = list(command) if command is not None else chemprop_command()
    if command is None:
        raise RuntimeError(chemprop_unavailable() or "chemprop command not found")
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    targets = [f"t{j}" for j in range(y.shape[1])]
    with tempfile.TemporaryDirectory(prefix="molft-chemprop-") as scratch:
        folder = Path(workdir) if workdir is not None else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "chemprop.log"
        parts = [("train", split["train"]), ("val", split["valid"]), ("test", split["test"])]
        rows = np.concatenate([indices for _, indices in parts])
        frame = pd.DataFrame(y[rows], columns=targets)
        frame.insert(0, "smiles", [smiles[i] for i in rows])
        frame["split"] = np.concatenate([[name] * len(indices) for name, indices in parts])
        frame.to_csv(folder / "data.csv", index=False)
        accelerator = ["--accelerator", "gpu", "--devices", "1"] if device.startswith("cuda") else ["--accelerator", "cpu"]
        train = [
            *command, "train", "--data-path", str(folder / "data.csv"), "--smiles-columns", "smiles",
            "--target-columns", *targets, "--splits-column", "split", "--task-type", task_type,
            "--metrics", CHEMPROP_TRACKING[task_type], "--tracking-metric", CHEMPROP_TRACKING[task_type],
            "--output-dir", str(folder / "model"), "--pytorch-seed", str(seed), "--data-seed", str(seed),
            *(["--epochs", str(epochs)] if epochs is not None else []),
            *(["--patience", str(patience)] if patience is not None else []), *accelerator,
        ]
        started = time.perf_counter()
        _run(train, log)
        models = sorted((folder / "model").glob("**/best.pt")) or sorted((folder / "model").glob("**/best*.ckpt"))
        if not models:
            raise RuntimeError(f"chemprop train wrote no best.pt under {folder / 'model'}; see {log}")
        scores = {}
        for part, indices in (("valid", split["valid"]), ("test", split["test"])):
            inputs, outputs = folder / f"{part}.csv", folder / f"{part}_preds.csv"
            pd.DataFrame({"smiles": [smiles[i] for i in indices]}).to_csv(inputs, index=False)
            _run([*command, "predict", "--test-path", str(inputs), "--smiles-columns", "smiles",
                  "--model-paths", str(models[0]), "--preds-path", str(outputs), *accelerator], log)
            predicted = pd.read_csv(outputs).drop(columns=["smiles"])
            if predicted.shape != (len(indices), len(targets)):
                raise RuntimeError(
                    f"chemprop predict wrote {predicted.shape[1]} prediction column(s) for {predicted.shape[0]} "
                    f"molecules in {outputs}; expected {len(targets)} for {len(indices)}"
                )
            scores[part] = predicted.to_numpy(dtype=np.float64)
        info = {"best_epoch": _best_epoch(folder / "model"), "epochs": epochs or 50,
                "chemprop_seconds": time.perf_counter() - started}
    return BaselineResult(scores["valid"], scores["test"], info)
