"""Well logs from LAS files: the shipped ``wells`` dataset and bring-your-own LAS.

Logs are cut into windows of ``window`` samples every ``stride`` samples. The split is by depth:
the logged interval is divided into ``n_blocks`` contiguous blocks of equal sample count, the
blocks are assigned at random (from ``seed``) to train / validation / test, and no window crosses
a block boundary, so a test window never overlaps a training window. Windows containing a null
(-999.25 or NaN) are dropped.

Impedances (``impedance=True``): Vp from a P-slowness (``DT``, ``DTC``, ``DTCO``, ``DTP``; us/ft
or us/m) or P-velocity curve (``VP``, ``VEL``, ``PVEL``; m/s, km/s or ft/s), Vs likewise (``DTS``,
``DTSM``, ``DTSH``; ``VS``, ``SVEL``) and density from ``RHOB``, ``RHOZ``, ``DEN`` or ``DENS`` (g/cm3
or kg/m3). Vp = 304.8 / DT (us/ft) km/s, AI = Vp * RHOB and SI = Vs * RHOB in km/s * g/cm3.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
import torch

from .dataset import DataError, DatasetBundle, ModalitySpec, MultimodalData
from .validate import check_las

__all__ = [
    "read_las",
    "impedance_from_logs",
    "window_bundle",
    "load_las",
    "las_logs",
    "all_windows",
    "load_wells",
    "make_p135_npz",
    "FILES_DIR",
    "P135_LAS",
    "P135_NPZ",
]

FILES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files")
P135_LAS = os.path.join(FILES_DIR, "P-135_out.LAS")
P135_NPZ = os.path.join(FILES_DIR, "p135_impedance.npz")
IMPEDANCE_UNIT = "km/s*g/cm3"

_P_SLOWNESS = ("DT", "DTC", "DTCO", "DTP", "DT4P", "AC")
_S_SLOWNESS = ("DTS", "DTSM", "DTSH", "DT4S", "ACS")
_P_VELOCITY = ("VP", "VEL", "PVEL", "VELP", "VP_KMS")
_S_VELOCITY = ("VS", "SVEL", "VELS", "VS_KMS")
_DENSITY = ("RHOB", "RHOZ", "DEN", "DENS", "RHO")


@lru_cache(maxsize=8)
def _read_las_cached(path: str, mtime: float, size: int, wrapped: bool):
    import lasio

    try:
        las = lasio.read(path, engine="normal" if wrapped else "numpy")
    except Exception as e:  # lasio raises many kinds of errors on garbage
        raise DataError(f"{path}: not a readable LAS file ({type(e).__name__}: {e})") from None
    depth, data, units, depth_unit = las_arrays(las, path)
    for a in (depth, *data.values()):
        a.setflags(write=False)
    return depth, data, units, depth_unit


def las_arrays(las, where: str) -> tuple[np.ndarray, dict, dict, str]:
    """(depth, {MNEMONIC: values}, {MNEMONIC: unit}, depth unit) of a parsed ``lasio.LASFile``,
    with the file's NULL value and -999.25 as NaN; ``where`` names the file in errors."""
    curves = list(las.curves)
    if len(curves) < 2:
        raise DataError(f"{where}: not a LAS file with log curves (found {len(curves)} curve(s))")
    depth = np.asarray(las.index, dtype=np.float64)
    if depth.ndim != 1 or depth.size == 0:
        raise DataError(f"{where}: the LAS file has no data rows")
    data, units = {}, {}
    null = las.well["NULL"].value if "NULL" in las.well else -999.25
    for c in curves[1:]:
        a = np.asarray(c.data, dtype=np.float64).copy()
        try:
            a[np.isclose(a, float(null))] = np.nan
        except (TypeError, ValueError):
            pass
        a[np.isclose(a, -999.25)] = np.nan
        data[c.mnemonic.upper()] = a
        units[c.mnemonic.upper()] = str(c.unit or "")
    return depth, data, units, str(curves[0].unit or "")


