"""Rock-physics relations and a simple seismic forward model (units: km/s, g/cm3, GPa).

All functions work on NumPy arrays (or scalars) and are vectorised.

References
----------
- Castagna, J. P., Batzle, M. L. and Eastwood, R. L. (1985). Relationships between
  compressional-wave and shear-wave velocities in clastic silicate rocks. Geophysics 50(4), 571-581.
  (the "mudrock line" Vs = 0.8621 Vp - 1.1724, km/s)
- Greenberg, M. L. and Castagna, J. P. (1992). Shear-wave velocity estimation in porous rocks:
  theoretical formulation, preliminary verification and applications. Geophysical Prospecting
  40, 195-209. Single-mineral, brine-saturated regressions (km/s), as tabulated in Mavko, Mukerji
  and Dvorkin, The Rock Physics Handbook:
  sandstone Vs = 0.80416 Vp - 0.85588; limestone Vs = -0.05508 Vp^2 + 1.01677 Vp - 1.03049;
  dolomite Vs = 0.58321 Vp - 0.07775; shale Vs = 0.76969 Vp - 0.86735.
- Gardner, G. H. F., Gardner, L. W. and Gregory, A. R. (1974). Formation velocity and density -
  the diagnostic basics for stratigraphic traps. Geophysics 39(6), 770-780.
  (rho = 1.741 Vp^0.25, rho in g/cm3, Vp in km/s)
- Gassmann, F. (1951). Uber die Elastizitat poroser Medien. Vierteljahrsschrift der
  Naturforschenden Gesellschaft in Zurich 96, 1-23. (fluid substitution; shear modulus unchanged)
- Aki, K. and Richards, P. G. (1980). Quantitative Seismology; Fatti, J. L., Smith, G. C.,
  Vail, P. J., Strauss, P. J. and Levitt, P. R. (1994). Detection of gas in sandstone reservoirs
  using AVO analysis: a 3-D seismic case history using the Geostack technique. Geophysics 59(9),
  1362-1376. (the Aki-Richards approximation written with P- and S-impedance contrasts)
- Ricker, N. (1953). The form and laws of propagation of seismic wavelets. Geophysics 18, 10-40.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "castagna_mudrock_vs",
    "greenberg_castagna_vs",
    "gardner_density",
    "gassmann_fluid_substitution",
    "gas_sand_from_brine",
    "ricker",
    "fatti_reflectivity",
    "angle_stacks",
]


def castagna_mudrock_vs(vp):
    """Castagna et al. (1985) mudrock line: Vs = 0.8621 Vp - 1.1724 (km/s)."""
    return 0.8621 * np.asarray(vp, dtype=float) - 1.1724


_GC_COEFFS = {
    # Greenberg & Castagna (1992), brine-saturated single-mineral rocks: Vs = a2 Vp^2 + a1 Vp + a0
    "sandstone": (0.0, 0.80416, -0.85588),
    "limestone": (-0.05508, 1.01677, -1.03049),
    "dolomite": (0.0, 0.58321, -0.07775),
    "shale": (0.0, 0.76969, -0.86735),
}


def greenberg_castagna_vs(vp, lithology: str):
    """Greenberg & Castagna (1992) brine-saturated Vs (km/s) from Vp (km/s) for one lithology
    (``sandstone``, ``limestone``, ``dolomite`` or ``shale``)."""
    try:
        a2, a1, a0 = _GC_COEFFS[lithology]
    except KeyError:
        raise ValueError(f"unknown lithology {lithology!r}; choose from {sorted(_GC_COEFFS)}") from None
    vp = np.asarray(vp, dtype=float)
    return a2 * vp**2 + a1 * vp + a0


def gardner_density(vp):
    """Gardner et al. (1974): rho = 1.741 Vp^0.25 (g/cm3, Vp in km/s)."""
    return 1.741 * np.asarray(vp, dtype=float) ** 0.25


def gassmann_fluid_substitution(vp, vs, rho, phi, k_min, k_fl1, rho_fl1, k_fl2, rho_fl2):
    """Gassmann (1951) fluid substitution from fluid 1 to fluid 2.

    Velocities in km/s, densities in g/cm3, moduli in GPa (km^2/s^2 * g/cm3 = GPa). The shear
    modulus is unchanged, the density changes by ``phi * (rho_fl2 - rho_fl1)``. Returns
    ``(vp2, vs2, rho2)``.
    """
    vp, vs, rho, phi = (np.asarray(a, dtype=float) for a in (vp, vs, rho, phi))
    mu = rho * vs**2
    k_sat1 = rho * vp**2 - 4.0 / 3.0 * mu
    # invert Gassmann for the dry-rock modulus
    a = phi * k_min / k_fl1 + 1.0 - phi
    k_dry = (k_sat1 * a - k_min) / (phi * k_min / k_fl1 + k_sat1 / k_min - 1.0 - phi)
    k_dry = np.clip(k_dry, 0.05 * k_min * (1 - phi), None)
    k_sat2 = k_dry + (1.0 - k_dry / k_min) ** 2 / (phi / k_fl2 + (1.0 - phi) / k_min - k_dry / k_min**2)
    rho2 = rho + phi * (rho_fl2 - rho_fl1)
    vp2 = np.sqrt((k_sat2 + 4.0 / 3.0 * mu) / rho2)
    vs2 = np.sqrt(mu / rho2)
    return vp2, vs2, rho2


def gas_sand_from_brine(vp, vs, rho, gas_saturation: float = 0.7):
    """Replace brine by gas in a quartz sandstone (Gassmann): Vp drops strongly, density drops
    somewhat and Vs rises slightly (same shear modulus, lower density).

    Porosity is taken from the density (quartz 2.65, brine 1.05 g/cm3); quartz K = 37 GPa,
    brine K = 2.7 GPa, gas K = 0.05 GPa and 0.2 g/cm3; the partially gas-saturated fluid is a
    Wood (Reuss) mix.
    """
    rho = np.asarray(rho, dtype=float)
    k_min, rho_min = 37.0, 2.65
    k_b, rho_b, k_g, rho_g = 2.7, 1.05, 0.05, 0.2
    phi = np.clip((rho_min - rho) / (rho_min - rho_b), 0.05, 0.4)
    sg = gas_saturation
    k_mix = 1.0 / (sg / k_g + (1 - sg) / k_b)
    rho_mix = sg * rho_g + (1 - sg) * rho_b
    return gassmann_fluid_substitution(vp, vs, rho, phi, k_min, k_b, rho_b, k_mix, rho_mix)


def ricker(freq_hz: float, dt_s: float, length: int) -> np.ndarray:
    """Zero-phase Ricker wavelet (1 - 2 pi^2 f^2 t^2) exp(-pi^2 f^2 t^2), ``length`` samples
    centred on t = 0 (odd lengths put the peak on a sample). Its amplitude spectrum
    ~ (f/fp)^2 exp(-(f/fp)^2) peaks at ``freq_hz``."""
    t = (np.arange(length) - (length - 1) / 2.0) * dt_s
    a = (np.pi * freq_hz * t) ** 2
    return (1.0 - 2.0 * a) * np.exp(-a)


def fatti_reflectivity(ai, si, rho, theta_deg: float):
    """PP reflectivity at each interface of the logs (last axis), Aki-Richards in Fatti et al.
    (1994) form:

        R(theta) = (1 + tan^2 t)/2 * dAI/AI - 4 K^2 sin^2 t * dSI/SI
                   - (tan^2 t / 2 - 2 K^2 sin^2 t) * drho/rho,   K = Vs/Vp = SI/AI

    with contrasts and averages taken between consecutive samples. Returns an array one sample
    shorter than the input along the last axis.
    """
    ai, si, rho = (np.asarray(a, dtype=float) for a in (ai, si, rho))
    t = np.deg2rad(theta_deg)
    tan2, sin2 = np.tan(t) ** 2, np.sin(t) ** 2

    def contrast(x):
        return np.diff(x, axis=-1) / (0.5 * (x[..., 1:] + x[..., :-1]))

    k = 0.5 * (si[..., 1:] / ai[..., 1:] + si[..., :-1] / ai[..., :-1])
    return (
        0.5 * (1.0 + tan2) * contrast(ai)
        - 4.0 * k**2 * sin2 * contrast(si)
        - (0.5 * tan2 - 2.0 * k**2 * sin2) * contrast(rho)
    )


def angle_stacks(ai, si, rho, angles=(10.0, 30.0), freq_hz: float = 30.0, dt_s: float = 0.002,
                 wavelet_length: int = 41) -> np.ndarray:
    """Angle-stack synthetic traces: Fatti reflectivity at each angle convolved with a Ricker.

    ``ai``, ``si``, ``rho`` have shape (N, L); returns (N, len(angles), L) (the reflectivity at
    interface i sits on sample i + 1, sample 0 has no reflection above it). The logs are treated
    as sampled every ``dt_s`` seconds of two-way time.
    """
    ai = np.atleast_2d(ai)
    si = np.atleast_2d(si)
    rho = np.atleast_2d(rho)
    n, length = ai.shape
    w = ricker(freq_hz, dt_s, wavelet_length)
    out = np.zeros((n, len(angles), length))
    for j, theta in enumerate(angles):
        r = np.zeros((n, length))
        r[:, 1:] = fatti_reflectivity(ai, si, rho, theta)
        # 'same'-size convolution along the last axis via FFT
        m = length + wavelet_length - 1
        nfft = 1 << (m - 1).bit_length()
        full = np.fft.irfft(np.fft.rfft(r, nfft, axis=-1) * np.fft.rfft(w, nfft)[None, :], nfft, axis=-1)
        start = (wavelet_length - 1) // 2
        out[:, j, :] = full[:, start : start + length]
    return out
