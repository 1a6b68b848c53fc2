"""Review checks of the objectives with exact answers (no Monte Carlo tolerance where none is needed):
the zero-variance property of STL / DReG at the exact posterior, the subsampling code path
against the full objective, MoE subsampling's unbiasedness, and the global RNGs (torch, numpy,
Python) left alone by training and the diagnostics."""
import math
import random

import numpy as np
import pytest
import torch

from mmvae import objective
from mmvae.objectives import ESTIMATOR_FUNCTIONS, log_joint
from tests.helpers import LinearGaussian, constant_expert_model, replicated_point


def _enc_grad(model):
    return torch.cat([p.grad.flatten() for p in model.encoders.parameters()])


@pytest.mark.parametrize("K", [1, 4])
def test_stl_and_dreg_encoder_gradients_vanish_at_the_exact_posterior(K):
    """Roeder et al. 2017, Tucker et al. 2018: with q = p(z | x_S) every log-weight is constant in z,
    so the STL and DReG encoder gradients of MVAE's terms are exactly zero for every draw (IWAE's is
    not: its score term has mean zero but not value zero)."""
    lg = LinearGaussian()
    model = lg.model("poe")
    x = lg.sample(30)
    grads = {}
    for est in ("stl", "dreg", "iwae"):
        model.zero_grad()
        objective(model, x, est, K, generator=torch.Generator().manual_seed(0)).loss.backward()
        grads[est] = _enc_grad(model).abs().max().item()
    assert grads["stl"] < 1e-10 and grads["dreg"] < 1e-10, grads
    assert grads["iwae"] > 0.1, grads  # the check can see a score term


def _permuted(noise, own):
    """noise (C, K, B, D) of the full objective, reordered as slot s of point b drawing component own[s, b]."""
    C, K, B, D = noise.shape
    return noise.gather(0, own[:, None, :, None].expand(C, K, B, D))


