"""Pretraining ablation: every objective alone and the promising combinations, at equal compute.

Each arm pretrains a fresh GIN (5 layers x 300, seed 0) with :func:`molft.pretrain` on the same
corpus prefix for the same number of optimizer steps (default: the first 51,200 SMILES of MOSES
``train.csv.gz``, 1 epoch of batch 256 = 200 steps, Adam lr 1e-3 constant, as Hu et al.; about 8
minutes an arm on one CPU core), then
every encoder goes through :mod:`benchmarks.encoder_probe` (frozen embeddings -> a linear model and
its blend with the Morgan forest, 5 tasks x 2 label budgets x 5 seeds; its own runs file and report
under ``<results>/pretrain_ablation/``). ``random`` (0 steps) is the floor: what an untrained GIN's
embedding is worth. ``supervised`` reads ChEMBL's labels, so its corpus is ChEMBL 5thresh (benchmark
test molecules removed); its epochs are chosen to come nearest the same number of steps, and the
table states the steps each arm took.

Arms run in order; each is resumable (``--resume`` of :func:`molft.pretrain`, checkpoints every
100 steps) and a finished arm is recorded in ``<results>/pretrain_ablation_runs.jsonl`` and skipped
on a rerun, so an interrupted ablation continues where it stopped. Pretraining runs go under
``--workdir`` (default ``runs/ablation``), the corpus's featurized graphs and targets are cached
beside its prefix file there, shared by every arm.

    python -m benchmarks.pretrain_ablation --threads 1
    python -m benchmarks.pretrain_ablation --arms attr_masking,descriptors --steps 400 --molecules 51200

Writes benchmarks/results/pretrain_ablation.{json,md} (and the probe's files under
benchmarks/results/pretrain_ablation/).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from scipy.stats import rankdata

from benchmarks import encoder_probe
from benchmarks.harness import (
    RESULTS,
    add_harness_arguments,
    append_run,
    clean,
    command_line,
    comma_list,
    hardware,
    hardware_text,
    input_errors_exit,
    markdown_table,
    read_runs,
    start,
    text_table,
    utc_now,
    write_results,
)
from molft.errors import InputError
from molft.evaluate import higher_is_better
from molft.runtime import default_data_dir, run_metadata

NAME = "pretrain_ablation"
ZINC = "zinc/moses_train.csv.gz"
CHEMBL = "chembl/chembl_5thresh.csv.gz"
BATCH_SIZE = 256


@dataclass(frozen=True)
class Arm:
    """One pretraining recipe of the ablation: objectives with weights, on the ZINC prefix or ChEMBL."""

    name: str
    objectives: str
    corpus: str = "zinc"  # "zinc" (the unlabelled prefix) or "chembl" (labelled: supervised)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # objective -> its options


#: The arms, in the order they run (cheap and informative first).
ARMS: tuple[Arm, ...] = (
    Arm("random", "attr_masking"),  # 0 steps: the untrained encoder
    Arm("attr_masking", "attr_masking"),
    Arm("descriptors", "descriptors"),
    Arm("fingerprint", "fingerprint"),
    Arm("descriptors+fingerprint", "descriptors:1,fingerprint:1"),
    Arm("structure", "structure"),
    Arm("edge_property", "edge_property"),
    Arm("link_prediction", "link_prediction"),
    Arm("graphmae", "graphmae"),
    Arm("contrastive", "contrastive"),
    Arm("context_prediction", "context_prediction"),
    Arm("attr_masking+descriptors+fingerprint", "attr_masking:1,descriptors:1,fingerprint:1"),
    Arm("contrastive+descriptors+fingerprint", "contrastive:1,descriptors:1,fingerprint:1"),
    Arm("supervised", "supervised", corpus="chembl"),
    # a linear head instead of the two-layer MLP: the embedding itself must hold the targets linearly
    Arm("descriptors-linear", "descriptors", options={"descriptors": {"head": "linear"}}),
    Arm("descriptors+fingerprint-linear", "descriptors:1,fingerprint:1",
        options={"descriptors": {"head": "linear"}, "fingerprint": {"head": "linear"}}),
    # the 97 cheapest descriptors (rdkit2d_fast), as benchmarks.gpu_pretrain computes them for 1.94M molecules
    Arm("descriptors_fast+fingerprint", "descriptors:1,fingerprint:1", options={"descriptors": {"feature": "rdkit2d_fast"}}),
)
ARM_NAMES = {arm.name: arm for arm in ARMS}


def zinc_prefix(data_dir: Path, molecules: int, workdir: Path) -> Path:
    """The first ``molecules`` SMILES of MOSES train as a CSV under ``workdir`` (written once)."""
    path = workdir / "corpus" / f"zinc_moses_train_{molecules}.csv"
    if not path.is_file():
        source = data_dir / ZINC
        if not source.is_file():
            raise InputError(f"the ablation corpus {source} is missing; set --data-dir")
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(source, "rt") as lines:
            head = [next(lines) for _ in range(molecules + 1)]
        if len(head) < molecules + 1:
            raise InputError(f"{source} holds fewer than {molecules} molecules")
        partial = path.with_suffix(".partial")
        partial.write_text("".join(head))
        partial.replace(path)
    return path


def arm_settings(arm: Arm, *, molecules: int, steps: int) -> dict[str, Any]:
    """The corpus and epochs that give ``arm`` (nearly) ``steps`` optimizer steps."""
    if arm.name == "random":
        return {"epochs": 0}
    if arm.corpus == "zinc":
        per_epoch = math.ceil(molecules / BATCH_SIZE)
    else:  # ChEMBL 5thresh, less the benchmark test molecules hygiene removes (measured: 23,591 left)
        per_epoch = math.ceil(23_591 / BATCH_SIZE)
    return {"epochs": max(1, round(steps / per_epoch))}


def median_graphs_per_s(log: Path) -> float | None:
    """Median training throughput over the run's step lines."""
    if not log.is_file():
        return None
    rates = [json.loads(line).get("graphs_per_s") for line in log.read_text().splitlines() if line.strip()]
    rates = [r for r in rates if r]
    return statistics.median(rates) if rates else None


