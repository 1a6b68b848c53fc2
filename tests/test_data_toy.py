import math

import numpy as np
import pytest
import torch

from mmvae.data import load_dataset
from mmvae.data.toy import (exact_experts, exact_log_likelihood, exact_posterior, log_normal_diag,
                            sample_toy, toy_params)


def _grid(lim=7.0, n=561):
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    z1, z2 = torch.meshgrid(g, g, indexing="ij")
    return torch.stack([z1.ravel(), z2.ravel()], 1), (g[1] - g[0]) ** 2


def _log_joint_grid(params, xs, names, z):
    """log p(z) + sum log p(x_m | z) on a grid: (B, G)."""
    lp = -0.5 * (z**2).sum(1) - math.log(2 * math.pi)
    out = lp[None, :].clone()
    for n in names:
        i = params.index(n)
        mu = z @ params.W[i].T + params.b[i]  # (G, d)
        s = params.sigma[i]
        d = mu.shape[1]
        diff = xs[n][:, None, :] - mu[None]
        out = out - 0.5 * (diff**2).sum(-1) / s**2 - d * torch.log(s) - 0.5 * d * math.log(2 * math.pi)
    return out


@pytest.mark.parametrize("subset", [["x1"], ["x2"], ["x3"], ["x1", "x2"], ["x1", "x2", "x3"]])
def test_exact_likelihood_and_posterior_match_grid_integration(subset):
    p = toy_params(3, [4, 5, 3], seed=1)
    _, xs = sample_toy(p, 5, seed=2)
    z, da = _grid()
    lj = _log_joint_grid(p, xs, subset, z)
    ll_grid = torch.logsumexp(lj, 1) + torch.log(da)
    ll = exact_log_likelihood(p, xs, subset)
    torch.testing.assert_close(ll, ll_grid, atol=1e-6, rtol=0)
    w = torch.softmax(lj, 1)
    m_grid = w @ z
    v_grid = w @ z**2 - m_grid**2
    cov01 = w @ (z[:, 0] * z[:, 1]) - m_grid[:, 0] * m_grid[:, 1]
    mean, var = exact_posterior(p, xs, subset)
    torch.testing.assert_close(mean, m_grid, atol=1e-6, rtol=0)
    torch.testing.assert_close(var, v_grid, atol=1e-6, rtol=0)
    assert cov01.abs().max() < 1e-8  # diagonal posterior


def test_exact_likelihood_importance_sampling():
    p = toy_params(2, 5, seed=0)
    _, xs = sample_toy(p, 3, seed=5)
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    # sample from the prior, average p(x|z)
    lj = _log_joint_grid(p, xs, ["x1", "x2"], zs) + 0.5 * (zs**2).sum(1) + math.log(2 * math.pi)
    mc = torch.logsumexp(lj, 1) - math.log(zs.shape[0])
    torch.testing.assert_close(mc, exact_log_likelihood(p, xs), atol=0.05, rtol=0)


def test_experts_product_gives_posteriors():
    p = toy_params(3, 6, seed=4)
    _, xs = sample_toy(p, 7, seed=1)
    ex = exact_experts(p, xs)
    for subset in (["x1"], ["x2", "x3"], ["x1", "x2", "x3"]):
        prec = torch.ones(7, 2, dtype=torch.float64)  # prior N(0, I)
        eta = torch.zeros(7, 2, dtype=torch.float64)
        for n in subset:
            loc, ls = ex[n]
            pr = torch.exp(-2 * ls)
            prec, eta = prec + pr, eta + pr * loc
        mean, var = exact_posterior(p, xs, subset)
        torch.testing.assert_close(var, 1 / prec)
        torch.testing.assert_close(mean, eta / prec)
    # the expert is p(x|z) up to a z-independent constant
    loc, ls = ex["x1"]
    z, _ = _grid(3.0, 11)
    lx = _log_joint_grid(p, {"x1": xs["x1"][:1]}, ["x1"], z) + 0.5 * (z**2).sum(1) + math.log(2 * math.pi)
    le = log_normal_diag(z, loc[:1], torch.exp(2 * ls[:1]))
    diff = (lx - le)[0]
    assert float(diff.max() - diff.min()) < 1e-9


def test_loadings_orthogonal_and_informative():
    p = toy_params(2, 5, seed=0)
    for w in p.W:
        g = w.T @ w
        assert abs(float(g[0, 1])) < 1e-12
    s1 = (p.W[0] ** 2).sum(0).sqrt()
    s2 = (p.W[1] ** 2).sum(0).sqrt()
    assert s1[0] > 3 * s1[1] and s2[1] > 3 * s2[0]


def test_toy_bundle():
    b = load_dataset("toy", seed=3)
    p = b.extras["toy_params"]
    assert b.specs["x1"].shift == 0.0 and b.specs["x1"].scale == 1.0
    assert b.train.modalities["x1"].dtype == torch.float32
    assert len(b.train) + len(b.val) + len(b.test) == 3000
    xs = {k: v.double() for k, v in b.test.modalities.items()}
    assert torch.isfinite(exact_log_likelihood(p, xs)).all()
    z = b.extras["z"]["train"]
    q = b.train.labels
    assert ((q == 0) == ((z[:, 0] >= 0) & (z[:, 1] >= 0))).all()
    assert set(q.tolist()) == {0, 1, 2, 3}
    nl = load_dataset("toy", nonlinear=True, n_modalities=3, dims=4)
    assert "toy_params" not in nl.extras and set(nl.specs) == {"x1", "x2", "x3"}
    # x1 depends only on the angle of z: same angle, different radius -> same mean
    z = nl.extras["z"]["train"]
    r = z.norm(dim=1)
    x2 = nl.train.modalities["x2"]
    near = (r - 1.0).abs() < 0.05
    far = (r - 2.5).abs() < 0.1
    assert (x2[near].mean(0) - x2[far].mean(0)).abs().max() > 0.3  # radius visible in x2
    assert x2[near].std(0).max() < 0.2  # nothing but radius (and noise) in x2
