"""Prediction speed: 1,000 new molecules through molft's default model, on the CPU.

The target (the issue): ``molft predict MODEL molecules.csv --out preds.csv`` on 1,000 molecules
with the model ``molft finetune`` makes by default (``--model auto``: a GNN member, the ``forest``
and ``boosted`` fingerprint members and the blend chosen on validation) takes under 10 s on 2 CPU
cores. ``auto`` may choose a blend without the GNN, and then predicts without running it, so the
same members are also saved as ``--model ensemble`` (equal weights: every member runs, the GNN
included) to time the slowest case.

Both models are fine-tuned on the built-in assay (CHEMBL2321810 pIC50, shipped encoder) with
``--max-epochs`` epochs (2 by default: the number of epochs does not change the cost of a
prediction), or reused from ``--model-dir``. The molecules are the first ``--molecules`` of the
ZINC corpus ``zinc/moses_test.csv.gz`` in molft's data directory (not training molecules), or
the built-in assay's own molecules where there is no data directory.

Per round, for each model and each ``--workers`` setting (1 and 2):

* the whole command: ``molft predict MODEL molecules.csv --out preds.csv --workers W --device
  cpu`` in a fresh process, wall clock from start to exit (interpreter, imports, loading the model,
  reading and writing the CSV included), plus a fresh interpreter that only imports
  ``molft.cli``, ``molft.finetuning.predict`` and ``lightgbm`` (start-up alone), and fresh
  interpreters importing each large dependency alone (:data:`IMPORTS`);
* the in-process call ``molft.predict(MODEL, molecules.csv, preds.csv, workers=W)`` (after one
  untimed warm-up call per model, so lazy imports are not counted);
* the same work as stages, by calling molft's pieces in the order ``predict`` does
  (:func:`stage_seconds`): loading the model, graphs (``featurize_many``), molecule features
  (each of Morgan bits / Morgan counts / RDKit 2D alone, and the single call ``predict`` makes),
  the GNN members (``FinetunedModel.predict_graphs``), ``forest`` and ``boosted``
  (``TreeMember.predict``, LightGBM's text parse timed apart) and the nearest-training-molecule
  similarity (``nearest_similarity``).

Every stage is timed whatever the blend; the stage total counts only the stages ``predict`` runs
for that model (it featurizes graphs and computes every fingerprint member's features even when
the blend gives them no weight, but runs only members with weight). Medians over ``--rounds``.

    python -m benchmarks.predict_speed --rounds 3 [--model-dir runs/predict-speed] [--max-epochs 2]

Writes ``benchmarks/results/predict_speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.harness import command_line, hardware, hardware_text, markdown_table, text_table, utc_now, write_results
from molft.runtime import PROJECT_ROOT, default_data_dir, read_json, run_metadata

NAME = "predict_speed"
TARGET_S = 10.0
ZINC = "zinc/moses_test.csv.gz"
MODELS = ("auto", "ensemble")
WORKERS = (1, 2)
#: a fresh interpreter importing what ``molft predict`` imports before its first molecule (lightgbm
#: is imported when the model is loaded): the part of the command the warm in-process call lacks
STARTUP = "import molft.cli, molft.finetuning.predict, lightgbm"
#: the large imports, each alone in a fresh interpreter (they overlap: not additive)
IMPORTS: dict[str, str] = {
    "python (nothing)": "pass",
    "numpy + pandas": "import numpy, pandas",
    "rdkit + Descriptors": "import rdkit.Chem.Descriptors",
    "torch": "import torch",
    "torch + torch_geometric": "import torch, torch_geometric",
    "torch + torch._dynamo (imported by torch_geometric)": "import torch, torch._dynamo",
    "sklearn.metrics (molft.evaluate, via molft.finetuning.ensemble)": "import sklearn.metrics",
    "lightgbm (imports sklearn)": "import lightgbm",
    "molft.finetuning.predict": "import molft.finetuning.predict",
}
START_UP = "start-up (interpreter + imports)"

#: stage name -> what it is, in the order predict runs them (the report's rows)
STAGES: dict[str, str] = {
    "load model": "FinetunedModel.load: GNN checkpoints, forest arrays, LightGBM text (parsed once, here)",
    "featurize graphs": "featurize_many (RDKit parse + atom/bond arrays)",
    "molecule features": "one molecule_features call over every spec predict needs (one parse per molecule)",
    "  morgan_bits alone": "molecule_features(['morgan_bits']): forest input and the similarity column",
    "  morgan_count alone": "molecule_features(['morgan_count']): boosted input",
    "  rdkit2d alone": "molecule_features(['rdkit2d']): 217 RDKit 2D descriptors, boosted input",
    "GNN members": "FinetunedModel.predict_graphs: batches of 256 through every GNN seed",
    "forest": "TreeMember.predict on Morgan bits (500 trees as arrays)",
    "boosted": "TreeMember.predict on Morgan counts + RDKit 2D, the parse excluded",
    "similarity": "nearest_similarity: Tanimoto to every training molecule's Morgan bits",
}
#: sub-rows: they break "molecule features" down and are not added to the total
BREAKDOWN_ONLY = ("  morgan_bits alone", "  morgan_count alone", "  rdkit2d alone")


# --------------------------------------------------------------------------------------------
# inputs: the molecules and the models


def load_molecules(data_dir: Path | None, count: int) -> tuple[list[str], str]:
    """The first ``count`` ZINC molecules (MOSES test set), or the built-in assay's where the data
    directory lacks them; with where they came from."""
    if data_dir is not None and (Path(data_dir) / ZINC).is_file():
        smiles = pd.read_csv(Path(data_dir) / ZINC, nrows=count, usecols=["SMILES"])["SMILES"].tolist()
        return smiles, f"{ZINC} (first {len(smiles):,} rows; not training molecules)"
    from molft.data.builtin import builtin_assay

    smiles = builtin_assay()["smiles"].tolist()[:count]
    return smiles, f"built-in assay CHEMBL2321810 (first {len(smiles):,} of its molecules: mostly training molecules)"


def train_models(root: Path, *, max_epochs: int, models: Sequence[str] = MODELS, workers: int = 1,
                 progress: bool = False) -> dict[str, Path]:
    """``root/<model>``: a model fine-tuned on the built-in assay with each ``--model`` choice,
    reused where it already holds a finished model."""
    from molft.data.builtin import BUILTIN_TARGET, write_builtin_assay
    from molft.finetuning.predict import FINETUNE_JSON
    from molft.finetuning.train import finetune

    root.mkdir(parents=True, exist_ok=True)
    table = write_builtin_assay(root / "builtin_assay.csv")
    out: dict[str, Path] = {}
    for model in models:
        directory = root / model
        if not (directory / FINETUNE_JSON).is_file():
            print(f"fine-tuning the {model!r} model ({max_epochs} epochs) into {directory}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            finetune(table, [BUILTIN_TARGET], directory, max_epochs=max_epochs, model=model, workers=workers,
                     progress=progress, overwrite=True)
            print(f"  {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        else:
            print(f"reusing the {model!r} model in {directory}", file=sys.stderr, flush=True)
        out[model] = directory
    return out


def model_facts(directory: Path) -> dict[str, Any]:
    """What a model directory holds: the blend, its members, the recipe's epochs, training size."""
    config = read_json(directory / "finetune.json")
    chosen = config.get("model") or {}
    return {
        "directory": str(directory),
        "choice": chosen.get("choice"),
        "reason": chosen.get("reason"),
        "weights": chosen.get("weights", {"gnn": 1.0}),
        "gnn_members": len(config["members"]),
        "tree_members": sorted(chosen.get("tree_members", {})),
        "max_epochs": (config.get("recipe") or {}).get("max_epochs"),
        "pretrained": config.get("pretrained"),
        "split_sizes": config.get("split_sizes"),
        "head_features": (config.get("molecule_features") or {}).get("specs"),
    }


