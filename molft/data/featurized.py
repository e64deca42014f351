"""Featurized datasets on disk: what ``molft featurize`` writes and training reads back.

A featurized dataset is a directory::

    assay.graphs/
      meta.json           format, vocabulary, source file + sha256, columns, counts, shards
      shard-00000.npz     graphs (compact arrays), row numbers, carried columns as text
      ...
      rejects.csv         row, reason and every original column of each rejected row

Shards are NumPy ``.npz`` files read with ``allow_pickle=False``: loading never runs code.
Every input row is either in a shard (with its row number) or in ``rejects.csv``.

Writing and loading need RDKit, NumPy and pandas only; torch and PyG are imported when a
:class:`~molft.data.dataset.GraphDataset` is asked for (:meth:`FeaturizedTable.dataset`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from molft.data.tables import ROW_NUMBER, TableSource, iter_table, open_table, write_csv
from molft.errors import InputError
from molft.featurize.graph import Featurizer, GraphArrays
from molft.featurize.vocab import OGB, Vocabulary, get_vocabulary
from molft.io import replace_directory, write_json_atomic
from molft.runtime import read_json, run_metadata

if TYPE_CHECKING:
    from molft.data.dataset import GraphDataset

FORMAT = "molft-graphs"
FORMAT_VERSION = 1
META = "meta.json"
REJECTS = "rejects.csv"
_GRAPH_KEYS = ("x", "bonds", "bond_attr", "atom_ptr", "bond_ptr")


@dataclass
class FeaturizeReport:
    """What :func:`featurize_file` did.

    Attributes:
        output: the featurized dataset directory.
        rejects: the CSV listing every rejected row (it exists even when empty).
        read: data rows read.
        featurized: rows that became graphs.
        rejected: rows that did not, each listed in ``rejects``.
        reasons: rejected rows per reason category.
        first_reject: (row, smiles, reason) of the first rejected row, if any.
    """

    output: Path
    rejects: Path
    read: int = 0
    featurized: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    first_reject: tuple[int, str, str] | None = None

    def summary(self) -> str:
        """One paragraph a person can read."""
        text = (
            f"read {self.read:,} rows, featurized {self.featurized:,}, rejected {self.rejected:,}"
            f" -> {self.output}"
        )
        if self.rejected:
            reasons = "; ".join(f"{count:,} {reason}" for reason, count in self.reasons.most_common())
            row, smiles, reason = self.first_reject or (0, "", "")
            text += (
                f"\nrejected rows ({reasons}) are listed in {self.rejects}"
                f"\nfirst: row {row}, {smiles!r}: {reason}"
            )
        return text


def reason_category(reason: str) -> str:
    """The kind of a failure reason, without the molecule-specific details."""
    return reason.split(":", 1)[0]


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def default_output(path: str | Path) -> Path:
    """``assay.csv`` -> ``assay.graphs`` beside it."""
    path = Path(path)
    name = path.name[:-3] if path.name.lower().endswith(".gz") else path.name
    return path.with_name(Path(name).stem + ".graphs")


def featurize_file(
    path: str | Path,
    output: str | Path | None = None,
    *,
    smiles_column: str | None = None,
    vocab: str | Vocabulary = OGB,
    workers: int = 1,
    shard_rows: int = 100_000,
    overwrite: bool = False,
    progress: bool = True,
) -> FeaturizeReport:
    """Featurize a table of SMILES into a featurized dataset directory, in bounded memory.

    Args:
        path: .csv/.tsv/.smi/.txt, optionally gzipped.
        output: the directory to write (default: ``<stem>.graphs`` beside the input).
        smiles_column: the SMILES column; detected from common names when None.
        vocab: feature vocabulary name or object.
        workers: processes to use; the output is the same for any number.
        shard_rows: input rows per shard (bounds memory).
        overwrite: replace an existing featurized dataset at ``output``.
        progress: show a progress bar.

    Returns:
        counts of rows read, featurized and rejected, and where everything went.

    Raises:
        InputError: unreadable input, no SMILES column, or ``output`` exists without ``overwrite``.
    """
    from tqdm.auto import tqdm

    source = open_table(path, smiles_column)
    vocab = get_vocabulary(vocab)
    output = Path(output) if output is not None else default_output(source.path)
    if output.exists() and not overwrite:
        raise InputError(f"{output} already exists; pass --overwrite to replace it, or choose --out")
    partial = output.with_name(output.name + f".partial-{os.getpid()}")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    report = FeaturizeReport(output=output, rejects=output / REJECTS)
    shards = []
    try:
        with (
            Featurizer(vocab, workers=workers) as featurize,
            tqdm(unit="mol", desc="featurize", disable=None if progress else True) as bar,
            open(partial / REJECTS, "w", newline="", encoding="utf-8") as rejects,
        ):
            pd.DataFrame(columns=[ROW_NUMBER, "reason", *source.columns]).to_csv(rejects, index=False)
            frames: deque[pd.DataFrame] = deque()  # read but not yet written: two at most

            def smiles_of_each_frame() -> Iterator[list[str]]:
                for frame in iter_table(source, chunk_rows=shard_rows):
                    frames.append(frame)
                    yield frame[source.smiles_column].tolist()

            for number, result in enumerate(featurize.stream(smiles_of_each_frame(), on_chunk=bar.update)):
                frame = frames.popleft()
                indices = result.indices - report.read  # positions within this frame
                shard = f"shard-{number:05d}.npz"
                _write_shard(partial / shard, result.graphs, frame.iloc[indices], source)
                shards.append({"file": shard, "graphs": len(indices), "rows": len(frame)})
                failures = [(f.index - report.read, f.reason) for f in result.failures]
                _record_rejects(report, rejects, frame, failures, source.smiles_column)
                report.read += len(frame)
                report.featurized += len(indices)
    except BaseException:  # e.g. a malformed row part-way: leave no half-written directory behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "vocabulary": vocab.name,
        "source": str(source.path),
        "source_sha256": file_sha256(source.path),
        "smiles_column": source.smiles_column,
        "columns": list(source.columns),
        "counts": {"read": report.read, "featurized": report.featurized, "rejected": report.rejected},
        "reject_reasons": dict(report.reasons),
        "shards": shards,
        "created_by": run_metadata(),
    }
    write_json_atomic(partial / META, meta)
    replace_directory(partial, output)
    return report


def _write_shard(path: Path, graphs: GraphArrays, kept: pd.DataFrame, source: TableSource) -> None:
    arrays: dict[str, np.ndarray] = dict(graphs.arrays())
    if len(graphs.bonds) == 0 or graphs.bonds.max() < np.iinfo(np.int16).max:
        arrays["bonds"] = graphs.bonds.astype(np.int16)  # local atom indices: 2 bytes suffice
    arrays["row"] = kept[ROW_NUMBER].to_numpy(dtype=np.int64)
    for position, column in enumerate(source.columns):
        arrays[f"column_{position}"], arrays[f"column_{position}_ptr"] = encode_text(kept[column].tolist())
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def encode_text(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings -> (UTF-8 bytes [total_bytes] uint8, offsets [len + 1]): compact and pickle-free."""
    encoded = [value.encode("utf-8") for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def decode_text(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    """Inverse of :func:`encode_text`."""
    blob = data.tobytes()
    return [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def _record_rejects(
    report: FeaturizeReport, handle: Any, frame: pd.DataFrame, failures: list[tuple[int, str]], smiles_column: str
) -> None:
    if not failures:
        return
    positions, reasons = zip(*failures)
    rejected = frame.iloc[list(positions)].copy()
    rejected.insert(1, "reason", reasons, allow_duplicates=True)  # the input may have a 'reason' too
    write_csv(rejected, handle, header=False)
    report.rejected += len(rejected)
    report.reasons.update(reason_category(r) for r in reasons)
    if report.first_reject is None:
        first = rejected.iloc[0]
        report.first_reject = (int(first[ROW_NUMBER]), str(first[smiles_column]), reasons[0])


@dataclass
class FeaturizedTable:
    """A featurized dataset loaded from disk.

    Attributes:
        graphs: every featurized molecule, in input order.
        rows: [num_graphs] the input row number of each graph.
        columns: the carried input columns of each graph, as text (SMILES included).
        meta: the dataset's ``meta.json``.
    """

    graphs: GraphArrays
    rows: np.ndarray
    columns: pd.DataFrame
    meta: dict[str, Any]

    @property
    def vocabulary(self) -> Vocabulary:
        """The vocabulary the graphs were encoded with."""
        return get_vocabulary(self.meta["vocabulary"])

    @property
    def smiles(self) -> list[str]:
        """The SMILES of each graph."""
        return self.columns[self.meta["smiles_column"]].tolist()

    def dataset(self, targets: list[str] | None = None) -> GraphDataset:
        """A GraphDataset (ids = row numbers), with labels from ``targets`` columns if given.

        Empty cells are missing labels (NaN).

        Raises:
            InputError: a target column that does not exist or holds non-numeric text.
        """
        from molft.data.dataset import GraphDataset  # torch and PyG: only when a dataset is built

        y = None
        if targets:
            y = np.stack([_numeric(self.columns, name, self.meta["source"], self.rows) for name in targets], axis=1)
        return GraphDataset(self.graphs, y=y, ids=self.rows)


def _numeric(columns: pd.DataFrame, name: str, source: str, rows: np.ndarray) -> np.ndarray:
    if name not in columns:
        raise InputError(f"{source}: no column {name!r}. Columns found: {', '.join(columns.columns)}.")
    text = columns[name].str.strip()
    values = pd.to_numeric(text.where(text != "", None), errors="coerce")
    bad = values.isna() & (text != "")
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{source}: column {name!r} holds non-numeric values (first: {text.iloc[first]!r}) at row {rows[first]}"
        )
    with np.errstate(over="ignore"):
        labels = values.to_numpy(dtype=np.float32)
    infinite = np.isinf(labels)
    if infinite.any():  # 'inf', '-Infinity', or beyond float32's range, e.g. '1e39'
        first = int(np.flatnonzero(infinite)[0])
        raise InputError(
            f"{source}: column {name!r} holds a value that is not a finite number ({text.iloc[first]!r} at row "
            f"{rows[first]}); labels must be finite (leave the cell empty for a missing label)"
        )
    return labels


def load_featurized(path: str | Path, text: bool = True, max_graphs: int | None = None) -> FeaturizedTable:
    """Load a featurized dataset directory written by :func:`featurize_file` (no unpickling).

    Args:
        path: the directory.
        text: also decode the carried columns (SMILES, ids, labels); pretraining needs the
            graphs only and saves the memory of millions of Python strings with ``text=False``
            (``columns`` then has no columns).
        max_graphs: read only the shards that hold the first this many graphs (all of them are
            returned; the caller selects), so a corpus prefix costs only its own memory.

    Raises:
        InputError: not a featurized dataset, or a damaged one.
    """
    path = Path(path)
    meta_path = path / META
    if not meta_path.is_file():
        raise InputError(f"{path}: not a featurized dataset (no {META}); make one with 'molft featurize'")
    meta = read_json(meta_path)
    if not isinstance(meta, dict):
        raise InputError(f"{meta_path}: not a featurized dataset's {META} (a JSON {type(meta).__name__})")
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise InputError(f"{path}: unsupported format {meta.get('format')!r} v{meta.get('version')!r}")
    parts, rows, columns = [], [], []
    for shard in meta["shards"]:
        if max_graphs is not None and sum(map(len, parts)) >= max_graphs:
            break
        try:
            with np.load(path / shard["file"], allow_pickle=False) as arrays:
                parts.append(GraphArrays(**{key: arrays[key] for key in _GRAPH_KEYS}))
                rows.append(arrays["row"])
                names = meta["columns"] if text else []
                columns.append(
                    pd.DataFrame(
                        {
                            name: decode_text(arrays[f"column_{i}"], arrays[f"column_{i}_ptr"])
                            for i, name in enumerate(names)
                        },
                        index=pd.RangeIndex(len(arrays["row"])),
                        dtype=str,  # text even when the shard holds no rows (a header-only table)
                    )
                )
        except (OSError, ValueError, KeyError) as error:
            raise InputError(f"{path / shard['file']}: cannot be read ({error})") from None
    if not parts:
        parts = [Featurizer(meta["vocabulary"])([]).graphs]
    return FeaturizedTable(
        graphs=GraphArrays.concat(parts),
        rows=np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
        columns=(
            pd.concat(columns, ignore_index=True)
            if columns
            else pd.DataFrame(columns=meta["columns"] if text else [], dtype=str)
        ),
        meta=meta,
    )
