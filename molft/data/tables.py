"""Reading the tables users hand molft: CSV/TSV (plain or gzip) and SMILES files (.smi, .txt).

Every value is read as the exact text in the file (no type guessing, no NaN conversion), so that
carried columns come out as they went in. Row numbers count the header as row 1, as a
spreadsheet shows them.
"""

from __future__ import annotations

import csv
import gzip
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from molft.errors import InputError

#: Column names recognised as SMILES, most specific first (compared case-insensitively).
SMILES_COLUMN_NAMES = (
    "smiles",
    "canonical_smiles",
    "canonical smiles",
    "isomeric_smiles",
    "smiles_string",
    "smi",
    "mol",
    "molecule",
    "structure",
)
SMILES_FILE_SUFFIXES = (".smi", ".txt", ".smiles")
ROW_NUMBER = "row"


@dataclass(frozen=True)
class TableSource:
    """A table on disk, checked and ready to stream.

    Attributes:
        path: the file.
        columns: column names, in file order.
        smiles_column: the column holding SMILES.
        first_row: the row number of the first data row (2 below a header, 1 without).
        kind: ``"csv"``, ``"tsv"`` or ``"smi"``.
    """

    path: Path
    columns: tuple[str, ...]
    smiles_column: str
    first_row: int
    kind: str


