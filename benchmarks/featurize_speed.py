"""Featurization speed: molft vs ogb.utils.smiles2graph vs torch_geometric.utils.from_smiles.

Same real ZINC molecules (MOSES test set) for every method, one core; molft also with all cores,
and optionally (``--full``) the whole ZINC corpus through ``molft featurize``'s file path, with peak
memory and on-disk bytes per molecule. Methods run interleaved over several rounds and the best
round counts, because other work on a shared machine only ever slows a round down; the speed-up
over OGB is also given as the median of per-round ratios.

The whole ``molft featurize`` command is also timed as a process (start-up, reading the CSV,
writing the featurized directory: what a user waits for) against a whole process that loops
``ogb.utils.smiles2graph`` over the same CSV: the first ``--command-molecules`` rows of the ZINC
corpus, one worker each, interleaved rounds, median of the per-round ratios.

    python -m benchmarks.featurize_speed --molecules 50000 --rounds 3 [--command-rounds 5] [--full]

Writes benchmarks/results/featurize_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from rdkit import Chem, rdBase

from molft.data.featurized import featurize_file
from molft.featurize import featurize_many
from benchmarks.harness import command_line, write_results
from molft.runtime import default_data_dir, run_metadata

ZINC_FILES = ("zinc/moses_train.csv.gz", "zinc/moses_test.csv.gz", "zinc/moses_test_scaffolds.csv.gz")
CORPUS = ZINC_FILES[0]
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The plain OGB loop a user would write, as a whole process: read the CSV, featurize every SMILES.
OGB_LOOP = """
import csv, sys
from ogb.utils import smiles2graph
from rdkit import rdBase
with open(sys.argv[1], newline="") as handle, rdBase.BlockLogs():
    for row in csv.DictReader(handle):
        smiles2graph(row[sys.argv[2]])
"""


def _rdkit_parse(smiles: list[str]) -> None:
    with rdBase.BlockLogs():
        for s in smiles:
            Chem.MolFromSmiles(s)


def _ogb(smiles: list[str]) -> None:
    from ogb.utils import smiles2graph

    with rdBase.BlockLogs():
        for s in smiles:
            smiles2graph(s)


def _pyg(smiles: list[str]) -> None:
    from torch_geometric.utils import from_smiles

    with rdBase.BlockLogs():
        for s in smiles:
            from_smiles(s)


def _molft(workers: int):
    def run(smiles: list[str]) -> None:
        featurize_many(smiles, workers=workers)

    return run


def time_methods(smiles: list[str], rounds: int, workers: int) -> dict[str, dict[str, float]]:
    """Best-of-``rounds`` throughput per method, methods interleaved within each round."""
    methods = {
        "rdkit MolFromSmiles only": _rdkit_parse,
        "ogb smiles2graph": _ogb,
        "pyg from_smiles": _pyg,
        "molft (1 core)": _molft(1),
        f"molft ({workers} workers)": _molft(workers),
    }
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    for round_ in range(rounds):
        for name, method in methods.items():
            start = time.perf_counter()
            method(smiles)
            seconds[name].append(time.perf_counter() - start)
            print(f"round {round_ + 1}: {name:28s} {len(smiles) / seconds[name][-1]:9,.0f} mol/s", flush=True)
    ogb = seconds["ogb smiles2graph"]
    return {
        name: {
            "best_seconds": min(times),
            "mol_per_s": len(smiles) / min(times),
            "all_seconds": times,
            # paired within each round, so a slow spell of the shared machine hits both sides
            "median_round_speedup_vs_ogb": statistics.median(o / t for o, t in zip(ogb, times)),
        }
        for name, times in seconds.items()
    }


def _process_seconds(argv: list[str]) -> float:
    """Wall time of one whole process, from start to exit; it must succeed."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def whole_command(data_dir: Path, molecules: int, rounds: int) -> dict:
    """``molft featurize FILE`` vs a plain ``smiles2graph`` loop over FILE, both as whole processes.

    FILE is a temporary CSV of the corpus's first ``molecules`` rows. Both run on one core, in
    alternating order within each round; start-up alone (``import molft.data.featurized`` and
    ``from ogb.utils import smiles2graph`` in a fresh interpreter) is timed in the same rounds.
    """
    column = "SMILES"
    python = sys.executable
    seconds: dict[str, list[float]] = {"molft featurize": [], "ogb loop": [], "molft import": [], "ogb import": []}
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / f"zinc_first_{molecules}.csv"
        pd.read_csv(data_dir / CORPUS, nrows=molecules, usecols=[column]).to_csv(table, index=False)
        runs = {
            "molft featurize": [python, "-m", "molft", "featurize", str(table), "--out", str(Path(tmp) / "out.graphs"),
                                "--overwrite", "--workers", "1"],
            "ogb loop": [python, "-c", OGB_LOOP, str(table), column],
            "molft import": [python, "-c", "import molft.data.featurized"],
            "ogb import": [python, "-c", "from ogb.utils import smiles2graph"],
        }
        for round_ in range(rounds):
            order = list(runs) if round_ % 2 == 0 else ["ogb loop", "molft featurize", "ogb import", "molft import"]
            for name in order:
                seconds[name].append(_process_seconds(runs[name]))
                print(f"round {round_ + 1}: {name:16s} {seconds[name][-1]:6.2f} s", flush=True)
    ratios = [o / m for o, m in zip(seconds["ogb loop"], seconds["molft featurize"])]
    return {
        "source": CORPUS,
        "molecules": molecules,
        "rounds": rounds,
        "workers": 1,
        "seconds": seconds,
        "median_seconds": {name: statistics.median(times) for name, times in seconds.items()},
        "median_mol_per_s": {
            name: molecules / statistics.median(seconds[name]) for name in ("molft featurize", "ogb loop")
        },
        "ratio_per_round": ratios,
        "median_speedup_vs_ogb": statistics.median(ratios),
    }


