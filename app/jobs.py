"""Training jobs for a shared workshop server: a FIFO pool of worker processes, or a Ray cluster.

The app never trains in the Streamlit server process. A session *submits* a training job (a small
JSON-able spec: dataset, seed, fusion, estimator, K, ...) and *polls* its :class:`JobStatus`
(queue position, epochs done, live records, an ETA). The pool runs at most ``workers`` jobs at once
(default: the number of cores), first in first out, each in a worker process with one torch thread
(two OpenMP threads on a shared 2-core box are several times slower than one), and at most one
queued or running job per session (:class:`JobLimitError`). When a job ends, its history, its
weights (safetensors bytes) and, after a Pause, its resume state come back to the session that
asked for them: nothing is written to disk per user.

Two backends, one API (:class:`JobPool`):

* ``LocalBackend``: ``concurrent.futures.ProcessPoolExecutor`` (spawned workers that stay warm)
  and a ``multiprocessing`` manager for the progress queue and the pause / cancel flags.
* ``RayBackend``: each job is a Ray task (``num_cpus=1``) and one Ray actor holds progress and the
  pause / cancel flags; Cancel also calls ``ray.cancel``. Give the server a cluster address with
  ``MMVAE_RAY_ADDRESS=auto`` (or ``ray://host:10001``), or ``-- --ray-address ADDRESS`` after
  ``streamlit run app/streamlit_app.py``; a teacher adds machines with ``ray start --address ...``.

Determinism: a job builds its model with ``build_model(config, seed)`` and trains with
``Trainer(seed)`` in its own process, so the same spec gives bit-identical weights whatever else
runs at the same time (``tests/test_jobs.py`` checks 10 concurrent jobs against one alone).
Pause stops a job at the end of an epoch and returns the weights, the optimiser state and every
random-number state, so Play resumes exactly where it stopped.

This module imports neither streamlit nor torch at import time (workers import it by reference).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

STATES_ACTIVE = ("queued", "running")
NETWORK = {"type": "mlp", "hidden": [64, 64]}  # small, fast networks for a shared CPU server
DEFAULT_JOB_SECONDS = 3.0  # the first ETA guess, before any job has finished
MAX_FINISHED = 256  # finished jobs whose result nobody collected are dropped oldest first beyond this


class JobLimitError(RuntimeError):
    """The session already has a queued or running job."""


class Cancelled(Exception):
    """Raised inside a worker when its job was cancelled."""


# ------------------------------------------------------------------------------ the job (in a worker)
def _one_thread():
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return torch


_WARM = []
JOB_NICE = 10  # local workers' niceness (MMVAE_JOB_NICE): pages go first, training takes the CPU they leave


def job_nice() -> int:
    return max(0, min(19, int(os.environ.get("MMVAE_JOB_NICE", JOB_NICE))))


def init_worker() -> None:
    """Worker start: a lower CPU priority (:func:`job_nice`: the Streamlit process draws every
    page of the room and must not wait behind training), one torch thread; torch and mmvae
    imported, the toy data loaded and one tiny training epoch run once per process, so that a
    student's first job pays none of it. (Every job reseeds its own random numbers: this warm-up
    changes no result.)"""
    _one_thread()
    if _WARM:
        return
    _WARM.append(True)
    os.nice(job_nice())  # once per process (os.nice adds)
    spec = {"dataset": "toy", "seed": 0, "fusion": "poe", "estimator": "dreg", "K": 2, "latent_dim": 2,
            "epochs": 1, "n_train": 64, "n_val": 16, "n_monitor": 16}
    build_trainer(spec)[0].run_epoch()


def _pack_tensors(tensors: dict) -> bytes:
    from safetensors.torch import save

    return save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})


def _unpack_tensors(blob: bytes) -> dict:
    from safetensors.torch import load

    return load(blob)


def _generators(trainer) -> dict:
    """Every torch.Generator a Trainer holds (by attribute name)."""
    import torch

    return {k: v for k, v in vars(trainer).items() if isinstance(v, torch.Generator)}


def resume_state(trainer) -> dict:
    """What Play needs to continue exactly: weights, Adam's state, every random-number state,
    the epoch and the history (tensors as safetensors bytes, the rest as JSON)."""
    import torch

    opt = trainer.optimizer.state_dict()
    tensors = {f"model.{k}": v for k, v in trainer.model.state_dict().items()}
    scalars = {}
    for i, st in opt["state"].items():
        for name, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{i}.{name}"] = v
            else:
                scalars[f"{i}.{name}"] = v
    tensors["rng.global"] = torch.get_rng_state()
    for name, g in _generators(trainer).items():
        tensors[f"rng.{name}"] = g.get_state()
    meta = {"epoch": trainer.epoch, "history": trainer.history.to_dict(), "param_groups": opt["param_groups"],
            "scalars": scalars}
    return {"tensors": _pack_tensors(tensors), "meta": json.dumps(meta)}


def _restore(trainer, resume: dict) -> None:
    import torch
    from mmvae import History

    tensors = _unpack_tensors(resume["tensors"])
    meta = json.loads(resume["meta"])
    trainer.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v
    for k, v in meta["scalars"].items():
        i, name = k.split(".", 1)
        state.setdefault(int(i), {})[name] = v
    trainer.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.global"])
    for name, g in _generators(trainer).items():
        if f"rng.{name}" in tensors:
            g.set_state(tensors[f"rng.{name}"])
    trainer.epoch = int(meta["epoch"])
    trainer.history = History.from_dict(meta["history"])


def build_trainer(spec: dict):
    """The model and Trainer of a job spec: ``dataset``, ``seed``, ``fusion``, ``estimator``,
    ``K``, ``latent_dim``, ``epochs``, optional ``private_dim`` (MMVAE+'s private latent per
    modality, default 0), ``n_train`` (first n training points), ``n_val`` (validation points,
    default 500), ``n_monitor`` (training points of the train curves, default
    500), ``batch_size``."""
    import mmvae
    from mmvae.data import load_dataset

    b = load_dataset(spec["dataset"], seed=int(spec["seed"]), **spec.get("options", {}))
    scale = None if all(sp.likelihood in ("gaussian", "laplace") for sp in b.specs.values()) else 0.1
    config = mmvae.config_for_specs(b.specs, latent_dim=int(spec["latent_dim"]), fusion=spec["fusion"],
                                    network=spec.get("network", NETWORK), likelihood_scale=scale,
                                    private_dim=int(spec.get("private_dim", 0)))
    model = mmvae.build_model(config, seed=int(spec["seed"]))
    train = b.train.subset(slice(0, int(spec.get("n_train") or b.train.n)))
    tc = mmvae.TrainConfig(estimator=spec["estimator"], K=int(spec["K"]), epochs=int(spec["epochs"]),
                           seed=int(spec["seed"]), device="cpu", eval_K=int(spec["K"]),
                           batch_size=int(spec.get("batch_size", 128)))
    trainer = mmvae.Trainer(model, train, b.val.subset(slice(0, int(spec.get("n_val", 500)))), tc)
    n_monitor = int(spec.get("n_monitor", 500))
    if hasattr(trainer, "monitor_size"):  # a Trainer that takes the monitor size
        trainer.monitor_size = n_monitor
    return trainer, config


def train_job(job_id: str, spec: dict, channel) -> dict:
    """Run one job in this (worker) process; report ``started`` and one ``epoch`` event per epoch
    through ``channel``; stop at the end of the epoch on pause, at the next step on cancel.

    Returns {state: done | paused | cancelled, history, weights (safetensors bytes), config,
    train, resume (after a pause), cpu_s (CPU-seconds of this job in this process)}."""
    cpu0 = time.process_time()
    torch = _one_thread()
    if channel.control(job_id) == "cancel":  # cancelled while it waited
        return {"state": "cancelled", "cpu_s": time.process_time() - cpu0}
    channel.report(job_id, "started", {"pid": os.getpid(), "host": os.uname().nodename})
    trainer, config = build_trainer(spec)
    if spec.get("resume"):
        _restore(trainer, spec["resume"])
    stop_at = min(int(spec.get("stop_at") or spec["epochs"]), int(spec["epochs"]))
    checked = [time.monotonic()]

    def on_step(_progress) -> None:  # a cancel lands within about a fifth of a second
        now = time.monotonic()
        if now - checked[0] > 0.2:
            checked[0] = now
            if channel.control(job_id) == "cancel":
                raise Cancelled

    trainer.callback = on_step
    state = "done"
    try:
        with torch.random.fork_rng(devices=[]):  # a worker's later jobs never see this job's draws
            while trainer.epoch < stop_at and not trainer.history.stopped:
                record = trainer.run_epoch()
                if record is not None:
                    channel.report(job_id, "epoch", dict(record))
                control = channel.control(job_id)
                if control == "cancel":
                    raise Cancelled
                if control == "pause" and trainer.epoch < stop_at:
                    break
            if trainer.epoch < int(spec["epochs"]) and not trainer.history.stopped:
                state = "paused"
            resume = resume_state(trainer) if state == "paused" else None
    except Cancelled:
        return {"state": "cancelled", "cpu_s": time.process_time() - cpu0}
    return {"state": state, "history": trainer.history.to_dict(), "config": config.to_dict(),
            "train": trainer.config.to_dict(), "weights": _pack_tensors(trainer.model.state_dict()),
            "resume": resume, "cpu_s": time.process_time() - cpu0}


def model_from_result(result: dict):
    """Rebuild the trained model (CPU) from a finished job's config and weights."""
    import mmvae

    model = mmvae.MultimodalVAE(mmvae.ModelConfig.from_dict(result["config"]))
    model.load_state_dict(_unpack_tensors(result["weights"]))
    return model.eval()


