"""Safe writes and JSON Lines: what a crash leaves behind is never half a file."""

from __future__ import annotations

import json
import logging

import pytest

from molft.io import (
    append_jsonl,
    atomic_write,
    complete_directory,
    read_jsonl,
    replace_directory,
    write_json_atomic,
    write_jsonl_atomic,
)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_write(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_the_temporary_keeps_the_suffix_and_parents_are_created(tmp_path):
    path = tmp_path / "deep" / "emb.npy"
    with atomic_write(path) as tmp:
        assert tmp.suffix == ".npy" and tmp.parent == path.parent
        tmp.write_bytes(b"x")
    write_json_atomic(tmp_path / "a.json", {"n": 1})
    assert path.read_bytes() == b"x" and json.loads((tmp_path / "a.json").read_text()) == {"n": 1}


def test_a_directory_swap_always_leaves_one_complete_directory(tmp_path):
    target, new = tmp_path / "checkpoint", tmp_path / "checkpoint.partial"
    for step in (1, 2):
        new.mkdir()
        (new / "state.json").write_text(str(step))
        replace_directory(new, target)
    assert (target / "state.json").read_text() == "2" and not new.exists()
    assert complete_directory(target, "state.json") == target
    target.rename(tmp_path / "checkpoint.old")  # a crash between the two renames of a swap
    assert complete_directory(target, "state.json") == tmp_path / "checkpoint.old"
    assert complete_directory(tmp_path / "nothing", "state.json") is None


def test_torn_lines_are_skipped_with_a_warning_and_appends_start_on_a_fresh_line(tmp_path, caplog):
    path = tmp_path / "runs.jsonl"
    append_jsonl(path, {"run": 1})
    with open(path, "a") as handle:
        handle.write('{"run": 2, "te')  # killed mid-write
    append_jsonl(path, {"run": 3})
    with caplog.at_level(logging.WARNING):
        assert read_jsonl(path) == [{"run": 1}, {"run": 3}]
    assert "line 2 is not complete JSON" in caplog.text
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_a_jsonl_file_can_be_rewritten_whole(tmp_path):
    path = tmp_path / "log.jsonl"
    write_jsonl_atomic(path, [{"step": 1}, {"step": 2}])
    write_jsonl_atomic(path, [r for r in read_jsonl(path) if r["step"] <= 1])
    assert path.read_text() == '{"step": 1}\n'
