"""Posterior overlap figures against closed forms worked out by hand, and embeddings."""
import math

import numpy as np
import pytest
import torch

from mmvae.data.toy import exact_posterior
from mmvae.diagnostics import (bhattacharyya_coefficient, embed_2d, gaussian_kl, latent_embedding,
                               posterior_overlap, project_2d, symmetric_kl)
from tests.test_diagnostics_likelihood import exact_toy_model, toy_bundle


def t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_closed_forms_by_hand():
    # N(0, 1) vs N(1, 2^2) in 1-D
    kl = gaussian_kl(t(0.0), t(0.0), t(1.0), t(math.log(2.0)))
    assert abs(float(kl) - (math.log(2) + 2 / 8 - 0.5)) < 1e-12
    kl_back = gaussian_kl(t(1.0), t(math.log(2.0)), t(0.0), t(0.0))
    assert abs(float(kl_back) - (-math.log(2) + (4 + 1) / 2 - 0.5)) < 1e-12
    assert abs(float(symmetric_kl(t(0.0), t(0.0), t(1.0), t(math.log(2.0)))) - float(kl + kl_back)) < 1e-12
    bc = bhattacharyya_coefficient(t(0.0), t(0.0), t(1.0), t(math.log(2.0)))
    d_b = 0.25 * 1 / 5 + 0.5 * math.log(5 / (2 * 1 * 2))
    assert abs(float(bc) - math.exp(-d_b)) < 1e-12
    # identical -> BC 1, KL 0; dimensions add up in D_B (BC multiplies)
    assert float(bhattacharyya_coefficient(t(0.3, -1.0), t(0.1, 0.2), t(0.3, -1.0), t(0.1, 0.2))) == pytest.approx(1.0)
    two = bhattacharyya_coefficient(t(0.0, 0.0), t(0.0, 0.0), t(1.0, 1.0), t(math.log(2.0), math.log(2.0)))
    assert float(two) == pytest.approx(float(bc) ** 2)
    # BC against numerical integration
    z = torch.linspace(-15, 15, 200001, dtype=torch.float64)
    p = torch.distributions.Normal(0.0, 1.0).log_prob(z).exp()
    q = torch.distributions.Normal(1.0, 2.0).log_prob(z).exp()
    assert float((p * q).sqrt().sum() * (z[1] - z[0])) == pytest.approx(float(bc), abs=1e-6)


