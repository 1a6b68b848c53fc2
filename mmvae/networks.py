"""Built-in encoder and decoder networks, and the contract for your own.

Contract (any ``torch.nn.Module`` that keeps it can be plugged in):

* an **encoder** for modality m takes ``x`` of shape ``(B, *shape_m)`` and returns a tuple
  ``(loc, log_scale)``, each ``(B, D + D_w)``: the first D are the location and log-scale of its
  Gaussian (or Laplace) *expert* over the shared z. With Gaussian latents the unimodal posterior is
  the product of this expert and the prior, q(z | x_m) ∝ p(z) q~(z | x_m) (Wu & Goodman 2018,
  eq. 4); with Laplace latents the expert is the posterior itself (Shi et al. 2019). The last D_w
  (``private_dim``, 0 unless the model has private latents) are the posterior q(w_m | x_m) of
  the modality's private latent itself (MMVAE+, Palumbo et al. 2023), not an expert.
* a **decoder** for modality m takes ``cat(z, w_m)`` of shape ``(N, D + D_w)`` and returns
  ``(N, *shape_m)``: the location parameter of the likelihood (the mean of a Gaussian or Laplace,
  the logits of a Bernoulli or continuous Bernoulli).

Built-in families, chosen by a small spec dict (sizes are options):
``{"type": "mlp", "hidden": [128, 128]}``, ``{"type": "conv1d", "channels": [16, 32], "hidden": 128}``
(for sequences ``(L,)`` or ``(C, L)``), ``{"type": "conv2d", "channels": [16, 32], "hidden": 128}``
(for images ``(H, W)`` or ``(C, H, W)``).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

NETWORK_TYPES = ("mlp", "conv1d", "conv2d")


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def expert_output(h: Tensor, latent_dim: int, prior_product: bool, private_dim: int = 0) -> tuple[Tensor, Tensor]:
    """Split a network's ``2 * (latent_dim + private_dim)`` outputs (a, b) into an expert's
    (loc, log_scale), each (B, latent_dim + private_dim).

    ``prior_product=False`` (Laplace latents: the expert is the posterior): loc = a,
    log_scale = b / 2. ``prior_product=True`` (Gaussian latents, where the unimodal posterior is
    the prior times the expert): the outputs parameterise that *posterior*, N(a, sigmoid(b)), and
    the expert is derived from it: precision e^-b, loc = a (1 + e^b). Then the posterior mean is
    a itself, so its gradient does not shrink as the expert's precision does. Parameterising the
    expert directly makes "expert = nothing, posterior = prior" an absorbing state (the mean's
    gradient is scaled by precision / (1 + precision)): on the digits with the ELBO the latent
    collapsed completely (KL 0.00 nats), with this parameterisation it does not (KL 2.0).

    The last ``private_dim`` pairs parameterise the private posterior q(w_m | x_m) directly:
    N(a, sigmoid(b)) like the unimodal posterior of z above (log_scale = -softplus(-b) / 2), or,
    for Laplace latents, loc = a and log_scale = b / 2.
    """
    n = latent_dim + private_dim
    a, b = h[:, :latent_dim], h[:, n:n + latent_dim]  # (B, D) each: the shared expert
    if not prior_product:
        loc, log_scale = a, 0.5 * b
    else:
        b = b.clamp(-30.0, 30.0)
        loc, log_scale = a * torch.exp(F.softplus(b)), 0.5 * b
    if not private_dim:
        return loc, log_scale
    a_w, b_w = h[:, latent_dim:n], h[:, n + latent_dim:]  # (B, D_w) each: q(w_m | x_m)
    w_log_scale = -0.5 * F.softplus(-b_w) if prior_product else 0.5 * b_w
    return torch.cat([loc, a_w], -1), torch.cat([log_scale, w_log_scale], -1)


class MLPEncoder(nn.Module):
    """Flatten, then an MLP to ``2 * (latent_dim + private_dim)`` outputs, read by :func:`expert_output`."""

    def __init__(self, shape: Sequence[int], latent_dim: int, hidden: Sequence[int] = (128, 128),
                 prior_product: bool = True, private_dim: int = 0) -> None:
        super().__init__()
        self.net = _mlp([math.prod(shape), *hidden, 2 * (latent_dim + private_dim)])
        self.latent_dim = latent_dim
        self.private_dim = private_dim
        self.prior_product = prior_product

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return expert_output(self.net(x.flatten(1)), self.latent_dim, self.prior_product, self.private_dim)


class MLPDecoder(nn.Module):
    """An MLP from the latent to the flattened modality, reshaped to ``shape``."""

    def __init__(self, shape: Sequence[int], latent_dim: int, hidden: Sequence[int] = (128, 128)) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.net = _mlp([latent_dim, *reversed(tuple(hidden)), math.prod(shape)])

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


def _as_channels(shape: Sequence[int], spatial: int) -> tuple[int, ...]:
    """(L,) -> (1, L); (C, L) stays; same for images with two spatial axes."""
    shape = tuple(shape)
    if len(shape) == spatial:
        return (1, *shape)
    if len(shape) == spatial + 1:
        return shape
    raise ValueError(f"a conv{spatial}d network needs a shape with {spatial} or {spatial + 1} axes, got {shape}")


class _ConvEncoder(nn.Module):
    def __init__(self, shape, latent_dim, channels, hidden, spatial: int, prior_product: bool = True,
                 private_dim: int = 0) -> None:
        super().__init__()
        self.prior_product = prior_product
        self.private_dim = private_dim
        self.in_shape = _as_channels(shape, spatial)
        conv = nn.Conv1d if spatial == 1 else nn.Conv2d
        layers: list[nn.Module] = []
        c_in = self.in_shape[0]
        for c in channels:
            layers += [conv(c_in, c, kernel_size=3, stride=2, padding=1), nn.ReLU()]
            c_in = c
        self.conv = nn.Sequential(*layers)
        with torch.no_grad():
            n_flat = self.conv(torch.zeros(1, *self.in_shape)).numel()
        self.head = _mlp([n_flat, hidden, 2 * (latent_dim + private_dim)])
        self.latent_dim = latent_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.head(torch.relu(self.conv(x.reshape(x.shape[0], *self.in_shape)).flatten(1)))
        return expert_output(h, self.latent_dim, self.prior_product, self.private_dim)


class _ConvDecoder(nn.Module):
    def __init__(self, shape, latent_dim, channels, hidden, spatial: int) -> None:
        super().__init__()
        self.out_shape = tuple(shape)
        full = _as_channels(shape, spatial)
        n_up = len(channels)
        self.start = tuple(math.ceil(s / 2**n_up) for s in full[1:])
        chans = list(reversed(tuple(channels)))
        self.start_channels = chans[0]
        self.head = nn.Sequential(_mlp([latent_dim, hidden, chans[0] * math.prod(self.start)]), nn.ReLU())
        tconv = nn.ConvTranspose1d if spatial == 1 else nn.ConvTranspose2d
        layers: list[nn.Module] = []
        for i, c in enumerate(chans):
            c_out = chans[i + 1] if i + 1 < len(chans) else full[0]
            layers.append(tconv(c, c_out, kernel_size=4, stride=2, padding=1))
            if i + 1 < len(chans):
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)
        self.crop = full[1:]

    def forward(self, z: Tensor) -> Tensor:
        h = self.head(z).view(z.shape[0], self.start_channels, *self.start)
        out = self.deconv(h)
        if len(self.crop) == 1:
            out = out[..., : self.crop[0]]
        else:
            out = out[..., : self.crop[0], : self.crop[1]]
        return out.reshape(z.shape[0], *self.out_shape)


class Conv1dEncoder(_ConvEncoder):
    """Strided 1-D convolutions (kernel 3, stride 2) then an MLP head; for logs and traces."""

    def __init__(self, shape, latent_dim: int, channels: Sequence[int] = (16, 32), hidden: int = 128,
                 prior_product: bool = True, private_dim: int = 0) -> None:
        super().__init__(shape, latent_dim, channels, hidden, spatial=1, prior_product=prior_product,
                         private_dim=private_dim)


class Conv1dDecoder(_ConvDecoder):
    """An MLP head then transposed 1-D convolutions (each doubles the length), cropped to shape."""

    def __init__(self, shape, latent_dim: int, channels: Sequence[int] = (16, 32), hidden: int = 128) -> None:
        super().__init__(shape, latent_dim, channels, hidden, spatial=1)


class Conv2dEncoder(_ConvEncoder):
    """Strided 2-D convolutions then an MLP head; for small images."""

    def __init__(self, shape, latent_dim: int, channels: Sequence[int] = (16, 32), hidden: int = 128,
                 prior_product: bool = True, private_dim: int = 0) -> None:
        super().__init__(shape, latent_dim, channels, hidden, spatial=2, prior_product=prior_product,
                         private_dim=private_dim)


class Conv2dDecoder(_ConvDecoder):
    """An MLP head then transposed 2-D convolutions, cropped to shape."""

    def __init__(self, shape, latent_dim: int, channels: Sequence[int] = (16, 32), hidden: int = 128) -> None:
        super().__init__(shape, latent_dim, channels, hidden, spatial=2)


_BUILDERS = {
    "mlp": (MLPEncoder, MLPDecoder, ("hidden",)),
    "conv1d": (Conv1dEncoder, Conv1dDecoder, ("channels", "hidden")),
    "conv2d": (Conv2dEncoder, Conv2dDecoder, ("channels", "hidden")),
}


def default_network(kind: str) -> dict:
    """The built-in network spec for a modality kind (``vector``, ``sequence``, ``image``)."""
    return {"vector": {"type": "mlp", "hidden": [128, 128]},
            "sequence": {"type": "conv1d", "channels": [16, 32], "hidden": 128},
            "image": {"type": "mlp", "hidden": [128, 128]}}.get(kind, {"type": "mlp", "hidden": [128, 128]})


def reset_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of every Linear, Conv and ConvTranspose layer in ``module``
    (weights kaiming-uniform with a = sqrt(5), biases uniform in +-1/sqrt(fan_in)), drawn from
    ``generator`` instead of the global RNG."""
    covered = set()
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            covered.add(id(m.weight))
            if m.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)
                covered.add(id(m.bias))
    missed = [n for n, p in module.named_parameters() if id(p) not in covered]
    missed += [n for n, _ in module.named_buffers()]  # built on the meta device: no values to keep
    if missed:
        raise TypeError(f"no initialisation rule for parameters {missed}")


