"""``toy``: a linear-Gaussian multimodal model with a 2-D latent and exact answers.

    z ~ N(0, I_2),   x_m = W_m z + b_m + eps_m,   eps_m ~ N(0, sigma_m^2 I_d)

Each ``W_m = Q_m diag(s_m)`` has orthogonal columns (``Q_m`` has orthonormal columns), so
``W_m^T W_m = diag(s_m^2)`` and every posterior ``p(z | x_S)`` is a *diagonal* Gaussian:

    precision = I + sum_{m in S} diag(s_m^2) / sigma_m^2
    mean      = precision^-1 sum_{m in S} W_m^T (x_m - b_m) / sigma_m^2

As a function of z, ``p(x_m | z)`` is proportional to the Gaussian "likelihood expert"
``N(z; diag(1/s_m) Q_m^T (x_m - b_m), diag(sigma_m^2 / s_m^2))``: prior x expert_m = p(z | x_m)
and prior x prod_m expert_m = p(z | x) (the product-of-experts identity). Modality ``x1`` is
informative mostly about z1, ``x2`` about z2, ``x3`` (if any) about both.

The nonlinear variant has no closed form: ``x1`` sees only the angle of z, ``x2`` only its
radius, ``x3`` (if any) a tanh of a linear map of z.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "ToyParams",
    "toy_params",
    "sample_toy",
    "sample_toy_nonlinear",
    "exact_log_likelihood",
    "exact_posterior",
    "exact_experts",
    "quadrant",
]

_S = [(3.0, 0.5), (0.5, 3.0), (1.5, 1.5), (2.0, 1.0), (1.0, 2.0)]
_SIGMA = [0.5, 0.7, 0.6, 0.6, 0.6]


@dataclass
class ToyParams:
    """Parameters of the linear-Gaussian toy: per modality ``W`` (d_m, 2), ``b`` (d_m,) and the
    noise standard deviation ``sigma`` (scalar tensor); ``names`` are the modality names."""

    names: list[str]
    W: list[Tensor]
    b: list[Tensor]
    sigma: list[Tensor]

    def index(self, name: str) -> int:
        return self.names.index(name)

    def to(self, dtype: torch.dtype = torch.float64) -> "ToyParams":
        return ToyParams(list(self.names), [w.to(dtype) for w in self.W], [b.to(dtype) for b in self.b],
                         [s.to(dtype) for s in self.sigma])


def toy_params(n_modalities: int = 2, dims: int | Sequence[int] = 5, seed: int = 0) -> ToyParams:
    """Random orthogonal-column loadings for ``n_modalities`` modalities (float64)."""
    if isinstance(dims, int):
        dims = [dims] * n_modalities
    dims = list(dims)
    if len(dims) != n_modalities:
        raise ValueError(f"dims has {len(dims)} entries for {n_modalities} modalities")
    if any(d < 2 for d in dims):
        raise ValueError(f"every modality needs at least 2 dimensions, got {dims}")
    g = torch.Generator().manual_seed(10_000 + seed)
    W, b, sigma = [], [], []
    for m, d in enumerate(dims):
        q, r = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))[None, :]
        s = torch.tensor(_S[m % len(_S)], dtype=torch.float64)
        W.append(q * s[None, :])
        b.append(0.5 * torch.randn(d, generator=g, dtype=torch.float64))
        sigma.append(torch.tensor(_SIGMA[m % len(_SIGMA)], dtype=torch.float64))
    return ToyParams([f"x{m + 1}" for m in range(n_modalities)], W, b, sigma)


def quadrant(z: Tensor) -> Tensor:
    """Quadrant label of 2-D points: 0 (+,+), 1 (-,+), 2 (-,-), 3 (+,-)."""
    right = z[:, 0] >= 0
    up = z[:, 1] >= 0
    return torch.where(up, torch.where(right, 0, 1), torch.where(right, 3, 2)).long()


def sample_toy(params: ToyParams, n: int, seed: int) -> tuple[Tensor, dict[str, Tensor]]:
    """Draw ``n`` samples: returns (z (n, 2), {name: x (n, d_m)}) in float64."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    xs = {}
    for name, w, b, s in zip(params.names, params.W, params.b, params.sigma):
        xs[name] = z @ w.T + b + s * torch.randn(n, w.shape[0], generator=g, dtype=torch.float64)
    return z, xs


