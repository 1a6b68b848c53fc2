"""Log-likelihood estimates and the bound chain on the linear toy with the exact encoder."""
import math

import pytest
import torch

from mmvae import MultimodalVAE, build_model, config_for_specs, fit
from mmvae.data import load_dataset
from mmvae.data.toy import exact_experts, exact_log_likelihood
from mmvae.diagnostics import (bound_gaps, conditional_log_likelihood, effective_sample_size,
                               estimate_log_likelihood, exact_log_likelihood_fn)
from tests.helpers import exact_linear_gaussian_model


def toy_bundle(n=400):
    return load_dataset("toy", seed=0, n=n)


def exact_toy_model(bundle, fusion="poe", shift: float = 0.0, scale_factor: float = 1.0) -> MultimodalVAE:
    """Exact encoders and decoders (true W, b; likelihood scale = sigma_m) for the toy, float64;
    ``shift`` / ``scale_factor`` make the experts wrong."""
    return exact_linear_gaussian_model(bundle.extras["toy_params"], fusion, shift, scale_factor)


def test_encoder_is_exact():
    bundle = toy_bundle()
    model = exact_toy_model(bundle)
    x = {k: v.double() for k, v in bundle.test.modalities.items()}
    ex = exact_experts(bundle.extras["toy_params"], x)
    for k in x:
        loc, ls = model.encoders[k](x[k])
        assert torch.allclose(loc, ex[k][0], atol=1e-10) and torch.allclose(ls, ex[k][1], atol=1e-10)


def test_every_bound_is_exact_for_poe():
    bundle = toy_bundle()
    model = exact_toy_model(bundle, "poe")
    data = bundle.test
    params = bundle.extras["toy_params"]
    exact = exact_log_likelihood(params, {k: v.double() for k, v in data.modalities.items()})
    ll = estimate_log_likelihood(model, data, n_samples=50, seed=0)
    assert torch.allclose(ll.per_point.double(), exact, atol=1e-4)
    assert ll.mc_stderr < 1e-6 and abs(ll.mean - float(exact.mean())) < 1e-4
    assert torch.allclose(ll.ess, torch.full_like(ll.ess, 50.0), atol=1e-3)
    table = bound_gaps(model, data, Ks=(1, 2, 10), repeats=2, n_samples=20, exact=exact_log_likelihood_fn(params))
    for row in table["rows"]:
        assert abs(row["elbo_mean"] - table["exact"]) < 1e-4 and abs(row["iwae_mean"] - table["exact"]) < 1e-4
    assert table["chain_holds"] and abs(table["gap_exact_loglik"]) < 1e-4
    # marginal log p(x_S) with the unimodal posterior (exact too), and the conditional
    marg = estimate_log_likelihood(model, data, n_samples=10, modalities=["x1"], seed=1)
    ex1 = exact_log_likelihood(params, {"x1": data.modalities["x1"].double()})
    assert torch.allclose(marg.per_point.double(), ex1, atol=1e-4)
    cond = conditional_log_likelihood(model, data, "x2", "x1", n_samples=10, seed=2)
    assert torch.allclose(cond.per_point.double(), exact - ex1, atol=1e-4)


@pytest.mark.parametrize("fusion", ["moe", "mopoe"])
def test_mixture_estimates_are_consistent(fusion):
    """Mixtures of exact unimodal posteriors are valid proposals: the estimate converges to log p."""
    bundle = toy_bundle()
    model = exact_toy_model(bundle, fusion)
    data = bundle.test.subset(slice(0, 30))
    exact = exact_log_likelihood(bundle.extras["toy_params"], {k: v.double() for k, v in data.modalities.items()})
    ll = estimate_log_likelihood(model, data, n_samples=3000, seed=0, chunk_size=100)
    assert ll.n_samples >= 3000 and ll.n_components == (2 if fusion == "moe" else 3)
    err = (ll.per_point.double() - exact).abs()
    assert float((err / ll.mc_stderr_per_point.double().clamp_min(1e-3)).max()) < 5
    assert abs(ll.mean - float(exact.mean())) < 5 * ll.mc_stderr + 1e-3


@pytest.mark.parametrize("fusion", ["poe", "moe", "mopoe"])
def test_chunking_changes_memory_not_the_samples(fusion):
    """The samples come from one generator in fixed blocks, whatever the chunk size: estimates with
    different chunk sizes (below, across and above a block) agree to float rounding."""
    bundle = toy_bundle()
    model = exact_toy_model(bundle, fusion, shift=0.3, scale_factor=1.5)  # wrong experts: weights vary
    data = bundle.test.subset(slice(0, 20))
    runs = [estimate_log_likelihood(model, data, n_samples=150, seed=3, chunk_size=c, batch_size=8)
            for c in (1, 7, 64, 65, 150)]
    for r in runs[1:]:
        torch.testing.assert_close(r.per_point, runs[0].per_point, atol=1e-10, rtol=1e-12)
        torch.testing.assert_close(r.mc_stderr_per_point, runs[0].mc_stderr_per_point, atol=1e-10, rtol=1e-9)
    assert float(runs[0].mc_stderr_per_point.min()) > 1e-3  # the weights vary: another stream would differ
    other = estimate_log_likelihood(model, data, n_samples=150, seed=4, chunk_size=7, batch_size=8)
    assert not torch.allclose(other.per_point, runs[0].per_point, atol=1e-6)
    # the same holds for weight_stats (used by bound_gaps) with a caller-made generator
    g = torch.Generator().manual_seed(0)
    x = {k: v[:8].double() for k, v in data.modalities.items()}
    from mmvae.diagnostics.likelihood import weight_stats
    a = weight_stats(model, x, [5, 100], chunk_size=3, generator=g)
    b = weight_stats(model, x, [5, 100], chunk_size=100, generator=torch.Generator().manual_seed(0))
    for sa, sb in zip(a, b):
        torch.testing.assert_close(sa.log_p(), sb.log_p(), atol=1e-10, rtol=1e-12)


