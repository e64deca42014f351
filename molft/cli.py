"""The ``molft`` command line: each command parses its options and forwards to one API function.

Each command imports what it needs inside its body, and every option is passed on by keyword.
Nothing at the top of this module loads torch or PyG, so ``molft --help``, argument errors and
``molft featurize`` (RDKit + NumPy) start in about a second.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from molft.errors import InputError, MolftError
from molft.pretrained import SHIPPED

#: the shipped encoder names, and the one ``default`` stands for, for the help of the options that take one
_SHIPPED_NAMES = ", ".join(f"'{name}'" for name in SHIPPED)
_DEFAULT_IS = next(name for name, rel in SHIPPED.items() if name != "default" and rel == SHIPPED["default"])

app = typer.Typer(
    name="molft",
    help="Molecular property prediction with pretrained graph neural networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_state = {"debug": False}
F = TypeVar("F", bound=Callable[..., Any])


def _say(message: str) -> None:
    typer.echo(message, err=True)


def parse_json_object(text: str | None, option: str) -> dict[str, Any] | None:
    """An option's JSON object (None when not given); bad JSON is the user's error, said plainly."""
    import json

    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{option}: not valid JSON ({error.msg} at character {error.pos}): {text!r}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise InputError(f"{option}: expected an object of objects, e.g. '{{\"descriptors\": {{\"head\": \"linear\"}}}}'; got {text!r}")
    return value


def friendly(command: F) -> F:
    """Turn MolftError into one clear paragraph and exit code 2; --debug shows tracebacks."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MolftError as error:
            if _state["debug"]:
                raise
            _say(f"error: {error}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            _say("interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as error:  # a bug in molft, not the user's input
            if _state["debug"]:
                raise
            _say(f"internal error: {type(error).__name__}: {error}\nrerun with 'molft --debug ...' for the traceback")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Featurize molecules, pretrain GIN encoders, fine-tune them on your assay and predict."""
    _state["debug"] = debug


Workers = Annotated[int, typer.Option("--workers", "-j", min=1, help="Processes to use (output does not depend on it).")]


@app.command()
@friendly
def featurize(
    table: Annotated[Path, typer.Argument(help="Input: .csv, .tsv, .smi or .txt, optionally .gz.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (default: <input>.graphs).")] = None,
    smiles_column: Annotated[str | None, typer.Option(help="Column holding SMILES (default: detected from common names).")] = None,
    vocab: Annotated[str, typer.Option(help="Feature vocabulary: ogb or hu2020.")] = "ogb",
    workers: Workers = 1,
    shard_rows: Annotated[int, typer.Option(min=1, help="Input rows per shard (bounds memory).")] = 100_000,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output directory.")] = False,
) -> None:
    """Turn a table of SMILES into molecular graphs; bad rows go to rejects.csv with the reason."""
    from molft.data.featurized import featurize_file

    report = featurize_file(
        path=table, output=out, smiles_column=smiles_column, vocab=vocab, workers=workers, shard_rows=shard_rows,
        overwrite=overwrite,
    )
    typer.echo(report.summary())


@app.command("example-data")
@friendly
def example_data(
    out: Annotated[Path, typer.Argument(help="CSV file to write.")] = Path("chembl2321810.csv"),
) -> None:
    """Write the built-in assay (1,017 ChEMBL molecules with pIC50, shipped in RDKit) as a CSV."""
    from molft.data.builtin import write_builtin_assay

    typer.echo(f"wrote {write_builtin_assay(path=out)} (columns: smiles, chembl_id, pIC50)")


@app.command()
@friendly
def pretrain(
    corpus: Annotated[list[Path], typer.Argument(help="Featurized directory ('molft featurize') or a SMILES table; several are the parts of one corpus, joined in order.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory: logs, checkpoints, encoder/.")],
    objectives: Annotated[str, typer.Option(help="Objectives with weights, e.g. 'attr_masking,context_prediction:0.5'; graph-level: descriptors, fingerprint, supervised (a labelled corpus).")] = "attr_masking",
    objective_options: Annotated[str | None, typer.Option(metavar="JSON", help="""Objective -> its options, as JSON, e.g. '{"descriptors": {"feature": "rdkit2d_fast", "head": "linear"}}'.""")] = None,
    init: Annotated[str | None, typer.Option(help="Start from this encoder (a shipped name or a directory): a second pretraining stage.")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the corpus.")] = 100,
    max_steps: Annotated[int | None, typer.Option(min=1, help="Stop after this many optimizer steps (the cosine schedule ends there).")] = None,
    time_limit: Annotated[float | None, typer.Option(min=0, metavar="SECONDS", help="End this call at the first step after this many seconds: checkpoint and encoder written, --resume continues exactly.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Graphs per step (over all processes).")] = 256,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    lr_schedule: Annotated[str, typer.Option(help="'constant' (Hu et al.) or 'cosine'.")] = "constant",
    warmup_steps: Annotated[int, typer.Option(min=0, help="Warmup steps of the cosine schedule.")] = 0,
    vocab: Annotated[str | None, typer.Option(help="Encoder vocabulary (default: the corpus's).")] = None,
    num_layers: Annotated[int | None, typer.Option(min=1, help="GIN layers (default 5, or the --init encoder's).")] = None,
    hidden_dim: Annotated[int | None, typer.Option(min=1, help="Embedding width (default 300, or the --init encoder's).")] = None,
    max_molecules: Annotated[int | None, typer.Option(min=1, help="Use only the first N molecules.")] = None,
    exclude_test_molecules: Annotated[Literal["labelled", "always", "never"], typer.Option(help="Remove the benchmarks' test molecules (data directory) from the corpus: 'labelled' when an objective reads its labels (supervised), 'always', or 'never'.")] = "labelled",
    checkpoint_every_steps: Annotated[int, typer.Option(min=1, help="Checkpoint every N steps (and every epoch).")] = 1000,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of initialization, data order and masks.")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: cuda when present).")] = None,
    loader_workers: Annotated[int, typer.Option(min=0, help="Data-loader processes.")] = 0,
    workers: Workers = 1,
) -> None:
    """Pretrain a GIN encoder: node-level objectives (attribute masking, context prediction, GraphMAE) and
    graph-level targets (computed descriptors and fingerprints, or the corpus's labels), combined by weight."""
    from molft.pretraining.loop import pretrain as run_pretrain

    given = {"num_layers": num_layers, "hidden_dim": hidden_dim, "vocabulary": vocab}
    encoder = {key: value for key, value in given.items() if value is not None}
    result = run_pretrain(
        corpus=corpus[0] if len(corpus) == 1 else corpus, out=out, objectives=objectives,
        objective_options=parse_json_object(objective_options, "--objective-options"), init=init, epochs=epochs,
        max_steps=max_steps, time_limit_s=time_limit, batch_size=batch_size, lr=lr, encoder=encoder,
        lr_schedule=lr_schedule, warmup_steps=warmup_steps, max_molecules=max_molecules,
        exclude_test_molecules=exclude_test_molecules, checkpoint_every_steps=checkpoint_every_steps, resume=resume,
        device=device, seed=seed, num_workers=loader_workers, featurize_workers=workers,
    )
    losses = ", ".join(f"{k} {v:.4f}" for k, v in result.final_losses.items())
    stop = {"max_steps": "; stopped by --max-steps", "time_limit": "; stopped by --time-limit"}.get(result.stopped_by, "")
    typer.echo(f"pretrained on {result.molecules:,} molecules, {result.epochs} epochs, {result.steps:,} steps "
               f"in {result.seconds:.0f} s{stop}; final: {losses}\nencoder -> {result.encoder}")


@app.command()
@friendly
def finetune(
    table: Annotated[Path, typer.Argument(help="Assay table (.csv, .smi, ...) or a featurized directory.")],
    target: Annotated[list[str], typer.Option("--target", "-t", help="Label column; repeat for several tasks.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")],
    pretrained: Annotated[str, typer.Option(help=f"A shipped encoder ({_SHIPPED_NAMES}; 'default' = '{_DEFAULT_IS}'), a pretrained directory, or 'none'.")] = "default",
    split: Annotated[str, typer.Option(help="'scaffold', 'random', or a column holding train/valid/test.")] = "scaffold",
    model: Annotated[str, typer.Option(help="'auto' (GNN, forest and boosted members, and with a pretrained encoder a linear model on its frozen embedding; the best one or blend on validation), 'ensemble' (equal weights), or 'gnn' / 'forest' / 'boosted' / 'linear' alone.")] = "auto",
    seeds: Annotated[int, typer.Option(min=1, help="GNN members (seeds); their spread is part of the uncertainty.")] = 1,
    coverage: Annotated[float, typer.Option(help="Intended coverage of the regression intervals (split-conformal).")] = 0.9,
    molecule_features: Annotated[str | None, typer.Option(help="Molecule features the GNN head also reads, e.g. 'morgan_count,rdkit2d' (chemprop-style).")] = None,
    pooling: Annotated[str, typer.Option(help="How the GNN head pools the atoms: 'mean', 'sum', 'max', or several joined by + ('mean+max', concatenated).")] = "mean",
    seed: Annotated[int, typer.Option(help="First GNN seed, and the fingerprint members' random state.")] = 0,
    split_seed: Annotated[int, typer.Option(help="Seed of the random split.")] = 0,
    task_type: Annotated[str | None, typer.Option(help="classification or regression (default: inferred).")] = None,
    mode: Annotated[str, typer.Option(help="'finetune', or 'frozen': instant linear model on frozen embeddings.")] = "finetune",
    smiles_column: Annotated[str | None, typer.Option(help="Column holding SMILES (default: detected).")] = None,
    max_epochs: Annotated[int | None, typer.Option(min=1, help="Override the recipe's epoch cap.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Override the recipe's batch size.")] = None,
    encoder_lr: Annotated[float | None, typer.Option(help="Override the encoder learning rate.")] = None,
    head_lr: Annotated[float | None, typer.Option(help="Override the head learning rate.")] = None,
    freeze_encoder: Annotated[bool | None, typer.Option("--freeze-encoder/--train-encoder", help="Override freezing (default: by label count).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: cuda when present).")] = None,
    workers: Workers = 1,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model directory.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in OUT (same arguments).")] = False,
    compare_rf: Annotated[bool, typer.Option(help="Report a random forest on Morgan fingerprints on the same split.")] = True,
    focal_gamma: Annotated[float | None, typer.Option(min=0.0, help="Focal loss exponent for classification (0: BCE).")] = None,
    gradual_unfreezing: Annotated[bool | None, typer.Option("--gradual-unfreezing/--no-gradual-unfreezing", help="Head first, then one more encoder layer per epoch (top first).")] = None,
) -> None:
    """Fine-tune the pretrained encoder on your assay beside fingerprint models, and keep the best on
    validation (one member or a blend); writes the model, metrics, predictions and a summary.

    Progress is saved after every epoch: if the run is interrupted, the same command with --resume
    continues it and ends with the same model.
    """
    from molft.finetuning.train import finetune as run_finetune

    result = run_finetune(
        table=table, targets=target, out=out, pretrained=pretrained, split=split, seeds=seeds, seed=seed, split_seed=split_seed,
        task_type=task_type, smiles_column=smiles_column, mode=mode, max_epochs=max_epochs, batch_size=batch_size,
        encoder_lr=encoder_lr, head_lr=head_lr, freeze_encoder=freeze_encoder, device=device, workers=workers,
        overwrite=overwrite, resume=resume, compare_rf=compare_rf, focal_gamma=focal_gamma,
        gradual_unfreezing=gradual_unfreezing, model=model, coverage=coverage, molecule_features=molecule_features,
        pooling=pooling,
    )
    typer.echo(result.summary())


@app.command()
@friendly
def predict(
    model: Annotated[Path, typer.Argument(help="Model directory from 'molft finetune'.")],
    table: Annotated[Path, typer.Argument(help="Molecules to score (.csv, .smi, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Predictions CSV to write.")],
    smiles_column: Annotated[str | None, typer.Option(help="Column holding SMILES (default: detected).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: cuda when present).")] = None,
    workers: Workers = 1,
) -> None:
    """Score new molecules: every input row is kept, in order; failed rows get an error column."""
    from molft.finetuning.predict import ERROR_COLUMN
    from molft.finetuning.predict import predict as run_predict

    frame = run_predict(
        model_dir=model, table=table, out=out, smiles_column=smiles_column, workers=workers, device=device
    )
    added = frame.attrs["added_columns"]
    error_column = added[ERROR_COLUMN]
    failed = int((frame[error_column] != "").sum())
    renamed = [f"{new!r} (the table already has {name!r})" for name, new in added.items() if new != name]
    if renamed:
        typer.echo(f"note: new columns renamed to keep yours: {', '.join(renamed)}", err=True)
    typer.echo(
        f"predicted {len(frame) - failed:,} of {len(frame):,} rows ({failed:,} failed, see the {error_column!r} "
        f"column) -> {out}"
    )


@app.command()
@friendly
def embed(
    model: Annotated[str, typer.Argument(help=f"A shipped encoder ({_SHIPPED_NAMES}), a pretrained encoder or a fine-tuned model directory.")],
    table: Annotated[Path, typer.Argument(help="Molecules to embed (.csv, .smi, ...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output .csv or .npy.")],
    smiles_column: Annotated[str | None, typer.Option(help="Column holding SMILES (default: detected).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, ... (default: cuda when present).")] = None,
    layers: Annotated[Literal["last", "all"], typer.Option(help="'last': the encoder's output (300 columns); 'all': every layer's output concatenated (1,800), better features for a model on frozen embeddings.")] = "last",
    pooling: Annotated[str | None, typer.Option(help="How atoms become a molecule: 'mean', 'sum', 'max', or several joined by + ('mean+max': twice the columns; sum and max keep size and rare groups that mean averages away). Default: the model's own (mean).")] = None,
    workers: Workers = 1,
) -> None:
    """Export graph embeddings (one per input row, NaN where the SMILES failed) for other models."""
    from molft.embedding import embed as run_embed

    done, failed = run_embed(
        model=model, table=table, out=out, smiles_column=smiles_column, workers=workers, device=device, layers=layers,
        pooling=pooling,
    )
    typer.echo(f"embedded {done:,} rows ({failed:,} failed) -> {out}")


DataDir = Annotated[
    Path | None, typer.Option("--data-dir", envvar="MOLFT_DATA_DIR", help="Corpora folder (default: ../shared/data).")
]


@app.command()
@friendly
def datasets(
    name: Annotated[str | None, typer.Argument(help="Load this dataset and show its scaffold split.")] = None,
    data_dir: DataDir = None,
    download: Annotated[bool, typer.Option(help="Fetch the dataset (pinned address, checked sha256) if no copy is found.")] = False,
) -> None:
    """List the benchmark datasets molft knows and which are present; or load one with its split."""
    from molft.data.registry import list_datasets, load_dataset

    if name is not None:
        typer.echo(load_dataset(name=name, data_dir=data_dir, progress=True, download=download).summary())
        return
    for status in list_datasets(data_dir=data_dir):
        info = status.info
        where = str(status.path) if status.available else f"missing ({status.path or 'no data directory'})"
        typer.echo(f"{info.name:14s} {info.task_type:14s} {info.metric:7s} {info.ogb_name or '':18s} {where}")


def run() -> None:
    """Entry point for ``python -m molft``."""
    app(prog_name="molft")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