def pretrain_arm(arm: Arm, corpus: Path, out: Path, *, epochs: int, workers: int, device: str | None,
                 progress: bool) -> dict[str, Any]:
    """Pretrain one arm (resuming its checkpoint) and describe the run."""
    from molft import pretrain

    result = pretrain(corpus, out, objectives=arm.objectives, objective_options=arm.options or None, epochs=epochs,
                      batch_size=BATCH_SIZE, seed=0,
                      resume=True, checkpoint_every_steps=100, featurize_workers=workers, device=device,
                      progress=progress)
    return {
        "arm": arm.name, "objectives": arm.objectives, "options": arm.options, "corpus": str(corpus),
        "molecules": result.molecules,
        "epochs": result.epochs, "steps": result.steps, "encoder": str(result.encoder),
        "final_losses": result.final_losses, "call_s": round(result.seconds, 1),
        "resumed_from_step": result.resumed_from_step, "graphs_per_s": median_graphs_per_s(out / "log.jsonl"),
        "finished_at": utc_now(),
    }


def probe_summary(probe: dict[str, Any], arms: Sequence[str]) -> dict[str, Any]:
    """Per arm: its linear-probe and blend scores per (task, labels), and its mean rank among the
    arms on the linear probe (1 = best; over every task and label budget)."""
    rows = [r for r in probe["aggregates"] if r["encoder"] in arms]
    by = {(r["encoder"], r["path"], r["dataset"], r["n_labels"]): r for r in rows}
    cells = sorted({(r["dataset"], r["n_labels"], r["metric"]) for r in rows})
    ranks: dict[str, list[float]] = {a: [] for a in arms}
    for dataset, n_labels, metric in cells:
        scored = [(a, by[(a, "linear", dataset, n_labels)]["test_mean"]) for a in arms
                  if (a, "linear", dataset, n_labels) in by]
        sign = -1.0 if higher_is_better(metric) else 1.0  # rank 1 = best; ties share the mean rank
        for (a, _), rank in zip(scored, rankdata([sign * score for _, score in scored])):
            ranks[a].append(float(rank))
    return {"cells": [list(c) for c in cells],
            "mean_rank": {a: (statistics.mean(v) if v else None) for a, v in ranks.items()},
            "scores": {f"{a}|{p}|{d}|{n}": {"test_mean": r["test_mean"], "test_std": r["test_std"],
                                            "gain_mean": r["gain_mean"]}
                       for (a, p, d, n), r in by.items()}}


