"""Save and load models as directories of JSON and safetensors; import pretrain-gnns weights.

A molft model is a directory::

    my-model/
      config.json         format, kind, encoder (and head) config, run metadata, your extras
      model.safetensors   the weights (``safetensors.torch.save_model``)

Loading never unpickles. A pickle-based ``.pt``/``.pth``/``.bin`` file is read only with
``torch.load(weights_only=True)``, which cannot run code; a file that needs more is refused
with :class:`~molft.errors.UnsafeFileError`.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from molft.errors import InputError, UnsafeFileError
from molft.models.encoder import EncoderConfig, GINEncoder
from molft.models.heads import HeadConfig, PropertyModel
from molft.io import atomic_write, write_json_atomic
from molft.runtime import read_json, run_metadata

FORMAT = "molft-model"
FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
ENCODER = "encoder"
PROPERTY_MODEL = "property_model"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")
_TOP_LEVEL_KEYS = ("format", "format_version", "kind", "encoder", "head", "metadata", "extra")


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write a resumable training state (tensors and plain types only) through a temp file and a rename."""
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a state written by :func:`save_training_state` with ``torch.load(weights_only=True)``.

    Raises:
        InputError: the file holds anything but tensors and plain types (it is never unpickled).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses anything that could run code
        raise InputError(f"{path}: cannot be read safely ({type(error).__name__}: {error})") from None


def save_encoder(
    encoder: GINEncoder, directory: str | Path, *, extra: dict[str, Any] | None = None, overwrite: bool = False
) -> Path:
    """Save an encoder as ``directory/config.json`` + ``directory/model.safetensors``.

    Args:
        encoder: the encoder.
        directory: where to write (created if needed).
        extra: JSON-able facts to keep beside the config (objectives, corpus hash, epochs...).
        overwrite: replace a model already in ``directory``.

    Returns:
        the directory.

    Raises:
        InputError: if ``directory`` already holds a model and ``overwrite`` is False.
    """
    config = _config(ENCODER, encoder.config.to_dict(), None, extra)
    return _save(encoder, config, directory, overwrite)


def save_model(
    model: PropertyModel, directory: str | Path, *, extra: dict[str, Any] | None = None, overwrite: bool = False
) -> Path:
    """Save a property model (encoder, pooling and head) as a model directory.

    Args:
        model: the model.
        directory: where to write (created if needed).
        extra: JSON-able facts to keep beside the config (task names, target scaling...).
        overwrite: replace a model already in ``directory``.

    Returns:
        the directory.

    Raises:
        InputError: if ``directory`` already holds a model and ``overwrite`` is False.
    """
    config = _config(PROPERTY_MODEL, model.encoder.config.to_dict(), model.head_config.to_dict(), extra)
    return _save(model, config, directory, overwrite)


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> tuple[GINEncoder, dict[str, Any]]:
    """Load an encoder saved by :func:`save_encoder`, or the encoder of a saved property model.

    Args:
        path: a model directory (or its ``model.safetensors``).
        device: where to put the weights.

    Returns:
        the encoder in eval mode, and the parsed ``config.json``.

    Raises:
        UnsafeFileError: if ``path`` is a pickle that ``torch.load(weights_only=True)`` refuses.
        InputError: if the directory is not a valid molft model, or config and weights disagree.
    """
    directory, config = _read_directory(path)
    encoder = GINEncoder(EncoderConfig.from_dict(config["encoder"]))
    weights_file, state = _weights(directory)
    if config["kind"] == PROPERTY_MODEL:
        state = state if state is not None else _read_safetensors(weights_file)
        state = {key[len("encoder.") :]: value for key, value in state.items() if key.startswith("encoder.")}
    _load_weights(encoder, weights_file, state, device)
    return encoder.eval(), config


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[PropertyModel, dict[str, Any]]:
    """Load a property model saved by :func:`save_model`.

    Args:
        path: a model directory (or its ``model.safetensors``).
        device: where to put the weights.

    Returns:
        the model in eval mode, and the parsed ``config.json``.

    Raises:
        UnsafeFileError: if ``path`` is a pickle that ``torch.load(weights_only=True)`` refuses.
        InputError: if the directory is not a valid molft property model, or config and weights
            disagree.
    """
    directory, config = _read_directory(path)
    if config["kind"] != PROPERTY_MODEL:
        raise InputError(
            f"{directory}: holds a {config['kind']!r}, not a property model; load it with load_encoder "
            "and wrap it in PropertyModel(encoder, num_tasks)"
        )
    head = HeadConfig.from_dict(config["head"])
    model = PropertyModel(
        GINEncoder(EncoderConfig.from_dict(config["encoder"])), head.num_tasks, head.pooling, head.head_hidden,
        head.molecule_features, embedding_clip=head.embedding_clip,
    )
    weights_file, state = _weights(directory)
    _load_weights(model, weights_file, state, device)
    return model.eval(), config


