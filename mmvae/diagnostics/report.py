"""All diagnostics of a model on one split of a dataset, as one JSON-able dict (numpy arrays and
tensors become lists, NaN / inf become None)."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..fusion import FUSIONS

__all__ = ["PARTS", "diagnostics_report", "jsonable"]

PARTS = ("bounds", "loglik", "overlap", "embedding", "coherence", "snr")


def jsonable(obj):
    """Convert tensors / arrays / numpy scalars recursively to JSON types (NaN, inf -> None)."""
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def in_data_units(gaps: dict, log_jacobian: float) -> dict:
    """A :func:`~mmvae.diagnostics.bounds.bound_gaps` table in the data's own units: every ELBO,
    IWAE and log-likelihood figure plus ``log_jacobian`` (differences and spreads unchanged)."""
    if not log_jacobian:
        return gaps
    for row in gaps["rows"]:
        row["elbo_mean"] += log_jacobian
        row["iwae_mean"] += log_jacobian
    if gaps.get("log_likelihood"):
        gaps["log_likelihood"]["mean_standardised"] = gaps["log_likelihood"]["mean"]
        gaps["log_likelihood"]["mean"] += log_jacobian
    if gaps.get("exact") is not None:
        gaps["exact"] += log_jacobian
    gaps["log_jacobian"] = log_jacobian
    return gaps


def parse_parts(parts) -> list[str]:
    if parts is None or parts == "all":
        return list(PARTS)
    if isinstance(parts, str):
        parts = [p.strip() for p in parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown diagnostics part(s) {unknown}; choose from {', '.join(PARTS)}")
    return list(parts)


def diagnostics_report(
    model,
    bundle,
    split: str = "test",
    parts: Sequence[str] | str | None = None,
    fusion: str | None = None,
    Ks: Sequence[int] = (1, 10, 100),
    repeats: int = 3,
    n_samples: int = 1000,
    points: Sequence[int] | None = None,
    embedding_method: str = "auto",
    snr_Ks: Sequence[int] = (1, 3, 10, 30),
    snr_repeats: int = 30,
    snr_batch: int = 32,
    seed: int = 0,
    as_json: bool = True,
    normalizer=None,
) -> dict:
    """The diagnostics ``parts`` (default all of :data:`PARTS`) of ``model`` on ``bundle``'s split.

    Keys (each present when its part was asked for):
    ``bounds`` (:func:`~mmvae.diagnostics.bounds.bound_gaps`), ``loglik`` (joint, each
    modality's marginal and each conditional log p(x_t | x_g)), ``overlap``, ``embedding``
    (coords per posterior, labels), ``coherence`` (+ ``impedance`` SI-from-AI RMSE when the data
    has AI and SI), ``snr`` (rows per fusion x estimator x K).

    ``as_json=False`` returns the report before :func:`jsonable` (tensors, arrays, NaN as NaN).
    ``normalizer`` (:class:`mmvae.data.normalize.Normalizer`, the model's training statistics):
    log-likelihoods and bounds are reported in the data's own units (``units``: ``data``) with
    the standardised figures beside them; without it they stay in the model's units."""
    from .bounds import bound_gaps, exact_log_likelihood_fn
    from .embeddings import latent_embedding
    from .generation import coherence, impedance_si_rmse, modality_classifiers
    from .gradients import gradient_snr
    from .likelihood import conditional_log_likelihood, estimate_log_likelihood
    from .overlap import posterior_overlap

    parts = parse_parts(parts)
    data = getattr(bundle, split).to(model.device)
    fusion = fusion or model.fusion
    names = model.names
    out: dict = {"parts": parts, "fusion": fusion, "split": split, "n": data.n, "seed": seed,
                 "units": "data" if normalizer is not None else "model"}

    def jac(mods) -> float:
        return normalizer.log_jacobian(mods) if normalizer is not None else 0.0
    if "bounds" in parts:
        params = (bundle.extras or {}).get("toy_params")
        exact = exact_log_likelihood_fn(params) if params is not None else None
        out["bounds"] = in_data_units(bound_gaps(model, data, Ks, repeats, fusion, n_samples=n_samples,
                                                 exact=exact, seed=seed), jac(names))
    if "loglik" in parts:
        ll = {"joint": estimate_log_likelihood(model, data, n_samples, fusion, seed=seed)
              .to_dict(per_point=True, log_jacobian=jac(names))}
        if len(names) > 1:
            ll["marginal"] = {m: estimate_log_likelihood(model, data, n_samples, fusion, [m], seed=seed + 1)
                              .to_dict(log_jacobian=jac([m])) for m in names}
            ll["conditional"] = [conditional_log_likelihood(model, data, t, g, n_samples, fusion, seed=seed + 2)
                                 .to_dict(log_jacobian=jac([t])) for g in names for t in names if t != g]
        out["loglik"] = ll
    if "overlap" in parts:
        fus = list(FUSIONS) if model.family == "gaussian" else ["moe"]
        out["overlap"] = posterior_overlap(model, data, points, fus, seed=seed)
    if "embedding" in parts:
        emb = latent_embedding(model, data, embedding_method, fusion, seed=seed)
        emb.pop("means", None)
        out["embedding"] = emb
    if "coherence" in parts:
        if data.labels is not None and len(names) > 1 and getattr(bundle.train, "labels", None) is not None:
            clfs = modality_classifiers(bundle.train, names, seed)
            out["coherence"] = coherence(model, data, clfs, fusion, seed=seed)
        else:
            out["coherence"] = None
        if "AI" in names and "SI" in names:
            out["impedance"] = impedance_si_rmse(model, data, bundle.specs, fusion, predictive=32, seed=seed)
    if "snr" in parts:
        batch = data.subset(slice(0, min(snr_batch, data.n)))
        fus = list(FUSIONS) if model.family == "gaussian" else ["moe"]
        was = model.training
        out["snr"] = gradient_snr(model, batch, snr_Ks, fusion=fus, repeats=snr_repeats, seed=seed)
        model.train(was)
    return jsonable(out) if as_json else out
