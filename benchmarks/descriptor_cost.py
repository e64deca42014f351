"""Cost per molecule of RDKit 2D descriptors on ZINC, and what the ``rdkit2d_fast`` preset keeps.

Descriptor targets for pretraining are computed once per corpus molecule; on the 1.94M molecules
of ZINC the 217 ``rdkit2d`` descriptors cost several CPU-hours, which a 9-minute GPU run cannot
pay. ``rdkit2d_fast`` (:data:`molft.featurize.molecule.RDKIT2D_FAST_LEFT_OUT`) leaves out the
costly ones. Three measurements on the first ``--molecules`` SMILES of the MOSES test set:

* *per descriptor*: seconds per molecule of each descriptor in RDKit's order within the whole set,
  so a computation several descriptors share (Crippen contributions, EState indices, Gasteiger
  charges) is paid by the first that needs it; each round on freshly parsed molecules, best round;
* *per feature*: ``rdkit2d``, ``rdkit2d_fast`` and ``morgan_bits:1024`` per molecule as
  :func:`~molft.featurize.molecule.molecule_features` computes them (one molecule, every
  descriptor, then the next), with parsing and molft's graph featurization beside them, and
  each extrapolated to the 1,936,962 molecules of the ZINC corpus on ``--workers`` processes
  (perfect scaling assumed);
* *information kept*: how much of each left-out group's standardized variance a ridge model on
  the kept descriptors plus Morgan bits (the targets of ``descriptors:1,fingerprint:1`` with
  ``rdkit2d_fast``) explains on held-out molecules (``--fit-molecules``, 3:1 split).

Timings on a shared machine are upper bounds: other work only slows a round down.

    python -m benchmarks.descriptor_cost --molecules 300 --rounds 3 --fit-molecules 2000

Writes benchmarks/results/descriptor_cost.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rdkit import Chem, rdBase

from benchmarks.harness import RESULTS, command_line, hardware, hardware_text, markdown_table, write_results
from molft.featurize.graph import featurize_many
from molft.featurize.molecule import (
    RDKIT2D_FAST_LEFT_OUT,
    RDKIT2D_FAST_NAMES,
    RDKIT2D_NAMES,
    _DESCRIPTOR_FUNCTIONS,
    FeatureScaler,
    get_molecule_feature,
    molecule_features,
)
from molft.runtime import default_data_dir, run_metadata

SOURCE = "zinc/moses_test.csv.gz"
ZINC_MOLECULES = 1_936_962  # moses_train + moses_test + moses_test_scaffolds
FEATURES = ("rdkit2d", "rdkit2d_fast", "morgan_bits:1024")


def read_smiles(data_dir: Path, molecules: int, skip: int = 0) -> list[str]:
    """``molecules`` SMILES of the MOSES test set, after its first ``skip``."""
    frame = pd.read_csv(data_dir / SOURCE, nrows=skip + molecules, usecols=["SMILES"])
    return frame["SMILES"].iloc[skip:].tolist()


def _parsed(smiles: list[str]) -> list[Chem.Mol]:
    with rdBase.BlockLogs():
        return [Chem.MolFromSmiles(s) for s in smiles]


def per_descriptor_ms(smiles: list[str], rounds: int) -> dict[str, float]:
    """Milliseconds per molecule of each descriptor, computed in RDKit's order, best of ``rounds``."""
    best = dict.fromkeys(RDKIT2D_NAMES, float("inf"))
    for _ in range(rounds):
        spent = dict.fromkeys(RDKIT2D_NAMES, 0.0)
        for mol in _parsed(smiles):  # fresh molecules: nothing cached on them yet
            for name in RDKIT2D_NAMES:
                start = time.perf_counter()
                try:
                    _DESCRIPTOR_FUNCTIONS[name](mol)
                except Exception:  # noqa: BLE001 - as RDKitDescriptors.compute: a failure is a NaN
                    pass
                spent[name] += time.perf_counter() - start
        best = {name: min(best[name], spent[name] / len(smiles) * 1e3) for name in RDKIT2D_NAMES}
    return best


def per_feature_ms(smiles: list[str], rounds: int) -> dict[str, float]:
    """Milliseconds per molecule of parsing, graph featurization and each of :data:`FEATURES`."""
    timings: dict[str, list[float]] = {"parse SMILES": [], "molft graph featurization": [],
                                       **{spec: [] for spec in FEATURES}}
    for _ in range(rounds):
        start = time.perf_counter()
        mols = _parsed(smiles)
        timings["parse SMILES"].append(time.perf_counter() - start)
        start = time.perf_counter()
        featurize_many(smiles)
        timings["molft graph featurization"].append(time.perf_counter() - start)
        for spec in FEATURES:
            feature = get_molecule_feature(spec)
            generator = feature.generator()
            mols = _parsed(smiles)
            start = time.perf_counter()
            for mol in mols:
                feature.compute(mol, generator)
            timings[spec].append(time.perf_counter() - start)
    return {name: min(values) / len(smiles) * 1e3 for name, values in timings.items()}


