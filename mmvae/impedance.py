r"""The impedance workflow: predict shear impedance (SI) from acoustic impedance (AI) on wells a
model never saw, with a predictive distribution, against the rock-physics baseline.

Everything the command line (``train`` / ``evaluate`` / ``predict`` on LAS files) and an app need,
as plain functions of wells (:class:`~mmvae.data.well.Well`, from LAS or .npz paths or bytes):

>>> from mmvae.impedance import ImpedanceConfig, read_well, split_by_depth, train, predict, metrics, las_bytes
>>> well = read_well("well.las")
>>> parts = split_by_depth(well)                     # contiguous: top 70% train, 15% val, base 15% test
>>> imp = train([parts["train"]], [parts["val"]], ImpedanceConfig(epochs=30))
>>> pred = predict(imp, parts["test"], quantiles=(0.1, 0.5, 0.9))
>>> metrics(pred)                                    # RMSE, bias, correlation, coverage, CRPS vs baseline
>>> blob = las_bytes(pred)                           # measured curves + SI_P10/SI_P50/SI_P90 + SI_RP

Modelling (``physics=True``, the default; see :mod:`mmvae.data.physics` for the maths and
citations): the VAE's modalities are windows of u = log AI minus its window mean, and of the
rock-physics residual r = log SI - log g(AI), each standardised with the training windows'
statistics; ``physics=False`` models AI and SI themselves (standardised). Training is any
fusion / estimator of :func:`mmvae.fit` (default PoE, DReG, K = 10).

Prediction: every window of ``window`` samples every ``stride`` samples of the well; for each,
``n_samples`` posterior samples z ~ q(z | AI window) and the SI likelihood N(mu(z), sigma^2)
(sigma: the learned scale) give mixture components; every depth sample pools the components of
all windows that cover it, and its quantiles are exact mixture quantiles
(:func:`mmvae.diagnostics.predictive.mixture_quantiles`) mapped to km/s * g/cm3 by the increasing
map r -> g(AI) exp(r * scale + shift).
"""
from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch

from .data.dataset import DataError, ModalitySpec
from .data.las import IMPEDANCE_UNIT
from .data.normalize import Normalizer
from .data.physics import fit_trend, physics_features, rock_physics_si, si_from_residual
from .data.well import Well, find_wells, las_curves, read_well, split_by_depth
from .diagnostics.predictive import band_coverage, mixture_quantiles, sample_crps

__all__ = ["ImpedanceConfig", "ImpedanceModel", "Prediction", "KIND", "read_well", "las_curves", "split_by_depth", "find_wells",
           "well_windows", "merge_windows", "train", "predict", "metrics", "las_bytes", "write_las", "save", "load", "is_impedance",
           "shipped_wells"]

KIND = "impedance-wells"


@dataclass
class ImpedanceConfig:
    """Options of :func:`train` (all saved in the checkpoint)."""

    physics: bool = True
    calibrate: bool = True  # fit the line a + b log AI to the residual on the training wells
    window: int = 64
    stride: int = 8
    latent_dim: int = 2
    fusion: str = "poe"
    estimator: str = "dreg"
    K: int = 10
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    network: dict = field(default_factory=lambda: {"type": "conv1d", "channels": [16, 32], "hidden": 64})

    def __post_init__(self) -> None:
        if int(self.window) < 8 or int(self.stride) < 1:
            raise ValueError(f"window must be >= 8 and stride >= 1, got {self.window} and {self.stride}")


@dataclass
class ImpedanceModel:
    """A trained VAE with what it needs to predict: its normalisation and feature options."""

    model: object
    normalizer: Normalizer
    config: ImpedanceConfig
    wells: list = field(default_factory=list)  # names of the training wells
    history: dict = field(default_factory=dict)
    trend: tuple = (0.0, 0.0)  # (a, b) of the calibrated rock-physics residual, see mmvae.data.physics


