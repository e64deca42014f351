"""Safe writes and JSON Lines: the one place that writes through a temporary name and a rename.

A crash (or ``kill -9``) never leaves half a file or half a directory under the final name:
every writer here writes beside the target and renames into place (``os.replace`` is atomic on
one file system). Nothing here imports torch, so featurizing and ``--help`` stay light.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed.

    The temporary name keeps the suffix (``x.tmp-<pid>.npy``), so writers that pick a format from
    the suffix (NumPy, matplotlib) still do. Parent folders are created.

    Example:
        >>> with atomic_write("out/table.csv") as tmp:   # doctest: +SKIP
        ...     frame.to_csv(tmp, index=False)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON through :func:`atomic_write`."""
    write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")


def replace_directory(new: str | Path, target: str | Path) -> None:
    """Move the complete directory ``new`` to ``target``, replacing any directory there.

    The old ``target`` is first renamed to ``<target>.old`` and removed only after ``new`` is in
    place, so at every instant one complete directory exists under one of the two names (see
    :func:`complete_directory` to find it after a crash).
    """
    new, target = Path(new), Path(target)
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    if old.exists():
        shutil.rmtree(old)


def complete_directory(target: str | Path, marker: str) -> Path | None:
    """``target`` if it holds ``marker`` (a file written last), else ``<target>.old`` left by a crash
    inside :func:`replace_directory`, else None."""
    target = Path(target)
    for candidate in (target, target.with_name(target.name + ".old")):
        if (candidate / marker).is_file():
            return candidate
    return None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every complete JSON line of ``path`` ([] when it does not exist).

    A line that is not complete JSON (a write torn by a crash, anywhere in the file) is skipped
    with a warning naming its line number; blank lines are ignored.
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s: line %d is not complete JSON (an interrupted write?); ignoring it", path, number)
    return records


def append_jsonl(path: str | Path, record: dict[str, Any], *, fsync: bool = True) -> None:
    """Append one JSON line with a single ``write`` on an ``O_APPEND`` descriptor (then fsync).

    A line torn by a crash is left on its own line: the new record starts on a fresh line, so
    :func:`read_jsonl` loses only the torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=str) + "\n"
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(descriptor).st_size
        if size and os.pread(descriptor, 1, size - 1) != b"\n":
            line = "\n" + line
        os.write(descriptor, line.encode())
        if fsync:
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_jsonl_atomic(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Replace ``path`` with these records, one JSON line each."""
    write_text_atomic(path, "".join(json.dumps(record, default=str) + "\n" for record in records))
