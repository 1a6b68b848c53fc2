"""Private latents (MMVAE+, Palumbo, Daunhawer & Vogt 2023): u = [z | w_1 .. w_M] for every fusion
rule and estimator; exactness on a linear-Gaussian model with private factors, DReG unbiased over
u, the cross-modal path never reading the target's own private posterior, checkpoints and CLI."""
import json
import math

import pytest
import torch
from torch import nn

from mmvae import (CheckpointError, ModalityConfig, ModelConfig, MultimodalVAE, bounds, build_model, load_checkpoint,
                   log_weights, objective, save_checkpoint)
from mmvae.cli import main
from tests.helpers import LinearDecoder

FUSIONS = [("gaussian", "poe"), ("gaussian", "moe"), ("gaussian", "mopoe"), ("laplace", "moe")]
ESTIMATORS = ["elbo", "iwae", "dreg", "stl"]


def tiny_model(fusion, latent="gaussian", private_dim=2, cross_private="auxiliary", n_modalities=3, seed=0):
    mods = [ModalityConfig(n, (5,), network={"type": "mlp", "hidden": [8]}) for n in "abc"[:n_modalities]]
    config = ModelConfig(mods, latent_dim=2, latent=latent, fusion=fusion, private_dim=private_dim,
                         cross_private=cross_private)
    return build_model(config, seed=seed)


def tiny_data(n=4, n_modalities=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(n, 5, generator=g) for m in "abc"[:n_modalities]}


# ------------------------------------------------------------------ shapes and gradients
@pytest.mark.parametrize("latent,fusion", FUSIONS)
@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("private_dim", [0, 2])
def test_shapes_and_finite_gradients_for_every_fusion_and_estimator(latent, fusion, estimator, private_dim):
    model = tiny_model(fusion, latent, private_dim)
    if private_dim:  # r_m != p (at r_m = p, PoE's only r term, log p(w) - log r(w), is 0 with gradient 0)
        with torch.no_grad():
            model.aux_log_scale.fill_(0.3)
    x = tiny_data()
    assert model.total_dim == 2 + 3 * private_dim
    C = {"poe": 4, "moe": 3, "mopoe": 7}[fusion]  # PoE: MVAE's joint and three unimodal terms
    for K in (1, 3):
        model.zero_grad()
        out = objective(model, x, estimator, K, generator=torch.Generator().manual_seed(K))
        assert out.log_weights.shape == (C, K, 4) and out.value.shape == (4,)
        assert torch.isfinite(out.log_weights).all() and torch.isfinite(out.loss)
        out.loss.backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    if private_dim:  # r_m is a variational parameter: trained by every rule that draws w_m from it
        assert model.aux_log_scale.grad.abs().sum() > 0
    post = model.posterior(x)
    assert post.loc.shape == (1 if fusion == "poe" else C, 4, model.total_dim)
    z, w = model.split(post.mean)
    assert z.shape == (4, 2) and all(v.shape == (4, private_dim) for v in w.values())
    torch.testing.assert_close(model.join(z, w), post.mean, rtol=0, atol=0)
    gen = model.generate({"a": x["a"]}, ["b", "a"], n_samples=2, generator=torch.Generator().manual_seed(0))
    assert gen["b"].shape == (2, 4, 5) and torch.isfinite(gen["b"]).all()
    assert model.sample_prior(3, generator=torch.Generator().manual_seed(0))["c"].shape == (3, 5)


@pytest.mark.parametrize("fusion", ["poe", "mopoe"])
def test_noise_drawn_beforehand_covers_u(fusion):
    """A compiled step is given its noise (T, K, B, total_dim) from objective_noise: the same
    objective as drawing it inside from the same generator."""
    from mmvae.objectives import objective_noise

    model = tiny_model(fusion)
    x = tiny_data()
    noise = objective_noise(model, 3, 2, 4, generator=torch.Generator().manual_seed(0))
    assert noise.shape == ({"poe": 4, "mopoe": 7}[fusion], 2, 4, model.total_dim)
    a = objective(model, x, "dreg", 2, noise=noise)
    b = objective(model, x, "dreg", 2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.log_weights, b.log_weights, rtol=0, atol=0)


