r"""Pretrain the winning objective set on the whole ZINC corpus in one GPU session, one script.

The pretraining ablation (benchmarks/results/pretrain_ablation.md) ranked graph-level descriptor
targets first, alone or with Morgan fingerprint bits. This script pretrains ``descriptors:1,fingerprint:1``
from a fresh GIN (5 x 300, ogb vocabulary; batch 256, AdamW 1e-3, constant learning rate) on the
1,936,962 SMILES of the three MOSES/ZINC files, joined in order, inside a fixed time budget:

1. *featurize*: each SMILES file into graphs (:func:`molft.data.featurized.featurize_file`,
   ``--workers`` processes);
2. *targets*: the ``rdkit2d_fast`` descriptors (97 of RDKit's 217 at 15-23% of their cost: all
   217 take 4.7-11 ms per molecule, 570-1,340 s on 16 cores for this corpus, the 97 about
   0.8-1.8 ms, 100-220 s; benchmarks/results/descriptor_cost.md) and 1,024 Morgan bits of every
   molecule, one pass per file (:func:`molft.data.features.table_feature_arrays`), cached beside
   the graphs, where pretraining reads them;
3. *train*: :func:`molft.pretraining.loop.pretrain` on cuda (cpu when there is none), with
   ``--loader-workers`` data-loader processes, until the budget is spent: ``--budget`` seconds for
   the whole script from its start, less ``--reserve`` for writing. The time limit stops training
   at a step boundary, writes a checkpoint and the encoder, and records ``stopped_by: time_limit``.
   The learning rate is constant, as in the ablation, so no step count is needed in advance (a
   cosine schedule would need one); the number of steps is whatever the machine does in the time;
4. *export*: into ``--out``, 7 files: ``encoder/config.json`` + ``encoder/model.safetensors`` (the
   encoder with its pretraining record, for ``molft finetune --pretrained DIR``), ``log.jsonl``,
   ``loss.png``, ``pretrain.json``, and the report ``gpu_pretrain.json`` + ``gpu_pretrain.md``
   (command, hardware, versions, seconds per stage, molecules, steps, graphs/s). The featurized
   corpus, the targets and the checkpoint (with optimizer state, ~30 MB) stay in ``--work``.

**On the GPU machine** (one H200, 16 cores, python3 3.12 with torch 2.11 and torch-geometric 2.8; no rdkit,
which molft's pretraining path needs; ogb and lightgbm it does not import). What travels must stay
under 64 MiB (67.1 MB): the rdkit 2026.3.6 wheel (this machine's version) is 38.1 MB, the three gzipped
CSVs 12.9 MB; data/pretrained (53 MB) and benchmarks/results (23 MB) are moved aside for the call, which
leaves about 1 MB of tracked and untracked files. In the repository root::

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl rdkit==2026.3.6
    ls .whl                                    # rdkit-2026.3.6-cp312-...whl alone (/.whl/ is git-ignored)
    mkdir -p .carry/zinc && cp ../shared/data/zinc/moses_*.csv.gz .carry/zinc/     # /.carry/ too
    mv data/pretrained /tmp/molft-pretrained-aside; mv benchmarks/results /tmp/molft-results-aside
    git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1   # 1.2 MB
    du -cb .whl .carry/zinc | tail -1                                                 # 51.0 MB

then one device ``run`` with ``carry=[".whl", ".carry/zinc"]`` and ``timeout_s=600``::

    set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 && nvidia-smi -L && nproc && { python3 -m benchmarks.gpu_pretrain --data-dir .carry --max-molecules 1000 --budget 25 --loader-workers 4 --out /tmp/smoke --work /tmp/smoke.work > /tmp/smoke.txt 2>&1 || { tail -c 6000 /tmp/smoke.txt; exit 1; }; } && grep -E "stopped by|^\| total" /tmp/smoke.txt && python3 -m benchmarks.gpu_pretrain --data-dir .carry --out $OUT --work /tmp/gpu_pretrain --workers 16 --loader-workers 12 --budget 490 2>&1 | tee $OUT/console.txt

and at once, whatever came back: ``mv /tmp/molft-pretrained-aside data/pretrained; mv
/tmp/molft-results-aside benchmarks/results``. The first script is a smoke test on 1,000 molecules
(every stage, a CUDA step, a checkpoint, the export), so a failure costs seconds, not the lease; the
second is the run, 490 s from its start. ``$OUT`` gets the 7 files above and ``console.txt`` (8, the
most a call brings back). While the machine is still warm (30 s after a call) a second call with
``--resume --budget 235`` (same ``--work``) finds the featurized corpus and its targets in /tmp and
trains on from the last checkpoint: what the 2026-12-04 lease did (benchmarks/results/gpu_pretrain/:
first_call.md, then gpu_pretrain.md; 12,739 steps, 1.68 passes, in 15 minutes of device time).

**The next lease** can continue the shipped encoder instead of starting afresh: ``--init
descfp-zinc-full`` (its weights; the heads and the optimizer start anew, the targets are recomputed
the same way), a larger ``--batch-size`` with a matching ``--lr`` (the 2026-12-04 step was
latency-bound at batch 256). For that, move data/pretrained aside but for that one encoder (7.4 MB)::

    mv data/pretrained /tmp/molft-pretrained-aside && mkdir -p data/pretrained \
        && cp -r /tmp/molft-pretrained-aside/gin-descfp-zinc-full data/pretrained/

which leaves about 8.6 MB of tracked and untracked files beside the 51.0 MB carried (under 67.1 MB),
and add ``--init descfp-zinc-full`` to the second script (and to the smoke test, which then checks it).

On a CPU, a small check of the whole flow (the first 3,000 molecules, two minutes)::

    python -m benchmarks.gpu_pretrain --max-molecules 3000 --budget 120 --workers 2 --loader-workers 2 \
        --out runs/gpu_pretrain_cpu --work runs/gpu_pretrain_cpu.work
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.harness import command_line, hardware, hardware_text, input_errors_exit, markdown_table, write_results
from molft.data.featurized import META, featurize_file, file_sha256
from molft.runtime import default_data_dir, read_json, resolve_device, run_metadata

ZINC_FILES = ("zinc/moses_train.csv.gz", "zinc/moses_test.csv.gz", "zinc/moses_test_scaffolds.csv.gz")
OBJECTIVES = "descriptors:1,fingerprint:1"
#: the files the export writes into --out (at most 8 come back from a device call)
EXPORTED = ("encoder/config.json", "encoder/model.safetensors", "log.jsonl", "loss.png", "pretrain.json")
NAME = "gpu_pretrain"


def corpus_files(data_dir: Path | None, corpus: list[Path] | None) -> list[Path]:
    """The SMILES files to pretrain on: ``corpus`` when given, else the three ZINC files of the data
    directory; each must exist."""
    if corpus is None:
        if data_dir is None:
            raise SystemExit("no data directory: pass --data-dir (holding zinc/moses_*.csv.gz) or --corpus")
        corpus = [data_dir / relative for relative in ZINC_FILES]
    missing = [str(path) for path in corpus if not path.is_file()]
    if missing:
        raise SystemExit(f"corpus file(s) not found: {', '.join(missing)}; pass --data-dir or --corpus")
    return corpus


def prefix_files(files: list[Path], molecules: int, folder: Path) -> list[Path]:
    """The first ``molecules`` rows of ``files`` joined in order, as CSV files in ``folder`` (one per
    file that contributes rows; same names, uncompressed)."""
    folder.mkdir(parents=True, exist_ok=True)
    out, remaining = [], molecules
    for path in files:
        if remaining <= 0:
            break
        frame = pd.read_csv(path, nrows=remaining)
        target = folder / path.name.removesuffix(".gz")
        frame.to_csv(target, index=False)
        out.append(target)
        remaining -= len(frame)
    return out


def featurize_stage(files: list[Path], folder: Path, *, workers: int) -> list[dict[str, Any]]:
    """Featurize each file into ``folder/<name>.graphs`` (a featurization of the same file already
    there is reused); one record per file: counts, seconds, sha256."""
    records = []
    for path in files:
        output = folder / (path.name.split(".")[0] + ".graphs")
        started = time.perf_counter()
        sha256 = file_sha256(path)
        reused = (output / META).is_file() and read_json(output / META).get("source_sha256") == sha256
        if reused:
            counts = read_json(output / META)["counts"]
        else:
            report = featurize_file(path, output, workers=workers, progress=False, overwrite=True)
            counts = {"read": report.read, "featurized": report.featurized, "rejected": report.rejected}
        records.append({"file": str(path), "sha256": sha256, "featurized_dir": str(output), **counts,
                        "reused": reused, "seconds": time.perf_counter() - started})
        print(f"featurized {path.name}: {counts['featurized']:,} of {counts['read']:,} rows "
              f"in {records[-1]['seconds']:.1f} s", flush=True)
    return records


def targets_stage(parts: list[Path], features: list[str], *, workers: int) -> list[dict[str, Any]]:
    """Compute (or find cached) the target features of every molecule of each part, in one pass per part."""
    from molft.data.features import table_feature_arrays

    records = []
    for part in parts:
        started = time.perf_counter()
        arrays = table_feature_arrays(part, features, workers=workers)
        records.append({"featurized_dir": str(part), "molecules": len(arrays[0]),
                        "columns": {spec: int(array.shape[1]) for spec, array in zip(features, arrays)},
                        "seconds": time.perf_counter() - started})
        print(f"targets of {part.name}: {len(arrays[0]):,} molecules in {records[-1]['seconds']:.1f} s", flush=True)
    return records


def train_time_limit(budget_s: float, reserve_s: float, elapsed_s: float) -> float:
    """Seconds the training call may take: what the budget has left after ``elapsed_s`` and the
    reserve for writing, never below 0 (then one step is trained and the run stops).

    Example:
        >>> train_time_limit(510, 20, 130.5), train_time_limit(120, 20, 150)
        (359.5, 0.0)
    """
    return max(0.0, budget_s - reserve_s - elapsed_s)


def median_graphs_per_s(log: Path) -> float | None:
    """Median of the step lines' windowed graphs/s (training time only, checkpoints left out)."""
    rates = [r["graphs_per_s"] for r in _read_log(log) if r.get("kind") == "step" and r.get("graphs_per_s")]
    return statistics.median(rates) if rates else None


