"""The training loops against an earlier commit: same results, no slower.

Runs the real :func:`molft.pretraining.loop.pretrain` (attribute masking on the first ZINC
molecules, featurized once beforehand so both sides read the same graphs) and
:func:`molft.finetuning.train.finetune` (the built-in assay, the shipped encoder, a few epochs)
in fresh processes from two checkouts: the working tree and ``--base`` (a temporary ``git
worktree``), alternating base / current in every round so that load on a shared machine hits
both alike. Each process times the call alone (imports and featurizing excluded) and prints its
result: the pretraining run's final losses and the fine-tuned model's test metrics, which must be
equal on both sides (the loops do the same arithmetic in the same order).

    python -m benchmarks.loop_speed --base 7250fd9 --rounds 3 --molecules 4000 --finetune-epochs 3

Writes ``benchmarks/results/loop_speed.{json,md}``: per round the seconds of each side, the
median ratio current / base (below 1: faster now), and whether results matched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.harness import command_line, write_results
from molft.runtime import PROJECT_ROOT, default_data_dir, git_sha, run_metadata

NAME = "loop_speed"
ZINC = "zinc/moses_test.csv.gz"

PRETRAIN = """
import json, sys, time, torch
torch.set_num_threads(1)
from molft.pretraining.loop import pretrain
start = time.perf_counter()
result = pretrain({corpus!r}, {out!r}, epochs=1, batch_size=256, progress=False, log_every_steps=10**6,
                  checkpoint_every_steps=10**6)
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "steps": result.steps, "result": result.final_losses}}))
"""

FINETUNE = """
import json, sys, time, torch
torch.set_num_threads(1)
from molft.finetuning.train import finetune
start = time.perf_counter()
result = finetune({table!r}, ["pIC50"], {out!r}, max_epochs={epochs}, compare_rf=False, progress=False)
seconds = time.perf_counter() - start
test = {{k: v for k, v in result.metrics["test_mean"].items()}}
print(json.dumps({{"seconds": seconds, "result": test}}))
"""


def _run(checkout: Path, code: str) -> dict[str, Any]:
    """Run ``code`` with ``checkout``'s molft first on the path; its last output line is JSON."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: failed\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(work: Path, molecules: int) -> tuple[Path, Path]:
    """The featurized pretraining corpus (the first ``molecules`` ZINC molecules) and the assay CSV."""
    from molft.data.builtin import write_builtin_assay
    from molft.data.featurized import featurize_file

    import pandas as pd

    data_dir = default_data_dir()
    if data_dir is None or not (data_dir / ZINC).is_file():
        raise SystemExit(f"needs {ZINC} in the data directory (--data-dir or $MOLFT_DATA_DIR)")
    table = work / "zinc.csv"
    pd.read_csv(data_dir / ZINC, nrows=molecules).to_csv(table, index=False)
    corpus = work / "zinc.graphs"
    featurize_file(table, corpus, progress=False)
    return corpus, write_builtin_assay(work / "assay.csv")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare against (e.g. the previous one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--molecules", type=int, default=4000, help="pretraining corpus size (one epoch)")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="molft-loop-speed-") as tmp:
        work = Path(tmp)
        base = work / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.base], cwd=PROJECT_ROOT, check=True,
                       capture_output=True)
        try:
            corpus, table = prepare(work, args.molecules)
            rounds: list[dict[str, Any]] = []
            for index in range(args.rounds):
                row: dict[str, Any] = {"round": index}
                for side, checkout in (("base", base), ("current", PROJECT_ROOT)):
                    out = work / f"{side}-{index}"
                    row[f"pretrain_{side}"] = _run(checkout, PRETRAIN.format(corpus=str(corpus), out=str(out / "pt")))
                    row[f"finetune_{side}"] = _run(checkout, FINETUNE.format(table=str(table), out=str(out / "ft"),
                                                                           epochs=args.finetune_epochs))
                rounds.append(row)
                print(f"round {index}: pretrain {row['pretrain_base']['seconds']:.1f} s -> "
                      f"{row['pretrain_current']['seconds']:.1f} s; finetune {row['finetune_base']['seconds']:.1f} s "
                      f"-> {row['finetune_current']['seconds']:.1f} s", file=sys.stderr)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=PROJECT_ROOT, capture_output=True)
    summary = {}
    for job in ("pretrain", "finetune"):
        ratios = [r[f"{job}_current"]["seconds"] / r[f"{job}_base"]["seconds"] for r in rounds]
        summary[job] = {
            "base_s_median": statistics.median(r[f"{job}_base"]["seconds"] for r in rounds),
            "current_s_median": statistics.median(r[f"{job}_current"]["seconds"] for r in rounds),
            "ratio_median": statistics.median(ratios), "ratios": ratios,
            "same_result": all(r[f"{job}_base"]["result"] == r[f"{job}_current"]["result"] for r in rounds),
            "result_current": rounds[0][f"{job}_current"]["result"],
        }
    command = command_line(NAME, argv)
    result = {"benchmark": NAME, "command": command, "base": args.base, "current": git_sha(),
              "settings": vars(args), "rounds": rounds, "summary": summary, "run": run_metadata()}
    run = result["run"]
    lines = [
        "# Training loops: current tree vs an earlier commit", "", f"Command: `{command}`", "",
        f"- Base {args.base} vs current {result['current'] or 'working tree'} (uncommitted changes included); "
        f"{args.rounds} rounds, alternating base / current, each job a fresh process with one torch thread; "
        "seconds of the `pretrain` / `finetune` call alone.",
        f"- Pretraining: attribute masking, one epoch over the first {args.molecules:,} ZINC molecules (MOSES test "
        f"set), batch 256. Fine-tuning: built-in assay (pIC50), shipped encoder, {args.finetune_epochs} epochs, 1 seed.",
        f"- Hardware: {run['platform']}, {os.cpu_count()} cores; torch {run['torch']}, PyG {run['torch_geometric']}.",
        "", "| job | base s (median) | current s (median) | current / base (median of rounds) | same result |",
        "|---|---:|---:|---:|---|",
    ]
    for job, row in summary.items():
        lines.append(f"| {job} | {row['base_s_median']:.2f} | {row['current_s_median']:.2f} | "
                     f"{row['ratio_median']:.3f} | {'yes' if row['same_result'] else 'NO'} |")
    lines += ["", "Results compared: the pretraining run's final epoch losses and accuracies, the fine-tuned model's "
              "test metrics (exact equality of the printed floats)."]
    write_results(NAME, result, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
