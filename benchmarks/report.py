"""What every benchmark does with its result: the command that made it, JSON + Markdown on disk."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that reproduces this run, e.g. ``python -m benchmarks.featurize_speed --rounds 5``."""
    return " ".join([f"python -m benchmarks.{module}", *(sys.argv[1:] if argv is None else argv)])


def write_results(name: str, result: dict[str, Any], markdown: str, results_dir: Path = RESULTS) -> None:
    """Write ``<name>.json`` and ``<name>.md`` under ``results_dir`` and print the Markdown."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (results_dir / f"{name}.md").write_text(markdown)
    print(markdown)
