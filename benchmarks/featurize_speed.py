"""Featurization speed: molft vs ogb.utils.smiles2graph vs torch_geometric.utils.from_smiles.

Same real ZINC molecules (MOSES test set) for every method, one core; molft also with all cores,
and optionally (``--full``) the whole ZINC corpus through ``molft featurize``'s file path, with peak
memory and on-disk bytes per molecule. Methods run interleaved over several rounds and the best
round counts, because other work on a shared machine only ever slows a round down; the speed-up
over OGB is also given as the median of per-round ratios.

    python -m benchmarks.featurize_speed --molecules 50000 --rounds 3 [--full]

Writes benchmarks/results/featurize_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from rdkit import Chem, rdBase

from molft.data.featurized import featurize_file
from molft.featurize import featurize_many
from benchmarks.report import command_line, write_results
from molft.runtime import default_data_dir, run_metadata

ZINC_FILES = ("zinc/moses_train.csv.gz", "zinc/moses_test.csv.gz", "zinc/moses_test_scaffolds.csv.gz")


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
    if args.full:
        result["full_corpus"] = full_corpus(args.data_dir, args.workers)
    write_results("featurize_speed", result, markdown(result))


if __name__ == "__main__":
    main()
