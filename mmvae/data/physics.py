r"""Physics-aware features of impedance logs: rock physics carries the trend, the VAE learns what
it misses.

Rock-physics prediction of SI from AI (the baseline), from Gardner's density and Castagna's
mudrock line (constants in :mod:`mmvae.data.rockphysics`):

    rho = 1.741 Vp^0.25  (Gardner et al. 1974)    =>  AI = rho Vp = 1.741 Vp^1.25,
    Vp  = (AI / 1.741)^(1 / 1.25),
    Vs  = 0.8621 Vp - 1.1724  (Castagna et al. 1985, km/s),
    g(AI) = SI_rp = Vs rho,  with Vs floored at ``VS_FLOOR`` km/s (the line crosses 0 at Vp = 1.36).

Features of a window of n depth samples (AI_i, SI_i > 0), per window w:

    u_i = log AI_i - mean_j log AI_j                   (the AI modality: shape, not level)
    r_i = log SI_i - log g(AI_i) - (a + b log AI_i)    (the SI modality: the physics residual)
    level_w = mean_j log AI_j                          (kept beside the window, not modelled)

(a, b) is a calibration of the rock-physics line to the training wells: the least-squares line
of log SI - log g(AI) on log AI over every training sample (:func:`fit_trend`; (0, 0) without
calibration). On the shipped wells the uncalibrated residual falls with log AI with about the
same slope in every well (-0.27 to -0.46), so a line fitted on some wells carries to another:
this is the usual local calibration of Castagna's line, a two-parameter linear model in log
space that extrapolates linearly, where a neural decoder would saturate.

Inverse, exact: AI_i = exp(u_i + level_w), SI_i = g(AI_i) exp(a + b log AI_i + r_i). Logs make the model
multiplicative (a residual of 0.1 is 10% of SI at any stiffness), the AI level is removed so a
window deeper and stiffer than any in training looks like one the model has seen, and g carries
the depth trend of SI that a data-driven decoder cannot extrapolate (Gardner et al. 1974,
Geophysics 39, 770-780; Castagna, Batzle & Eastwood 1985, Geophysics 50, 571-581). Because
x -> g(AI) exp(a + b log AI + x) is increasing, quantiles of r map to quantiles of SI exactly.
"""
from __future__ import annotations

import numpy as np

from .rockphysics import castagna_mudrock_vs, gardner_density

__all__ = ["VS_FLOOR", "rock_physics_si", "fit_trend", "physics_features", "physics_inverse", "si_from_residual"]

VS_FLOOR = 0.05  # km/s: keeps g(AI) > 0 where the mudrock line would give Vs <= 0


def rock_physics_si(ai):
    """g(AI): SI (km/s * g/cm3) predicted from AI by Gardner + Castagna, Vs floored at VS_FLOOR."""
    ai = np.asarray(ai, dtype=np.float64)
    vp = (np.clip(ai, 1e-9, None) / 1.741) ** (1.0 / 1.25)
    return np.maximum(castagna_mudrock_vs(vp), VS_FLOOR) * gardner_density(vp)


def fit_trend(ai: np.ndarray, si: np.ndarray) -> tuple[float, float]:
    """(a, b) of the least-squares line log SI - log g(AI) = a + b log AI over the finite samples."""
    ai, si = np.asarray(ai, dtype=np.float64).ravel(), np.asarray(si, dtype=np.float64).ravel()
    ok = np.isfinite(ai) & np.isfinite(si) & (ai > 0) & (si > 0)
    x = np.log(ai[ok])
    r = np.log(si[ok]) - np.log(rock_physics_si(ai[ok]))
    b, a = np.polyfit(x, r, 1)
    return float(a), float(b)


def _trend(ai, trend) -> np.ndarray:
    a, b = trend
    return a + b * np.log(np.asarray(ai, dtype=np.float64))


def physics_features(ai: np.ndarray, si: np.ndarray | None, trend: tuple[float, float] = (0.0, 0.0)
                     ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Windows ``ai``, ``si`` (N, n) in km/s * g/cm3 -> (u (N, n), r (N, n) or None, level (N, 1))."""
    log_ai = np.log(np.asarray(ai, dtype=np.float64))
    level = log_ai.mean(axis=-1, keepdims=True)
    r = None if si is None else (np.log(np.asarray(si, dtype=np.float64)) - np.log(rock_physics_si(ai))
                                 - _trend(ai, trend))
    return log_ai - level, r, level


def si_from_residual(r, ai, trend: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """SI = g(AI) exp(a + b log AI + r): residuals (broadcasting with ``ai``) to km/s * g/cm3."""
    return rock_physics_si(ai) * np.exp(_trend(ai, trend) + np.asarray(r, dtype=np.float64))


def physics_inverse(u: np.ndarray, r: np.ndarray | None, level: np.ndarray, trend: tuple[float, float] = (0.0, 0.0)
                    ) -> tuple[np.ndarray, np.ndarray | None]:
    """(u, r, level) -> (AI, SI): the exact inverse of :func:`physics_features` (same ``trend``)."""
    ai = np.exp(np.asarray(u, dtype=np.float64) + level)
    return ai, None if r is None else si_from_residual(r, ai, trend)
