"""Multimodal data containers and the bring-your-own ``.npz`` contract.

A :class:`MultimodalData` holds one tensor per modality (first axis = samples, same length for
all) and optional integer labels. A :class:`DatasetBundle` holds the train / validation / test
splits of one dataset plus what a model needs to know about each modality (shape, likelihood,
units, normalisation). Batches are tensor slices: there is no per-sample Python loading.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from typing import Iterator, Mapping

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DataError",
    "ModalitySpec",
    "MultimodalData",
    "DatasetBundle",
    "load_npz",
    "read_npz",
    "split_indices",
]


from ..errors import DataError  # noqa: E402  (defined with the other error types; re-exported here)
from .validate import check_npz  # noqa: E402


@dataclass(frozen=True)
class ModalitySpec:
    """What a model needs to know about one modality.

    ``shape`` is the per-sample shape (e.g. ``(64,)`` for a log, ``(1, 8, 8)`` for an image).
    ``likelihood`` is a name from :mod:`mmvae.distributions` (``gaussian``, ``laplace``,
    ``bernoulli``, ``continuous_bernoulli``). ``shift`` and ``scale`` undo the normalisation:
    physical = data * scale + shift. ``kind`` tells the app how to draw it: ``vector``,
    ``sequence`` or ``image``.
    """

    name: str
    shape: tuple[int, ...]
    likelihood: str = "gaussian"
    kind: str = "vector"
    unit: str = ""
    shift: float = 0.0
    scale: float = 1.0
    description: str = ""

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "likelihood": self.likelihood,
            "kind": self.kind,
            "unit": self.unit,
            "shift": float(self.shift),
            "scale": float(self.scale),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModalitySpec":
        return cls(
            name=str(d["name"]),
            shape=tuple(int(s) for s in d["shape"]),
            likelihood=str(d.get("likelihood", "gaussian")),
            kind=str(d.get("kind", "vector")),
            unit=str(d.get("unit", "")),
            shift=float(d.get("shift", 0.0)),
            scale=float(d.get("scale", 1.0)),
            description=str(d.get("description", "")),
        )

    def to_physical(self, x: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """Undo the normalisation: physical units = x * scale + shift."""
        return x * self.scale + self.shift


@dataclass
class MultimodalData:
    """Aligned samples of several modalities: ``modalities[name]`` has shape (N, *shape)."""

    modalities: dict[str, Tensor]
    labels: Tensor | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.modalities:
            raise DataError("a multimodal dataset needs at least one modality")
        lengths = {k: int(v.shape[0]) for k, v in self.modalities.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"modalities have different numbers of samples: {lengths}")
        if self.labels is not None and int(self.labels.shape[0]) != self.n:
            raise DataError(
                f"labels have {int(self.labels.shape[0])} entries but the modalities have {self.n} samples"
            )

    @property
    def n(self) -> int:
        return int(next(iter(self.modalities.values())).shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def names(self) -> list[str]:
        return list(self.modalities)

    def subset(self, index: Tensor | slice | np.ndarray) -> "MultimodalData":
        if isinstance(index, np.ndarray):
            index = torch.as_tensor(index, dtype=torch.long)
        mods = {k: v[index] for k, v in self.modalities.items()}
        labels = self.labels[index] if self.labels is not None else None
        return MultimodalData(mods, labels, dict(self.meta))

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "MultimodalData":
        """On ``device`` (and, if given, with floating-point modalities in ``dtype``)."""
        mods = {k: v.to(device, dtype) if dtype is not None and v.is_floating_point() else v.to(device)
                for k, v in self.modalities.items()}
        labels = self.labels.to(device) if self.labels is not None else None
        return MultimodalData(mods, labels, dict(self.meta))

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[dict[str, Tensor]]:
        """Yield dicts of tensor slices (a permutation is drawn once per pass when shuffling)."""
        n = self.n
        if shuffle:
            perm = torch.randperm(n, generator=generator).to(next(iter(self.modalities.values())).device)
            for start in range(0, n, batch_size):
                idx = perm[start : start + batch_size]
                yield {k: v[idx] for k, v in self.modalities.items()}
        else:
            for start in range(0, n, batch_size):
                yield {k: v[start : start + batch_size] for k, v in self.modalities.items()}


@dataclass
class DatasetBundle:
    """A dataset ready for training: splits, per-modality specs and a description."""

    name: str
    train: MultimodalData
    val: MultimodalData
    test: MultimodalData
    specs: dict[str, ModalitySpec]
    description: str = ""
    label_names: list[str] | None = None
    extras: dict = field(default_factory=dict)

    @property
    def modality_names(self) -> list[str]:
        return list(self.specs)


def split_indices(
    n: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint random train / validation / test indices, reproducible from ``seed``."""
    if n < 3:
        raise DataError(f"need at least 3 samples to split into train/validation/test, got {n}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_train = max(1, int(round(fractions[0] * n)))
    n_val = max(1, int(round(fractions[1] * n)))
    n_train = min(n_train, n - 2)
    n_val = min(n_val, n - n_train - 1)
    return perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :]


_LIKELIHOODS = ("gaussian", "laplace", "bernoulli", "continuous_bernoulli")


