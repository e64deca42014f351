"""Pretraining throughput: graphs per second per objective, end to end vs compute only.

For each objective and device, three timings over the same batches of real ZINC molecules
(MOSES test set when the data directory exists, else RDKit's bundled ChEMBL set):

* ``end_to_end``: what :func:`molft.pretraining.loop.pretrain` does per step with ``num_workers=0``:
  the data loader reads graphs, runs the objective's transform (masking...), collates, moves the
  batch to the device, then forward, backward and an AdamW step;
* ``compute_only``: forward, backward and step alone, on the batch once it is collated and on
  the device, so the difference to ``end_to_end`` is the data pipeline's cost;
* ``data_only``: getting the batch alone (transform + collate + copy), graphs/s one process feeds.

The two parts are timed step by step on the same batches, so contention on a shared machine
hits both alike; rounds interleave the objectives and the least disturbed round counts. The model is full size by default (5 layers, width
300, batch 256, as in Hu et al.).

    python -m benchmarks.pretrain_throughput --steps 10 --rounds 2 --threads 1

Writes benchmarks/results/pretrain_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import pandas as pd
import torch

from benchmarks.harness import command_line, hardware, hardware_text, write_results
from molft.data.builtin import builtin_assay
from molft.featurize.graph import featurize_many
from molft.models.encoder import EncoderConfig, GINEncoder
from molft.pretraining.batches import EpochDataset, epoch_batches, make_loader
from molft.pretraining.loop import PretrainModel
from molft.pretraining.registry import OBJECTIVES, build_objectives
from molft.runtime import default_data_dir, run_metadata

ZINC = "zinc/moses_test.csv.gz"
# name in the report -> (objective spec, objective options)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "attr_masking": ("attr_masking", {}),
    "attr_masking+edges": ("attr_masking", {"attr_masking": {"mask_edges": True}}),
    "graphmae": ("graphmae", {}),
    "context_prediction": ("context_prediction", {}),
}


def corpus_smiles(molecules: int) -> tuple[list[str], str]:
    """The first ``molecules`` SMILES of the MOSES test set (else the built-in assay), and their source."""
    data_dir = default_data_dir()
    if data_dir is not None and (data_dir / ZINC).is_file():
        frame = pd.read_csv(data_dir / ZINC, nrows=molecules)
        return frame.iloc[:, 0].tolist(), f"{ZINC} (first {len(frame)})"
    smiles = builtin_assay()["smiles"].tolist()
    return (smiles * (molecules // len(smiles) + 1))[:molecules], "RDKit bundled ChEMBL2321810 (repeated)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    variant: str, graphs: Any, config: EncoderConfig, batch_size: int, steps: int, device: torch.device, warmup: int = 2
) -> dict[str, float]:
    """Graphs/s of one round: end to end, compute only and data only."""
    spec, options = VARIANTS[variant]
    torch.manual_seed(0)
    model = PretrainModel(GINEncoder(config), build_objectives(spec, config, options)).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    dataset = EpochDataset(graphs, model.objectives.transform, seed=0)
    batches = epoch_batches(len(graphs), batch_size, seed=0, epoch=0)[: warmup + steps]
    if len(batches) < warmup + steps:
        raise SystemExit(f"--molecules {len(graphs)} gives {len(batches)} batches; need {warmup + steps}")
    counted = sum(len(b) for b in batches[warmup:])

    def step(batch) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model(batch)
        loss.backward()
        optimizer.step()

    # Each step is timed in two parts on the same batch: getting it (loader: transform + collate,
    # then the copy to the device) and computing with it (forward, backward, step). The batch is
    # in memory on the device when the second clock starts, so that part is the compute-only
    # time, and both parts see the same spells of contention on a shared machine.
    loader = iter(make_loader(dataset, batches))
    for _ in range(warmup):
        step(next(loader).to(device))
    data_seconds = compute_seconds = 0.0
    for _ in range(steps):
        _sync(device)
        started = time.perf_counter()
        batch = next(loader).to(device)
        _sync(device)
        fetched = time.perf_counter()
        step(batch)
        _sync(device)
        data_seconds += fetched - started
        compute_seconds += time.perf_counter() - fetched
    end_seconds = data_seconds + compute_seconds
    return {
        "end_to_end": counted / end_seconds,
        "compute_only": counted / compute_seconds,
        "data_only": counted / data_seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--molecules", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round (after 2 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=5)
    parser.add_argument("--hidden-dim", type=int, default=300)
    parser.add_argument("--vocabulary", default="ogb", choices=["ogb", "hu2020"])
    parser.add_argument("--objectives", default=",".join(VARIANTS), help="comma-separated names of VARIANTS")
    parser.add_argument("--devices", default="auto", help="'auto' (cpu, and cuda when present) or e.g. 'cpu'")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.devices == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = args.devices.split(",")
    variants = [v for v in args.objectives.split(",") if VARIANTS.get(v, ("?",))[0] in OBJECTIVES]
    skipped = sorted(set(args.objectives.split(",")) - set(variants))

    smiles, source = corpus_smiles(args.molecules)
    graphs = featurize_many(smiles, args.vocabulary).graphs
    config = EncoderConfig(vocabulary=args.vocabulary, num_layers=args.num_layers, hidden_dim=args.hidden_dim)
    rows = []
    for device_name in devices:
        device = torch.device(device_name)
        rounds: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for variant in variants:  # interleaved: a slow spell hits every objective alike
                rounds[variant].append(measure(variant, graphs, config, args.batch_size, args.steps, device))
        for variant in variants:
            best = max(rounds[variant], key=lambda r: r["end_to_end"])  # the least disturbed round
            rows.append({
                "device": device_name,
                "objective": variant,
                **{f"{k}_graphs_per_s": round(v, 1) for k, v in best.items()},
                "pipeline_share": round(1 - best["end_to_end"] / best["compute_only"], 3),
                "rounds": rounds[variant],
            })
            print(f"{device_name:5s} {variant:20s} end-to-end {best['end_to_end']:8.1f}  compute-only "
                  f"{best['compute_only']:8.1f}  data-only {best['data_only']:8.1f} graphs/s", flush=True)

    command = command_line("pretrain_throughput", argv)
    result = {
        "benchmark": "pretrain_throughput",
        "command": command,
        "corpus": source,
        "molecules": len(graphs),
        "encoder": config.to_dict(),
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "hardware": hardware(),
        "skipped_objectives": skipped,
        "results": rows,
        "run": run_metadata(),
    }
    write_results("pretrain_throughput", result, _markdown(result))


def _markdown(result: dict[str, Any]) -> str:
    encoder = result["encoder"]
    lines = [
        "# Pretraining throughput (graphs/s)",
        "",
        f"`{result['command']}`",
        "",
        f"Corpus: {result['corpus']}, {result['molecules']} molecules; encoder {encoder['num_layers']} layers x "
        f"{encoder['hidden_dim']} ({encoder['vocabulary']} vocabulary); batch {result['batch_size']}; "
        f"{result['steps_per_round']} timed steps per round, best of {result['rounds']}; "
        f"{hardware_text(result['hardware'])}.",
        "",
        "| device | objective | end to end | compute only | data only | pipeline share |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in result["results"]:
        lines.append(
            f"| {row['device']} | {row['objective']} | {row['end_to_end_graphs_per_s']:.0f} | "
            f"{row['compute_only_graphs_per_s']:.0f} | {row['data_only_graphs_per_s']:.0f} | "
            f"{row['pipeline_share']:.0%} |"
        )
    lines += [
        "",
        "*end to end*: loader (transform + collate) + transfer + forward/backward/AdamW, as in `pretrain()` "
        "with `num_workers=0`; *compute only*: forward/backward/AdamW alone, on each batch once it is collated "
        "and on the device (timed apart, step by step, on the same batches); *data only*: getting the batches "
        "alone (one process; `num_workers` > 0 moves it off the training process). *pipeline share* = "
        "1 - end-to-end / compute-only.",
    ]
    if result["skipped_objectives"]:
        lines.append(f"Not registered here, skipped: {', '.join(result['skipped_objectives'])}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