def read_las(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, str], str]:
    """Read a LAS file: (depth (n,), {MNEMONIC: values (n,) with NaN for nulls}, {MNEMONIC: unit},
    depth unit). Mnemonics are upper-cased. Arrays are read-only (cached)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not a LAS file")
    check_las(path)  # size and header length bounded before lasio parses it (mmvae.data.validate)
    st = os.stat(path)
    with open(path, "rb") as f:
        head = f.read(4096)
    if b"\x00" in head or b"~" not in head:
        raise DataError(f"{path}: not a LAS file (no '~' section header such as ~Version near the start)")
    wrapped = re.search(rb"^\s*WRAP\s*\.\s*YES", head, re.MULTILINE | re.IGNORECASE) is not None
    return _read_las_cached(os.path.abspath(path), st.st_mtime, st.st_size, wrapped)


def _norm_unit(u: str) -> str:
    return u.lower().replace(" ", "").replace("sec", "s").replace("usec", "us")


def _velocity_km_s(values: np.ndarray, mnemonic: str, unit: str, slowness: bool, path: str) -> np.ndarray:
    u = _norm_unit(unit)
    if slowness:
        if u in ("us/ft", "us/f", "µs/ft", "uspf", "") or u.endswith("/ft"):
            return 304.8 / values
        if u in ("us/m", "µs/m") or u.endswith("/m"):
            return 1000.0 / values
        raise DataError(f"{path}: curve {mnemonic} has slowness unit '{unit}'; expected us/ft or us/m")
    if u in ("m/s", "mps", "m/sec"):
        return values / 1000.0
    if u in ("km/s", "kmps"):
        return values
    if u in ("ft/s", "fps", "ft/sec"):
        return values * 0.0003048
    if u == "":  # guess from magnitude
        med = np.nanmedian(values)
        return values / 1000.0 if med > 100 else values
    raise DataError(f"{path}: curve {mnemonic} has velocity unit '{unit}'; expected m/s, km/s or ft/s")


def _density_g_cc(values: np.ndarray, mnemonic: str, unit: str, path: str) -> np.ndarray:
    u = _norm_unit(unit)
    if u in ("g/cm3", "g/cc", "gm/cc", "g/cm^3", "gr/cc", "gm/cm3"):
        return values
    if u in ("kg/m3", "kg/m^3"):
        return values / 1000.0
    if u == "":
        return values / 1000.0 if np.nanmedian(values) > 100 else values
    raise DataError(f"{path}: curve {mnemonic} has density unit '{unit}'; expected g/cm3 or kg/m3")


def _find(data: Mapping[str, np.ndarray], names: Sequence[str]) -> str | None:
    for n in names:
        if n in data:
            return n
    return None


def impedance_from_logs(data: Mapping[str, np.ndarray], units: Mapping[str, str], path: str = "<logs>"
                        ) -> dict[str, np.ndarray]:
    """Compute vp, vs (km/s), rho (g/cm3), AI and SI (km/s * g/cm3) from the curves of a LAS file.

    Raises :class:`DataError` listing the available curves when a P, S or density curve is missing.
    """
    out = {}
    for key, slow, vel in (("vp", _P_SLOWNESS, _P_VELOCITY), ("vs", _S_SLOWNESS, _S_VELOCITY)):
        m = _find(data, slow)
        if m is not None:
            out[key] = _velocity_km_s(data[m], m, units.get(m, ""), True, path)
            continue
        m = _find(data, vel)
        if m is None:
            what = "P-wave" if key == "vp" else "S-wave"
            raise DataError(
                f"{path}: no {what} sonic curve for impedance (looked for {', '.join(slow + vel)}); "
                f"available curves: {', '.join(data)}")
        out[key] = _velocity_km_s(data[m], m, units.get(m, ""), False, path)
    m = _find(data, _DENSITY)
    if m is None:
        raise DataError(f"{path}: no density curve for impedance (looked for {', '.join(_DENSITY)}); "
                        f"available curves: {', '.join(data)}")
    out["rho"] = _density_g_cc(data[m], m, units.get(m, ""), path)
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in ("vp", "vs"):
            v = out[k]
            out[k] = np.where(np.isfinite(v) & (v > 0), v, np.nan)
        out["AI"] = out["vp"] * out["rho"]
        out["SI"] = out["vs"] * out["rho"]
    return out


def _block_assignment(n_blocks: int, seed: int, fractions=(0.7, 0.15, 0.15)) -> np.ndarray:
    """Split code (0 train, 1 val, 2 test) of each depth block."""
    n_test = max(1, int(round(fractions[2] * n_blocks)))
    n_val = max(1, int(fractions[1] * n_blocks))
    if n_blocks - n_test - n_val < 1:
        raise DataError(f"need at least 3 depth blocks, got n_blocks={n_blocks}")
    codes = np.zeros(n_blocks, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(n_blocks)
    codes[perm[:n_test]] = 2
    codes[perm[n_test : n_test + n_val]] = 1
    return codes


def window_bundle(
    name: str,
    depth: np.ndarray,
    logs: Mapping[str, tuple[np.ndarray, str, str]],
    *,
    window: int = 64,
    stride: int = 16,
    seed: int = 0,
    n_blocks: int = 10,
    gr: np.ndarray | None = None,
    gr_cutoff: float | None = None,
    source: str = "",
    description: str = "",
    normalize: bool = True,
) -> DatasetBundle:
    """Cut aligned logs into windows with a depth-block split (see the module docstring).

    ``logs`` maps modality name -> (values (n,), unit, description). ``gr`` (optional) gives the
    labels: 0 = sand-prone window (mean GR < ``gr_cutoff``), 1 = shale-prone; ``gr_cutoff=None``
    uses the median of the training windows' mean GR. Each modality is standardised with the
    mean and standard deviation of the training windows (shift/scale in its spec);
    ``normalize=False`` keeps physical units (shift 0, scale 1).
    """
    where = source or name
    try:
        window, stride, n_blocks = int(window), int(stride), int(n_blocks)
        gr_cutoff = None if gr_cutoff is None else float(gr_cutoff)
    except (TypeError, ValueError):
        raise DataError(f"{where}: window, stride and n_blocks must be integers and gr_cutoff a number "
                        f"(got window={window!r}, stride={stride!r}, n_blocks={n_blocks!r}, "
                        f"gr_cutoff={gr_cutoff!r})") from None
    if window < 2 or stride < 1:
        raise DataError(f"{where}: window must be >= 2 and stride >= 1 (got window={window}, stride={stride})")
    valid = np.ones(depth.shape[0], dtype=bool)
    for k, (v, _, _) in logs.items():
        valid &= np.isfinite(v)
    if gr is not None:
        valid &= np.isfinite(gr)
    rows = np.flatnonzero(valid)
    if rows.size < window:
        raise DataError(
            f"{where}: only {rows.size} depth samples have all of {', '.join(logs)}"
            f"{' and GR' if gr is not None else ''}; need at least one window of {window}")
    first, last = rows[0], rows[-1] + 1
    edges = np.linspace(first, last, n_blocks + 1).round().astype(int)
    codes = _block_assignment(n_blocks, seed)
    starts: list[list[int]] = [[], [], []]
    cum = np.concatenate([[0], np.cumsum(~valid)])
    blocks = []
    for bi in range(n_blocks):
        s, e = edges[bi], edges[bi + 1]
        blocks.append((float(depth[s]), float(depth[e - 1]) if e > s else float(depth[s]), int(codes[bi])))
        for st in range(s, e - window + 1, stride):
            if cum[st + window] - cum[st] == 0:
                starts[codes[bi]].append(st)
    counts = [len(s) for s in starts]
    if min(counts) == 0:
        raise DataError(
            f"{where}: too few samples for windows of {window} in every split "
            f"(train/val/test windows: {counts}; {rows.size} valid samples in {n_blocks} depth blocks); "
            f"use a smaller window or fewer blocks")
    idx = [np.asarray(s, dtype=np.int64)[:, None] + np.arange(window)[None, :] for s in starts]
    labels = [None, None, None]
    if gr is not None:
        gr_mean = [gr[i].mean(axis=1) for i in idx]
        if gr_cutoff is None:
            gr_cutoff = float(np.median(gr_mean[0]))
        labels = [torch.from_numpy((g >= gr_cutoff).astype(np.int64)) for g in gr_mean]
    specs, mods = {}, [{}, {}, {}]
    for k, (v, unit, desc) in logs.items():
        tr = v[idx[0]]
        shift, scale = (float(tr.mean()), float(tr.std()) or 1.0) if normalize else (0.0, 1.0)
        specs[k] = ModalitySpec(k, (window,), "gaussian", "sequence", unit, shift, scale, desc)
        for j in range(3):
            mods[j][k] = torch.from_numpy(((v[idx[j]] - shift) / scale).astype(np.float32))
    splits = [MultimodalData(mods[j], labels[j]) for j in range(3)]
    extras = {
        "depth": {s: depth[idx[j]].astype(np.float32) for j, s in enumerate(("train", "val", "test"))},
        "blocks": blocks,
        "window": window,
        "stride": stride,
        "source": source,
    }
    if gr is not None:
        extras["gr_cutoff"] = gr_cutoff
    return DatasetBundle(
        name=name,
        train=splits[0],
        val=splits[1],
        test=splits[2],
        specs=specs,
        description=description,
        label_names=["sand-prone (low GR)", "shale-prone (high GR)"] if gr is not None else None,
        extras=extras,
    )


def las_logs(
    path: str | os.PathLike,
    curves: Mapping[str, str] | Sequence[str] | None = None,
    impedance: bool | None = None,
    label_curve: str | None = "GR",
) -> tuple[np.ndarray, dict[str, tuple[np.ndarray, str, str]], np.ndarray | None, str]:
    """The per-depth logs :func:`load_las` windows, in physical units: (depth (n,), {modality:
    (values (n,), unit, description)}, label curve values or None, depth unit)."""
    path = os.fspath(path)
    depth, data, units, depth_unit = read_las(path)
    if impedance is None:
        impedance = curves is None
    if curves is None:
        curves = {}
    elif isinstance(curves, str):
        curves = {curves: curves}
    elif isinstance(curves, (list, tuple)) and all(isinstance(c, str) for c in curves):
        curves = {c: c for c in curves}
    elif not isinstance(curves, Mapping):
        raise DataError(f"{path}: curves must be a curve name, a list of names or a dict modality -> name, "
                        f"got {curves!r}")
    if not curves and not impedance:
        raise DataError(f"{path}: choose curves (modality -> mnemonic) or impedance=True; "
                        f"available curves: {', '.join(data)}")
    logs: dict[str, tuple[np.ndarray, str, str]] = {}
    if impedance:
        imp = impedance_from_logs(data, units, path)
        logs["AI"] = (imp["AI"], IMPEDANCE_UNIT, "acoustic (P) impedance Vp*rho")
        logs["SI"] = (imp["SI"], IMPEDANCE_UNIT, "shear impedance Vs*rho")
    for mod, mnem in curves.items():
        key = str(mnem).upper()
        if key not in data:
            raise DataError(f"{path}: no curve '{mnem}' (for modality '{mod}'); available curves: {', '.join(data)}")
        logs[str(mod)] = (data[key], units.get(key, ""), f"curve {key} of {os.path.basename(path)}")
    if len(logs) < 2:
        raise DataError(f"{path}: a multimodal dataset needs at least 2 modalities, got {list(logs)}")
    if label_curve is not None and not isinstance(label_curve, str):
        raise DataError(f"{path}: label_curve must be a curve name, got {label_curve!r}")
    gr = data.get(label_curve.upper()) if label_curve else None
    return depth, logs, gr, depth_unit


def all_windows(depth: np.ndarray, logs: Mapping[str, tuple[np.ndarray, str, str]], window: int = 64,
                stride: int = 16, where: str = "") -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every window of ``window`` samples every ``stride`` samples over the whole log, in depth
    order and physical units, skipping windows with a null in any log: ({modality: (n_windows,
    window)}, row index of each window's first sample (n_windows,)). For scoring a well the
    model never saw, where the whole file is test data."""
    window, stride = int(window), int(stride)
    valid = np.ones(depth.shape[0], dtype=bool)
    for v, _, _ in logs.values():
        valid &= np.isfinite(v)
    cum = np.concatenate([[0], np.cumsum(~valid)])
    starts = np.arange(0, max(depth.shape[0] - window + 1, 0), stride)
    starts = starts[(cum[starts + window] - cum[starts]) == 0] if starts.size else starts
    if starts.size == 0:
        raise DataError(f"{where or 'logs'}: no window of {window} consecutive samples has all of "
                        f"{', '.join(logs)} ({int(valid.sum())} valid samples)")
    idx = starts[:, None] + np.arange(window)[None, :]
    return {k: v[idx] for k, (v, _, _) in logs.items()}, starts


