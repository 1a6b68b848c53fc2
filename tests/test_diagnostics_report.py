"""The full diagnostics JSON through ``python -m mmvae evaluate --json --parts ...``."""
import json
import math

import pytest

from mmvae.cli import main


@pytest.fixture(scope="module")
def toy_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("diag") / "toy.safetensors"
    rc = main(["train", "--data", "toy", "--data-option", "n=300", "--fusion", "mopoe", "--epochs", "2",
               "--out", str(path), "--quiet", "--device", "cpu", "--hidden", "16"])
    assert rc == 0
    return str(path)


def test_evaluate_json_with_every_part(toy_checkpoint, capsys):
    rc = main(["evaluate", toy_checkpoint, "--json", "--K", "1,5", "--parts", "all", "--n-samples", "30",
               "--points", "0,2", "--device", "cpu"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    d = report["diagnostics"]
    assert set(d["parts"]) == {"bounds", "loglik", "overlap", "embedding", "coherence", "snr"}
    b = d["bounds"]
    assert [r["K"] for r in b["rows"]] == [1, 5] and b["exact"] is not None and "chain_holds" in b
    assert math.isfinite(d["loglik"]["joint"]["mean"]) and len(d["loglik"]["joint"]["per_point"]) == report["data"]["n"]
    assert set(d["loglik"]["marginal"]) == {"x1", "x2"} and len(d["loglik"]["conditional"]) == 2
    assert d["overlap"]["points"] == [0, 2] and set(d["overlap"]["posteriors"]) >= {"x1", "x2", "poe", "moe", "mopoe"}
    assert d["embedding"]["method"] == "raw"  # D = 2: "auto" shows the latent itself
    assert len(d["embedding"]["coords"]["joint"]) == report["data"]["n"]
    assert {(tuple(r["given"]), r["target"]) for r in d["coherence"]["conditional"]} == {(("x1",), "x2"),
                                                                                         (("x2",), "x1")}
    assert d["coherence"]["chance"] == 0.25 and d["coherence"]["n_prior"] == 1000
    assert {r["fusion"] for r in d["snr"]} == {"poe", "moe", "mopoe"}


def test_evaluate_rejects_unknown_part(toy_checkpoint, capsys):
    assert main(["evaluate", toy_checkpoint, "--parts", "bounds,nope", "--device", "cpu"]) == 2
    assert "unknown diagnostics part" in capsys.readouterr().err


def test_evaluate_neither_reads_nor_reseeds_the_global_generator(toy_checkpoint):
    """Same seed, same report, whatever ran before; torch's global stream is left as it was."""
    import torch

    from mmvae import load_checkpoint
    from mmvae.evaluation import evaluate_checkpoint

    ckpt = load_checkpoint(toy_checkpoint)
    torch.manual_seed(1)
    state = torch.get_rng_state()
    a = evaluate_checkpoint(ckpt, Ks=(1, 5), seed=7, parts="bounds,loglik,overlap,snr", n_samples=20)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(2)
    b = evaluate_checkpoint(ckpt, Ks=(1, 5), seed=7, parts="bounds,loglik,overlap,snr", n_samples=20)
    assert a == b
    c = evaluate_checkpoint(ckpt, Ks=(1, 5), seed=8, parts="bounds", n_samples=20)
    assert c["bounds"] != a["bounds"]