def blend_text(weights: dict[str, float]) -> str:
    """``gnn 0.25 + forest 0.75``."""
    return " + ".join(f"{kind} {weight:.2g}" for kind, weight in weights.items())


# --------------------------------------------------------------------------------------------
# timing


def _timed(seconds: dict[str, float], name: str, call: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    value = call()
    seconds[name] = time.perf_counter() - start
    return value


def stage_seconds(model_dir: str | Path, smiles: Sequence[str], *, workers: int = 1,
                  device: str = "cpu") -> dict[str, Any]:
    """One round of ``FinetunedModel.predict_smiles``'s work, stage by stage (see :data:`STAGES`).

    Every stage runs whatever the blend; ``runs`` lists those ``molft.predict`` runs for this
    model and ``total`` adds their seconds (the sub-rows of ``molecule features`` excluded).

    Returns:
        ``{"seconds": {stage: s}, "runs": [stage, ...], "total": s, "failures": n}``.
    """
    from molft.data.dataset import GraphDataset
    from molft.featurize.graph import featurize_many
    from molft.featurize.molecule import molecule_features
    from molft.finetuning.predict import SIMILARITY_FEATURE, FinetunedModel
    from molft.finetuning.trees import TREE_KINDS, feature_matrix
    from molft.finetuning.uncertainty import nearest_similarity

    smiles = list(smiles)
    seconds: dict[str, float] = {}
    model = _timed(seconds, "load model", lambda: FinetunedModel.load(model_dir, device))
    graphs = _timed(seconds, "featurize graphs", lambda: featurize_many(smiles, model.vocabulary, workers=workers))
    head = getattr(model, "head_features", None)
    specs = sorted({spec for kind in model.tree_members for spec in TREE_KINDS[kind].features}
                   | ({SIMILARITY_FEATURE} if model.train_fingerprints is not None else set())
                   | set(head.specs if head is not None else ()))
    computed = _timed(seconds, "molecule features", lambda: molecule_features(smiles, specs, workers=workers))
    arrays = computed.arrays
    for spec in ("morgan_bits", "morgan_count", "rdkit2d"):
        _timed(seconds, f"  {spec} alone", lambda spec=spec: molecule_features(smiles, [spec], workers=workers))
    runs = ["load model", "featurize graphs", "molecule features"]
    if model.members:
        def gnn() -> np.ndarray:
            extra = {} if head is None else {"molecule_x": head.transform(arrays)[graphs.indices]}
            return model.predict_graphs(GraphDataset(graphs.graphs, **extra), device)

        _timed(seconds, "GNN members", gnn)
        if "gnn" in model.weights:
            runs.append("GNN members")
    for kind in ("forest", "boosted"):
        member = model.tree_members.get(kind)
        if member is None:
            continue
        _timed(seconds, kind, lambda member=member, kind=kind: member.predict(feature_matrix(arrays, kind)))
        if kind in model.weights:
            runs.append(kind)
    if model.train_fingerprints is not None:
        fingerprints = model.train_fingerprints
        _timed(seconds, "similarity", lambda: nearest_similarity(arrays[SIMILARITY_FEATURE], fingerprints))
        runs.append("similarity")
    failures = len({f.index for f in graphs.failures} | {index for index, _ in computed.failed})
    return {"seconds": seconds, "runs": runs, "total": sum(seconds[s] for s in runs), "failures": failures}


def in_process_seconds(model_dir: Path, table: Path, out: Path, *, workers: int, device: str = "cpu") -> float:
    """Wall time of one ``molft.predict(...)`` call, reading ``table`` and writing ``out``."""
    import molft

    start = time.perf_counter()
    molft.predict(model_dir, table, out, workers=workers, device=device, progress=False)
    return time.perf_counter() - start


def process_seconds(argv: list[str]) -> float:
    """Wall time of one whole process, from start to exit; it must succeed."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def molft_executable() -> list[str]:
    """The ``molft`` command of this interpreter's environment (``python -m molft`` without one)."""
    script = Path(sys.executable).parent / "molft"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "molft"]


