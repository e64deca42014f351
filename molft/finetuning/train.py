"""``molft finetune``: a GNN fine-tuned on a user's assay beside fingerprint models, and the best
of them (or a blend) chosen on validation.

A fine-tuned model is a directory::

    MODEL_DIR/
      finetune.json            targets, task type, target scaling, members, recipe, split, pretrained,
                               and ``model``: the chosen blend, its calibration or intervals
      members/seed-<k>/        one GNN PropertyModel per seed (config.json + model.safetensors)
      members/forest/          the fingerprint members (member.json + forest.safetensors, or
      members/boosted/         LightGBM text files): see molft.finetuning.trees
      members/linear/          instant mode's linear model on the frozen pretrained embedding (a
                               PropertyModel with a linear head; only with a pretrained encoder)
      train_fingerprints.safetensors   packed Morgan bits of the training molecules (similarity column)
      metrics.json             every member's and the chosen model's valid/test metrics, GNN seeds' mean +- std
      metrics.jsonl            one line per epoch per GNN seed
      predictions_valid.csv    row, SMILES, label, the chosen prediction, spread, interval, members, similarity
      predictions_test.csv
      learning_curve.png       validation metric per epoch per seed
      summary.md               the short human-readable account: what was chosen and why
      run.json                 command line, versions, device, seeds
      graphs/                  the featurized input, its rejects.csv and its cached molecule features
      in-progress/             only while running: the request, finished members, the member in
                               training (saved every epoch); ``resume=True`` continues from it
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.loader import DataLoader

from molft.checkpoints import load_model, save_model
from molft.data.assay import Assay, load_assay, split_assay
from molft.errors import InputError
from molft.evaluate import CLASSIFICATION, PRIMARY_METRIC, evaluate
from molft.finetuning import report
from molft.finetuning.member import new_member, predict_scores, train_member
from molft.data.features import table_features
from molft.featurize.molecule import HeadFeatures, parse_molecule_features
from molft.finetuning.choice import choose_model
from molft.finetuning.ensemble import EMBEDDING_MEMBER, members_for
from molft.finetuning.predict import FINETUNE_JSON, SIMILARITY_FEATURE, TRAIN_FINGERPRINTS
from molft.finetuning.trees import TREE_KINDS, TreeMember, feature_matrix, fit_tree_member
from molft.finetuning.uncertainty import nearest_similarity
from molft.finetuning.recipe import Recipe, TargetScaler, apply_overrides, choose_recipe
from molft.io import atomic_write, write_json_atomic, write_jsonl_atomic
from molft.models.encoder import EncoderConfig
from molft.models.heads import PropertyModel, pooling_parts
from molft.pretrained import resolve_pretrained
from molft.runtime import read_json, resolve_device, run_metadata
from molft.training import require_same_settings

#: an unfinished run's state: the request, finished members' records, the member in training
PROGRESS_DIR = "in-progress"
REQUEST_JSON = "request.json"
MODES = ("finetune", "frozen")


@dataclass
class FinetuneResult:
    """What :func:`finetune` produced.

    Attributes:
        out: the model directory.
        metrics: ``metrics.json``'s content.
        recipe: the recipe used (after overrides).
    """

    out: Path
    metrics: dict[str, Any]
    recipe: Recipe
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """A few lines a person can read."""
        return (self.out / "summary.md").read_text()


def finetune(
    table: str | Path,
    targets: list[str],
    out: str | Path,
    *,
    pretrained: str | Path | None = "default",
    split: str = "scaffold",
    seeds: int = 1,
    seed: int = 0,
    split_seed: int = 0,
    task_type: str | None = None,
    smiles_column: str | None = None,
    mode: str = "finetune",
    max_epochs: int | None = None,
    batch_size: int | None = None,
    encoder_lr: float | None = None,
    head_lr: float | None = None,
    freeze_encoder: bool | None = None,
    device: str | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    encoder_config: EncoderConfig | None = None,
    resume: bool = False,
    compare_rf: bool = True,
    focal_gamma: float | None = None,
    gradual_unfreezing: bool | None = None,
    model: str = "auto",
    coverage: float = 0.9,
    molecule_features: str | None = None,
    pooling: str = "mean",
) -> FinetuneResult:
    """Fine-tune on an assay table and write a model directory (see the module docstring).

    Args:
        table: assay table (.csv, .smi, ...) or a featurized directory.
        targets: label columns.
        out: the model directory to write.
        pretrained: ``"default"`` (molft's shipped encoder), a pretrained directory, or
            ``None``/``"none"`` to train from scratch.
        split: ``"scaffold"``, ``"random"`` or the name of a column holding train/valid/test.
        seeds: GNN members (seeds ``seed .. seed + seeds - 1``); their spread is part of the uncertainty.
        seed: the first GNN member's seed, and the fingerprint members' random state.
        split_seed: seed of the random split (the scaffold split is deterministic).
        task_type: ``"classification"`` / ``"regression"``; inferred when None.
        smiles_column: SMILES column (default: detected).
        mode: ``"finetune"`` (train encoder + head) or ``"frozen"`` (instant mode: a linear
            scikit-learn model on frozen pretrained embeddings, seconds on CPU).
        max_epochs, batch_size, encoder_lr, head_lr, freeze_encoder, focal_gamma,
            gradual_unfreezing: override the recipe (:func:`~molft.finetuning.recipe.apply_overrides`).
        device: ``cpu``, ``cuda``...; default cuda when present.
        workers: featurization processes.
        overwrite: replace an existing model directory.
        progress: show progress bars.
        encoder_config: architecture of a from-scratch encoder (default: 5 layers x 300, as Hu et
            al.); a pretrained encoder keeps its own.
        resume: continue an interrupted run in ``out`` (same arguments): finished members are
            kept, the member in training continues from its last epoch, and the result equals
            an uninterrupted run's.
        compare_rf: also fit the fixed random forest on Morgan fingerprints
            (:mod:`molft.baselines`) on the same split and report it beside the model (with a
            ``forest`` member, that member is the same forest and is reported).
        model: ``"auto"`` (train the GNN, a forest, a boosted model and, with a pretrained encoder,
            a linear model on its frozen embedding, then predict with the best single member or blend
            on validation; :mod:`molft.finetuning.ensemble`), ``"ensemble"`` (equal weights), or
            ``"gnn"`` / ``"forest"`` / ``"boosted"`` / ``"linear"`` alone.
        coverage: the intended coverage of the regression intervals (split-conformal on validation).
        molecule_features: molecule-level features the GNN's head reads beside the pooled
            embedding (``"morgan_count,rdkit2d"``, :class:`~molft.featurize.molecule.HeadFeatures`),
            as chemprop's extra descriptors; None for the embedding alone.
        pooling: how the GNN's head pools the atoms: ``"mean"``, ``"sum"``, ``"max"`` or several
            joined by ``+`` (``"mean+max"``, concatenated; :class:`~molft.models.heads.GraphPooling`).

    Raises:
        InputError: bad table or labels, an unknown split column, too few molecules to split,
            or nothing (or something different) to resume.
    """
    out = Path(out)
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    if seeds < 1:
        raise InputError("--seeds must be at least 1")
    members_for(model)  # an unknown model fails here, before any work
    if not 0 < coverage < 1:
        raise InputError(f"--coverage must be between 0 and 1 (e.g. 0.9), got {coverage}")
    head_specs = [spec.strip() for spec in (molecule_features or "").split(",") if spec.strip()]
    if head_specs:
        parse_molecule_features(head_specs)  # an unknown or repeated feature fails here, before any work
    if head_specs and mode == "frozen":
        raise InputError("--molecule-features is for a fine-tuned GNN head; --mode frozen reads the embedding alone")
    pooling_parts(pooling)  # an unknown pooling fails here, before any work
    if pooling != "mean" and mode == "frozen":
        raise InputError("--pooling is for a fine-tuned GNN head; --mode frozen reads the mean-pooled embedding")
    if (out / FINETUNE_JSON).exists() and not overwrite:
        if resume:
            raise InputError(f"{out} holds a finished model; there is nothing to resume")
        raise InputError(f"{out} already holds a model; pass --overwrite to replace it, or choose another --out")
    pretrained_dir = resolve_pretrained(pretrained)
    if mode == "frozen" and pretrained_dir is None:
        raise InputError("--mode frozen needs a pretrained encoder; drop --pretrained none")
    kinds = members_for(model, embedding=pretrained_dir is not None and mode == "finetune")
    overrides = {"max_epochs": max_epochs, "batch_size": batch_size, "encoder_lr": encoder_lr, "head_lr": head_lr,
                 "freeze_encoder": freeze_encoder, "focal_gamma": focal_gamma, "gradual_unfreezing": gradual_unfreezing}
    request = {
        "table": str(Path(table).resolve()), "table_sha256": _content_hash(Path(table)), "targets": list(targets),
        "pretrained": str(pretrained_dir) if pretrained_dir else "none", "split": split, "seeds": seeds,
        "seed": seed, "split_seed": split_seed, "task_type": task_type, "smiles_column": smiles_column, "mode": mode,
        **overrides, "encoder_config": encoder_config.to_dict() if encoder_config else None,
        "model": model, "coverage": coverage, "molecule_features": head_specs, "pooling": pooling,
    }
    progress_dir = _start_progress(out / PROGRESS_DIR, request, resume=resume)
    assay = load_assay(table, targets, graphs_dir=out / "graphs", smiles_column=smiles_column, task_type=task_type,
                       vocab=_vocabulary_of(pretrained_dir), workers=workers, progress=progress)
    split_indices = split_assay(assay, split, split_seed)
    recipe = apply_overrides(choose_recipe(len(split_indices["train"]), pretrained=pretrained_dir is not None),
                             **overrides)
    device_ = resolve_device(device)
    y = assay.dataset.y.numpy()
    scaler = TargetScaler.fit(y[split_indices["train"]]) if assay.task_type != CLASSIFICATION else None

    graphs_dir = Path(table) if Path(table).is_dir() else out / "graphs"
    head_features = None
    if head_specs:
        arrays = {spec: table_features(graphs_dir, spec, workers=workers, progress=progress) for spec in head_specs}
        head_features = HeadFeatures.fit(arrays, head_specs, split_indices["train"])
        assay = replace(assay, dataset=assay.dataset.with_molecule_features(head_features.transform(arrays)))
    loaders = {part: DataLoader(assay.dataset.subset(split_indices[part]), batch_size=256) for part in ("valid", "test")}
    epoch_log: list[dict] = []
    members, per_seed, predictions = [], [], {"valid": [], "test": []}
    gnn_seeds = list(range(seed, seed + seeds)) if "gnn" in kinds else []
    for member_seed in gnn_seeds:
        member_dir = out / "members" / f"seed-{member_seed}"
        gnn, info, member_log = _member(assay, split_indices, member_seed, member_dir, progress_dir, mode=mode,
                                          recipe=recipe, pretrained=pretrained_dir, scaler=scaler, device=device_,
                                          progress=progress, architecture=encoder_config,
                                          molecule_features=len(head_features) if head_features else 0,
                                          pooling=pooling)
        epoch_log.extend(member_log)
        members.append(str(member_dir.relative_to(out)))
        scores = {part: predict_scores(gnn, loaders[part], assay.task_type, scaler, device_) for part in loaders}
        for part in loaders:
            predictions[part].append(scores[part])
        per_seed.append({
            "seed": member_seed, **info,
            **{part: evaluate(y[split_indices[part]], scores[part], assay.task_type, assay.targets) for part in loaders},
        })

    metrics: dict[str, Any] = {"task_type": assay.task_type, "targets": assay.targets}
    if "gnn" in kinds:
        metrics.update(report.summarise(per_seed, predictions, y, split_indices, task_type=assay.task_type,
                                        targets=assay.targets))
    member_scores = {part: ({"gnn": np.mean(predictions[part], axis=0)} if "gnn" in kinds else {}) for part in loaders}
    features = table_features_of(graphs_dir, kinds, workers=workers, progress=progress)
    tree_members = _fit_tree_members(assay, split_indices, features, [k for k in kinds if k in TREE_KINDS], out,
                                     seed=seed)
    for kind, member in tree_members.items():
        for part in loaders:
            member_scores[part][kind] = member.predict(feature_matrix(features, kind)[split_indices[part]])
    if EMBEDDING_MEMBER in kinds:
        linear = _linear_member(assay, split_indices, out, pretrained=pretrained_dir, scaler=scaler, device=device_)
        for part in loaders:
            member_scores[part][EMBEDDING_MEMBER] = predict_scores(linear, loaders[part], assay.task_type, scaler,
                                                                   device_)
    chosen = choose_model(member_scores, y, split_indices, task_type=assay.task_type, model=model, coverage=coverage,
                          targets=assay.targets)
    metrics["members"] = {kind: {part: evaluate(y[split_indices[part]], member_scores[part][kind], assay.task_type,
                                                assay.targets) for part in loaders} for kind in member_scores["valid"]}
    metrics["model"] = chosen.metrics
    if compare_rf:
        from molft.baselines import RF_SETTINGS, random_forest_metrics

        if "forest" in tree_members and seed == 0:  # the same forest (setting and seed 0)
            forest = {**metrics["members"]["forest"], "settings": {**RF_SETTINGS, "random_state": 0}}
        else:
            forest = random_forest_metrics(features[SIMILARITY_FEATURE], y, split_indices,  # the same Morgan bits
                                           task_type=assay.task_type, targets=assay.targets)
        metrics["baselines"] = {"random_forest": forest}
    save_train_fingerprints(out, features[SIMILARITY_FEATURE][split_indices["train"]])
    config = {
        "format": "molft-finetuned", "version": 1, "mode": mode,
        "targets": assay.targets, "task_type": assay.task_type,
        "scaler": None if scaler is None else {"mean": scaler.mean, "std": scaler.std},
        "vocabulary": assay.table.meta["vocabulary"], "members": members,
        "recipe": recipe.to_dict(), "pretrained": str(pretrained_dir) if pretrained_dir else "none",
        "split": split, "split_seed": split_seed,
        "split_sizes": {part: int(len(idx)) for part, idx in split_indices.items()},
        "model": {**chosen.config, "tree_members": {kind: f"members/{kind}" for kind in tree_members},
                  **({"linear_member": f"members/{EMBEDDING_MEMBER}"} if EMBEDDING_MEMBER in kinds else {})},
        "molecule_features": head_features.to_dict() if head_features else None,
    }
    write_json_atomic(out / FINETUNE_JSON, config)
    write_json_atomic(out / "metrics.json", metrics)
    write_json_atomic(out / "run.json", run_metadata(device=str(device_), seeds=gnn_seeds, tree_seed=seed,
                                                    split_seed=split_seed))
    write_jsonl_atomic(out / "metrics.jsonl", epoch_log)
    for part in loaders:
        used = [*(predictions[part] if "gnn" in chosen.weights else []),
                *(member_scores[part][k] for k in (*tree_members, EMBEDDING_MEMBER) if k in chosen.weights)]
        report.write_predictions(
            out / f"predictions_{part}.csv", assay, split_indices[part], prediction=chosen.predictions[part],
            spread=np.std(used, axis=0) if len(used) > 1 else None, halfwidths=chosen.halfwidths,
            similarity=nearest_similarity(features[SIMILARITY_FEATURE][split_indices[part]],
                                          features[SIMILARITY_FEATURE][split_indices["train"]]),
            members=dict(member_scores[part]) if len(member_scores[part]) > 1 else None,
        )
    if epoch_log:
        report.plot_learning_curve(out / "learning_curve.png", epoch_log, PRIMARY_METRIC[assay.task_type])
    report.write_summary(out / "summary.md", config, metrics, assay)
    shutil.rmtree(progress_dir)
    return FinetuneResult(out=out, metrics=metrics, recipe=recipe)


def table_features_of(graphs_dir: Path, kinds: tuple[str, ...], *, workers: int, progress: bool) -> dict[str, np.ndarray]:
    """The molecule features the fingerprint members read, plus Morgan bits for the similarity
    column, cached in the featurized table's ``features/``."""
    specs = {SIMILARITY_FEATURE, *(spec for kind in kinds if kind in TREE_KINDS for spec in TREE_KINDS[kind].features)}
    return {spec: table_features(graphs_dir, spec, workers=workers, progress=progress) for spec in sorted(specs)}


def _fit_tree_members(
    assay: Assay, split: dict[str, np.ndarray], features: dict[str, np.ndarray], kinds: list[str], out: Path, *,
    seed: int,
) -> dict[str, TreeMember]:
    """Fit and save each fingerprint member (random state ``seed``) under ``members/<kind>``."""
    y = assay.dataset.y.numpy()
    fitted = {}
    for kind in kinds:
        member = fit_tree_member(kind, feature_matrix(features, kind), y, split, task_type=assay.task_type, seed=seed)
        member.save(out / "members" / kind)
        fitted[kind] = member
    return fitted


def _linear_member(
    assay: Assay, split: dict[str, np.ndarray], out: Path, *, pretrained: Path, scaler: TargetScaler | None,
    device: torch.device,
) -> PropertyModel:
    """Instant mode's linear model on the frozen pretrained embedding (no bootstrap), saved under
    ``members/linear``; deterministic, so a resumed run fits it again."""
    from molft.finetuning.frozen import fit_frozen_member

    model, info = fit_frozen_member(assay.dataset, split, task_type=assay.task_type, seed=0, pretrained=pretrained,
                                    device=device, scaler=scaler)
    save_model(model, out / "members" / EMBEDDING_MEMBER, extra={"kind": EMBEDDING_MEMBER, **info}, overwrite=True)
    return model


def save_train_fingerprints(out: Path, bits: np.ndarray) -> None:
    """The training molecules' Morgan bits, packed, for the applicability-domain column."""
    import safetensors.numpy

    with atomic_write(out / TRAIN_FINGERPRINTS) as tmp:
        safetensors.numpy.save_file({"morgan_bits": np.packbits(bits.astype(np.uint8), axis=1)}, str(tmp))


def _member(
    assay: Assay, split: dict[str, np.ndarray], seed: int, member_dir: Path, progress_dir: Path, *, mode: str,
    recipe: Recipe, pretrained: Path | None, scaler: TargetScaler | None, device: torch.device, progress: bool,
    architecture: EncoderConfig | None, molecule_features: int = 0, pooling: str = "mean",
) -> tuple[PropertyModel, dict[str, Any], list[dict]]:
    """Ensemble member ``seed``: loaded when an interrupted run finished it, else trained (or fitted,
    in frozen mode) and saved; with its info and epoch log."""
    finished = progress_dir / f"seed-{seed}.json"
    if finished.is_file():  # resuming: this member was done before the interruption
        done = read_json(finished)
        return load_model(member_dir, device)[0], done["info"], done["log"]
    member_log: list[dict] = []
    if mode == "frozen":
        from molft.finetuning.frozen import fit_frozen_member

        model, info = fit_frozen_member(assay.dataset, split, task_type=assay.task_type, seed=seed,
                                        pretrained=pretrained, device=device, scaler=scaler)
    else:
        model = new_member(pretrained, seed=seed, num_tasks=len(assay.targets),
                           vocabulary=assay.table.meta["vocabulary"], recipe=recipe, architecture=architecture,
                           molecule_features=molecule_features, pooling=pooling)
        model, info = train_member(model, assay.dataset, split, task_type=assay.task_type, recipe=recipe, seed=seed,
                                   scaler=scaler, device=device, progress=progress, log=member_log,
                                   checkpoint=progress_dir / f"seed-{seed}.pt")
    save_model(model, member_dir, extra={"seed": seed, **info}, overwrite=True)
    write_json_atomic(finished, {"info": info, "log": member_log})
    (progress_dir / f"seed-{seed}.pt").unlink(missing_ok=True)  # its training state is done with
    return model, info, member_log


def _start_progress(progress_dir: Path, request: dict[str, Any], *, resume: bool) -> Path:
    """The run's ``in-progress/`` directory holding ``request``: checked against the interrupted
    run's request when resuming, else started afresh."""
    if resume:
        path = progress_dir / REQUEST_JSON
        if not path.is_file():
            raise InputError(
                f"{progress_dir.parent}: no interrupted fine-tuning to resume (no {PROGRESS_DIR}/{REQUEST_JSON})"
            )
        require_same_settings(read_json(path), request, where=progress_dir.parent)
    elif progress_dir.exists():
        shutil.rmtree(progress_dir)  # an interrupted run's state: this run starts over
    progress_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(progress_dir / REQUEST_JSON, request)
    return progress_dir


def _content_hash(table: Path) -> str | None:
    """SHA-256 of a table file (of meta.json for a featurized directory), to check a resume's input."""
    from molft.data.featurized import META, file_sha256

    path = table / META if table.is_dir() else table
    return file_sha256(path) if path.is_file() else None


def _vocabulary_of(pretrained_dir: Path | None) -> str:
    if pretrained_dir is None:
        return "ogb"
    path = pretrained_dir / "config.json"
    config = read_json(path)
    if not isinstance(config, dict) or not isinstance(config.get("encoder", config), dict):
        raise InputError(f"{path}: not a molft model config; a pretrained encoder comes from 'molft pretrain'")
    return config.get("encoder", config).get("vocabulary", "ogb")