def sample_toy_nonlinear(n_modalities: int, dims: Sequence[int], n: int, seed: int
                         ) -> tuple[Tensor, dict[str, Tensor]]:
    """Nonlinear toy: ``x1`` = tanh(A1 [cos a, sin a] + c1) + noise (angle a of z only),
    ``x2`` = tanh(A2 [r - 1.25, (r - 1.25)^2] + c2) + noise (radius r only), ``x3`` =
    tanh(A3 z + c3) + noise. Noise sd 0.05; float64."""
    g = torch.Generator().manual_seed(20_000 + seed)  # the maps depend on the seed only
    maps = [(torch.randn(d, 2, generator=g, dtype=torch.float64) * 1.2,
             0.3 * torch.randn(d, generator=g, dtype=torch.float64)) for d in dims]
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 2, generator=g, dtype=torch.float64)
    r = z.norm(dim=1, keepdim=True)
    a = torch.atan2(z[:, 1:], z[:, :1])
    feats = [torch.cat([torch.cos(a), torch.sin(a)], 1), torch.cat([r - 1.25, (r - 1.25) ** 2], 1), z]
    xs = {}
    for m in range(n_modalities):
        A, c = maps[m]
        f = feats[m] if m < 3 else z
        xs[f"x{m + 1}"] = torch.tanh(f @ A.T + c) + 0.05 * torch.randn(n, A.shape[0], generator=g, dtype=torch.float64)
    return z, xs


def _subset(params: ToyParams, xs: Mapping[str, Tensor], subset) -> list[str]:
    names = list(xs) if subset is None else list(subset)
    names = [n for n in params.names if n in names]  # canonical order
    missing = [n for n in (list(xs) if subset is None else list(subset)) if n not in params.names]
    if missing:
        raise KeyError(f"unknown modalities {missing}; the toy has {params.names}")
    if not names:
        raise ValueError("the subset of modalities is empty")
    absent = [n for n in names if n not in xs]
    if absent:
        raise KeyError(f"no data given for modalities {absent}")
    return names


def exact_log_likelihood(params: ToyParams, xs: Mapping[str, Tensor], subset=None) -> Tensor:
    """log p(x_S) = log N(x_S; b_S, W_S W_S^T + diag(sigma_S^2)), batched: returns (B,).

    ``subset`` (names) defaults to all modalities present in ``xs``. Computed in the dtype of
    the data (use float64 for reference values)."""
    names = _subset(params, xs, subset)
    dtype = xs[names[0]].dtype
    idx = [params.index(n) for n in names]
    W = torch.cat([params.W[i] for i in idx], 0).to(dtype)
    b = torch.cat([params.b[i] for i in idx], 0).to(dtype)
    noise = torch.cat([params.sigma[i].expand(params.W[i].shape[0]) ** 2 for i in idx]).to(dtype)
    cov = W @ W.T + torch.diag(noise)
    x = torch.cat([xs[n] for n in names], -1)
    return torch.distributions.MultivariateNormal(b, covariance_matrix=cov).log_prob(x)


def exact_experts(params: ToyParams, xs: Mapping[str, Tensor]) -> dict[str, tuple[Tensor, Tensor]]:
    """Gaussian likelihood experts in z: name -> (loc (B, 2), log_scale (B, 2)) with
    N(z; loc, diag(exp(2 log_scale))) proportional to p(x_m | z)."""
    out = {}
    for n, x in xs.items():
        i = params.index(n)
        W, b, s = params.W[i].to(x.dtype), params.b[i].to(x.dtype), params.sigma[i].to(x.dtype)
        s2 = (W * W).sum(0)  # = s_m^2 (columns orthogonal)
        loc = (x - b) @ W / s2
        log_scale = (torch.log(s) - 0.5 * torch.log(s2)).expand_as(loc)
        out[n] = (loc, log_scale)
    return out


def exact_posterior(params: ToyParams, xs: Mapping[str, Tensor], subset=None) -> tuple[Tensor, Tensor]:
    """Exact p(z | x_S) = N(mean, diag(var)): returns mean (B, 2) and var (B, 2).

    Checks that the posterior precision is diagonal (true by construction)."""
    names = _subset(params, xs, subset)
    dtype = xs[names[0]].dtype
    prec = torch.eye(2, dtype=torch.float64)
    eta = 0.0
    for n in names:
        i = params.index(n)
        W, b, s = params.W[i], params.b[i], params.sigma[i]
        prec = prec + W.T @ W / s**2
        eta = eta + ((xs[n].to(torch.float64) - b) @ W) / s**2
    off = prec[0, 1].abs().item()
    if off > 1e-9 * prec.diagonal().abs().max().item():
        raise AssertionError(f"posterior precision is not diagonal (off-diagonal {off:.3g})")
    var = 1.0 / prec.diagonal()
    mean = eta * var
    return mean.to(dtype), var.expand_as(mean).to(dtype).clone()


def log_normal_diag(z: Tensor, loc: Tensor, var: Tensor) -> Tensor:
    """log N(z; loc, diag(var)) summed over the last axis."""
    return -0.5 * (((z - loc) ** 2) / var + torch.log(2 * math.pi * var)).sum(-1)