@pytest.mark.parametrize("fusion,latent", [("moe", "gaussian"), ("mopoe", "gaussian"), ("moe", "laplace")])
@pytest.mark.parametrize("estimator,K", [("elbo", 1), ("iwae", 3), ("stl", 1), ("stl", 3), ("dreg", 3), ("dreg", 1)])
@pytest.mark.parametrize("bound", ["tight", "looser"])
def test_sampled_components_covering_every_component_give_the_full_objective(fusion, latent, estimator, K, bound):
    """The subsampling path (``own``: components per data point, in any order) with all C components
    is a reordering of the full stratified sum: same value and same gradients, to rounding. This
    pins the index bookkeeping of the sampled path (own-component densities, responsibilities)."""
    model = constant_expert_model(fusion, latent)
    x = replicated_point(6)
    post = model.posterior(x)
    C, B = post.n_components, post.batch_size
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(C, K, B, 1, generator=g, dtype=torch.float64)
    own = torch.stack([torch.randperm(C, generator=g) for _ in range(B)], 1)  # (C, B), a permutation per point
    assert (own != torch.arange(C)[:, None]).any()
    est = ESTIMATOR_FUNCTIONS[estimator]

    def run(eps, own_):
        model.zero_grad()
        post = model.posterior(x)
        surrogate, value, _ = est(lambda z: log_joint(model, x, z), post, eps, bound, own_)
        surrogate.sum().backward()
        return value, torch.cat([p.grad.flatten() for p in model.parameters()])

    v_full, g_full = run(noise, None)
    v_own, g_own = run(_permuted(noise, own), own)
    torch.testing.assert_close(v_own, v_full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_own, g_full, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("S", [2, 5])
def test_subsample_of_at_least_every_component_is_the_full_objective(S):
    model = constant_expert_model("moe")  # C = 2
    x = replicated_point(5)
    full = objective(model, x, "dreg", 3, bound="looser", generator=torch.Generator().manual_seed(1))
    sub = objective(model, x, "dreg", 3, bound="looser", generator=torch.Generator().manual_seed(1), subsample=S)
    assert torch.equal(full.value, sub.value) and torch.equal(full.loss, sub.loss)


@pytest.mark.parametrize("estimator,K,bound", [("stl", 1, "tight"), ("dreg", 3, "looser")])
def test_moe_component_subsampling_is_unbiased_for_the_gradient(estimator, K, bound):
    """One of MoE's two components per data point: the mean encoder gradient matches the full
    objective's (elbo for STL at K = 1, IWAE(K) looser otherwise), z < 4 over 120,000 draws."""
    torch.manual_seed(11)
    model = constant_expert_model("moe")
    x = replicated_point(2000)
    full = "elbo" if K == 1 else "iwae"

    def grads(fn, n=60):
        out = []
        for _ in range(n):
            model.zero_grad()
            fn().backward()
            out.append(_enc_grad(model))
        g = torch.stack(out)
        return g.mean(0), g.std(0) / math.sqrt(n)

    g_full, s_full = grads(lambda: objective(model, x, full, K, bound=bound).loss)
    g_sub, s_sub = grads(lambda: objective(model, x, estimator, K, bound=bound, subsample=1).loss)
    z = (g_sub - g_full) / torch.sqrt(s_sub**2 + s_full**2)
    assert z.abs().max() < 4.0, z


def test_training_and_diagnostics_leave_every_global_rng_alone():
    """fit, generate, estimate_log_likelihood and gradient_snr draw from their own generators: the
    global torch, numpy and Python random states are the same after them, and a second run with
    the same seeds gives the same numbers."""
    from mmvae import build_model, config_for_specs, fit
    from mmvae.data import load_dataset
    from mmvae.diagnostics.generation import generate
    from mmvae.diagnostics.gradients import gradient_snr
    from mmvae.diagnostics.likelihood import estimate_log_likelihood

    data = load_dataset("toy", seed=0)
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)

    def states():
        return torch.random.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()

    def run():
        model = build_model(config_for_specs(data.specs, latent_dim=2, fusion="mopoe",
                                             network={"type": "mlp", "hidden": [8]}), seed=0)
        h = fit(model, data.train.subset(slice(0, 70)), data.val.subset(slice(0, 20)), estimator="dreg", K=2,
                epochs=1, batch_size=32, seed=0, device="cpu", bound="looser", subsample=2)
        test = data.test.subset(slice(0, 10))
        gen = generate(model, test, [model.names[0]], n_samples=2, seed=3)
        ll = estimate_log_likelihood(model, test, n_samples=12, seed=3)
        snr = gradient_snr(model, test, Ks=(1, 2), estimators=("dreg",), repeats=2, seed=3)
        return h.column("train_loss"), gen, ll.per_point, [r["encoder_snr"] for r in snr if "encoder_snr" in r]

    before = states()
    a = run()
    after = states()
    assert torch.equal(before[0], after[0])
    assert np.array_equal(before[1], after[1])
    assert before[2] == after[2]
    b = run()
    assert a[0] == b[0]
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])
    assert torch.equal(a[2], b[2])
    assert a[3] == b[3]


@pytest.mark.parametrize("fusion", ["poe", "moe", "mopoe"])
@pytest.mark.parametrize("estimator,K", [("elbo", 1), ("iwae", 3), ("dreg", 1), ("stl", 3)])
@pytest.mark.parametrize("B", [1, 5])
def test_one_modality_objective_is_exact_for_every_fusion(fusion, estimator, K, B):
    """One modality: every rule's posterior is prior x expert, the exact p(z | x_0), and the
    objective is the single term log p(x_0) (PoE's MVAE sum has no unimodal duplicate)."""
    lg = LinearGaussian()
    x = {"x0": lg.sample(B)["x0"]}
    out = objective(lg.model(fusion), x, estimator, K, generator=torch.Generator().manual_seed(0))
    assert out.log_weights.shape == (1, K, B)
    torch.testing.assert_close(out.value, lg.exact_log_likelihood(x), atol=1e-9, rtol=1e-10)


def test_subsample_of_every_component_is_allowed_under_the_tight_bound():
    """S >= C samples every component: the full objective, which the tight bound allows (fewer
    components are still refused there)."""
    model = constant_expert_model("mopoe")  # C = 3
    x = replicated_point(4)
    full = objective(model, x, "iwae", 3, generator=torch.Generator().manual_seed(1))
    every = objective(model, x, "iwae", 3, generator=torch.Generator().manual_seed(1), subsample=3)
    assert torch.equal(full.value, every.value)
    with pytest.raises(ValueError, match="looser"):
        objective(model, x, "iwae", 3, subsample=2)
