"""The ``molft`` command line: each command parses its options and forwards to one API function."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from molft.errors import MolftError

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

    report = featurize_file(table, out, smiles_column, vocab, workers, shard_rows, overwrite)
    typer.echo(report.summary())


@app.command("example-data")
@friendly
def example_data(
    out: Annotated[Path, typer.Argument(help="CSV file to write.")] = Path("chembl2321810.csv"),
) -> None:
    """Write the built-in assay (1,017 ChEMBL molecules with pIC50, shipped in RDKit) as a CSV."""
    from molft.data.builtin import write_builtin_assay

    typer.echo(f"wrote {write_builtin_assay(out)} (columns: smiles, chembl_id, pIC50)")


def run() -> None:
    """Entry point for ``python -m molft``."""
    app(prog_name="molft")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