# ------------------------------------------------------------------------------ backends
class LocalChannel:
    """Progress and control between the server and local workers (manager proxies: picklable)."""

    def __init__(self, events, controls) -> None:
        self.events, self.controls = events, controls

    def report(self, job_id: str, kind: str, payload: dict) -> None:
        self.events.put((job_id, kind, payload, time.time()))

    def control(self, job_id: str) -> str | None:
        return self.controls.get(job_id)


_MAIN_LOCK = threading.Lock()


@contextlib.contextmanager
def plain_main():
    """While processes are spawned: a bare ``__main__``. Streamlit runs the app script as
    ``__main__``, and ``multiprocessing``'s spawn would re-run that script in every worker."""
    import types

    with _MAIN_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            sys.modules["__main__"] = main


class LocalBackend:
    """Spawned worker processes (``ProcessPoolExecutor``), warm after their first job."""

    name = "local processes"

    def __init__(self, workers: int) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")  # never fork a threaded server
        with plain_main():
            self._manager = ctx.Manager()
        self.channel = LocalChannel(self._manager.Queue(), self._manager.dict())
        self._executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker)
        self.workers = workers

    def warm(self) -> None:
        with plain_main():  # workers start on demand, one per submit while none is idle
            for _ in range(self.workers):
                self._executor.submit(init_worker)

    def submit(self, job_id: str, spec: dict):
        with plain_main():
            return self._executor.submit(train_job, job_id, spec, self.channel)

    def set_control(self, job_id: str, value: str | None) -> None:
        if value is None:
            self.channel.controls.pop(job_id, None)
        else:
            self.channel.controls[job_id] = value

    def cancel(self, handle) -> None:
        handle.cancel()  # a queued job never starts; a running one sees the flag

    def events(self, timeout: float) -> list:
        import queue

        out = []
        try:
            out.append(self.channel.events.get(timeout=timeout))
            while True:
                out.append(self.channel.events.get_nowait())
        except queue.Empty:
            pass
        return out

    def finished(self, handles: dict) -> list:
        return [job_id for job_id, h in handles.items() if h.done()]

    def result(self, handle) -> dict:
        return handle.result()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._manager.shutdown()


