"""Swap style: keep the shared latent z of one example, take the private latent w_t of another.

A model with private latents (``ModelConfig.private_dim`` = D_w > 0; MMVAE+, Palumbo, Daunhawer &
Vogt, ICLR 2023, sec. 3 and fig. 4) decodes modality t from u_t = (z, w_t): z (D) is what the
modalities share, w_t (D_w) what only x_t has. If the split worked, decoding

    x^_{ij} = E[x_t | z_i, w_{t,j}],   z_i = mean of q(z | x_content_i),   w_{t,j} = mean of q(w_t | x_t of style_j)

keeps the content of row i (for digits-poly: the class) and the style of column j (the
handwriting, the stroke width, the position of the background texture). z_i is the posterior mean
of the fused posterior of every modality in ``content_x`` (fusion rule ``fusion``, default the
model's); w_{t,j} is the mean of the target's own private posterior given the style example's x_t
alone. Both are means, so the grid is deterministic (no sampling, no generator).

:func:`swap_style` also returns the column that cross-modal generation shows
(:meth:`MultimodalVAE.generate`): w_t at the mode of its cross-modal distribution r_t (zero), i.e.
no style information from any example.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from .likelihood import as_inputs

__all__ = ["swap_style", "private_dim"]


def private_dim(model) -> int:
    """D_w, the private latent size of every modality (0: the model has a shared latent only)."""
    return int(getattr(model, "private_dim", 0) or 0)


@torch.no_grad()
def swap_style(model, content_x: Mapping[str, Tensor], style_x: Mapping[str, Tensor], target: str,
               fusion: str | None = None) -> dict:
    """The "keep z, change w" grid of modality ``target``.

    ``content_x``: name -> (n_content, *shape) of any modalities (z is inferred from all of them);
    ``style_x``: name -> (n_style, *shape), which must hold ``target`` (only ``style_x[target]``
    is used). Returns a dict of CPU tensors:

    * ``grid`` (n_content, n_style, *shape): E[x_t | z_i, w_{t,j}];
    * ``generated`` (n_content, *shape): E[x_t | z_i, w_t = 0], the cross-modal generation;
    * ``content`` (name -> (n_content, *shape)) and ``style`` ((n_style, *shape), x_t of each style
      example): the inputs, to draw beside the grid;
    * ``z`` (n_content, D), ``w`` (n_style, D_w): the latents used; ``target``, ``given`` (the
      content modalities), ``fusion``.

    ValueError: the model has no private latents, ``target`` is not one of its modalities, or
    ``style_x`` lacks it.
    """
    D_w = private_dim(model)
    if D_w <= 0:
        raise ValueError("this model has no private latents (private_dim = 0): its modalities share one latent, "
                         "so there is no style to swap; train with --private-dim")
    if target not in model.names:
        raise ValueError(f"unknown target {target!r}; this model has {model.names}")
    if target not in style_x:
        raise ValueError(f"style_x must hold the target modality {target!r}")
    fusion = fusion or model.fusion
    xc, _ = as_inputs(model, dict(content_x))
    xs, _ = as_inputs(model, {target: style_x[target]})
    z, _ = model.split(model.posterior(xc, fusion, validate=False).mean)  # (n_content, D)
    _, w_all = model.split(model.posterior(xs, "moe", validate=False).mean)  # one component: q(u | x_t)
    w = w_all[target]  # (n_style, D_w): the mean of q(w_t | x_t)
    n_c, n_s = z.shape[0], w.shape[0]
    zz = z[:, None, :].expand(n_c, n_s, z.shape[-1]).reshape(n_c * n_s, -1)  # (n_c n_s, D)
    ww = w[None, :, :].expand(n_c, n_s, D_w).reshape(n_c * n_s, D_w)  # (n_c n_s, D_w)
    lik = model.likelihoods[target]  # decode_shared gives likelihood locations; E[x_t | z, w_t] from them
    grid = lik.mean(model.decode_shared(zz, [target], w={target: ww})[target])  # (n_c n_s, *shape)
    generated = lik.mean(model.decode_shared(z, [target])[target])  # w_t at the mode of r_t: (n_c, *shape)
    return {"target": target, "given": list(xc), "fusion": fusion,
            "grid": grid.reshape(n_c, n_s, *grid.shape[1:]).cpu(), "generated": generated.cpu(),
            "content": {m: v.cpu() for m, v in xc.items()}, "style": xs[target].cpu(),
            "z": z.cpu(), "w": w.cpu()}
