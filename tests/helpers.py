"""Shared test models: the exact linear-Gaussian multimodal VAE (one builder, used for the package's
`toy` data and for :class:`LinearGaussian`) and constant-expert models."""
from __future__ import annotations

import math

import torch
from torch import nn

from mmvae import ModalityConfig, ModelConfig, MultimodalVAE
from mmvae.data import MultimodalData
from mmvae.data.toy import ToyParams, exact_log_likelihood, exact_posterior


class ExactExpert(nn.Module):
    """The exact Gaussian likelihood expert of a linear-Gaussian modality x = W z + b + N(0, sigma^2 I)
    with orthogonal columns of W (s^2 = column norms^2): loc = (x - b) W / s^2 (+ ``shift``),
    log_scale = log sigma - 1/2 log s^2 (+ log ``scale_factor``), so prior x expert = p(z | x)
    (:func:`mmvae.data.toy.exact_experts`); the parameters are free for gradient tests."""

    def __init__(self, W, b, sigma, shift: float = 0.0, scale_factor: float = 1.0) -> None:
        super().__init__()
        s2 = (W * W).sum(0)
        self.A = nn.Parameter(W / s2)  # (d, 2)
        self.c = nn.Parameter(-(b @ W) / s2 + shift)
        self.log_scale = nn.Parameter(torch.log(torch.as_tensor(sigma, dtype=W.dtype)) - 0.5 * torch.log(s2)
                                      + math.log(scale_factor))

    def forward(self, x):
        return x @ self.A + self.c, self.log_scale.expand(x.shape[0], -1)


class LinearDecoder(nn.Module):
    def __init__(self, W: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.lin = nn.Linear(W.shape[1], W.shape[0], dtype=W.dtype)
        with torch.no_grad():
            self.lin.weight.copy_(W)
            self.lin.bias.copy_(b)

    def forward(self, z):
        return self.lin(z)


def exact_linear_gaussian_model(params: ToyParams, fusion: str = "poe", mean_shift: float = 0.0,
                                scale_factor: float = 1.0) -> MultimodalVAE:
    """The float64 VAE of a linear-Gaussian model (:class:`mmvae.data.toy.ToyParams`): true decoders
    W z + b with likelihood scale sigma, exact experts; ``mean_shift`` / ``scale_factor`` make the
    experts wrong."""
    mods, enc, dec = [], {}, {}
    for name, W, b, s in zip(params.names, params.W, params.b, params.sigma):
        mods.append(ModalityConfig(name, (W.shape[0],), "gaussian", float(s), network={"type": "custom"}))
        enc[name] = ExactExpert(W, b, s, mean_shift, scale_factor)
        dec[name] = LinearDecoder(W, b)
    return MultimodalVAE(ModelConfig(mods, latent_dim=2, fusion=fusion), enc, dec).double()


class LinearGaussian:
    """z ~ N(0, I_2); x_m = W_m z + b_m + N(0, sigma_m^2 I), W_m with orthogonal columns so the
    exact posteriors are diagonal. Its own parameters (dimensions 4 and 3 by default) as a
    :class:`mmvae.data.toy.ToyParams`; exact log p(x_S) and posteriors are the toy's own functions."""

    def __init__(self, dims=(4, 3), sigmas=(0.5, 0.8), seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.names = [f"x{m}" for m in range(len(dims))]
        W, b = [], []
        for m, d in enumerate(dims):
            Q, _ = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))
            s = torch.tensor([2.0, 0.6] if m % 2 == 0 else [0.5, 1.7], dtype=torch.float64)
            W.append(Q * s)
            b.append(torch.randn(d, generator=g, dtype=torch.float64))
        self.params = ToyParams(list(self.names), W, b, [torch.tensor(float(s), dtype=torch.float64) for s in sigmas])

    @property
    def W(self) -> dict[str, torch.Tensor]:
        """Loadings (d_m, 2) by modality name."""
        return dict(zip(self.params.names, self.params.W))

    @property
    def b(self) -> dict[str, torch.Tensor]:
        """Offsets (d_m,) by modality name."""
        return dict(zip(self.params.names, self.params.b))

    @property
    def sigma(self) -> dict[str, float]:
        """Noise standard deviations by modality name."""
        return {k: float(s) for k, s in zip(self.params.names, self.params.sigma)}

    def sample(self, n: int, seed: int = 1) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 2, generator=g, dtype=torch.float64)
        p = self.params
        return {k: z @ W.T + b + s * torch.randn(n, W.shape[0], generator=g, dtype=torch.float64)
                for k, W, b, s in zip(p.names, p.W, p.b, p.sigma)}

    def exact_log_likelihood(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        return exact_log_likelihood(self.params, x)

    def exact_posterior(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance (B, 2) each of p(z | x_S)."""
        return exact_posterior(self.params, x)

    def model(self, fusion: str = "poe", mean_shift: float = 0.0, scale_factor: float = 1.0) -> MultimodalVAE:
        """The VAE whose experts are exact (``mean_shift`` / ``scale_factor`` make them wrong)."""
        return exact_linear_gaussian_model(self.params, fusion, mean_shift, scale_factor)


class ConstantExpert(nn.Module):
    """An encoder that ignores x: its expert parameters are free parameters (for gradient tests)."""

    def __init__(self, loc, log_scale) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.as_tensor(loc, dtype=torch.float64).clone())
        self.log_scale = nn.Parameter(torch.as_tensor(log_scale, dtype=torch.float64).clone())

    def forward(self, x):
        return self.loc.expand(x.shape[0], -1), self.log_scale.expand(x.shape[0], -1)


def constant_expert_model(fusion: str, latent: str = "gaussian") -> MultimodalVAE:
    """Two 1-D modalities, D = 1, experts far apart (so mixture components differ)."""
    mods = [ModalityConfig("a", (1,), "gaussian", 0.5, network={"type": "custom"}),
            ModalityConfig("b", (1,), "gaussian", 0.5, network={"type": "custom"})]
    enc = {"a": ConstantExpert([1.0], [-0.5]), "b": ConstantExpert([-1.0], [-1.0])}
    dec = {"a": LinearDecoder(torch.tensor([[1.0]]), torch.tensor([0.0])),
           "b": LinearDecoder(torch.tensor([[0.5]]), torch.tensor([0.0]))}
    return MultimodalVAE(ModelConfig(mods, latent_dim=1, latent=latent, fusion=fusion), enc, dec).double()


def replicated_point(n: int) -> dict[str, torch.Tensor]:
    """One data point repeated n times: the batch mean gradient averages n independent draws."""
    return {"a": torch.full((n, 1), 0.8, dtype=torch.float64), "b": torch.full((n, 1), -0.3, dtype=torch.float64)}


def small_multimodal_data(n: int = 400, seed: int = 0) -> tuple[MultimodalData, MultimodalData]:
    """Train / held-out data from a 2-D latent seen through two non-linear views (float32)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2 * n, 2, generator=g)
    a = torch.cat([torch.tanh(z @ torch.tensor([[1.0, 0.5], [-0.3, 1.2]])), z[:, :1] ** 2 / 2], 1)
    b = torch.cat([torch.sin(z[:, 1:]), z[:, :1] - z[:, 1:], z.sum(1, keepdim=True) / 2], 1)
    a = a + 0.1 * torch.randn(a.shape, generator=g)
    b = b + 0.1 * torch.randn(b.shape, generator=g)
    labels = (z[:, 0] > 0).long()
    full = MultimodalData({"a": a, "b": b}, labels)
    return full.subset(slice(0, n)), full.subset(slice(n, 2 * n))
