"""Training: every fusion x estimator improves held-out IWAE; reproducible; stops cleanly on NaN."""
import pytest
import torch
from torch import nn

from mmvae import ModalityConfig, ModelConfig, Trainer, TrainConfig, build_model, fit
from mmvae.model import MultimodalVAE
from mmvae.training import evaluate_bounds
from tests.helpers import small_multimodal_data


def _model(fusion, latent="gaussian", seed=0):
    mods = [ModalityConfig("a", (3,), likelihood_scale=0.1, network={"type": "mlp", "hidden": [32]}),
            ModalityConfig("b", (3,), likelihood_scale=0.1, network={"type": "mlp", "hidden": [32]})]
    return build_model(ModelConfig(mods, latent_dim=2, latent=latent, fusion=fusion), seed=seed)


@pytest.mark.parametrize("fusion", ["poe", "moe", "mopoe"])
@pytest.mark.parametrize("estimator", ["elbo", "iwae", "dreg", "stl"])
def test_every_fusion_and_estimator_trains(fusion, estimator):
    train, held_out = small_multimodal_data(400)
    model = _model(fusion)
    torch.manual_seed(0)
    before = evaluate_bounds(model, held_out, K=10)["iwae"]
    history = fit(model, train, held_out, estimator=estimator, K=4, epochs=6, batch_size=64, lr=3e-3, device="cpu")
    torch.manual_seed(0)
    after = evaluate_bounds(model, held_out, K=10)["iwae"]
    assert history.stopped is None
    assert after > before + 1.0, (before, after)
    rec = history.records[-1]
    assert set(rec) >= {"train_loss", "train_elbo", "train_iwae", "val_elbo", "val_iwae", "ess", "seconds"}
    assert 1.0 < rec["ess"] < 4.0  # weights neither degenerate nor all equal


def test_recorded_ess_is_the_effective_sample_size_of_the_training_weights():
    """Exact experts of a linear-Gaussian PoE: each of MVAE's terms (joint, each modality) has
    every log-weight equal to its log p(x_S), so its K = 4 weights are equal and the recorded ESS
    is exactly 4 (per term, not over all 3 K = 12 weights); wrong experts give less."""
    from mmvae.data import MultimodalData
    from tests.helpers import LinearGaussian

    lg = LinearGaussian()
    data = MultimodalData(lg.sample(60), None)
    h = fit(lg.model("poe"), data, None, K=4, epochs=1, batch_size=20, lr=1e-12, device="cpu")
    assert abs(h.records[0]["ess"] - 4.0) < 1e-6
    h = fit(lg.model("poe", mean_shift=0.5, scale_factor=1.5), data, None, K=4, epochs=1, batch_size=20, lr=1e-12,
            device="cpu")
    assert 1.0 < h.records[0]["ess"] < 4.0 - 1e-3


def test_laplace_moe_trains():
    train, held_out = small_multimodal_data(400)
    model = _model("moe", latent="laplace")
    torch.manual_seed(0)
    before = evaluate_bounds(model, held_out, K=10)["iwae"]
    fit(model, train, held_out, estimator="dreg", K=4, epochs=6, batch_size=64, lr=3e-3, device="cpu", bound="looser")
    torch.manual_seed(0)
    assert evaluate_bounds(model, held_out, K=10)["iwae"] > before + 1.0


def test_same_seed_same_result():
    train, val = small_multimodal_data(200)
    runs = []
    for _ in range(2):
        model = _model("mopoe", seed=3)
        h = fit(model, train, val, estimator="dreg", K=3, epochs=2, batch_size=50, seed=5, device="cpu")
        runs.append((h.column("val_iwae"), [p.detach().clone() for p in model.parameters()]))
    assert runs[0][0] == runs[1][0]
    for p, q in zip(runs[0][1], runs[1][1]):
        assert torch.equal(p, q)


