"""Bridges to OGB: its split format and its ``Evaluator``, fed straight from molft datasets.

``ogb.graphproppred.Evaluator(name)`` needs nothing downloaded: it reads its metric and task count
from OGB's bundled ``master.csv``. It wants ``y_true`` and ``y_pred`` of shape
``[num_graphs, num_tasks]`` (NaN marks a missing label) and picks OGB's metric, which can differ
from the one Hu et al. report (OGB scores MUV and PCBA by average precision; Hu et al. report
ROC-AUC on MUV).

Note on numbering: OGB's molecules are those RDKit could read when OGB was built. Current RDKit
rejects a few of them (e.g. 7 hypervalent metal complexes of HIV), and molft drops those before
splitting, so ``ogbg-molhiv`` here has 41,120 molecules rather than OGB's 41,127.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from molft.data.registry import LoadedDataset, get_dataset_info, load_dataset
from molft.errors import InputError


def ogb_evaluator(name: str) -> Any:
    """OGB's ``Evaluator`` for a registry dataset (``"bbbp"`` or ``"ogbg-molbbbp"``).

    Raises:
        InputError: if the dataset has no OGB counterpart.
    """
    from ogb.graphproppred import Evaluator

    info = get_dataset_info(name)
    if info.ogb_name is None:
        raise InputError(f"{info.name} has no OGB counterpart; score it with molft.evaluate.evaluate")
    return Evaluator(info.ogb_name)


def split_dict(loaded: LoadedDataset) -> dict[str, torch.Tensor]:
    """A loaded dataset's split in OGB's ``get_idx_split()`` format: name -> int64 tensor."""
    return {name: torch.from_numpy(indices.astype(np.int64)) for name, indices in loaded.split.items()}


def ogb_split_dict(name: str, data_dir: str | Path | None = None, **load_options: Any) -> dict[str, torch.Tensor]:
    """The scaffold split of a dataset in OGB's ``get_idx_split()`` format.

    Indices point into ``load_dataset(name, data_dir).dataset`` (the molecules RDKit reads, in
    file order); the split rule is OGB's (see :func:`molft.data.splits.scaffold_split`).

    Args:
        name: a registry or OGB name.
        data_dir: the data directory.
        **load_options: passed to :func:`molft.data.registry.load_dataset` (``workers``, ``cache_dir``...).
    """
    return split_dict(load_dataset(name, data_dir, split="scaffold", **load_options))


def ogb_input(name: str, y_true: np.ndarray | torch.Tensor, y_pred: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """Check labels and predictions against OGB's expectations; return the Evaluator's input dict.

    Args:
        name: a registry or OGB name.
        y_true: [num_graphs, num_tasks] labels, NaN = missing ([num_graphs] for one task).
        y_pred: [num_graphs, num_tasks] scores (probabilities or logits) or regression values.

    Returns:
        ``{"y_true": float64 [num_graphs, num_tasks], "y_pred": float64 [num_graphs, num_tasks]}``.

    Raises:
        InputError: shapes that differ from each other or from OGB's task count.
    """
    evaluator = ogb_evaluator(name)
    arrays = {}
    for key, value in (("y_true", y_true), ("y_pred", y_pred)):
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        array = array.astype(np.float64)
        arrays[key] = array[:, None] if array.ndim == 1 else array
    true_shape, pred_shape = arrays["y_true"].shape, arrays["y_pred"].shape
    if true_shape != pred_shape or len(true_shape) != 2:
        raise InputError(
            f"labels have shape {true_shape} but predictions {pred_shape}; both must be [num_graphs, num_tasks]"
        )
    if true_shape[1] != evaluator.num_tasks:
        raise InputError(
            f"{evaluator.name} has {evaluator.num_tasks} tasks, but arrays with {true_shape[1]} were given"
        )
    return arrays


def ogb_evaluate(loaded: LoadedDataset, y_pred: np.ndarray | torch.Tensor, part: str = "test") -> dict[str, float]:
    """Score predictions on one part of a loaded dataset with OGB's Evaluator.

    Args:
        loaded: the dataset (from :func:`molft.data.registry.load_dataset`).
        y_pred: [len(loaded.split[part]), num_tasks] predictions, in split order.
        part: ``"train"``, ``"valid"`` or ``"test"``.

    Returns:
        OGB's result, e.g. ``{"rocauc": 0.71}``.
    """
    if part not in loaded.split:
        raise InputError(f"no split part {part!r}; choose one of: {', '.join(loaded.split)}")
    y_true = loaded.y[loaded.split[part]]
    return ogb_evaluator(loaded.info.name).eval(ogb_input(loaded.info.name, y_true, y_pred))