class _Board:
    """Ray actor: progress events and pause / cancel flags of the jobs."""

    def __init__(self) -> None:
        self._events: list = []
        self._controls: dict = {}

    def report(self, job_id, kind, payload, at) -> None:
        self._events.append((job_id, kind, payload, at))
        del self._events[:-10_000]  # bounded even if nobody drains

    def drain(self) -> list:
        out, self._events = self._events, []
        return out

    def set_control(self, job_id, value) -> None:
        if value is None:
            self._controls.pop(job_id, None)
        else:
            self._controls[job_id] = value

    def control(self, job_id):
        return self._controls.get(job_id)


class RayChannel:
    def __init__(self, board) -> None:
        self.board = board

    def report(self, job_id: str, kind: str, payload: dict) -> None:
        self.board.report.remote(job_id, kind, payload, time.time())

    def control(self, job_id: str) -> str | None:
        import ray

        return ray.get(self.board.control.remote(job_id))


def _ray_train_job(job_id: str, spec: dict, channel) -> dict:
    return train_job(job_id, spec, channel)


class RayBackend:
    """Jobs as Ray tasks (``num_cpus=1`` each, so the cluster's CPUs bound how many run at once);
    one actor holds progress and flags. ``address``: ``auto``, ``ray://host:port`` or ``local``."""

    name = "Ray"

    def __init__(self, address: str, workers: int | None = None, **init_options) -> None:
        import ray

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        if not ray.is_initialized():
            # every worker (on any machine) gets this checkout's mmvae and app packages
            runtime_env = {"py_modules": [os.path.join(root, "mmvae"), os.path.join(root, "app")]}
            options = {"include_dashboard": False, "log_to_driver": False, "runtime_env": runtime_env,
                       **init_options}
            ray.init(address=address, **options)
        self._ray = ray
        self._board = ray.remote(num_cpus=0)(_Board).remote()
        self.channel = RayChannel(self._board)
        self._task = ray.remote(num_cpus=1, max_retries=0)(_ray_train_job)
        self.workers = workers or int(ray.cluster_resources().get("CPU", 1))

    def warm(self) -> None:
        pass

    def submit(self, job_id: str, spec: dict):
        return self._task.remote(job_id, spec, self.channel)

    def set_control(self, job_id: str, value: str | None) -> None:
        self._board.set_control.remote(job_id, value)

    def cancel(self, handle) -> None:
        self._ray.cancel(handle)

    def events(self, timeout: float) -> list:
        out = self._ray.get(self._board.drain.remote())
        if not out:
            time.sleep(timeout)
        return out

    def finished(self, handles: dict) -> list:
        if not handles:
            return []
        ids = {h: j for j, h in handles.items()}
        ready, _ = self._ray.wait(list(ids), num_returns=len(ids), timeout=0)
        return [ids[r] for r in ready]

    def result(self, handle) -> dict:
        return self._ray.get(handle)

    def shutdown(self) -> None:
        pass


