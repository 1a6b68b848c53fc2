"""Fusion of unimodal experts into a joint posterior: PoE, MoE and MoPoE.

Every fused posterior is held as a set of *components*, one per subset S of the present
modalities, each a factorised Gaussian (or Laplace) with parameters ``(C, B, D)``:

* ``poe`` (Wu & Goodman 2018, eq. 4): one component, q(z | x_S) ∝ p(z) prod_{m in S} q~(z | x_m).
  For Gaussians the product is Gaussian with precision T = T_0 + sum_m T_m and mean
  sum_m T_m mu_m / T (prior included). Computed in log-precision space with logsumexp and softmax
  weights, so tiny and huge variances neither overflow nor lose precision.
* ``moe`` (Shi et al. 2019, eq. 2): the uniform mixture (1/|S|) sum_{m in S} q(z | x_m).
* ``mopoe`` (Sutter et al. 2021, eq. 6): the uniform mixture over the PoEs of all 2^|S| - 1
  non-empty subsets of S. Every subset's PoE includes the prior expert; the official MoPoE code
  (and multivae) adds the prior only to the full set's product.

With Gaussian latents the unimodal posterior q(z | x_m) is the PoE of the prior and expert m, so
``mopoe`` restricted to the full set is ``poe`` and restricted to the singletons is ``moe``.
With Laplace latents there is no closed-form product: ``poe`` and ``mopoe`` of two or more
modalities raise a :class:`FusionError` (of one modality they are that expert), and ``moe`` uses
each expert as the unimodal posterior (as MMVAE does).

**Private latents** (MMVAE+, Palumbo, Daunhawer & Vogt 2023): with ``private_dim`` D_w > 0 the
latent is u = [z | w_1 | ... | w_M] and every component c (subset S_c) is factorised over u:

    q_c(u) = q_c(z) prod_{m in S_c} q(w_m | x_m) prod_{m not in S_c} r_m(w_m),

the shared z fused as above, w_m from its own posterior when x_m is in the subset, else from r_m
(the prior, or MMVAE+'s auxiliary prior with a learned scale). :func:`private_components` builds
the w part; the mixture is still the uniform mixture of these components, so its density, the
samplers and every estimator work over u unchanged.

A :class:`Posterior` is always the uniform mixture of its components (one component: a single
distribution). How the objectives use it (MVAE's sum of subset terms, the stratified mixture
bounds) is :mod:`mmvae.objectives`' business. This module keeps no state: subset masks are built
by :func:`subset_mask`, and a model that fuses every step keeps them as buffers (see
:class:`mmvae.model.MultimodalVAE`).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .distributions import (LOG_SCALE_MAX, LOG_SCALE_MIN, latent_distribution, latent_log_prob, log_prob_from_noise,
                            standard_noise)

FUSIONS = ("poe", "moe", "mopoe")


class FusionError(ValueError):
    """An impossible fusion request (unknown rule, PoE of Laplace experts, no modality)."""


def subsets_for(fusion: str, n: int) -> list[tuple[int, ...]]:
    """The subsets (tuples of modality positions 0..n-1) whose posteriors are the components."""
    if n < 1:
        raise FusionError("no modality given: a posterior needs at least one")
    if fusion == "poe":
        return [tuple(range(n))]
    if fusion == "moe":
        return [(m,) for m in range(n)]
    if fusion == "mopoe":
        return [s for r in range(1, n + 1) for s in itertools.combinations(range(n), r)]
    raise FusionError(f"unknown fusion rule {fusion!r}; choose one of: {', '.join(FUSIONS)}")


def subset_mask(subsets, n: int, device=None) -> Tensor:
    """(C, n) bool: True where modality m is in subset c."""
    mask = torch.zeros(len(subsets), n, dtype=torch.bool)
    for c, s in enumerate(subsets):
        mask[c, list(s)] = True
    return mask.to(device) if device is not None else mask


def product_of_experts(loc: Tensor, log_scale: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Gaussian PoE of the standard-normal prior and the experts selected by ``mask``.

    ``loc``, ``log_scale``: (M, B, D) expert parameters; ``mask``: (C, M) bool. Returns the
    (C, B, D) location and log-scale. The prior N(0, I) is always an expert (log-precision 0).
    """
    M, B, D = loc.shape
    log_prec = -2.0 * log_scale  # (M, B, D)
    prior = loc.new_zeros(1, B, D)
    log_prec = torch.cat([log_prec, prior], 0)  # (M+1, B, D)
    locs = torch.cat([loc, prior], 0)
    included = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], 1)  # (C, M+1): the prior is always in
    masked = log_prec.unsqueeze(0).masked_fill(~included[:, :, None, None], float("-inf"))  # (C, M+1, B, D)
    log_prec_total = torch.logsumexp(masked, dim=1)
    weights = torch.softmax(masked, dim=1)
    fused_loc = (weights * locs.unsqueeze(0)).sum(1)
    return fused_loc, -0.5 * log_prec_total