def _read_log(log: Path) -> list[dict[str, Any]]:
    from molft.io import read_jsonl

    return read_jsonl(log) if log.is_file() else []


def export(run: Path, out: Path) -> list[str]:
    """Copy the encoder, the log, its plot and pretrain.json from the run directory into ``out``."""
    written = []
    for relative in EXPORTED:
        if (run / relative).is_file():
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(run / relative, out / relative)
            written.append(relative)
    return written


def gpu_facts() -> dict[str, Any]:
    """The GPU's name, memory and the peak memory this process allocated on it (None without one)."""
    import torch

    if not torch.cuda.is_available():
        return {"gpu_memory_gib": None, "peak_gpu_allocated_gib": None}
    return {"gpu_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30,
            "peak_gpu_allocated_gib": torch.cuda.max_memory_allocated() / 2**30}


def markdown(report: dict[str, Any]) -> str:
    seconds, settings, training = report["seconds"], report["settings"], report["training"]
    molecules = report["molecules"]
    featurize_rate = molecules["featurized"] / max(seconds["featurize"], 1e-9)
    targets_rate = molecules["featurized"] / max(seconds["targets"], 1e-9)
    stages = [
        ["featurize", f"{molecules['read']:,} SMILES -> {molecules['featurized']:,} graphs on {settings['workers']} "
         f"processes ({featurize_rate:,.0f} mol/s)", f"{seconds['featurize']:.1f}"],
        ["targets", f"{settings['descriptors']} ({training['descriptor_columns']}) + {settings['fingerprint']}, one "
         f"pass, {settings['workers']} processes ({targets_rate:,.0f} mol/s)", f"{seconds['targets']:.1f}"],
        ["train", f"pretrain(): loading graphs and targets, then {seconds['train_loop']:.1f} s of training loop "
         f"(time limit {training['time_limit_s']:.0f} s)", f"{seconds['train']:.1f}"],
        ["export + report", "copies into --out", f"{seconds['export']:.1f}"],
        ["total", f"budget {settings['budget_s']:.0f} s", f"{seconds['total']:.1f}"],
    ]
    losses = ", ".join(f"{k} {v:.4f}" for k, v in training["final_losses"].items()) or "none"
    lines = [
        "# Pretraining on the whole ZINC corpus in one GPU session",
        "",
        f"Command: `{report['command']}`",
        "",
        f"- Hardware: {hardware_text(report['hardware'])}"
        + (f", {report['gpu']['gpu_memory_gib']:.0f} GiB" if report["gpu"]["gpu_memory_gib"] else "")
        + f"; device {training['device']}.",
        f"- Versions: molft {report['molft']} (git {report['git_sha'] or 'unknown'}), torch {report['torch']}, "
        f"torch_geometric {report['torch_geometric']}, rdkit {report['rdkit']}, Python {report['python']}.",
        f"- Objectives `{settings['objectives']}` (descriptors: `{settings['descriptors']}`, fingerprint: "
        f"`{settings['fingerprint']}`) from "
        + (f"the encoder `{settings['init']}`" if settings.get("init") else "a fresh GIN")
        + f" {settings['num_layers']} x {settings['hidden_dim']}; batch "
        f"{settings['batch_size']}, AdamW lr {settings['lr']:g} constant, seed {settings['seed']}; "
        f"{settings['loader_workers']} data-loader processes.",
        f"- Corpus: {', '.join(Path(f['file']).name for f in report['corpus'])}: {molecules['read']:,} rows, "
        f"{molecules['featurized']:,} molecules, {molecules['rejected']:,} rejected; "
        f"trained on {training['molecules']:,}.",
        f"- Training stopped by **{training['stopped_by']}** after {training['steps']:,} steps "
        f"({training['epochs']} epochs + {training['batch_in_epoch']:,} batches; {training['graphs_seen']:,} graphs "
        f"seen, {training['passes']:.2f} passes over the corpus).",
        "",
        *markdown_table(["stage", "what", "seconds"], stages, right_from=2),
        "",
        f"Throughput: {training['graphs_per_s']:,.0f} graphs/s over the training loop (checkpoints included); "
        + (f"median {training['median_window_graphs_per_s']:,.0f} graphs/s over the log's windows. "
           if training["median_window_graphs_per_s"] else "")
        + (f"Peak GPU memory allocated: {report['gpu']['peak_gpu_allocated_gib']:.1f} GiB. "
           if report["gpu"]["peak_gpu_allocated_gib"] is not None else "")
        + f"Peak resident memory of the main process: {report['peak_rss_gib']:.1f} GiB.",
        "",
        f"Final losses ({'the epoch in progress' if training['batch_in_epoch'] else 'the last epoch'}): {losses}.",
        "",
        f"Files: {', '.join(report['files'])}.",
    ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    """The four stages; returns the report (also written into ``args.out``)."""
    from molft.pretraining.loop import pretrain

    started = time.perf_counter()
    out, work = Path(args.out), Path(args.work)
    if (out / "encoder").exists() and not args.resume:
        raise SystemExit(f"{out} already holds an encoder; choose another --out (or --resume the run in --work)")
    files = corpus_files(args.data_dir, args.corpus)
    if args.max_molecules is not None:
        files = prefix_files(files, args.max_molecules, work / "prefix")
    corpus = featurize_stage(files, work / "featurized", workers=args.workers)
    featurized_at = time.perf_counter()
    parts = [Path(record["featurized_dir"]) for record in corpus]
    features = [args.descriptors, args.fingerprint]
    targets = targets_stage(parts, features, workers=args.workers)
    targets_at = time.perf_counter()

    time_limit = train_time_limit(args.budget, args.reserve, targets_at - started)
    print(f"training for at most {time_limit:.0f} s", flush=True)
    result = pretrain(
        parts, work / "run", objectives=OBJECTIVES,
        objective_options={"descriptors": {"feature": args.descriptors}, "fingerprint": {"feature": args.fingerprint}},
        encoder={"num_layers": args.num_layers, "hidden_dim": args.hidden_dim}, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, lr_schedule="constant", time_limit_s=time_limit, device=args.device,
        seed=args.seed, num_workers=args.loader_workers, featurize_workers=args.workers,
        checkpoint_every_steps=args.checkpoint_every_steps, log_every_steps=args.log_every_steps,
        init=args.init, resume=args.resume, progress=False,
    )
    trained_at = time.perf_counter()
    print(f"trained {result.steps:,} steps in {result.train_seconds:.1f} s (stopped by {result.stopped_by})",
          flush=True)

    files_written = export(result.out, out)
    record = read_json(result.encoder / "config.json")["extra"]["pretraining"]
    per_epoch = read_json(result.out / "pretrain.json")["steps_per_epoch"]
    graphs_seen = result.epochs * result.molecules + record["batch_in_epoch"] * args.batch_size
    steps_now = result.steps - (result.resumed_from_step or 0)
    descriptor_columns = targets[0]["columns"][args.descriptors]
    report: dict[str, Any] = {
        **run_metadata(),
        "command": command_line(NAME, argv),
        "hardware": hardware(),
        "gpu": gpu_facts(),
        "settings": {
            "objectives": OBJECTIVES, "descriptors": args.descriptors, "fingerprint": args.fingerprint,
            "num_layers": args.num_layers, "hidden_dim": args.hidden_dim, "batch_size": args.batch_size,
            "lr": args.lr, "lr_schedule": "constant", "epochs": args.epochs, "seed": args.seed,
            "budget_s": args.budget, "reserve_s": args.reserve, "workers": args.workers,
            "loader_workers": args.loader_workers, "max_molecules": args.max_molecules, "init": args.init,
        },
        "corpus": corpus,
        "targets": targets,
        "molecules": {key: sum(int(f[key]) for f in corpus) for key in ("read", "featurized", "rejected")},
        "training": {
            "device": str(resolve_device(args.device)),
            "molecules": result.molecules, "steps": result.steps, "steps_per_epoch": per_epoch,
            "epochs": result.epochs, "batch_in_epoch": record["batch_in_epoch"], "graphs_seen": graphs_seen,
            "passes": graphs_seen / max(result.molecules, 1), "stopped_by": result.stopped_by,
            "time_limit_s": time_limit, "resumed_from_step": result.resumed_from_step,
            "graphs_per_s": steps_now * args.batch_size / max(result.train_seconds, 1e-9),
            "median_window_graphs_per_s": median_graphs_per_s(result.out / "log.jsonl"),
            "final_losses": result.final_losses, "descriptor_columns": descriptor_columns,
        },
        "seconds": {
            "featurize": featurized_at - started, "targets": targets_at - featurized_at,
            "train": trained_at - targets_at, "train_loop": result.train_seconds,
        },
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "files": [*files_written, f"{NAME}.json", f"{NAME}.md"],
    }
    finished = time.perf_counter()
    report["seconds"].update({"export": finished - trained_at, "total": finished - started})
    write_results(NAME, report, markdown(report), out)
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs") / NAME, help="where the encoder, log and report go")
    parser.add_argument("--work", type=Path, default=None,
                        help="featurized corpus, targets and the run's checkpoint (default: <out>.work)")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(), help="holds zinc/moses_*.csv.gz")
    parser.add_argument("--corpus", type=lambda t: [Path(v) for v in t.split(",") if v], default=None,
                        metavar="FILE[,FILE]", help="SMILES files instead of the three ZINC files")
    parser.add_argument("--max-molecules", type=int, default=None, help="only the first N molecules (a small check)")
    parser.add_argument("--budget", type=float, default=510.0, help="seconds for the whole script, from its start")
    parser.add_argument("--reserve", type=float, default=20.0, help="seconds of the budget kept for writing")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="featurizing and target processes")
    parser.add_argument("--loader-workers", type=int, default=max(0, min(12, (os.cpu_count() or 1) - 2)),
                        help="data-loader processes while training")
    parser.add_argument("--device", default=None, help="cuda, cpu... (default: cuda when present)")
    parser.add_argument("--descriptors", default="rdkit2d_fast", help="descriptor targets (rdkit2d_fast or rdkit2d)")
    parser.add_argument("--fingerprint", default="morgan_bits:1024", help="fingerprint targets")
    parser.add_argument("--num-layers", type=int, default=5)
    parser.add_argument("--hidden-dim", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=100, help="at most this many passes (the budget ends it first)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", default=None,
                        help="start from this encoder (a shipped name such as descfp-zinc-full, or a directory): "
                             "another stage of the same targets, e.g. more passes for the shipped GPU encoder")
    parser.add_argument("--checkpoint-every-steps", type=int, default=2000)
    parser.add_argument("--log-every-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --work (another budget)")
    args = parser.parse_args(argv)
    if args.work is None:
        args.work = args.out.with_name(args.out.name + ".work")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with input_errors_exit():
        run(args, argv)


if __name__ == "__main__":
    main()
