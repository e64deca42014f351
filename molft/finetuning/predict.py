"""``molft predict``: score new molecules with a fine-tuned model directory, losing no row.

torch and PyG are imported only when the model holds a GNN member or its blend holds the linear member
on the frozen embedding: a model of fingerprint members alone loads and predicts without them (a second
or more of start-up saved per command).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from molft.data.tables import ROW_NUMBER, read_table, write_csv
from molft.errors import InputError
from molft.io import atomic_write
from molft.featurize.graph import Failure, featurize_many
from molft.featurize.molecule import HeadFeatures, molecule_features
from molft.finetuning.ensemble import EMBEDDING_MEMBER, blend
from molft.finetuning.trees import TREE_KINDS, TreeMember, feature_matrix
from molft.finetuning.uncertainty import PlattCalibrator, nearest_similarity
from molft.runtime import read_json

if TYPE_CHECKING:
    import torch

    from molft.data.dataset import GraphDataset
    from molft.finetuning.recipe import TargetScaler
    from molft.models.heads import PropertyModel

FINETUNE_JSON = "finetune.json"
TRAIN_FINGERPRINTS = "train_fingerprints.safetensors"
#: the applicability-domain column compares Morgan bits (radius 2, 2048) with the training molecules'
SIMILARITY_FEATURE = "morgan_bits"
SIMILARITY_BITS = 2048
ERROR_COLUMN = "error"
SIMILARITY_COLUMN = "nearest_train_similarity"


@dataclass
class Prediction:
    """Predictions for a list of molecules, every one kept (NaN where it could not be read).

    Attributes:
        value: [n, num_tasks] the model's prediction: a (calibrated) probability, or a value in
            the user's units.
        spread: [n, num_tasks] std over the individual members with weight (None with one member).
        lower, upper: [n, num_tasks] the split-conformal interval (regression with one), else None.
        similarity: [n] Tanimoto similarity of Morgan bits to the nearest training molecule, or None.
        members: member kind -> [n, num_tasks] that member's prediction (GNN: mean over its seeds).
        failures: the molecules that could not be featurized (position and reason).
    """

    value: np.ndarray
    spread: np.ndarray | None
    lower: np.ndarray | None
    upper: np.ndarray | None
    similarity: np.ndarray | None
    members: dict[str, np.ndarray]
    failures: list[Failure]


@dataclass
class FinetunedModel:
    """A fine-tuned model directory, loaded: its members, how to blend them, and their uncertainty.

    Attributes:
        members: the GNN members (one per seed; empty when the model uses none).
        scaler: the GNN members' target scaling (regression), None without GNN members.
        tree_members: fingerprint member kind -> its fitted member.
        linear: the linear model on the frozen pretrained embedding, when the blend uses it.
        weights: member kind -> blend weight (``{"gnn": 1.0}`` for models written before blends).
        calibrator: Platt calibration of the blended probabilities (classification), or None.
        halfwidths: per task, the split-conformal half-width (regression), or None.
        train_fingerprints: [num_train, 2048] Morgan bits of the training molecules, or None.
        head_features: the molecule features the GNN heads read, or None.
    """

    members: list[PropertyModel]
    targets: list[str]
    task_type: str
    vocabulary: str
    scaler: TargetScaler | None
    config: dict
    tree_members: dict[str, TreeMember] = field(default_factory=dict)
    linear: PropertyModel | None = None
    weights: dict[str, float] = field(default_factory=lambda: {"gnn": 1.0})
    calibrator: PlattCalibrator | None = None
    halfwidths: list[float] | None = None
    train_fingerprints: np.ndarray | None = None
    head_features: HeadFeatures | None = None

    @classmethod
    def load(cls, directory: str | Path, device: torch.device | str | None = "cpu") -> FinetunedModel:
        """Load a directory written by ``molft finetune`` (JSON, safetensors and LightGBM text only).

        ``device`` (None: cuda when present) places the GNN members, if any.

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
        chosen = config.get("model") or {}
        weights = {str(k): float(v) for k, v in chosen.get("weights", {"gnn": 1.0}).items()}
        linear_dir = chosen.get("linear_member") if EMBEDDING_MEMBER in weights else None
        members, linear, scaler = [], None, None
        if config["members"] or linear_dir:
            from molft.checkpoints import load_model
            from molft.finetuning.recipe import TargetScaler
            from molft.runtime import resolve_device

            device = resolve_device(device)
            for member in config["members"]:
                model, _ = load_model(directory / member)
                members.append(model.to(device).eval())
            if linear_dir:
                linear = load_model(directory / linear_dir)[0].to(device).eval()
            if config.get("scaler") is not None:
                scaler = TargetScaler(tuple(config["scaler"]["mean"]), tuple(config["scaler"]["std"]))
        trees = {kind: TreeMember.load(directory / rel) for kind, rel in chosen.get("tree_members", {}).items()}
        unknown = sorted(set(weights) - {"gnn", *trees, *((EMBEDDING_MEMBER,) if linear is not None else ())})
        if unknown or ("gnn" in weights and not members):
            raise InputError(f"{path}: the blend names members that are not in the model ({', '.join(unknown) or 'gnn'})")
        fingerprints = None
        if (directory / TRAIN_FINGERPRINTS).is_file():
            import safetensors.numpy

            try:
                packed = safetensors.numpy.load_file(str(directory / TRAIN_FINGERPRINTS))["morgan_bits"]
            except Exception as error:  # noqa: BLE001 - a damaged or foreign file
                raise InputError(f"{directory / TRAIN_FINGERPRINTS}: cannot be read as safetensors ({error})") from None
            fingerprints = np.unpackbits(packed, axis=1)[:, :SIMILARITY_BITS]
        return cls(
            members=members,
            targets=list(config["targets"]),
            task_type=config["task_type"],
            vocabulary=config["vocabulary"],
            scaler=scaler,
            config=config,
            tree_members=trees,
            linear=linear,
            weights=weights,
            calibrator=PlattCalibrator.from_dict(chosen["calibration"]) if chosen.get("calibration") else None,
            halfwidths=[float(w) for w in chosen["halfwidths"]] if chosen.get("halfwidths") else None,
            train_fingerprints=fingerprints,
            head_features=HeadFeatures.from_dict(config["molecule_features"]) if config.get("molecule_features") else None,
        )

    def predict_graphs(self, dataset: GraphDataset, device: torch.device | str | None = "cpu") -> np.ndarray:
        """[num_members, num_graphs, num_tasks] GNN predictions: probabilities or values in the user's units."""
        return self._graph_predictions(self.members, dataset, device)

    def _graph_predictions(
        self, models: Sequence[PropertyModel], dataset: GraphDataset, device: torch.device | str | None
    ) -> np.ndarray:
        """[len(models), num_graphs, num_tasks] predictions of graph-reading members, in the user's units."""
        if len(dataset) == 0 or not models:  # every row failed, a header-only table, or no such member
            return np.zeros((len(models), len(dataset), len(self.targets)), dtype=np.float32)
        from torch_geometric.loader import DataLoader

        from molft.finetuning.recipe import to_user_units
        from molft.runtime import resolve_device
        from molft.training import predict_batches

        device = resolve_device(device)
        loader = DataLoader(dataset, batch_size=256)
        return np.stack([to_user_units(predict_batches(member, loader, device), self.task_type, self.scaler)
                         for member in models])

    def predict_smiles(
        self, smiles: Sequence[str], device: torch.device | str | None = "cpu", workers: int = 1,
        progress: bool = False
    ) -> Prediction:
        """Predict every SMILES with the chosen model (NaN for those that cannot be featurized)."""
        smiles = list(smiles)
        n, tasks = len(smiles), len(self.targets)
        individual: list[np.ndarray] = []  # every member with weight, one [n, tasks] each
        by_kind: dict[str, np.ndarray] = {}
        result = featurize_many(smiles, self.vocabulary, workers=workers, progress=progress)
        failures = {f.index: f for f in result.failures}
        used_trees = [kind for kind in self.tree_members if kind in self.weights]  # features of unused members: never
        specs = sorted({spec for kind in used_trees for spec in TREE_KINDS[kind].features}
                       | ({SIMILARITY_FEATURE} if self.train_fingerprints is not None else set())
                       | set(self.head_features.specs if self.head_features is not None else ()))
        arrays: dict[str, np.ndarray] = {}
        if specs:
            computed = molecule_features(smiles, specs, workers=workers, progress=progress)
            arrays = computed.arrays
            for index, text in computed.failed:
                failures.setdefault(index, Failure(index, text, "RDKit cannot parse the SMILES"))
        if "gnn" in self.weights:
            from molft.data.dataset import GraphDataset

            head_inputs = None
            if self.head_features is not None:
                head_inputs = self.head_features.transform(arrays)[result.indices]
            scores = np.full((len(self.members), n, tasks), np.nan)
            scores[:, result.indices] = self.predict_graphs(GraphDataset(result.graphs, molecule_x=head_inputs), device)
            by_kind["gnn"] = scores.mean(axis=0)
            individual.extend(scores)
        if self.linear is not None:
            from molft.data.dataset import GraphDataset

            scores = np.full((n, tasks), np.nan)
            scores[result.indices] = self._graph_predictions([self.linear], GraphDataset(result.graphs), device)[0]
            by_kind[EMBEDDING_MEMBER] = scores
            individual.append(scores)
        for kind in used_trees:
            by_kind[kind] = self.tree_members[kind].predict(feature_matrix(arrays, kind))
            individual.append(by_kind[kind])
        bad = np.array(sorted(failures), dtype=np.int64)
        value = blend(by_kind, self.weights)
        if self.calibrator is not None:
            value = self.calibrator.transform(value)
        spread = np.std(individual, axis=0) if len(individual) > 1 else None
        lower = upper = None
        if self.halfwidths is not None:
            lower, upper = value - np.asarray(self.halfwidths), value + np.asarray(self.halfwidths)
        similarity = None
        if self.train_fingerprints is not None:
            similarity = nearest_similarity(arrays[SIMILARITY_FEATURE], self.train_fingerprints)
        for array in (value, spread, lower, upper, similarity, *by_kind.values()):
            if array is not None and len(bad):
                array[bad] = np.nan
        return Prediction(value, spread, lower, upper, similarity, by_kind, [failures[i] for i in sorted(failures)])


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
    ``<target>_pred`` (the chosen model's prediction: a calibrated probability or a value),
    ``<target>_std`` (spread over the members, for more than one), ``<target>_lower`` /
    ``<target>_upper`` (the split-conformal interval of a regression model, e.g. 90%),
    ``nearest_train_similarity`` (Tanimoto of Morgan bits to the nearest training molecule)
    and ``error`` (empty for rows that were predicted). An input column
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
    model = FinetunedModel.load(model_dir, device)
    source, frame = read_table(table, smiles_column)
    prediction = model.predict_smiles(frame[source.smiles_column].tolist(), device, workers, progress)
    failures = prediction.failures
    output = frame.drop(columns=[ROW_NUMBER]).copy()
    added: dict[str, np.ndarray] = {}
    for j, name in enumerate(model.targets):
        added[f"{name}_pred"] = prediction.value[:, j]
        if prediction.spread is not None:
            added[f"{name}_std"] = prediction.spread[:, j]
        if prediction.lower is not None and prediction.upper is not None:
            added[f"{name}_lower"] = prediction.lower[:, j]
            added[f"{name}_upper"] = prediction.upper[:, j]
    if prediction.similarity is not None:
        added[SIMILARITY_COLUMN] = prediction.similarity
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