def test_overlap_on_exact_toy():
    bundle = toy_bundle()
    data = bundle.test
    params = bundle.extras["toy_params"]
    model = exact_toy_model(bundle, "poe")
    pts = [0, 3, 7]
    out = posterior_overlap(model, data, pts, n_mc=4000, subsets=[("x1", "x2")], seed=0)
    x = {k: v[pts].double() for k, v in data.modalities.items()}
    assert out["projection"]["method"] == "identity" and out["latent_dim"] == 2
    for m in ("x1", "x2"):
        mean, var = exact_posterior(params, x, [m])
        post = out["posteriors"][m]
        np.testing.assert_allclose(post["loc"][:, 0], mean.numpy(), atol=1e-8)
        np.testing.assert_allclose(post["scale"][:, 0] ** 2, var.numpy(), atol=1e-8)
        np.testing.assert_allclose(post["cov2d"][:, 0], np.stack([np.diag(v) for v in var.numpy()]), atol=1e-8)
        # KL(q || prior) and volume, by hand
        kl = 0.5 * (var + mean ** 2 - 1 - var.log()).sum(-1)
        np.testing.assert_allclose(post["kl_prior"], kl.numpy(), atol=1e-8)
        np.testing.assert_allclose(post["log_volume_ratio"], 0.5 * var.log().sum(-1).numpy(), atol=1e-8)
    mean, var = exact_posterior(params, x)
    np.testing.assert_allclose(out["posteriors"]["poe"]["loc"][:, 0], mean.numpy(), atol=1e-8)
    np.testing.assert_allclose(out["posteriors"]["poe[x1,x2]"]["loc"][:, 0], mean.numpy(), atol=1e-8)
    m1, v1 = exact_posterior(params, x, ["x1"])
    m2, v2 = exact_posterior(params, x, ["x2"])
    pair = out["pairs"][0]
    kl12 = 0.5 * (v1 / v2 + (m1 - m2) ** 2 / v2 - 1 - (v1 / v2).log()).sum(-1)
    kl21 = 0.5 * (v2 / v1 + (m1 - m2) ** 2 / v1 - 1 - (v2 / v1).log()).sum(-1)
    np.testing.assert_allclose(pair["symmetric_kl"], (kl12 + kl21).numpy(), atol=1e-8)
    vbar = 0.5 * (v1 + v2)
    db = (0.125 * (m1 - m2) ** 2 / vbar + 0.5 * (vbar.log() - 0.5 * (v1.log() + v2.log()))).sum(-1)
    np.testing.assert_allclose(pair["bhattacharyya"], torch.exp(-db).numpy(), atol=1e-8)
    rows = {(r["fused"], r["unimodal"]): r for r in out["fused_vs_unimodal"]}
    kl_poe_1 = 0.5 * (var / v1 + (mean - m1) ** 2 / v1 - 1 - (var / v1).log()).sum(-1)
    np.testing.assert_allclose(rows[("poe", "x1")]["kl"], kl_poe_1.numpy(), atol=1e-8)
    assert rows[("poe", "x1")]["method"] == "closed form"
    # MoE: KL(mixture || q_1) by MC, against a large independent estimate
    r = rows[("moe", "x1")]
    assert r["method"] == "monte carlo" and np.all(r["stderr"] > 0)
    comps = [(m1, v1), (m2, v2)]
    g = torch.Generator().manual_seed(5)
    zs = torch.cat([m + v.sqrt() * torch.randn(100000, *m.shape, generator=g, dtype=torch.float64) for m, v in comps])
    def logn(z, m, v):
        return (-0.5 * ((z - m) ** 2 / v + (2 * math.pi * v).log())).sum(-1)
    log_mix = torch.logsumexp(torch.stack([logn(zs, m, v) for m, v in comps]), 0) - math.log(2)
    ref = (log_mix - logn(zs, m1, v1)).mean(0).numpy()
    assert np.all(np.abs(r["kl"] - ref) < 5 * r["stderr"] + 1e-3)
    # mopoe holds three components; moe's KL to the prior is Monte Carlo with an error
    assert len(out["posteriors"]["mopoe"]["subsets"]) == 3
    assert np.all(out["posteriors"]["moe"]["kl_prior_stderr"] > 0)


def test_projection_and_embeddings():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(50, 1, dtype=torch.float64, generator=g) * torch.tensor([[0.0, 5.0, 0.0, 1.0]], dtype=torch.float64)
    V, how = project_2d(means + 0.01 * torch.randn(50, 4, generator=g, dtype=torch.float64))
    assert how == "pca" and abs(abs(float(V[1, 0])) - 5 / math.sqrt(26)) < 1e-2
    V, how = project_2d(means, "first")
    assert how == "first" and torch.equal(V, torch.eye(4, 2, dtype=torch.float64))
    a = {"joint": np.random.default_rng(0).normal(size=(40, 5)), "x1": np.random.default_rng(1).normal(size=(40, 5))}
    pca = embed_2d(a, "pca")
    assert pca["method"] == "pca" and pca["coords"]["joint"].shape == (40, 2) and pca["coords"]["x1"].shape == (40, 2)
    with pytest.raises(ValueError):
        embed_2d(a, "raw")
    bundle = toy_bundle()
    emb = latent_embedding(exact_toy_model(bundle), bundle.test, "auto")
    assert emb["method"] == "raw" and set(emb["coords"]) == {"joint", "x1", "x2"}
    np.testing.assert_allclose(emb["coords"]["joint"], emb["means"]["joint"])
    assert len(emb["labels"]) == bundle.test.n