def hosts(arms: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """The arms grouped by the CPU each was pretrained on (``not recorded`` for early records)."""
    grouped: dict[str, list[str]] = {}
    for arm in arms:
        cpu = (arm.get("hardware") or {}).get("cpu") or "not recorded"
        grouped.setdefault(cpu, []).append(arm["arm"])
    return grouped


def to_markdown(result: dict[str, Any]) -> str:
    arms = result["arms"]
    summary = result["probe_summary"]
    lines = [
        "# Pretraining ablation: objectives at equal compute, compared by the encoder probe", "",
        f"Command: `{result['command']}`", "",
        f"- Finished {result['finished_at']}; {hardware_text(result['hardware'])}",
        f"- Protocol: a fresh GIN (5 x 300, seed 0) per arm; corpus {result['corpus']}; batch {BATCH_SIZE}, "
        f"Adam lr 1e-3 constant, {result['steps']} steps asked (the table gives each arm's); `random` is the "
        "untrained encoder (0 steps). Probe: `benchmarks.encoder_probe` (frozen mean-pooled embedding -> "
        "linear model, strength chosen on validation; blend = its late blend with the Morgan forest, weight "
        "chosen on validation), same nested subsets and seeds for every arm; its full tables: "
        "`pretrain_ablation/encoder_probe.md`.",
        "- Rank: mean rank of the arm's linear probe among the arms over every (task, labels) cell "
        "(1 = best). Scores: test mean over seeds (ROC-AUC up, RMSE down); ▲ = blend beats the forest.",
        "- Equal compute is the step count; `train min` and `graphs/s` are each arm's own wall clock where it ran ("
        + "; ".join(f"{host}: {', '.join(names)}" for host, names in hosts(arms).items())
        + "), so they compare arms only on one host.", "",
    ]
    cells = summary["cells"]
    header = ["arm", "objectives", "steps", "train min", "graphs/s", "rank",
              *[f"{d} {n:,} lin" for d, n, _ in cells]]
    table = []
    for arm in sorted(arms, key=lambda a: (summary["mean_rank"].get(a["arm"]) or 99)):
        name = arm["arm"]
        objectives = f"`{arm['objectives']}`" if name != "random" else "(none)"
        if arm.get("options"):
            objectives += " " + ", ".join(f"{objective} {', '.join(f'{k}={v}' for k, v in options.items())}"
                                          for objective, options in arm["options"].items())
        row = [name, objectives, str(arm["steps"]),
               f"{arm['train_s'] / 60:.1f}" if arm.get("train_s") is not None else "",
               f"{arm['graphs_per_s']:.0f}" if arm.get("graphs_per_s") else "",
               f"{summary['mean_rank'][name]:.2f}" if summary["mean_rank"].get(name) is not None else ""]
        for d, n, _ in cells:
            linear = summary["scores"].get(f"{name}|linear|{d}|{n}")
            blend_ = summary["scores"].get(f"{name}|blend-chosen|{d}|{n}")
            text = f"{linear['test_mean']:.3f}" if linear else ""
            if blend_ and blend_["gain_mean"] is not None and blend_["gain_mean"] > 0:
                text += " ▲"
            row.append(text)
        table.append(row)
    lines += markdown_table(header, table, right_from=2)
    lines += ["", "Forest alone (Morgan bits, the probe's reference): "
              + ", ".join(f"{key.replace('|', ' ')}: {value:.3f}" for key, value in result["forest"].items()), ""]
    return "\n".join(lines)


def run_ablation(arms: Sequence[str], *, molecules: int = 51_200, steps: int = 200, tasks: Sequence[str] =
                 encoder_probe.DEFAULT_TASKS, budgets: Sequence[int] = encoder_probe.DEFAULT_BUDGETS, seeds: int = 5,
                 workdir: Path = Path("runs/ablation"), data_dir: str | Path | None = None,
                 results_dir: Path = RESULTS, device: str | None = None, workers: int = 1, progress: bool = True,
                 command: str | None = None, report_only: bool = False) -> dict[str, Any]:
    """Pretrain every missing arm, probe every finished one, and write the report."""
    unknown = [a for a in arms if a not in ARM_NAMES]
    if unknown:
        raise InputError(f"unknown arm(s) {', '.join(unknown)}; choose from: {', '.join(ARM_NAMES)}")
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    if data_dir is None:
        raise InputError("no data directory: set --data-dir or MOLFT_DATA_DIR")
    results_dir = Path(results_dir)
    runs_file = results_dir / f"{NAME}_runs.jsonl"
    done = {r["arm"]: r for r in read_runs(runs_file) if r.get("steps_asked") == steps and r.get("prefix") == molecules}
    started = time.perf_counter()
    for name in arms:
        if name in done or report_only:
            continue
        arm = ARM_NAMES[name]
        corpus = zinc_prefix(data_dir, molecules, workdir) if arm.corpus == "zinc" else data_dir / CHEMBL
        began = time.perf_counter()
        record = pretrain_arm(arm, corpus, workdir / name, **arm_settings(arm, molecules=molecules, steps=steps),
                              workers=workers, device=device, progress=progress)
        record.update(steps_asked=steps, prefix=molecules, train_s=round(time.perf_counter() - began, 1),
                      run=run_metadata(device=device or "auto", seed=0), hardware=hardware())
        append_run(runs_file, record)
        done[name] = record
        print(f"{name}: {record['steps']} steps in {record['train_s'] / 60:.1f} min", flush=True)
    finished = [a for a in arms if a in done]
    if not finished:
        raise InputError("no arm has finished yet")
    probe = encoder_probe.run_benchmark(
        tasks, encoders=[f"{a}={done[a]['encoder']}" for a in finished], budgets=budgets, seeds=seeds,
        device=device, data_dir=data_dir, results_dir=results_dir / NAME, progress=progress,
        command=f"{command} (its probe)" if command else None, report_only=report_only,
    )
    forest = {f"{r['dataset']}|{r['n_labels']}": r["test_mean"] for r in probe["aggregates"]
              if r["method"] == encoder_probe.FOREST}
    result = clean({
        "benchmark": NAME, "command": command or command_line(NAME, None),
        "corpus": f"first {molecules:,} SMILES of {ZINC} (supervised: {CHEMBL})", "steps": steps,
        "arms": [done[a] for a in finished], "probe_summary": probe_summary(probe, finished),
        "forest": forest, "hardware": hardware(),
        "elapsed_s": round(time.perf_counter() - started, 1), "finished_at": utc_now(),
    })
    write_results(NAME, result, to_markdown(result), results_dir)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arms", type=comma_list, default=list(ARM_NAMES), help=f"arms: {', '.join(ARM_NAMES)}")
    parser.add_argument("--molecules", type=int, default=51_200, help="ZINC prefix (molecules)")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per arm")
    parser.add_argument("--tasks", type=comma_list, default=list(encoder_probe.DEFAULT_TASKS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--workers", type=int, default=1, help="processes for featurizing and targets")
    add_harness_arguments(parser, results_dir=RESULTS)
    args = parser.parse_args(argv)
    with input_errors_exit():
        start(args, runs_file=Path(args.results_dir) / f"{NAME}_runs.jsonl")
        result = run_ablation(args.arms, molecules=args.molecules, steps=args.steps, tasks=args.tasks,
                              seeds=args.seeds, workdir=args.workdir, data_dir=args.data_dir,
                              results_dir=args.results_dir, device=args.device, workers=args.workers,
                              progress=not args.no_progress, command=command_line(NAME, argv),
                              report_only=args.report_only)
    print(text_table(["arm", "steps", "rank"], [[a["arm"], str(a["steps"]),
                                                f"{result['probe_summary']['mean_rank'].get(a['arm']) or float('nan'):.2f}"]
                                               for a in result["arms"]]))


if __name__ == "__main__":
    main()