class _NaNGradient(torch.autograd.Function):
    """Identity forward, NaN backward: a finite loss with a NaN gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


class PoisonedDecoder(nn.Module):
    """From the ``poison_after``-th call on: returns NaN, or (``gradient_only``) finite outputs
    whose gradient is NaN."""

    def __init__(self, inner: nn.Module, poison_after: int, gradient_only: bool = False) -> None:
        super().__init__()
        self.inner, self.calls, self.poison_after, self.gradient_only = inner, 0, poison_after, gradient_only

    def forward(self, z):
        self.calls += 1
        out = self.inner(z)
        if self.calls < self.poison_after:
            return out
        return _NaNGradient.apply(out) if self.gradient_only else out * float("nan")


@pytest.mark.parametrize("gradient_only", [False, True])
def test_nan_stops_training_and_keeps_the_last_good_weights(gradient_only):
    train, val = small_multimodal_data(200)
    base = _model("poe")
    decoders = {n: PoisonedDecoder(base.decoders[n], 10**9, gradient_only) for n in base.names}
    model = MultimodalVAE(base.config, encoders=dict(base.encoders), decoders=decoders)
    trainer = Trainer(model, train, val, TrainConfig(epochs=3, batch_size=50, device="cpu"))
    trainer.run_epoch()
    good = [p.detach().clone() for p in model.parameters()]
    decoders["a"].poison_after = decoders["a"].calls + 1
    history = trainer.fit()
    assert history.stopped and "last good weights" in history.stopped and "epoch 2, step 1:" in history.stopped
    for p, q in zip(model.parameters(), good):
        assert torch.equal(p, q)
    assert len(history.records) == 1


class NaNGradient(torch.autograd.Function):
    """Identity forward; the backward pass returns NaN while ``armed``: a finite loss, a NaN gradient."""

    armed = False

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan") if NaNGradient.armed else grad


class NaNGradientEncoder(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        loc, log_scale = self.inner(x)
        return NaNGradient.apply(loc), log_scale


def test_a_nan_gradient_with_a_finite_loss_stops_before_the_optimiser_step():
    train, val = small_multimodal_data(200)
    base = _model("poe")
    encoders = {n: NaNGradientEncoder(base.encoders[n]) for n in base.names}
    model = MultimodalVAE(base.config, encoders=encoders, decoders=dict(base.decoders))
    trainer = Trainer(model, train, val, TrainConfig(epochs=3, batch_size=50, device="cpu"))
    try:
        trainer.run_epoch()
        good = [p.detach().clone() for p in model.parameters()]
        adam_steps = [int(trainer.optimizer.state[p]["step"]) for p in model.parameters()]
        NaNGradient.armed = True
        history = trainer.fit()
    finally:
        NaNGradient.armed = False
    assert history.stopped and "gradient became NaN or inf" in history.stopped and "epoch 2, step 1" in history.stopped
    assert "the loss became" not in history.stopped  # the loss was finite: the gradient check caught it
    for p, q in zip(model.parameters(), good):
        assert torch.equal(p, q)
    assert [int(trainer.optimizer.state[p]["step"]) for p in model.parameters()] == adam_steps
    assert len(history.records) == 1


def test_bad_training_options_are_rejected():
    with pytest.raises(ValueError, match="unknown estimator"):
        TrainConfig(estimator="vimco")
    with pytest.raises(ValueError, match="K must be a positive integer"):
        TrainConfig(K=0)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        TrainConfig(lr=-1.0)
    if not torch.cuda.is_available():  # where there is a GPU, cuda:0 is a valid choice
        with pytest.raises(ValueError, match="no CUDA GPU"):
            Trainer(_model("poe"), *small_multimodal_data(50), device="cuda:0")
    with pytest.raises(ValueError, match="unknown device"):
        Trainer(_model("poe"), *small_multimodal_data(50), device="tpu")


def test_built_in_encoders_parameterise_the_unimodal_posterior():
    """prior x expert = N(a, sigmoid(b)) exactly, for the network outputs (a, b)."""
    from mmvae.fusion import product_of_experts
    from mmvae.networks import expert_output

    h = torch.randn(5, 4, dtype=torch.float64) * 3
    loc, log_scale = expert_output(h, 2, prior_product=True)
    f_loc, f_ls = product_of_experts(loc[None], log_scale[None], torch.tensor([[True]]))
    torch.testing.assert_close(f_loc[0], h[:, :2])
    torch.testing.assert_close((2 * f_ls[0]).exp(), torch.sigmoid(h[:, 2:]))


def test_elbo_training_does_not_collapse_the_latent_on_digits():
    """With the expert parameterised directly, ELBO training on digit halves collapsed every
    unimodal posterior onto the prior (KL 0.00 nats); both modalities must stay informative."""
    from mmvae import config_for_specs
    from mmvae.data import load_dataset

    data = load_dataset("digits-halves")
    model = build_model(config_for_specs(data.specs, latent_dim=2, fusion="poe",
                                         network={"type": "mlp", "hidden": [64, 64]}))
    fit(model, data.train, None, estimator="elbo", K=1, epochs=40, device="cpu")
    x = data.test.modalities
    for name in model.names:
        post = model.posterior({name: x[name]})
        var, mu = (2 * post.log_scale[0]).exp(), post.loc[0]
        kl = float((0.5 * (var + mu**2 - 1 - var.log())).sum(-1).mean().detach())
        assert kl > 0.3, (name, kl)


def test_inputs_in_another_dtype_or_outside_a_bernoulli_range_are_rejected_clearly():
    model = _model("poe")
    with pytest.raises(ValueError, match="is torch.float64 but the model is torch.float32"):
        model.posterior({"a": torch.zeros(2, 3, dtype=torch.float64)})
    mods = [ModalityConfig("img", (4,), likelihood="bernoulli"), ModalityConfig("v", (2,))]
    bern = build_model(ModelConfig(mods))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        bern.posterior({"img": torch.full((2, 4), 3.0)})


def test_fit_casts_the_data_to_the_model_dtype():
    train, val = small_multimodal_data(100)
    model = _model("moe").double()
    history = fit(model, train, val, epochs=1, K=2, device="cpu")
    assert history.stopped is None and len(history.records) == 1


def test_custom_decoders_without_encoders_are_refused_clearly():
    base = _model("poe")
    with pytest.raises(ValueError, match="custom decoder needs a custom encoder"):
        MultimodalVAE(base.config, decoders={"a": nn.Linear(2, 3)})
    with pytest.raises(ValueError, match="custom encoder needs a custom decoder"):
        MultimodalVAE(base.config, encoders={"a": base.encoders["a"]})
    with pytest.raises(ValueError, match=r"unknown modalities \['c'\]"):
        MultimodalVAE(base.config, encoders={"c": base.encoders["a"]}, decoders={"c": nn.Linear(2, 3)})


@pytest.mark.parametrize("kind", ["gaussian", "laplace"])
def test_a_fixed_likelihood_scale_is_exact_in_a_float64_model(kind):
    mods = [ModalityConfig("a", (3,), likelihood=kind, likelihood_scale=0.8)]
    model = build_model(ModelConfig(mods)).double()
    lik = model.likelihoods["a"]
    g = torch.Generator().manual_seed(0)
    mu, x = torch.randn(2, 4, 3, generator=g, dtype=torch.float64)
    dist = torch.distributions.Normal(mu, 0.8) if kind == "gaussian" else torch.distributions.Laplace(mu, 0.8)
    exact = dist.log_prob(x).sum(-1)
    assert lik.scale() == 0.8
    torch.testing.assert_close(lik.log_prob(mu, x), exact, rtol=1e-14, atol=1e-14)


def _toy_run(seed=4, compile=False, epochs=2, batch_size=64):
    from mmvae.data import load_dataset

    data = load_dataset("toy", seed=0)
    train = data.train.subset(slice(0, 256))
    model = build_model(config_for_specs_small(data.specs), seed=seed)
    h = fit(model, train, data.val.subset(slice(0, 64)), estimator="dreg", K=3, epochs=epochs, batch_size=batch_size,
            seed=seed, device="cpu", compile=compile)
    return h, [p.detach().clone() for p in model.parameters()]


def config_for_specs_small(specs):
    from mmvae import config_for_specs

    return config_for_specs(specs, latent_dim=2, fusion="mopoe", network={"type": "mlp", "hidden": [16]})


def test_ten_threads_with_one_seed_give_the_result_of_one_alone_and_leave_the_global_rng_alone():
    """Trainings own their generators: concurrent threads cannot disturb each other's randomness."""
    from concurrent.futures import ThreadPoolExecutor

    state = torch.get_rng_state()
    alone = _toy_run()
    with ThreadPoolExecutor(10) as pool:
        runs = list(pool.map(lambda _: _toy_run(), range(10)))
    assert torch.equal(torch.get_rng_state(), state)
    for h, params in runs:
        assert h.column("val_iwae") == alone[0].column("val_iwae")
        assert all(torch.equal(p, q) for p, q in zip(params, alone[1]))
    other = _toy_run(seed=5)
    assert other[0].column("val_iwae") != alone[0].column("val_iwae")  # the seed matters


