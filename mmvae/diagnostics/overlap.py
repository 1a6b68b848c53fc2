"""How much the unimodal and fused posteriors of chosen data points overlap, and how much of the
prior each keeps.

Posteriors, for every chosen point at once (vectorised over points):

* unimodal q(z | x_m): ``model.posterior({m: x_m}, "moe")`` -- for Gaussian latents the PoE of
  the prior and expert m, for Laplace latents the expert itself (MMVAE);
* fused: ``poe`` / ``moe`` / ``mopoe`` of all modalities, and the PoE of any given ``subsets``.

Each posterior is a uniform mixture of C factorised components with locations / scales (P, C, D).

Figures (all in nats):

* ``bhattacharyya``: BC(p, q) = exp(-D_B) with, for diagonal Gaussians,
  D_B = 1/8 (mu1 - mu2)^T S^-1 (mu1 - mu2) + 1/2 log(det S / sqrt(det S1 det S2)), S = (S1 + S2) / 2;
  1 = identical, 0 = disjoint. Gaussian latents only (NaN otherwise).
* ``symmetric_kl``: KL(p || q) + KL(q || p), closed form for diagonal Gaussians.
* ``fused_vs_unimodal``: KL(fused || q(z | x_m)); closed form when the fused posterior is one
  Gaussian (PoE), otherwise Monte Carlo with stratified samples (``n_mc`` per component) and its
  standard error.
* ``kl_prior``: KL(q || p(z)) -- information the posterior holds beyond the prior (closed form for
  one Gaussian, Monte Carlo for mixtures and Laplace latents).
* ``log_volume_ratio``: log of (posterior volume / prior volume) = 1/2 (log det Cov_q - log det
  Cov_p), with Cov_p = I for the N(0, I) prior and 2 I for the Laplace(0, 1) prior (a Laplace of
  scale b has variance 2 b^2); the covariance of a mixture is its moment-matched one. 0 = keeps
  all of the prior's spread, -D * 2.3 = one tenth of the prior's standard deviation in every
  direction.

2-D view (for drawing): for D = 2 the latent itself (``identity``); for D > 2 ``pca``
projects onto the top-2 principal directions V (D, 2) (scikit-learn's PCA) of all the component
means shown (over all chosen points and posteriors), or ``first`` onto the first two latent axes. The projected means
are mu V and the projected covariances the full 2x2 matrices V^T diag(sigma^2) V (ellipses).
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.distributions import Normal, kl_divergence

from ..fusion import FUSIONS, Posterior
from .likelihood import as_inputs
from .rng import seeded_generator

__all__ = [
    "bhattacharyya_coefficient",
    "gaussian_kl",
    "symmetric_kl",
    "mc_kl",
    "kl_to_prior",
    "project_2d",
    "posterior_overlap",
]


def gaussian_kl(loc1: Tensor, log_scale1: Tensor, loc2: Tensor, log_scale2: Tensor) -> Tensor:
    """KL(N(loc1, diag s1^2) || N(loc2, diag s2^2)) = 1/2 sum_d (s1^2/s2^2 + (mu1 - mu2)^2/s2^2 - 1
    - log(s1^2/s2^2)), summed over the last axis (``torch.distributions.kl_divergence``)."""
    p = Normal(loc1, torch.exp(log_scale1), validate_args=False)
    q = Normal(loc2, torch.exp(log_scale2), validate_args=False)
    return kl_divergence(p, q).sum(-1)


def symmetric_kl(loc1: Tensor, log_scale1: Tensor, loc2: Tensor, log_scale2: Tensor) -> Tensor:
    return gaussian_kl(loc1, log_scale1, loc2, log_scale2) + gaussian_kl(loc2, log_scale2, loc1, log_scale1)


def bhattacharyya_coefficient(loc1: Tensor, log_scale1: Tensor, loc2: Tensor, log_scale2: Tensor) -> Tensor:
    """BC of two diagonal Gaussians (last axis = dimensions)."""
    v1, v2 = torch.exp(2 * log_scale1), torch.exp(2 * log_scale2)
    v = 0.5 * (v1 + v2)
    d_b = (0.125 * (loc1 - loc2) ** 2 / v + 0.5 * (torch.log(v) - 0.5 * (torch.log(v1) + torch.log(v2)))).sum(-1)
    return torch.exp(-d_b)


def mc_kl(post: Posterior, log_density, n: int = 1000, generator: torch.Generator | None = None
          ) -> tuple[Tensor, Tensor]:
    """KL(post || r) by stratified Monte Carlo: ``n`` samples per component of the (mixture)
    posterior (from ``generator``), ``log_density(z)`` = log r(z) at z (C, n, B, D) -> (C, n, B).
    Returns (kl, stderr), each (B,): kl = (1/C) sum_c mean_k f, stderr = sqrt(sum_c var_c / n) / C."""
    z = post.rsample(n, generator=generator).detach()
    f = post.log_prob(z) - log_density(z)  # (C, n, B)
    C = f.shape[0]
    kl = f.mean(1).mean(0)
    var = f.var(1) if n > 1 else torch.full_like(f[:, 0], float("nan"))
    return kl, (var.sum(0) / n).sqrt() / C


def kl_to_prior(post: Posterior, prior, n: int = 1000, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor]:
    """KL(q || p(z)) per data point: closed form for one Gaussian component (stderr 0), else MC."""
    if post.family == "gaussian" and post.n_components == 1:
        kl = gaussian_kl(post.loc[0], post.log_scale[0], torch.zeros_like(post.loc[0]), torch.zeros_like(post.loc[0]))
        return kl, torch.zeros_like(kl)
    return mc_kl(post, lambda z: prior.log_prob(z).sum(-1), n, generator)


def _log_volume_ratio(loc: Tensor, log_scale: Tensor, family: str) -> Tensor:
    """1/2 (log det Cov_q - log det Cov_p) with Cov_q the (moment-matched) covariance of the
    posterior and Cov_p that of the standard prior; loc/log_scale (C, B, D) -> (B,)."""
    unit_var = 2.0 if family == "laplace" else 1.0  # variance of the standard prior: Laplace(0, 1) has 2
    var = torch.exp(2 * log_scale) * unit_var  # Laplace variance = 2 b^2
    D = loc.shape[-1]
    if loc.shape[0] == 1:
        log_det = torch.log(var[0]).sum(-1)
    else:
        m = loc.mean(0)
        second = (torch.diag_embed(var) + loc.unsqueeze(-1) * loc.unsqueeze(-2)).mean(0)
        cov = second - m.unsqueeze(-1) * m.unsqueeze(-2)
        log_det = torch.linalg.slogdet(cov)[1]
    return 0.5 * (log_det - D * math.log(unit_var))


def project_2d(means: Tensor, method: str = "pca") -> tuple[Tensor, str]:
    """Basis V (D, 2) of the 2-D view for a set of means (N, D) (see the module docstring)."""
    D = means.shape[-1]
    if D == 1:
        raise ValueError("a 1-D latent has no 2-D view")
    if D == 2 or method == "identity":
        return torch.eye(D, 2, dtype=means.dtype, device=means.device), "identity"
    if method == "first":
        return torch.eye(D, 2, dtype=means.dtype, device=means.device), "first"
    if method != "pca":
        raise ValueError(f"unknown projection {method!r}; choose pca, first or identity")
    if means.shape[0] < 2 or float((means - means.mean(0, keepdim=True)).abs().max()) == 0.0:
        return torch.eye(D, 2, dtype=means.dtype, device=means.device), "first"
    from sklearn.decomposition import PCA  # lazy: only D > 2 latents need it

    pca = PCA(n_components=2, svd_solver="full").fit(means.detach().cpu().double().numpy())
    V = torch.as_tensor(pca.components_.T.copy(), dtype=means.dtype, device=means.device)  # (D, 2), orthonormal
    return V, "pca"


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def posterior_overlap(
    model,
    data,
    points: Sequence[int] | None = None,
    fusions: Sequence[str] = FUSIONS,
    subsets: Sequence[Sequence[str]] = (),
    n_mc: int = 1000,
    projection: str = "pca",
    seed: int | None = 0,
) -> dict:
    """Parameters, 2-D views and overlap figures of the unimodal and fused posteriors of the data
    points ``points`` (indices into ``data``; default: the first 5). Arrays have a leading axis
    over the chosen points (numpy); see the module docstring for every figure."""
    x_all, labels = as_inputs(model, data)
    n = next(iter(x_all.values())).shape[0]
    points = list(range(min(5, n))) if points is None else [int(p) for p in points]
    if not points or min(points) < -n or max(points) >= n:
        raise ValueError(f"points must be indices into the {n} data points, got {points}")
    idx = torch.tensor(points, device=next(iter(x_all.values())).device)
    x = {k: v[idx] for k, v in x_all.items()}
    names = list(x)
    if model.family != "gaussian":
        fusions = [f for f in fusions if f == "moe"]
        subsets = [s for s in subsets if len(s) == 1]
    posts: dict[str, tuple[str, Posterior]] = {}
    generator = seeded_generator(seed, model.device)
    with torch.no_grad():
        for m in names:
            posts[m] = ("unimodal", model.posterior({m: x[m]}, "moe", validate=False))
        for f in fusions:
            posts[f] = ("fused", model.posterior(x, f, validate=False))
        for s in subsets:
            s = [k for k in names if k in set(s)]
            posts[f"poe[{','.join(s)}]"] = ("fused", model.posterior(x, "mopoe", subsets=[s], validate=False))

        all_means = torch.cat([p.loc.reshape(-1, p.loc.shape[-1]) for _, p in posts.values()])
        V, method = project_2d(all_means, projection)
        prior = model.prior()
        out_posts = {}
        for key, (kind, p) in posts.items():
            kl, kl_se = kl_to_prior(p, prior, n_mc, generator)
            var = torch.exp(2 * p.log_scale)  # (C, P, D)
            cov2d = torch.einsum("di,cpd,dj->pcij", V, var, V)
            out_posts[key] = {
                "kind": kind,
                "subsets": [list(s) for s in p.subsets],
                "loc": _np(p.loc.transpose(0, 1)),
                "scale": _np(torch.exp(p.log_scale).transpose(0, 1)),
                "loc2d": _np((p.loc @ V).transpose(0, 1)),
                "cov2d": _np(cov2d),
                "mean": _np(p.mean),
                "kl_prior": _np(kl),
                "kl_prior_stderr": _np(kl_se),
                "log_volume_ratio": _np(_log_volume_ratio(p.loc, p.log_scale, p.family)),
            }
        pairs = []
        for a, b in itertools.combinations(names, 2):
            pa, pb = posts[a][1], posts[b][1]
            args = (pa.loc[0], pa.log_scale[0], pb.loc[0], pb.log_scale[0])
            if model.family == "gaussian":
                kl_ab, kl_ba = gaussian_kl(*args), gaussian_kl(*args[2:], *args[:2])
                bc = bhattacharyya_coefficient(*args)
                se = torch.zeros_like(kl_ab)
            else:
                kl_ab, se_ab = mc_kl(pa, lambda z: pb.log_prob(z), n_mc, generator)
                kl_ba, se_ba = mc_kl(pb, lambda z: pa.log_prob(z), n_mc, generator)
                bc, se = torch.full_like(kl_ab, float("nan")), (se_ab ** 2 + se_ba ** 2).sqrt()
            pairs.append({"a": a, "b": b, "bhattacharyya": _np(bc), "symmetric_kl": _np(kl_ab + kl_ba),
                          "symmetric_kl_stderr": _np(se), "kl_ab": _np(kl_ab), "kl_ba": _np(kl_ba)})
        fused_vs = []
        for key, (kind, p) in posts.items():
            if kind != "fused":
                continue
            for m in names:
                u = posts[m][1]
                if p.family == "gaussian" and p.n_components == 1:
                    kl = gaussian_kl(p.loc[0], p.log_scale[0], u.loc[0], u.log_scale[0])
                    se, how = torch.zeros_like(kl), "closed form"
                else:
                    kl, se = mc_kl(p, lambda z, u=u: u.log_prob(z), n_mc, generator)
                    how = "monte carlo"
                fused_vs.append({"fused": key, "unimodal": m, "kl": _np(kl), "stderr": _np(se), "method": how})
    return {
        "points": points,
        "labels": None if labels is None else _np(labels[torch.as_tensor(points)]),
        "modalities": names,
        "latent_dim": model.latent_dim,
        "family": model.family,
        "projection": {"method": method, "basis": _np(V)},
        "posteriors": out_posts,
        "pairs": pairs,
        "fused_vs_unimodal": fused_vs,
        "n_mc": n_mc,
    }