def predict_argv(model_dir: Path, table: Path, out: Path, workers: int, device: str) -> list[str]:
    return [*molft_executable(), "predict", str(model_dir), str(table), "--out", str(out), "--workers", str(workers),
            "--device", device]


# --------------------------------------------------------------------------------------------
# the benchmark


def config_name(model: str, workers: int) -> str:
    return f"{model}, --workers {workers}"


def measure(models: dict[str, Path], smiles: list[str], work: Path, *, rounds: int,
            workers: Sequence[int] = WORKERS, device: str = "cpu") -> dict[str, Any]:
    """Every round: start-up alone, then per model and worker setting the whole command, the
    in-process call and the stage breakdown (the order of the models alternates by round)."""
    table = work / "molecules.csv"
    pd.DataFrame({"smiles": smiles}).to_csv(table, index=False)
    for directory in models.values():  # the warm-up call: lazy imports (lightgbm...) happen here, untimed
        in_process_seconds(directory, table, work / "warmup.csv", workers=1, device=device)
    startup: list[float] = []
    imports: dict[str, list[float]] = {name: [] for name in IMPORTS}
    runs: dict[str, dict[str, Any]] = {config_name(m, w): {"model": m, "workers": w, "command_s": [], "in_process_s": [],
                                                          "stages": []} for m in models for w in workers}
    for round_ in range(rounds):
        startup.append(process_seconds([sys.executable, "-c", STARTUP]))
        for name, code in IMPORTS.items():
            imports[name].append(process_seconds([sys.executable, "-c", code]))
        order = list(models) if round_ % 2 == 0 else list(reversed(models))
        for model in order:
            for w in workers:
                row = runs[config_name(model, w)]
                out = work / f"preds-{model}-{w}.csv"
                row["command_s"].append(process_seconds(predict_argv(models[model], table, out, w, device)))
                row["in_process_s"].append(in_process_seconds(models[model], table, out, workers=w, device=device))
                row["stages"].append(stage_seconds(models[model], smiles, workers=w, device=device))
                if len(pd.read_csv(out)) != len(smiles):
                    raise RuntimeError(f"{out}: not one row per molecule")
                print(f"round {round_ + 1}: {config_name(model, w):22s} command {row['command_s'][-1]:6.2f} s, "
                      f"in-process {row['in_process_s'][-1]:6.2f} s, stages {row['stages'][-1]['total']:6.2f} s",
                      file=sys.stderr, flush=True)
    return {"startup_s": startup, "imports_s": imports, "configs": runs, "table": str(table)}


