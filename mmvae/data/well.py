"""One well as depth-indexed impedance logs, read from a LAS or ``.npz`` file (a path or bytes),
checked for the mistakes a user can make, and split by depth into contiguous intervals.

Impedances: Vp = 304.8 / DT (DT in us/ft; 1000 / DT in us/m), Vs likewise from DTS, density RHOB
in g/cm3; AI = Vp RHOB and SI = Vs RHOB in km/s * g/cm3 (see :mod:`mmvae.data.las`).

Checks (each a one-line :class:`DataError` naming the file): a missing sonic or density curve
lists the curves the file has; a sonic with zero or negative values; units that the values
contradict, found by range (a median P-velocity below 1.2 km/s from a slowness said to be in
us/ft is a slowness in us/m; a density median above 100 said to be g/cm3 is in kg/m3); fewer
valid samples than ``min_samples``.
"""
from __future__ import annotations

import io
import os
import re
import zipfile
from dataclasses import dataclass, field, replace

import numpy as np

from .dataset import DataError
from .validate import npz_headers
from .las import (_DENSITY, las_arrays, _P_SLOWNESS, _P_VELOCITY, _S_SLOWNESS, _S_VELOCITY, IMPEDANCE_UNIT, _density_g_cc,
                  _find, _velocity_km_s, read_las)

__all__ = ["Well", "read_well", "las_curves", "split_by_depth", "find_wells", "SPLIT_NAMES"]

SPLIT_NAMES = ("train", "val", "test")
# plausible medians of real logs (sedimentary rocks): outside them the units are wrong
_VP_RANGE = (1.2, 7.5)  # km/s
_VS_RANGE = (0.3, 4.5)  # km/s
_RHO_RANGE = (1.0, 3.5)  # g/cm3


@dataclass
class Well:
    """Depth-indexed logs of one well: ``depth`` (n,), ``ai`` and ``si`` (n,) in km/s * g/cm3 with
    NaN where a curve is missing; ``curves`` holds the measured curves used (name -> (values,
    unit)) so predictions can be written beside them."""

    name: str
    depth: np.ndarray
    ai: np.ndarray
    si: np.ndarray | None
    depth_unit: str = "m"
    source: str = ""
    curves: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.depth.shape[0])

    def valid(self, need_si: bool = True) -> np.ndarray:
        """Mask of depth samples with AI (and SI when ``need_si``)."""
        ok = np.isfinite(self.ai)
        if need_si and self.si is not None:
            ok &= np.isfinite(self.si)
        return ok

    def rows(self, start: int, stop: int) -> "Well":
        """The samples ``start:stop`` (a contiguous depth interval)."""
        sl = slice(int(start), int(stop))
        return replace(self, depth=self.depth[sl], ai=self.ai[sl], si=None if self.si is None else self.si[sl],
                       curves={k: (v[sl], u) for k, (v, u) in self.curves.items()})

    def interval(self, top: float, base: float) -> "Well":
        """The samples with top <= depth <= base."""
        idx = np.flatnonzero((self.depth >= top) & (self.depth <= base))
        if idx.size == 0:
            raise DataError(f"{self.source or self.name}: no samples between depths {top} and {base} "
                            f"(the log spans {self.depth[0]:g} to {self.depth[-1]:g} {self.depth_unit})")
        return self.rows(idx[0], idx[-1] + 1)


def _check_positive(values: np.ndarray, mnemonic: str, where: str) -> None:
    v = values[np.isfinite(values)]
    bad = int((v <= 0).sum())
    if bad:
        raise DataError(f"{where}: curve {mnemonic} has {bad} zero or negative value(s) (min {v.min():g}); a sonic "
                        f"or density must be positive: set missing samples to the file's NULL value")


def _check_range(values: np.ndarray, what: str, mnemonic: str, unit: str, rng: tuple[float, float], where: str,
                 hint: str) -> None:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return
    med = float(np.median(v))
    if not rng[0] <= med <= rng[1]:
        raise DataError(f"{where}: curve {mnemonic} (unit '{unit}') gives a median {what} of {med:.3g}, outside "
                        f"the {rng[0]:g}-{rng[1]:g} of real rocks: {hint}")


def _chosen(data, mnemonic, role, where) -> str:
    key = str(mnemonic).upper()
    if key not in data:
        raise DataError(f"{where}: no curve '{mnemonic}' (chosen as {role}); available curves: {', '.join(data)}")
    return key


def _is_velocity_unit(unit: str) -> bool:
    u = unit.lower().replace(" ", "")
    return u in ("m/s", "km/s", "ft/s", "mps", "kmps", "fps", "m/sec", "ft/sec")


