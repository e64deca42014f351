"""Are molft's features identical to ``ogb.utils.smiles2graph`` on every real molecule we have?

The tests check a few thousand molecules; this runs every SMILES of every MoleculeNet table in
the data directory (and optionally the ZINC files) through both featurizers and counts, per file:
molecules compared, molecules whose node features, edge list or edge features differ, and
molecules that only one side rejects. molft's parser leaves out RDKit's stereo perception and
reads some properties through shortcuts (see ``molft.featurize.graph``); this is their check at
scale.

    python -m benchmarks.featurize_identity [--zinc]

Writes benchmarks/results/featurize_identity.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ogb.utils import smiles2graph
from rdkit import rdBase

from benchmarks.harness import command_line, write_results
from molft.data.tables import detect_smiles_column
from molft.featurize import featurize_many
from molft.runtime import default_data_dir, run_metadata

ZINC_FILES = ("zinc/moses_test.csv.gz", "zinc/moses_test_scaffolds.csv.gz")


def _ogb_graph(smiles: str) -> dict[str, np.ndarray] | None:
    try:
        return smiles2graph(smiles)
    except Exception:  # OGB raises whatever RDKit's None molecule makes it raise
        return None


def compare_file(path: Path) -> dict[str, Any]:
    """Featurize one table both ways; counts of agreement and the first differing SMILES."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    smiles = frame[detect_smiles_column(list(frame.columns))].tolist()
    start = time.perf_counter()
    result = featurize_many(smiles)
    ours = dict(zip(result.indices.tolist(), result.graphs))
    different: list[str] = []
    only_ogb = only_molft = 0
    with rdBase.BlockLogs():
        for position, text in enumerate(smiles):
            reference = _ogb_graph(text.strip()) if text.strip() else None
            graph = ours.get(position)
            if (reference is None) != (graph is None):
                only_ogb += graph is None
                only_molft += reference is None
                continue
            if graph is None:
                continue
            same = (
                np.array_equal(graph.x.numpy(), reference["node_feat"])
                and np.array_equal(graph.edge_index.numpy(), reference["edge_index"])
                and np.array_equal(graph.edge_attr.numpy(), reference["edge_feat"])
            )
            if not same:
                different.append(text)
    return {
        "file": path.name,
        "rows": len(smiles),
        "compared": len(ours) - only_molft,
        "different": len(different),
        "featurized_by_ogb_only": only_ogb,
        "featurized_by_molft_only": only_molft,
        "first_different": different[:5],
        "seconds": time.perf_counter() - start,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# molft vs ogb.utils.smiles2graph: identical features?",
        "",
        f"Command: `{result['command']}`",
        "",
        "| file | rows | compared | different | only OGB featurizes | only molft featurizes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["files"]:
        lines.append(
            f"| {row['file']} | {row['rows']:,} | {row['compared']:,} | {row['different']:,}"
            f" | {row['featurized_by_ogb_only']:,} | {row['featurized_by_molft_only']:,} |"
        )
    total = result["total"]
    lines.append(
        f"| **all** | {total['rows']:,} | {total['compared']:,} | {total['different']:,}"
        f" | {total['featurized_by_ogb_only']:,} | {total['featurized_by_molft_only']:,} |"
    )
    lines += ["", "*different*: node features, edge list or edge features not equal element for element."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--zinc", action="store_true", help=f"also {', '.join(ZINC_FILES)}")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        sys.exit("no data directory: pass --data-dir or set MOLFT_DATA_DIR")
    paths = sorted((args.data_dir / "moleculenet").glob("*.csv*"))
    if args.zinc:
        paths += [args.data_dir / relative for relative in ZINC_FILES]
    files = []
    for path in paths:
        files.append(compare_file(path))
        print(files[-1], flush=True)
    keys = ("rows", "compared", "different", "featurized_by_ogb_only", "featurized_by_molft_only")
    result = {
        **run_metadata(),
        "command": command_line("featurize_identity", argv),
        "files": files,
        "total": {key: sum(row[key] for row in files) for key in keys},
    }
    write_results("featurize_identity", result, markdown(result))


if __name__ == "__main__":
    main()
