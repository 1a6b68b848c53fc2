"""Checkpoints: one ``.safetensors`` file with the weights and the full configuration as JSON.

Nothing is ever unpickled: weights are read with safetensors, the configuration with ``json``.
Files are written atomically (a temporary file in the same folder, then ``os.replace``), so a
crash mid-save never leaves a half-written checkpoint under the real name.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import nn

from .model import ModelConfig, MultimodalVAE

FORMAT = "mmvae-checkpoint"
VERSION = "1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: missing, corrupt, truncated, foreign or mismatched."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model and the JSON-able records saved beside it."""

    model: MultimodalVAE
    data: dict = field(default_factory=dict)  # dataset name, options, seed, modality specs
    train: dict = field(default_factory=dict)  # TrainConfig
    history: dict = field(default_factory=dict)  # History
    extra: dict = field(default_factory=dict)


def save_checkpoint(
    path: str | os.PathLike,
    model: MultimodalVAE,
    data: Mapping | None = None,
    train: Mapping | None = None,
    history: Mapping | None = None,
    extra: Mapping | None = None,
) -> None:
    """Write ``model`` (weights and configuration) and the given records to ``path`` atomically."""
    from safetensors.torch import save

    path = os.fspath(path)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "config": json.dumps(model.config.to_dict()),
        "data": json.dumps(dict(data or {})),
        "train": json.dumps(dict(train or {})),
        "history": json.dumps(dict(history or {})),
        "extra": json.dumps(dict(extra or {})),
    }
    blob = save(tensors, metadata=metadata)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_checkpoint_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read tensors and metadata, with a clear :class:`CheckpointError` for anything unreadable."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        blob = f.read()
    try:
        tensors = load(blob)
        header_len = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8 : 8 + header_len])
    except (SafetensorError, ValueError, OverflowError, UnicodeDecodeError, MemoryError) as e:
        raise CheckpointError(f"{path}: not a readable mmvae checkpoint (corrupt, truncated or another format: "
                              f"{str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a safetensors file, but not an mmvae checkpoint (no mmvae metadata)")
    if metadata.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {metadata.get('version')!r} is not supported "
                              f"(this mmvae reads version {VERSION})")
    return tensors, metadata


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    encoders: Mapping[str, nn.Module] | None = None,
    decoders: Mapping[str, nn.Module] | None = None,
) -> Checkpoint:
    """Rebuild the model saved in ``path`` and load its weights (pass your own modules if it used
    custom encoders and decoders)."""
    tensors, metadata = read_checkpoint_file(path)
    try:
        records = {k: json.loads(metadata.get(k, "{}")) for k in ("config", "data", "train", "history", "extra")}
        config = ModelConfig.from_dict(records["config"])
        model = MultimodalVAE(config, encoders=encoders, decoders=decoders)
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{os.fspath(path)}: the checkpoint's configuration is invalid ({e})") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{os.fspath(path)}: the weights do not fit the saved configuration "
                              f"({str(e).splitlines()[0]})") from None
    from .training import resolve_device

    model.to(resolve_device(device)).eval()
    return Checkpoint(model, records["data"], records["train"], records["history"], records["extra"])


def data_provenance(name: str, options: Mapping | None, seed: int, specs: Mapping) -> dict:
    """The ``data`` record of a checkpoint: what ``load_dataset(name, seed=seed, **options)``
    needs to rebuild the training data (``mmvae.evaluation.checkpoint_dataset`` does), and each
    modality's spec (shape, likelihood, unit, standardising shift and scale) as JSON. The one
    builder used by ``mmvae train``, the app and ``checkpoints/make_checkpoints.py``."""
    return {"name": str(name), "options": dict(options or {}), "seed": int(seed),
            "specs": {k: s.to_dict() for k, s in specs.items()}}
