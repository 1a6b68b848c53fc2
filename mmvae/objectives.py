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
  singleton, each term the PoE posterior of its subset reconstructing only the modalities it
  fuses (:func:`mvae_terms`, which stacks the independent terms along the batch axis). Every
  term (and every mixture) is estimated by the same estimator function, one small function per
  estimator (as in the MMVAE and Pyro code), given log p(x, z) and the posterior q.

Gradient estimators for the encoder parameters phi (the decoder gradient is always the plain one,
sum_s omega_s d log p_theta(x | z_s) / d theta with omega_s = d bound / d log w_s):

* ``iwae`` / ``elbo``: plain reparameterised gradient (path and score terms).
* ``stl`` (Roeder et al. 2017): drops the score term d log q / d phi at fixed z. At K = 1 it
  trains the (stratified) ELBO, (1/C) sum_c log w_c, for every fusion rule, and is unbiased: the
  dropped score terms average to sum_c (1/C) E_{q_c}[d log q_mix / dphi] = E_{q_mix}[d log q_mix
  / dphi] = 0. For K > 1 it trains IWAE(K) and is biased (Tucker et al. 2018, sec. 4), as
  published. (Under the ``tight`` bound a mixture of C components with K = 1 would be an IWAE
  with C samples, for which STL is biased too; that is why K = 1 means the ELBO here.)
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