def _suffixes(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def _open_text(path: Path) -> io.TextIOBase:
    raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")
    # utf-8-sig drops a byte-order mark; errors surface as UnicodeDecodeError while reading.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a table")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    try:
        with _open_text(path) as handle:
            head = handle.read(65536)
    except UnicodeDecodeError as error:
        raise InputError(
            f"{path}: not UTF-8 text (byte {error.object[error.start]:#04x} at position {error.start}). "
            "Save it as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet program) and try again."
        ) from None
    except (OSError, EOFError) as error:  # e.g. a truncated or fake .gz
        raise InputError(f"{path}: cannot be read ({error})") from None
    if "\x00" in head:
        raise InputError(f"{path}: looks like a binary file, not a CSV or SMILES file")
    if not head.strip():
        raise InputError(f"{path}: the file holds no text")


def detect_smiles_column(columns: list[str] | tuple[str, ...], path: Path | str = "input") -> str:
    """Pick the SMILES column from common names (``smiles``, ``SMILES``, ``canonical_smiles``, ``mol``...).

    Raises:
        InputError: listing the columns found, if none is recognised.
    """
    by_lower = {}
    for column in columns:
        by_lower.setdefault(str(column).strip().lower(), column)
    for name in SMILES_COLUMN_NAMES:
        if name in by_lower:
            return by_lower[name]
    found = ", ".join(str(c) for c in columns) or "(none)"
    raise InputError(
        f"{path}: no SMILES column found. Columns found: {found}. "
        "Pass --smiles-column NAME to say which one holds SMILES."
    )


def open_table(path: str | Path, smiles_column: str | None = None) -> TableSource:
    """Check a table file and find its SMILES column, reading only its first lines.

    Args:
        path: .csv, .tsv, .smi, .txt, or any of these gzipped.
        smiles_column: the SMILES column's name; detected from common names when None.

    Raises:
        InputError: missing, empty, binary or non-UTF-8 file; no or unknown SMILES column.
    """
    path = Path(path)
    _check_file(path)
    name = _suffixes(path)
    if name.endswith(SMILES_FILE_SUFFIXES):
        with _open_text(path) as handle:
            first = next((line for line in handle if line.strip()), "")
        tokens = first.split(maxsplit=1)
        has_header = bool(tokens) and tokens[0].strip().lower() in SMILES_COLUMN_NAMES
        columns = (tokens[0], tokens[1].strip() if len(tokens) > 1 else "name") if has_header else ("smiles", "name")
        column = columns[0]
        if smiles_column is not None and smiles_column != column:
            raise InputError(
                f"{path}: a SMILES file has its SMILES in the first field ({column!r}), "
                f"not {smiles_column!r}; leave out --smiles-column"
            )
        return TableSource(path, columns, column, 2 if has_header else 1, "smi")
    kind = "tsv" if name.endswith(".tsv") else "csv"
    with _open_text(path) as handle:
        header = next(csv.reader(handle, delimiter="\t" if kind == "tsv" else ","), [])
    columns = tuple(_deduplicate(header))
    if smiles_column is None:
        smiles_column = detect_smiles_column(columns, path)
    elif smiles_column not in columns:
        raise InputError(
            f"{path}: no column {smiles_column!r}. Columns found: {', '.join(columns)}."
        )
    return TableSource(path, columns, smiles_column, 2, kind)


def _deduplicate(header: list[str]) -> list[str]:
    """Name empty headers ``column_N`` and number repeats (``id``, ``id.1``), as pandas does.

    A column named ``row`` becomes ``row.1``: ``row`` is the row-number column molft adds.
    """
    seen: dict[str, int] = {ROW_NUMBER: 0}
    names = []
    for position, name in enumerate(header):
        name = base = name.strip() or f"column_{position + 1}"
        while name in seen:  # 'a,a.1,a' -> a, a.1, a.2
            seen[base] += 1
            name = f"{base}.{seen[base]}"
        seen[name] = 0
        names.append(name)
    return names


def iter_table(source: TableSource, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
    """Stream a table in chunks of text columns plus a ``row`` column (spreadsheet row number).

    Raises:
        InputError: if the file turns out unreadable part-way (encoding, malformed quoting).
    """
    try:
        if source.kind == "smi":
            yield from _iter_smiles_file(source, chunk_rows)
        else:
            yield from _iter_csv(source, chunk_rows)
    except UnicodeDecodeError as error:
        raise InputError(
            f"{source.path}: not UTF-8 text (byte {error.object[error.start]:#04x}). Save it as UTF-8."
        ) from None
    except (pd.errors.ParserError, csv.Error) as error:
        raise InputError(f"{source.path}: not a well-formed table: {error}") from None
    except pd.errors.ParserWarning:
        raise InputError(
            f"{source.path}: not a well-formed table: some rows have more fields than the header's "
            f"{len(source.columns)} columns; quote values that hold the delimiter"
        ) from None
    except (OSError, EOFError) as error:  # e.g. a .gz that is truncated past its first block
        raise InputError(f"{source.path}: cannot be read ({error})") from None


def _iter_csv(source: TableSource, chunk_rows: int) -> Iterator[pd.DataFrame]:
    next_row = source.first_row
    with _open_text(source.path) as handle:
        reader = pd.read_csv(
            handle,
            sep="\t" if source.kind == "tsv" else ",",
            dtype=object,  # python str; with pandas' str dtype one empty trailing field counts as data lost
            keep_default_na=False,
            na_filter=False,
            header=0,
            names=list(source.columns),
            chunksize=chunk_rows,
            skip_blank_lines=False,
            on_bad_lines="error",
            index_col=False,  # else a first row with one extra field shifts every value by a column
        )
        while True:
            with warnings.catch_warnings():  # pandas warns, then drops fields past the header: refuse
                warnings.simplefilter("error", pd.errors.ParserWarning)
                frame = next(reader, None)
            if frame is None:
                break
            # one concat, not insert: a wide table (ChEMBL's 691 label columns) arrives in many blocks,
            # and inserting a column into it warns of fragmentation
            numbers = pd.DataFrame({ROW_NUMBER: range(next_row, next_row + len(frame))}, index=frame.index)
            frame = pd.concat([numbers, frame], axis=1)
            next_row += len(frame)
            yield frame


def _iter_smiles_file(source: TableSource, chunk_rows: int) -> Iterator[pd.DataFrame]:
    rows: list[tuple[int, str, str]] = []
    with _open_text(source.path) as handle:
        for number, line in enumerate(handle, start=1):
            if number < source.first_row:
                continue
            line = line.rstrip("\r\n")
            tokens = line.strip().split(maxsplit=1)
            if not tokens and not line:
                continue  # blank lines in a SMILES file are not rows
            rows.append((number, tokens[0] if tokens else "", tokens[1] if len(tokens) > 1 else ""))
            if len(rows) == chunk_rows:
                yield pd.DataFrame(rows, columns=[ROW_NUMBER, *source.columns])
                rows = []
    if rows:
        yield pd.DataFrame(rows, columns=[ROW_NUMBER, *source.columns])


def write_csv(frame: pd.DataFrame, target: str | Path | io.TextIOBase, header: bool = True) -> None:
    """Write ``frame`` (no index) as CSV that reads back cell for cell.

    pandas, through CPython's csv module, leaves a lone carriage return unquoted, and a reader
    then splits the row there. When any text cell (or column name) holds one, every text cell is
    quoted; otherwise the output is pandas' usual minimal quoting.
    """
    text = frame.select_dtypes(include=["object", "string"])
    has_cr = any("\r" in str(name) for name in frame.columns) or any(
        text.iloc[:, j].astype(str).str.contains("\r", regex=False).any() for j in range(text.shape[1])
    )  # by position: a table may repeat a column name
    frame.to_csv(target, index=False, header=header, quoting=csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL)


def read_table(path: str | Path, smiles_column: str | None = None) -> tuple[TableSource, pd.DataFrame]:
    """Read a whole table into memory (text columns plus ``row``); see :func:`open_table`."""
    source = open_table(path, smiles_column)
    frames = list(iter_table(source))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[ROW_NUMBER, *source.columns])
    return source, frame
