"""Data for scoring a trained model, in the model's own units.

:func:`load_for_scoring` reads a file or a built-in dataset in *physical* units and maps it to
the model's units with the model's :class:`~mmvae.data.normalize.Normalizer` (its training
statistics): no statistic of the scored data is ever computed or used.

A file given for scoring is all test data: ``split="all"`` (the default for files) scores every
point of an ``.npz`` (in file order) and every window of a LAS file (``window`` samples every
``stride``, over the whole logged interval). ``split="train" | "val" | "test"`` scores one split
of it instead, cut exactly as ``train --data FILE`` with the same seed and options cuts it.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import torch

from .dataset import DataError, MultimodalData, _check_fractions, read_npz, split_indices
from .las import all_windows, las_logs, window_bundle
from .normalize import Normalizer

__all__ = ["SPLITS", "load_for_scoring"]

SPLITS = ("all", "train", "val", "test")
_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


def _concat(parts: list[MultimodalData]) -> MultimodalData:
    mods = {k: torch.cat([p.modalities[k] for p in parts]) for k in parts[0].modalities}
    labels = None if any(p.labels is None for p in parts) else torch.cat([p.labels for p in parts])
    return MultimodalData(mods, labels)


def load_for_scoring(
    data: str | os.PathLike,
    normalizer: Normalizer,
    split: str = "all",
    seed: int = 0,
    options: Mapping | None = None,
) -> tuple[MultimodalData, dict]:
    """(data in the model's units, info) for a built-in dataset name or an ``.npz`` / ``.las`` path.

    ``options``: the dataset options (for files: ``fractions`` of an .npz, ``window``,
    ``stride``, ``n_blocks``, ``curves``, ``impedance`` of a LAS file; used to cut a split).
    ``info`` holds ``name``, ``split``, ``n`` and, for LAS files, ``window_start_depth``.
    """
    from .registry import _LAS_OPTIONS, _NPZ_OPTIONS, DATASETS, _check_options, load_dataset

    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    options = dict(options or {})
    key = os.fspath(data)
    low = key.lower()
    info: dict = {"name": os.path.basename(key), "split": split, "source": key}
    if key not in DATASETS and low.endswith(".npz"):
        _check_options(_NPZ_OPTIONS, options, f"an .npz file ({key})")
        likelihoods = {s.likelihood for s in normalizer.specs.values()}
        arrays, labels = read_npz(key, likelihoods.pop() if len(likelihoods) == 1 else "gaussian")
        n = next(iter(arrays.values())).shape[0]
        index = np.arange(n)
        if split != "all":
            fractions = _check_fractions(options.get("fractions", _NPZ_OPTIONS["fractions"]))
            index = split_indices(n, fractions, seed)[_SPLIT_INDEX[split]]
        phys = MultimodalData({k: torch.from_numpy(a[index]) for k, a in arrays.items()},
                              torch.from_numpy(labels[index]) if labels is not None else None)
        out = normalizer.prepare(phys)
    elif key not in DATASETS and low.endswith(".las"):
        _check_options(_LAS_OPTIONS, options, f"a LAS file ({key})")
        depth, logs, gr, depth_unit = las_logs(key, options.get("curves"), options.get("impedance"),
                                               options.get("label_curve", "GR"))
        window = int(options.get("window", _LAS_OPTIONS["window"]))
        stride = int(options.get("stride", _LAS_OPTIONS["stride"]))
        if split == "all":
            arrays, starts = all_windows(depth, logs, window, stride, key)
            phys = MultimodalData({k: torch.from_numpy(a) for k, a in arrays.items()})
            info["window_start_depth"] = depth[starts].tolist()
            info["depth_unit"] = depth_unit
        else:
            b = window_bundle(os.path.basename(key), depth, logs, window=window, stride=stride, seed=seed,
                              n_blocks=int(options.get("n_blocks", _LAS_OPTIONS["n_blocks"])), gr=gr,
                              gr_cutoff=options.get("gr_cutoff"), source=key, normalize=False)
            phys = getattr(b, split)
        out = normalizer.prepare(phys)
    elif key in DATASETS:
        bundle = load_dataset(key, seed=seed, **options)
        parts = [bundle.train, bundle.val, bundle.test] if split == "all" else [getattr(bundle, split)]
        out = normalizer.rebase(_concat(parts) if len(parts) > 1 else parts[0], bundle.specs)
        info["extras"] = bundle.extras
        info["name"] = key
    else:
        raise DataError(f"unknown dataset {key!r}; choose one of {', '.join(DATASETS)}, "
                        f"or give a path to a .npz or .las file")
    info["n"] = out.n
    return out, info