def test_the_compiled_step_compiles_once_and_gives_the_eager_losses():
    """torch.compile (the aot_eager backend: the same graph capture and compiled autograd as
    inductor, without code generation, so the test stays fast): one graph, no graph break, no
    recompilation after the first step (a short last batch runs eagerly), the eager losses."""
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch._dynamo.config.patch(error_on_recompile=True):
        compiled, p_compiled = _toy_run(compile="aot_eager", batch_size=60)  # 256 rows: a last batch of 16
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1
    assert not torch._dynamo.utils.counters["graph_break"]
    assert compiled.compile_seconds is not None and compiled.compile_seconds > 0
    eager, p_eager = _toy_run(batch_size=60)
    assert eager.compile_seconds is None
    for key in ("train_loss", "val_iwae", "ess"):
        torch.testing.assert_close(compiled.column(key), eager.column(key), rtol=1e-5, atol=1e-6)
    for p, q in zip(p_compiled, p_eager):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_mopoe_with_subsampled_components_trains():
    train, held_out = small_multimodal_data(400)
    model = _model("mopoe")
    before = evaluate_bounds(model, held_out, K=10, generator=torch.Generator().manual_seed(0))["iwae"]
    history = fit(model, train, held_out, estimator="dreg", K=4, bound="looser", subsample=1, epochs=6,
                  batch_size=64, lr=3e-3, device="cpu")
    after = evaluate_bounds(model, held_out, K=10, generator=torch.Generator().manual_seed(0))["iwae"]
    assert history.stopped is None and after > before + 1.0, (before, after)
    with pytest.raises(ValueError, match="looser"):
        fit(_model("mopoe"), train, None, estimator="iwae", K=4, subsample=1, epochs=1, device="cpu")


def test_a_training_step_never_reads_a_tensor_on_the_host(monkeypatch):
    """Loss, ESS and the non-finite flag stay on the device during an epoch (read once at its end)."""
    train, val = small_multimodal_data(128)
    trainer = Trainer(_model("mopoe"), train, val, TrainConfig(estimator="dreg", K=3, batch_size=32, device="cpu"))
    batches = list(trainer.train.batches(32))

    def refuse(*args, **kwargs):
        raise AssertionError("host sync inside a training step")

    for name in ("item", "tolist", "__float__", "__bool__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    for batch in batches:
        trainer._step(batch)
    monkeypatch.undo()
    assert trainer._bad.item() == 0.0
    assert trainer.run_epoch() is not None
