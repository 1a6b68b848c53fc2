"""Data-parallel training over several processes: ``torchrun`` + DistributedDataParallel.

    torchrun --nproc_per_node=N -m mmvae train --data digits-halves --out model.safetensors

One process per rank (N per machine; more machines with torchrun's ``--nnodes`` and a
rendezvous address). Backend: ``gloo`` on CPUs, ``nccl`` on CUDA GPUs (rank r on ``cuda:LOCAL_RANK``).
With N ranks and a global batch of B rows (``--batch-size``):

* **data**: every rank holds the whole data set on its device and draws the same shuffled order
  (same seed), so all ranks see the same global batches; rank r trains on its contiguous slice
  of each, ``torch.tensor_split(rows, N)[r]`` (b_r rows, sizes differ by at most one).
* **loss and gradients**: rank r's loss is the mean over its b_r rows times N b_r / B, and DDP
  averages the gradients over ranks during the backward pass, so every rank gets
  (1/N) sum_r (N b_r / B) grad mean_r = grad (1/B) sum_rows, the gradient of the global batch's
  mean loss, also for a last, smaller batch. Adam then takes the same step on every rank.
* **metrics**: the step loss is all-reduced (the global batch's mean, the same on every rank;
  its finiteness decides on every rank alike whether training stops); the epoch's effective
  sample size is averaged over ranks; validation bounds are computed on each rank's share of
  the rows and summed.
* **checkpoint**: written by rank 0 only (``is_main``).
* **sampling noise**: at global step t rank r draws its noise from a stream seeded with
  :func:`noise_seed` (seed, t, r) (the global generator of the rank's device inside
  ``torch.random.fork_rng``, so nothing outside the step is disturbed). A run with N ranks
  therefore equals, to float rounding, one process that takes each global batch's mean loss with
  the noise of rows in slice r drawn from that same stream; ``tests/test_distributed.py`` checks
  exactly this (weights and losses after two epochs). A single-process ``fit`` draws all rows'
  noise from one stream, so it agrees with an N-rank run in distribution, not number for number.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import Tensor, nn
from torch import distributed as dist

from .data.dataset import MultimodalData
from .objectives import ObjectiveOutput, objective

__all__ = ["DistributedContext", "from_environment", "noise_seed", "seeded_noise", "shard_rows"]


TRAIN, EVALUATE = 0, 1  # what a noise stream is for


def noise_seed(seed: int, step: int, rank: int, purpose: int = TRAIN) -> int:
    """Seed of rank ``rank``'s sampling noise at global step ``step`` (or evaluation number
    ``step`` with ``purpose=EVALUATE``): a 63-bit integer from numpy's SeedSequence, so distinct
    (seed, purpose, step, rank) give unrelated streams."""
    state = np.random.SeedSequence([int(seed), int(purpose), int(step), int(rank)]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


@contextlib.contextmanager
def seeded_noise(seed: int, device: torch.device):
    """Draws on ``device`` inside come from a stream seeded with ``seed``; the global generator
    states are restored on exit."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if device.type == "cuda":
            torch.cuda.manual_seed(seed)
        else:
            torch.random.default_generator.manual_seed(seed)
        yield


def shard_rows(n: int, world_size: int, rank: int) -> slice:
    """Rank ``rank``'s contiguous slice of ``n`` rows (``torch.tensor_split`` sizes)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class _Objective(nn.Module):
    """The training objective as a module, so DistributedDataParallel can wrap its forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict, estimator: str, K: int, bound: str) -> tuple[Tensor, Tensor, Tensor]:
        out = objective(self.model, batch, estimator, K, bound=bound, validate=False)
        return out.loss, out.value, out.log_weights


