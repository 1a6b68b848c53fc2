"""The chain ELBO <= IWAE(K) <= log p(x) on a dataset, as a table.

For every K in ``Ks`` and each of ``repeats`` independent repeats, the ELBO and the tight
IWAE(K) (K samples per mixture component, weighted against the mixture, as in
:mod:`mmvae.objectives`) are averaged over the data points; the table holds their mean and
standard deviation over repeats. Within one repeat the Ks are nested prefixes of one stream of
samples (cost max(Ks), not sum(Ks), per repeat). The ELBO does not depend on K in expectation; each
row reports it from that row's K samples. Below the rows: the importance-sampled log-likelihood
(:func:`~mmvae.diagnostics.likelihood.estimate_log_likelihood`) and, where known (the linear toy),
the exact log p(x). ``chain_holds`` checks ELBO <= IWAE(K) <= log p(x) (and <= exact) within
``tolerance`` standard deviations.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor

from .likelihood import _batches, _default_batch, as_inputs, estimate_log_likelihood, weight_stats
from .rng import seeded_generator

__all__ = ["DEFAULT_KS", "bound_gaps", "exact_log_likelihood_fn"]

DEFAULT_KS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def exact_log_likelihood_fn(toy_params) -> Callable[[Mapping[str, Tensor]], Tensor]:
    """log p(x_S) of the linear toy (float64) as a function of a dict of modalities."""
    from ..data.toy import exact_log_likelihood

    def fn(x: Mapping[str, Tensor]) -> Tensor:
        return exact_log_likelihood(toy_params, {k: v.double() for k, v in x.items()})

    return fn


@torch.no_grad()
def bound_gaps(
    model,
    data,
    Ks: Sequence[int] = DEFAULT_KS,
    repeats: int = 3,
    fusion: str | None = None,
    modalities: Sequence[str] | None = None,
    n_samples: int | None = 1000,
    exact: Callable[[Mapping[str, Tensor]], Tensor] | None = None,
    seed: int | None = 0,
    batch_size: int | None = None,
    tolerance: float = 3.0,
) -> dict:
    """ELBO / IWAE(K) table with the log-likelihood estimate and the exact value (see the module
    docstring). ``exact``: a function of the data dict giving log p(x_S) per point (e.g.
    :func:`exact_log_likelihood_fn`). ``n_samples=None`` skips the log-likelihood estimate."""
    Ks = sorted({int(k) for k in Ks})
    if not Ks or Ks[0] < 1 or not (isinstance(repeats, int) and repeats >= 1):
        raise ValueError(f"Ks must be positive integers and repeats >= 1, got {Ks} and {repeats}")
    x, _ = as_inputs(model, data, modalities)
    fusion = fusion or model.fusion
    n = next(iter(x.values())).shape[0]
    C = len(model.posterior({k: v[:1] for k, v in x.items()}, fusion, validate=False).subsets)
    batch_size = batch_size or _default_batch(C, Ks[-1])
    elbo = torch.zeros(repeats, len(Ks), dtype=torch.float64)
    iwae = torch.zeros_like(elbo)
    generator = seeded_generator(seed, model.device)
    for r in range(repeats):
        for _, xb in _batches(x, batch_size):
            for j, st in enumerate(weight_stats(model, xb, Ks, fusion, generator=generator)):
                elbo[r, j] += float(st.elbo().sum())
                iwae[r, j] += float(st.log_p().sum())
    elbo, iwae = elbo / n, iwae / n

    def sd(t: Tensor) -> Tensor:
        return t.std(0) if repeats > 1 else torch.zeros(t.shape[1:], dtype=t.dtype)

    rows = [{"K": K, "elbo_mean": float(elbo[:, j].mean()), "elbo_std": float(sd(elbo)[j]),
             "iwae_mean": float(iwae[:, j].mean()), "iwae_std": float(sd(iwae)[j])} for j, K in enumerate(Ks)]
    out = {"fusion": fusion, "modalities": list(x), "n": n, "repeats": repeats, "K_means": "samples per mixture component",
           "rows": rows, "log_likelihood": None, "exact": None}
    top = None
    if n_samples:
        ll = estimate_log_likelihood(model, x, n_samples, fusion, batch_size=batch_size,
                                     seed=None if seed is None else seed + 12345)
        out["log_likelihood"] = ll.to_dict()
        top = (ll.mean, max(ll.mc_stderr, 1e-12))
    if exact is not None:
        ex = torch.cat([exact(xb).to(torch.float64).cpu() for _, xb in _batches(x, 4096)])
        out["exact"] = float(ex.mean())
    ok = True
    for row in rows:
        s = max(row["elbo_std"], row["iwae_std"], 1e-6)
        row["gap_iwae_elbo"] = row["iwae_mean"] - row["elbo_mean"]
        ok &= row["elbo_mean"] <= row["iwae_mean"] + tolerance * s
        if top is not None:
            row["gap_loglik_iwae"] = top[0] - row["iwae_mean"]
            ok &= row["iwae_mean"] <= top[0] + tolerance * math.hypot(s, top[1])
        if out["exact"] is not None:
            row["gap_exact_iwae"] = out["exact"] - row["iwae_mean"]
            ok &= row["iwae_mean"] <= out["exact"] + tolerance * s
    if top is not None and out["exact"] is not None:
        out["gap_exact_loglik"] = out["exact"] - top[0]
        ok &= top[0] <= out["exact"] + tolerance * top[1]
    out["chain_holds"] = bool(ok)
    out["tolerance_std"] = tolerance
    return out
