"""Objectives (ELBO, IWAE(K)) and gradient estimators (reparameterised, DReG, STL) for every fusion.

Notation: x = (x_1..x_M), components c = 1..C of the fused posterior (see :mod:`mmvae.fusion`),
K samples z_{c,k} ~ q_c drawn from *every* component (stratified sampling), and log-weights

    log w_{c,k} = log p(z_{c,k}) + sum_m lambda_m log p(x_m | z_{c,k}) - log q(z_{c,k} | x),

where q is the mixture (1/C) sum_c' q_c' for MoE / MoPoE and q_c itself for PoE. All bounds are
computed from log-weights with logsumexp; weights are never exponentiated.

Bounds (per data point):

* ``elbo``: mean of log w (for mixtures the stratified ELBO, Shi et al. 2019, eq. 3 with K = 1).
* IWAE(K), Burda et al. 2015, eq. 8: log (1/K) sum_k w_k.
  For mixtures (MMVAE, Shi et al. 2019, sec. 3 and appendix): ``tight`` is
  log (1/(CK)) sum_{c,k} w_{c,k}, a valid importance-sampling bound because stratified samples
  weighted against the mixture density are unbiased for p(x); ``looser`` is
  (1/C) sum_c log (1/K) sum_k w_{c,k} (MMVAE's eq. 4), lower by Jensen's inequality.
* PoE training (MVAE, Wu & Goodman 2018, sec. 3.2) sums one bound per term: the full set and each
  singleton, each reconstructing only the modalities it fuses.

Gradient estimators for the encoder parameters phi (the decoder gradient is always the plain one,
sum_s omega_s d log p_theta(x | z_s) / d theta with omega_s = d bound / d log w_s):

* ``iwae`` / ``elbo``: plain reparameterised gradient (path and score terms).
* ``stl`` (Roeder et al. 2017): drops the score term d log q / d phi at fixed z. Unbiased for the
  ELBO; for K > 1 it is biased for the IWAE gradient (Tucker et al. 2018, sec. 4), as published.
* ``dreg`` (Tucker et al. 2018, eq. 5): for one component, sum_k w~_k^2 d log w_k / dz dz/dphi.
  **Mixtures.** The score term of the mixture density, d log q_mix / dphi = sum_j r_j d log q_j /
  dphi with responsibilities r_j(z) = q_j(z) / sum_j' q_j'(z), cannot be doubly reparameterised
  as a whole from a sample of component c (the official MMVAE code does so and is biased when the
  experts differ). We reparameterise only the own-component part, which the identity
  E_{q_c}[f d log q_c / dphi] = E_eps[df/dz dz/dphi] allows with f = omega r_c, and keep the
  cross-component parts as score-function terms. Per slot (c, k):

      [omega (1 - r_c (1 - w~)) d log w/dz - omega r_c d log r_c/dz] dz/dphi
        - sum_{j != c} omega r_j d log q_j(z)/dphi |_z,

  which is exactly unbiased for the IWAE gradient and equals Tucker's DReG when C = 1 (r_c = 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from .distributions import check_choice, standard_log_prob
from .fusion import Posterior
from .model import MultimodalVAE

ESTIMATORS = ("elbo", "iwae", "dreg", "stl")
BOUNDS = ("tight", "looser")


@dataclass
class ObjectiveOutput:
    """``loss``: scalar to minimise (its gradient is the chosen estimator's); ``value``: (B,)
    per-data-point objective value (detached); ``log_weights``: (C, K, B), detached."""

    loss: Tensor
    value: Tensor
    log_weights: Tensor


def log_joint(model: MultimodalVAE, x: Mapping[str, Tensor], z: Tensor, post: Posterior) -> Tensor:
    """log p(z) + sum_m lambda_m log p(x_m | z) at z of shape (C, K, B, D) -> (C, K, B).

    For a mixture every component reconstructs every modality in ``x``; for MVAE's separate terms
    component c reconstructs only the modalities it fuses (decoded only where needed).
    """
    lp = standard_log_prob(model.family, z)
    if post.mixture:
        for term in model.log_likelihood(x, z).values():
            lp = lp + term
        return lp
    for name in model.names:
        if name not in x:
            continue
        idx, span = _components_of(post.subsets, name, z.device)
        zs = z[span] if span is not None else z[idx]
        params = model.decode(zs, [name])[name]
        lik = model.likelihoods[name]
        term = lik.log_prob(params, x[name])
        if lik.weight != 1.0:
            term = term * lik.weight
        lp = lp.index_add(0, idx, term)
    return lp


_COMPONENTS: dict = {}


def _components_of(subsets, name: str, device) -> tuple[Tensor, slice | None]:
    """Indices of the components that fuse ``name`` (a tensor, built once) and the same as a
    slice when they are consecutive (so z is selected without a copy)."""
    key = (tuple(subsets), name, str(device))
    hit = _COMPONENTS.get(key)
    if hit is None:
        comps = [c for c, s in enumerate(subsets) if name in s]
        span = slice(comps[0], comps[-1] + 1) if comps == list(range(comps[0], comps[-1] + 1)) else None
        hit = _COMPONENTS[key] = (torch.tensor(comps, device=device), span)
    return hit


def log_posterior(post: Posterior, z: Tensor, detach_params: bool = False) -> tuple[Tensor, Tensor | None]:
    """log q(z) for each sample (C, K, B) and, for mixtures of C > 1, the per-component
    log-densities (C', C, K, B) it was computed from (else None)."""
    if not post.mixture or post.n_components == 1:
        return post.own_log_prob(z, detach_params), None
    comp = post.component_log_prob(z, detach_params)
    return torch.logsumexp(comp, 0) - math.log(post.n_components), comp


def combine(lw: Tensor, estimator: str, mixture: bool, bound: str = "tight") -> Tensor:
    """Per-data-point objective value from log-weights (C, K, B) -> (B,)."""
    C, K = lw.shape[:2]
    if estimator == "elbo":
        per = lw.mean(1)
        return per.mean(0) if mixture else per.sum(0)
    if not mixture:
        return (torch.logsumexp(lw, 1) - math.log(K)).sum(0)
    if bound == "tight":
        return torch.logsumexp(lw.flatten(0, 1), 0) - math.log(C * K)
    return (torch.logsumexp(lw, 1) - math.log(K)).mean(0)


def normalized_weights(lw: Tensor, mixture: bool, bound: str) -> tuple[Tensor, Tensor]:
    """(w~, omega): the self-normalised weights of each IWAE sum and omega = d value / d log w."""
    C, K, B = lw.shape
    if mixture and bound == "tight":
        w = torch.softmax(lw.reshape(C * K, B), 0).reshape(C, K, B)
        return w, w
    w = torch.softmax(lw, 1)
    return w, (w / C if mixture else w)


def objective(
    model: MultimodalVAE,
    x: Mapping[str, Tensor],
    estimator: str = "iwae",
    K: int = 1,
    fusion: str | None = None,
    bound: str = "tight",
    validate: bool = True,
    *,
    generator: torch.Generator | None = None,
) -> ObjectiveOutput:
    """The training objective of ``fusion`` (default: the model's) with ``estimator``'s gradient.

    PoE: MVAE's sum of the joint and unimodal terms. MoE and MoPoE: the stratified bound over the
    mixture components (``bound`` = ``tight`` or ``looser``). K samples per component, drawn
    from ``generator`` when given.
    """
    check_choice(estimator, ESTIMATORS, "estimator")
    check_choice(bound, BOUNDS, "bound")
    if not (isinstance(K, int) and K >= 1):
        raise ValueError(f"K (importance samples) must be a positive integer, got {K!r}")
    post = model.posterior(x, fusion, training=True, validate=validate)
    B = post.batch_size
    single = not post.mixture or post.n_components == 1

    if estimator in ("elbo", "iwae"):
        if single:
            z, eps = post._rsample_with_noise(K, generator=generator)
            log_q = post._own_log_prob_from_noise(eps) if eps is not None else post.own_log_prob(z)
        else:
            z = post.rsample(K, generator=generator)
            log_q, _ = log_posterior(post, z)
        lw = log_joint(model, x, z, post) - log_q
        value = combine(lw, estimator, post.mixture, bound)
        return ObjectiveOutput(-value.mean(), value.detach(), lw.detach())

    # DReG / STL: the path through z carries the encoder gradient, densities of q are held fixed.
    # DReG scales the gradient of each slot's log-weight w.r.t. z by ``factor``: through a hook on
    # z_path (prior and decoders) and, for mixtures, a hook on log q (which depends on z alone, as
    # its parameters are detached), so the component log-densities are evaluated once at z and
    # shared with the own-component responsibility term, whose z-gradient is not scaled.
    dreg = estimator == "dreg"
    z = post.rsample(K, generator=generator)
    z_path = z.clone() if dreg else z
    comp = lse = None
    if single:
        log_q = post.own_log_prob(z_path, detach_params=True)
    else:
        comp = post.component_log_prob(z, detach_params=True)  # (C', C, K, B)
        lse = torch.logsumexp(comp, 0)
        log_q = lse - math.log(post.n_components)
    lw = log_joint(model, x, z_path, post) - log_q
    with torch.no_grad():
        w, omega = normalized_weights(lw, post.mixture, bound)
        value = combine(lw, "iwae", post.mixture, bound)
        if dreg:
            if comp is not None:
                resp = torch.softmax(comp, 0)  # r_j(z_c): (C', C, K, B)
                r_own = torch.diagonal(resp, 0, 0, 1).movedim(-1, 0)  # (C, K, B)
                factor = 1.0 - r_own * (1.0 - w)
            else:
                factor = 1.0 - (1.0 - w)  # r_own = 1
    if dreg and z.requires_grad:
        z_path.register_hook(lambda g: g * factor.unsqueeze(-1))
        if comp is not None:
            log_q.register_hook(lambda g: g * factor)
    surrogate = (omega * lw).sum((0, 1))
    if dreg and comp is not None:
        # own-component part of the mixture score, doubly reparameterised: -omega r_c d log r_c/dz
        log_r_own = torch.diagonal(comp, 0, 0, 1).movedim(-1, 0) - lse
        surrogate = surrogate - (omega * r_own * log_r_own).sum((0, 1))
        # cross-component parts: plain score-function terms at fixed z
        comp_score = post.component_log_prob(z.detach())
        with torch.no_grad():
            cross = resp.clone()
            torch.diagonal(cross, 0, 0, 1).zero_()
        surrogate = surrogate - (omega.unsqueeze(0) * cross * comp_score).sum((0, 1, 2))
    return ObjectiveOutput(-surrogate.sum() / B, value, lw.detach())


@torch.no_grad()
def log_weights(
    model: MultimodalVAE,
    x: Mapping[str, Tensor],
    K: int,
    fusion: str | None = None,
    subsets=None,
    validate: bool = True,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Log-weights (C, K, B) of the fused posterior of the modalities in ``x`` (all reconstructed),
    K samples from each of its C components, weighted against the mixture density."""
    post = model.posterior(x, fusion, subsets=subsets, validate=validate)
    z = post.rsample(K, generator=generator)
    log_q, _ = log_posterior(post, z)
    return log_joint(model, x, z, post) - log_q


@torch.no_grad()
def bounds(
    model: MultimodalVAE,
    x: Mapping[str, Tensor],
    K: int = 1,
    fusion: str | None = None,
    validate: bool = True,
    *,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Per-data-point ``elbo`` and ``iwae`` (tight IWAE(K), K samples per component) of log p(x)."""
    lw = log_weights(model, x, K, fusion, validate=validate, generator=generator)
    return {"elbo": combine(lw, "elbo", True), "iwae": combine(lw, "iwae", True, "tight")}


def effective_sample_size(lw: Tensor, dim: int | tuple[int, ...] = (0, 1)) -> Tensor:
    """Kish's effective sample size (sum w)^2 / sum w^2 of importance weights, from log-weights
    over the sample axes ``dim`` (default: components and samples of a (C, K, B) tensor -> (B,);
    ``dim=1``: per component, (C, B)). Between 1 (one weight dominates) and the number of weights
    (all equal). The one formula used by training and the diagnostics."""
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    return ess_from_log_sums(torch.logsumexp(lw, dims), torch.logsumexp(2 * lw, dims))


def ess_from_log_sums(log_sum_w: Tensor, log_sum_w2: Tensor) -> Tensor:
    """(sum w)^2 / sum w^2 from log sum w and log sum w^2 (e.g. running sums over chunks)."""
    return torch.exp(2 * log_sum_w - log_sum_w2)