def private_components(mask: Tensor, w_loc: Tensor, w_log_scale: Tensor, r_log_scale: Tensor
                       ) -> tuple[Tensor, Tensor]:
    """The private part of every component over u: w_m ~ q(w_m | x_m) where ``mask[c, m]``, else
    w_m ~ r_m = family(0, exp(r_log_scale_m)).

    ``mask``: (C, M) bool, modalities in model order; ``w_loc``, ``w_log_scale``: (M, B, D_w), the
    posteriors q(w_m | x_m) (rows of modalities no component encodes are not read); ``r_log_scale``:
    (M, D_w). Returns loc and log_scale (C, B, M * D_w), modality m in columns m D_w .. (m+1) D_w.
    """
    C, M = mask.shape
    _, B, Dw = w_loc.shape
    keep = mask[:, :, None, None]  # (C, M, 1, 1)
    loc = torch.where(keep, w_loc.unsqueeze(0), w_loc.new_zeros(()))  # (C, M, B, Dw)
    log_scale = torch.where(keep, w_log_scale.unsqueeze(0), r_log_scale[None, :, None, :].to(w_log_scale.dtype))
    return (loc.transpose(1, 2).reshape(C, B, M * Dw),  # (C, B, M*Dw)
            log_scale.transpose(1, 2).reshape(C, B, M * Dw))


