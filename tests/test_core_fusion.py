"""Fusion rules: PoE closed form and stability, MoPoE special cases, mixture densities."""
import math

import pytest
import torch

from mmvae import FusionError, ModalityConfig, ModelConfig, build_model
from mmvae.fusion import fuse, product_of_experts, subsets_for


def test_poe_matches_precision_weighted_formula():
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    log_scale = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, False, True]])
    f_loc, f_ls = product_of_experts(loc, log_scale, mask)
    for c, row in enumerate(mask):
        T = 1.0 + sum((-2 * log_scale[m]).exp() for m in range(3) if row[m])
        mu = sum((-2 * log_scale[m]).exp() * loc[m] for m in range(3) if row[m]) / T
        torch.testing.assert_close(f_loc[c], mu)
        torch.testing.assert_close(f_ls[c], -0.5 * torch.log(T))


def test_poe_is_stable_for_tiny_and_huge_variances():
    loc = torch.tensor([[[1.0]], [[-3.0]]])
    log_scale = torch.tensor([[[-40.0]], [[40.0]]])  # variances e^-80 and e^80
    f_loc, f_ls = product_of_experts(loc, log_scale, torch.tensor([[True, True]]))
    assert torch.isfinite(f_loc).all() and torch.isfinite(f_ls).all()
    assert f_loc.item() == pytest.approx(1.0)  # the confident expert wins
    assert f_ls.item() == pytest.approx(-40.0, abs=1e-4)
    # all experts vague: the prior dominates
    f_loc, f_ls = product_of_experts(loc, torch.full_like(log_scale, 40.0), torch.tensor([[True, True]]))
    assert abs(f_loc.item()) < 1e-20 and f_ls.item() == pytest.approx(0.0, abs=1e-6)