def test_private_dim_zero_is_the_model_without_private_latents():
    """The option off changes nothing: same weights from the same seed, same objective."""
    mods = [ModalityConfig(n, (5,), network={"type": "mlp", "hidden": [8]}) for n in "abc"]
    old = build_model(ModelConfig(mods, latent_dim=2, fusion="mopoe"), seed=3)
    new = tiny_model("mopoe", private_dim=0, seed=3)
    assert "aux_log_scale" not in dict(new.named_parameters())
    # one modality: every component encodes it, r_m is never used and nothing unused is learned
    # (DistributedDataParallel refuses parameters without gradients)
    one = tiny_model("moe", n_modalities=1)
    assert "aux_log_scale" not in dict(one.named_parameters()) and one.aux_log_scales().shape == (1, 2)
    x = tiny_data()
    a = objective(old, x, "dreg", 3, generator=torch.Generator().manual_seed(0))
    b = objective(new, x, "dreg", 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.log_weights, b.log_weights, rtol=0, atol=0)


@pytest.mark.parametrize("latent,fusion", [("gaussian", "mopoe"), ("laplace", "moe")])
def test_each_component_draws_w_from_its_posterior_or_from_r(latent, fusion):
    """Component c: w_m ~ q(w_m | x_m) for m in S_c, else r_m = family(0, exp(aux_log_scale_m))."""
    model = tiny_model(fusion, latent)
    with torch.no_grad():
        model.aux_log_scale.copy_(torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]))
    x = tiny_data()
    experts = model.encode(x)
    for given in (x, {"a": x["a"], "c": x["c"]}):
        post = model.posterior(given)
        for c, subset in enumerate(post.subsets):
            for i, m in enumerate(model.names):
                cols = slice(2 + 2 * i, 4 + 2 * i)
                if m in subset:
                    j = experts.names.index(m)
                    want_loc, want_ls = experts.loc[j, :, 2:], experts.log_scale[j, :, 2:]
                else:
                    want_loc, want_ls = torch.zeros(4, 2), model.aux_log_scale[i].expand(4, 2)
                torch.testing.assert_close(post.loc[c, :, cols], want_loc, rtol=0, atol=0)
                torch.testing.assert_close(post.log_scale[c, :, cols], want_ls, rtol=0, atol=0)


# ------------------------------------------------------------------ a linear-Gaussian model with private factors
class PrivateLinearGaussian:
    """u = [z | w_1 | w_2] ~ N(0, I); x_m = A_m z + B_m w_m + b_m + N(0, sigma_m^2 I), with [A_m | B_m]
    of orthogonal columns, so p(u | x) is diagonal: p(z | x) is the PoE of the prior and the experts
    N((x_m - b_m) A_m / |A_m|^2, sigma_m^2 / |A_m|^2) and p(w_m | x) = p(w_m | x_m) =
    N(B_m^T (x_m - b_m) / (sigma_m^2 P), 1 / P) with P = 1 + |B_m|^2 / sigma_m^2 (per column).
    x is Gaussian, N(b, W W^T + diag(sigma^2)), so log p(x) and log p(x_S) are exact."""

    D, Dw, names, dims, sigma = 2, 1, ("a", "b"), (4, 3), (0.5, 0.8)

    def __init__(self, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.A, self.B, self.b = {}, {}, {}
        for n, d in zip(self.names, self.dims):
            q, _ = torch.linalg.qr(torch.randn(d, self.D + self.Dw, generator=g, dtype=torch.float64))
            q = q * (0.5 + torch.rand(self.D + self.Dw, generator=g, dtype=torch.float64) * 1.5)
            self.A[n], self.B[n] = q[:, :self.D], q[:, self.D:]
            self.b[n] = torch.randn(d, generator=g, dtype=torch.float64)

    def sample(self, n, seed=1):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.D, generator=g, dtype=torch.float64)
        return {m: z @ self.A[m].T + torch.randn(n, self.Dw, generator=g, dtype=torch.float64) @ self.B[m].T
                + self.b[m] + s * torch.randn(n, d, generator=g, dtype=torch.float64)
                for m, d, s in zip(self.names, self.dims, self.sigma)}

    def exact_log_likelihood(self, x):
        names = [n for n in self.names if n in x]
        sig = dict(zip(self.names, self.sigma))
        A = torch.cat([self.A[n] for n in names])  # (d_S, D)
        Bs = torch.block_diag(*[self.B[n] for n in names])  # (d_S, |S| Dw)
        W = torch.cat([A, Bs], 1)
        cov = W @ W.T + torch.diag(torch.cat([torch.full((self.A[n].shape[0],), sig[n] ** 2,
                                                         dtype=torch.float64) for n in names]))
        mvn = torch.distributions.MultivariateNormal(torch.cat([self.b[n] for n in names]), cov)
        return mvn.log_prob(torch.cat([x[n] for n in names], 1))

    def model(self, fusion="poe", cross_private="prior", shift=0.0):
        mods, enc, dec = [], {}, {}
        for n, s in zip(self.names, self.sigma):
            mods.append(ModalityConfig(n, (self.A[n].shape[0],), "gaussian", s, network={"type": "custom"}))
            enc[n] = ExactPrivateExpert(self.A[n], self.B[n], self.b[n], s, shift)
            dec[n] = LinearDecoder(torch.cat([self.A[n], self.B[n]], 1), self.b[n])
        config = ModelConfig(mods, latent_dim=self.D, fusion=fusion, private_dim=self.Dw, cross_private=cross_private)
        return MultimodalVAE(config, enc, dec).double()


