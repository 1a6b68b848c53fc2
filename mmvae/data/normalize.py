"""The normalisation a model was trained with, applied to any data it scores or predicts.

A model sees each Gaussian / Laplace modality standardised with the statistics of its *training*
split: x_model = (x_phys - shift_m) / scale_m (one shift and scale per modality, stored in its
:class:`~mmvae.data.ModalitySpec` and in every checkpoint under ``data.specs``). New data must
go through the *same* affine map: re-standardising a file with its own mean and standard
deviation would let the scored target's statistics leak into the prediction (a constant shift of
the target would vanish). :class:`Normalizer` is the one place that applies it.

Densities. For an affine map of a D_m-dimensional modality, p_phys(x) = p_model(x') |dx'/dx|,
so  log p_phys(x_S) = log p_model(x'_S) + sum_{m in S} D_m * (-log scale_m)  (the Jacobian term
:meth:`Normalizer.log_jacobian`), which converts every log-likelihood and bound to the data's own
units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .dataset import DataError, ModalitySpec, MultimodalData

__all__ = ["Normalizer"]


@dataclass(frozen=True)
class Normalizer:
    """Per-modality training statistics: x_model = (x_phys - shift) / scale, and back."""

    specs: Mapping[str, ModalitySpec]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_specs(cls, specs: Mapping[str, ModalitySpec | Mapping]) -> "Normalizer":
        out = {}
        for k, s in specs.items():
            s = s if isinstance(s, ModalitySpec) else ModalitySpec.from_dict(s)
            if not (math.isfinite(s.shift) and math.isfinite(s.scale) and s.scale > 0):
                raise DataError(f"modality {k!r}: invalid saved normalisation (shift {s.shift}, scale {s.scale})")
            out[k] = s
        return cls(out)

    @classmethod
    def from_checkpoint(cls, ckpt) -> "Normalizer":
        """The statistics saved in a checkpoint (``ckpt.data["specs"]``). Checkpoints saved
        without them (none written by this package) fall back to rebuilding the built-in
        training dataset they name: its *training* statistics, never the scored data's."""
        info = ckpt.data or {}
        specs = info.get("specs")
        if not specs:
            from .registry import DATASETS, load_dataset

            name = info.get("name")
            if name not in DATASETS:
                raise DataError("the checkpoint does not record the normalisation it was trained with "
                                "(no data.specs); it cannot score new data")
            specs = load_dataset(name, seed=int(info.get("seed", 0)), **dict(info.get("options", {}))).specs
        missing = [n for n in ckpt.model.names if n not in specs]
        if missing:
            raise DataError(f"the checkpoint's saved normalisation lacks modalities {missing}")
        return cls.from_specs({n: specs[n] for n in ckpt.model.names})

    # ------------------------------------------------------------------ maps
    @property
    def names(self) -> list[str]:
        return list(self.specs)

    def standardise(self, name: str, x_phys):
        """Physical units -> model units: (x - shift) / scale."""
        s = self.specs[name]
        return (x_phys - s.shift) / s.scale

    def to_physical(self, name: str, x):
        """Model units -> physical units: x * scale + shift."""
        return self.specs[name].to_physical(x)

    def prepare(self, data: MultimodalData | Mapping[str, np.ndarray | Tensor],
                dtype: torch.dtype = torch.float32) -> MultimodalData:
        """Data in physical units (a MultimodalData or a dict of arrays) -> a MultimodalData in
        the model's units, with the model's statistics. Modalities the model lacks are dropped;
        missing ones raise :class:`DataError`."""
        labels, meta = None, {}
        if isinstance(data, MultimodalData):
            labels, meta, data = data.labels, dict(data.meta), data.modalities
        missing = [n for n in self.specs if n not in data]
        if missing:
            raise DataError(f"the data lacks the model's modalities {missing}; it has {list(data)}")
        mods = {}
        for n, s in self.specs.items():
            v = torch.as_tensor(np.asarray(data[n]) if not isinstance(data[n], Tensor) else data[n])
            if tuple(v.shape[1:]) != tuple(s.shape):
                raise DataError(f"modality {n!r}: data shape {tuple(v.shape[1:])} does not match the model's "
                                f"{tuple(s.shape)}")
            mods[n] = self.standardise(n, v.to(torch.float64)).to(dtype)
        return MultimodalData(mods, labels, meta)

    def rebase(self, data: MultimodalData, specs: Mapping[str, ModalitySpec]) -> MultimodalData:
        """Data normalised with other ``specs`` -> the same data in this normaliser's units
        (through physical units; exact up to rounding). Used for built-in datasets, whose
        loaders standardise with their own training split."""
        phys = {n: specs[n].to_physical(data.modalities[n].to(torch.float64)) for n in self.specs
                if n in data.modalities}
        return self.prepare(MultimodalData(phys, data.labels, dict(data.meta)) if phys else data,
                            next(iter(data.modalities.values())).dtype)

    # ------------------------------------------------------------------ densities
    def log_jacobian(self, names: Sequence[str] | None = None) -> float:
        """sum_{m in names} D_m * (-log scale_m): add it to a log-density in model units to get
        the log-density in the data's own units."""
        names = self.names if names is None else list(names)
        return float(sum(-math.prod(self.specs[n].shape) * math.log(self.specs[n].scale) for n in names))

    def to_dict(self) -> dict:
        """JSON-able statistics: {modality: {shift, scale, unit, dims}}."""
        return {n: {"shift": s.shift, "scale": s.scale, "unit": s.unit, "dims": math.prod(s.shape)}
                for n, s in self.specs.items()}