def _velocity(data, units, slow, vel, what, rng, where, chosen=None) -> tuple[np.ndarray, str]:
    if chosen:
        m = _chosen(data, chosen, f"the {what} sonic", where)
        is_slow = not (m in vel or _is_velocity_unit(units.get(m, "")))
    else:
        m = _find(data, slow)
        is_slow = m is not None
        if m is None:
            m = _find(data, vel)
    if m is None:
        raise DataError(f"{where}: no {what} sonic curve (looked for {', '.join(slow + vel)}); "
                        f"available curves: {', '.join(data)}")
    unit = units.get(m, "")
    _check_positive(data[m], m, where)
    v = _velocity_km_s(data[m], m, unit, is_slow, where)
    hint = ("the values look like a slowness in us/m labelled us/ft (or the reverse); fix the unit in the "
            "file's ~Curve section" if is_slow else "check the velocity unit (m/s, km/s or ft/s)")
    _check_range(v, f"{what} velocity (km/s)", m, unit, rng, where, hint)
    return v, m


def _from_logs(name, depth, data, units, depth_unit, where, curves=None, require_si: bool = True) -> Well:
    curves = dict(curves or {})
    unknown = set(curves) - {"p", "s", "density"}
    if unknown:
        raise DataError(f"{where}: curve roles must be p, s and density, got {sorted(unknown)}")
    vp, mp = _velocity(data, units, _P_SLOWNESS, _P_VELOCITY, "P-wave", _VP_RANGE, where, curves.get("p"))
    has_s = curves.get("s") or _find(data, _S_SLOWNESS) or _find(data, _S_VELOCITY)
    if has_s or require_si:
        vs, ms = _velocity(data, units, _S_SLOWNESS, _S_VELOCITY, "S-wave", _VS_RANGE, where, curves.get("s"))
    else:
        vs, ms = None, None
    md = _chosen(data, curves["density"], "the density", where) if curves.get("density") else _find(data, _DENSITY)
    if md is None:
        raise DataError(f"{where}: no density curve (looked for {', '.join(_DENSITY)}); "
                        f"available curves: {', '.join(data)}")
    _check_positive(data[md], md, where)
    rho = _density_g_cc(data[md], md, units.get(md, ""), where)
    _check_range(rho, "density (g/cm3)", md, units.get(md, ""), _RHO_RANGE, where,
                 "the values look like kg/m3 labelled g/cm3 (or the reverse); fix the unit in the file")
    curves = {k: (np.asarray(data[k], dtype=np.float64), units.get(k, "")) for k in (mp, ms, md, "GR")
              if k is not None and k in data}
    return Well(name, np.asarray(depth, dtype=np.float64), vp * rho, None if vs is None else vs * rho, depth_unit,
                where, curves)


def _read_las_bytes(blob: bytes, where: str):
    import lasio

    text = blob.decode("utf-8", errors="replace")
    if "\x00" in text[:4096] or "~" not in text[:4096]:
        raise DataError(f"{where}: not a LAS file (no '~' section header such as ~Version near the start)")
    try:
        wrapped = re.search(r"^\s*WRAP\s*\.\s*YES", text[:65536], re.MULTILINE | re.IGNORECASE) is not None
        las = lasio.read(io.StringIO(text), engine="normal" if wrapped else "numpy")  # lasio's numpy engine cannot read wrapped files
    except Exception as e:  # lasio raises many kinds of errors on garbage
        raise DataError(f"{where}: not a readable LAS file ({type(e).__name__}: {e})") from None
    return las_arrays(las, where)


