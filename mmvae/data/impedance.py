"""``impedance``: synthetic blocky well logs of P- and S-impedance with known facies.

Each log is ``length`` samples at ``DZ`` = 3 m, starting at a random depth between 1.0 and
2.5 km. Layers have random (geometric) thicknesses and one of four facies:

0 shale         Vp on a compaction trend, Vs from the Greenberg-Castagna shale line
1 brine sand    Vp on a (steeper) sand trend, Vs from the Greenberg-Castagna sandstone line
2 gas sand      the brine sand at the same depth with brine replaced by gas (Gassmann)
3 carbonate     fast limestone, Vs from the Greenberg-Castagna limestone relation

Density comes from Gardner (brine-saturated rocks) and from the fluid substitution (gas sand).
AI = Vp * rho and SI = Vs * rho (km/s * g/cm3). With ``seismic=True`` a third modality holds
near (10 deg) and far (30 deg) angle stacks: Fatti reflectivity convolved with a 30 Hz Ricker,
the 3 m samples being taken as 2 ms of two-way time (about 3 km/s; a constant-velocity
depth-to-time approximation). See :mod:`mmvae.data.rockphysics` for the references.
"""
from __future__ import annotations

import numpy as np

from . import rockphysics as rp

__all__ = ["FACIES", "DZ", "simulate_logs"]

FACIES = ["shale", "brine sand", "gas sand", "carbonate"]
DZ = 0.003  # km per sample

# facies transition probabilities when a new layer starts (rows: current facies)
_FACIES_PROBS = np.array([0.34, 0.30, 0.18, 0.18])
_MEAN_THICKNESS = {0: 12.0, 1: 10.0, 2: 9.0, 3: 9.0}  # samples


def _vp_trend(facies: int, z_km: np.ndarray) -> np.ndarray:
    """Brine-saturated Vp (km/s) depth trends; gas sands use the brine-sand trend."""
    if facies == 0:
        return 2.45 + 0.45 * z_km
    if facies in (1, 2):
        return 2.25 + 0.65 * z_km
    return 4.3 + 0.35 * z_km


def simulate_logs(n: int, length: int, seed: int) -> dict[str, np.ndarray]:
    """Simulate ``n`` logs; returns float64 arrays vp, vs, rho, ai, si (n, length), int facies
    (n, length) and depth (n, length) in metres."""
    rng = np.random.default_rng(seed)
    facies = np.zeros((n, length), dtype=np.int64)
    layer_noise = np.zeros((n, length))
    for i in range(n):
        pos = 0
        f = int(rng.choice(4, p=_FACIES_PROBS))
        while pos < length:
            thick = int(rng.geometric(1.0 / _MEAN_THICKNESS[f]))
            thick = max(thick, 2)
            facies[i, pos : pos + thick] = f
            layer_noise[i, pos : pos + thick] = rng.normal(0.0, 0.08)
            pos += thick
            p = _FACIES_PROBS.copy()
            p[f] = 0.0  # a new layer has a different facies
            f = int(rng.choice(4, p=p / p.sum()))
    z0 = rng.uniform(1.0, 2.5, size=(n, 1))
    z = z0 + DZ * np.arange(length)[None, :]
    sample_noise = rng.normal(0.0, 0.02, size=(n, length))
    vp = np.empty((n, length))
    vs = np.empty((n, length))
    rho = np.empty((n, length))
    lith = {0: "shale", 1: "sandstone", 2: "sandstone", 3: "limestone"}
    for f in range(4):
        m = facies == f
        if not m.any():
            continue
        vpf = _vp_trend(f, z[m]) + layer_noise[m] + sample_noise[m]
        vsf = rp.greenberg_castagna_vs(vpf, lith[f])
        rhof = rp.gardner_density(vpf)
        if f == 2:
            vpf, vsf, rhof = rp.gas_sand_from_brine(vpf, vsf, rhof)
        vp[m], vs[m], rho[m] = vpf, vsf, rhof
    return {
        "vp": vp,
        "vs": vs,
        "rho": rho,
        "ai": vp * rho,
        "si": vs * rho,
        "facies": facies,
        "depth": z * 1000.0,
    }


def dominant_facies(facies: np.ndarray) -> np.ndarray:
    """Most frequent facies of each log (ties -> lowest code)."""
    counts = np.stack([(facies == f).sum(axis=1) for f in range(len(FACIES))], axis=1)
    return counts.argmax(axis=1)