def _check_fractions(fractions) -> tuple[float, float, float]:
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or min(values) < 0 or not 0 < sum(values) <= 1.0 + 1e-9:
        raise DataError(f"option fractions must be three numbers >= 0 (train, validation, test) summing to 1, "
                        f"got {fractions!r}")
    return values  # type: ignore[return-value]


def _check_array(path: str, key: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise DataError(f"{path}: array '{key}' is not numeric (dtype {arr.dtype})")
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise DataError(f"{path}: array '{key}' has no samples (shape {arr.shape})")
    if key != "labels" and not np.all(np.isfinite(arr)):
        bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"{path}: array '{key}' contains {bad} NaN or inf value(s)")
    return arr


def read_npz(path: str | os.PathLike, likelihood: str = "gaussian"
             ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Read and check the arrays of a bring-your-own ``.npz`` file, in file order and in the
    file's own units: ({modality: float32 array (N, *shape)}, int64 labels (N,) or None)."""
    path = os.fspath(path)
    if likelihood not in _LIKELIHOODS:
        raise DataError(f"option likelihood must be one of {', '.join(_LIKELIHOODS)}, got {likelihood!r}")
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path) or not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a readable .npz file (not a zip archive; save it with numpy.savez)")
    check_npz(path)  # declared shapes, dtypes, keys and total size, from the headers (mmvae.data.validate)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:  # object arrays need pickle: refuse
        raise DataError(f"{path}: cannot read arrays without unpickling ({e}); save plain numeric arrays") from None
    except Exception as e:  # zipfile.BadZipFile, OSError, ...
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
    labels = arrays.pop("labels", None)
    if not arrays:
        raise DataError(f"{path}: no modality arrays found (only {'labels' if labels is not None else 'nothing'})")
    if len(arrays) < 2:
        raise DataError(f"{path}: a multimodal dataset needs at least 2 modality arrays, found {list(arrays)}")
    for k, a in arrays.items():
        _check_array(path, k, a)
        if likelihood in ("bernoulli", "continuous_bernoulli") and (a.min() < 0 or a.max() > 1):
            raise DataError(f"{path}: array '{k}' has values outside [0, 1] ({a.min():g} to {a.max():g}), "
                            f"which a {likelihood} likelihood cannot model; rescale it or use likelihood=gaussian")
    lengths = {k: a.shape[0] for k, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise DataError(f"{path}: arrays have different numbers of samples: {lengths}")
    n = next(iter(lengths.values()))
    if labels is not None:
        labels = _check_array(path, "labels", labels)
        if labels.shape[0] != n:
            raise DataError(f"{path}: 'labels' has {labels.shape[0]} entries but the modalities have {n} samples")
        if not np.issubdtype(labels.dtype, np.integer):
            if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
                raise DataError(f"{path}: 'labels' must hold integers")
        labels = labels.astype(np.int64)
    out = {}
    for k, a in arrays.items():
        a = a.astype(np.float32)
        out[k] = a.reshape((n,) + (tuple(a.shape[1:]) or (1,)))
    return out, labels


def load_npz(
    path: str | os.PathLike,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    likelihood: str = "gaussian",
    normalize: bool = True,
) -> DatasetBundle:
    """Load the bring-your-own ``.npz`` contract.

    One array per modality: the key is the modality's name, the first axis is samples and has the
    same length in all arrays; an optional integer ``labels`` array. 1-D per-sample arrays are
    vectors, ``(N, L)`` arrays with ``L >= 16`` are still treated as vectors unless given as
    ``(N, 1, L)`` (sequences) or ``(N, C, H, W)`` / ``(N, H, W)`` (images). When ``normalize`` is
    true each modality is standardised with its training-split mean and standard deviation, and
    the shift and scale are stored so generations are shown in the original units.
    """
    path = os.fspath(path)
    fractions = _check_fractions(fractions)
    if likelihood not in _LIKELIHOODS:
        raise DataError(f"option likelihood must be one of {', '.join(_LIKELIHOODS)}, got {likelihood!r}")
    arrays, labels = read_npz(path, likelihood)
    n = next(iter(arrays.values())).shape[0]
    tr, va, te = split_indices(n, fractions, seed)
    specs: dict[str, ModalitySpec] = {}
    mods: dict[str, Tensor] = {}
    for k, a in arrays.items():
        shape = tuple(a.shape[1:])
        kind = "image" if len(shape) >= 2 and not (len(shape) == 2 and shape[0] == 1) else (
            "sequence" if len(shape) == 2 else "vector")
        shift, scale = 0.0, 1.0
        if normalize and likelihood in ("gaussian", "laplace"):
            shift = float(a[tr].mean())
            scale = float(a[tr].std()) or 1.0
            a = (a - shift) / scale
        mods[k] = torch.from_numpy(np.ascontiguousarray(a))
        specs[k] = ModalitySpec(k, shape, likelihood, kind, "", shift, scale, f"array '{k}' of {os.path.basename(path)}")
    full = MultimodalData(mods, torch.from_numpy(labels) if labels is not None else None)
    return DatasetBundle(
        name=os.path.basename(path),
        train=full.subset(tr),
        val=full.subset(va),
        test=full.subset(te),
        specs=specs,
        description=f"your data from {path}",
    )

