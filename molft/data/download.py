"""Downloads with a checksum and a cache: fetch once, verify, never keep a half or wrong file.

Datasets missing from the data directory can be fetched from pinned addresses (a fixed commit,
so the bytes never change) whose sha256 molft knows. ``$MOLFT_DOWNLOAD_MIRROR`` points every
download at a mirror instead (``https://host/path`` becomes ``<mirror>/host/path``), for sites
that reach the internet through one, and for the tests, which serve files on loopback.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from tqdm.auto import tqdm

from molft.data.featurized import file_sha256
from molft.errors import InputError
from molft.io import atomic_write

logger = logging.getLogger(__name__)

MIRROR_ENV = "MOLFT_DOWNLOAD_MIRROR"


def mirrored(url: str, mirror: str | None = None) -> str:
    """``url`` as fetched through ``mirror`` (default ``$MOLFT_DOWNLOAD_MIRROR``; unchanged when unset).

    Example:
        >>> mirrored("https://example.org/data/a.csv", "http://127.0.0.1:8000")
        'http://127.0.0.1:8000/example.org/data/a.csv'
    """
    mirror = os.environ.get(MIRROR_ENV) if mirror is None else mirror
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def fetch(
    url: str, destination: str | Path, *, sha256: str | None, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``destination`` unless a file with the right checksum is already there.

    The bytes go to a temporary file beside ``destination`` (:func:`molft.io.atomic_write`) and
    are renamed into place only once their sha256 matches; a failed or wrong download leaves nothing at ``destination``.

    Args:
        url: the address (rewritten by ``$MOLFT_DOWNLOAD_MIRROR`` when set).
        destination: the file to write.
        sha256: the expected checksum; None accepts any bytes (with a warning naming their hash).
        progress: show a progress bar.
        timeout: seconds to wait for the server.

    Raises:
        InputError: the server cannot be reached or answers with an error, or the checksum differs.
    """
    destination = Path(destination)
    if destination.is_file() and (sha256 is None or file_sha256(destination) == sha256):
        return destination
    source = mirrored(url)
    digest = hashlib.sha256()
    with atomic_write(destination) as partial:  # a failed or corrupt download leaves nothing behind
        try:
            with urllib.request.urlopen(source, timeout=timeout) as response, open(partial, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=destination.name,
                          disable=None if progress else True) as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise InputError(
                f"could not download {source} ({reason}); without a network, put the file at {destination} "
                f"yourself or set ${MIRROR_ENV} to a mirror"
            ) from None
        found = digest.hexdigest()
        if sha256 is not None and found != sha256:
            raise InputError(f"{source}: downloaded bytes have sha256 {found}, expected {sha256}; nothing was kept")
        if sha256 is None:
            logger.warning("%s: no known checksum; downloaded bytes have sha256 %s", source, found)
    return destination