def test_diagnostics_use_their_own_generator_not_the_global_one():
    bundle = toy_bundle()
    model = exact_toy_model(bundle, "moe", shift=0.3)
    data = bundle.test.subset(slice(0, 10))
    state = torch.get_rng_state()
    a = estimate_log_likelihood(model, data, n_samples=40, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is neither read nor reseeded
    torch.manual_seed(12345)
    b = estimate_log_likelihood(model, data, n_samples=40, seed=1)
    assert torch.equal(a.per_point, b.per_point)


def test_effective_sample_size():
    lw = torch.zeros(1, 10, 3)
    assert torch.allclose(effective_sample_size(lw), torch.full((3,), 10.0))
    lw[0, 0, :] = 100.0
    assert torch.allclose(effective_sample_size(lw), torch.ones(3), atol=1e-6)
    w = torch.rand(2, 7, 4) + 0.1
    ref = w.sum((0, 1)) ** 2 / (w ** 2).sum((0, 1))
    assert torch.allclose(effective_sample_size(w.log()), ref, atol=1e-5)


def grid_log_likelihood(model, x, half_width=5.0, n=401):
    """Brute force: log of the integral of p(z) p(x | z) over a 2-D grid of z (trapezoid-free sum)."""
    g = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    dz = float(g[1] - g[0]) ** 2
    B = next(iter(x.values())).shape[0]
    with torch.no_grad():
        z = zz[:, None, :].expand(-1, B, -1)
        lp = model.prior().log_prob(z).sum(-1)
        for term in model.log_likelihood(x, z).values():
            lp = lp + term
    return torch.logsumexp(lp, 0) + math.log(dz)


def test_trained_model_matches_brute_force():
    torch.manual_seed(0)
    bundle = toy_bundle(600)
    cfg = config_for_specs(bundle.specs, latent_dim=2, fusion="mopoe", network={"type": "mlp", "hidden": [32]},
                           likelihood_scale=0.6)
    model = build_model(cfg, seed=0)
    fit(model, bundle.train, epochs=15, batch_size=64, lr=3e-3, device="cpu")
    model = model.double().eval()
    data = bundle.test.subset(slice(0, 10))
    x = {k: v.double() for k, v in data.modalities.items()}
    brute = grid_log_likelihood(model, x)
    ll = estimate_log_likelihood(model, data, n_samples=3000, seed=0)
    se = ll.mc_stderr_per_point.double().clamp_min(1e-3)
    z = (ll.per_point.double() - brute) / se
    assert float(z.abs().max()) < 5, z
    assert abs(ll.mean - float(brute.mean())) < 4 * ll.mc_stderr + 2e-3


def test_one_component_proposal_misses_log_p_but_stratified_sampling_does_not():
    """The README's claim about multivae's joint NLL: all K samples of a point drawn from one
    component c, weighted against the full mixture, converge to log E_{q_c}[p(x, z) / q_mix(z)],
    not to log p(x); our stratified estimate converges to log p(x)."""
    from mmvae.objectives import log_joint

    bundle = toy_bundle()
    model = exact_toy_model(bundle, "moe")
    data = bundle.test.subset(slice(0, 20))
    x = {k: v.double() for k, v in data.modalities.items()}
    exact = exact_log_likelihood(bundle.extras["toy_params"], x)
    post = model.posterior(x)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z = post.rsample(20000, generator=g)  # (C, K, B, D)
        lw = log_joint(model, x, z, post) - post.log_prob(z)  # weighted against the mixture
    for c in range(2):  # all samples from component c, in two independent halves of 10,000
        err = [torch.logsumexp(lw[c, h], 0) - math.log(10000) - exact for h in (slice(0, 10000), slice(10000, None))]
        assert min(float(e.abs().mean()) for e in err) > 0.1  # off log p(x) by 0.2-0.3 nats on average...
        assert float((err[0] - err[1]).abs().max()) < 0.15  # ...the same in both halves: bias, not noise
    ours = estimate_log_likelihood(model, data, n_samples=20000, seed=0)
    z_ours = (ours.per_point.double() - exact) / ours.mc_stderr_per_point.double()
    assert float(z_ours.abs().max()) < 5 and float((ours.per_point.double() - exact).abs().mean()) < 0.02
