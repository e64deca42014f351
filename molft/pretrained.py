"""Where pretrained encoders come from: molft's shipped weights, a directory, or none."""

from __future__ import annotations

from pathlib import Path

from molft.errors import InputError
from molft.runtime import PROJECT_ROOT

#: shipped encoders, by name, under the project's data/ folder; ``default`` was ``attrmask-descfp`` until 2026-12-04
SHIPPED = {
    "default": "pretrained/gin-descfp-zinc-full",
    "attrmask-descfp": "pretrained/gin-attrmask-descfp-zinc",
    "attrmask-descfp-500k": "pretrained/gin-attrmask-descfp-zinc500k",
    "attrmask-descfp-broad": "pretrained/gin-attrmask-descfp-broad",
    "descfp-zinc-full": "pretrained/gin-descfp-zinc-full",
    "attrmask": "pretrained/gin-attrmask-zinc",
    "contextpred": "pretrained/gin-contextpred-zinc",
    "graphmae": "pretrained/gin-graphmae-zinc",
    "attrmask-contextpred": "pretrained/gin-attrmask-contextpred-zinc",
}
SHIPPED_DIR = PROJECT_ROOT / "data"


def shipped_encoders() -> dict[str, Path]:
    """The shipped pretrained encoders present in this installation, by name."""
    return {name: SHIPPED_DIR / rel for name, rel in SHIPPED.items() if (SHIPPED_DIR / rel / "config.json").is_file()}


def resolve_pretrained(pretrained: str | Path | None) -> Path | None:
    """Turn ``--pretrained`` into a directory: a shipped name, a path, or None for ``none``.

    Raises:
        InputError: an unknown name or a path that is not a pretrained encoder directory.
    """
    if pretrained is None or str(pretrained).lower() == "none":
        return None
    if str(pretrained) in SHIPPED:
        path = SHIPPED_DIR / SHIPPED[str(pretrained)]
        if not (path / "config.json").is_file():
            raise InputError(
                f"the shipped encoder {pretrained!r} is missing from {path}; reinstall molft from its "
                "repository (the weights live in data/), or pass --pretrained none"
            )
        return path
    path = Path(pretrained)
    if not path.is_dir() or not (path / "config.json").is_file():
        names = ", ".join(SHIPPED)
        raise InputError(
            f"--pretrained {pretrained}: not a pretrained encoder directory (expected config.json and "
            f"model.safetensors inside); use one of: {names}, none, or a directory from 'molft pretrain'"
        )
    return path