def information_kept(smiles: list[str], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per left-out group: held-out R² of each of its descriptors from the kept descriptors and
    Morgan bits (ridge, regularization chosen by leave-one-out per descriptor); mean and range
    over the descriptors that vary in the held-out molecules."""
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score

    arrays = molecule_features(smiles, "rdkit2d,morgan_bits:1024").arrays
    full, bits = arrays["rdkit2d"], arrays["morgan_bits:1024"].astype(np.float32)
    parsed = ~np.isnan(full).all(axis=1)
    full, bits = full[parsed], bits[parsed]
    kept = full[:, [RDKIT2D_NAMES.index(n) for n in RDKIT2D_FAST_NAMES]]
    order = np.random.default_rng(seed).permutation(len(full))
    train, test = order[: len(order) * 3 // 4], order[len(order) * 3 // 4 :]
    inputs = np.hstack([FeatureScaler.fit(kept[train]).transform(kept, fill=0.0), bits])
    out: dict[str, dict[str, Any]] = {}
    for reason, names in RDKIT2D_FAST_LEFT_OUT.items():
        names = [n for n in names if n in RDKIT2D_NAMES]
        target = full[:, [RDKIT2D_NAMES.index(n) for n in names]]
        target = FeatureScaler.fit(target[train]).transform(target, fill=0.0)
        model = RidgeCV(alphas=np.logspace(-2, 4, 13), alpha_per_target=True).fit(inputs[train], target[train])
        predicted = model.predict(inputs[test]).reshape(len(test), -1)
        scores = {name: float(r2_score(target[test, j], predicted[:, j]))
                  for j, name in enumerate(names) if target[test, j].std() > 1e-6}
        out[reason] = {
            "descriptors": len(names), "varying": len(scores),
            "mean_r2": float(np.mean(list(scores.values()))) if scores else None,
            "min_r2": min(scores.values()) if scores else None, "r2": scores,
        }
    return out


def markdown(result: dict[str, Any]) -> str:
    features, per_descriptor, workers = result["per_feature_ms"], result["per_descriptor_ms"], result["workers"]
    rows = [[name, f"{ms:.3f}", f"{ms * ZINC_MOLECULES / 1e3 / workers:,.0f} s"] for name, ms in features.items()]
    left_out = {n for names in RDKIT2D_FAST_LEFT_OUT.values() for n in names}
    top = sorted(per_descriptor.items(), key=lambda item: -item[1])[:25]
    share = sum(ms for n, ms in per_descriptor.items() if n in left_out) / sum(per_descriptor.values())
    lines = [
        "# RDKit 2D descriptors: cost per molecule on ZINC, and what `rdkit2d_fast` keeps",
        "",
        f"Command: `{result['command']}`",
        "",
        f"- {result['molecules']} molecules of {SOURCE} (cost), {result['fit_molecules']} more (information kept); "
        f"RDKit {result['rdkit']}; {hardware_text(result['hardware'])}; best of {result['rounds']} rounds (other "
        "work on the machine only slows a round down: upper bounds)" + (f"; {result['note']}" if result["note"] else "")
        + ".",
        f"- `rdkit2d_fast`: {len(RDKIT2D_FAST_NAMES)} of {len(RDKIT2D_NAMES)} descriptors, "
        f"{features['rdkit2d_fast'] / features['rdkit2d']:.0%} of `rdkit2d`'s time per molecule; the left-out ones "
        f"take {share:.0%} of the per-descriptor times below.",
        "",
        f"## Per molecule, and for the {ZINC_MOLECULES:,}-molecule ZINC corpus on {workers} processes",
        "",
        "The last column assumes perfect scaling over the processes, at this machine's speed per process.",
        "",
        *markdown_table(["step", "ms per molecule", f"ZINC on {workers} processes"], rows),
        "",
        "## What `rdkit2d_fast` leaves out, and how much of it the kept targets still explain",
        "",
        "Held-out R² of each left-out descriptor from a ridge model on the kept descriptors + Morgan bits "
        "(the targets of `descriptors:1,fingerprint:1`); mean and minimum over the descriptors that vary.",
        "",
        *markdown_table(
            ["left out because", "descriptors", "mean R²", "min R²", "ms per molecule"],
            [[reason, str(info["descriptors"]), "—" if info["mean_r2"] is None else f"{info['mean_r2']:.2f}",
              "—" if info["min_r2"] is None else f"{info['min_r2']:.2f}",
              f"{sum(per_descriptor.get(n, 0.0) for n in RDKIT2D_FAST_LEFT_OUT[reason]):.3f}"]
             for reason, info in result["information_kept"].items()],
            right_from=1,
        ),
        "",
        "## The 25 costliest descriptors (RDKit's order; a shared computation is paid by its first user)",
        "",
        *markdown_table(["descriptor", "ms per molecule", "in rdkit2d_fast"],
                        [[name, f"{ms:.3f}", "no" if name in left_out else "yes"] for name, ms in top]),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, default=300, help="molecules timed")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (the best counts)")
    parser.add_argument("--fit-molecules", type=int, default=2000, help="molecules for the information-kept check")
    parser.add_argument("--workers", type=int, default=16, help="processes the ZINC extrapolation assumes")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--note", default="", help="a remark for the report, e.g. what else the machine ran")
    args = parser.parse_args(argv)
    if args.data_dir is None or not (args.data_dir / SOURCE).is_file():
        raise SystemExit(f"no {SOURCE} under the data directory: pass --data-dir or set MOLFT_DATA_DIR")
    smiles = read_smiles(args.data_dir, args.molecules)
    per_descriptor = per_descriptor_ms(smiles, args.rounds)
    per_feature = per_feature_ms(smiles, args.rounds)
    kept = information_kept(read_smiles(args.data_dir, args.fit_molecules, skip=args.molecules))
    result = {
        **run_metadata(),
        "command": command_line("descriptor_cost", argv),
        "hardware": hardware(),
        "note": args.note, "molecules": len(smiles), "rounds": args.rounds, "fit_molecules": args.fit_molecules,
        "workers": args.workers,
        "zinc_molecules": ZINC_MOLECULES,
        "rdkit2d_fast": list(RDKIT2D_FAST_NAMES),
        "left_out": RDKIT2D_FAST_LEFT_OUT,
        "per_feature_ms": per_feature,
        "per_descriptor_ms": per_descriptor,
        "information_kept": kept,
    }
    write_results("descriptor_cost", result, markdown(result), args.results_dir)


if __name__ == "__main__":
    main()
