r"""Decodings of every modality on a grid over a 2-D slice of the latent space.

For a latent plane spanned by axes a and b of z (the other coordinates fixed at ``fixed``,
default 0, the prior's mean), the grid holds, for every grid point z_ij with z_a = g_a[i] and
z_b = g_b[j],

    E[x_m | z_ij]   for every modality m

(the decoders' likelihood means, :func:`mmvae.diagnostics.weights.decode_latent`; Bernoulli:
probabilities; Gaussian: the standardised mean). An app draws these precomputed decodings while
a marker is dragged over the plane, without calling the model (nearest grid point).

The grid's size is chosen so the decodings stay within ``max_bytes`` as float32:
n = min(max_n, floor(sqrt(max_bytes / (4 * sum_m dim_m)))), at least ``min_n``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .weights import decode_latent

__all__ = ["grid_size", "plane_limits", "slice_point", "latent_grid"]


def grid_size(dims: Sequence[int], max_bytes: int = 2_000_000, max_n: int = 41, min_n: int = 5) -> int:
    """Points per axis of a square grid whose float32 decodings (``dims``: numbers per modality
    per point) fit in ``max_bytes``; raises ValueError if even ``min_n`` x ``min_n`` does not."""
    per_point = 4 * int(sum(int(d) for d in dims))
    n = min(int(max_n), int(math.isqrt(max(int(max_bytes) // max(per_point, 1), 0))))
    if n < min_n:
        raise ValueError(f"decodings of {per_point // 4} numbers per latent point do not fit a {min_n} x {min_n} grid "
                         f"in {max_bytes / 1e6:g} MB")
    return n


def plane_limits(points: np.ndarray | None = None, lim: float = 3.0, max_lim: float = 8.0) -> tuple[float, float]:
    """A symmetric range [-L, L] for a latent plane: L = ``lim`` (3 prior standard deviations),
    widened to cover the 99th percentile of |coordinate| of ``points`` (N, 2), at most ``max_lim``."""
    L = float(lim)
    if points is not None and len(points):
        p = np.abs(np.asarray(points, dtype=float))
        p = p[np.isfinite(p).all(axis=1)]
        if len(p):
            L = max(L, float(np.percentile(p, 99)) * 1.05)
    L = min(L, float(max_lim))
    return -L, L


def slice_point(latent_dim: int, codes: np.ndarray | None = None, at: str = "prior") -> np.ndarray:
    """The latent point (D,) a plane passes through: 0, the prior's mean (``at="prior"``), or the
    mean of ``codes`` (N, D), e.g. the test points' posterior means (``at="data"``)."""
    if at == "prior":
        return np.zeros(int(latent_dim))
    if at != "data":
        raise ValueError(f"at must be 'prior' or 'data', got {at!r}")
    c = np.asarray(codes, dtype=float)
    if c.ndim != 2 or c.shape[1] != latent_dim or not len(c):
        raise ValueError(f"codes must have shape (N >= 1, {latent_dim}), got {c.shape}")
    return c.mean(axis=0)


@torch.no_grad()
def latent_grid(model, axes: tuple[int, int] = (0, 1), n: int | None = None, limits: tuple[float, float] = (-3.0, 3.0),
                fixed: Sequence[float] | None = None, names: Sequence[str] | None = None,
                max_bytes: int = 2_000_000, chunk: int = 512) -> dict:
    """Decode every modality on an n x n grid of the plane of latent ``axes`` over ``limits``.

    Returns ``{"grid": (n,) coordinates on both axes, "axes": (a, b), "fixed": (D,) the latent
    point the plane passes through (its a and b entries are ignored), "decoded": {m: (n, n,
    *shape_m) float32}}`` with ``decoded[m][i, j] = E[x_m | z]`` at z_a = grid[i], z_b = grid[j].
    ``n`` defaults to :func:`grid_size` for ``max_bytes``."""
    D = model.latent_dim
    a, b = (int(x) for x in axes)
    if D < 2 or not (0 <= a < D and 0 <= b < D) or a == b:
        raise ValueError(f"axes must be two different latent dimensions of 0..{D - 1}, got {axes}")
    names = list(names or model.names)
    shapes = {m: tuple(model.specs[m].shape) for m in names}
    if n is None:
        n = grid_size([int(np.prod(s)) for s in shapes.values()], max_bytes)
    lo, hi = float(limits[0]), float(limits[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"limits must be finite with low < high, got {limits}")
    grid = np.linspace(lo, hi, int(n))  # (n,)
    base = np.zeros(D) if fixed is None else np.asarray(fixed, dtype=float).reshape(D)
    z = np.repeat(base[None, :], n * n, axis=0)  # (n*n, D), row i*n + j
    z[:, a] = np.repeat(grid, n)
    z[:, b] = np.tile(grid, n)
    out: dict[str, list] = {m: [] for m in names}
    for s in range(0, n * n, chunk):
        dec = decode_latent(model, z[s : s + chunk], names)  # {m: (c, *shape)}
        for m in names:
            out[m].append(dec[m].numpy().astype(np.float32))
    decoded = {m: np.concatenate(v).reshape(n, n, *v[0].shape[1:]) for m, v in out.items()}
    return {"grid": grid, "axes": (a, b), "fixed": base, "decoded": decoded}
