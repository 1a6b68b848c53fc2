"""Training: one ``fit`` entry point over a resumable :class:`Trainer` (Adam, tensor-slice batches).

Randomness: the Trainer owns its generators (seeded with ``seed``): one on the model's device for
the objective's noise and the evaluation, one on the CPU for the batch order. It never touches the
global RNG, so trainings in several threads do not disturb each other.

Host syncs: a step runs on the device without waiting for it. The loss, the effective sample size
and a non-finite flag (loss or any gradient NaN / inf) are accumulated on the device; with fused
Adam a set flag skips the update on the device (the step's ``found_inf``, as with
``torch.amp.GradScaler``), so the weights stay the last good ones, and the flag is read once per
epoch. Where fused Adam is not available, the flag is read every step (one sync per step). A
``callback`` that reads ``Progress.loss`` syncs for it.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

from .data.dataset import MultimodalData
from .distributions import check_choice
from .model import MultimodalVAE
from .fusion import subsets_for
from .objectives import (BOUNDS, ESTIMATORS, bounds, check_subsample, effective_sample_size, objective,
                         objective_noise, sample_components)


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
    compile: bool | str = False  # torch.compile the training step (True: inductor; or a backend name)
    subsample: int | None = None  # mixtures: components sampled per data point (see objectives.objective)

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
    data point), ``ess`` (mean effective sample size of the K training weights), ``seconds`` and
    ``val_nonfinite`` (True when a validation bound was NaN or inf)."""

    records: list[dict] = field(default_factory=list)
    stopped: str | None = None
    compile_seconds: float | None = None  # with compile: the first compiled step, compilation included

    @property
    def val_nonfinite_epochs(self) -> list[int]:
        """Epochs whose validation ELBO or IWAE was NaN or inf (``record["val_nonfinite"]``)."""
        return [r["epoch"] for r in self.records if r.get("val_nonfinite")]

    def column(self, key: str) -> list[float]:
        return [r.get(key, float("nan")) for r in self.records]

    def to_dict(self) -> dict:
        return {"records": self.records, "stopped": self.stopped, "compile_seconds": self.compile_seconds}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(list(d.get("records", [])), d.get("stopped"), d.get("compile_seconds"))


@dataclass
class Progress:
    """What the progress callback receives after every step and every epoch (reading ``loss``
    waits for the step to finish on the device)."""

    epoch: int
    step: int
    steps_per_epoch: int
    epochs: int
    loss_tensor: torch.Tensor | float
    record: dict | None = None  # set at the end of an epoch

    @property
    def loss(self) -> float:
        return float(self.loss_tensor)