def summarise(measured: dict[str, Any], *, target_s: float = TARGET_S) -> dict[str, Any]:
    """Medians per configuration, the stage that dominates, and pass/fail against ``target_s``."""
    startup = statistics.median(measured["startup_s"])
    summary: dict[str, Any] = {"startup_s_median": startup, "configs": {},
                               "imports_s_median": {k: statistics.median(v) for k, v in measured.get("imports_s", {}).items()}}
    for name, row in measured["configs"].items():
        stages = {stage: statistics.median(r["seconds"][stage] for r in row["stages"])
                  for stage in STAGES if all(stage in r["seconds"] for r in row["stages"])}
        runs = row["stages"][0]["runs"]
        counted = {s: stages[s] for s in runs if s not in BREAKDOWN_ONLY}
        largest_stage = max(counted, key=counted.get)
        parts = {START_UP: startup, **counted}  # what the whole command spends its time on
        dominant = max(parts, key=parts.get)
        command = statistics.median(row["command_s"])
        summary["configs"][name] = {
            "model": row["model"], "workers": row["workers"],
            "command_s_median": command, "in_process_s_median": statistics.median(row["in_process_s"]),
            "stage_total_s_median": statistics.median(r["total"] for r in row["stages"]),
            "stages_s_median": stages, "stages_predict_runs": runs,
            "dominant_stage": dominant, "dominant_share_of_command": parts[dominant] / command,
            "largest_in_process_stage": largest_stage,
            "startup_share_of_command": startup / command,
            "target_s": target_s, "passes": command < target_s,
        }
    return summary


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def table_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The main table: one row per model and worker setting."""
    header = ["model (blend)", "workers", "`molft predict` s", "in-process `molft.predict` s", "stage total s",
              "largest part of the command", f"< {result['target_s']:g} s"]
    rows = []
    for config in result["summary"]["configs"].values():
        facts = result["models"][config["model"]]
        rows.append([f"{config['model']} ({blend_text(facts['weights'])})", str(config["workers"]),
                     _s(config["command_s_median"]), _s(config["in_process_s_median"]),
                     _s(config["stage_total_s_median"]),
                     f"{config['dominant_stage']} ({config['dominant_share_of_command']:.0%})",
                     "pass" if config["passes"] else "FAIL"])
    return header, rows


def stage_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Stage seconds (medians) per configuration; ``(skipped)`` marks a stage predict does not run."""
    configs = result["summary"]["configs"]
    header = ["stage", *configs]
    rows = []
    for stage in STAGES:
        cells = []
        for config in configs.values():
            value = config["stages_s_median"].get(stage)
            skipped = value is not None and stage not in BREAKDOWN_ONLY and stage not in config["stages_predict_runs"]
            cells.append("—" if value is None else f"{value:.2f}" + (" (skipped)" if skipped else ""))
        rows.append([stage, *cells])
    rows.append(["total that predict runs", *(_s(c["stage_total_s_median"]) for c in configs.values())])
    rows.append(["in-process `molft.predict`", *(_s(c["in_process_s_median"]) for c in configs.values())])
    rows.append([f"{START_UP}: `{STARTUP}`",
                 *(_s(result["summary"]["startup_s_median"]) for _ in configs)])
    rows.append(["whole `molft predict` command", *(_s(c["command_s_median"]) for c in configs.values())])
    return header, rows


