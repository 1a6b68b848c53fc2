"""mmvae.diagnostics.weights: one point's importance weights, ELBO and IWAE(K) formed from them,
checked on the linear-Gaussian model whose exact posterior is known."""
from __future__ import annotations

import math

import pytest
import torch

from mmvae.diagnostics.weights import decode_latent, importance_weights
from tests.helpers import LinearGaussian


def test_exact_posterior_gives_equal_weights_and_the_exact_log_likelihood():
    lg = LinearGaussian()
    x = lg.sample(4, seed=3)
    exact = lg.exact_log_likelihood(x)
    r = importance_weights(lg.model("poe"), x, index=2, K=16, seed=0)
    # q(z|x) = p(z|x): every w_k = p(x), so ELBO = IWAE = log p(x) and all 16 samples count
    assert r["elbo"] == pytest.approx(float(exact[2]), abs=1e-8)
    assert r["iwae"] == pytest.approx(float(exact[2]), abs=1e-8)
    assert r["ess"] == pytest.approx(16, rel=1e-8)


def test_wrong_posterior_iwae_above_elbo_formed_from_the_returned_weights():
    lg = LinearGaussian()
    x = lg.sample(4, seed=3)
    for fusion in ("poe", "moe", "mopoe"):
        r = importance_weights(lg.model(fusion, mean_shift=0.7, scale_factor=1.5), x, index=1, K=10, seed=0)
        lw = torch.tensor(r["log_w"], dtype=torch.float64)  # (C, K)
        C = {"poe": 1, "moe": 2, "mopoe": 3}[fusion]
        assert lw.shape == (C, 10) and r["C"] == C
        assert r["elbo"] == pytest.approx(float(lw.mean()), abs=1e-9)
        assert r["iwae"] == pytest.approx(float(torch.logsumexp(lw.flatten(), 0) - math.log(C * 10)), abs=1e-9)
        assert r["iwae"] > r["elbo"] + 1e-3
        assert sum(map(sum, r["normalised"])) == pytest.approx(1.0, abs=1e-9)
        w = torch.tensor(r["normalised"], dtype=torch.float64)
        assert r["ess"] == pytest.approx(float(1.0 / w.square().sum()), rel=1e-9)  # Kish's ESS of these weights
        assert 1.0 <= r["ess"] < C * 10


def test_same_seed_same_weights_and_bad_index_is_refused():
    lg = LinearGaussian()
    x = lg.sample(3, seed=1)
    model = lg.model("poe", mean_shift=0.5)
    before = torch.random.get_rng_state()
    importance_weights(model, x, 0, K=5, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)  # an explicit generator, never the global RNG
    assert importance_weights(model, x, 0, K=5, seed=4)["log_w"] == importance_weights(model, x, 0, K=5, seed=4)["log_w"]
    assert importance_weights(model, x, 0, K=5, seed=4)["log_w"] != importance_weights(model, x, 0, K=5, seed=5)["log_w"]
    with pytest.raises(ValueError, match="outside"):
        importance_weights(model, x, 3, K=5)


def test_decode_latent_is_the_decoders_mean():
    lg = LinearGaussian()
    model = lg.model("poe")
    z = torch.tensor([[0.5, -1.0], [0.0, 2.0]], dtype=torch.float64)
    out = decode_latent(model, z)
    for k in lg.names:
        assert torch.allclose(out[k], z @ lg.W[k].T + lg.b[k])
    with pytest.raises(ValueError, match="shape"):
        decode_latent(model, torch.zeros(2, 3))
