"""Importance-sampled log-likelihoods log p(x_S) in bounded memory, with standard errors.

Estimator. For the data points of a batch, the proposal is the model's fused posterior
q(z | x_S) of the modalities S being scored (``modalities``; default: all the model has). A
mixture posterior (MoE, MoPoE) with C components gets ``ceil(n_samples / C)`` samples from
*every* component (stratified sampling) and each sample is weighted against the *mixture*
density, log w = log p(z) + sum_{m in S} lambda_m log p(x_m | z) - log q_mix(z | x_S). Then

    log p^(x_S) = logsumexp_{c,k} log w_{c,k} - log(C K),

an unbiased estimate of p(x_S) (stratified importance sampling is unbiased for any proposal
whose components cover the posterior), so log p^ is a lower bound in expectation that becomes
tight as K grows. This is exactly the tight IWAE(K) of :mod:`mmvae.objectives` at large K. It is
*not* multivae's estimator (``compute_joint_nll`` in multivae 1.0.3), which also weights against
the full mixture but draws all K samples of a data point from one randomly chosen component
(MMVAE: one modality for the whole batch; MoPoE: one subset per data point): unbiased for p(x)
only on average over that choice; for a chosen component c it converges as K grows to
log E_{q_c}[p(x, z) / q_mix(z | x_S)], not to log p(x_S).

Private latents (``private_dim`` > 0, MMVAE+): the latent is u = [z | w_1 | ... | w_M] and the same
estimator runs over all of u: component c of the proposal draws w_m from q(w_m | x_m) for m in its
subset and from r_m otherwise (``model.posterior``), and the prior is p(u), so log p(x_S) is the
likelihood of the whole model, private parts integrated out.

Memory stays bounded: samples are decoded in chunks of ``chunk_size`` per component and the
weights enter running log-sum-exps (of w, of w^2 per component, and the sum of log w for the
ELBO); nothing of size K is kept. The latent samples come from an explicit ``torch.Generator`` in
fixed blocks of :data:`SAMPLE_BLOCK` per component, whatever the chunk size, so ``chunk_size``
changes memory and speed but not the samples: estimates with different chunk sizes agree to float
rounding. (Before, each chunk drew its own noise, so two chunk sizes with one seed gave two
independent estimates, up to 0.8 nats apart per point at K = 30 on the mixtures of the toy test,
within their Monte Carlo errors.) ``batch_size`` does change the samples (same distribution).

Errors. ``stderr``: standard error of the dataset mean over data points (std / sqrt(N)).
``mc_stderr_per_point``: delta-method Monte Carlo standard error of each log p^(x_i), from the
stratified variance of p^, Var(p^) = (1 / C^2) sum_c Var_c(w) / K, divided by p^^2 (so it is
sqrt(relative variance)). ``mc_stderr``: the MC standard error of the dataset mean.

Conditionals. log p(x_t | x_g) = log p(x_g, x_t) - log p(x_g): two separate estimates (joint
with the posterior of g + t, marginal with the posterior of g). Each is a stochastic lower bound,
so their difference is consistent but has no sign guarantee for finite K; the standard errors add
in quadrature. Bernoulli likelihoods on grey levels are not normalised densities (see
:mod:`mmvae.distributions`), so those figures compare models but are not true log-likelihoods.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from torch import Tensor

from ..data.dataset import MultimodalData
from ..objectives import effective_sample_size, ess_from_log_sums, log_joint, log_posterior
from .rng import seeded_generator

__all__ = [
    "LogLikelihood",
    "WeightStats",
    "as_inputs",
    "conditional_log_likelihood",
    "effective_sample_size",
    "estimate_log_likelihood",
    "weight_stats",
]

# rows decoded at once (components x samples x data points): bounds memory (~ rows x widest layer);
# about a thousand rows keep an MLP's activations in cache, the fastest setting on one CPU thread
MAX_ROWS = 1024
# latent samples per component drawn at once: the unit of the random stream, independent of chunking
SAMPLE_BLOCK = 64


def as_inputs(model, data, modalities: Sequence[str] | None = None) -> tuple[dict[str, Tensor], Tensor | None]:
    """(dict of the model's modalities in ``data`` on the model's device / dtype, labels or None).

    ``data``: a :class:`MultimodalData` or a dict of name -> tensor. ``modalities`` restricts the
    dict (in model order)."""
    labels = None
    if isinstance(data, MultimodalData):
        labels, data = data.labels, data.modalities
    if not isinstance(data, Mapping):
        raise ValueError(f"give the data as a MultimodalData or a dict of tensors, got {type(data).__name__}")
    names = list(modalities) if modalities is not None else [n for n in model.names if n in data]
    unknown = [n for n in names if n not in model.names]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; this model has {model.names}")
    absent = [n for n in names if n not in data]
    if absent:
        raise ValueError(f"the data lacks modalities {absent}")
    if not names:
        raise ValueError("no modality of the model is in the data")
    param = next(model.parameters())
    x = {}
    for n in model.names:
        if n in names:
            v = torch.as_tensor(data[n])
            x[n] = v.to(param.device, param.dtype)
    model.check_inputs(x)
    return x, labels


def _batches(x: Mapping[str, Tensor], batch_size: int):
    n = next(iter(x.values())).shape[0]
    for start in range(0, n, batch_size):
        yield start, {k: v[start : start + batch_size] for k, v in x.items()}


@dataclass
class WeightStats:
    """Running statistics of the log-weights of one batch, per component c and data point b:
    ``lse`` = logsumexp_k log w, ``lse2`` = logsumexp_k 2 log w, ``total`` = sum_k log w (C, B),
    after ``K`` samples per component."""

    lse: Tensor
    lse2: Tensor
    total: Tensor
    K: int

    @property
    def C(self) -> int:
        return self.lse.shape[0]

    def log_p(self) -> Tensor:
        """IWAE(K) / the log-likelihood estimate per data point (B,)."""
        return torch.logsumexp(self.lse, 0) - math.log(self.C * self.K)

    def elbo(self) -> Tensor:
        """The (stratified) ELBO estimate: the mean log-weight (B,)."""
        return self.total.sum(0) / (self.C * self.K)

    def mc_stderr(self) -> Tensor:
        """Delta-method MC standard error of log p^ (B,) (NaN for K = 1)."""
        if self.K < 2:
            return torch.full_like(self.lse[0], float("nan"))
        lp = torch.logsumexp(self.lse, 0) - math.log(self.K)  # log of sum_c mean_k w
        r = torch.exp(self.lse - math.log(self.K) - lp)  # mean_c / sum_c mean  (C, B)
        q = torch.exp(self.lse2 - math.log(self.K) - 2 * lp)
        relvar = ((q - r * r).clamp_min(0) / (self.K - 1)).sum(0)  # Var(sum_c mean_c) / (sum_c mean_c)^2
        return relvar.sqrt()

    def ess(self) -> Tensor:
        """Effective sample size of all C K weights (B,), from the running sums."""
        return ess_from_log_sums(torch.logsumexp(self.lse, 0), torch.logsumexp(self.lse2, 0))


class SampleStream:
    """Samples of a posterior, (C, k, B, D) for any k, cut from blocks of :data:`SAMPLE_BLOCK`
    samples per component drawn from ``generator``: the i-th sample of every component is the same
    whatever sizes the chunks taken before it had."""

    def __init__(self, post, generator: torch.Generator | None) -> None:
        self.post, self.generator = post, generator
        self.buffer = post.loc.new_empty(post.n_components, 0, *post.loc.shape[1:])  # (C, 0, B, D)

    def take(self, k: int) -> Tensor:
        while self.buffer.shape[1] < k:
            block = self.post.rsample(SAMPLE_BLOCK, generator=self.generator)  # (C, SAMPLE_BLOCK, B, D)
            self.buffer = torch.cat([self.buffer, block], 1)
        z, self.buffer = self.buffer[:, :k], self.buffer[:, k:]
        return z


@torch.no_grad()
def weight_stats(
    model,
    x: Mapping[str, Tensor],
    K: int | Sequence[int],
    fusion: str | None = None,
    subsets=None,
    chunk_size: int | None = None,
    generator: torch.Generator | None = None,
) -> list[WeightStats]:
    """Draw ``max(K)`` samples per component (a :class:`SampleStream` of ``generator``), decode
    them in chunks of ``chunk_size`` and return the running statistics after each K in ``K``
    (nested prefixes of one stream of samples): one :class:`WeightStats` each."""
    Ks = sorted({int(k) for k in ([K] if isinstance(K, int) else K)})
    if not Ks or Ks[0] < 1:
        raise ValueError(f"sample counts must be positive integers, got {K!r}")
    post = model.posterior(x, fusion, subsets=subsets, validate=False)
    C, B = post.n_components, post.batch_size
    if chunk_size is None:
        chunk_size = max(1, MAX_ROWS // (C * B))
    lse = torch.full((C, B), -math.inf, dtype=post.loc.dtype, device=post.loc.device)
    lse2, total = lse.clone(), torch.zeros_like(lse)
    out, done = [], 0
    stream = SampleStream(post, generator)
    for target in Ks:
        while done < target:
            k = min(chunk_size, target - done)
            z = stream.take(k)
            log_q, _ = log_posterior(post, z)
            lw = log_joint(model, x, z, post) - log_q  # (C, k, B)
            lse = torch.logaddexp(lse, torch.logsumexp(lw, 1))
            lse2 = torch.logaddexp(lse2, torch.logsumexp(2 * lw, 1))
            total = total + lw.sum(1)
            done += k
        out.append(WeightStats(lse.clone(), lse2.clone(), total.clone(), target))
    return out


@dataclass
class LogLikelihood:
    """Per-point estimates of log p(x_S) (or a conditional) and their uncertainty."""

    per_point: Tensor  # (N,)
    mc_stderr_per_point: Tensor  # (N,)
    ess: Tensor  # (N,) effective sample size of the weights (NaN for conditionals)
    n_samples: int  # samples per data point actually drawn (C * samples_per_component)
    samples_per_component: int
    n_components: int
    modalities: list[str]
    fusion: str
    given: list[str] | None = None  # conditionals: the conditioning modalities
    extra: dict = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(self.per_point.mean())

    @property
    def stderr(self) -> float:
        """Standard error of the mean over data points."""
        n = self.per_point.numel()
        return float(self.per_point.std() / math.sqrt(n)) if n > 1 else float("nan")

    @property
    def mc_stderr(self) -> float:
        """Monte Carlo standard error of the dataset mean."""
        return float(self.mc_stderr_per_point.pow(2).sum().sqrt() / self.per_point.numel())

    def to_dict(self, per_point: bool = False, log_jacobian: float | None = None) -> dict:
        """JSON-able figures. ``log_jacobian`` (see :meth:`mmvae.data.normalize.Normalizer.log_jacobian`)
        converts the log-densities from the model's standardised units to the data's own units
        (``units: data``; ``mean_standardised`` keeps the other); without it ``units: model``."""
        shift = float(log_jacobian or 0.0)
        d = {"mean": self.mean + shift, "stderr": self.stderr, "mc_stderr": self.mc_stderr, "n": self.per_point.numel(),
             "n_samples": self.n_samples, "samples_per_component": self.samples_per_component,
             "n_components": self.n_components, "modalities": list(self.modalities), "fusion": self.fusion,
             # a conditional is a difference of two estimates: it has no one set of weights (None)
             "mean_ess": float(self.ess.mean()) if self.given is None and self.ess.numel() else None,
             "units": "data" if log_jacobian is not None else "model", "mean_standardised": self.mean,
             "log_jacobian": shift}
        if self.given is not None:
            d["given"] = list(self.given)
        if per_point:
            d["per_point"] = (self.per_point + shift).tolist()
            d["mc_stderr_per_point"] = self.mc_stderr_per_point.tolist()
        return d


def _default_batch(n_components: int, K: int) -> int:
    return max(8, MAX_ROWS // max(1, n_components * min(K, 16)))


@torch.no_grad()
def estimate_log_likelihood(
    model,
    data,
    n_samples: int = 1000,
    fusion: str | None = None,
    modalities: Sequence[str] | None = None,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    seed: int | None = None,
) -> LogLikelihood:
    """Importance-sampled log p(x_S) of every data point (see the module docstring).

    ``modalities``: the subset S scored with its own posterior q(z | x_S) (marginal likelihood);
    default all. ``n_samples`` is split evenly over the C mixture components (ceil(n / C) each).
    ``batch_size`` data points are processed together, ``chunk_size`` samples per component at a
    time (defaults decode about a thousand rows at a time); the chunk size does not change the
    samples. ``seed`` seeds the explicit generator the samples come from (None: fresh entropy).
    """
    if not (isinstance(n_samples, int) and n_samples >= 1):
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    x, _ = as_inputs(model, data, modalities)
    fusion = fusion or model.fusion
    names = list(x)
    C = len(model.posterior({k: v[:1] for k, v in x.items()}, fusion, validate=False).subsets)
    K = math.ceil(n_samples / C)
    n = next(iter(x.values())).shape[0]
    batch_size = batch_size or _default_batch(C, K)
    lp, se, ess = [], [], []
    generator = seeded_generator(seed, model.device)
    for _, xb in _batches(x, batch_size):
        st = weight_stats(model, xb, K, fusion, chunk_size=chunk_size, generator=generator)[0]
        lp.append(st.log_p())
        se.append(st.mc_stderr())
        ess.append(st.ess())
    if n == 0:
        raise ValueError("no data points")
    return LogLikelihood(torch.cat(lp).cpu(), torch.cat(se).cpu(), torch.cat(ess).cpu(), C * K, K, C, names, fusion)


def conditional_log_likelihood(
    model,
    data,
    target: str | Sequence[str],
    given: str | Sequence[str],
    n_samples: int = 1000,
    fusion: str | None = None,
    batch_size: int | None = None,
    chunk_size: int | None = None,
    seed: int | None = None,
) -> LogLikelihood:
    """log p(x_t | x_g) = log p(x_g, x_t) - log p(x_g), both estimated with
    :func:`estimate_log_likelihood` (joint: posterior of g + t; marginal: posterior of g).
    The per-point MC standard errors add in quadrature; there is no bound direction."""
    target = [target] if isinstance(target, str) else list(target)
    given = [given] if isinstance(given, str) else list(given)
    if set(target) & set(given):
        raise ValueError(f"target {target} and given {given} overlap")
    both = [n for n in model.names if n in set(target) | set(given)]
    joint = estimate_log_likelihood(model, data, n_samples, fusion, both, batch_size, chunk_size, seed)
    marg = estimate_log_likelihood(model, data, n_samples, fusion, given, batch_size, chunk_size,
                                   None if seed is None else seed + 1)
    se = (joint.mc_stderr_per_point ** 2 + marg.mc_stderr_per_point ** 2).sqrt()
    return LogLikelihood(joint.per_point - marg.per_point, se, torch.full_like(se, float("nan")), joint.n_samples,
                         joint.samples_per_component, joint.n_components, target, joint.fusion, given,
                         {"joint": joint.mean, "marginal": marg.mean})