def _experts(M=3, B=4, D=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [f"m{i}" for i in range(M)], torch.randn(M, B, D, generator=g), torch.randn(M, B, D, generator=g) * 0.5


def test_mopoe_special_cases():
    names, loc, ls = _experts()
    full = fuse("gaussian", names, loc, ls, "mopoe", subsets=[(0, 1, 2)])
    poe = fuse("gaussian", names, loc, ls, "poe")
    torch.testing.assert_close(full.loc, poe.loc)
    torch.testing.assert_close(full.log_scale, poe.log_scale)
    singles = fuse("gaussian", names, loc, ls, "mopoe", subsets=[(0,), (1,), (2,)])
    moe = fuse("gaussian", names, loc, ls, "moe")
    torch.testing.assert_close(singles.loc, moe.loc)
    torch.testing.assert_close(singles.log_scale, moe.log_scale)
    z = torch.randn(7, 4, 2)
    torch.testing.assert_close(singles.log_prob(z), moe.log_prob(z))
    assert len(subsets_for("mopoe", 3)) == 7 and len(subsets_for("mopoe", 4)) == 15


def test_mixture_density_uses_logsumexp_far_from_the_data():
    names, loc, ls = _experts(M=2, B=1, D=2)
    moe = fuse("gaussian", names, loc, ls, "moe")
    z = torch.full((1, 1, 2), 1e3)
    lp = moe.log_prob(z)
    assert torch.isfinite(lp).all()  # naive exp-then-sum underflows to log(0) = -inf here
    comp = moe.component_log_prob(z.view(1, 1, 1, 2).expand(2, 1, 1, 2))[:, 0, 0, 0]
    assert lp.item() == pytest.approx((torch.logsumexp(comp, 0) - math.log(2)).item())
    # a mixture's density is the average of its components' densities
    z = torch.randn(5, 1, 2)
    dens = sum(torch.distributions.Normal(moe.loc[c], moe.log_scale[c].exp()).log_prob(z).sum(-1).exp()
               for c in range(2)) / 2
    torch.testing.assert_close(moe.log_prob(z).exp(), dens)


def test_laplace_products_give_a_clear_error():
    names, loc, ls = _experts()
    with pytest.raises(FusionError, match="Laplace"):
        fuse("laplace", names, loc, ls, "poe")
    with pytest.raises(FusionError, match="Laplace"):
        fuse("laplace", names, loc, ls, "mopoe")
    moe = fuse("laplace", names, loc, ls, "moe")
    torch.testing.assert_close(moe.loc, loc)  # Laplace experts are the unimodal posteriors
    with pytest.raises(ValueError, match="Gaussian latents"):
        ModelConfig([ModalityConfig("a", (2,))], latent="laplace", fusion="poe")


def test_unknown_options_and_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="unknown fusion rule 'sum'"):
        ModelConfig([ModalityConfig("a", (2,))], fusion="sum")
    with pytest.raises(ValueError, match="unknown likelihood"):
        ModalityConfig("a", (2,), likelihood="poisson")
    model = build_model(ModelConfig([ModalityConfig("a", (3,)), ModalityConfig("b", (2,))]))
    with pytest.raises(ValueError, match="unknown modality 'c'"):
        model.posterior({"c": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match=r"expected shape \(batch, 3\)"):
        model.posterior({"a": torch.zeros(2, 4)})
    with pytest.raises(ValueError, match="NaN or inf"):
        model.posterior({"a": torch.tensor([[0.0, float("nan"), 1.0]])})
    with pytest.raises(ValueError, match="different batch sizes"):
        model.posterior({"a": torch.zeros(2, 3), "b": torch.zeros(3, 2)})


def test_any_subset_of_modalities_can_be_encoded():
    model = build_model(ModelConfig([ModalityConfig(n, (3,)) for n in "abc"], fusion="mopoe"))
    x = {"a": torch.randn(5, 3), "c": torch.randn(5, 3)}
    post = model.posterior(x)
    assert post.n_components == 3 and post.subsets == [("a",), ("c",), ("a", "c")]
    out = model.generate(x, ["b"])
    assert out["b"].shape == (5, 3) and torch.isfinite(out["b"]).all()


def test_float64_models_generate_from_the_prior():
    model = build_model(ModelConfig([ModalityConfig("a", (3,)), ModalityConfig("b", (2,))])).double()
    out = model.sample_prior(4)
    assert out["a"].dtype == torch.float64 and out["a"].shape == (4, 3)


@pytest.mark.parametrize("family", ["gaussian", "laplace"])
def test_ancestral_mixture_samples_have_the_mixture_moments(family):
    names, loc, ls = _experts(M=3, B=2, D=2)
    post = fuse(family, names, loc, ls, "moe")
    z = post.sample(200_000, generator=torch.Generator().manual_seed(0))
    comp_var = (2 * post.log_scale).exp() * (2.0 if family == "laplace" else 1.0)  # Laplace var = 2 b^2
    mean = post.loc.mean(0)
    var = (comp_var + post.loc**2).mean(0) - mean**2
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), var, atol=0.05, rtol=0.03)


@pytest.mark.parametrize("family", ["gaussian", "laplace"])
def test_one_sampler_for_reparameterised_and_ancestral_samples(family):
    """rsample and sample share distributions.standard_noise: with one component and the same
    generator state they give the same z, and the Laplace noise has the Laplace(0, 1) moments."""
    names, loc, ls = _experts(M=1, B=3, D=2)
    post = fuse(family, names, loc, ls, "moe")
    a = post.rsample(5, generator=torch.Generator().manual_seed(4))[0]
    b = post.sample(5, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    from mmvae.distributions import standard_noise
    eps = standard_noise(family, (400_000,), torch.float64, generator=torch.Generator().manual_seed(0))
    assert abs(eps.mean()) < 0.01 and abs(eps.var() - (2.0 if family == "laplace" else 1.0)) < 0.02
    assert abs(eps.abs().mean() - (1.0 if family == "laplace" else math.sqrt(2 / math.pi))) < 0.01


def test_poe_objective_of_a_laplace_model_is_refused():
    from mmvae import objective

    model = build_model(ModelConfig([ModalityConfig("a", (3,)), ModalityConfig("b", (2,))], latent="laplace",
                                    fusion="moe"))
    with pytest.raises(FusionError, match="Laplace"):
        objective(model, {"a": torch.zeros(2, 3), "b": torch.zeros(2, 2)}, "elbo", fusion="poe")