def load_las(
    path: str | os.PathLike,
    curves: Mapping[str, str] | Sequence[str] | None = None,
    impedance: bool | None = None,
    window: int = 64,
    stride: int = 16,
    seed: int = 0,
    n_blocks: int = 10,
    gr_cutoff: float | None = None,
    label_curve: str | None = "GR",
) -> DatasetBundle:
    """Bring-your-own LAS file -> windowed multimodal dataset.

    ``curves``: modality name -> curve mnemonic (or a list of mnemonics, each its own modality).
    ``impedance``: add modalities ``AI`` and ``SI`` computed from sonic and density curves;
    ``None`` (default) means "yes unless ``curves`` is given". ``label_curve`` (default GR, if
    present) labels windows sand-prone / shale-prone. Errors are :class:`DataError` naming the
    file and the problem (missing file, not a LAS file, missing curve, too few samples).
    """
    path = os.fspath(path)
    depth, logs, gr, depth_unit = las_logs(path, curves, impedance, label_curve)
    bundle = window_bundle(
        os.path.basename(path), depth, logs, window=window, stride=stride, seed=seed, n_blocks=n_blocks,
        gr=gr, gr_cutoff=gr_cutoff, source=path,
        description=f"windows of {window} samples from {os.path.basename(path)}")
    bundle.extras["depth_unit"] = depth_unit
    return bundle


