"""Downloads: checksum, cache and mirror, exercised against a web server on loopback."""

from __future__ import annotations

import functools
import gzip
import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from molft.data.download import fetch, mirrored
from molft.data.registry import get_dataset_info, load_dataset
from molft.errors import InputError


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "site"``; yields (root folder, base URL)."""
    root = tmp_path / "site"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_checks_the_checksum_and_keeps_nothing_wrong(server, tmp_path):
    root, base = server
    payload = b"smiles,y\nCCO,1\n" * 100
    (root / "a.csv").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()

    with pytest.raises(InputError, match="expected 0000"):
        fetch(f"{base}/a.csv", tmp_path / "got" / "a.csv", sha256="0000" + good[4:], progress=False)
    assert not list((tmp_path / "got").iterdir())  # neither the file nor a .part is left

    path = fetch(f"{base}/a.csv", tmp_path / "got" / "a.csv", sha256=good, progress=False)
    assert path.read_bytes() == payload
    (root / "a.csv").unlink()  # a second call is served from the verified copy
    assert fetch(f"{base}/a.csv", tmp_path / "got" / "a.csv", sha256=good, progress=False) == path


def test_fetch_says_what_to_do_when_the_server_cannot_be_reached(server, tmp_path):
    _, base = server
    with pytest.raises(InputError, match="could not download .*put the file at"):
        fetch(f"{base}/missing.csv", tmp_path / "x.csv", sha256=None, progress=False)
    assert not (tmp_path / "x.csv").exists()


def test_a_mirror_rewrites_every_address():
    assert mirrored("https://raw.githubusercontent.com/o/r/abc/f.csv", "http://127.0.0.1:9/m/") == (
        "http://127.0.0.1:9/m/raw.githubusercontent.com/o/r/abc/f.csv"
    )
    assert mirrored("https://x.org/f.csv", "") == "https://x.org/f.csv"


def test_a_missing_dataset_is_downloaded_through_a_mirror_and_loads(server, tmp_path, monkeypatch, data_dir):
    """FreeSolv served on loopback at its pinned address, with the bytes the registry's sha256 expects."""
    root, base = server
    info = get_dataset_info("freesolv")
    original = gzip.decompress((data_dir / info.file).read_bytes())  # the pinned file, byte for byte
    target = root / mirrored(info.download_url, "x")[2:]
    target.parent.mkdir(parents=True)
    target.write_bytes(original)
    monkeypatch.setenv("MOLFT_DOWNLOAD_MIRROR", base)
    empty = tmp_path / "no-data"
    empty.mkdir()

    with pytest.raises(InputError, match="--download"):
        load_dataset("freesolv", data_dir=empty, cache_dir=tmp_path / "cache")
    loaded = load_dataset("freesolv", data_dir=empty, cache_dir=tmp_path / "cache", download=True)

    assert len(loaded.smiles) == 642 and loaded.split["train"].size == 513
    assert (tmp_path / "cache" / "downloads" / "moleculenet" / "SAMPL.csv").read_bytes() == original