@pytest.mark.parametrize("latent", ["gaussian", "laplace"])
def test_a_posterior_equal_to_the_prior_keeps_all_its_volume(latent):
    """log_volume_ratio = 0 when every posterior is the prior (Laplace(0, 1) has variance 2, not 1)."""
    from mmvae import ModalityConfig, ModelConfig, MultimodalVAE
    from tests.helpers import ConstantExpert, LinearDecoder

    # Laplace: the expert is the posterior; Gaussian: prior x a flat expert is the prior
    flat = 0.0 if latent == "laplace" else 30.0
    mods = [ModalityConfig(n, (2,), network={"type": "custom"}) for n in ("a", "b")]
    enc = {n: ConstantExpert([0.0, 0.0], [flat, flat]) for n in ("a", "b")}
    dec = {n: LinearDecoder(torch.eye(2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)) for n in ("a", "b")}
    model = MultimodalVAE(ModelConfig(mods, latent_dim=2, latent=latent, fusion="moe"), enc, dec).double()
    data = {n: torch.zeros(3, 2, dtype=torch.float64) for n in ("a", "b")}
    out = posterior_overlap(model, data, [0, 1], fusions=["moe"], n_mc=10, seed=0)
    for key in ("a", "b", "moe"):
        np.testing.assert_allclose(out["posteriors"][key]["log_volume_ratio"], 0.0, atol=1e-6)
    # a tenth of the prior's spread in both dimensions: 2 log(0.1)
    with torch.no_grad():
        for e in enc.values():
            e.log_scale.add_(math.log(0.1) if latent == "laplace" else 0.0)
    if latent == "laplace":
        out = posterior_overlap(model, data, [0], fusions=["moe"], n_mc=10, seed=0)
        for key in ("a", "moe"):
            np.testing.assert_allclose(out["posteriors"][key]["log_volume_ratio"], 2 * math.log(0.1), atol=1e-9)


def test_auto_embedding_means_one_thing_everywhere():
    """"auto" = the latent itself when D <= 2, else PCA, in the diagnostics, the CLI's report and the app."""
    from app.backend import resolve_method
    from mmvae.cli import build_parser
    from mmvae.diagnostics.embeddings import embedding_method

    rng = np.random.default_rng(0)
    for D, expected in ((1, "raw"), (2, "raw"), (3, "pca"), (8, "pca")):
        means = {"joint": rng.normal(size=(30, D)), "x1": rng.normal(size=(30, D))}
        assert embedding_method("auto", D) == expected
        assert embed_2d(means, "auto")["method"] == expected
        assert resolve_method("auto", D) == expected
    assert build_parser().parse_args(["evaluate", "m.safetensors"]).embedding == "auto"
    with pytest.raises(ValueError, match="needs a 2-D latent"):
        embedding_method("raw", 3)


def test_pca_views_recover_a_plane_hidden_in_more_dimensions():
    """Points on a 2-D plane of a 6-D latent: the PCA embedding keeps every pairwise distance and the
    projection basis spans the plane (both fail if the wrong directions are kept)."""
    g = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(6, 2, generator=g, dtype=torch.float64))
    flat = torch.randn(40, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.0], dtype=torch.float64)
    means = flat @ Q.T + torch.randn(6, generator=g, dtype=torch.float64)
    coords = embed_2d({"joint": means.numpy()}, "pca")["coords"]["joint"]
    def distances(a):
        a = np.asarray(a)
        return np.linalg.norm(a[:, None] - a[None], axis=-1)

    np.testing.assert_allclose(distances(coords), distances(means.numpy()), atol=1e-9)
    V, how = project_2d(means)
    assert how == "pca"
    torch.testing.assert_close(V.T @ V, torch.eye(2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(Q @ (Q.T @ V), V, atol=1e-9, rtol=0)  # V lies in the plane
