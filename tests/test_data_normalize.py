"""A checkpoint scores new data with its own training statistics, every point of a file, and
reports log-likelihoods in the data's own units (issues 16 and 8 item 4)."""
import json
import math

import numpy as np
import torch

from mmvae import ModalityConfig, ModelConfig, MultimodalVAE, save_checkpoint
from mmvae.cli import main
from mmvae.data import load_npz
from mmvae.data.normalize import Normalizer
from tests.helpers import LinearGaussian

FAST = ["--epochs", "1", "--quiet", "--hidden", "16", "--batch-size", "64"]


def _impedance_npz(path, n=300, shift_si=0.0, seed=0):
    from mmvae.diagnostics import rock_physics_si

    rng = np.random.default_rng(seed)
    ai = 5.0 + 3.0 * rng.random((n, 1)) + 0.2 * rng.standard_normal((n, 8))
    si = rock_physics_si(ai) * 1.1 + 0.05 * rng.standard_normal((n, 8)) + shift_si
    np.savez(path, AI=ai.astype(np.float32), SI=si.astype(np.float32))


def test_shifting_the_scored_target_shifts_the_error_by_that_constant(tmp_path, capsys):
    _impedance_npz(tmp_path / "train.npz", seed=0)
    _impedance_npz(tmp_path / "test.npz", n=200, seed=1)
    _impedance_npz(tmp_path / "shifted.npz", n=200, seed=1, shift_si=0.3)
    ckpt = tmp_path / "m.safetensors"
    assert main(["train", "--data", str(tmp_path / "train.npz"), "--out", str(ckpt), *FAST]) == 0
    reports = []
    for f in ("test.npz", "shifted.npz"):
        capsys.readouterr()
        assert main(["evaluate", str(ckpt), "--data", str(tmp_path / f), "--parts", "coherence", "--json",
                     "--K", "1"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    a, b = (r["diagnostics"]["impedance"] for r in reports)
    assert a["n_values"] == b["n_values"] == 200 * 8
    # the prediction ignores the scored SI, so (prediction - truth) moves by exactly -0.3
    assert abs((b["bias"] - a["bias"]) - (-0.3)) < 1e-4
    assert abs((b["bias_rock_physics"] - a["bias_rock_physics"]) - (-0.3)) < 1e-4
    # the predictive distribution's calibration is reported beside the point errors
    assert 0 <= a["coverage_50"] <= a["coverage_80"] <= 1 and a["crps"] > 0 and a["predictive_samples"] == 32
    # and the statistics used are the checkpoint's, reported in the JSON
    assert reports[0]["units"]["normalization"] == reports[1]["units"]["normalization"]


def test_a_file_given_for_evaluation_is_scored_whole(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", a=rng.normal(size=(1000, 3)), b=rng.normal(size=(1000, 2)))
    ckpt = tmp_path / "m.safetensors"
    assert main(["train", "--data", str(tmp_path / "d.npz"), "--out", str(ckpt), *FAST]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--data", str(tmp_path / "d.npz"), "--json", "--K", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["n"] == 1000 and report["data"]["split"] == "all"
    assert main(["evaluate", str(ckpt), "--data", str(tmp_path / "d.npz"), "--split", "test", "--json", "--K", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["n"] == 150
    assert main(["evaluate", str(ckpt), "--json", "--K", "1"]) == 0  # no --data: the checkpoint's test split
    assert json.loads(capsys.readouterr().out)["data"]["n"] == 150


def _plug_in_model(lg: LinearGaussian, a: float, c: float, specs) -> MultimodalVAE:
    """The linear-Gaussian model of x = a (W z + b + sigma eps) + c in the units standardised with
    ``specs``, with exact experts: built-in MLP networks with no hidden layer (linear maps)."""
    mods = []
    for k in lg.names:
        s = specs[k]
        mods.append(ModalityConfig(k, (lg.W[k].shape[0],), "gaussian", a * lg.sigma[k] / s.scale,
                                   network={"type": "mlp", "hidden": []}))
    model = MultimodalVAE(ModelConfig(mods, latent_dim=2, fusion="poe"))
    with torch.no_grad():
        for k in lg.names:
            s = specs[k]
            W = a * lg.W[k] / s.scale  # (d, 2) in standardised units
            b = (a * lg.b[k] + c - s.shift) / s.scale
            sig = a * lg.sigma[k] / s.scale
            var = 1.0 / (1.0 + torch.diagonal(W.T @ W) / sig ** 2)  # exact unimodal posterior variance
            A = var[:, None] * W.T / sig ** 2  # posterior mean = A (x - b)
            enc, dec = model.encoders[k].net[0], model.decoders[k].net[0]
            enc.weight.copy_(torch.cat([A, torch.zeros_like(A)]).float())
            enc.bias.copy_(torch.cat([-A @ b, torch.log(var / (1 - var))]).float())  # N(a, sigmoid(b))
            dec.weight.copy_(W.float())
            dec.bias.copy_(b.float())
    return model


def test_log_likelihood_in_the_data_units_matches_the_exact_value(tmp_path, capsys):
    lg = LinearGaussian(dims=(4, 5), sigmas=(0.5, 0.8), seed=3)
    a, c = 30.0, 50.0  # the data's own units: far from standardised
    x = {k: a * v + c for k, v in lg.sample(1000, seed=4).items()}
    path = tmp_path / "lg.npz"
    np.savez(path, **{k: v.numpy() for k, v in x.items()})
    specs = load_npz(path).specs  # training-split statistics, as `train --data lg.npz` computes them
    model = _plug_in_model(lg, a, c, specs)
    ckpt = tmp_path / "plug.safetensors"
    save_checkpoint(ckpt, model, {"name": str(path), "options": {}, "seed": 0,
                                  "specs": {k: s.to_dict() for k, s in specs.items()}})
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--data", str(path), "--parts", "loglik", "--n-samples", "64", "--json",
                 "--K", "1,10"]) == 0
    report = json.loads(capsys.readouterr().out)
    # exact log p(x) of the data in its own units: N(a b + c, a^2 (W W^T + sigma^2 I))
    names = lg.names
    W = torch.cat([a * lg.W[k] for k in names])
    mean = torch.cat([a * lg.b[k] + c for k in names])
    cov = W @ W.T + torch.diag(torch.cat([torch.full((lg.W[k].shape[0],), (a * lg.sigma[k]) ** 2,
                                                     dtype=torch.float64) for k in names]))
    exact = torch.distributions.MultivariateNormal(mean, cov).log_prob(torch.cat([x[k] for k in names], 1))
    joint = report["diagnostics"]["loglik"]["joint"]
    assert joint["n"] == 1000 and joint["units"] == "data"
    tol = 4 * joint["mc_stderr"] + 2e-3
    assert abs(joint["mean"] - float(exact.mean())) < tol, (joint["mean"], float(exact.mean()))
    per_point = np.asarray(joint["per_point"])
    assert np.max(np.abs(per_point - exact.numpy())) < 1e-2
    # the standardised figure is still there and differs by the Jacobian sum_m -d_m log scale_m
    jac = sum(-lg.W[k].shape[0] * math.log(specs[k].scale) for k in names)
    assert abs(report["units"]["log_jacobian"] - jac) < 1e-9 and abs(jac) > 10
    assert abs(joint["mean_standardised"] + jac - joint["mean"]) < 1e-6
    # with exact experts the ELBO is the exact log-likelihood too, in the same units
    for row in report["bounds"]:
        assert abs(row["elbo"] - float(exact.mean())) < 2e-3
    # a marginal in data units: log p(x_0) exact
    m0 = report["diagnostics"]["loglik"]["marginal"][names[0]]
    cov0 = (a * lg.W[names[0]]) @ (a * lg.W[names[0]]).T + (a * lg.sigma[names[0]]) ** 2 * torch.eye(4, dtype=torch.float64)
    ex0 = torch.distributions.MultivariateNormal(a * lg.b[names[0]] + c, cov0).log_prob(x[names[0]])
    assert abs(m0["mean"] - float(ex0.mean())) < 4 * m0["mc_stderr"] + 2e-3


def test_normalizer_round_trips_and_ignores_the_scored_data_statistics():
    from mmvae.data import ModalitySpec

    norm = Normalizer.from_specs({"a": ModalitySpec("a", (3,), shift=10.0, scale=4.0)})
    x = torch.tensor([[10.0, 14.0, 2.0]])
    prepared = norm.prepare({"a": x})
    assert torch.allclose(prepared.modalities["a"], torch.tensor([[0.0, 1.0, -2.0]]))
    assert torch.allclose(norm.to_physical("a", prepared.modalities["a"]), x)
    shifted = norm.prepare({"a": x + 5.0})
    assert torch.allclose(shifted.modalities["a"] - prepared.modalities["a"], torch.full((1, 3), 1.25))
    assert abs(norm.log_jacobian() - (-3 * math.log(4.0))) < 1e-12