def _read_npz(src, where: str, name: str) -> Well:
    # declared sizes first (a small compressed upload can declare gigabytes): nothing is loaded
    # before every header passed :func:`~mmvae.data.validate.npz_headers`
    npz_headers(io.BytesIO(src) if isinstance(src, bytes) else src, where)
    try:
        with np.load(io.BytesIO(src) if isinstance(src, bytes) else src, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{where}: not a readable .npz file without unpickling ({type(e).__name__}: {e})") from None
    need = ("depth", "AI")
    missing = [k for k in need if k not in arrays]
    if missing:
        raise DataError(f"{where}: a well .npz needs arrays 'depth', 'AI' (and 'SI' to train or score), "
                        f"km/s*g/cm3; it has {', '.join(arrays) or 'none'}")
    out = {}
    for k in ("depth", "AI", "SI", "GR"):
        if k in arrays:
            a = arrays[k]
            if a.dtype == object or not np.issubdtype(a.dtype, np.number) or a.ndim != 1:
                raise DataError(f"{where}: array '{k}' must be a 1-D numeric array, got {a.dtype} {a.shape}")
            if a.shape != arrays["depth"].shape:
                raise DataError(f"{where}: array '{k}' has {a.shape[0]} samples but 'depth' has {arrays['depth'].shape[0]}")
            out[k] = a.astype(np.float64)
    for k in ("AI", "SI"):
        if k in out:
            _check_positive(out[k], k, where)
            _check_range(out[k], "impedance (km/s*g/cm3)", k, IMPEDANCE_UNIT, (0.5, 25.0), where,
                         "impedances must be in km/s * g/cm3 (m/s * kg/m3 is 1e6 times larger)")
    curves = {"GR": (out["GR"], "API")} if "GR" in out else {}
    return Well(name, out["depth"], out["AI"], out.get("SI"), "m", where, curves)


def read_well(source: str | os.PathLike | bytes, name: str | None = None, min_samples: int = 64,
              curves: dict | None = None, require_si: bool = True) -> Well:
    """A :class:`Well` from a LAS or well ``.npz`` file (depth, AI, SI[, GR]; km/s * g/cm3), given
    as a path or as the file's bytes (``name`` then says which, by its extension).

    ``curves`` (LAS only) chooses mnemonics by role, e.g. ``{"p": "DTCO", "s": "DTSM", "density":
    "RHOZ"}``; a role left out is recognised by name (:func:`las_curves` lists what a file has and
    what would be picked). A velocity curve (unit m/s, km/s, ft/s, or named VP / VS) is accepted
    in place of a slowness. ``require_si=False`` (for prediction) accepts a well without a shear
    sonic: ``si`` is then None.

    Raises :class:`DataError` (see the module docstring) for missing curves, non-positive sonic or
    density, units contradicted by the values, or fewer than ``min_samples`` samples with AI and SI.
    """
    if isinstance(source, (bytes, bytearray)):
        where = name or "<uploaded file>"
        blob = bytes(source)
        is_npz = blob[:4] == b"PK\x03\x04" or where.lower().endswith(".npz")
        if is_npz:
            well = _read_npz(blob, where, os.path.splitext(os.path.basename(where))[0])
        else:
            depth, data, units, du = _read_las_bytes(blob, where)
            well = _from_logs(os.path.splitext(os.path.basename(where))[0], depth, data, units, du, where, curves,
                               require_si)
    else:
        path = os.fspath(source)
        where = path
        stem = name or os.path.splitext(os.path.basename(path))[0]
        if path.lower().endswith(".npz"):
            if not os.path.isfile(path):
                raise DataError(f"{path}: no such file")
            well = _read_npz(path, path, stem)
        else:
            depth, data, units, du = read_las(path)
            well = _from_logs(stem, depth, data, units, du, path, curves, require_si)
    if well.si is None and require_si:
        raise DataError(f"{where}: no 'SI' array: training and scoring need the measured shear impedance")
    n_ok = int(well.valid().sum())
    what = "both AI and SI (sonic, shear sonic and density)" if well.si is not None else "AI (sonic and density)"
    if n_ok < min_samples:
        raise DataError(f"{where}: only {n_ok} depth samples have {what}; need at least {min_samples}")
    return well


def las_curves(source: str | os.PathLike | bytes, name: str | None = None) -> dict:
    """What a LAS file offers, for a curve picker: {"curves": [(mnemonic, unit), ...], "default":
    {"p": ..., "s": ..., "density": ...}} (the recognised mnemonic of each role, or None)."""
    if isinstance(source, (bytes, bytearray)):
        _, data, units, _ = _read_las_bytes(bytes(source), name or "<uploaded file>")
    else:
        _, data, units, _ = read_las(source)
    default = {"p": _find(data, _P_SLOWNESS) or _find(data, _P_VELOCITY),
               "s": _find(data, _S_SLOWNESS) or _find(data, _S_VELOCITY), "density": _find(data, _DENSITY)}
    return {"curves": [(k, units.get(k, "")) for k in data], "default": default}


def split_by_depth(well: Well, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                   order: str = "top-down") -> dict[str, Well]:
    """Contiguous depth intervals: the first ``fractions[0]`` of the valid samples (from the top
    with ``order="top-down"``, from the base with ``"bottom-up"``) train, the next ``fractions[1]``
    validate, the rest test. Windows are cut inside each interval, so no test window overlaps a
    training window, and the test interval lies beyond the training one (an honest extrapolation
    test: the deeper rocks are usually stiffer than any in training)."""
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or (f < 0).any() or abs(f.sum() - 1) > 1e-6:
        raise DataError(f"depth split fractions must be three numbers >= 0 summing to 1, got {fractions!r}")
    if order not in ("top-down", "bottom-up"):
        raise DataError(f"depth split order must be top-down or bottom-up, got {order!r}")
    rows = np.flatnonzero(well.valid())
    if order == "bottom-up":
        rows = rows[::-1]
    n = rows.size
    cuts = np.round(np.cumsum(f)[:2] * n).astype(int)
    parts = np.split(rows, cuts)
    out = {}
    for s, p in zip(SPLIT_NAMES, parts):
        if p.size:
            lo, hi = int(p.min()), int(p.max()) + 1
            out[s] = well.rows(lo, hi)
    return out


def find_wells(paths) -> list[str]:
    """Expand folders into their ``.las`` / ``.npz`` files (sorted); keep files as given."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = sorted(os.path.join(p, f) for f in os.listdir(p) if f.lower().endswith((".las", ".npz")))
            if not found:
                raise DataError(f"{p}: the folder has no .las or .npz files")
            out += found
        else:
            out.append(p)
    return out
