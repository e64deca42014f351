"""Seeds, device choice, the data directory and run metadata: the only global-state helpers.

torch and PyG are imported inside the functions that use them, so that importing this module
(which featurizing and the command line do) stays light.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DATA_DIR_ENV = "MOLFT_DATA_DIR"
CACHE_DIR_ENV = "MOLFT_CACHE_DIR"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (PyG's helper), for reproducible runs."""
    from torch_geometric import seed_everything as pyg_seed_everything

    pyg_seed_everything(seed)


def rng_state() -> dict[str, Any]:
    """The torch random state (CPU, and every CUDA device when present), for a checkpoint."""
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from :func:`rng_state`, so a resumed run draws the same numbers."""
    import torch

    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to use: the one asked for (a name or a ``torch.device``), else ``cuda`` when present, else ``cpu``."""
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_data_dir() -> Path | None:
    """Where corpora live: ``$MOLFT_DATA_DIR``, else ``../shared/data`` beside the project if it exists."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    candidate = PROJECT_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def default_cache_dir() -> Path:
    """Where molft caches featurized datasets and corpora: ``$MOLFT_CACHE_DIR``, else ``~/.cache/molft``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "molft").expanduser()


def git_sha() -> str | None:
    """The project's git commit, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _version(distribution: str) -> str | None:
    """An installed package's version, read from its metadata (without importing it)."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def run_metadata(**extra: Any) -> dict[str, Any]:
    """Command line, versions, git SHA and device: what ``run.json`` records.

    Versions come from package metadata, so a run that never loads torch (featurizing) does not
    load it here either; ``cuda`` names the GPU when the run has loaded torch (a run that has not
    cannot have used one) and is None otherwise.
    """
    import rdkit

    from molft import __version__

    torch = sys.modules.get("torch")
    return {
        "command": " ".join(sys.argv),
        "molft": __version__,
        "torch": torch.__version__ if torch is not None else _version("torch"),
        "torch_geometric": _version("torch_geometric"),
        "rdkit": rdkit.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_sha": git_sha(),
        "cuda": torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else None,
        **extra,
    }


def read_json(path: str | Path) -> Any:
    """Read a JSON file a user may have handed us; anything that is not JSON is an InputError.

    A pickle or other binary in place of the JSON file is refused here, never unpickled.
    """
    from molft.errors import InputError

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None


def exit_on_terminate() -> None:
    """Turn SIGTERM (``kill``, a scheduler's stop) into ``SystemExit(143)`` so that ``finally`` blocks
    run: child processes started with :func:`subprocess.run` are killed and temporary folders removed
    instead of being left behind.

    Only in this process: a process forked from it (a multiprocessing pool's worker) is born with
    SIGTERM's default action, so ``Pool.terminate`` kills it even when it is blocked in C code, where
    a Python-level handler never runs (a worker stuck that way once hung the test suite)."""
    global _TERMINATE_HANDLER

    def _exit(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    if _TERMINATE_HANDLER is None:
        os.register_at_fork(before=lambda: _set_sigterm(signal.SIG_DFL),
                            after_in_parent=lambda: _set_sigterm(_TERMINATE_HANDLER))
    _TERMINATE_HANDLER = _exit
    signal.signal(signal.SIGTERM, _exit)


#: the SIGTERM handler :func:`exit_on_terminate` installed (None: not called in this process)
_TERMINATE_HANDLER: Any = None


def _set_sigterm(handler: Any) -> None:
    """Set SIGTERM's handler around a fork; only the main thread may (a pool forks from its own thread)."""
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