class ExactPrivateExpert(nn.Module):
    """The exact shared expert and private posterior of one modality of :class:`PrivateLinearGaussian`
    (``shift`` moves every location: a wrong encoder)."""

    def __init__(self, A, B, b, sigma, shift=0.0):
        super().__init__()
        sA, sB = (A * A).sum(0), (B * B).sum(0)
        P = 1 + sB / sigma**2
        self.Az, self.cz = nn.Parameter(A / sA), nn.Parameter(-(b @ A) / sA + shift)
        self.Aw, self.cw = nn.Parameter(B / (sigma**2 * P)), nn.Parameter(-(b @ B) / (sigma**2 * P) + shift)
        self.log_scale = nn.Parameter(torch.cat([math.log(sigma) - 0.5 * torch.log(sA), -0.5 * torch.log(P)]))

    def forward(self, x):  # (B, d) -> loc, log_scale (B, D + Dw)
        loc = torch.cat([x @ self.Az + self.cz, x @ self.Aw + self.cw], 1)
        return loc, self.log_scale.expand(x.shape[0], -1)


@pytest.fixture(scope="module")
def plg():
    return PrivateLinearGaussian()


@pytest.mark.parametrize("K", [1, 7])
def test_exact_private_posterior_makes_every_bound_exact(plg, K):
    """With the exact posterior over u = [z | w_a | w_b] every log-weight is log p(x)."""
    x = plg.sample(40)
    model = plg.model("poe")
    exact = plg.exact_log_likelihood(x)
    lw = log_weights(model, x, K, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(lw, exact.expand_as(lw), atol=1e-8, rtol=1e-10)
    # one modality: (z, w_a) exact, w_b from r_b = p(w_b) (cross_private="prior"), so log p(x_a) exactly
    for name in plg.names:
        xm = {name: x[name]}
        lw = log_weights(model, xm, K, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(lw, plg.exact_log_likelihood(xm).expand_as(lw), atol=1e-8, rtol=1e-10)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_poe_objective_is_mvae_sum_of_exact_subset_terms_with_private_latents(plg, estimator):
    """Each MVAE term exact: the joint term log p(x), the unimodal term of x_m log p(x_m) (the w of
    the other modality, drawn from r = p and not reconstructed, adds log p(w) - log r(w) = 0)."""
    x = plg.sample(30, seed=2)
    model = plg.model("poe")
    exact = plg.exact_log_likelihood(x) + sum(plg.exact_log_likelihood({n: x[n]}) for n in plg.names)
    out = objective(model, x, estimator, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.value, exact, atol=1e-8, rtol=1e-10)


def test_auxiliary_prior_enters_the_bound_as_minus_its_kl(plg):
    """Given x_a alone, w_b ~ r_b = N(0, s^2) and the weight gains log p(w_b) - log r_b(w_b): the
    ELBO is log p(x_a) - KL(r_b || p) = log p(x_a) - (s^2 - 1 - log s^2) / 2, and IWAE(K) climbs
    back to log p(x_a) as K grows."""
    model = plg.model("poe", cross_private="auxiliary")
    s = 1.8
    with torch.no_grad():
        model.aux_log_scale.fill_(math.log(s))
    x = {"a": plg.sample(20, seed=3)["a"]}
    exact = plg.exact_log_likelihood(x)
    kl = 0.5 * (s**2 - 1 - math.log(s**2))
    b1 = bounds(model, x, 4000, generator=torch.Generator().manual_seed(0))
    # log p(w) - log r(w) = eps^2 (1 - s^2) / 2 + log s for w = s eps: sd 1.6 per sample, 0.025 per point
    torch.testing.assert_close(b1["elbo"], exact - kl, atol=0.1, rtol=0)
    assert abs((b1["elbo"] - exact).mean() + kl) < 0.025  # the mean of 20 points: sd 0.006
    iwae = [bounds(model, x, K, generator=torch.Generator().manual_seed(K))["iwae"].mean() for K in (1, 10, 1000)]
    assert iwae[0] < iwae[1] < iwae[2]
    assert abs(exact.mean() - iwae[2]) < 0.05 * kl  # (one draw of IWAE may land a little above log p(x))


@pytest.mark.parametrize("fusion", ["moe", "mopoe"])
def test_mixture_bounds_with_private_latents_are_valid_and_tighten(plg, fusion):
    x = plg.sample(500, seed=4)
    model = plg.model(fusion, cross_private="auxiliary")
    with torch.no_grad():
        model.aux_log_scale.fill_(math.log(0.7))
    exact = plg.exact_log_likelihood(x).mean()
    elbo = bounds(model, x, 1, generator=torch.Generator().manual_seed(0))["elbo"].mean()
    iwae = [bounds(model, x, K, generator=torch.Generator().manual_seed(K))["iwae"].mean() for K in (10, 300)]
    assert elbo < iwae[0] < iwae[1] < exact + 0.01
    assert exact - iwae[1] < 0.25 * (exact - elbo)


# ------------------------------------------------------------------ DReG over u
N_COPIES, N_REPEATS = 2000, 60


def _encoder_grads(model, fn, n=N_REPEATS):
    params = list(model.encoders.parameters()) + [model.aux_log_scale]
    out = []
    for _ in range(n):
        model.zero_grad()
        fn().backward()
        out.append(torch.cat([p.grad.flatten() for p in params]))
    g = torch.stack(out)
    return g.mean(0), g.std(0) / math.sqrt(n)


@pytest.mark.parametrize("fusion,bound", [("poe", "tight"), ("moe", "tight"), ("mopoe", "looser")])
def test_dreg_is_unbiased_for_the_iwae_gradient_with_private_latents(plg, fusion, bound):
    """z-scores of DReG minus IWAE encoder (and r_m) gradients over independent draws: a wrong
    encoder and r != p, so every part of the gradient is non-zero."""
    torch.manual_seed(0)
    model = plg.model(fusion, cross_private="auxiliary", shift=0.3)
    with torch.no_grad():
        model.aux_log_scale.fill_(math.log(0.6))
    one = plg.sample(1, seed=5)
    x = {k: v.expand(N_COPIES, -1) for k, v in one.items()}
    K = 3
    g_iwae, s_iwae = _encoder_grads(model, lambda: objective(model, x, "iwae", K, bound=bound).loss)
    g_dreg, s_dreg = _encoder_grads(model, lambda: objective(model, x, "dreg", K, bound=bound).loss)
    z = (g_dreg - g_iwae) / torch.sqrt(s_dreg**2 + s_iwae**2)
    assert z.abs().max() < 4.0, z
    assert (g_iwae.abs() > 4 * s_iwae).sum() >= 5  # the test sees real gradients, not noise


def test_laplace_moe_dreg_is_unbiased_with_private_latents():
    torch.manual_seed(1)
    model = tiny_model("moe", "laplace", n_modalities=2).double()
    with torch.no_grad():
        model.aux_log_scale.fill_(-0.4)
    one = tiny_data(1, n_modalities=2)
    x = {k: v.double().expand(N_COPIES, -1) for k, v in one.items()}
    g_iwae, s_iwae = _encoder_grads(model, lambda: objective(model, x, "iwae", 3).loss)
    g_dreg, s_dreg = _encoder_grads(model, lambda: objective(model, x, "dreg", 3).loss)
    keep = (s_iwae > 0) | (s_dreg > 0)  # parameters of dead ReLU units have no gradient at this point
    z = (g_dreg - g_iwae)[keep] / torch.sqrt(s_dreg**2 + s_iwae**2)[keep]
    assert z.abs().max() < 4.0, z


@pytest.mark.parametrize("estimator,K", [("dreg", 3), ("elbo", 1)])
def test_mopoe_subsampling_is_unbiased_with_private_latents(plg, estimator, K):
    """One of the three MoPoE components per data point: the mean gradient (encoders and r_m) and
    the mean value match the full looser bound's."""
    torch.manual_seed(5)
    model = plg.model("mopoe", cross_private="auxiliary", shift=0.3)
    with torch.no_grad():
        model.aux_log_scale.fill_(math.log(0.6))
    x = {k: v.expand(N_COPIES, -1) for k, v in plg.sample(1, seed=7).items()}
    full = "elbo" if estimator == "elbo" else "iwae"
    g_full, s_full = _encoder_grads(model, lambda: objective(model, x, full, K, bound="looser").loss)
    g_sub, s_sub = _encoder_grads(model, lambda: objective(model, x, estimator, K, bound="looser", subsample=1).loss)
    assert ((g_sub - g_full) / torch.sqrt(s_sub**2 + s_full**2)).abs().max() < 4.0
    with torch.no_grad():
        v_full = torch.stack([objective(model, x, full, K, bound="looser").value.mean() for _ in range(20)])
        v_sub = torch.stack([objective(model, x, estimator, K, bound="looser", subsample=1).value.mean()
                             for _ in range(20)])
    assert abs(v_sub.mean() - v_full.mean()) < 4 * math.sqrt(v_sub.var() / 20 + v_full.var() / 20)


# ------------------------------------------------------------------ the cross-modal path
def test_cross_modal_generation_takes_the_target_w_from_r_never_its_posterior(plg):
    """Decoders are linear, x_b = A_b z + B_b w_b + b_b with B_b orthogonal to A_b, so projecting a
    generation on B_b reads off the w_b it was decoded from."""
    model = plg.model("poe", cross_private="auxiliary")
    r_scale = 0.5
    with torch.no_grad():
        model.aux_log_scale.fill_(math.log(r_scale))
    x = plg.sample(6, seed=6)
    Bb = plg.B["b"][:, 0]

    def w_of(gen_b):  # (..., d_b) -> the w_b it was decoded from, (...)
        return (gen_b - plg.b["b"]) @ Bb / (Bb @ Bb)

    experts = model.encode(x)
    q_mean_b = experts.loc[1, :, 2]  # q(w_b | x_b)
    assert q_mean_b.abs().min() > 0.05  # so "w_b = 0" and "w_b from q" differ
    # mean: z from q(z | x_a), w_b the mode of r_b (0), whatever x_b is
    cross = model.generate({"a": x["a"]}, ["b"])["b"]
    torch.testing.assert_close(w_of(cross), torch.zeros(6, dtype=torch.float64), atol=1e-10, rtol=0)
    z_a = model.fuse_shared(model.encode({"a": x["a"]})).mean
    torch.testing.assert_close(cross, z_a @ plg.A["b"].T + plg.b["b"], atol=1e-10, rtol=0)
    # target given: w_b from q(w_b | x_b)
    own = model.generate(x, ["b"])["b"]
    torch.testing.assert_close(w_of(own), q_mean_b, atol=1e-10, rtol=0)
    # samples: w_b ~ r_b = N(0, 0.5^2), not q(w_b | x_b) (mean q_mean_b, sd 1/sqrt(P))
    samples = model.generate({"a": x["a"]}, ["b"], n_samples=4000, generator=torch.Generator().manual_seed(0))["b"]
    w = w_of(samples)  # (4000, 6)
    assert w.mean(0).abs().max() < 4 * r_scale / math.sqrt(4000)
    assert (w.std(0) / r_scale - 1).abs().max() < 0.06
    own = w_of(model.generate(x, ["b"], n_samples=4000, generator=torch.Generator().manual_seed(1))["b"])
    assert (own.mean(0) - q_mean_b).abs().max() < 4 * 0.5 / math.sqrt(4000)
    # decode_shared: w_b the mode of r_b, or a sample of r_b with a generator, or the w given
    z = torch.randn(4000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(w_of(model.decode_shared(z, ["b"])["b"]), torch.zeros(4000, dtype=torch.float64),
                               atol=1e-10, rtol=0)
    w = w_of(model.decode_shared(z, ["b"], generator=torch.Generator().manual_seed(3))["b"])
    assert abs(w.std() / r_scale - 1) < 0.06 and abs(w.mean()) < 4 * r_scale / math.sqrt(4000)
    given = torch.full((4000, 1), 0.7, dtype=torch.float64)
    torch.testing.assert_close(w_of(model.decode_shared(z, ["b"], w={"b": given})["b"]), given[:, 0], atol=1e-10, rtol=0)


def test_mixture_components_that_do_not_encode_x_b_ignore_it():
    """The training objective's cross-modal terms: perturbing x_b changes no part of component a's
    posterior over u (z and w_b alike) in MoE, nor of the MoPoE components without b."""
    for fusion in ("moe", "mopoe"):
        model = tiny_model(fusion, n_modalities=2)
        x = tiny_data(n_modalities=2)
        y = {"a": x["a"], "b": x["b"] + 3.0}
        p, q = model.posterior(x), model.posterior(y)
        for c, subset in enumerate(p.subsets):
            same = torch.equal(p.loc[c], q.loc[c]) and torch.equal(p.log_scale[c], q.log_scale[c])
            assert same == ("b" not in subset), (fusion, subset)


# ------------------------------------------------------------------ checkpoints
def test_old_checkpoints_load_with_private_dim_zero():
    ckpt = load_checkpoint("checkpoints/toy-mopoe.safetensors")
    assert ckpt.model.config.private_dim == 0 and ckpt.model.total_dim == ckpt.model.latent_dim
    from mmvae.checkpoint import read_metadata

    assert "private_dim" not in read_metadata("checkpoints/toy-mopoe.safetensors")["config"]


def test_private_checkpoint_round_trips_and_mismatches_are_caught(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = tiny_model("mopoe")
    with torch.no_grad():
        model.aux_log_scale.uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "p.safetensors"
    save_checkpoint(path, model)
    loaded = load_checkpoint(path).model
    assert loaded.config.to_dict() == model.config.to_dict()
    assert torch.equal(loaded.aux_log_scale, model.aux_log_scale)
    x = tiny_data()
    g = torch.Generator().manual_seed(0)
    a = model.generate({"a": x["a"]}, n_samples=3, generator=g)
    b = loaded.generate({"a": x["a"]}, n_samples=3, generator=g.manual_seed(0))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for change, message in (({"private_dim": 3}, "do not fit"), ({"private_dim": 0}, "do not fit"),
                            ({"cross_private": "prior"}, "unexpected"), ({"private_dim": -1}, "private_dim"),
                            ({"private_dim": 5000}, "private_dim must be from 0 to 1,024"),
                            ({"cross_private": "style"}, "cross_private")):
        config = {**json.loads(meta["config"]), **change}
        bad = tmp_path / "bad.safetensors"
        save_file(tensors, bad, metadata={**meta, "config": json.dumps(config)})
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(bad)


# ------------------------------------------------------------------ command line
def test_cli_trains_with_private_latents(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    assert main(["train", "--data", "toy", "--data-option", "n=200", "--fusion", "moe", "--estimator", "dreg",
                 "-K", "2", "--private-dim", "2", "--epochs", "1", "--hidden", "16", "--quiet",
                 "--out", str(out)]) == 0
    model = load_checkpoint(out).model
    assert model.config.private_dim == 2 and model.config.cross_private == "auxiliary"
    assert main(["evaluate", str(out), "--K", "1,3", "--json"]) == 0


def _exit_code(args):
    """main's return value, or the status of argparse's exit for a malformed option."""
    try:
        return main(args)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("value,message", [("-1", "--private-dim must be from 0 to 1,024"),
                                           ("2000", "--private-dim must be from 0 to 1,024"),
                                           ("two", "invalid int value")])
def test_cli_refuses_bad_private_dim_before_any_work(tmp_path, capsys, value, message):
    """Refused before the data is read: the data file does not exist and that is not what is said."""
    code = _exit_code(["train", "--data", str(tmp_path / "missing.npz"), "--private-dim", value,
                       "--out", str(tmp_path / "m.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "missing" not in err
    assert not (tmp_path / "m.safetensors").exists()


def test_cli_refuses_unknown_cross_private(tmp_path, capsys):
    code = _exit_code(["train", "--cross-private", "style", "--out", str(tmp_path / "m.safetensors")])
    assert code == 2 and "invalid choice: 'style'" in capsys.readouterr().err


# ------------------------------------------------------------------ the class stays in z
def _shared_class_data(n, seed):
    """Two 8-D views of one of 4 classes: x_m = P_m e_k + S_m s_m + 0.1 noise, with e_k the class's
    2-D code (shared by construction) and s_m ~ N(0, 1.5^2 I_2) a style of x_m alone."""
    from mmvae.data import MultimodalData

    g, maps = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(100)
    k = torch.randint(4, (n,), generator=g)
    codes = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    x = {}
    for m in ("a", "b"):
        P, S = torch.randn(2, 8, generator=maps), torch.randn(2, 8, generator=maps)
        x[m] = codes[k] @ P + (1.5 * torch.randn(n, 2, generator=g)) @ S + 0.1 * torch.randn(n, 8, generator=g)
    return MultimodalData(x, k)


def test_private_latents_do_not_leak_the_shared_class():
    """MoE, trained on the ELBO, with private latents of twice the style's size (room for the class
    too): a linear classifier reads the class from the posterior means of z (> 0.9) but not from
    those of w_m (0.33 and 0.34 here, seeds 1 and 2: <= 0.37; chance is 0.25). Without MMVAE+'s
    cross-modal term, fusion='poe' (no term decodes x_b from another modality's z) or w_m from
    q(w_m | x_m) in every component, w_m reads the class (0.996 and 1.0; 0.996 and 0.996); with
    estimator='dreg' the means of w_b read 0.90 (the ELBO keeps w cleaner here)."""
    from sklearn.linear_model import LogisticRegression

    from mmvae import fit

    train, test = _shared_class_data(2000, 0), _shared_class_data(1000, 1)
    mods = [ModalityConfig(m, (8,), likelihood_scale=None, network={"type": "mlp", "hidden": [64]}) for m in "ab"]
    model = build_model(ModelConfig(mods, latent_dim=2, fusion="moe", private_dim=4), seed=0)
    fit(model, train, test, estimator="elbo", K=4, epochs=20, batch_size=128, lr=3e-3, seed=0, device="cpu")
    with torch.no_grad():
        e_train, e_test = model.encode(train.modalities), model.encode(test.modalities)
    for i, m in enumerate(e_test.names):
        acc = {}
        for part, cols in (("z", slice(0, 2)), ("w", slice(2, 6))):
            clf = LogisticRegression(max_iter=1000).fit(e_train.loc[i, :, cols].numpy(), train.labels.numpy())
            acc[part] = clf.score(e_test.loc[i, :, cols].numpy(), test.labels.numpy())
        assert acc["z"] > 0.9 and acc["w"] < 0.45, (m, acc)