@torch.no_grad()
def evaluate_bounds(
    model: MultimodalVAE, data: MultimodalData, K: int, batch_size: int = 512, fusion: str | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Mean ELBO and IWAE(K) of the fused posterior over ``data`` (nats per data point)."""
    tot = None
    for batch in data.batches(batch_size):
        b = bounds(model, batch, K, fusion, validate=False, generator=generator)
        part = torch.stack([b["elbo"].sum(), b["iwae"].sum()])
        tot = part if tot is None else tot + part
    elbo, iwae = tot.tolist()  # one sync
    return {"elbo": elbo / data.n, "iwae": iwae / data.n}


def _non_finite_flag(grads: list[torch.Tensor], loss: torch.Tensor, flag: torch.Tensor, one: torch.Tensor) -> None:
    """Set ``flag`` (a (1,) float tensor on the device) to 1 when the loss or any gradient entry is
    NaN or inf, without a host sync: ``_amp_foreach_non_finite_check_and_unscale_`` (what
    ``torch.amp.GradScaler`` uses) in one fused kernel per device and dtype; its scale ``one`` is
    1.0, and x * 1.0 == x exactly, so the gradients are left as they were."""
    flag.copy_(torch.maximum(flag, (~torch.isfinite(loss.detach())).to(flag.dtype).reshape(1)))
    groups: dict = {}
    for g in grads:
        groups.setdefault(g.dtype, []).append(g)
    for dtype, gs in groups.items():
        if dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            try:
                torch._amp_foreach_non_finite_check_and_unscale_(gs, flag, one)
                continue
            except (RuntimeError, NotImplementedError, AttributeError):
                pass
        bad = ~torch.stack([torch.linalg.vector_norm(g.float()) for g in gs]).isfinite().all()
        flag.copy_(torch.maximum(flag, bad.to(flag.dtype).reshape(1)))


def _fused_ok(params) -> bool | None:
    """Fused Adam where this torch supports it for these parameters (CPU / CUDA floats), else the default."""
    return True if params and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) else None


class Trainer:
    """Holds the model, optimiser, data and history so training can run, pause and resume.

    ``step()`` runs one minibatch, ``run_epoch()`` one pass, ``fit(epochs)`` several. Training
    stops on a non-finite loss or gradient with the weights of the last good step (the update of
    the bad step and of every later step of that epoch is skipped), and ``history.stopped`` says
    at which step. ``compile=True`` compiles the loss computation (forward and backward) once with
    ``torch.compile``; the last, shorter batch of an epoch runs uncompiled, so shapes never change.
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
        if distributed is not None and self.config.compile:
            raise ValueError("compile=True is not supported with torchrun (distributed) training yet; drop --compile")
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
        n_components = 1 if model.fusion == "poe" else len(subsets_for(model.fusion, len(model.names)))
        check_subsample(self.config.subsample, model.fusion, self.config.estimator, self.config.K, self.config.bound,
                        None if model.fusion == "poe" else n_components)
        S = self.config.subsample
        self._subsample = S if S is not None and S < n_components else None  # S >= C: every component
        self._n_components = n_components
        # explicit generators, never the global RNG: the objective's noise and the evaluation on
        # the model's device, the batch order on the CPU (where the permutation is drawn)
        self.generator = torch.Generator(self.device).manual_seed(self.config.seed)
        self.shuffle_generator = torch.Generator().manual_seed(self.config.seed)
        self._params = list(self.model.parameters())
        # fused Adam: one kernel per step instead of a dozen small ops per parameter (same update);
        # it also skips the update on the device when ``found_inf`` is set (no host sync)
        fused = _fused_ok(self._params)
        self.optimizer = torch.optim.Adam(self._params, lr=self.config.lr, fused=fused)
        self._bad = torch.zeros(1, device=self.device)  # sticky non-finite flag of this epoch
        self._one = torch.ones(1, device=self.device)
        if fused:
            self.optimizer.found_inf = self._bad.view(())  # the same flag, as Adam's 0-dim step counts want it
        self._sync_every_step = not fused
        self.history = History()
        self.epoch = 0
        self._monitor = self.train.subset(slice(0, min(self.train.n, 1000)))
        self._loss_fn = self._eager_loss
        if self.config.compile:
            backend = "inductor" if self.config.compile is True else self.config.compile
            self._loss_fn = torch.compile(self._eager_loss, backend=backend, dynamic=False)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.train.n / self.config.batch_size)

    def _eager_loss(self, batch: dict, noise: torch.Tensor, components: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and the mean effective sample size of the K weights of each sum, on the device."""
        c = self.config
        out = objective(self.model, batch, c.estimator, c.K, bound=c.bound, validate=False, noise=noise,
                        subsample=self._subsample, components=components)
        lw = out.log_weights
        ess = effective_sample_size(lw, 1).mean()  # per component, over its K weights
        return out.loss, ess

    def _step(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step; returns the loss and ESS as device tensors (no host sync)."""
        c = self.config
        dist = self.distributed
        # under torchrun every rank draws the noise of the whole global batch from the same
        # generator and keeps its own rows, so the run equals one process with that batch
        B = next(iter(batch.values())).shape[0] if dist is None else dist.global_rows
        noise = objective_noise(self.model, len(batch), c.K, B, generator=self.generator, subsample=self._subsample)
        components = None if self._subsample is None else sample_components(
            self._n_components, self._subsample, B, self.device, self.generator)
        if dist is not None:
            noise, components = dist.own_rows(noise, 2), (None if components is None else dist.own_rows(components, 1))
            loss, ess = dist.loss_and_ess(self._eager_loss, batch, noise, components)
            t0, first_compiled = 0.0, False
        else:
            full = B == c.batch_size
            fn = self._loss_fn if full else self._eager_loss
            first_compiled = c.compile and full and self.history.compile_seconds is None
            t0 = time.perf_counter() if first_compiled else 0.0
            loss, ess = fn(batch, noise, components)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad for p in self._params if p.grad is not None]
        _non_finite_flag(grads, loss, self._bad, self._one)
        if self._sync_every_step and self._bad.item():
            return loss.detach(), ess.detach()  # no fused found_inf: skip the update here
        self.optimizer.step()
        if first_compiled:
            self.history.compile_seconds = time.perf_counter() - t0
        return loss.detach(), ess.detach()

    def run_epoch(self) -> dict | None:
        """One pass over the training data; returns the epoch record (None if training stopped)."""
        if self.history.stopped:
            return None
        self.model.train()
        t0 = time.perf_counter()
        self._bad.zero_()
        totals = torch.zeros(3, device=self.device)  # loss, ESS, good steps
        n_steps = 0
        dist = self.distributed
        batches = (self.train.batches(self.config.batch_size, True, self.shuffle_generator) if dist is None
                   else dist.batches(self.train, self.config.batch_size, self.shuffle_generator))
        for step, batch in enumerate(batches):
            loss, ess = self._step(batch)
            good = 1.0 - self._bad[0]
            totals += torch.stack([loss.to(totals.dtype), ess.to(totals.dtype), good])
            n_steps += 1
            if self.callback is not None:
                self.callback(Progress(self.epoch, step + 1, self.steps_per_epoch, self.config.epochs, loss))
        loss_sum, ess_sum, n_good = totals.tolist()  # the one host sync of the epoch
        if n_good < n_steps:
            what = "the loss or a gradient became NaN or inf"
            self.history.stopped = (f"training stopped at epoch {self.epoch + 1}, step {int(n_good) + 1}: {what}; "
                                    "the model keeps the last good weights (try a smaller learning rate)")
            return None
        self.epoch += 1
        record = {"epoch": self.epoch, "train_loss": loss_sum / n_steps, "ess": ess_sum / n_steps}
        self.model.eval()
        eval_K = self.config.eval_K or self.config.K
        for prefix, data in (("train", self._monitor), ("val", self.val)):
            if data is not None:
                b = evaluate_bounds(self.model, data, eval_K, generator=self.generator)
                record[f"{prefix}_elbo"], record[f"{prefix}_iwae"] = b["elbo"], b["iwae"]
        # NaN / inf that shows up only in validation is flagged, not silently recorded
        record["val_nonfinite"] = any(not math.isfinite(record[k]) for k in ("val_elbo", "val_iwae") if k in record)
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
    compile: bool | str = False,
    subsample: int | None = None,
    distributed=None,
) -> History:
    """Train ``model`` with Adam on ``train`` (validation curves on ``val``); returns the History.

    ``progress=True`` shows a progress bar in the terminal (tqdm). Same seed, same result on the
    CPU, also with several trainings in threads at once (the global RNG is neither used nor
    changed). ``compile=True`` compiles the training step once (``torch.compile``; the time of
    the first compiled step, compilation included, is ``history.compile_seconds``).
    ``subsample=S`` (MoE / MoPoE with the ELBO or ``bound='looser'``) samples S random mixture
    components per data point instead of all C: unbiased, S / C of the decoder work, more variance.
    ``distributed``: a :class:`mmvae.distributed.DistributedContext` to train data-parallel under
    ``torchrun`` (the same result as this process alone with the same global batch).
    """
    config = TrainConfig(estimator, K, bound, epochs, batch_size, lr, seed, device, eval_K, compile, subsample)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs * math.ceil(train.n / batch_size), unit="step", dynamic_ncols=True)

    def on_progress(p: Progress) -> None:
        if bar is not None:
            if p.record is None:
                bar.update(1)
                if p.step % 20 == 0:  # reading the loss waits for the device: not every step
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
