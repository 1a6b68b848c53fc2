"""The command line: every fusion x estimator and every built-in dataset trains and evaluates."""
import json
import subprocess
import sys

import numpy as np
import pytest

from mmvae.cli import main

FAST = ["--epochs", "1", "--batch-size", "128", "--quiet", "--hidden", "32"]


@pytest.mark.parametrize("fusion", ["poe", "moe", "mopoe"])
@pytest.mark.parametrize("estimator", ["elbo", "iwae", "dreg", "stl"])
def test_train_and_evaluate_every_fusion_and_estimator(tmp_path, capsys, fusion, estimator):
    out = tmp_path / "m.safetensors"
    assert main(["train", "--data", "toy", "--data-option", "n=300", "--fusion", fusion, "--estimator", estimator,
                 "-K", "3", "--out", str(out), *FAST]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--K", "1,5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["fusion"] == fusion and [r["K"] for r in report["bounds"]] == [1, 5]
    assert all(np.isfinite(r["elbo"]) and np.isfinite(r["iwae"]) for r in report["bounds"])


@pytest.mark.parametrize("data,options", [
    ("toy", ["n_modalities=3", "n=300"]),
    ("toy", ["nonlinear=true", "n=300"]),
    ("digits-halves", []),
    ("digits-poly", ["n_modalities=3"]),
    ("impedance", ["n=200"]),
    ("impedance", ["n=200", "seismic=true"]),
    ("wells", []),
])
def test_every_builtin_dataset_trains_through_the_cli(tmp_path, capsys, data, options):
    out = tmp_path / "m.safetensors"
    args = ["train", "--data", data, "--out", str(out), "--fusion", "mopoe", "-K", "2", *FAST]
    for o in options:
        args += ["--data-option", o]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--K", "1,3"]) == 0
    assert "IWAE(K)" in capsys.readouterr().out


def test_bring_your_own_npz(tmp_path, capsys):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 2))
    path = tmp_path / "mine.npz"
    np.savez(path, left=z @ rng.normal(size=(2, 6)), right=np.tanh(z @ rng.normal(size=(2, 4))),
             labels=(z[:, 0] > 0).astype(int))
    out = tmp_path / "m.safetensors"
    assert main(["train", "--data", str(path), "--out", str(out), *FAST]) == 0
    assert main(["evaluate", str(out), "--K", "2"]) == 0


@pytest.mark.parametrize("args,message", [
    (["train", "--out", "x.safetensors", "--epochs", "abc"], "--epochs: expected a positive integer"),
    (["train", "--out", "x.safetensors", "--fusion", "sum"], "invalid choice: 'sum'"),
    (["train", "--out", "x.safetensors", "--data", "nope"], "unknown dataset 'nope'"),
    (["train", "--out", "x.safetensors", "--data", "missing.npz"], "no such file"),
    (["train", "--out", "x.safetensors", "--latent", "laplace", "--fusion", "poe"], "needs Gaussian latents"),
    (["evaluate", "missing.safetensors"], "no such checkpoint"),
])
def test_bad_input_gives_one_clear_line(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "mmvae", *args], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmvae: error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_documents_every_option():
    proc = subprocess.run([sys.executable, "-m", "mmvae", "train", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for option in ("--data", "--fusion", "--estimator", "--K", "--bound", "--latent-dim", "--latent", "--network",
                   "--likelihood", "--epochs", "--batch-size", "--lr", "--seed", "--device", "--out"):
        assert option in proc.stdout


def test_bad_seed_and_bad_data_options_give_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mmvae", "train", "--out", "x.safetensors", "--seed", "-3"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "--seed" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    path = tmp_path / "d.npz"
    np.savez(path, a=np.arange(30.0).reshape(10, 3), b=np.ones((10, 2)))
    for option, message in (("fractions=0.5", "option fractions"), ("likelihood=bernoulli", "outside [0, 1]")):
        proc = subprocess.run([sys.executable, "-m", "mmvae", "train", "--out", "x.safetensors", "--data", str(path),
                               "--data-option", option], capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
