"""Shared test models: an exact linear-Gaussian multimodal VAE and constant-expert models."""
from __future__ import annotations

import math

import torch
from torch import nn

from mmvae import ModalityConfig, ModelConfig, MultimodalVAE
from mmvae.data import MultimodalData


class LinearExpert(nn.Module):
    """Encoder whose expert is N(z; A x + c, diag(exp(2 log_scale))), constant scale."""

    def __init__(self, A: torch.Tensor, c: torch.Tensor, log_scale: torch.Tensor) -> None:
        super().__init__()
        self.lin = nn.Linear(A.shape[1], A.shape[0], dtype=torch.float64)
        with torch.no_grad():
            self.lin.weight.copy_(A)
            self.lin.bias.copy_(c)
        self.log_scale = nn.Parameter(log_scale.clone())

    def forward(self, x):
        return self.lin(x), self.log_scale.expand(x.shape[0], -1)


class LinearDecoder(nn.Module):
    def __init__(self, W: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.lin = nn.Linear(W.shape[1], W.shape[0], dtype=W.dtype)
        with torch.no_grad():
            self.lin.weight.copy_(W)
            self.lin.bias.copy_(b)

    def forward(self, z):
        return self.lin(z)


class LinearGaussian:
    """z ~ N(0, I_2); x_m = W_m z + b_m + N(0, sigma_m^2 I), W_m with orthogonal columns so the
    exact posteriors are diagonal. Exact log p(x_S) and the exact experts are closed form."""

    def __init__(self, dims=(4, 3), sigmas=(0.5, 0.8), seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.names = [f"x{m}" for m in range(len(dims))]
        self.W, self.b, self.sigma = {}, {}, {}
        for m, (name, d) in enumerate(zip(self.names, dims)):
            Q, _ = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))
            s = torch.tensor([2.0, 0.6] if m % 2 == 0 else [0.5, 1.7], dtype=torch.float64)
            self.W[name] = Q * s
            self.b[name] = torch.randn(d, generator=g, dtype=torch.float64)
            self.sigma[name] = float(sigmas[m])

    def sample(self, n: int, seed: int = 1) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 2, generator=g, dtype=torch.float64)
        return {k: z @ self.W[k].T + self.b[k] + self.sigma[k] * torch.randn(n, self.W[k].shape[0], generator=g,
                                                                              dtype=torch.float64)
                for k in self.names}

    def exact_log_likelihood(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        names = [k for k in self.names if k in x]
        W = torch.cat([self.W[k] for k in names])
        b = torch.cat([self.b[k] for k in names])
        noise = torch.cat([torch.full((self.W[k].shape[0],), self.sigma[k] ** 2, dtype=torch.float64) for k in names])
        cov = W @ W.T + torch.diag(noise)
        mvn = torch.distributions.MultivariateNormal(b, covariance_matrix=cov)
        return mvn.log_prob(torch.cat([x[k] for k in names], -1))

    def exact_posterior(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        names = [k for k in self.names if k in x]
        prec = torch.eye(2, dtype=torch.float64) + sum(self.W[k].T @ self.W[k] / self.sigma[k] ** 2 for k in names)
        cov = torch.linalg.inv(prec)
        mean = sum((x[k] - self.b[k]) @ self.W[k] / self.sigma[k] ** 2 for k in names) @ cov.T
        return mean, torch.diagonal(cov)

    def model(self, fusion: str = "poe", mean_shift: float = 0.0, scale_factor: float = 1.0) -> MultimodalVAE:
        """The VAE whose experts are exact (``mean_shift`` / ``scale_factor`` make them wrong)."""
        mods = [ModalityConfig(k, (self.W[k].shape[0],), "gaussian", self.sigma[k], network={"type": "custom"})
                for k in self.names]
        enc, dec = {}, {}
        for k in self.names:
            lam = torch.diagonal(self.W[k].T @ self.W[k]) / self.sigma[k] ** 2  # expert precision
            A = (self.W[k].T / self.sigma[k] ** 2) / lam[:, None]
            enc[k] = LinearExpert(A, -A @ self.b[k] + mean_shift, -0.5 * torch.log(lam) + math.log(scale_factor))
            dec[k] = LinearDecoder(self.W[k], self.b[k])
        return MultimodalVAE(ModelConfig(mods, latent_dim=2, fusion=fusion), enc, dec).double()


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
