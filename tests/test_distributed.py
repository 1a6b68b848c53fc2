"""Data-parallel training (mmvae.distributed): 2 CPU processes under torchrun with gloo.

The equality checked: an N-rank run equals one process that, for every global batch, takes the
mean loss over all of its rows with the sampling noise of rank r's rows drawn from the stream
``noise_seed(seed, step, r)`` (see mmvae.distributed). That reference is written here by hand,
without any torch.distributed code, so the test fails if sharding, loss scaling, the gradient
all-reduce, the reduced loss or the noise streams are wrong.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

from mmvae.distributed import DistributedContext, noise_seed, seeded_noise, shard_rows

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# toy data with 300 points: 210 training rows; batch 51 -> global batches 51, 51, 51, 51, 6:
# ranks get 26 / 25 rows (unequal, so the loss scaling matters) and 3 / 3 in the last batch
ARGS = dict(data="toy", n=300, fusion="moe", estimator="dreg", K=2, bound="tight", epochs=2, batch=51, seed=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _reference(a: dict):
    """One process, the same global batches, the same noise per row: returns (model, epoch losses)."""
    from mmvae import build_model, config_for_specs
    from mmvae.data import load_dataset
    from mmvae.objectives import objective

    bundle = load_dataset(a["data"], seed=a["seed"], n=a["n"])
    model = build_model(config_for_specs(bundle.specs, 2, "gaussian", a["fusion"]), seed=a["seed"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    gen = torch.Generator().manual_seed(a["seed"])
    step, losses = 0, []
    for _ in range(a["epochs"]):
        total, n_steps = 0.0, 0
        for batch in bundle.train.batches(a["batch"], True, gen):
            B = next(iter(batch.values())).shape[0]
            opt.zero_grad()
            loss = 0.0
            for r, rows in enumerate(torch.tensor_split(torch.arange(B), 2)):
                with seeded_noise(noise_seed(a["seed"], step, r), torch.device("cpu")):
                    out = objective(model, {k: v[rows] for k, v in batch.items()}, a["estimator"], a["K"],
                                    bound=a["bound"])
                part = out.loss * (len(rows) / B)  # these rows' share of the batch mean
                part.backward()
                loss += float(part.detach())
            opt.step()
            step += 1
            total += loss
            n_steps += 1
        losses.append(total / n_steps)
    return model, losses


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_two_processes_equal_the_single_process_reference(tmp_path):
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
    model, losses = _reference(a)
    ddp_state, ref_state = ckpt.model.state_dict(), model.state_dict()
    assert ddp_state.keys() == ref_state.keys()
    start = build_start(a)
    moved = max(float((ref_state[k] - start[k]).abs().max()) for k in ref_state)
    assert moved > 1e-3  # the reference trained: equal weights are not just the initial ones
    for k in ref_state:
        torch.testing.assert_close(ddp_state[k], ref_state[k], rtol=1e-4, atol=2e-5, msg=k)
    records = ckpt.history["records"]
    assert [r["train_loss"] for r in records] == pytest.approx(losses, rel=1e-5)
    for r in records:  # validation bounds reduced over both ranks' rows: finite, ELBO <= IWAE
        assert torch.isfinite(torch.tensor([r["val_elbo"], r["val_iwae"]])).all()
        assert r["val_elbo"] <= r["val_iwae"] + 1e-6


def build_start(a: dict) -> dict:
    from mmvae import build_model, config_for_specs
    from mmvae.data import load_dataset

    bundle = load_dataset(a["data"], seed=a["seed"], n=a["n"])
    return build_model(config_for_specs(bundle.specs, 2, "gaussian", a["fusion"]), seed=a["seed"]).state_dict()


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


def test_noise_streams_differ_by_step_and_rank_and_leave_the_global_generator_alone():
    before = torch.random.get_rng_state()
    draws = {}
    for key in [(0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0)]:
        with seeded_noise(noise_seed(*key), torch.device("cpu")):
            draws[key] = torch.randn(4)
    assert torch.equal(torch.random.get_rng_state(), before)
    values = list(draws.values())
    assert all(not torch.equal(values[i], values[j]) for i in range(4) for j in range(i))
    with seeded_noise(noise_seed(0, 0, 1), torch.device("cpu")):
        assert torch.equal(torch.randn(4), draws[0, 0, 1])
