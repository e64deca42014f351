"""Peak memory of featurizing and pretraining on the whole ZINC corpus (about 2M molecules).

The three MOSES/ZINC files of the data directory are joined into one SMILES table of 1.94M rows,
which goes through ``molft featurize`` (``--workers``) and then ``molft.pretrain`` for a few
steps, once on a 250k-molecule prefix and once on the whole corpus, so that what grows with the
corpus shows. Each stage runs in its own Python process, which reports its own peak resident set
(``ru_maxrss``) and that of its largest child (a featurizing worker); nothing else shares those
numbers. Pretraining holds the compact graph arrays of the whole corpus in memory (about 400 bytes
per molecule) and builds batches from them on the fly.

    python -m benchmarks.pretrain_memory --steps 20 --threads 1

Writes benchmarks/results/pretrain_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.harness import command_line, hardware, hardware_text, write_results
from molft.runtime import default_data_dir, run_metadata

ZINC_FILES = ("zinc/moses_train.csv.gz", "zinc/moses_test.csv.gz", "zinc/moses_test_scaffolds.csv.gz")
GIB = 2**20  # ru_maxrss is in KiB on Linux


def _peaks() -> dict[str, float]:
    return {
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / GIB,
        "peak_rss_largest_child_gib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / GIB,
    }


def stage_featurize(table: Path, out: Path, workers: int) -> dict[str, Any]:
    """``molft featurize`` of the whole table; time, counts and peaks of this process."""
    from molft.data.featurized import featurize_file

    start = time.perf_counter()
    report = featurize_file(table, out, workers=workers, progress=False)
    return {
        "stage": "featurize",
        "workers": workers,
        "seconds": time.perf_counter() - start,
        "read": report.read,
        "featurized": report.featurized,
        "bytes_on_disk": sum(p.stat().st_size for p in out.iterdir()),
        **_peaks(),
    }


def stage_pretrain(corpus: Path, out: Path, steps: int, molecules: int | None, objective: str) -> dict[str, Any]:
    """A few pretraining steps on ``corpus`` (its first ``molecules``); time and peaks."""
    import torch

    from molft.pretraining.loop import pretrain

    start = time.perf_counter()
    result = pretrain(
        corpus, out, objectives=objective, epochs=1, max_molecules=molecules, stop_after_steps=steps,
        checkpoint_every_steps=10**9, progress=False, device="cpu",
    )
    return {
        "stage": "pretrain",
        "objective": objective,
        "molecules": result.molecules,
        "steps": steps,
        "seconds": time.perf_counter() - start,
        "torch_threads": torch.get_num_threads(),
        **_peaks(),
    }


def _run_stage(arguments: list[str], threads: int) -> dict[str, Any]:
    """Run one stage in a fresh Python process and read back its JSON report."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.pretrain_memory", "--stage", *arguments],
        env=env, check=True, capture_output=True, text=True,
    )
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    print(report, flush=True)
    return report


def join_corpus(data_dir: Path, table: Path) -> int:
    """Write the SMILES of the three ZINC files into one table; its row count."""
    frames = [pd.read_csv(data_dir / relative, usecols=["SMILES"]) for relative in ZINC_FILES]
    joined = pd.concat(frames, ignore_index=True)
    joined.to_csv(table, index=False)
    return len(joined)


def markdown(result: dict[str, Any]) -> str:
    featurize = result["featurize"]
    lines = [
        "# Peak memory: featurizing and pretraining on the whole ZINC corpus",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Corpus: {', '.join(ZINC_FILES)} joined, {result['molecules']:,} SMILES; {hardware_text(result['hardware'])}, "
        "CPU only.",
        "Each stage is its own process; *peak RSS* is its `ru_maxrss`, *largest child* that of its biggest",
        "worker process.",
        "",
        "| stage | molecules | time | peak RSS | largest child |",
        "|---|---:|---:|---:|---:|",
        f"| featurize ({featurize['workers']} workers) | {featurize['read']:,} | {featurize['seconds']:.0f} s"
        f" | {featurize['peak_rss_gib']:.2f} GiB | {featurize['peak_rss_largest_child_gib']:.2f} GiB |",
    ]
    for run in result["pretrain"]:
        lines.append(
            f"| pretrain {run['objective']}, {run['steps']} steps of 256 | {run['molecules']:,}"
            f" | {run['seconds']:.0f} s | {run['peak_rss_gib']:.2f} GiB | - |"
        )
    lines += [
        "",
        f"On disk: {featurize['bytes_on_disk'] / 2**20:,.0f} MiB for {featurize['featurized']:,} graphs"
        f" ({featurize['bytes_on_disk'] / featurize['featurized']:.0f} bytes per molecule, graphs + row numbers +"
        " SMILES text).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="pretraining steps per measured run")
    parser.add_argument("--prefix", type=int, default=250_000, help="molecules of the smaller pretraining run")
    parser.add_argument("--objective", default="attr_masking")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="featurizing processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads when pretraining")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--stage", nargs="+", help=argparse.SUPPRESS)  # internal: run one stage, print JSON
    args = parser.parse_args(argv)
    if args.stage:
        kind, *rest = args.stage
        if kind == "featurize":
            report = stage_featurize(Path(rest[0]), Path(rest[1]), int(rest[2]))
        else:
            molecules = int(rest[3]) if rest[3] != "all" else None
            report = stage_pretrain(Path(rest[0]), Path(rest[1]), int(rest[2]), molecules, rest[4])
        print(json.dumps(report))
        return
    if args.data_dir is None:
        sys.exit("no data directory: pass --data-dir or set MOLFT_DATA_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        table, graphs = Path(tmp) / "zinc_all.csv", Path(tmp) / "zinc_all.graphs"
        molecules = join_corpus(args.data_dir, table)
        featurize = _run_stage(["featurize", str(table), str(graphs), str(args.workers)], args.threads)
        pretrain_runs = [
            _run_stage(
                ["pretrain", str(graphs), str(Path(tmp) / f"run-{size}"), str(args.steps), size, args.objective],
                args.threads,
            )
            for size in (str(args.prefix), "all")
        ]
    result = {
        **run_metadata(),
        "command": command_line("pretrain_memory", argv),
        "hardware": {**hardware(), "torch_threads": args.threads},  # the stages' threads (OMP_NUM_THREADS)
        "molecules": molecules,
        "featurize": featurize,
        "pretrain": pretrain_runs,
    }
    write_results("pretrain_memory", result, markdown(result))


if __name__ == "__main__":
    main()
