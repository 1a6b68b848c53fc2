"""Signal-to-noise ratio of gradient estimators (Rainforth et al. 2018; Tucker et al. 2018) and
the effective sample size of importance weights.

For one minibatch, each of ``repeats`` independent draws of the objective
(:func:`mmvae.objectives.objective`, ``loss.backward()``) gives a gradient g_r of every parameter.
Per parameter element, SNR = |mean_r g_r| / std_r g_r; the encoder SNR summarises the elements
of ``model.encoders``, the decoder SNR those of ``model.decoders`` (and learned likelihood
scales), by their ``mean`` (Rainforth et al. 2018, fig. 1) and ``median``. Elements with zero
variance over the draws (unused parameters) are left out. The expected trends: the encoder SNR of
``iwae`` falls like 1/sqrt(K), that of ``dreg`` does not; decoder SNRs rise like sqrt(K).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..fusion import FUSIONS
from ..objectives import objective
from .likelihood import as_inputs, effective_sample_size
from .rng import seeded_generator

__all__ = ["gradient_snr", "effective_sample_size", "snr_summary"]


def snr_summary(grads: Tensor) -> dict[str, float]:
    """grads (R, P): |mean| / std over the R draws, per element -> mean and median."""
    mean = grads.mean(0)
    std = grads.std(0)
    keep = std > 1e-12 * (mean.abs() + 1e-30)
    keep &= std > 0
    snr = mean[keep].abs() / std[keep]
    if snr.numel() == 0:
        return {"mean": float("nan"), "median": float("nan")}
    return {"mean": float(snr.mean()), "median": float(snr.median())}


def gradient_snr(
    model,
    batch,
    Ks: Sequence[int] = (1, 3, 10, 30),
    estimators: Sequence[str] = ("iwae", "dreg", "stl"),
    fusion: str | Sequence[str] | None = None,
    repeats: int = 50,
    bound: str = "tight",
    seed: int | None = 0,
) -> list[dict]:
    """SNR of the encoder and decoder gradients per fusion, estimator and K (one row each, with
    the mean ESS of the weights of the draws). ``fusion``: one rule, a list, ``"all"`` or None
    (the model's). The model's parameters are not changed; their ``.grad`` is restored."""
    x, _ = as_inputs(model, batch)
    fusions = list(FUSIONS) if fusion == "all" else ([fusion or model.fusion] if isinstance(fusion, (str, type(None)))
                                                     else list(fusion))
    if not (isinstance(repeats, int) and repeats >= 2):
        raise ValueError(f"repeats must be an integer >= 2, got {repeats!r}")
    enc = [p for p in model.encoders.parameters() if p.requires_grad]
    dec = [p for p in list(model.decoders.parameters()) + list(model.likelihoods.parameters()) if p.requires_grad]
    saved = [p.grad for p in model.parameters()]
    was_training = model.training
    rows = []
    try:
        generator = seeded_generator(seed, model.device)
        for f in fusions:
            for est in estimators:
                for K in Ks:
                    ge, gd, ess = [], [], []
                    for _ in range(repeats):
                        for p in model.parameters():
                            p.grad = None
                        out = objective(model, x, est, int(K), f, bound, validate=False, generator=generator)
                        out.loss.backward()
                        ge.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                             for p in enc]))
                        gd.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                                             for p in dec]))
                        ess.append(float(effective_sample_size(out.log_weights, 1).mean()))
                    e, d = snr_summary(torch.stack(ge)), snr_summary(torch.stack(gd))
                    rows.append({"fusion": f, "estimator": est, "K": int(K), "encoder_snr": e["mean"],
                                 "encoder_snr_median": e["median"], "decoder_snr": d["mean"],
                                 "decoder_snr_median": d["median"], "ess": sum(ess) / len(ess),
                                 "repeats": repeats})
    finally:
        for p, g in zip(model.parameters(), saved):
            p.grad = g
        model.train(was_training)
    return rows