@dataclass
class DistributedContext:
    """This process's place in a ``torch.distributed`` process group, and the hooks
    :class:`mmvae.training.Trainer` calls when given one (``distributed=``)."""

    rank: int
    world_size: int
    device: torch.device
    seed: int = 0

    def __post_init__(self) -> None:
        self._ddp: dict[int, nn.Module] = {}  # id(model) -> its DDP-wrapped objective (one per model)
        self._step = 0  # global steps taken (numbers the noise streams)
        self._evals = 0  # evaluations made (numbers their noise streams)
        self._rows: tuple[int, int] | None = None  # (this rank's rows, global rows) of the current batch

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    # ----------------------------------------------------------------- training hooks
    def batches(self, data: MultimodalData, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        """This rank's slice of every shuffled global batch of ``batch_size`` rows."""
        rest = data.n % batch_size
        if batch_size < self.world_size or 0 < rest < self.world_size:
            raise ValueError(f"with {self.world_size} processes every global batch needs at least "
                             f"{self.world_size} rows (batch size {batch_size}, last batch {rest or batch_size} "
                             f"of {data.n} rows): choose another --batch-size")
        for batch in data.batches(batch_size, True, generator):
            rows = shard_rows(next(iter(batch.values())).shape[0], self.world_size, self.rank)
            self._rows = (rows.stop - rows.start, next(iter(batch.values())).shape[0])
            yield {k: v[rows] for k, v in batch.items()}

    def objective(self, model: nn.Module, batch: dict, estimator: str, K: int, bound: str) -> ObjectiveOutput:
        """The objective of this rank's rows through DDP. ``loss`` has the value of the global
        batch's mean loss (all-reduced) and the gradient of N b_r / B times this rank's mean."""
        ddp = self._ddp.get(id(model))
        if ddp is None:
            ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = self._ddp[id(model)] = nn.parallel.DistributedDataParallel(
                _Objective(model), device_ids=ids)
        if self._rows is None:
            raise RuntimeError("DistributedContext.objective needs a batch from DistributedContext.batches")
        local, global_rows = self._rows
        with seeded_noise(noise_seed(self.seed, self._step, self.rank), self.device):
            loss, value, log_weights = ddp(batch, estimator, K, bound)
        self._step += 1
        scaled = loss * (self.world_size * local / global_rows)
        total = scaled.detach().clone()
        dist.all_reduce(total)
        total = total / self.world_size
        return ObjectiveOutput(scaled + (total - scaled.detach()), value, log_weights)

    def mean(self, value: float) -> float:
        """The average of a number over ranks."""
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._reduce_device)
        dist.all_reduce(t)
        return float(t) / self.world_size

    @torch.no_grad()
    def evaluate_bounds(self, model: nn.Module, data: MultimodalData, K: int) -> dict[str, float]:
        """Mean ELBO and IWAE(K) over ``data``: each rank scores its share of the rows."""
        from .training import evaluate_bounds

        rows = shard_rows(data.n, self.world_size, self.rank)
        sums = torch.zeros(2, dtype=torch.float64, device=self._reduce_device)
        if rows.stop > rows.start:
            with seeded_noise(noise_seed(self.seed, self._evals, self.rank, EVALUATE), self.device):
                b = evaluate_bounds(model, data.subset(rows), K)
            n = rows.stop - rows.start
            sums += torch.tensor([b["elbo"] * n, b["iwae"] * n], dtype=torch.float64, device=sums.device)
        self._evals += 1
        dist.all_reduce(sums)
        return {"elbo": float(sums[0]) / data.n, "iwae": float(sums[1]) / data.n}

    @property
    def _reduce_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    # ----------------------------------------------------------------- life cycle
    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def from_environment(device: str = "auto", seed: int = 0) -> DistributedContext | None:
    """Join the process group that ``torchrun`` describes in the environment (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``); None outside torchrun or
    with one process. ``device``: auto (``cuda:LOCAL_RANK`` if CUDA is available, else cpu),
    cpu or cuda."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
        if torch.cuda.device_count() <= local:
            raise ValueError(f"local rank {local} needs GPU {local} but this machine has "
                             f"{torch.cuda.device_count()}: start at most that many processes per node")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    elif dev.type != "cpu":
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world)
    return DistributedContext(rank, world, dev, seed)