# ------------------------------------------------------------------------------ the pool (in the server)
@dataclass
class Job:
    id: str
    session: str
    spec: dict
    seq: int
    submitted: float
    state: str = "queued"  # queued, running, done, paused, cancelled, failed
    started: float | None = None
    finished: float | None = None
    epoch0: int = 0  # epochs done before this job (a resumed job)
    records: list = field(default_factory=list)
    result: dict | None = None
    error: str | None = None
    host: str = ""


@dataclass(frozen=True)
class JobStatus:
    """What the Train page shows: ``state``; ``position`` (1 = next to start; 0 when not queued);
    ``epoch`` of ``epochs``; ``records`` (the live history); ``wait_s`` (time queued, or until it
    started); ``eta_s`` (seconds until finished, an estimate; None when unknown); ``result`` when
    it ended; ``error`` when it failed."""

    id: str
    state: str
    position: int
    epoch: int
    epochs: int
    records: tuple
    wait_s: float
    eta_s: float | None
    result: dict | None
    error: str | None
    host: str


class JobPool:
    """Thread-safe FIFO job pool over a backend; one active job per session."""

    def __init__(self, backend, per_session: int = 1) -> None:
        self.backend = backend
        self.workers = backend.workers
        self.per_session = per_session
        self._jobs: dict[str, Job] = {}
        self._handles: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._epoch_s: list[float] = []  # recent seconds per epoch (for ETAs)
        self._stop = threading.Event()
        self._pump = threading.Thread(target=self._pump_loop, name="mmvae-job-pump", daemon=True)
        self._pump.start()

    # -- public API ------------------------------------------------------------------
    def submit(self, session: str, spec: dict) -> str:
        """Queue a job; raises :class:`JobLimitError` if the session already has an active one."""
        with self._lock:
            active = [j for j in self._jobs.values() if j.session == session and j.state in STATES_ACTIVE]
            if len(active) >= self.per_session:
                raise JobLimitError("you already have a training job queued or running: wait for it, "
                                    "pause it or cancel it first")
            job = Job(uuid.uuid4().hex[:12], session, dict(spec), next(self._seq), time.time())
            if spec.get("resume"):
                job.epoch0 = int(json.loads(spec["resume"]["meta"])["epoch"])
            self._jobs[job.id] = job
            self._handles[job.id] = self.backend.submit(job.id, job.spec)
            self._trim()
        return job.id

    def status(self, job_id: str) -> JobStatus | None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            return self._status(job)

    def pause(self, job_id: str) -> None:
        """A running job stops at the end of its epoch and comes back ``paused`` with its resume
        state; a queued one is cancelled (nothing to keep yet)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state not in STATES_ACTIVE:
                return
            queued = job.state == "queued"
        if queued:
            self.cancel(job_id)
        else:
            self.backend.set_control(job_id, "pause")

    def cancel(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state not in STATES_ACTIVE:
                return
            handle = self._handles.get(job_id)
            if job.state == "queued":
                job.state, job.finished = "cancelled", time.time()
        self.backend.set_control(job_id, "cancel")
        if handle is not None:
            self.backend.cancel(handle)

    def forget(self, job_id: str) -> None:
        """Drop a job the session has collected (or no longer wants)."""
        self.cancel(job_id)
        with self._lock:
            self._jobs.pop(job_id, None)
            self._handles.pop(job_id, None)
        self.backend.set_control(job_id, None)

    def counts(self) -> dict:
        with self._lock:
            states = [j.state for j in self._jobs.values()]
        return {s: states.count(s) for s in ("queued", "running", "done", "paused", "cancelled", "failed")}

    def close(self) -> None:
        self._stop.set()
        self._pump.join(timeout=5)
        self.backend.shutdown()

    # -- internals -------------------------------------------------------------------
    def _queued(self) -> list[Job]:
        return sorted((j for j in self._jobs.values() if j.state == "queued"), key=lambda j: j.seq)

    def _seconds_per_epoch(self) -> float | None:
        return sum(self._epoch_s) / len(self._epoch_s) if self._epoch_s else None

    def _remaining_s(self, job: Job, now: float) -> float:
        """Seconds of work left in ``job`` (an estimate)."""
        target = min(int(job.spec.get("stop_at") or job.spec["epochs"]), int(job.spec["epochs"]))
        left = max(target - job.epoch0 - len(job.records), 0)
        per = self._seconds_per_epoch()
        own = [float(r["seconds"]) for r in job.records if "seconds" in r]
        if job.state == "running" and own:
            per = sum(own) / len(own)
        if per is None:
            return DEFAULT_JOB_SECONDS * left / max(int(job.spec["epochs"]), 1)
        return per * left

    def _status(self, job: Job) -> JobStatus:
        now = time.time()
        position, eta = 0, None
        if job.state == "queued":
            queue = self._queued()
            position = next(i for i, j in enumerate(queue) if j.id == job.id) + 1
            # the job starts when the running jobs and the queued ones ahead of it have freed a worker
            ahead = sorted(self._remaining_s(j, now) for j in self._jobs.values() if j.state == "running")
            slots = ahead + [0.0] * max(self.workers - len(ahead), 0)
            for j in queue[: position - 1]:
                slots.sort()
                slots[0] += self._remaining_s(j, now)
            eta = min(slots) + self._remaining_s(job, now) if slots else None
        elif job.state == "running":
            eta = self._remaining_s(job, now)
        wait = (job.started or job.finished or now) - job.submitted  # queued until it started (or ended)
        return JobStatus(job.id, job.state, position, job.epoch0 + len(job.records), int(job.spec["epochs"]),
                         tuple(job.records), wait, eta, job.result, job.error, job.host)

    def _trim(self) -> None:
        ended = sorted((j for j in self._jobs.values() if j.state not in STATES_ACTIVE), key=lambda j: j.seq)
        for j in ended[: max(len(ended) - MAX_FINISHED, 0)]:
            self._jobs.pop(j.id, None)
            self._handles.pop(j.id, None)

    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            try:
                events = self.backend.events(timeout=0.1)
            except Exception:  # noqa: BLE001 - the backend is shutting down
                if self._stop.is_set():
                    return
                events = []
                time.sleep(0.1)
            with self._lock:
                for job_id, kind, payload, at in events:
                    job = self._jobs.get(job_id)
                    if job is None:
                        continue
                    if kind == "started" and job.state == "queued":
                        job.state, job.started, job.host = "running", at, str(payload.get("host", ""))
                    elif kind == "epoch" and job.state in STATES_ACTIVE:  # Ray's may come after the result
                        job.records.append(payload)
                        if "seconds" in payload:
                            self._epoch_s = (self._epoch_s + [float(payload["seconds"])])[-50:]
                handles = {j: h for j, h in self._handles.items()
                           if j in self._jobs and self._jobs[j].result is None and self._jobs[j].error is None}
            for job_id in self.backend.finished(handles):
                self._finish(job_id, handles[job_id])

    def _finish(self, job_id: str, handle) -> None:
        try:
            result, error = self.backend.result(handle), None
        except BaseException as e:  # noqa: BLE001 - cancelled futures / Ray task errors
            result, error = None, f"{type(e).__name__}: {e}".split("\n")[0]
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            job.finished = time.time()
            if result is not None:
                job.result, job.state = result, result["state"]
                if result.get("history"):
                    job.records = list(result["history"]["records"])[job.epoch0:]
            elif job.state != "cancelled":
                cancelled = "Cancel" in (error or "")
                job.state, job.error = ("cancelled", None) if cancelled else ("failed", error)
            self._handles.pop(job_id, None)
            self._trim()
        self.backend.set_control(job_id, None)


def options_from_argv(argv: list[str] | None = None) -> dict:
    """``--ray-address ADDRESS`` and ``--job-workers N`` after ``--`` on the streamlit command line,
    else ``MMVAE_RAY_ADDRESS`` / ``MMVAE_JOB_WORKERS``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out = {"ray_address": os.environ.get("MMVAE_RAY_ADDRESS") or None,
           "workers": int(os.environ.get("MMVAE_JOB_WORKERS") or 0) or None}
    for flag, key in (("--ray-address", "ray_address"), ("--job-workers", "workers")):
        if flag in argv and argv.index(flag) + 1 < len(argv):
            out[key] = argv[argv.index(flag) + 1]
    if out["workers"] is not None:
        out["workers"] = max(1, int(out["workers"]))
    return out


def make_pool(ray_address: str | None = None, workers: int | None = None, warm: bool = True) -> JobPool:
    """A local pool (``workers`` processes, default: the number of cores) or, given a Ray address,
    a Ray-backed one."""
    if ray_address:
        backend = RayBackend(ray_address, workers)
    else:
        backend = LocalBackend(workers or os.cpu_count() or 1)
    if warm:
        backend.warm()
    return JobPool(backend)
