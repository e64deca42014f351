"""A user's assay: a table with a SMILES column and one or more measured targets.

Empty cells are missing labels (NaN), never zeros. Problems a user can fix (a target that does not
exist, text among the numbers, a target with no labels, a classification target with one class)
are :class:`~molft.errors.InputError` with the file, the column and the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from molft.data.dataset import GraphDataset
from molft.data.featurized import FeaturizedTable, FeaturizeReport, featurize_file, load_featurized
from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, REGRESSION, infer_task_type
from molft.featurize.vocab import OGB, Vocabulary

TASK_TYPES = (CLASSIFICATION, REGRESSION)


@dataclass
class Assay:
    """Featurized molecules with their labels.

    Attributes:
        table: the featurized table (graphs, row numbers, carried columns).
        dataset: graphs with ``y: [num_molecules, num_tasks]`` (NaN = missing) and row-number ids.
        targets: the target column names, in ``y``'s column order.
        task_type: ``"classification"`` or ``"regression"``.
        report: the featurization report (rows read/rejected), when the assay was featurized now.
    """

    table: FeaturizedTable
    dataset: GraphDataset
    targets: list[str]
    task_type: str
    report: FeaturizeReport | None = None

    @property
    def smiles(self) -> list[str]:
        return self.table.smiles


def load_assay(
    path: str | Path,
    targets: list[str],
    *,
    graphs_dir: str | Path | None = None,
    smiles_column: str | None = None,
    task_type: str | None = None,
    vocab: str | Vocabulary = OGB,
    workers: int = 1,
    progress: bool = True,
) -> Assay:
    """Featurize (or load already featurized) assay data and check its labels.

    Args:
        path: a table (.csv, .smi, ...) or a featurized dataset directory from ``molft featurize``.
        targets: the label columns.
        graphs_dir: where to write the featurized table (default: ``<input>.graphs``, replaced).
        smiles_column: the SMILES column (default: detected).
        task_type: ``"classification"`` or ``"regression"``; inferred from the labels when None.
        vocab: feature vocabulary.
        workers: featurization processes.
        progress: show progress bars.

    Raises:
        InputError: no targets, a missing or non-numeric target, a target without labels, a
            classification target with a single class or labels other than 0/1.
    """
    if not targets:
        raise InputError("no target given: name the label column(s) with --target NAME")
    path = Path(path)
    report = None
    if path.is_dir():
        table = load_featurized(path)
    else:
        report = featurize_file(path, graphs_dir, smiles_column=smiles_column, vocab=vocab, workers=workers,
                                overwrite=True, progress=progress)
        table = load_featurized(report.output)
    dataset = table.dataset(targets)
    y = dataset.y.numpy()
    source = table.meta["source"]
    for j, name in enumerate(targets):
        if np.isnan(y[:, j]).all():
            raise InputError(f"{source}: target {name!r} has no labels (every cell is empty)")
    if task_type is None:
        task_type = infer_task_type(y)
    elif task_type not in TASK_TYPES:
        raise InputError(f"unknown task type {task_type!r}; choose classification or regression")
    if task_type == CLASSIFICATION:
        for j, name in enumerate(targets):
            values = np.unique(y[~np.isnan(y[:, j]), j])
            if not np.isin(values, (0.0, 1.0)).all():
                raise InputError(
                    f"{source}: classification target {name!r} must hold 0/1 labels; found {values[:5].tolist()}"
                )
            if len(values) < 2:
                raise InputError(
                    f"{source}: classification target {name!r} has a single class ({values[0]:g}); "
                    "a classifier needs both 0 and 1"
                )
    return Assay(table=table, dataset=dataset, targets=list(targets), task_type=task_type, report=report)


MIN_MOLECULES_TO_SPLIT = 10


def split_assay(assay: Assay, split: str = "scaffold", split_seed: int = 0) -> dict[str, np.ndarray]:
    """Split the labelled molecules of an assay into train/valid/test (indices into ``assay.dataset``).

    Molecules without any label take no part. ``split`` is ``"scaffold"`` (Bemis-Murcko, as Hu et
    al. and OGB), ``"random"`` (seeded by ``split_seed``) or the name of a column holding
    ``train``/``valid``/``test`` per row.

    Raises:
        InputError: an unknown split, too few labelled molecules, or an empty part.
    """
    from molft.data.splits import column_split, random_split, scaffold_split

    labelled = np.flatnonzero(~np.isnan(assay.dataset.y.numpy()).all(axis=1))
    source = assay.table.meta["source"]
    if len(labelled) < MIN_MOLECULES_TO_SPLIT:
        raise InputError(
            f"{source}: only {len(labelled)} molecules have labels; at least {MIN_MOLECULES_TO_SPLIT} are "
            "needed for a train/valid/test split"
        )
    if split == "scaffold":
        parts = scaffold_split([assay.smiles[i] for i in labelled])
    elif split == "random":
        parts = random_split(len(labelled), seed=split_seed)
    elif split in assay.table.columns:
        parts = column_split(assay.table.columns[split].to_numpy()[labelled].tolist())
    else:
        raise InputError(
            f"unknown split {split!r}: use 'scaffold', 'random' or a column of {source} "
            f"(columns: {', '.join(assay.table.columns.columns)})"
        )
    result = {name: labelled[np.asarray(indices, dtype=np.int64)] for name, indices in parts.items()}
    empty = [name for name, indices in result.items() if len(indices) == 0]
    if empty:
        raise InputError(f"{source}: the {split} split leaves no molecules in {', '.join(empty)}")
    return result