# pretrain-gnns (chem/model.py, class GNN) key -> molft GINEncoder key.
_PRETRAIN_GNNS_KEYS = [
    (re.compile(r"^x_embedding(\d+)\.weight$"), lambda m: f"atom_encoder.embeddings.{int(m[1]) - 1}.weight"),
    (re.compile(r"^gnns\.(\d+)\.mlp\.(0|2)\.(weight|bias)$"), lambda m: f"convs.{m[1]}.mlp.{m[2]}.{m[3]}"),
    (
        re.compile(r"^gnns\.(\d+)\.edge_embedding(\d+)\.weight$"),
        lambda m: f"convs.{m[1]}.bond_encoder.embeddings.{int(m[2]) - 1}.weight",
    ),
    (
        re.compile(r"^batch_norms\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$"),
        lambda m: f"batch_norms.{m[1]}.{m[2]}",
    ),
]


def import_pretrain_gnns(path: str | Path, jk: str = "last", dropout: float = 0.0) -> GINEncoder:
    """Turn a published ``snap-stanford/pretrain-gnns`` GIN checkpoint into a ``hu2020`` encoder.

    The ``.pth`` file is read with ``torch.load(weights_only=True)`` only. Layer count and width
    come from the weights. Embedding tables of molft's vocabulary that have more rows than the
    published ones (chirality ``CHI_OTHER``, bond type and bond direction ``other``) get zero
    rows there, so those values add nothing to an embedding.

    Args:
        path: the ``.pth`` file (e.g. ``chem/model_gin/supervised_contextpred.pth``).
        jk: jumping knowledge for the new encoder (not stored in the file; their default is ``"last"``).
        dropout: dropout for the new encoder.

    Returns:
        the encoder, in eval mode.

    Raises:
        UnsafeFileError: if the file is a pickle that ``weights_only=True`` refuses.
        InputError: if it is not a pretrain-gnns GIN state dict, or a shape does not fit.
    """
    path = Path(path)
    state = _torch_load_safely(path)
    mapped: dict[str, Tensor] = {}
    unexpected = []
    for key, value in state.items():
        for pattern, target in _PRETRAIN_GNNS_KEYS:
            match = pattern.match(key)
            if match:
                mapped[target(match)] = value
                break
        else:
            unexpected.append(key)
    if unexpected or "atom_encoder.embeddings.0.weight" not in mapped:
        raise InputError(
            f"{path}: not a pretrain-gnns GIN checkpoint (chem/model.py GNN state dict); unexpected keys: "
            f"{_preview(unexpected) or 'none'}, found: {_preview(list(state))}"
        )
    num_layers = len({key.split(".")[1] for key in mapped if key.startswith("convs.")})
    hidden_dim = mapped["atom_encoder.embeddings.0.weight"].shape[1]
    encoder = GINEncoder(
        EncoderConfig(vocabulary="hu2020", num_layers=num_layers, hidden_dim=hidden_dim, jk=jk, dropout=dropout)
    )
    target_state = encoder.state_dict()
    missing = [key for key in target_state if key not in mapped and not key.endswith("num_batches_tracked")]
    if missing:
        raise InputError(f"{path}: pretrain-gnns checkpoint lacks {_preview(missing)} (as molft names them)")
    problems = []
    for key, value in mapped.items():
        expected = target_state.get(key)
        if expected is None:
            problems.append(f"{key}: no such parameter in a {num_layers}-layer encoder")
        elif value.shape == expected.shape:
            target_state[key] = value
        elif value.dim() == 2 and value.shape[1] == expected.shape[1] and value.shape[0] < expected.shape[0]:
            padded = torch.zeros_like(expected)
            padded[: value.shape[0]] = value
            target_state[key] = padded
        else:
            problems.append(f"{key}: {list(value.shape)} in the file, {list(expected.shape)} in molft")
    if problems:
        raise InputError(f"{path}: shapes do not fit the hu2020 encoder: " + "; ".join(problems[:5]))
    encoder.load_state_dict(target_state, strict=True)
    return encoder.eval()


def _config(kind: str, encoder: dict, head: dict | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "encoder": encoder}
    if head is not None:
        config["head"] = head
    config["metadata"] = run_metadata()
    config["extra"] = dict(extra or {})
    return config


def _save(module: nn.Module, config: dict[str, Any], directory: str | Path, overwrite: bool) -> Path:
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: exists and is not a directory; a molft model is a directory")
    if not overwrite and ((directory / CONFIG).exists() or (directory / WEIGHTS).exists()):
        raise InputError(f"{directory}: already holds a model; pass overwrite=True to replace it")
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_write(directory / WEIGHTS) as tmp:
        safetensors.torch.save_model(module, str(tmp))
    write_json_atomic(directory / CONFIG, config)  # last: a directory with a config is complete
    return directory


