"""The benchmark harness: a runs file, a resumable loop over cells, and the report's plumbing.

A benchmark is a list of *cells* (one run each: a dataset, a method, a label count, a seed...).
Each finished run is appended at once, as one JSON line, to the benchmark's runs file
(``<results>/<name>_runs.jsonl``, :func:`append_run`); :func:`run_cells` skips every cell whose
:func:`run_key` (dataset, split, data file hash, method, settings, label count, seed) is already
there, so an interrupted benchmark resumes where it stopped, and a line torn by a crash is
ignored (:func:`read_runs`). ``--stop-after MINUTES`` starts no new run after that long (the run in
flight finishes; for a machine lent for a fixed time); ``--report-only`` runs nothing and reports
the runs already recorded, counting the missing ones. Processes run side by side each write
their own ``--results-dir``, and ``--add-runs`` gathers their runs files into one (each run once,
:func:`add_runs`) before the report. SIGTERM ends a benchmark as ``SystemExit(143)``, so child
processes (chemprop) and temporary folders are cleaned up (:func:`start`).

Reports: :func:`clean` (NaN -> null) before JSON, :func:`hardware` facts, :func:`markdown_table`
and :func:`text_table`, :func:`mean_std_text` for a mean ± sample std (from
:func:`molft.evaluate.mean_std`, ddof 1), :func:`command_footer` for plots, and
:func:`write_results` for the benchmarks that write one JSON and one Markdown file.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import platform
import shlex
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from molft.errors import InputError
from molft.io import append_jsonl, read_jsonl, write_json_atomic, write_text_atomic
from molft.runtime import exit_on_terminate

RESULTS = Path(__file__).parent / "results"


# --------------------------------------------------------------------------------------------
# the runs file


def run_key(record: dict[str, Any]) -> tuple:
    """What identifies a run: a rerun with an equal key is skipped.

    Example:
        >>> run_key({"dataset": "BBBP", "split": "scaffold", "data_sha256": "ab12", "method": "rf",
        ...          "settings": "rf=500trees", "n_labels": 100, "seed": 0})
        ('BBBP', 'scaffold', 'ab12', 'rf', 'rf=500trees', 100, 0)
    """
    return (record["dataset"], record["split"], record["data_sha256"], record["method"], record["settings"],
            int(record["n_labels"]), int(record["seed"]))


def read_runs(path: str | Path) -> list[dict[str, Any]]:
    """Every complete JSON line of the runs file ([] when absent; a line torn by a crash is skipped
    with a warning)."""
    return read_jsonl(path)


def append_run(path: str | Path, record: dict[str, Any]) -> None:
    """Append one run to the runs file (one ``O_APPEND`` write, then fsync; after a torn line, on a
    fresh line)."""
    append_jsonl(path, record)


def add_runs(sources: Sequence[str | Path], path: str | Path) -> int:
    """Append to the runs file ``path`` the runs of other runs files (e.g. from processes run side by
    side, or from a GPU machine) that it does not hold yet; returns how many were added.

    Raises:
        InputError: a source that is not a file.
    """
    known = {run_key(r) for r in read_runs(path)}
    added = 0
    for source in sources:
        if not Path(source).is_file():
            raise InputError(f"{source}: no such runs file")
        for record in read_runs(source):
            if run_key(record) not in known:
                append_run(path, record)
                known.add(run_key(record))
                added += 1
    return added


# --------------------------------------------------------------------------------------------
# the cell loop


@dataclass
class Cell:
    """One run a benchmark asks for.

    Attributes:
        fields: the fields of its :func:`run_key`; the run function's record holds them.
        label: shown beside the progress bar, e.g. ``BBBP rf n=100 seed=0``.
        task: whatever the run function needs (the benchmark's own objects).
    """

    fields: dict[str, Any]
    label: str = ""
    task: Any = None


@dataclass
class CellsDone:
    """What :func:`run_cells` found and did.

    Attributes:
        records: the run of every cell that has one, in cell order (recorded before or run now).
        executed: runs made by this call.
        missing: cells left without a run (``report_only`` or ``stop_after_s``).
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    executed: int = 0
    missing: int = 0

    @property
    def reused(self) -> int:
        """Runs taken from the runs file."""
        return len(self.records) - self.executed


def run_cells(
    cells: Sequence[Cell],
    run: Callable[[Cell], dict[str, Any]],
    *,
    runs_file: str | Path,
    report_only: bool = False,
    stop_after_s: float | None = None,
    started: float | None = None,
    announce: Callable[[dict[str, Any]], str] | None = None,
    desc: str = "runs",
    progress: bool = True,
    clock: Callable[[], float] = time.perf_counter,
) -> CellsDone:
    """Walk ``cells``: reuse the recorded runs, call ``run`` for the rest, append each at once.

    Args:
        cells: the runs asked for, in the order they should run.
        run: makes one cell's record (its ``fields`` and results); it is cleaned (:func:`clean`)
            and appended to ``runs_file`` before the next cell starts.
        runs_file: the benchmark's runs file.
        report_only: run nothing; count the cells without a run as missing.
        stop_after_s: start no new run once ``clock() - started`` exceeds this (the run in flight
            finishes); the cells left count as missing.
        started: the ``clock()`` value ``stop_after_s`` counts from (default: now).
        announce: a line to print (above the progress bar) for each record run now.
        desc: the progress bar's name.
        progress: show the progress bar.
        clock: seconds, monotonic (a fake one in tests).

    Returns:
        the records, and how many runs were made now and how many are missing.
    """
    from tqdm.auto import tqdm

    started = clock() if started is None else started
    done = {run_key(r): r for r in read_runs(runs_file)}
    outcome = CellsDone()
    bar = tqdm(total=len(cells), desc=desc, disable=None if progress else True)
    for cell in cells:
        key = run_key(cell.fields)
        bar.set_postfix_str(cell.label, refresh=False)
        if key in done:
            outcome.records.append(done[key])
        elif report_only or (stop_after_s is not None and clock() - started > stop_after_s):
            outcome.missing += 1
        else:
            record = clean(run(cell))
            append_run(runs_file, record)
            done[key] = record
            outcome.records.append(record)
            outcome.executed += 1
            if announce is not None:
                tqdm.write(announce(record), file=sys.stderr)
        bar.update()
    bar.close()
    return outcome


def utc_now() -> str:
    """The time now in UTC, to the second, as the runs and reports record it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# the command line


def comma_list(text: str) -> list[str]:
    """``"bbbp, hiv,"`` -> ``["bbbp", "hiv"]`` (an argparse type)."""
    return [v.strip() for v in text.split(",") if v.strip()]


def comma_ints(text: str) -> list[int]:
    """``"100,1000"`` -> ``[100, 1000]`` (an argparse type)."""
    try:
        return [int(v) for v in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _minutes(text: str) -> float:
    return float(text) * 60


def add_harness_arguments(parser: argparse.ArgumentParser, *, results_dir: Path = RESULTS) -> None:
    """The options every resumable benchmark takes: where, on what, and how much to run.

    ``--stop-after`` is read in minutes and stored in seconds as ``stop_after_s``.
    """
    parser.add_argument("--device", default=None, help="cpu, cuda... (default: cuda when present)")
    parser.add_argument("--data-dir", default=None, help="data directory (default: $MOLFT_DATA_DIR or ../shared/data)")
    parser.add_argument("--results-dir", type=Path, default=results_dir)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild the report from the runs already recorded")
    parser.add_argument("--add-runs", type=lambda t: [Path(v) for v in comma_list(t)], default=[], metavar="FILE[,FILE]",
                        help="first add the runs of these runs files that the results' runs file lacks "
                             "(runs made side by side or elsewhere)")
    parser.add_argument("--stop-after", type=_minutes, default=None, metavar="MINUTES", dest="stop_after_s",
                        help="start no new run after this many minutes, then report (rerun to continue)")


def start(args: argparse.Namespace, *, runs_file: Path) -> None:
    """What a benchmark does before its first run: SIGTERM -> ``SystemExit(143)``, warnings shown,
    ``--threads``, then ``--add-runs`` into ``runs_file``."""
    exit_on_terminate()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.add_runs:
        added = add_runs(args.add_runs, runs_file)
        print(f"added {added} run(s) from {', '.join(map(str, args.add_runs))}", file=sys.stderr)


@contextlib.contextmanager
def input_errors_exit() -> Iterator[None]:
    """An :class:`~molft.errors.InputError` inside becomes ``error: ...`` on stderr and exit status 2."""
    try:
        yield
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that reproduces this run, e.g. ``python -m benchmarks.featurize_speed --rounds 5``
    (arguments quoted for the shell where they need it)."""
    return " ".join([f"python -m benchmarks.{module}", shlex.join(sys.argv[1:] if argv is None else argv)]).rstrip()


# --------------------------------------------------------------------------------------------
# reports


def clean(value: Any) -> Any:
    """JSON without NaN: NaN and infinities become null (tuples become lists, as in JSON).

    Example:
        >>> clean({"test": float("nan"), "seeds": (0, 1)})
        {'test': None, 'seeds': [0, 1]}
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def pooling_suffix(pooling: str) -> str:
    """A method name's ending for a GNN head that pools the atoms ``pooling`` (validated):
    ``"+pool-mean+max"``, or ``""`` for molft's mean, so every report names such runs alike.

    Raises:
        InputError: an unknown pooling.
    """
    from molft.models.heads import pooling_parts

    pooling_parts(pooling)
    return "" if pooling == "mean" else f"+pool-{pooling}"


def hardware() -> dict[str, Any]:
    """The machine: CPU model, cores, torch threads and GPU (None when there is none)."""
    import torch

    cpu = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def hardware_text(facts: dict[str, Any]) -> str:
    """:func:`hardware` in a line, e.g. ``AMD EPYC, 2 cores, torch threads 1, GPU none``."""
    return (f"{facts['cpu'] or 'unknown CPU'}, {facts['cpu_count']} cores, torch threads {facts['torch_threads']}, "
            f"GPU {facts['gpu'] or 'none'}")


def mean_std_text(mean: float | None, std: float | None, *, digits: int = 3) -> str:
    """A table cell: ``mean ± std``, the mean alone when there is no std (one seed), ``—`` for none.

    Example:
        >>> mean_std_text(0.7123, 0.0284), mean_std_text(0.7123, None), mean_std_text(None, None)
        ('0.712 ± 0.028', '0.712', '—')
    """
    if mean is None:
        return "—"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def group_runs(records: Sequence[dict[str, Any]], fields: Sequence[str]) -> list[tuple[tuple, list[dict[str, Any]]]]:
    """The records grouped by their values of ``fields``: groups sorted, runs in their order.

    Example:
        >>> group_runs([{"m": "rf", "seed": 1}, {"m": "gin", "seed": 0}, {"m": "rf", "seed": 0}], ["m"])
        [(('gin',), [{'m': 'gin', 'seed': 0}]), (('rf',), [{'m': 'rf', 'seed': 1}, {'m': 'rf', 'seed': 0}])]
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(tuple(record[f] for f in fields), []).append(record)
    return sorted(groups.items())


def markdown_table(header: Sequence[str], table: Sequence[Sequence[str]], *, right_from: int = 1) -> list[str]:
    """Markdown table lines; columns from ``right_from`` on are right-aligned.

    Example:
        >>> markdown_table(["method", "100"], [["rf", "0.700"]])
        ['| method | 100 |', '|---|---:|', '| rf | 0.700 |']
    """
    align = "|" + "|".join("---" if i < right_from else "---:" for i in range(len(header))) + "|"
    return ["| " + " | ".join(header) + " |", align, *("| " + " | ".join(row) + " |" for row in table)]


def text_table(header: Sequence[str], table: Sequence[Sequence[str]]) -> str:
    """A plain-text table for the terminal: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [header, *table]]
    return "\n".join(lines)


def command_footer(figure: Any, command: str) -> float:
    """Write the command, wrapped to the figure's width, along its bottom; returns the height it takes
    (a fraction of the figure's), for ``figure.tight_layout(rect=(0, height, 1, 1))``."""
    lines = textwrap.wrap(command, width=int(figure.get_figwidth() * 72 / 3.7), break_on_hyphens=False)
    figure.text(0.01, 0.005, "\n".join(lines), fontsize=6, family="monospace", va="bottom")
    return (len(lines) * 7.5 + 4) / (figure.get_figheight() * 72)


def write_json(path: str | Path, result: dict[str, Any]) -> None:
    """Write ``result`` as indented JSON (NaN as null) through a temporary name and a rename."""
    write_json_atomic(path, clean(result))


def write_results(name: str, result: dict[str, Any], markdown: str, results_dir: Path = RESULTS) -> None:
    """Write ``<name>.json`` and ``<name>.md`` under ``results_dir`` and print the Markdown."""
    results_dir = Path(results_dir)
    write_json(results_dir / f"{name}.json", result)
    write_text_atomic(results_dir / f"{name}.md", markdown)
    print(markdown)
