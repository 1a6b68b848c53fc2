"""The importance weights of one data point, and how the ELBO and IWAE(K) are formed from them.

For a data point x and the fused posterior q(z | x) with C components (C = 1 for PoE), K samples
are drawn from every component, z_{c,k} ~ q_c(z | x), and each is weighted against the whole
posterior (as in :mod:`mmvae.objectives`):

    log w_{c,k} = log p(z_{c,k}) + sum_m lambda_m log p(x_m | z_{c,k}) - log q(z_{c,k} | x).

From the same weights:

    ELBO estimate     = (1 / CK) sum_{c,k} log w_{c,k}            (Kingma & Welling 2014)
    IWAE(K) estimate  = log (1 / CK) sum_{c,k} w_{c,k}            (Burda et al. 2016, eq. 8; tight form)
                      = logsumexp_{c,k} log w_{c,k} - log(CK),

so IWAE >= ELBO for every draw (Jensen), with equality when all weights are equal. The
normalised weights w~ = w / sum w (a softmax of log w) show how many samples carry the estimate:
ESS = 1 / sum w~^2 (Kish). Everything is in log space.
"""
from __future__ import annotations

import math

import torch

from ..objectives import combine, effective_sample_size, log_weights
from .likelihood import as_inputs
from .rng import seeded_generator

__all__ = ["importance_weights", "decode_latent"]


@torch.no_grad()
def importance_weights(model, data, index: int, K: int = 20, fusion: str | None = None, seed: int | None = 0) -> dict:
    """Log-weights of ``K`` samples per component for data point ``index`` of ``data``, with the
    ELBO and IWAE(K) estimates formed from them (see the module docstring).

    Returns ``log_w`` (C, K), ``normalised`` (C, K) (sums to 1), ``elbo``, ``iwae``, ``ess``,
    ``K``, ``C``, ``fusion`` (numbers as Python floats / nested lists)."""
    if not (isinstance(K, int) and K >= 1):
        raise ValueError(f"K must be a positive integer, got {K!r}")
    x, _ = as_inputs(model, data)
    n = next(iter(x.values())).shape[0]
    if not 0 <= int(index) < n:
        raise ValueError(f"index {index} is outside 0..{n - 1}")
    x = {k: v[int(index): int(index) + 1] for k, v in x.items()}  # (1, ...)
    fusion = fusion or model.fusion
    generator = seeded_generator(seed, model.device)  # never the global RNG
    lw = log_weights(model, x, K, fusion, validate=False, generator=generator)  # (C, K, 1)
    C = lw.shape[0]
    elbo = combine(lw, "elbo")[0]  # mean over (c, k)
    iwae = combine(lw, "iwae", "tight")[0]  # logsumexp over (c, k) - log CK
    flat = lw[..., 0].double()  # (C, K)
    normalised = torch.softmax(flat.flatten(), 0).reshape(C, K)
    return {"log_w": flat.tolist(), "normalised": normalised.tolist(), "elbo": float(elbo), "iwae": float(iwae),
            "ess": float(effective_sample_size(lw)[0]), "K": int(K), "C": int(C), "fusion": fusion,
            "log_CK": math.log(C * K)}


@torch.no_grad()
def decode_latent(model, z, names=None) -> dict:
    """E[x_m | z] of every modality (or ``names``) at shared latent points ``z`` (N, D): the
    decoders' likelihood means (Bernoulli: probabilities), in the model's (standardised) units, on
    the CPU. A model with private latents decodes each modality with w_m at the mode of r_m (0)."""
    z = torch.as_tensor(z, dtype=next(model.parameters()).dtype, device=model.device)
    if z.dim() != 2 or z.shape[1] != model.latent_dim:
        raise ValueError(f"z must have shape (N, {model.latent_dim}), got {tuple(z.shape)}")
    params = model.decode_shared(z, list(names or model.names))
    return {k: model.likelihoods[k].mean(v).cpu() for k, v in params.items()}