**Private latents** (MMVAE+, Palumbo, Daunhawer & Vogt 2023). With ``private_dim`` > 0 the latent
is u = [z | w_1 .. w_M], p(u) the standard prior over all of it, and every component of q is
factorised over u (:mod:`mmvae.fusion`): w_m ~ q(w_m | x_m) where the component encodes x_m, else
w_m ~ r_m. Everything above holds with z replaced by u, unchanged: the log-weights
log w = log p(u) + sum_m lambda_m log p(x_m | z, w_m) - log q(u | x) are weighed against the
full mixture density over u, so every bound is a valid bound on log p(x) and DReG / STL keep
their properties (``tests/test_core_private.py`` checks DReG against IWAE). A component that
does not encode x_m still reconstructs it (MoE, MoPoE), from its own z and w_m ~ r_m: MMVAE+'s
cross-modal term, which pushes what the modalities share into z. Its weight also holds
log p(w_m) - log r_m(w_m), whose mean over r_m is -KL(r_m || p(w_m)): this term is part of the
bound here, while the MMVAE+ code (and multivae's port) leaves it out, so their objective is not a
bound on log p(x) when r_m differs from the prior. In MVAE's subset terms (PoE) the unimodal term
of x_m does not reconstruct x_n, so w_n (n != m) contributes only log p(w_n) - log r_n(w_n):
exactly 0 with ``cross_private="prior"``, and -KL(r_n || p) on average with ``"auxiliary"``
(it pulls r_n to the prior; nothing else in PoE's objective trains r_n).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import Tensor

from .distributions import LOG_SCALE_MAX, LOG_SCALE_MIN, check_choice, standard_log_prob, standard_noise
from .fusion import FusionError, Posterior, product_of_experts, subsets_for
from .model import MultimodalVAE

ESTIMATORS = ("elbo", "iwae", "dreg", "stl")
BOUNDS = ("tight", "looser")


@dataclass
class ObjectiveOutput:
    """``loss``: scalar to minimise (its gradient is the chosen estimator's); ``value``: (B,)
    per-data-point objective value (detached); ``log_weights``: (T, K, B), detached, the
    components of every term stacked (T = :func:`noise_slots`)."""

    loss: Tensor
    value: Tensor
    log_weights: Tensor


# ---------------------------------------------------------------- densities and bounds
def log_joint(model: MultimodalVAE, x: Mapping[str, Tensor], z: Tensor, post: Posterior | None = None) -> Tensor:
    """log p(z) + sum_m lambda_m log p(x_m | z) for every modality in ``x``, at z (..., B, D) -> (..., B).
    (``post`` is not used; it is accepted for callers written against the older signature.)"""
    lp = standard_log_prob(model.family, z)
    for term in model.log_likelihood(x, z).values():
        lp = lp + term
    return lp


def log_posterior(post: Posterior, z: Tensor, detach_params: bool = False) -> tuple[Tensor, Tensor | None]:
    """log q(z) of the (mixture) posterior for samples (C, K, B, D) -> (C, K, B) and, for C > 1,
    the per-component log-densities (C', C, K, B) it was computed from (else None)."""
    if post.n_components == 1:
        return post.own_log_prob(z, detach_params), None
    comp = post.component_log_prob(z, detach_params)
    return torch.logsumexp(comp, 0) - math.log(post.n_components), comp


def combine(lw: Tensor, estimator: str, bound: str = "tight") -> Tensor:
    """Per-data-point bound from the log-weights (C, K, B) of one posterior -> (B,): the
    (stratified) ELBO for ``elbo``, else IWAE(K), ``tight`` or ``looser`` (equal when C = 1)."""
    C, K = lw.shape[:2]
    if estimator == "elbo":
        return lw.mean((0, 1))
    if bound == "tight":
        return torch.logsumexp(lw.flatten(0, 1), 0) - math.log(C * K)
    return (torch.logsumexp(lw, 1) - math.log(K)).mean(0)


def normalized_weights(lw: Tensor, bound: str) -> tuple[Tensor, Tensor]:
    """(w~, omega): the self-normalised weights of each IWAE sum and omega = d value / d log w."""
    C, K, B = lw.shape
    if bound == "tight":
        w = torch.softmax(lw.reshape(C * K, B), 0).reshape(C, K, B)
        return w, w
    w = torch.softmax(lw, 1)
    return w, w / C


# ---------------------------------------------------------------- estimators
# Each takes log_p, the model's log p(x, z) at z (S, K, B, D) -> (S, K, B) for the modalities the
# term reconstructs, the posterior q, its standard noise eps (S, K, B, D), the bound and ``own``
# (S, B), the components sampled for each data point (None: all C in order, S = C; see
# ``subsample``), and returns (surrogate (B,), value (B,), log_weights (S, K, B)): the gradient of
# the surrogate is the estimator's, value and log-weights are detached. Densities of q are always
# those of the full mixture.
LogP = Callable[[Tensor], Tensor]
Estimate = tuple[Tensor, Tensor, Tensor]


def _sample(post: Posterior, eps: Tensor, own: Tensor | None) -> Tensor:
    """z = loc + scale * eps (S, K, B, D) from the components ``own`` (S, B) of each data point
    (None: every component in order, S = C)."""
    if own is None:
        return post.rsample_with_noise(eps.shape[1], noise=eps)[0]
    index = own.unsqueeze(-1).expand(-1, -1, post.loc.shape[-1])  # (S, B, D)
    loc, log_scale = post.loc.gather(0, index), post.log_scale.gather(0, index)
    return loc.unsqueeze(1) + log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp().unsqueeze(1) * eps


def _own(t: Tensor, own: Tensor | None) -> Tensor:
    """The entries of component densities t (C', S, K, B) at each slot's own component -> (S, K, B)."""
    if own is None:
        return torch.diagonal(t, 0, 0, 1).movedim(-1, 0)
    S, K, B = t.shape[1:]
    return t.gather(0, own[None, :, None, :].expand(1, S, K, B)).squeeze(0)


def _reparameterised_log_weights(log_p: LogP, post: Posterior, eps: Tensor, own: Tensor | None = None) -> Tensor:
    if own is not None:
        z = _sample(post, eps, own)
        return log_p(z) - log_posterior(post, z)[0]
    z, eps = post.rsample_with_noise(eps.shape[1], noise=eps)
    if post.n_components == 1:
        log_q = post.log_prob_from_noise(eps)  # = log q(z), fewer operations
    else:
        log_q, _ = log_posterior(post, z)
    return log_p(z) - log_q


def elbo_estimator(log_p: LogP, post: Posterior, eps: Tensor, bound: str = "tight", own: Tensor | None = None
                   ) -> Estimate:
    """The (stratified) ELBO, mean over components and samples of log w; reparameterised gradient."""
    lw = _reparameterised_log_weights(log_p, post, eps, own)
    value = combine(lw, "elbo")
    return value, value.detach(), lw.detach()


def iwae_estimator(log_p: LogP, post: Posterior, eps: Tensor, bound: str = "tight", own: Tensor | None = None
                   ) -> Estimate:
    """IWAE(K) (``bound`` for mixtures); plain reparameterised gradient (path and score terms)."""
    lw = _reparameterised_log_weights(log_p, post, eps, own)
    value = combine(lw, "iwae", bound)
    return value, value.detach(), lw.detach()


def stl_estimator(log_p: LogP, post: Posterior, eps: Tensor, bound: str = "tight", own: Tensor | None = None
                  ) -> Estimate:
    """STL (Roeder et al. 2017): the densities of q held fixed, so the score term is dropped.
    K = 1: the (stratified) ELBO with weights 1/C, unbiased; K > 1: IWAE(K) weights, biased."""
    C, K = eps.shape[:2]
    z = _sample(post, eps, own)
    log_q, _ = log_posterior(post, z, detach_params=True)
    lw = log_p(z) - log_q
    with torch.no_grad():
        if K == 1:
            omega = torch.full_like(lw, 1.0 / C)
            value = combine(lw, "elbo")
        else:
            _, omega = normalized_weights(lw, bound)
            value = combine(lw, "iwae", bound)
    return (omega * lw).sum((0, 1)), value, lw.detach()


def dreg_estimator(log_p: LogP, post: Posterior, eps: Tensor, bound: str = "tight", own: Tensor | None = None
                   ) -> Estimate:
    """DReG (Tucker et al. 2018), and its exactly unbiased form for mixtures (module docstring).

    The gradient of each slot's log-weight w.r.t. z is scaled by ``factor`` = 1 - r_c (1 - w~)
    (= w~ for one component): through a hook on z_path (prior and decoders) and, for mixtures, a
    hook on log q (which depends on z alone, as its parameters are detached), so the component
    log-densities are evaluated once at z and shared with the own-component responsibility term,
    whose z-gradient is not scaled."""
    K = eps.shape[1]
    z = _sample(post, eps, own)
    z_path = z.clone()
    if post.n_components == 1:
        log_q, comp, lse = post.own_log_prob(z_path, detach_params=True), None, None
    else:
        comp = post.component_log_prob(z, detach_params=True)  # (C', S, K, B)
        lse = torch.logsumexp(comp, 0)
        log_q = lse - math.log(post.n_components)
    lw = log_p(z_path) - log_q
    with torch.no_grad():
        w, omega = normalized_weights(lw, bound)
        value = combine(lw, "iwae", bound)
        if comp is not None:
            resp = torch.softmax(comp, 0)  # r_j(z_c): (C', S, K, B)
            r_own = _own(resp, own)  # (S, K, B)
            factor = 1.0 - r_own * (1.0 - w)
        else:
            factor = w  # r_own = 1
    if z.requires_grad:
        z_path.register_hook(lambda g: g * factor.unsqueeze(-1))
        if comp is not None:
            log_q.register_hook(lambda g: g * factor)
    surrogate = (omega * lw).sum((0, 1))
    if comp is not None:
        # own-component part of the mixture score, doubly reparameterised: -omega r_c d log r_c/dz
        log_r_own = _own(comp, own) - lse
        surrogate = surrogate - (omega * r_own * log_r_own).sum((0, 1))
        # cross-component parts: plain score-function terms at fixed z
        comp_score = post.component_log_prob(z.detach())
        with torch.no_grad():
            cross = resp - _own_one_hot(resp, own) * resp
        surrogate = surrogate - (omega.unsqueeze(0) * cross * comp_score).sum((0, 1, 2))
    return surrogate, value, lw.detach()


def _own_one_hot(t: Tensor, own: Tensor | None) -> Tensor:
    """1 where component c' of t (C', S, K, B) is the slot's own component, else 0."""
    C, S, K, B = t.shape
    if own is None:
        return torch.eye(C, S, dtype=t.dtype, device=t.device)[:, :, None, None].expand(C, S, K, B)
    own = own[:, None, :].expand(S, K, B)
    return (torch.arange(C, device=t.device)[:, None, None, None] == own.unsqueeze(0)).to(t.dtype)


ESTIMATOR_FUNCTIONS: dict[str, Callable[..., Estimate]] = {
    "elbo": elbo_estimator, "iwae": iwae_estimator, "stl": stl_estimator, "dreg": dreg_estimator}


# ---------------------------------------------------------------- the training objective
def mvae_terms(model: MultimodalVAE, x: Mapping[str, Tensor], validate: bool = True) -> tuple[Posterior, LogP, int]:
    """MVAE's terms (Wu & Goodman 2018, sec. 3.2, no extra random subsets): the PoE posterior of
    all present modalities and, when there are several, each unimodal posterior, T terms, each
    reconstructing only the modalities it fuses.

    The terms are independent one-component posteriors, so they are stacked along the batch axis:
    returns q as one Posterior of batch T*B (column t*B + b: term t, data point b), log p(x_S, z)
    for those columns (each decoder runs once, on the columns of the two terms that hold its
    modality: the joint term and its own), and T.
    """
    if model.family != "gaussian":
        raise FusionError("MVAE's terms are products of experts, and a product of Laplace experts has no closed "
                          "form; use fusion='moe' with Laplace latents, or latent='gaussian'")
    experts = model.encode(x, validate)
    names, (M, B, _), Dz, D = experts.names, experts.loc.shape, model.latent_dim, model.total_dim
    T = 1 + M if M > 1 else 1
    full = torch.ones(1, M, dtype=torch.bool, device=experts.loc.device)
    mask = torch.cat([full, torch.eye(M, dtype=torch.bool, device=full.device)]) if M > 1 else full  # (T, M)
    loc, log_scale = product_of_experts(experts.loc[..., :Dz], experts.log_scale[..., :Dz], mask)  # (T, B, Dz)
    if model.private_dim:  # [z | w_1 .. w_M]: w_m from q(w_m | x_m) in the terms that fuse x_m, else r_m
        w_loc, w_log_scale = model.private_part(experts, mask)  # (T, B, M_model * Dw)
        loc, log_scale = torch.cat([loc, w_loc], -1), torch.cat([log_scale, w_log_scale], -1)  # (T, B, D)
    post = Posterior(model.family, loc.reshape(1, T * B, D), log_scale.reshape(1, T * B, D), [tuple(names)])

    def log_p(z: Tensor) -> Tensor:  # (1, K, T*B, D) -> (1, K, T*B)
        if T == 1:
            return log_joint(model, x, z)
        K = z.shape[1]
        zt = z.reshape(K, T, B, D)
        per_term = []  # (K, B) for every modality in the joint term, then each singleton
        singles = []
        for i, n in enumerate(names):
            both = torch.stack([zt[:, 0], zt[:, i + 1]], 1)  # (K, 2, B, D): the joint term and its own
            ll = model.log_likelihood({n: x[n]}, both)[n]  # (K, 2, B)
            per_term.append(ll[:, 0])
            singles.append(ll[:, 1])
        lik = torch.stack([torch.stack(per_term).sum(0), *singles], 1)  # (K, T, B)
        return (standard_log_prob(model.family, zt) + lik).reshape(1, K, T * B)

    return post, log_p, T


def noise_slots(fusion: str, n_modalities: int, subsample: int | None = None) -> int:
    """T, the number of sampled components over all terms of the objective (its noise is
    (T, K, B, D)): M + 1 for PoE's MVAE terms (1 for one modality), C for a mixture, or
    ``subsample`` when that is fewer."""
    if fusion == "poe":
        return 1 + n_modalities if n_modalities > 1 else 1
    C = len(subsets_for(fusion, n_modalities))
    return min(C, subsample) if subsample else C


def objective_noise(model: MultimodalVAE, n_modalities: int, K: int, batch_size: int, fusion: str | None = None,
                    generator: torch.Generator | None = None, subsample: int | None = None) -> Tensor:
    """Standard noise (T, K, B, D) for :func:`objective` (from ``generator``, the global RNG when None)."""
    param = next(model.parameters())
    T = noise_slots(fusion or model.fusion, n_modalities, subsample)
    return standard_noise(model.family, (K, T, batch_size, model.total_dim), param.dtype, param.device,
                          generator).transpose(0, 1)


def sample_components(n_components: int, subsample: int, batch_size: int, device=None,
                      generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random set of ``subsample`` of the C components for every data point, drawn
    without replacement: (S, B) component indices (each component is in the set with probability
    S / C)."""
    return torch.rand(n_components, batch_size, device=device, generator=generator).argsort(0)[:subsample]


def check_subsample(subsample, fusion: str, estimator: str, K: int, bound: str,
                    n_components: int | None = None) -> None:
    """Raise a ValueError unless ``subsample`` (None: off) gives an unbiased estimate here.
    ``n_components`` (C, when known): S >= C samples every component, the full objective, which
    every bound allows."""
    if subsample is None:
        return
    if not (isinstance(subsample, int) and subsample >= 1):
        raise ValueError(f"subsample must be a positive integer (components per data point), got {subsample!r}")
    if fusion == "poe":
        raise ValueError("subsample draws components of a mixture: use it with fusion 'moe' or 'mopoe'")
    if n_components is not None and subsample >= n_components:
        return
    elbo = estimator == "elbo" or (estimator == "stl" and K == 1)
    if bound == "tight" and not elbo:
        raise ValueError("subsampling mixture components is unbiased for the ELBO and the 'looser' bound only "
                         "(the 'tight' bound is the log of a sum over every component); use bound='looser'")


def objective(
    model: MultimodalVAE,
    x: Mapping[str, Tensor],
    estimator: str = "iwae",
    K: int = 1,
    fusion: str | None = None,
    bound: str = "tight",
    validate: bool = True,
    generator: torch.Generator | None = None,
    noise: Tensor | None = None,
    subsample: int | None = None,
    components: Tensor | None = None,
) -> ObjectiveOutput:
    """The training objective of ``fusion`` (default: the model's) with ``estimator``'s gradient.

    PoE: MVAE's sum of the joint and unimodal terms. MoE and MoPoE: the stratified bound over the
    mixture components (``bound`` = ``tight`` or ``looser``). K samples per component, from
    ``generator`` (the global RNG when None), or from ``noise`` (T, K, B, D), standard noise
    drawn beforehand (:func:`objective_noise`; what a compiled training step is given).

    ``subsample`` = S (mixtures, ELBO or ``looser`` bound): sample only S of the C components of
    each data point, a uniformly random set (:func:`sample_components`, or ``components`` (S, B)
    drawn beforehand), and average over those. Both bounds are means over components of a
    per-component term f_c (log w_c, or log (1/K) sum_k w_{c,k}), each weighed against the full
    mixture density, and each component is in the set with probability S / C, so
    E[(1/S) sum_{c in set} f_c] = (1/C) sum_c f_c: the value and its gradient are unbiased, for
    S / C of the decoder work, at the price of variance between components.
    """
    check_choice(estimator, ESTIMATORS, "estimator")
    check_choice(bound, BOUNDS, "bound")
    if not (isinstance(K, int) and K >= 1):
        raise ValueError(f"K (importance samples) must be a positive integer, got {K!r}")
    n_components = (len(subsets_for(fusion or model.fusion, len(x)))
                    if (fusion or model.fusion) in ("moe", "mopoe") and isinstance(x, Mapping) and x else None)
    check_subsample(subsample, fusion or model.fusion, estimator, K, bound, n_components)
    estimate = ESTIMATOR_FUNCTIONS[estimator]
    fusion = fusion or model.fusion
    if fusion == "poe":
        post, log_p, T = mvae_terms(model, x, validate)
        B = post.batch_size // T
        if noise is None:  # drawn as objective_noise draws it: (K, T, B, D)
            eps = standard_noise(post.family, (1, K, T * B, model.total_dim), post.loc.dtype, post.loc.device,
                                 generator)
        else:
            eps = noise.transpose(0, 1).reshape(1, K, T * B, -1)  # (T, K, B, D) -> (1, K, T*B, D)
        surrogate, value, lw = estimate(log_p, post, eps, bound, None)
        lw = lw.reshape(K, T, B).transpose(0, 1)  # (T, K, B)
        surrogate, value = surrogate.view(T, B).sum(0), value.view(T, B).sum(0)
        return ObjectiveOutput(-surrogate.sum() / B, value, lw)
    post = model.posterior(x, fusion, validate=validate)
    C, own = post.n_components, None
    if subsample is not None and subsample < C:
        own = components if components is not None else sample_components(
            C, subsample, post.batch_size, post.loc.device, generator)
    S = C if own is None else subsample
    if noise is None:
        noise = standard_noise(post.family, (K, S, *post.loc.shape[1:]), post.loc.dtype, post.loc.device,
                               generator).transpose(0, 1)
    surrogate, value, lw = estimate(lambda z: log_joint(model, x, z), post, noise, bound, own)
    return ObjectiveOutput(-surrogate.sum() / post.batch_size, value, lw)


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def log_weights(
    model: MultimodalVAE,
    x: Mapping[str, Tensor],
    K: int,
    fusion: str | None = None,
    subsets=None,
    validate: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Log-weights (C, K, B) of the fused posterior of the modalities in ``x`` (all reconstructed),
    K samples from each of its C components, weighted against the mixture density."""
    post = model.posterior(x, fusion, subsets=subsets, validate=validate)
    z = post.rsample(K, generator)
    log_q, _ = log_posterior(post, z)
    return log_joint(model, x, z) - log_q


@torch.no_grad()
def bounds(
    model: MultimodalVAE,
    x: Mapping[str, Tensor],
    K: int = 1,
    fusion: str | None = None,
    validate: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Per-data-point ``elbo`` and ``iwae`` (tight IWAE(K), K samples per component) of log p(x)."""
    lw = log_weights(model, x, K, fusion, validate=validate, generator=generator)
    return {"elbo": combine(lw, "elbo"), "iwae": combine(lw, "iwae", "tight")}


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