def markdown(result: dict[str, Any]) -> str:
    run, load = result["run"], result["load_average"]
    header, rows = table_rows(result)
    stage_header, stages = stage_rows(result)
    models = result["models"]
    lines = [
        "# Prediction speed: 1,000 molecules through the default model", "",
        f"Command: `{result['command']}`", "",
        f"- Finished {result['finished']}. Target (the issue): `molft predict` on {result['molecules']:,} molecules with"
        f" the default model under {result['target_s']:g} s on 2 CPU cores.",
        f"- Molecules: {result['source']}; {result['failures']} could not be read.",
        f"- Models: `molft finetune` on the built-in assay (CHEMBL2321810 pIC50, scaffold split"
        f" {models['auto']['split_sizes']}), shipped encoder, `max_epochs={result['max_epochs']}` (epochs do not change"
        " the cost of a prediction). `auto` (the default) chose"
        f" **{blend_text(models['auto']['weights'])}**; `ensemble` forces every member, GNN included"
        f" ({blend_text(models['ensemble']['weights'])}): the slowest case. Each holds {models['auto']['gnn_members']}"
        f" GNN member(s) and {', '.join(models['auto']['tree_members'])}.",
        f"- Each command (W = 1, 2): `{result['example_command']}`, timed from process start to exit (subprocess, wall clock);"
        " in-process: `molft.predict(MODEL, molecules.csv, preds.csv, workers=W, device='cpu')` after one untimed"
        f" warm-up call per model; stages: molft's pieces called in `predict`'s order. Medians of {result['rounds']}"
        " rounds.",
        f"- Hardware: {hardware_text(result['hardware'])}; {run['platform']}; Python {run['python']}, torch"
        f" {run['torch']}, PyG {run['torch_geometric']}, RDKit {run['rdkit']}, LightGBM {result['lightgbm']},"
        f" molft {run['molft']} ({run['git_sha'] or 'no git'}, uncommitted changes included).",
        f"- **Load**: load average {load['start'][0]:.2f} / {load['start'][1]:.2f} / {load['start'][2]:.2f}"
        f" (1 / 5 / 15 min) at start, {load['end'][0]:.2f} / {load['end'][1]:.2f} / {load['end'][2]:.2f} at the end"
        f" on {result['hardware']['cpu_count']} cores."
        + (" Other jobs shared the cores: the timings are pessimistic, `--workers 2` most of all."
           if load["start"][0] > 0.5 * result["hardware"]["cpu_count"]
           else " Nothing else ran beside the benchmark's own processes."),
        "", *markdown_table(header, rows, right_from=1), "",
        "## Stages (median seconds)", "",
        "`(skipped)`: timed here, but `molft.predict` does not run it for this blend. The indented rows time each"
        " molecule feature alone (its own parse) and break the single `molecule features` call down; they are not"
        " added to the total.", "",
        *markdown_table(stage_header, stages, right_from=1), "",
        *(f"- *{stage.strip()}*: {text}" for stage, text in STAGES.items()), "",
    ]
    imports = result["summary"].get("imports_s_median") or {}
    if imports:
        lines += ["## Start-up: imports, each alone in a fresh interpreter (median seconds)", "",
                  "They overlap (torch_geometric imports torch, lightgbm imports sklearn and pandas): not additive.", "",
                  *markdown_table(["import", "seconds"], [[f"`{IMPORTS.get(k, k)}` ({k})", f"{v:.2f}"]
                                                          for k, v in imports.items()]), ""]
    lines += ["## What dominates", "", *result["findings"], ""]
    return "\n".join(lines)