# --------------------------------------------------------------------------------- features
def _window_starts(valid: np.ndarray, window: int, stride: int) -> np.ndarray:
    """First rows of every window of ``window`` samples every ``stride`` rows with all samples valid;
    the last valid window is always added so the base of a log is covered."""
    n = valid.shape[0]
    if n < window:
        return np.zeros(0, dtype=np.int64)
    bad = np.concatenate([[0], np.cumsum(~valid)])
    ok = (bad[window:] - bad[:-window]) == 0  # (n - window + 1,)
    starts = np.arange(0, n - window + 1, stride)
    starts = starts[ok[starts]]
    every = np.flatnonzero(ok)
    # windows starting right after a gap and the final window: full coverage of every valid run
    if every.size:
        run_first = every[np.concatenate([[True], np.diff(every) > 1])]
        run_last = every[np.concatenate([np.diff(every) > 1, [True]])]
        starts = np.union1d(starts, np.concatenate([run_first, run_last]))
    return starts.astype(np.int64)


def well_windows(well: Well, window: int, stride: int, physics: bool, need_si: bool = True,
                 trend: tuple[float, float] = (0.0, 0.0)) -> dict:
    """Feature windows of one well: {"AI": (N, window), "SI": (N, window) or None, "level": (N, 1),
    "starts": (N,), "ai": (N, window) physical AI}."""
    valid = well.valid(need_si)
    starts = _window_starts(valid, window, stride)
    idx = starts[:, None] + np.arange(window)[None, :]
    ai = well.ai[idx]
    si = well.si[idx] if (need_si and well.si is not None) else None
    if physics:
        u, r, level = physics_features(ai, si, trend)
    else:
        u, r, level = ai, si, np.zeros((ai.shape[0], 1))
    return {"AI": u, "SI": r, "level": level, "starts": starts, "ai": ai}


def _stack(wells: Sequence[Well], cfg: ImpedanceConfig, stride: int, trend) -> dict[str, np.ndarray]:
    parts = [well_windows(w, cfg.window, stride, cfg.physics, trend=trend) for w in wells]
    parts = [p for p in parts if p["starts"].size]
    if not parts:
        return {"AI": np.zeros((0, cfg.window)), "SI": np.zeros((0, cfg.window))}
    return {k: np.concatenate([p[k] for p in parts]) for k in ("AI", "SI")}


def _specs(train_windows: dict[str, np.ndarray], cfg: ImpedanceConfig) -> dict[str, ModalitySpec]:
    unit = "log units" if cfg.physics else IMPEDANCE_UNIT
    desc = {"AI": "log AI minus its window mean" if cfg.physics else "acoustic impedance Vp*rho",
            "SI": "log SI - log SI_rock-physics(AI)" if cfg.physics else "shear impedance Vs*rho"}
    out = {}
    for k in ("AI", "SI"):
        a = train_windows[k]
        out[k] = ModalitySpec(k, (cfg.window,), "gaussian", "sequence", unit, float(a.mean()), float(a.std()) or 1.0,
                              desc[k])
    return out


