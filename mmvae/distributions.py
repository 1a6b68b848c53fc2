"""Latent families (prior and posteriors) and per-modality likelihoods, on ``torch.distributions``.

Latent families: ``gaussian`` (MVAE, MoPoE) and ``laplace`` (MMVAE, Shi et al. 2019, sec. 3).
Both are parameterised by a location and a log-scale (standard deviation for the Gaussian, the
Laplace scale b for the Laplace). The prior is the standard member of the family:
N(0, I) or Laplace(0, 1) (MMVAE's default prior, scale 1).

Likelihoods (the decoder returns their location parameter):

* ``gaussian``: N(x; mu, sigma^2), sigma fixed (``scale=0.1``) or one learned scalar per modality;
* ``laplace``: Laplace(x; mu, b), b fixed or learned;
* ``bernoulli``: the decoder returns logits; ``log p = -BCE(logits, x)``. Accepts grey levels in
  [0, 1] (as MVAE and MMVAE do on MNIST); for non-binary x this is *not* a normalised density,
  so log p(x) figures are comparable between models but are not true log-likelihoods;
* ``continuous_bernoulli``: the normalised density on [0, 1] (Loaiza-Ganem & Cunningham 2019),
  a true log-likelihood for grey levels.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, ContinuousBernoulli, Distribution, Laplace, Normal
from torch.nn.functional import binary_cross_entropy_with_logits

LATENT_FAMILIES = ("gaussian", "laplace")
# r_m, the distribution of a private latent w_m where a posterior component does not encode x_m
# (MMVAE+, Palumbo et al. 2023): the prior itself, or the auxiliary prior with a learned scale
CROSS_PRIVATE = ("auxiliary", "prior")
LIKELIHOODS = ("gaussian", "laplace", "bernoulli", "continuous_bernoulli")

# log-scales are clamped to this range before exponentiating: exp(+-30) is finite in float32
# and far beyond any useful latent scale, so sampling never produces inf or 0.
LOG_SCALE_MIN, LOG_SCALE_MAX = -30.0, 30.0


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a ValueError naming them."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")
    return value


def latent_distribution(family: str, loc: Tensor, log_scale: Tensor) -> Distribution:
    """Factorised latent distribution (per-dimension; callers sum ``log_prob`` over the last axis)."""
    scale = log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).exp()
    if family == "gaussian":
        return Normal(loc, scale, validate_args=False)
    if family == "laplace":
        return Laplace(loc, scale, validate_args=False)
    raise ValueError(f"unknown latent family {family!r}; choose one of: {', '.join(LATENT_FAMILIES)}")


# ---------------------------------------------------------------- direct log-densities
# The training step evaluates these densities many times per batch; building torch.distributions
# objects for each costs more than the arithmetic at small batch sizes. The functions below are
# the same formulas (equal up to float rounding), summed over the last (latent) axis.

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_LOG_2 = math.log(2.0)


def latent_log_prob(family: str, z: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    """sum_d log q(z_d; loc_d, exp(log_scale_d)) of the latent family; ``loc`` / ``log_scale``
    broadcast against ``z`` (..., D) -> (...). Same clamp as :func:`latent_distribution`."""
    ls = log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)
    norm = ls.sum(-1)  # per component, not per sample
    if family == "gaussian":
        u = (z - loc) * torch.exp(-ls)
        return -0.5 * u.square().sum(-1) - (norm + z.shape[-1] * _HALF_LOG_2PI)
    if family == "laplace":
        return -((z - loc).abs() * torch.exp(-ls)).sum(-1) - (norm + z.shape[-1] * _LOG_2)
    raise ValueError(f"unknown latent family {family!r}; choose one of: {', '.join(LATENT_FAMILIES)}")


def standard_log_prob(family: str, z: Tensor) -> Tensor:
    """sum_d log of the standard prior (N(0, 1) or Laplace(0, 1)) at z (..., D) -> (...)."""
    if family == "gaussian":
        return -0.5 * z.square().sum(-1) - z.shape[-1] * _HALF_LOG_2PI
    if family == "laplace":
        return -z.abs().sum(-1) - z.shape[-1] * _LOG_2
    raise ValueError(f"unknown latent family {family!r}; choose one of: {', '.join(LATENT_FAMILIES)}")


def standard_noise(family: str, shape, dtype=torch.float32, device=None,
                   generator: torch.Generator | None = None) -> Tensor:
    """Noise of the standard member of the family, the one sampler of the package: eps ~ N(0, 1),
    or eps ~ Laplace(0, 1) by the inverse CDF, eps = -sign(u) log(1 - |u|) with u ~ U(-1, 1)
    (u from finfo.eps - 1 as ``torch.distributions.Laplace`` draws it, so the log stays finite).
    z = loc + scale * eps is then a reparameterised sample of the family (and, for loc = 0 and
    scale = 1, a sample of the prior). From ``generator`` (the global RNG when None)."""
    if family == "gaussian":
        return torch.empty(shape, dtype=dtype, device=device).normal_(generator=generator)
    if family == "laplace":
        u = torch.empty(shape, dtype=dtype, device=device).uniform_(torch.finfo(dtype).eps - 1, 1, generator=generator)
        return -u.sign() * torch.log1p(-u.abs())
    raise ValueError(f"unknown latent family {family!r}; choose one of: {', '.join(LATENT_FAMILIES)}")


def log_prob_from_noise(family: str, eps: Tensor, log_scale: Tensor) -> Tensor:
    """sum_d log q(z_d) at z = loc + exp(log_scale) eps, from eps (..., D) -> (...):
    -eps^2 / 2 - log scale - log sqrt(2 pi) (Gaussian), -|eps| - log scale - log 2 (Laplace)."""
    norm = log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX).sum(-1)
    D = eps.shape[-1]
    if family == "gaussian":
        return -0.5 * eps.square().sum(-1) - (norm + D * _HALF_LOG_2PI)
    if family == "laplace":
        return -eps.abs().sum(-1) - (norm + D * _LOG_2)
    raise ValueError(f"unknown latent family {family!r}; choose one of: {', '.join(LATENT_FAMILIES)}")


def standard_prior(family: str, latent_dim: int, device=None, dtype=torch.float32) -> Distribution:
    """N(0, I) or Laplace(0, 1) over ``latent_dim`` dimensions."""
    zeros = torch.zeros(latent_dim, device=device, dtype=dtype)
    return latent_distribution(family, zeros, zeros)


class Likelihood(nn.Module):
    """p(x_m | z) for one modality: turns decoder outputs into log-densities and means.

    ``scale`` is the fixed scale of a Gaussian / Laplace likelihood, or ``None`` to learn one
    scalar per modality (initialised at 1, kept above ``min_scale``). ``weight`` multiplies the
    log-likelihood in the objectives (MVAE's lambda_i, MMVAE's llik_scaling).
    """

    def __init__(
        self,
        kind: str,
        event_dims: int,
        scale: float | None = 0.1,
        weight: float = 1.0,
        min_scale: float = 1e-3,
    ) -> None:
        super().__init__()
        self.kind = check_choice(kind, LIKELIHOODS, "likelihood")
        self.event_dims = int(event_dims)
        if not (weight > 0 and math.isfinite(weight)):
            raise ValueError(f"likelihood weight must be a positive number, got {weight}")
        self.weight = float(weight)
        self.min_scale = float(min_scale)
        self.learned_scale = kind in ("gaussian", "laplace") and scale is None
        if self.learned_scale:
            self.log_scale = nn.Parameter(torch.zeros(()))
        else:
            if kind in ("gaussian", "laplace") and not (scale is not None and scale > 0 and math.isfinite(scale)):
                raise ValueError(f"likelihood scale must be a positive number or None (learned), got {scale}")
            # a Python float: exact in a float64 model (a float32 buffer turned 0.8 into 0.8000000028)
            self.fixed_scale = float(scale) if scale else 1.0

    def scale(self) -> Tensor | float:
        """The likelihood's scale: a tensor when learned, the fixed Python float otherwise."""
        return self.log_scale.exp().clamp_min(self.min_scale) if self.learned_scale else self.fixed_scale

    def _log_scale(self, scale: Tensor | float) -> Tensor | float:
        return scale.log() if isinstance(scale, Tensor) else math.log(scale)

    def distribution(self, params: Tensor) -> Distribution:
        if self.kind == "gaussian":
            return Normal(params, self.scale(), validate_args=False)
        if self.kind == "laplace":
            return Laplace(params, self.scale(), validate_args=False)
        if self.kind == "bernoulli":
            return Bernoulli(logits=params, validate_args=False)
        return ContinuousBernoulli(logits=params, validate_args=False)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """Unweighted log p(x | z), summed over the event dimensions."""
        if self.kind == "bernoulli":
            lp = -binary_cross_entropy_with_logits(params, x.expand_as(params), reduction="none")
        elif self.kind == "gaussian":
            scale = self.scale()
            lp = -((x - params) ** 2) / (2 * scale**2) - (self._log_scale(scale) + _HALF_LOG_2PI)
        elif self.kind == "laplace":
            scale = self.scale()
            lp = -torch.abs(x - params) / scale - (self._log_scale(scale) + _LOG_2)
        else:
            lp = self.distribution(params).log_prob(x)
        if self.event_dims == 1:
            return lp.sum(-1)
        return lp.flatten(start_dim=lp.dim() - self.event_dims).sum(-1) if self.event_dims else lp

    def mean(self, params: Tensor) -> Tensor:
        """E[x | z] (sigmoid of the logits for ``bernoulli``)."""
        if self.kind in ("gaussian", "laplace"):
            return params
        if self.kind == "bernoulli":
            return torch.sigmoid(params)
        return self.distribution(params).mean

    def sample(self, params: Tensor) -> Tensor:
        return self.distribution(params).sample()
