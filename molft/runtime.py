"""Seeds, device choice, the data directory and run metadata: the only global-state helpers."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from torch_geometric import seed_everything as _pyg_seed_everything

DATA_DIR_ENV = "MOLFT_DATA_DIR"
CACHE_DIR_ENV = "MOLFT_CACHE_DIR"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (PyG's helper), for reproducible runs."""
    _pyg_seed_everything(seed)


def rng_state() -> dict[str, Any]:
    """The torch random state (CPU, and every CUDA device when present), for a checkpoint."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a state from :func:`rng_state`, so a resumed run draws the same numbers."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


def resolve_device(device: str | None = None) -> torch.device:
    """The device to use: the one asked for, else ``cuda`` when present, else ``cpu``."""
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


def run_metadata(**extra: Any) -> dict[str, Any]:
    """Command line, versions, git SHA and device: what ``run.json`` records."""
    import rdkit
    import torch_geometric

    from molft import __version__

    return {
        "command": " ".join(sys.argv),
        "molft": __version__,
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "rdkit": rdkit.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_sha": git_sha(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
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
    instead of being left behind."""

    def _exit(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