def findings(result: dict[str, Any]) -> list[str]:
    """Sentences for the report: pass/fail, the dominant stage, start-up's share."""
    configs = result["summary"]["configs"]
    out = []
    for name, config in configs.items():
        stages = config["stages_s_median"]
        parts = ", ".join(f"{s.strip()} {stages[s]:.2f} s" for s in BREAKDOWN_ONLY if s in stages)
        largest = config["largest_in_process_stage"]
        out.append(
            f"- {name}: {config['command_s_median']:.2f} s for the command ({'pass' if config['passes'] else 'FAIL'});"
            f" start-up (interpreter + imports) {result['summary']['startup_s_median']:.2f} s"
            f" ({config['startup_share_of_command']:.0%} of the command); the largest stage after it is *{largest}*"
            f" ({stages[largest]:.2f} s, {stages[largest] / config['command_s_median']:.0%}); molecule features one at"
            f" a time: {parts}."
        )
        weights = result["models"][config["model"]]["weights"]
        if "gnn" not in weights and config["workers"] == 1:
            out.append(
                f"  - `{config['model']}` gives the GNN no weight: `predict` imports neither torch nor PyG and loads"
                " no GNN checkpoint (`tests/test_imports.py`), but still featurizes every molecule as a graph"
                f" ({stages['featurize graphs']:.2f} s), which supplies the per-row failure reasons."
            )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--molecules", type=int, default=1000)
    parser.add_argument("--max-epochs", type=int, default=2, help="fine-tuning epochs of the models trained here")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="keep the models in DIR/auto and DIR/ensemble (reused when there; default: a temporary"
                             " folder, trained afresh)")
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory (default: molft's)")
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    print(f"load average at start: {load_start}", file=sys.stderr, flush=True)
    import lightgbm

    data_dir = args.data_dir or default_data_dir()
    smiles, source = load_molecules(data_dir, args.molecules)
    with tempfile.TemporaryDirectory(prefix="molft-predict-speed-") as tmp:
        work = Path(tmp)
        root = args.model_dir or work / "models"
        models = train_models(root, max_epochs=args.max_epochs)
        measured = measure(models, smiles, work, rounds=args.rounds)
        failures = measured["configs"][config_name("auto", 1)]["stages"][0]["failures"]
        example = " ".join(predict_argv(Path("MODEL"), Path("molecules.csv"), Path("preds.csv"), 1, "cpu"))
        example = example.replace(" ".join(molft_executable()), "molft").replace("--workers 1", "--workers W")
        facts = {name: model_facts(path) for name, path in models.items()}  # before the folder goes
    result: dict[str, Any] = {
        "benchmark": NAME, "command": command_line(NAME, argv), "finished": utc_now(), "target_s": TARGET_S,
        "molecules": len(smiles), "source": source, "failures": failures, "rounds": args.rounds,
        "max_epochs": args.max_epochs, "model_dir": str(args.model_dir) if args.model_dir else None,
        "models": facts, "example_command": example, "startup_code": STARTUP,
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "hardware": hardware(), "lightgbm": lightgbm.__version__, "run": run_metadata(),
        "measured": {k: v for k, v in measured.items() if k != "table"},
        "summary": summarise(measured),
    }
    result["findings"] = findings(result)
    header, rows = table_rows(result)
    print(text_table(header, rows), file=sys.stderr)
    write_results(NAME, result, markdown(result), args.results_dir)


if __name__ == "__main__":
    main()