def full_corpus(data_dir: Path, workers: int) -> dict:
    """Featurize the whole ZINC corpus through the file path; time, peak memory, bytes on disk."""
    out: dict = {"files": [], "workers": workers}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for relative in ZINC_FILES:
            target = Path(tmp) / Path(relative).name.replace(".csv.gz", ".graphs")
            t0 = time.perf_counter()
            report = featurize_file(data_dir / relative, target, workers=workers, progress=False)
            size = sum(p.stat().st_size for p in target.iterdir())
            out["files"].append(
                {
                    "file": relative,
                    "read": report.read,
                    "featurized": report.featurized,
                    "rejected": report.rejected,
                    "seconds": time.perf_counter() - t0,
                    "bytes_on_disk": size,
                }
            )
            print(out["files"][-1], flush=True)
        out["seconds"] = time.perf_counter() - start
    out["molecules"] = sum(f["read"] for f in out["files"])
    out["mol_per_s"] = out["molecules"] / out["seconds"]
    out["bytes_per_molecule"] = sum(f["bytes_on_disk"] for f in out["files"]) / sum(f["featurized"] for f in out["files"])
    # ru_maxrss is in KiB on Linux: the main process, and the largest single worker.
    out["peak_rss_main_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out["peak_rss_largest_worker_gib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return out


def markdown(result: dict) -> str:
    timing = result["timing"]
    ogb = timing["ogb smiles2graph"]["mol_per_s"]
    lines = [
        "# Featurization speed",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{result['molecules']:,} ZINC molecules (`{result['source']}`), best of {result['rounds']} interleaved rounds,"
        f" on {result['machine']}.",
        "",
        "| method | mol/s (best round) | vs ogb, best rounds | vs ogb, median of paired rounds |",
        "|---|---:|---:|---:|",
    ]
    for name, row in timing.items():
        paired = row.get("median_round_speedup_vs_ogb")
        lines.append(
            f"| {name} | {row['mol_per_s']:,.0f} | {row['mol_per_s'] / ogb:.2f}x |"
            + (f" {paired:.2f}x |" if paired is not None else " |")
        )
    if "whole_command" in result:
        whole = result["whole_command"]
        median = whole["median_seconds"]
        lines += [
            "",
            "## The whole `molft featurize` command vs a plain OGB loop, as processes",
            "",
            f"The first {whole['molecules']:,} rows of `{whole['source']}` as a CSV; `molft featurize FILE --workers 1`"
            " against a Python process that reads the CSV and calls `ogb.utils.smiles2graph` on each SMILES;"
            f" each timed from process start to exit, {whole['rounds']} interleaved rounds, medians.",
            "",
            "| process | seconds (median) | mol/s | vs ogb loop, median of paired rounds |",
            "|---|---:|---:|---:|",
            f"| ogb loop | {median['ogb loop']:.2f} | {whole['median_mol_per_s']['ogb loop']:,.0f} | 1.00x |",
            f"| molft featurize | {median['molft featurize']:.2f} | {whole['median_mol_per_s']['molft featurize']:,.0f} |"
            f" {whole['median_speedup_vs_ogb']:.2f}x |",
            "",
            f"Start-up alone (a fresh interpreter, median): `import molft.data.featurized` {median['molft import']:.2f} s,"
            f" `from ogb.utils import smiles2graph` {median['ogb import']:.2f} s.",
        ]
    if "full_corpus" in result:
        full = result["full_corpus"]
        lines += [
            "",
            "## Whole ZINC corpus through `molft featurize`",
            "",
            f"{full['molecules']:,} molecules, {full['workers']} workers: {full['seconds']:.0f} s"
            f" ({full['mol_per_s']:,.0f} mol/s); peak RSS main process {full['peak_rss_main_gib']:.2f} GiB,"
            f" largest worker {full['peak_rss_largest_worker_gib']:.2f} GiB;"
            f" {full['bytes_per_molecule']:.0f} bytes per molecule on disk (graphs + row numbers + SMILES text).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--full", action="store_true", help="also featurize the whole ZINC corpus")
    parser.add_argument(
        "--command-molecules", type=int, default=40_000,
        help="rows of the ZINC corpus for the whole-command comparison (0: skip it)",
    )
    parser.add_argument("--command-rounds", type=int, default=None, help="rounds of it (default: --rounds)")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        sys.exit("no data directory: pass --data-dir or set MOLFT_DATA_DIR")
    source = "zinc/moses_test.csv.gz"
    smiles = pd.read_csv(args.data_dir / source, nrows=args.molecules)["SMILES"].tolist()
    result = {
        **run_metadata(),
        "command": command_line("featurize_speed", argv),
        "source": source,
        "molecules": len(smiles),
        "rounds": args.rounds,
        "machine": f"{os.cpu_count()} CPU cores",
        "timing": time_methods(smiles, args.rounds, args.workers),
    }
    if args.command_molecules > 0:
        rounds = args.command_rounds if args.command_rounds is not None else args.rounds
        result["whole_command"] = whole_command(args.data_dir, args.command_molecules, rounds)
    if args.full:
        result["full_corpus"] = full_corpus(args.data_dir, args.workers)
    write_results("featurize_speed", result, markdown(result))


if __name__ == "__main__":
    main()