@dataclass
class Posterior:
    """A fused posterior over one batch: the uniform mixture of C components, each a factorised
    distribution with parameters ``loc``, ``log_scale`` of shape (C, B, D) (C = 1: a single
    distribution). ``subsets[c]`` lists the modality names fused in component c."""

    family: str
    loc: Tensor  # (C, B, D)
    log_scale: Tensor  # (C, B, D)
    subsets: list[tuple[str, ...]]

    @property
    def n_components(self) -> int:
        return self.loc.shape[0]

    @property
    def batch_size(self) -> int:
        return self.loc.shape[1]

    def _params(self, detach: bool) -> tuple[Tensor, Tensor]:
        return (self.loc.detach(), self.log_scale.detach()) if detach else (self.loc, self.log_scale)

    def components(self, detach: bool = False):
        """The components as one batched ``torch.distributions`` object of shape (C, B, D)."""
        return latent_distribution(self.family, *self._params(detach))

    def noise(self, K: int, generator: torch.Generator | None = None) -> Tensor:
        """Standard noise for :meth:`rsample_with_noise`: (C, K, B, D), drawn as (K, C, B, D) (the
        order ``torch.distributions`` draws it in)."""
        return standard_noise(self.family, (K, *self.loc.shape), self.loc.dtype, self.loc.device,
                              generator).transpose(0, 1)

    def rsample(self, K: int, generator: torch.Generator | None = None) -> Tensor:
        """K reparameterised samples from every component (stratified): (C, K, B, D)."""
        return self.rsample_with_noise(K, generator)[0]

    def rsample_with_noise(self, K: int, generator: torch.Generator | None = None, noise: Tensor | None = None
                           ) -> tuple[Tensor, Tensor]:
        """z = loc + scale * eps from ``noise`` eps (C, K, B, D), or fresh noise from ``generator``
        (the global RNG when None); returns (z, eps), both (C, K, B, D)."""
        eps = self.noise(K, generator) if noise is None else noise
        scale = self.log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()
        return self.loc.unsqueeze(1) + scale.unsqueeze(1) * eps, eps

    def log_prob_from_noise(self, eps: Tensor) -> Tensor:
        """``own_log_prob(z)`` for z = loc + scale * eps from :meth:`rsample_with_noise`: (C, K, B).
        (z - loc) / scale = eps, so the value is the same up to rounding and so is the gradient
        (the path and score terms of the standardised residual cancel exactly)."""
        return log_prob_from_noise(self.family, eps, self.log_scale.unsqueeze(1))

    def component_log_prob(self, z: Tensor, detach_params: bool = False) -> Tensor:
        """log q_c'(z) for every component c' at samples ``z`` of shape (C, K, B, D) -> (C', C, K, B)."""
        loc, log_scale = self._params(detach_params)
        return latent_log_prob(self.family, z.unsqueeze(0), loc[:, None, None], log_scale[:, None, None])

    def own_log_prob(self, z: Tensor, detach_params: bool = False) -> Tensor:
        """log q_c(z_c) of each component at its own samples: (C, K, B, D) -> (C, K, B)."""
        loc, log_scale = self._params(detach_params)
        return latent_log_prob(self.family, z, loc[:, None], log_scale[:, None])

    def log_prob(self, z: Tensor) -> Tensor:
        """Density of the (mixture) posterior at z of shape (..., B, D) -> (...), via logsumexp."""
        shape = (self.n_components,) + (1,) * (z.dim() - 2) + tuple(self.loc.shape[1:])
        lp = latent_log_prob(self.family, z.unsqueeze(0), self.loc.view(shape), self.log_scale.view(shape))
        return torch.logsumexp(lp, 0) - math.log(self.n_components)

    @property
    def mean(self) -> Tensor:
        """Mean of the mixture: the average of the component means, (B, D)."""
        return self.loc.mean(0)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n ancestral samples of the mixture (each draws its own component): (n, B, D), detached.
        The same noise as :meth:`rsample` (a one-component posterior gives ``rsample(n)[0]``)."""
        C, B, D = self.loc.shape
        loc, log_scale = self.loc.detach(), self.log_scale.detach()
        if C > 1:
            comp = torch.randint(C, (n, B, 1), device=loc.device, generator=generator).expand(n, B, D)
            loc = torch.gather(loc.unsqueeze(0).expand(n, C, B, D), 1, comp.unsqueeze(1)).squeeze(1)
            log_scale = torch.gather(log_scale.unsqueeze(0).expand(n, C, B, D), 1, comp.unsqueeze(1)).squeeze(1)
        eps = standard_noise(self.family, (n, B, D), loc.dtype, loc.device, generator)
        return loc + log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp() * eps


def fuse(
    family: str,
    names: list[str],
    loc: Tensor,
    log_scale: Tensor,
    fusion: str,
    subsets: list[tuple[int, ...]] | None = None,
    mask: Tensor | None = None,
) -> Posterior:
    """Fuse experts ``loc``/``log_scale`` (M, B, D) of modalities ``names`` with ``fusion``.

    ``subsets`` (positions into ``names``) overrides the rule's own components: a mixture over
    the PoEs of exactly those subsets (``mopoe`` over the full set alone is ``poe``). ``mask``:
    the (C, M) :func:`subset_mask` of the subsets, when the caller keeps it on the device already.
    """
    M = len(names)
    if subsets is None:
        subsets = subsets_for(fusion, M)
    elif not subsets or any(len(s) == 0 or max(s) >= M for s in subsets):
        raise FusionError(f"invalid subsets {subsets} for {M} modalities")
    named = [tuple(names[i] for i in s) for s in subsets]
    if family == "laplace":
        if any(len(s) > 1 for s in subsets):
            raise FusionError(
                f"fusion {fusion!r} multiplies experts, and a product of Laplace experts has no closed form; "
                "use fusion='moe' with Laplace latents, or latent='gaussian'")
        index = [s[0] for s in subsets]
        if index == list(range(len(index))):  # the experts in order: no copy
            return Posterior(family, loc[: len(index)], log_scale[: len(index)], named)
        index = torch.tensor(index, device=loc.device)
        return Posterior(family, loc[index], log_scale[index], named)
    if mask is None:
        mask = subset_mask(subsets, M, loc.device)
    f_loc, f_log_scale = product_of_experts(loc, log_scale, mask)
    return Posterior(family, f_loc, f_log_scale, named)