def make_p135_npz(las_path: str = P135_LAS, out_path: str = P135_NPZ) -> str:
    """Regenerate the shipped compact array from the P-135 LAS file: depth (m), AI, SI
    (km/s * g/cm3) and GR (API) as float32 over the interval where DT, DTS, RHOB and GR all exist."""
    depth, data, units, _ = read_las(las_path)
    imp = impedance_from_logs(data, units, las_path)
    ok = np.isfinite(imp["AI"]) & np.isfinite(imp["SI"]) & np.isfinite(data["GR"])
    rows = np.flatnonzero(ok)
    sl = slice(rows[0], rows[-1] + 1)
    np.savez_compressed(
        out_path,
        depth=depth[sl].astype(np.float32),
        AI=imp["AI"][sl].astype(np.float32),
        SI=imp["SI"][sl].astype(np.float32),
        GR=data["GR"][sl].astype(np.float32),
    )
    return out_path


@lru_cache(maxsize=1)
def _p135_arrays():
    if not os.path.exists(P135_NPZ):
        raise DataError(f"{P135_NPZ}: the shipped well data is missing; run mmvae/data/files/make_p135.py")
    with np.load(P135_NPZ) as f:
        arrs = {k: f[k].astype(np.float64) for k in ("depth", "AI", "SI", "GR")}
    for a in arrs.values():
        a.setflags(write=False)
    return arrs


def load_wells(window: int = 64, stride: int = 16, seed: int = 0, n_blocks: int = 10,
               gr_cutoff: float | None = None) -> DatasetBundle:
    """The ``wells`` dataset: AI and SI windows of the P-135 well (see mmvae/data/files/README.md)."""
    a = _p135_arrays()
    logs = {
        "AI": (a["AI"], IMPEDANCE_UNIT, "acoustic impedance Vp*RHOB, Vp = 304.8/DT"),
        "SI": (a["SI"], IMPEDANCE_UNIT, "shear impedance Vs*RHOB, Vs = 304.8/DTS"),
    }
    b = window_bundle(
        "wells", a["depth"], logs, window=window, stride=stride, seed=seed, n_blocks=n_blocks, gr=a["GR"],
        gr_cutoff=gr_cutoff, source=P135_NPZ,
        description="P- and S-impedance windows of the Eastrock Lauren #1 (P-135) well, Nova Scotia; "
                    "depth-block split")
    b.extras["depth_unit"] = "m"
    return b
