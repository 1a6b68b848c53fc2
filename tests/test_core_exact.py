"""The linear-Gaussian model: exact log p(x) and posterior against the package's bounds and PoE."""
import pytest
import torch

from mmvae import bounds, log_weights
from tests.helpers import LinearGaussian

torch.set_default_dtype(torch.float32)


@pytest.fixture(scope="module")
def lg():
    return LinearGaussian()


def test_poe_of_exact_experts_is_exact_joint_posterior(lg):
    x = lg.sample(50)
    model = lg.model("poe")
    post = model.posterior(x)
    mean, var = lg.exact_posterior(x)
    assert post.n_components == 1
    torch.testing.assert_close(post.loc[0], mean, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close((2 * post.log_scale[0]).exp(), var.expand_as(mean), atol=1e-10, rtol=1e-10)
    # a single modality: prior x expert = exact unimodal posterior (the prior is counted once)
    for name in lg.names:
        post_m = model.posterior({name: x[name]})
        mean_m, var_m = lg.exact_posterior({name: x[name]})
        torch.testing.assert_close(post_m.loc[0], mean_m, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("K", [1, 3, 50])
def test_exact_encoder_makes_every_bound_exact(lg, K):
    x = lg.sample(40)
    model = lg.model("poe")
    exact = lg.exact_log_likelihood(x)
    b = bounds(model, x, K)
    torch.testing.assert_close(b["elbo"], exact, atol=1e-6, rtol=1e-8)
    torch.testing.assert_close(b["iwae"], exact, atol=1e-6, rtol=1e-8)
    # every sample's log-weight equals log p(x): the importance weights are constant
    lw = log_weights(model, x, K)
    torch.testing.assert_close(lw, exact.expand_as(lw), atol=1e-6, rtol=1e-8)
    # marginals: the posterior of one modality gives log p(x_m) exactly
    for name in lg.names:
        xm = {name: x[name]}
        torch.testing.assert_close(bounds(model, xm, K)["iwae"], lg.exact_log_likelihood(xm), atol=1e-6, rtol=1e-8)


def test_wrong_encoder_bounds_rise_with_K_toward_exact(lg):
    x = lg.sample(2000, seed=3)
    model = lg.model("poe", mean_shift=0.4, scale_factor=1.6)
    exact = lg.exact_log_likelihood(x).mean()
    torch.manual_seed(0)
    elbo = bounds(model, x, 1)["elbo"].mean()
    iwae = [bounds(model, x, K)["iwae"].mean() for K in (1, 10, 100, 1000)]
    assert elbo < iwae[1] < iwae[2] < iwae[3] < exact
    assert abs(iwae[0] - elbo) < 0.1  # IWAE(1) is the ELBO (same expectation)
    assert exact - iwae[3] < 0.1 * (exact - elbo)  # most of the gap closes by K = 1000


@pytest.mark.parametrize("fusion", ["moe", "mopoe"])
def test_mixture_bounds_are_valid_and_tighten(lg, fusion):
    x = lg.sample(1000, seed=4)
    model = lg.model(fusion)
    exact = lg.exact_log_likelihood(x).mean()
    torch.manual_seed(0)
    elbo = bounds(model, x, 1)["elbo"].mean()
    iwae10 = bounds(model, x, 10)["iwae"].mean()
    iwae300 = bounds(model, x, 300)["iwae"].mean()
    assert elbo < iwae10 < iwae300 < exact + 0.01
    assert exact - iwae300 < 0.25 * (exact - elbo)


@pytest.mark.parametrize("estimator", ["elbo", "iwae", "dreg", "stl"])
def test_poe_objective_is_mvae_sum_of_exact_subset_terms(lg, estimator):
    """With exact experts every MVAE term is exact: the objective is log p(x) + sum_m log p(x_m)."""
    from mmvae import objective

    x = lg.sample(30)
    model = lg.model("poe")
    exact = lg.exact_log_likelihood(x) + sum(lg.exact_log_likelihood({n: x[n]}) for n in lg.names)
    out = objective(model, x, estimator, K=3)
    torch.testing.assert_close(out.value, exact, atol=1e-6, rtol=1e-8)
    assert out.log_weights.shape == (3, 3, 30)  # the joint term and one per modality
