"""Gradient estimators: DReG is unbiased for the IWAE gradient for every fusion rule (the naive
mixture DReG of the official MMVAE code is not), decoder gradients are unchanged, and the
encoder SNR trends of Rainforth et al. (2018)."""
import math

import pytest
import torch

from mmvae import objective
from mmvae.objectives import log_joint, log_posterior, normalized_weights
from tests.helpers import LinearGaussian, constant_expert_model, replicated_point

N_COPIES, N_REPEATS = 2000, 60


def _grads(model, fn, n=N_REPEATS):
    enc = list(model.encoders.parameters())
    out = []
    for _ in range(n):
        model.zero_grad()
        fn().backward()
        out.append(torch.cat([p.grad.flatten() for p in enc]))
    g = torch.stack(out)
    return g.mean(0), g.std(0) / math.sqrt(n)


def _naive_mixture_dreg(model, x, K, fusion, bound):
    """The official MMVAE code's DReG: rescale the path gradient by w~ and ignore that the mixture
    density depends on every expert (biased when the experts differ)."""
    post = model.posterior(x, fusion)
    z = post.rsample(K).clone()
    log_q, _ = log_posterior(post, z, detach_params=True)
    lw = log_joint(model, x, z) - log_q
    with torch.no_grad():
        w, omega = normalized_weights(lw, bound)
    z.register_hook(lambda g: g * w.unsqueeze(-1))
    return -(omega * lw).sum() / post.batch_size


@pytest.mark.parametrize("fusion,bound", [("poe", "tight"), ("moe", "tight"), ("moe", "looser"),
                                          ("mopoe", "tight"), ("mopoe", "looser")])
def test_dreg_is_unbiased_for_the_iwae_gradient(fusion, bound):
    torch.manual_seed(0)
    model = constant_expert_model(fusion)
    x = replicated_point(N_COPIES)
    K = 3
    g_iwae, s_iwae = _grads(model, lambda: objective(model, x, "iwae", K, bound=bound).loss)
    g_dreg, s_dreg = _grads(model, lambda: objective(model, x, "dreg", K, bound=bound).loss)
    z = (g_dreg - g_iwae) / torch.sqrt(s_dreg**2 + s_iwae**2)
    assert z.abs().max() < 4.0, z
    if fusion != "poe":
        g_naive, s_naive = _grads(model, lambda: _naive_mixture_dreg(model, x, K, fusion, bound))
        z_naive = (g_naive - g_iwae) / torch.sqrt(s_naive**2 + s_iwae**2)
        assert z_naive.abs().max() > 8.0, "the test must be able to see the naive estimator's bias"


@pytest.mark.parametrize("fusion", ["poe", "moe", "mopoe"])
@pytest.mark.parametrize("estimator", ["dreg", "stl"])
def test_decoder_gradient_is_unchanged(fusion, estimator):
    model = constant_expert_model(fusion)
    x = replicated_point(64)

    def dec_grad(est):
        torch.manual_seed(7)
        model.zero_grad()
        objective(model, x, est, 5).loss.backward()
        return torch.cat([p.grad.flatten() for p in model.decoders.parameters()])

    torch.testing.assert_close(dec_grad(estimator), dec_grad("iwae"), atol=1e-12, rtol=1e-10)


def test_laplace_moe_dreg_is_unbiased():
    torch.manual_seed(1)
    model = constant_expert_model("moe", latent="laplace")
    x = replicated_point(N_COPIES)
    g_iwae, s_iwae = _grads(model, lambda: objective(model, x, "iwae", 3).loss)
    g_dreg, s_dreg = _grads(model, lambda: objective(model, x, "dreg", 3).loss)
    assert ((g_dreg - g_iwae) / torch.sqrt(s_dreg**2 + s_iwae**2)).abs().max() < 4.0


def _snr(model, x, estimator, K, n=100):
    enc = list(model.encoders.parameters())
    gs = []
    for _ in range(n):
        model.zero_grad()
        objective(model, x, estimator, K).loss.backward()
        gs.append(torch.cat([p.grad.flatten() for p in enc]))
    g = torch.stack(gs)
    std = g.std(0)
    return (g.mean(0).abs() / std)[std > 0].median().item()


def test_encoder_snr_falls_with_K_for_iwae_but_not_for_dreg():
    """Near the optimum (a slightly wrong linear-Gaussian encoder), Rainforth et al. 2018."""
    torch.manual_seed(0)
    lg = LinearGaussian()
    model = lg.model("poe", mean_shift=0.1, scale_factor=1.2)
    x = {k: v.expand(20, -1) for k, v in lg.sample(1).items()}
    iwae = [_snr(model, x, "iwae", K) for K in (1, 100)]
    dreg = [_snr(model, x, "dreg", K) for K in (1, 100)]
    assert iwae[1] < 0.3 * iwae[0], iwae  # O(1/sqrt(K))
    assert dreg[1] > 2 * dreg[0], dreg  # grows with K


