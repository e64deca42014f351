"""``molft predict``: score new molecules with a fine-tuned model directory, losing no row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch_geometric.loader import DataLoader

from molft.checkpoints import load_model
from molft.data.dataset import GraphDataset
from molft.data.tables import ROW_NUMBER, read_table, write_csv
from molft.errors import InputError
from molft.io import atomic_write
from molft.featurize.graph import Failure, featurize_many
from molft.finetuning.recipe import TargetScaler, to_user_units
from molft.models.heads import PropertyModel
from molft.runtime import read_json, resolve_device
from molft.training import predict_batches

FINETUNE_JSON = "finetune.json"
ERROR_COLUMN = "error"


@dataclass
class FinetunedModel:
    """A fine-tuned model directory, loaded: its ensemble members and how to read their outputs."""

    members: list[PropertyModel]
    targets: list[str]
    task_type: str
    vocabulary: str
    scaler: TargetScaler | None
    config: dict

    @classmethod
    def load(cls, directory: str | Path, device: torch.device | str = "cpu") -> FinetunedModel:
        """Load a directory written by ``molft finetune`` (JSON config + safetensors only).

        Raises:
            InputError: not a model directory, or a damaged one.
        """
        directory = Path(directory)
        path = directory / FINETUNE_JSON
        if not path.is_file():
            raise InputError(f"{directory}: not a molft model directory (no {FINETUNE_JSON}); make one with 'molft finetune'")
        config = read_json(path)
        if not isinstance(config, dict) or config.get("format") != "molft-finetuned":
            found = config.get("format") if isinstance(config, dict) else f"a JSON {type(config).__name__}"
            raise InputError(f"{path}: unsupported format {found!r}")
        members = []
        for member in config["members"]:
            model, _ = load_model(directory / member)
            members.append(model.to(device).eval())
        scaler = config.get("scaler")
        return cls(
            members=members,
            targets=list(config["targets"]),
            task_type=config["task_type"],
            vocabulary=config["vocabulary"],
            scaler=None if scaler is None else TargetScaler(tuple(scaler["mean"]), tuple(scaler["std"])),
            config=config,
        )

    def predict_graphs(self, dataset: GraphDataset, device: torch.device | str = "cpu") -> np.ndarray:
        """[num_members, num_graphs, num_tasks] predictions: probabilities or values in the user's units."""
        if len(dataset) == 0:  # every row failed, or a header-only table
            return np.zeros((len(self.members), 0, len(self.targets)), dtype=np.float32)
        loader = DataLoader(dataset, batch_size=256)
        return np.stack([to_user_units(predict_batches(member, loader, device), self.task_type, self.scaler)
                         for member in self.members])

    def predict_smiles(
        self, smiles: Sequence[str], device: torch.device | str = "cpu", workers: int = 1, progress: bool = False
    ) -> tuple[np.ndarray, list[Failure]]:
        """[num_members, len(smiles), num_tasks] predictions, NaN for molecules that could not be
        featurized, and those molecules' failures (position and reason)."""
        result = featurize_many(list(smiles), self.vocabulary, workers=workers, progress=progress)
        scores = np.full((len(self.members), len(result.indices) + len(result.failures), len(self.targets)), np.nan)
        scores[:, result.indices] = self.predict_graphs(GraphDataset(result.graphs), device)
        return scores, list(result.failures)


def free_column_name(name: str, taken: Iterable[str]) -> str:
    """``name``, or ``molft_<name>`` (then ``molft_<name>_2``...) when the table already has it.

    Example:
        >>> free_column_name("error", ["smiles", "error"])
        'molft_error'
    """
    taken = set(taken)
    if name not in taken:
        return name
    candidate, number = f"molft_{name}", 2
    while candidate in taken:
        candidate, number = f"molft_{name}_{number}", number + 1
    return candidate


def predict(
    model_dir: str | Path,
    table: str | Path,
    out: str | Path | None = None,
    *,
    smiles_column: str | None = None,
    workers: int = 1,
    device: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict every row of ``table``; failed SMILES get empty predictions and a reason.

    The output keeps every input row in input order with all its columns, then adds
    ``<target>_pred`` (mean over the ensemble), ``<target>_std`` (spread over the ensemble, for
    more than one member) and ``error`` (empty for rows that were predicted). An input column
    that already has one of these names is kept as it is; the new column is then called
    ``molft_<name>`` (``output.attrs["added_columns"]`` lists the names used).

    Args:
        model_dir: a directory written by ``molft finetune``.
        table: molecules to score (.csv, .smi, ...).
        out: where to write the predictions CSV (written atomically), if given.
        smiles_column: the SMILES column (default: detected).
        workers: featurization processes.
        device: default cuda when present.
        progress: show a progress bar.
    """
    device_ = resolve_device(device)
    model = FinetunedModel.load(model_dir, device_)
    source, frame = read_table(table, smiles_column)
    scores, failures = model.predict_smiles(frame[source.smiles_column].tolist(), device_, workers, progress)
    output = frame.drop(columns=[ROW_NUMBER]).copy()
    added: dict[str, np.ndarray] = {}
    for j, name in enumerate(model.targets):
        added[f"{name}_pred"] = scores[:, :, j].mean(axis=0)
        if len(model.members) > 1:
            added[f"{name}_std"] = scores[:, :, j].std(axis=0)
    errors = np.full(len(frame), "", dtype=object)
    for failure in failures:
        errors[failure.index] = failure.reason
    added[ERROR_COLUMN] = errors
    names = {}
    for name, values in added.items():
        names[name] = free_column_name(name, output.columns)
        output[names[name]] = values
    output.attrs["added_columns"] = names
    if out is not None:
        with atomic_write(out) as tmp:
            write_csv(output, tmp)
    return output