def build_networks(
    spec: Mapping, shape: Sequence[int], latent_dim: int, prior_product: bool = True,
    generator: torch.Generator | None = None, private_dim: int = 0,
) -> tuple[nn.Module, nn.Module]:
    """Build the (encoder, decoder) pair that ``spec`` names, for one modality
    (``prior_product``: see :func:`expert_output`; ``private_dim``: D_w, the encoder's extra
    outputs for q(w_m | x_m) and the decoder's extra inputs). With a ``generator`` the weights are
    drawn from it alone (the layers are built on the meta device, so the global RNG is not touched)."""
    kind = spec.get("type", "mlp")
    if kind not in _BUILDERS:
        raise ValueError(f"unknown network type {kind!r}; choose one of: {', '.join(NETWORK_TYPES)} "
                         "(or pass your own encoder and decoder modules)")
    enc_cls, dec_cls, allowed = _BUILDERS[kind]
    unknown = set(spec) - {"type", *allowed}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for a {kind} network; allowed: {list(allowed)}")
    kwargs = {k: (tuple(v) if isinstance(v, (list, tuple)) else int(v)) for k, v in spec.items() if k != "type"}
    def build():
        return (enc_cls(shape, latent_dim, prior_product=prior_product, private_dim=private_dim, **kwargs),
                dec_cls(shape, latent_dim + private_dim, **kwargs))

    if generator is None:
        return build()
    with torch.device("meta"):
        nets = build()
    for net in nets:
        net.to_empty(device=generator.device)
        reset_parameters(net, generator)
    return nets
