"""The broad corpus of the ``attrmask-descfp-broad`` encoder's stage: small and drug-like molecules beyond MOSES.

MOSES keeps molecules of 250-350 Da, so an encoder pretrained on it alone has never seen the small molecules of
ESOL (69% under 250 Da) or of toxicology sets. This script pools the SMILES (labels dropped) of Tox21, ToxCast,
SIDER, ClinTox and ChEMBL 5thresh, leaves out every molecule of the encoder probe's tasks (BACE, BBBP,
Lipophilicity, ESOL and the built-in assay, all of their molecules, not only the test split; matched by
:func:`molft.pretraining.hygiene.identity_key`), keeps one SMILES per molecule, and writes one ``smiles`` column.
Pretraining then removes every registered benchmark's test molecules on top (``--exclude-test-molecules always``).

    python -m benchmarks.broad_corpus --out runs/corpus/broad_small.csv

The encoder's stage joined it with the same number of MOSES molecules no earlier stage had seen (rows 550,001-
578,486 of moses_train); the command is in ``data/pretrained/gin-attrmask-descfp-broad/README.md``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from benchmarks.harness import input_errors_exit
from molft.data.builtin import builtin_assay
from molft.errors import InputError
from molft.pretraining.hygiene import identity_keys
from molft.runtime import default_data_dir

#: the pooled sources, relative to the data directory
SOURCES = ("moleculenet/tox21.csv.gz", "moleculenet/toxcast_data.csv.gz", "moleculenet/sider.csv.gz",
           "moleculenet/clintox.csv.gz", "chembl/chembl_5thresh.csv.gz")
#: the encoder probe's tasks, every molecule of which stays out (with the built-in assay)
PROBE_TASKS = ("moleculenet/bace.csv.gz", "moleculenet/BBBP.csv.gz", "moleculenet/Lipophilicity.csv.gz",
               "moleculenet/delaney-processed.csv.gz")


def smiles_column(path: Path) -> list[str]:
    """The SMILES of a table (its ``smiles`` or ``mol`` column, any case), blanks dropped.

    Raises:
        InputError: a table without such a column.
    """
    header = pd.read_csv(path, nrows=0).columns
    column = next((c for c in header if c.lower() in ("smiles", "mol")), None)
    if column is None:
        raise InputError(f"{path}: no 'smiles' or 'mol' column (found {', '.join(header[:5])}...)")
    return pd.read_csv(path, usecols=[column])[column].dropna().astype(str).tolist()


def build_corpus(sources: Sequence[Sequence[str]], excluded: Sequence[str], *, workers: int = 1) -> list[str]:
    """The SMILES of ``sources`` (lists, pooled in order) whose molecule is not in ``excluded``, the first SMILES
    of each molecule kept; unparsable SMILES are dropped."""
    left_out = {key for key in identity_keys(list(excluded), workers=workers) if key}
    pooled = [smiles for source in sources for smiles in source]
    kept, seen = [], set()
    for smiles, key in zip(pooled, identity_keys(pooled, workers=workers)):
        if key and key not in left_out and key not in seen:
            seen.add(key)
            kept.append(smiles)
    return kept


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the CSV to write (one 'smiles' column)")
    parser.add_argument("--data-dir", default=None, help="data directory (default: $MOLFT_DATA_DIR or ../shared/data)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the identity keys")
    args = parser.parse_args(argv)
    with input_errors_exit():
        folder = Path(args.data_dir) if args.data_dir else default_data_dir()
        if folder is None:
            raise InputError("no data directory: pass --data-dir or set $MOLFT_DATA_DIR")
        sources = [smiles_column(folder / name) for name in SOURCES]
        excluded = [s for name in PROBE_TASKS for s in smiles_column(folder / name)] + builtin_assay()["smiles"].tolist()
        kept = build_corpus(sources, excluded, workers=args.workers)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"smiles": kept}).to_csv(args.out, index=False)
    print(f"{sum(map(len, sources)):,} SMILES read from {len(SOURCES)} tables; {len(kept):,} molecules kept "
          f"(probe tasks' molecules and repeats left out) -> {args.out}")


if __name__ == "__main__":
    main()
