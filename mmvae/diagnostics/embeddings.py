"""2-D embeddings of posterior means (joint and unimodal) of a dataset, labels attached.

``method``: ``raw`` (the latent itself; needs D <= 2), ``pca`` (instant), ``umap`` (umap-learn,
seeded, imported lazily: its first import compiles with numba for ~15 s) or ``auto``: raw when
D <= 2, else PCA -- instant and deterministic; UMAP only when asked for by name. This one meaning
of ``auto`` (:func:`embedding_method`) is the CLI's, the report's and the app's. One projection is
fitted on the joint and all unimodal means stacked together, so all of them share the same axes. UMAP results
are cached in memory keyed on a hash of the means, the seed and the UMAP options
(:func:`clear_embedding_cache` empties it); :func:`umap_cached` says whether a call would hit it.

Shared latent only: for a model with private latents (``private_dim`` D_w > 0, MMVAE+), whose latent
is u = [z | w_1 | ... | w_M], the embeddings are of the posterior means of the shared z alone (the
first ``latent_dim`` numbers of u). The private w_m are left out: each belongs to one modality and
is meant to hold what the others do not share (style), so it has no joint code to compare with.
"""
from __future__ import annotations

import hashlib
from typing import Mapping

import numpy as np
import torch

from .likelihood import _batches, as_inputs

__all__ = ["EMBEDDING_METHODS", "embedding_method", "latent_means", "embed_2d", "latent_embedding", "umap_cached",
           "clear_embedding_cache"]

EMBEDDING_METHODS = ("auto", "raw", "pca", "umap")

_UMAP_CACHE: dict[str, np.ndarray] = {}
_UMAP_CACHE_MAX = 32


@torch.no_grad()
def latent_means(model, data, fusion: str | None = None, unimodal: bool = True,
                 batch_size: int = 1024) -> dict[str, np.ndarray]:
    """Posterior means (N, D) of the shared z: ``joint`` (the ``fusion`` posterior of all modalities)
    and, with ``unimodal``, one per modality (q(z | x_m)). With private latents only z, the first
    D = ``latent_dim`` numbers of the latent u, is kept (see the module docstring)."""
    x, _ = as_inputs(model, data)
    D = model.latent_dim
    out: dict[str, list] = {"joint": []}
    if unimodal:
        out.update({m: [] for m in x})
    for _, xb in _batches(x, batch_size):
        out["joint"].append(model.posterior(xb, fusion, validate=False).mean[:, :D])  # (B, D): z of u = [z | w]
        if unimodal:
            for m in xb:
                out[m].append(model.posterior({m: xb[m]}, "moe", validate=False).mean[:, :D])
    return {k: torch.cat(v).cpu().double().numpy() for k, v in out.items()}


def embedding_method(method: str, latent_dim: int) -> str:
    """The method ``method`` means for a D-dimensional latent: ``auto`` -> ``raw`` when D <= 2,
    else ``pca``; others unchanged. ValueError for an unknown method or ``raw`` with D > 2."""
    if method not in EMBEDDING_METHODS:
        raise ValueError(f"unknown embedding method {method!r}; choose {', '.join(EMBEDDING_METHODS)}")
    if method == "auto":
        return "raw" if latent_dim <= 2 else "pca"
    if method == "raw" and latent_dim > 2:
        raise ValueError(f"method 'raw' needs a 2-D latent, this one has D = {latent_dim}; use pca or umap")
    return method


def _key(stacked: np.ndarray, seed: int, options: Mapping) -> str:
    h = hashlib.sha1(np.ascontiguousarray(stacked, dtype=np.float64).tobytes())
    h.update(repr((stacked.shape, seed, sorted(options.items()))).encode())
    return h.hexdigest()


def umap_cached(means: Mapping[str, np.ndarray], seed: int = 0, **umap_options) -> bool:
    stacked = np.concatenate([np.asarray(v) for v in means.values()])
    return _key(stacked, seed, umap_options) in _UMAP_CACHE


def clear_embedding_cache() -> None:
    _UMAP_CACHE.clear()


def _pca(stacked: np.ndarray) -> np.ndarray:
    """scikit-learn's PCA onto the top-2 principal directions (N, D) -> (N, 2); fewer than two
    points: their first two centred coordinates."""
    if stacked.shape[0] < 2:
        return (stacked - stacked.mean(0, keepdims=True))[:, :2]
    from sklearn.decomposition import PCA  # lazy: scikit-learn loads on first use

    return PCA(n_components=2, svd_solver="full").fit_transform(stacked)


def _umap(stacked: np.ndarray, seed: int, options: Mapping) -> np.ndarray:
    key = _key(stacked, seed, options)
    coords = _UMAP_CACHE.pop(key, None)  # re-inserted below: least recently used first out
    if coords is None:
        import umap  # lazy: the first import compiles with numba

        opts = {"n_neighbors": 15, "min_dist": 0.1, **options}
        opts["n_neighbors"] = max(2, min(int(opts["n_neighbors"]), stacked.shape[0] - 1))
        reducer = umap.UMAP(n_components=2, random_state=seed, **opts)
        coords = np.asarray(reducer.fit_transform(stacked), dtype=np.float64)
    _UMAP_CACHE[key] = coords
    while len(_UMAP_CACHE) > _UMAP_CACHE_MAX:
        _UMAP_CACHE.pop(next(iter(_UMAP_CACHE)), None)
    return coords


def embed_2d(means: Mapping[str, np.ndarray], method: str = "auto", seed: int = 0,
             labels=None, **umap_options) -> dict:
    """2-D coordinates of every array in ``means`` (name -> (N_i, D)) under one shared projection.

    Returns ``{"coords": {name: (N_i, 2)}, "method": the method used, "labels": labels or None}``.
    """
    names = list(means)
    arrays = [np.asarray(means[k], dtype=np.float64) for k in names]
    D = arrays[0].shape[1]
    stacked = np.concatenate(arrays)
    used = embedding_method(method, D)
    if used == "raw":
        flat = stacked if D == 2 else np.concatenate([stacked, np.zeros_like(stacked)], 1)
    elif used == "pca":
        flat = _pca(stacked) if D > 2 else (stacked if D == 2 else np.concatenate([stacked, np.zeros_like(stacked)], 1))
    else:
        flat = _umap(stacked, seed, umap_options)
    coords, start = {}, 0
    for k, a in zip(names, arrays):
        coords[k] = flat[start : start + len(a)]
        start += len(a)
    if labels is not None:
        labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    return {"coords": coords, "method": used, "labels": labels, "latent_dim": D}


def latent_embedding(model, data, method: str = "auto", fusion: str | None = None, unimodal: bool = True,
                     seed: int = 0, **umap_options) -> dict:
    """:func:`latent_means` then :func:`embed_2d`, with the data's labels attached; the raw means
    are returned too (``means``), and ``of`` says what was embedded (z alone with private latents)."""
    means = latent_means(model, data, fusion, unimodal)
    labels = getattr(data, "labels", None)
    out = embed_2d(means, method, seed, labels, **umap_options)
    out["means"] = means
    private = int(getattr(model, "private_dim", 0) or 0)
    out["of"] = (f"the shared z alone (first {model.latent_dim} numbers of u; the private w_m, {private} per "
                 "modality, are left out)" if private else "z")
    return out