def _exact_stratified_elbo_gradient(model, fusion, n_nodes=200):
    """d/dphi of the stratified ELBO (1/C) sum_c E_{q_c}[log w] by Gauss-Hermite quadrature (D = 1):
    E_{N(0,1)}[f(eps)] = sum_i a_i f(e_i), exact for polynomials of degree < 2 n_nodes."""
    import numpy as np
    from mmvae.objectives import log_joint as _lj, log_posterior as _lp

    nodes, wts = np.polynomial.hermite_e.hermegauss(n_nodes)
    eps = torch.tensor(nodes, dtype=torch.float64).view(1, -1, 1, 1)
    a = torch.tensor(wts / math.sqrt(2 * math.pi), dtype=torch.float64).view(1, -1, 1)
    x = replicated_point(1)
    model.zero_grad()
    post = model.posterior(x, fusion)
    z = post.loc[:, None] + post.log_scale.exp()[:, None] * eps  # (C, n, 1, 1)
    log_q, _ = _lp(post, z)
    elbo = ((_lj(model, x, z) - log_q) * a).sum((1, 2)).mean()
    elbo.backward()
    return torch.cat([p.grad.flatten() for p in model.encoders.parameters()])


@pytest.mark.parametrize("fusion,bound", [("moe", "tight"), ("moe", "looser"), ("mopoe", "tight")])
def test_stl_at_K1_is_unbiased_for_the_stratified_elbo_of_a_mixture(fusion, bound):
    """Under the tight bound a mixture with K = 1 is an IWAE with C samples, for which STL is
    biased (|z| > 100 before); at K = 1 STL trains the stratified ELBO, where it is unbiased."""
    torch.manual_seed(2)
    model = constant_expert_model(fusion)
    exact = _exact_stratified_elbo_gradient(model, fusion)
    x = replicated_point(N_COPIES)
    g, s = _grads(model, lambda: objective(model, x, "stl", 1, bound=bound).loss)
    z = (-g - exact) / s  # the loss is the negative objective
    assert z.abs().max() < 4.0, z
    # the value is the stratified ELBO too
    torch.manual_seed(3)
    value = objective(model, x, "stl", 1, bound=bound).value
    torch.manual_seed(3)
    torch.testing.assert_close(value, objective(model, x, "elbo", 1).value)


@pytest.mark.parametrize("estimator,K", [("iwae", 3), ("dreg", 3), ("elbo", 1)])
def test_mopoe_component_subsampling_is_unbiased_for_value_and_gradient(estimator, K):
    """One of the three MoPoE components per data point (uniformly random): the mean value and the
    mean gradient match the full stratified objective's (plain IWAE gradient, looser bound)."""
    torch.manual_seed(5)
    model = constant_expert_model("mopoe")
    x = replicated_point(N_COPIES)
    full = "elbo" if estimator == "elbo" else "iwae"
    g_full, s_full = _grads(model, lambda: objective(model, x, full, K, bound="looser").loss)
    g_sub, s_sub = _grads(model, lambda: objective(model, x, estimator, K, bound="looser", subsample=1).loss)
    z = (g_sub - g_full) / torch.sqrt(s_sub**2 + s_full**2)
    assert z.abs().max() < 4.0, z
    with torch.no_grad():
        v_full = torch.stack([objective(model, x, full, K, bound="looser").value for _ in range(20)])
        v_sub = torch.stack([objective(model, x, estimator, K, bound="looser", subsample=1).value
                             for _ in range(20)])
    z_value = (v_sub.mean() - v_full.mean()) / math.sqrt(v_sub.var() / v_sub.numel() + v_full.var() / v_full.numel())
    assert abs(z_value) < 4.0, z_value
    assert v_sub.std() > 1.5 * v_full.std()  # the price: variance between components


def test_subsampling_refuses_what_it_cannot_estimate_without_bias():
    model = constant_expert_model("mopoe")
    x = replicated_point(4)
    with pytest.raises(ValueError, match="looser"):
        objective(model, x, "iwae", 3, subsample=1)  # tight: the log of a sum over every component
    with pytest.raises(ValueError, match="moe' or 'mopoe"):
        objective(model, x, "elbo", 1, fusion="poe", subsample=1)
    assert objective(model, x, "elbo", 1, subsample=2).log_weights.shape == (2, 1, 4)
