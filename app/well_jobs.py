"""Background job of the "Your well" page: train the impedance model on one well and predict SI.

:func:`train_well_job` is a picklable top-level function of plain data (a dict in, a dict out),
so it runs in another process (``concurrent.futures.ProcessPoolExecutor`` with the ``spawn``
context, see :func:`worker_init`) or through any job pool that takes ``fn(spec) -> result``.
All the maths is :mod:`mmvae.impedance`'s: read the well, split it by depth, train, predict,
score and write the LAS.
"""
from __future__ import annotations

import os
import tempfile

__all__ = ["DEFAULTS", "train_well_job", "worker_init"]

# about 10-20 s of training for a shipped well on one loaded CPU core
DEFAULTS = {"epochs": 15, "window": 64, "stride": 8, "latent_dim": 2, "physics": True, "seed": 0}


def worker_init() -> None:
    """Initializer of a worker process: one torch thread (a shared 2-core server) and the job
    pool's lower CPU priority (``app.jobs.job_nice``: the server's pages go first)."""
    from app.jobs import job_nice

    os.nice(job_nice())
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)


def _well(spec: dict):
    from mmvae import impedance

    if spec.get("shipped"):
        wells = impedance.shipped_wells()
        return wells[spec["shipped"]]
    return impedance.read_well(spec["data"], name=spec["name"], curves=spec.get("curves") or None)


def train_well_job(spec: dict) -> dict:
    """Train on the training interval of one well and predict SI from AI along all of it.

    ``spec``: ``shipped`` (a name of :func:`mmvae.impedance.shipped_wells`) or ``data`` (the file's
    bytes) with ``name`` (its file name: ``.las`` or ``.npz``) and ``curves`` ({"p", "s",
    "density"} mnemonics or None); ``fractions`` (train, val, test) of the valid samples and
    ``order`` ("top-down" or "bottom-up") of :func:`mmvae.impedance.split_by_depth`; ``config``
    (keyword arguments of :class:`mmvae.impedance.ImpedanceConfig`).

    Returns plain data: ``depth``, ``ai``, ``si``, ``p10``, ``p50``, ``p90``, ``baseline`` (lists,
    km/s * g/cm3, NaN where undefined) of the whole well; ``intervals`` {split: [top, base]};
    ``metrics`` (:func:`mmvae.impedance.metrics` on the test interval predicted from its own AI);
    ``las`` (bytes of :func:`mmvae.impedance.las_bytes`); ``checkpoint`` (safetensors bytes of
    :func:`mmvae.impedance.save`); ``name``, ``depth_unit``, ``history`` (per-epoch train_loss, val_elbo).
    Raises :class:`mmvae.data.dataset.DataError` for a well that cannot be used.
    """
    from mmvae import impedance
    from mmvae.data.dataset import DataError

    well = _well(spec)
    parts = impedance.split_by_depth(well, tuple(spec.get("fractions", (0.7, 0.15, 0.15))),
                                     spec.get("order", "top-down"))
    if "train" not in parts or "test" not in parts:
        raise DataError("the depth split leaves no training or no test interval: give both a share")
    cfg = impedance.ImpedanceConfig(**{**DEFAULTS, **dict(spec.get("config") or {})})
    model = impedance.train([parts["train"]], [parts["val"]] if "val" in parts else [], cfg)
    pred = impedance.predict(model, well, quantiles=(0.1, 0.25, 0.5, 0.75, 0.9))
    scores = impedance.metrics(impedance.predict(model, parts["test"], quantiles=(0.1, 0.25, 0.5, 0.75, 0.9)))
    with tempfile.TemporaryDirectory(prefix="mmvae-well-") as tmp:  # outside the project; always removed
        path = os.path.join(tmp, "model.safetensors")
        impedance.save(model, path, sources=[well.name], split={"fractions": list(spec.get("fractions", ())),
                                                               "order": spec.get("order", "top-down")})
        with open(path, "rb") as f:
            checkpoint = f.read()
    return {"name": well.name, "depth_unit": well.depth_unit, "depth": well.depth.tolist(), "ai": well.ai.tolist(),
            "si": None if well.si is None else well.si.tolist(), "p10": pred.quantile(0.1).tolist(),
            "p50": pred.quantile(0.5).tolist(), "p90": pred.quantile(0.9).tolist(),
            "baseline": pred.baseline.tolist(),
            "intervals": {k: [float(w.depth[0]), float(w.depth[-1])] for k, w in parts.items()},
            "metrics": scores, "las": impedance.las_bytes(pred), "checkpoint": checkpoint,
            "history": [{k: r[k] for k in ("train_loss", "val_elbo") if k in r} for r in model.history.get("records", [])]}


def held_out_report(path: str) -> dict:
    """A shipped impedance-well checkpoint (``checkpoints/wells/*.safetensors``, written by
    ``checkpoints/make_checkpoints.py``) on the well it was never trained on, recorded in the
    checkpoint (``data["split"]["held_out"]``): the same plain data as :func:`train_well_job`
    (``intervals`` marks the whole well as test), plus ``training_wells``, ``held_out`` and ``title``."""
    from mmvae import impedance
    from mmvae.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    model = impedance.load(ckpt)
    split = ckpt.data.get("split") or {}
    held = split.get("held_out")
    wells = impedance.shipped_wells()
    if held not in wells or held in model.wells:
        raise ValueError(f"{path}: the checkpoint names no shipped well it was not trained on (held_out={held!r})")
    well = wells[held]
    pred = impedance.predict(model, well, quantiles=(0.1, 0.25, 0.5, 0.75, 0.9))
    scores = impedance.metrics(pred)
    return {"name": well.name, "depth_unit": well.depth_unit, "depth": well.depth.tolist(), "ai": well.ai.tolist(),
            "si": None if well.si is None else well.si.tolist(), "p10": pred.quantile(0.1).tolist(),
            "p50": pred.quantile(0.5).tolist(), "p90": pred.quantile(0.9).tolist(),
            "baseline": pred.baseline.tolist(), "intervals": {"test": [float(well.depth[0]), float(well.depth[-1])]},
            "metrics": scores, "las": impedance.las_bytes(pred), "training_wells": list(model.wells), "held_out": held,
            "title": split.get("title", os.path.basename(path)), "config": dict(ckpt.data.get("impedance") or {}),
            "history": [{k: r[k] for k in ("train_loss", "val_elbo") if k in r} for r in model.history.get("records", [])]}
