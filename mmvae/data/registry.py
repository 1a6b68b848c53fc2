"""The built-in datasets: :data:`DATASETS` (what the app and CLI list) and :func:`load_dataset`.

Every call returns a fresh :class:`DatasetBundle` whose tensors are copies, so callers may modify
them in place; generation itself is cached (``functools.lru_cache``) on (name, seed, options).
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch

from . import digits as dg
from . import impedance as imp
from . import rockphysics as rp
from .dataset import DataError, DatasetBundle, ModalitySpec, MultimodalData, load_npz
from .validate import check_dataset_options
from .las import IMPEDANCE_UNIT, load_las, load_wells
from .toy import quadrant, sample_toy, sample_toy_nonlinear, toy_params

__all__ = ["DatasetInfo", "DATASETS", "load_dataset", "dataset_names"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a built-in dataset is: ``modalities`` holds (name, shape, likelihood, unit) for the
    default options; ``options`` maps option name -> default value."""

    name: str
    description: str
    modalities: tuple
    labels: str
    options: dict = field(default_factory=dict)


DATASETS: dict[str, DatasetInfo] = {
    "toy": DatasetInfo(
        "toy",
        "Linear-Gaussian model with a 2-D latent and exact likelihoods/posteriors (x1 sees z1, x2 sees z2)",
        (("x1", (5,), "gaussian", ""), ("x2", (5,), "gaussian", "")),
        "quadrant of the true latent z (0..3)",
        {"n_modalities": 2, "dims": 5, "n": 3000, "nonlinear": False},
    ),
    "digits-halves": DatasetInfo(
        "digits-halves",
        "scikit-learn 8x8 digits cut into a top and a bottom half",
        (("top", (1, 4, 8), "bernoulli", ""), ("bottom", (1, 4, 8), "bernoulli", "")),
        "digit class 0-9",
        {},
    ),
    "digits-poly": DatasetInfo(
        "digits-poly",
        "PolyMNIST-style tuples of different 8x8 digits of the same class, one style per modality",
        (("m0", (1, 8, 8), "bernoulli", ""), ("m1", (1, 8, 8), "bernoulli", ""),
         ("m2", (1, 8, 8), "bernoulli", "")),
        "digit class 0-9 (shared by all modalities)",
        {"n_modalities": 3},
    ),
    "impedance": DatasetInfo(
        "impedance",
        "Synthetic blocky P- and S-impedance logs from rock-physics relations (optional angle stacks)",
        (("AI", (64,), "gaussian", IMPEDANCE_UNIT), ("SI", (64,), "gaussian", IMPEDANCE_UNIT)),
        "dominant facies of the log: 0 shale, 1 brine sand, 2 gas sand, 3 carbonate",
        {"n": 2000, "length": 64, "seismic": False},
    ),
    "wells": DatasetInfo(
        "wells",
        "Real P- and S-impedance windows of well P-135 (Nova Scotia), split by depth blocks",
        (("AI", (64,), "gaussian", IMPEDANCE_UNIT), ("SI", (64,), "gaussian", IMPEDANCE_UNIT)),
        "0 sand-prone / 1 shale-prone window (mean GR vs the training median)",
        {"window": 64, "stride": 16, "n_blocks": 10, "gr_cutoff": None},
    ),
}

_LAS_OPTIONS = {"curves": None, "impedance": None, "window": 64, "stride": 16, "n_blocks": 10,
                "gr_cutoff": None, "label_curve": "GR"}
_NPZ_OPTIONS = {"fractions": (0.7, 0.15, 0.15), "likelihood": "gaussian", "normalize": True}


def dataset_names() -> list[str]:
    return list(DATASETS)