def _read_directory(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """Resolve ``path`` to a model directory and return it with its validated config."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix == ".safetensors":
            path = path.parent
        else:
            state = _torch_load_safely(path)  # refuses pickles that would run code
            hint = (
                "; it looks like a pretrain-gnns checkpoint: use import_pretrain_gnns"
                if any(str(key).startswith("x_embedding") for key in state)
                else ""
            )
            raise InputError(
                f"{path}: a bare weights file cannot rebuild a model; a molft model is a directory with "
                f"{CONFIG} and {WEIGHTS}{hint}"
            )
    config_file = path / CONFIG
    if not config_file.is_file():
        raise InputError(f"{path}: no {CONFIG}; a molft model directory holds {CONFIG} and {WEIGHTS}")
    config = read_json(config_file)
    _validate_config(config, config_file)
    return path, config


def _validate_config(config: Any, where: Path) -> None:
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        found = config.get("format") if isinstance(config, dict) else type(config).__name__
        raise InputError(f"{where}: not a molft model config (format {found!r}, expected {FORMAT!r})")
    unknown = sorted(set(config) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(_TOP_LEVEL_KEYS)}"
            " (put your own facts under 'extra')"
        )
    if config.get("format_version") != FORMAT_VERSION:
        raise InputError(
            f"{where}: format_version {config.get('format_version')!r}; this molft reads version {FORMAT_VERSION}"
        )
    if config.get("kind") not in (ENCODER, PROPERTY_MODEL):
        raise InputError(f"{where}: kind {config.get('kind')!r}; expected {ENCODER!r} or {PROPERTY_MODEL!r}")
    if "encoder" not in config:
        raise InputError(f"{where}: no 'encoder' section")
    try:
        EncoderConfig.from_dict(config["encoder"])
        if config["kind"] == PROPERTY_MODEL:
            if "head" not in config:
                raise InputError("a property model needs a 'head' section")
            HeadConfig.from_dict(config["head"])
    except InputError as error:
        raise InputError(f"{where}: {error}") from None


def _weights(directory: Path) -> tuple[Path, dict[str, Tensor] | None]:
    """The weights file of a model directory, and its tensors when it is a (safely read) pickle."""
    weights = directory / WEIGHTS
    if weights.is_file():
        return weights, None
    legacy = sorted(p for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES and p.is_file())
    if len(legacy) == 1:
        return legacy[0], _torch_load_safely(legacy[0])
    found = f" (found {', '.join(p.name for p in legacy)}: which one is ambiguous)" if legacy else ""
    raise InputError(f"{directory}: no {WEIGHTS}{found}")


def _torch_load_safely(path: Path) -> dict[str, Tensor]:
    """Read a pickle-based torch file with ``weights_only=True``; never run code from it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeFileError(
            f"{path}: refused; reading it would need full unpickling, which can run arbitrary code "
            f"({str(error).splitlines()[0]}). Only plain tensor state dicts (torch.load(weights_only=True)) "
            "or safetensors are accepted."
        ) from None
    except Exception as error:  # truncated or not a torch file at all
        raise InputError(f"{path}: not a readable torch weights file ({type(error).__name__}: {error})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    return state


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    try:
        return safetensors.torch.load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise InputError(f"{path}: not a readable safetensors file ({error})") from None


def _shapes(path: Path) -> dict[str, list[int]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: list(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise InputError(f"{path}: not a readable safetensors file ({error})") from None


def _load_weights(module: nn.Module, path: Path, state: dict[str, Tensor] | None, device: str | torch.device) -> None:
    """Check the weights' names and shapes against ``module``, then load them strictly."""
    shapes = _shapes(path) if state is None else {key: list(value.shape) for key, value in state.items()}
    expected = {key: list(value.shape) for key, value in module.state_dict().items()}
    missing = [key for key in expected if key not in shapes]
    unexpected = [key for key in shapes if key not in expected]
    mismatched = [
        f"{key} {shapes[key]} (config implies {expected[key]})"
        for key in expected
        if key in shapes and shapes[key] != expected[key]
    ]
    if missing or unexpected or mismatched:
        parts = [
            f"{label}: {_preview(keys)}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched))
            if keys
        ]
        raise InputError(f"{path}: weights do not match {CONFIG} ({'; '.join(parts)})")
    if state is None:
        safetensors.torch.load_model(module, str(path), strict=True, device=str(device))
    else:
        module.load_state_dict(state, strict=True)
        module.to(device)


def _preview(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