# --------------------------------------------------------------------------------- training
def train(train_wells: Sequence[Well], val_wells: Sequence[Well] = (), config: ImpedanceConfig | None = None,
          device: str = "cpu", progress: bool = False) -> ImpedanceModel:
    """Train on the windows of ``train_wells`` (validation curves on ``val_wells``). The feature
    statistics come from the training windows only."""
    from .model import build_model, config_for_specs
    from .training import fit

    cfg = config or ImpedanceConfig()
    trend = (0.0, 0.0)
    if cfg.physics and cfg.calibrate:
        trend = fit_trend(np.concatenate([w.ai for w in train_wells]), np.concatenate([w.si for w in train_wells]))
    tr = _stack(train_wells, cfg, cfg.stride, trend)
    if tr["AI"].shape[0] < 2:
        raise DataError(f"the training intervals hold {tr['AI'].shape[0]} complete window(s) of {cfg.window} samples "
                        f"with AI and SI; need at least 2 (use a smaller window or more wells)")
    specs = _specs(tr, cfg)
    norm = Normalizer.from_specs(specs)
    train_data = norm.prepare(tr)
    va = _stack(val_wells, cfg, cfg.window // 2, trend) if val_wells else None
    val_data = norm.prepare(va) if va is not None and va["AI"].shape[0] else None
    mconfig = config_for_specs(specs, cfg.latent_dim, "gaussian", cfg.fusion, dict(cfg.network))
    model = build_model(mconfig, seed=cfg.seed)
    history = fit(model, train_data, val_data, estimator=cfg.estimator, K=cfg.K, epochs=cfg.epochs,
                  batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, device=device, progress=progress)
    model.to(torch.device("cpu")).eval()
    return ImpedanceModel(model, norm, cfg, [w.name for w in train_wells], history.to_dict(), trend)


# --------------------------------------------------------------------------------- prediction
@dataclass
class Prediction:
    """Per-depth-sample prediction of SI (km/s * g/cm3) for one well: ``quantiles[p]`` (n,), the
    rock-physics baseline, the measured AI / SI, and ``samples`` (n, M) of the predictive for
    CRPS. NaN where no complete AI window covers the sample."""

    well: Well
    probs: list
    quantiles: dict
    baseline: np.ndarray
    samples: np.ndarray
    n_components: np.ndarray

    @property
    def depth(self) -> np.ndarray:
        return self.well.depth

    def quantile(self, p: float) -> np.ndarray:
        return self.quantiles[float(p)]


def merge_windows(loc: np.ndarray, starts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pool overlapping windows per depth row: ``loc`` (S, N, L) values of N windows starting at
    rows ``starts`` (N,) -> (components (n, C * S) with NaN padding, windows covering each row
    (n,)), where C is the most windows covering one row. Row d gets the S values of every window
    w with starts[w] <= d < starts[w] + L."""
    S, N, L = loc.shape
    rows_all = starts[:, None] + np.arange(L)[None, :]  # (N, L)
    cover = np.bincount(rows_all.ravel(), minlength=n)[:n]
    comp = np.full((n, max(int(cover.max()), 1), S), np.nan)
    slot = np.zeros(n, dtype=np.int64)
    for w in range(N):  # each window fills the next free slot of its rows
        rows = rows_all[w]
        comp[rows, slot[rows]] = loc[:, w, :].T
        slot[rows] += 1
    return comp.reshape(n, -1), cover


@torch.no_grad()
def predict(imp: ImpedanceModel, well: Well, quantiles: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9),
            n_samples: int = 32, stride: int | None = None, n_crps: int = 200, seed: int = 0,
            chunk: int = 512) -> Prediction:
    """The predictive distribution of SI at every depth sample of ``well`` from its AI alone
    (see the module docstring). ``quantiles`` are levels in (0, 1); 0.1, 0.5, 0.9 are always
    included (P10 / P50 / P90)."""
    cfg = imp.config
    probs = sorted({float(q) for q in quantiles} | {0.1, 0.5, 0.9})
    stride = stride or max(1, cfg.window // 8)
    win = well_windows(well, cfg.window, stride, cfg.physics, need_si=False)
    n, L = well.n, cfg.window
    qs = {p: np.full(n, np.nan) for p in probs}
    samples = np.full((n, n_crps), np.nan)
    count = np.zeros(n, dtype=np.int64)
    if win["starts"].size == 0:
        return Prediction(well, probs, qs, rock_physics_si(well.ai), samples, count)
    model = imp.model
    spec_si = imp.normalizer.specs["SI"]
    xa = torch.as_tensor(imp.normalizer.standardise("AI", win["AI"]), dtype=next(model.parameters()).dtype)
    generator = torch.Generator().manual_seed(int(seed))  # never the global RNG
    z = model.posterior({"AI": xa}).sample(n_samples, generator)  # (S, N, D)
    mu = model.decode(z, ["SI"])["SI"].double().numpy()  # (S, N, L) standardised
    sigma = float(model.likelihoods["SI"].scale()) * spec_si.scale  # in feature units
    loc = mu * spec_si.scale + spec_si.shift  # (S, N, L) feature units (r, or SI itself)
    starts = win["starts"]
    S = loc.shape[0]
    comp, cover = merge_windows(loc, starts, n)  # (n, max_cover * S), (n,)
    weights = np.isfinite(comp).astype(np.float64)
    comp = np.where(weights > 0, comp, 0.0)
    ai = well.ai
    covered = np.flatnonzero(cover > 0)
    rng = np.random.default_rng(seed)

    def to_si(feature, rows):
        if cfg.physics:
            return si_from_residual(feature, ai[rows][:, None], imp.trend)
        return feature

    for s0 in range(0, covered.size, chunk):
        rows = covered[s0 : s0 + chunk]
        q = mixture_quantiles(comp[rows], sigma, probs, weights[rows])  # (b, P) feature units
        qsi = to_si(q, rows)
        for j, p in enumerate(probs):
            qs[p][rows] = qsi[:, j]
        # CRPS samples: a uniformly chosen live component per draw, plus likelihood noise
        k = (rng.random((rows.size, n_crps)) * (cover[rows, None] * S)).astype(np.int64)
        draw = np.take_along_axis(comp[rows], k, 1) + sigma * rng.standard_normal((rows.size, n_crps))
        samples[rows] = to_si(draw, rows)
    return Prediction(well, probs, qs, rock_physics_si(ai), samples, cover * S)


# --------------------------------------------------------------------------------- metrics
def _point_metrics(pred: np.ndarray, truth: np.ndarray) -> dict:
    e = pred - truth
    c = float(np.corrcoef(pred, truth)[0, 1]) if pred.size > 2 and pred.std() > 0 and truth.std() > 0 else float("nan")
    return {"rmse": float(np.sqrt(np.mean(e * e))), "bias": float(np.mean(e)), "correlation": c,
            "mae": float(np.mean(np.abs(e)))}


def metrics(pred: Prediction) -> dict:
    """Scores of a :class:`Prediction` on the depth samples with a measured SI and a prediction:
    the model's P50 (RMSE, bias = mean(P50 - SI), correlation), coverage of the P10-P90 and
    P25-P75 bands, CRPS; the rock-physics baseline's RMSE, bias, correlation and CRPS (= mean
    absolute error of a point forecast) on the same samples; ``rmse_ratio`` = model / baseline."""
    si = pred.well.si
    if si is None:
        raise DataError(f"{pred.well.source or pred.well.name}: no measured SI to score against")
    p50 = pred.quantile(0.5)
    ok = np.isfinite(si) & np.isfinite(p50)
    if not ok.any():
        raise DataError(f"{pred.well.source or pred.well.name}: no depth sample has both a prediction and a measured SI")
    y = si[ok]
    m = _point_metrics(p50[ok], y)
    base = _point_metrics(pred.baseline[ok], y)
    out = {"n": int(ok.sum()), "unit": IMPEDANCE_UNIT, "model": m, "rock_physics": base,
           "rmse_ratio": m["rmse"] / base["rmse"] if base["rmse"] > 0 else float("nan"),
           "coverage_80": band_coverage(pred.quantile(0.1)[ok], pred.quantile(0.9)[ok], y),
           "crps": float(np.mean(sample_crps(pred.samples[ok], y))),
           "crps_rock_physics": base["mae"],
           "baseline": "Gardner rho = 1.741 Vp^0.25 and Castagna Vs = 0.8621 Vp - 1.1724"}
    if 0.25 in pred.quantiles and 0.75 in pred.quantiles:
        out["coverage_50"] = band_coverage(pred.quantile(0.25)[ok], pred.quantile(0.75)[ok], y)
    out["model"]["crps"] = out["crps"]
    return out


# --------------------------------------------------------------------------------- LAS output
def _label(p: float) -> str:
    v = 100 * p
    return f"SI_P{int(round(v))}" if abs(v - round(v)) < 1e-9 else f"SI_P{v:g}".replace(".", "_")


def las_bytes(pred: Prediction) -> bytes:
    """A LAS 2.0 file (bytes): depth, the measured curves (sonic, density, GR), AI, SI, the
    predicted quantiles SI_P10 / SI_P50 / SI_P90 (and any others) and the baseline SI_RP."""
    import lasio

    w = pred.well
    las = lasio.LASFile()
    las.well["WELL"].value = w.name
    las.well["NULL"].value = -999.25
    las.append_curve("DEPT", w.depth, unit=w.depth_unit, descr="depth")
    for k, (v, u) in w.curves.items():
        las.append_curve(k, v, unit=u, descr="measured")
    las.append_curve("AI", w.ai, unit=IMPEDANCE_UNIT, descr="acoustic impedance Vp*rho")
    if w.si is not None:
        las.append_curve("SI", w.si, unit=IMPEDANCE_UNIT, descr="measured shear impedance Vs*rho")
    for p in pred.probs:
        las.append_curve(_label(p), pred.quantile(p), unit=IMPEDANCE_UNIT, descr=f"predicted SI, quantile {p:g}")
    las.append_curve("SI_RP", pred.baseline, unit=IMPEDANCE_UNIT, descr="rock-physics SI (Gardner + Castagna)")
    buf = io.StringIO()
    las.write(buf, version=2.0, fmt="%.10g")
    return buf.getvalue().encode("utf-8")


def write_las(pred: Prediction, path: str | os.PathLike) -> str:
    """Write :func:`las_bytes` to ``path`` atomically (temporary file in the same folder, renamed)."""
    path = os.fspath(path)
    from .checkpoint import write_atomic  # the same temporary names as checkpoints (cleaned up alike)

    write_atomic(path, las_bytes(pred))
    return path


# --------------------------------------------------------------------------------- checkpoints
def save(imp: ImpedanceModel, path: str | os.PathLike, sources: Sequence[str] = (), split: dict | None = None) -> None:
    """Save as an mmvae checkpoint; ``data`` records the kind, feature options and statistics."""
    from .checkpoint import save_checkpoint

    data = {"name": KIND, "kind": KIND, "wells": list(imp.wells), "sources": list(sources), "split": split or {},
            "impedance": asdict(imp.config), "trend": list(imp.trend),
            "specs": {k: s.to_dict() for k, s in imp.normalizer.specs.items()}}
    train = {k: getattr(imp.config, k) for k in ("estimator", "K", "epochs", "batch_size", "lr", "seed")}
    save_checkpoint(path, imp.model, data, train, imp.history)


def is_impedance(ckpt) -> bool:
    return (ckpt.data or {}).get("kind") == KIND


def load(ckpt_or_path) -> ImpedanceModel:
    """An :class:`ImpedanceModel` from a checkpoint saved by :func:`save` (a path or a loaded
    :class:`~mmvae.checkpoint.Checkpoint`)."""
    from .checkpoint import CheckpointError, load_checkpoint

    ckpt = ckpt_or_path if hasattr(ckpt_or_path, "model") else load_checkpoint(ckpt_or_path)
    if not is_impedance(ckpt):
        raise CheckpointError("this checkpoint is not an impedance-well model (train one with "
                              "'python -m mmvae train --data WELL.las')")
    cfg = ImpedanceConfig(**ckpt.data["impedance"])
    ckpt.model.to(torch.device("cpu")).eval()
    return ImpedanceModel(ckpt.model, Normalizer.from_checkpoint(ckpt), cfg, list(ckpt.data.get("wells", [])),
                          ckpt.history, tuple(float(t) for t in ckpt.data.get("trend", (0.0, 0.0))))


def shipped_wells() -> dict[str, Well]:
    """The real wells shipped with the package (see mmvae/data/files/wells/README.md): P-135 and
    four North Sea wells, as {name: Well}."""
    from .data.las import FILES_DIR, P135_NPZ

    folder = os.path.join(FILES_DIR, "wells")
    out = {"P-135": read_well(P135_NPZ, name="P-135")}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".npz"):
            out[f[:-4]] = read_well(os.path.join(folder, f))
    return out
