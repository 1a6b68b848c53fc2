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
* **noise**: every rank draws the sampling noise of the *whole* global batch from the same
  seeded generator (the Trainer's) and keeps its own rows, so the N-rank run draws exactly the
  noise one process would: with the same seed and global batch it equals single-process ``fit``
  to float rounding (the order of the gradient all-reduce's sums); ``tests/test_distributed.py``
  checks the weights and every recorded figure against plain ``fit`` in one process.
* **metrics**: the step loss and effective sample size are all-reduced (the global batch's
  means, the same on every rank, so every rank decides alike whether a step was finite);
  validation bounds are computed on every rank with the same generator (identical on all ranks,
  and equal to the single-process figures; they are cheap beside training).
* **checkpoint**: written by rank 0 only (``is_main``).
* ``compile=True`` is not combined with torchrun (refused with a clear error).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from torch import distributed as dist

from .data.dataset import MultimodalData

__all__ = ["DistributedContext", "from_environment", "shard_rows"]


def shard_rows(n: int, world_size: int, rank: int) -> slice:
    """Rank ``rank``'s contiguous slice of ``n`` rows (``torch.tensor_split`` sizes)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


class _Loss(nn.Module):
    """The model with a loss function as its forward, so DistributedDataParallel can wrap it (its
    gradient all-reduce hooks fire on the backward of what forward returned)."""

    def __init__(self, model: nn.Module, loss_fn: Callable) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: dict, noise: Tensor, components: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.loss_fn(batch, noise, components)


@dataclass
class DistributedContext:
    """This process's place in a ``torch.distributed`` process group, and the hooks
    :class:`mmvae.training.Trainer` calls when given one (``distributed=``)."""

    rank: int
    world_size: int
    device: torch.device

    def __post_init__(self) -> None:
        self._ddp: dict[int, nn.Module] = {}  # id(loss function) -> its DDP-wrapped module
        self._rows: tuple[slice, int] | None = None  # (this rank's rows, global rows) of the current batch

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    # ----------------------------------------------------------------- training hooks
    def batches(self, data: MultimodalData, batch_size: int, generator: torch.Generator) -> Iterator[dict]:
        """This rank's slice of every shuffled global batch of ``batch_size`` rows (every rank
        draws the same order from its own copy of the same generator)."""
        rest = data.n % batch_size
        if batch_size < self.world_size or 0 < rest < self.world_size:
            raise ValueError(f"with {self.world_size} processes every global batch needs at least "
                             f"{self.world_size} rows (batch size {batch_size}, last batch {rest or batch_size} "
                             f"of {data.n} rows): choose another --batch-size")
        for batch in data.batches(batch_size, True, generator):
            n = next(iter(batch.values())).shape[0]
            rows = shard_rows(n, self.world_size, self.rank)
            self._rows = (rows, n)
            yield {k: v[rows] for k, v in batch.items()}

    @property
    def global_rows(self) -> int:
        """Rows of the current global batch (all ranks together)."""
        if self._rows is None:
            raise RuntimeError("no current batch: iterate DistributedContext.batches first")
        return self._rows[1]

    def own_rows(self, t: Tensor, dim: int) -> Tensor:
        """This rank's rows of a tensor ``t`` that spans the global batch along ``dim``."""
        rows = self._rows[0]
        return t.narrow(dim, rows.start, rows.stop - rows.start)

    def loss_and_ess(self, loss_fn: Callable, batch: dict, noise: Tensor, components: Tensor | None
                     ) -> tuple[Tensor, Tensor]:
        """``loss_fn(batch, noise, components)`` -> (mean loss, mean ESS) of this rank's rows, run
        through DDP. Returns the loss with the value of the global batch's mean loss and the
        gradient of N b_r / B times this rank's mean (DDP averages it into the global mean's
        gradient), and the global batch's mean ESS."""
        ddp = self._ddp.get(id(loss_fn))
        if ddp is None:
            ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = self._ddp[id(loss_fn)] = nn.parallel.DistributedDataParallel(
                _Loss(loss_fn.__self__.model, loss_fn), device_ids=ids)
        rows, global_rows = self._rows
        share = (rows.stop - rows.start) / global_rows
        loss, ess = ddp(batch, noise, components)
        scaled = loss * (self.world_size * share)
        sums = torch.stack([loss.detach() * share, ess.detach() * share]).to(self._reduce_device, torch.float64)
        dist.all_reduce(sums)  # the global batch's mean loss and mean ESS (rows weigh alike)
        total, ess_mean = sums.to(loss.device, loss.dtype).unbind()
        return scaled + (total - scaled.detach()), ess_mean

    @property
    def _reduce_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    # ----------------------------------------------------------------- life cycle
    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def from_environment(device: str = "auto") -> DistributedContext | None:
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
    return DistributedContext(rank, world, dev)
