"""``molft embed``: graph embeddings from a pretrained or fine-tuned encoder, for scikit-learn and friends.

``layers`` chooses what is pooled: ``"last"`` (the encoder's output, what fine-tuning reads) or
``"all"`` (every layer's output, the atom embedding included, mean-pooled and concatenated: jumping
knowledge "concat", ``(num_layers + 1) * hidden_dim`` columns, no extra weights). Frozen, the lower
layers keep local chemistry that the last layer, trained for the pretraining targets, has mixed
away: on the encoder probe at 1,000 labels the default encoder's linear probe improves on all five
tasks with ``"all"`` (``benchmarks/results/encoder_probe_layers/encoder_probe.md``).

``pooling`` chooses how atoms become one molecule: ``"mean"`` (what pretraining and fine-tuning
read) or several of mean, sum and max concatenated (``"mean+max"``). Mean pooling forgets how large
a molecule is (what solubility depends on) and averages a rare group away; sum and max keep them.
A readout is written ``LAYERS[:POOLING]`` (``"all:mean+max"``); :data:`READOUT_CHOICES` are the ones
the encoder probe's ``@chosen`` chooses among on validation: for the default encoder's linear probe
at 1,000 labels a better feature than the last layer on BBBP, ESOL, Lipophilicity and the built-in
assay (``benchmarks/results/encoder_probe_readout/encoder_probe.md``). Instant mode reads
``"last"``: chosen per assay, the richer readouts did not make ``--model auto`` better
(:mod:`molft.finetuning.frozen`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from torch_geometric.loader import DataLoader

from molft.checkpoints import load_encoder
from molft.data.dataset import GraphDataset
from molft.data.tables import ROW_NUMBER, read_table
from molft.errors import InputError
from molft.io import atomic_write
from molft.featurize.graph import featurize_many
from molft.finetuning.predict import FINETUNE_JSON, FinetunedModel
from molft.models.encoder import GINEncoder
from molft.models.heads import PropertyModel, pooling_parts
from molft.pretrained import resolve_pretrained
from molft.runtime import resolve_device
from molft.training import predict_batches


#: what ``embed`` pools: the encoder's output, or every layer's output concatenated
LAYERS = {"last": None, "all": "concat"}
#: the readouts (``LAYERS[:POOLING]``) a linear model on a frozen encoder may choose among on validation
READOUT_CHOICES = ("last", "all", "all:mean+sum", "all:mean+max")


def parse_readout(readout: str) -> tuple[str, str]:
    """``"LAYERS[:POOLING]"`` (``"all:mean+max"``; pooling ``mean`` when omitted) -> (layers, pooling).

    Raises:
        InputError: unknown layers or pooling.
    """
    layers, _, pooling = str(readout).partition(":")
    layers, pooling = layers.strip(), pooling.strip() or "mean"
    if layers not in LAYERS:
        raise InputError(f"unknown readout {readout!r}: the layers must be one of {', '.join(LAYERS)}")
    pooling_parts(pooling)
    return layers, pooling


def readout_model(encoder: GINEncoder, readout: str, *, num_tasks: int = 1,
                  embedding_clip: float | None = None) -> PropertyModel:
    """A :class:`PropertyModel` (linear head) whose :meth:`~PropertyModel.embed` is ``readout`` of ``encoder``."""
    layers, pooling = parse_readout(readout)
    return PropertyModel(read_layers(encoder, layers), num_tasks=num_tasks, pooling=pooling,
                         embedding_clip=embedding_clip)


def read_layers(encoder: GINEncoder, layers: str) -> GINEncoder:
    """``encoder`` set to output ``layers`` (:data:`LAYERS`); ``"last"`` leaves it as configured.

    Raises:
        InputError: unknown ``layers``.
    """
    if layers not in LAYERS:
        raise InputError(f"unknown layers {layers!r}; choose one of: {', '.join(LAYERS)}")
    if LAYERS[layers] is not None:
        encoder.config = replace(encoder.config, jk=LAYERS[layers])
    return encoder


def _embedder(model: str | Path, device, pooling: str | None) -> tuple[PropertyModel, str]:
    path = Path(model)
    if (path / FINETUNE_JSON).is_file():
        finetuned = FinetunedModel.load(path, device)
        if not finetuned.members:
            raise InputError(f"{path}: this model has no GNN member to embed with (it was trained with --model "
                             f"{finetuned.config.get('model', {}).get('choice')}); use a pretrained encoder instead")
        member = finetuned.members[0]
        if pooling is not None:
            member = PropertyModel(member.encoder, num_tasks=1, pooling=pooling).to(device).eval()
        return member, finetuned.vocabulary
    directory = resolve_pretrained(model)
    if directory is None:
        raise InputError("embed needs an encoder: a shipped name, a pretrained or a fine-tuned directory")
    encoder, _ = load_encoder(directory)
    return PropertyModel(encoder, num_tasks=1, pooling=pooling or "mean").to(device).eval(), encoder.config.vocabulary


def embed(
    model: str | Path,
    table: str | Path,
    out: str | Path,
    *,
    smiles_column: str | None = None,
    workers: int = 1,
    device: str | None = None,
    progress: bool = True,
    layers: str = "last",
    pooling: str | None = None,
) -> tuple[int, int]:
    """Write one embedding per input row to ``out`` (.csv or .npy); failed rows get NaN.

    ``.csv`` holds ``row``, the SMILES, ``error`` and ``emb_0..emb_{d-1}``; ``.npy`` holds the
    [num_rows, d] float32 matrix in input order (save without pickle; read with
    ``np.load(path, allow_pickle=False)``).

    Args:
        model: ``"default"``, a pretrained encoder directory, or a fine-tuned model directory.
        layers: ``"last"`` (the encoder's output) or ``"all"`` (every layer's, concatenated).
        pooling: ``"mean"``, ``"sum"``, ``"max"`` or several joined by ``+`` (``"mean+max"``); None: the
            model's own (mean for a pretrained encoder).

    Returns:
        (rows embedded, rows failed).
    """
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".npy"):
        raise InputError(f"{out}: the output must end in .csv or .npy")
    device_ = resolve_device(device)
    network, vocabulary = _embedder(model, device_, pooling)
    read_layers(network.encoder, layers)
    source, frame = read_table(table, smiles_column)
    result = featurize_many(frame[source.smiles_column].tolist(), vocabulary, workers=workers, progress=progress)
    vectors = predict_batches(network.embed, DataLoader(GraphDataset(result.graphs), batch_size=256), device_)
    matrix = np.full((len(frame), network.embedding_dim), np.nan, dtype=np.float32)
    if len(result.indices):
        matrix[result.indices] = vectors
    with atomic_write(out) as tmp:
        if out.suffix.lower() == ".npy":
            np.save(tmp, matrix, allow_pickle=False)
        else:
            errors = np.full(len(frame), "", dtype=object)
            for failure in result.failures:
                errors[failure.index] = failure.reason
            columns = pd.DataFrame(matrix, columns=[f"emb_{i}" for i in range(matrix.shape[1])])
            head = pd.DataFrame({ROW_NUMBER: frame[ROW_NUMBER], "smiles": frame[source.smiles_column], "error": errors})
            pd.concat([head, columns], axis=1).to_csv(tmp, index=False, float_format="%.6g")
    return len(result.indices), len(result.failures)