def _int_option(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    try:
        v = int(value)
        if v != value and not isinstance(value, str):
            raise ValueError
    except (TypeError, ValueError):
        raise DataError(f"option {name} must be an integer, got {value!r}") from None
    if v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise DataError(f"option {name} must be in {rng}, got {v}")
    return v


def _bool_option(name: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise DataError(f"option {name} must be true or false, got {value!r}")


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


# ----------------------------------------------------------------------------------------- toy
def _build_toy(seed: int, n_modalities=2, dims=5, n=3000, nonlinear=False) -> DatasetBundle:
    n_modalities = _int_option("n_modalities", n_modalities, 2, 3)
    if isinstance(dims, (list, tuple)):
        dims = [_int_option("dims", d, 2) for d in dims]
        if len(dims) != n_modalities:
            raise DataError(f"option dims has {len(dims)} entries for {n_modalities} modalities")
    else:
        dims = [_int_option("dims", dims, 2)] * n_modalities
    n = _int_option("n", n, 20)
    nonlinear = _bool_option("nonlinear", nonlinear)
    if nonlinear:
        z, xs = sample_toy_nonlinear(n_modalities, dims, n, seed)
        params = None
        what = ["angle of z only", "radius of z only", "tanh of a linear map of z"]
    else:
        params = toy_params(n_modalities, dims, seed)
        z, xs = sample_toy(params, n, seed)
        what = ["mostly z1 (W = Q diag(3, 0.5))", "mostly z2 (W = Q diag(0.5, 3))", "z1 and z2 equally"]
    labels = quadrant(z)
    perm = np.random.default_rng(seed + 1).permutation(n)
    n_tr, n_va = int(round(0.7 * n)), int(round(0.15 * n))
    parts = {"train": perm[:n_tr], "val": perm[n_tr : n_tr + n_va], "test": perm[n_tr + n_va :]}
    splits = {}
    for s, idx in parts.items():
        ii = torch.as_tensor(idx)
        splits[s] = MultimodalData({k: v[ii].float() for k, v in xs.items()}, labels[ii])
    specs = {
        k: ModalitySpec(k, (dims[m],), "gaussian", "vector", "", 0.0, 1.0,
                        f"{dims[m]}-D observation of {what[m]}")
        for m, k in enumerate(xs)
    }
    extras = {"z": {s: z[torch.as_tensor(idx)].float() for s, idx in parts.items()}, "latent_dim": 2,
              "source_index": parts}
    if params is not None:
        extras["toy_params"] = params
    kind = "nonlinear" if nonlinear else "linear-Gaussian"
    return DatasetBundle("toy", splits["train"], splits["val"], splits["test"], specs,
                         f"{kind} toy, {n_modalities} modalities, 2-D latent", ["++", "-+", "--", "+-"], extras)


# -------------------------------------------------------------------------------------- digits
def _build_digits_halves(seed: int) -> DatasetBundle:
    images, labels = dg.load_digit_images()
    top, bottom = dg.halves(images)
    splits = []
    for idx in dg.digit_split(seed):
        splits.append(MultimodalData({"top": _t(top[idx]), "bottom": _t(bottom[idx])},
                                     torch.from_numpy(labels[idx].copy())))
    specs = {
        "top": ModalitySpec("top", (1, 4, 8), "bernoulli", "image", "", 0.0, 1.0, "rows 0-3 of an 8x8 digit"),
        "bottom": ModalitySpec("bottom", (1, 4, 8), "bernoulli", "image", "", 0.0, 1.0, "rows 4-7 of an 8x8 digit"),
    }
    return DatasetBundle("digits-halves", *splits, specs,
                         "top and bottom halves of scikit-learn's 8x8 digits", [str(i) for i in range(10)],
                         {"source_index": dict(zip(("train", "val", "test"), dg.digit_split(seed)))})


_POLY_STYLES = ["plain", "inverted", "over a blotchy texture", "over diagonal stripes",
                "shifted one pixel right over a checkerboard"]


def _build_digits_poly(seed: int, n_modalities=3) -> DatasetBundle:
    m_count = _int_option("n_modalities", n_modalities, 3, 5)
    images, labels = dg.load_digit_images()
    rng = np.random.default_rng(seed + 7)
    splits, sources = [], {}
    for s, idx in zip(("train", "val", "test"), dg.digit_split(seed)):
        tup = dg.poly_tuples(idx, labels, m_count, rng)
        mods = {f"m{m}": _t(dg.stylise(images[tup[:, m]], m, rng)) for m in range(m_count)}
        splits.append(MultimodalData(mods, torch.from_numpy(labels[tup[:, 0]].copy())))
        sources[s] = tup
    specs = {
        f"m{m}": ModalitySpec(f"m{m}", (1, 8, 8), "bernoulli", "image", "", 0.0, 1.0,
                              f"a different digit of the same class, {_POLY_STYLES[m]}")
        for m in range(m_count)
    }
    return DatasetBundle("digits-poly", *splits, specs,
                         f"PolyMNIST-style: {m_count} styled digits sharing only the class",
                         [str(i) for i in range(10)], {"source_index": sources})


# ----------------------------------------------------------------------------------- impedance
def _build_impedance(seed: int, n=2000, length=64, seismic=False) -> DatasetBundle:
    n = _int_option("n", n, 20)
    length = _int_option("length", length, 8)
    seismic = _bool_option("seismic", seismic)
    sim = imp.simulate_logs(n, length, seed)
    labels = imp.dominant_facies(sim["facies"])
    perm = np.random.default_rng(seed + 1).permutation(n)
    n_tr, n_va = int(round(0.7 * n)), int(round(0.15 * n))
    parts = {"train": perm[:n_tr], "val": perm[n_tr : n_tr + n_va], "test": perm[n_tr + n_va :]}
    arrays = {"AI": sim["ai"], "SI": sim["si"]}
    if seismic:
        arrays["seismic"] = rp.angle_stacks(sim["ai"], sim["si"], sim["rho"], angles=(10.0, 30.0),
                                            freq_hz=30.0, dt_s=0.002)
    desc = {
        "AI": "acoustic impedance Vp*rho",
        "SI": "shear impedance Vs*rho",
        "seismic": "near (10 deg) and far (30 deg) angle stacks, 30 Hz Ricker (Fatti reflectivity)",
    }
    specs, mods = {}, {s: {} for s in parts}
    for k, a in arrays.items():
        tr = a[parts["train"]]
        shift, scale = float(tr.mean()), float(tr.std()) or 1.0
        unit = IMPEDANCE_UNIT if k != "seismic" else "amplitude"
        specs[k] = ModalitySpec(k, tuple(a.shape[1:]), "gaussian", "sequence", unit, shift, scale, desc[k])
        for s, idx in parts.items():
            mods[s][k] = _t((a[idx] - shift) / scale)
    splits = {s: MultimodalData(mods[s], torch.from_numpy(labels[idx])) for s, idx in parts.items()}
    extras = {
        "facies": {s: sim["facies"][idx] for s, idx in parts.items()},
        "depth": {s: sim["depth"][idx].astype(np.float32) for s, idx in parts.items()},
        "vp_vs_rho": {s: np.stack([sim["vp"][idx], sim["vs"][idx], sim["rho"][idx]], 1).astype(np.float32)
                      for s, idx in parts.items()},
        "facies_names": list(imp.FACIES),
        "source_index": parts,
        "depth_unit": "m",
    }
    return DatasetBundle("impedance", splits["train"], splits["val"], splits["test"], specs,
                         "synthetic blocky impedance logs (shale, brine sand, gas sand, carbonate)",
                         list(imp.FACIES), extras)


def _build_wells(seed: int, **options) -> DatasetBundle:
    return load_wells(seed=seed, **options)


_BUILDERS: dict[str, Callable[..., DatasetBundle]] = {
    "toy": _build_toy,
    "digits-halves": _build_digits_halves,
    "digits-poly": _build_digits_poly,
    "impedance": _build_impedance,
    "wells": _build_wells,
}


def _freeze(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def _thaw_options(frozen: tuple) -> dict:
    return {k: v for k, v in frozen}


@lru_cache(maxsize=8)  # bounded: least recently used (name, seed, options) dropped first
def _cached(name: str, seed: int, frozen_options: tuple) -> DatasetBundle:
    return _BUILDERS[name](seed, **dict(frozen_options))


def _copy_data(d: MultimodalData) -> MultimodalData:
    return MultimodalData({k: v.clone() for k, v in d.modalities.items()},
                          d.labels.clone() if d.labels is not None else None, dict(d.meta))


def _fresh(b: DatasetBundle) -> DatasetBundle:
    return DatasetBundle(b.name, _copy_data(b.train), _copy_data(b.val), _copy_data(b.test), dict(b.specs),
                         b.description, list(b.label_names) if b.label_names is not None else None,
                         copy.deepcopy(b.extras))


def _check_options(valid: dict, options: dict, what: str) -> None:
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise DataError(f"unknown option(s) {', '.join(map(repr, unknown))} for {what}; "
                        f"valid options: {', '.join(valid) if valid else '(none)'}")


def load_dataset(name_or_path: str | os.PathLike, seed: int = 0, **options) -> DatasetBundle:
    """Load a built-in dataset by name (see :data:`DATASETS`), or a file: ``*.npz`` -> the
    bring-your-own contract (:func:`mmvae.data.load_npz`), ``*.las`` -> :func:`mmvae.data.las.load_las`.

    Unknown names or options raise :class:`DataError` listing the valid ones. Results are
    deterministic given ``seed``; the returned tensors are fresh copies.
    """
    key = os.fspath(name_or_path)
    seed = int(seed)
    check_dataset_options(key, options)  # size options within the documented limits (mmvae.data.validate)
    low = key.lower()
    if key not in DATASETS and low.endswith(".npz"):
        _check_options(_NPZ_OPTIONS, options, f"an .npz file ({key})")
        if "normalize" in options:
            options["normalize"] = _bool_option("normalize", options["normalize"])
        return load_npz(key, seed=seed, **options)
    if key not in DATASETS and low.endswith(".las"):
        _check_options(_LAS_OPTIONS, options, f"a LAS file ({key})")
        return load_las(key, seed=seed, **options)
    if key not in DATASETS:
        raise DataError(f"unknown dataset {key!r}; choose one of {', '.join(DATASETS)}, "
                        f"or give a path to a .npz or .las file")
    info = DATASETS[key]
    _check_options(info.options, options, f"dataset {key!r}")
    full = {**info.options, **options}
    frozen = _freeze(full)
    try:
        hash(frozen)
    except TypeError:
        raise DataError(f"options for {key!r} must be plain values, got {options!r}") from None
    return _fresh(_cached(key, seed, frozen))
