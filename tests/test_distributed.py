"""Data-parallel training (mmvae.distributed): 2 CPU processes under torchrun with gloo.

The equality checked is the one a user relies on: an N-rank run equals plain single-process
``fit`` with the same seed and global batch size (weights and every recorded figure), to the
rounding of the gradient all-reduce. Global batches of 51 rows split 26 / 25 (unequal, so the
loss scaling matters) and a last batch of 6, so sharding, loss scaling, the gradient all-reduce,
the reduced metrics and the per-row noise must all be right for the weights to match.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from mmvae.distributed import DistributedContext, shard_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ARGS = dict(data="toy", n=300, fusion="moe", estimator="dreg", K=2, bound="tight", epochs=2, batch=51, seed=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process(a: dict):
    from mmvae import build_model, config_for_specs, fit
    from mmvae.data import load_dataset

    bundle = load_dataset(a["data"], seed=a["seed"], n=a["n"])
    model = build_model(config_for_specs(bundle.specs, 2, "gaussian", a["fusion"]), seed=a["seed"])
    start = {k: v.clone() for k, v in model.state_dict().items()}
    history = fit(model, bundle.train, bundle.val, estimator=a["estimator"], K=a["K"], bound=a["bound"],
                  epochs=a["epochs"], batch_size=a["batch"], seed=a["seed"], device="cpu")
    return model, history, start


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_processes_equal_single_process_fit(tmp_path):
    a = ARGS
    out = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "mmvae", "train", "--data", a["data"], "--data-option",
           f"n={a['n']}", "--fusion", a["fusion"], "--estimator", a["estimator"], "--K", str(a["K"]),
           "--bound", a["bound"], "--epochs", str(a["epochs"]), "--batch-size", str(a["batch"]), "--seed",
           str(a["seed"]), "--device", "cpu", "--quiet", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("saved ") == 1, proc.stdout  # rank 0 alone writes (and says so)

    from mmvae.checkpoint import load_checkpoint

    ckpt = load_checkpoint(out)
    model, history, start = _single_process(a)
    ddp_state, ref_state = ckpt.model.state_dict(), model.state_dict()
    assert ddp_state.keys() == ref_state.keys()
    moved = max(float((ref_state[k] - start[k]).abs().max()) for k in ref_state)
    assert moved > 1e-3  # training moved the weights: equal weights are not just the initial ones
    for k in ref_state:
        torch.testing.assert_close(ddp_state[k], ref_state[k], rtol=1e-4, atol=2e-5, msg=k)
    got, want = ckpt.history["records"], history.records
    assert len(got) == len(want) == a["epochs"]
    for g, w in zip(got, want):
        for key in ("train_loss", "ess", "train_elbo", "train_iwae", "val_elbo", "val_iwae"):
            assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize("n, world", [(7, 3), (6, 2), (5, 5), (2, 3)])
def test_shard_rows_partition_like_tensor_split(n, world):
    got = [torch.arange(n)[shard_rows(n, world, r)] for r in range(world)]
    want = torch.tensor_split(torch.arange(n), world)
    assert all(torch.equal(g, w) for g, w in zip(got, want))


def test_batches_refuse_a_global_batch_smaller_than_the_number_of_processes():
    from mmvae.data import MultimodalData

    ctx = DistributedContext(rank=0, world_size=4, device=torch.device("cpu"))
    data = MultimodalData({"a": torch.zeros(10, 1)})  # batch 8 -> last batch of 2 rows for 4 ranks
    with pytest.raises(ValueError, match="at least 4 rows"):
        next(ctx.batches(data, 8, torch.Generator()))
    rows = [b["a"].shape[0] for b in ctx.batches(data, 5, torch.Generator())]
    assert rows == [2, 2]  # rank 0's share of 5 rows is 2 (then 1, 1, 1 for ranks 1-3)


def test_own_rows_follow_the_current_batch():
    from mmvae.data import MultimodalData

    ctx = DistributedContext(rank=1, world_size=2, device=torch.device("cpu"))
    data = MultimodalData({"a": torch.arange(7.0)[:, None]})
    next(ctx.batches(data, 7, torch.Generator().manual_seed(0)))
    assert ctx.global_rows == 7
    noise = torch.arange(2 * 3 * 7).reshape(2, 3, 7)
    assert torch.equal(ctx.own_rows(noise, 2), noise[:, :, 4:])  # rank 1 of 2 holds rows 4..6
