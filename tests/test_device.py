"""The core paths on the test device (``MMVAE_TEST_DEVICE``, default cpu; cuda in
benchmarks/gpu_check.sh): known answers computed on the CPU, the package's figures on the device.

Nothing here depends on the device's random stream: the exact linear-Gaussian model makes every
importance weight equal to log p(x) whatever the noise, and the training checks ask only for
finite, improving bounds and for everything to stay on the device.
"""
from __future__ import annotations

import pytest
import torch

from mmvae import Trainer, bounds, build_model, config_for_specs, objective
from mmvae.checkpoint import load_checkpoint, save_checkpoint
from mmvae.data import MultimodalData
from mmvae.diagnostics import estimate_log_likelihood
from tests.helpers import LinearGaussian, small_multimodal_data

FUSIONS = ("poe", "moe", "mopoe")
ESTIMATORS = ("elbo", "iwae", "dreg", "stl")


def _on(x: dict, device) -> dict:
    return {k: v.to(device) for k, v in x.items()}


@pytest.mark.parametrize("K", [1, 7])
def test_exact_model_bounds_and_loglik_on_device(device, K):
    lg = LinearGaussian()
    x = lg.sample(64)
    exact = lg.exact_log_likelihood(x)  # on the CPU, in closed form
    model = lg.model("poe").to(device)
    b = bounds(model, _on(x, device), K)
    assert b["iwae"].device.type == device.type
    torch.testing.assert_close(b["elbo"].cpu(), exact, atol=1e-6, rtol=1e-8)
    torch.testing.assert_close(b["iwae"].cpu(), exact, atol=1e-6, rtol=1e-8)
    ll = estimate_log_likelihood(model, MultimodalData(_on(x, device)), 50)
    torch.testing.assert_close(ll.per_point, exact, atol=1e-6, rtol=1e-8)


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_objective_backpropagates_on_device(device, fusion, estimator):
    train, _ = small_multimodal_data(64)
    cfg = config_for_specs(_specs(train), latent_dim=2, fusion=fusion)
    model = build_model(cfg, seed=0).to(device)
    out = objective(model, _on(train.modalities, device), estimator, K=3)
    out.loss.backward()
    assert out.loss.device.type == device.type and torch.isfinite(out.loss)
    assert out.log_weights.device.type == device.type
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and g.device.type == device.type and torch.isfinite(g).all()
                         for g in grads)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_training_stays_on_device_and_improves(device, fusion, tmp_path):
    train, val = small_multimodal_data(300)
    cfg = config_for_specs(_specs(train), latent_dim=2, fusion=fusion)
    model = build_model(cfg, seed=0)
    trainer = Trainer(model, train, val, estimator="iwae", K=2, epochs=6, batch_size=64, lr=3e-3,
                      device=str(device), seed=0)
    assert all(v.device.type == device.type for v in trainer.train.modalities.values())  # moved once
    history = trainer.fit()
    assert history.stopped is None
    iwae = history.column("val_iwae")
    assert all(torch.isfinite(torch.tensor(iwae)))
    assert iwae[-1] > iwae[0]
    assert all(p.device.type == device.type for p in trainer.model.parameters())
    # a checkpoint of a device model loads back onto the device with the same weights
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, trainer.model.to("cpu"), {}, {}, history.to_dict())
    back = load_checkpoint(path, device=device).model
    for (k, a), (_, b) in zip(trainer.model.state_dict().items(), back.state_dict().items()):
        assert b.device.type == device.type
        torch.testing.assert_close(b.cpu(), a.cpu(), msg=k)


def _specs(data: MultimodalData) -> dict:
    from mmvae.data import ModalitySpec

    return {k: ModalitySpec(k, tuple(v.shape[1:])) for k, v in data.modalities.items()}
