r"""Predictive distributions as mixtures, their quantiles, and how well they are calibrated.

A cross-modal prediction of one value (one depth sample of SI) pools C components: posterior
samples z_s ~ q(z | x_given) of every window that covers the depth sample, each with the
likelihood p(x | z_s) = N(mu_s, sigma^2). The predictive is the equal-weight mixture

    F(x) = (1 / C) sum_c Phi((x - mu_c) / sigma_c),

and its quantiles q_tau = F^{-1}(tau) are found exactly (to machine precision) by bisection on F,
vectorised over values (:func:`mixture_quantiles`). Any increasing map h of the variable maps
quantiles exactly: Q_{h(X)}(tau) = h(Q_X(tau)).

Calibration on held-out truths y:

* coverage of the central band [q_{(1-a)/2}, q_{(1+a)/2}]: the fraction of y inside it (a = 0.8:
  P10-P90; a = 0.5: P25-P75); calibrated forecasts give about a;
* CRPS(F, y) = E|X - y| - (1/2) E|X - X'| (Gneiting & Raftery 2007, eq. 20), in the units of y,
  estimated from M samples of F by the sorted-sample identity
  sum_{i,j} |x_i - x_j| = 2 sum_i (2 i - M - 1) x_(i); for a point forecast it is the absolute error.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

__all__ = ["mixture_quantiles", "sample_crps", "gaussian_crps", "band_coverage"]


def mixture_quantiles(loc: np.ndarray, scale, probs, weights: np.ndarray | None = None,
                      iterations: int = 64) -> np.ndarray:
    """Quantiles of equal- (or ``weights``-) weighted Gaussian mixtures, one mixture per row.

    ``loc`` (..., C) component means; ``scale`` broadcastable to it (> 0); ``weights`` (..., C)
    >= 0 (0 for padding; rows are normalised; a row of zeros gives NaN); ``probs`` (P,) in (0, 1).
    Returns (..., P) in float64."""
    loc = np.asarray(loc, dtype=np.float64)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), loc.shape)
    probs = np.asarray(probs, dtype=np.float64).ravel()
    if probs.size == 0 or (probs <= 0).any() or (probs >= 1).any():
        raise ValueError(f"quantile levels must be in (0, 1), got {probs.tolist()}")
    if (scale <= 0).any():
        raise ValueError("mixture component scales must be positive")
    w = np.ones_like(loc) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w.sum(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = w / total
    live = w > 0
    lo = np.nanmin(np.where(live, loc - 12 * scale, np.nan), -1)  # F(lo) < 1e-30
    hi = np.nanmax(np.where(live, loc + 12 * scale, np.nan), -1)
    lo = np.repeat(lo[..., None], probs.size, -1)  # (..., P)
    hi = np.repeat(hi[..., None], probs.size, -1)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        cdf = (w[..., None, :] * ndtr((mid[..., None] - loc[..., None, :]) / scale[..., None, :])).sum(-1)
        below = cdf < probs
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    out = 0.5 * (lo + hi)
    out[~np.isfinite(total[..., 0])] = np.nan
    out[total[..., 0] <= 0] = np.nan
    return out


def sample_crps(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of the empirical distribution of ``samples`` (..., M) at ``y`` (...): (...)."""
    x = np.sort(np.asarray(samples, dtype=np.float64), axis=-1)
    y = np.asarray(y, dtype=np.float64)
    m = x.shape[-1]
    e_xy = np.abs(x - y[..., None]).mean(-1)
    i = np.arange(1, m + 1, dtype=np.float64)
    e_xx = 2.0 * ((2 * i - m - 1) * x).sum(-1) / (m * m)  # E|X - X'|
    return e_xy - 0.5 * e_xx


def gaussian_crps(mu, sigma, y) -> np.ndarray:
    """Closed-form CRPS of N(mu, sigma^2) at y: sigma [z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)]."""
    mu, sigma, y = (np.asarray(a, dtype=np.float64) for a in (mu, sigma, y))
    z = (y - mu) / sigma
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return sigma * (z * (2 * ndtr(z) - 1) + 2 * pdf - 1 / math.sqrt(math.pi))


def band_coverage(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> float:
    """Fraction of finite ``y`` with lower <= y <= upper."""
    lower, upper, y = (np.asarray(a, dtype=np.float64) for a in (lower, upper, y))
    ok = np.isfinite(lower) & np.isfinite(upper) & np.isfinite(y)
    return float(((y >= lower) & (y <= upper))[ok].mean()) if ok.any() else float("nan")
