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


class PoisonedDecoder(nn.Module):
    """Returns NaN from the ``poison_after``-th call on."""

    def __init__(self, inner: nn.Module, poison_after: int) -> None:
        super().__init__()
        self.inner, self.calls, self.poison_after = inner, 0, poison_after

    def forward(self, z):
        self.calls += 1
        out = self.inner(z)
        return out * float("nan") if self.calls >= self.poison_after else out


def test_nan_stops_training_and_keeps_the_last_good_weights():
    train, val = small_multimodal_data(200)
    base = _model("poe")
    decoders = {n: PoisonedDecoder(base.decoders[n], 10**9) for n in base.names}
    model = MultimodalVAE(base.config, encoders=dict(base.encoders), decoders=decoders)
    trainer = Trainer(model, train, val, TrainConfig(epochs=3, batch_size=50, device="cpu"))
    trainer.run_epoch()
    good = [p.detach().clone() for p in model.parameters()]
    decoders["a"].poison_after = decoders["a"].calls + 1
    history = trainer.fit()
    assert history.stopped and "last good weights" in history.stopped and "epoch 2" in history.stopped
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
