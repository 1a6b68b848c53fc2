"""Training: one ``fit`` entry point over a resumable :class:`Trainer` (Adam, tensor-slice batches)."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from .data.dataset import MultimodalData
from .distributions import check_choice
from .model import MultimodalVAE
from .objectives import BOUNDS, ESTIMATORS, bounds, objective


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda if available, else cpu; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    return dev


@dataclass
class TrainConfig:
    """Options of :func:`fit` (stored in checkpoints)."""

    estimator: str = "iwae"
    K: int = 1
    bound: str = "tight"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    eval_K: int | None = None  # K of the recorded IWAE(K) curves; default: K

    def __post_init__(self) -> None:
        check_choice(self.estimator, ESTIMATORS, "estimator")
        check_choice(self.bound, BOUNDS, "bound")
        for name in ("K", "epochs", "batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.eval_K is not None and not (isinstance(self.eval_K, int) and self.eval_K >= 1):
            raise ValueError(f"eval_K must be a positive integer, got {self.eval_K!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class History:
    """Per-epoch records: ``train_loss`` (the objective's loss), ``train_elbo`` / ``train_iwae``
    and ``val_elbo`` / ``val_iwae`` (ELBO and IWAE(eval_K) of the joint posterior, nats per
    data point), ``ess`` (mean effective sample size of the K training weights) and ``seconds``."""

    records: list[dict] = field(default_factory=list)
    stopped: str | None = None

    def column(self, key: str) -> list[float]:
        return [r.get(key, float("nan")) for r in self.records]

    def to_dict(self) -> dict:
        return {"records": self.records, "stopped": self.stopped}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(list(d.get("records", [])), d.get("stopped"))


@dataclass
class Progress:
    """What the progress callback receives after every step and every epoch."""

    epoch: int
    step: int
    steps_per_epoch: int
    epochs: int
    loss: float
    record: dict | None = None  # set at the end of an epoch


@torch.no_grad()
def evaluate_bounds(
    model: MultimodalVAE, data: MultimodalData, K: int, batch_size: int = 512, fusion: str | None = None
) -> dict[str, float]:
    """Mean ELBO and IWAE(K) of the fused posterior over ``data`` (nats per data point)."""
    tot = {"elbo": 0.0, "iwae": 0.0}
    for batch in data.batches(batch_size):
        b = bounds(model, batch, K, fusion, validate=False)
        for k in tot:
            tot[k] += float(b[k].sum())
    return {k: v / data.n for k, v in tot.items()}


def _all_finite(grads: list[torch.Tensor], buffers: dict) -> bool:
    """True when every entry of every gradient is finite, in one fused kernel per device and dtype.

    ``_amp_foreach_non_finite_check_and_unscale_`` (what ``torch.amp.GradScaler`` uses) sets a
    flag on any NaN or inf; its scale is 1.0, and x * 1.0 == x exactly, so the gradients are left
    as they were. If this torch lacks it for these tensors, one norm per gradient is checked."""
    groups: dict = {}
    for g in grads:
        groups.setdefault((g.device, g.dtype), []).append(g)
    try:
        for (device, dtype), gs in groups.items():
            if dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
                raise TypeError(dtype)
            key = (device, dtype)
            if key not in buffers:
                buffers[key] = (torch.zeros(1, device=device), torch.ones(1, device=device))
            found, one = buffers[key]
            found.zero_()
            torch._amp_foreach_non_finite_check_and_unscale_(gs, found, one)
            if found.item() != 0:
                return False
        return True
    except (RuntimeError, TypeError, AttributeError, NotImplementedError):
        return bool(torch.stack([torch.linalg.vector_norm(g).float() for g in grads]).isfinite().all())


def _fused_ok(params) -> bool | None:
    """Fused Adam where this torch supports it for these parameters (CPU / CUDA floats), else the default."""
    return True if params and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) else None


class Trainer:
    """Holds the model, optimiser, data and history so training can run, pause and resume.

    ``step()`` runs one minibatch, ``run_epoch()`` one pass, ``fit(epochs)`` several. Training
    stops on a non-finite loss or gradient *before* the optimiser step, so the weights are the
    last good ones and ``history.stopped`` says why.
    """

    def __init__(
        self,
        model: MultimodalVAE,
        train: MultimodalData,
        val: MultimodalData | None = None,
        config: TrainConfig | None = None,
        callback: Callable[[Progress], bool | None] | None = None,
        distributed=None,
        **options,
    ) -> None:
        self.config = config or TrainConfig(**options)
        if config is not None and options:
            raise ValueError("give either a TrainConfig or keyword options, not both")
        # distributed: a mmvae.distributed.DistributedContext (torchrun): shards batches, runs the
        # objective through DDP and reduces metrics; None: this process trains alone
        self.distributed = distributed
        self.device = distributed.device if distributed is not None else resolve_device(self.config.device)
        self.model = model.to(self.device)
        dtype = next(model.parameters()).dtype  # data follow the model's floating-point dtype
        self.train = train.to(self.device, dtype)
        self.val = val.to(self.device, dtype) if val is not None else None
        model.check_inputs(self.train.modalities)
        missing = set(model.names) - set(train.modalities)
        if missing:
            raise ValueError(f"the training data lacks modalities {sorted(missing)} that the model has")
        if self.val is not None:
            model.check_inputs(self.val.modalities)
        self.callback = callback
        torch.manual_seed(self.config.seed)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self._params = list(self.model.parameters())
        self._found_inf = {}  # per-device flag buffers of the gradient check
        # fused Adam: one kernel per step instead of a dozen small ops per parameter (same update)
        self.optimizer = torch.optim.Adam(self._params, lr=self.config.lr, fused=_fused_ok(self._params))
        self.history = History()
        self.epoch = 0
        self._monitor = self.train.subset(slice(0, min(self.train.n, 1000)))

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train.n / self.config.batch_size)

    def _step(self, batch: dict) -> tuple[float, float]:
        c = self.config
        if self.distributed is None:
            out = objective(self.model, batch, c.estimator, c.K, bound=c.bound, validate=False)
        else:
            out = self.distributed.objective(self.model, batch, c.estimator, c.K, c.bound)
        loss = out.loss
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"the loss became {loss_value}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in self._params if p.grad is not None]
        if grads and not _all_finite(grads, self._found_inf):
            raise FloatingPointError("a gradient became NaN or inf")
        self.optimizer.step()
        if c.K == 1:
            return loss_value, 1.0  # one weight per sum: the effective sample size is exactly 1
        with torch.no_grad():
            lw = out.log_weights
            log_ess = 2 * torch.logsumexp(lw, 1) - torch.logsumexp(2 * lw, 1)
            ess = float(log_ess.exp().mean())
        return loss_value, ess

    def run_epoch(self) -> dict | None:
        """One pass over the training data; returns the epoch record (None if training stopped)."""
        if self.history.stopped:
            return None
        self.model.train()
        t0 = time.perf_counter()
        total, ess_total, n_steps = 0.0, 0.0, 0
        dist = self.distributed
        batches = (self.train.batches(self.config.batch_size, True, self.generator) if dist is None
                   else dist.batches(self.train, self.config.batch_size, self.generator))
        for step, batch in enumerate(batches):
            try:
                loss, ess = self._step(batch)
            except FloatingPointError as e:
                self.history.stopped = (f"training stopped at epoch {self.epoch + 1}, step {step + 1}: {e}; "
                                        "the model keeps the last good weights (try a smaller learning rate)")
                return None
            total += loss
            ess_total += ess
            n_steps += 1
            if self.callback is not None:
                self.callback(Progress(self.epoch, step + 1, self.steps_per_epoch, self.config.epochs, loss))
        self.epoch += 1
        ess = ess_total / n_steps if dist is None else dist.mean(ess_total / n_steps)
        record = {"epoch": self.epoch, "train_loss": total / n_steps, "ess": ess}
        self.model.eval()
        eval_K = self.config.eval_K or self.config.K
        evaluate = evaluate_bounds if dist is None else dist.evaluate_bounds
        for prefix, data in (("train", self._monitor), ("val", self.val)):
            if data is not None:
                b = evaluate(self.model, data, eval_K)
                record[f"{prefix}_elbo"], record[f"{prefix}_iwae"] = b["elbo"], b["iwae"]
        record["seconds"] = time.perf_counter() - t0
        self.history.records.append(record)
        if self.callback is not None:
            self.callback(Progress(self.epoch, self.steps_per_epoch, self.steps_per_epoch, self.config.epochs,
                                   record["train_loss"], record))
        return record

    def fit(self, epochs: int | None = None) -> History:
        """Run ``epochs`` more epochs (default: the configured number)."""
        for _ in range(epochs if epochs is not None else self.config.epochs):
            if self.run_epoch() is None:
                break
        return self.history


def fit(
    model: MultimodalVAE,
    train: MultimodalData,
    val: MultimodalData | None = None,
    *,
    estimator: str = "iwae",
    K: int = 1,
    bound: str = "tight",
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "auto",
    eval_K: int | None = None,
    callback: Callable[[Progress], bool | None] | None = None,
    progress: bool = False,
    distributed=None,
) -> History:
    """Train ``model`` with Adam on ``train`` (validation curves on ``val``); returns the History.

    ``progress=True`` shows a progress bar in the terminal (tqdm). Same seed, same result on the CPU.
    ``distributed``: a :class:`mmvae.distributed.DistributedContext` to train data-parallel
    under ``torchrun`` (see :mod:`mmvae.distributed`).
    """
    config = TrainConfig(estimator, K, bound, epochs, batch_size, lr, seed, device, eval_K)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * math.ceil(train.n / batch_size), unit="step", dynamic_ncols=True)

    def on_progress(p: Progress) -> None:
        if bar is not None:
            if p.record is None:
                bar.update(1)
                bar.set_postfix(epoch=f"{p.epoch + 1}/{p.epochs}", loss=f"{p.loss:.3f}", refresh=False)
            elif "val_iwae" in p.record:
                bar.set_postfix(epoch=f"{p.epoch}/{p.epochs}", val_iwae=f"{p.record['val_iwae']:.3f}")
        if callback is not None:
            callback(p)

    trainer = Trainer(model, train, val, config, on_progress, distributed)
    try:
        history = trainer.fit()
    finally:
        if bar is not None:
            bar.close()
    return history
