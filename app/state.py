"""Session state: the setup (dataset, fusion, estimator, K, ...), the active model, shipped
checkpoints, per-session caches and the analysis effort ("quick"). The setup's binding to the
widgets and the shareable URL are in :mod:`app.links`.

Shipped checkpoints and datasets are read-only and cached globally (``st.cache_resource``).
Every model a user trains lives in ``st.session_state`` only, so users of one workshop server
never share or overwrite each other's models.

Nothing heavy is imported at module level: ``torch`` and ``mmvae`` load on the first call that
needs a model or a dataset, so the first page can draw the shipped model's saved training
curves (read from the checkpoint's JSON header) while they load.
"""
from __future__ import annotations

import json
import os
import struct
import sys
import threading
import time
import uuid
from typing import Any, Callable

import streamlit as st

from app.safe_text import md

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINTS = os.path.join(ROOT, "checkpoints")

FUSIONS = ("poe", "moe", "mopoe")
FUSION_NAMES = {"poe": "PoE (product)", "moe": "MoE (mixture)", "mopoe": "MoPoE (mixture of products)"}

def __getattr__(name: str):  # ``state.ESTIMATORS`` imports mmvae only when a control needs it
    if name == "ESTIMATORS":
        return tuple(_mmvae().ESTIMATORS)
    raise AttributeError(name)


ESTIMATOR_NAMES = {"elbo": "ELBO", "iwae": "IWAE", "dreg": "DReG (IWAE, doubly reparameterised)",
                   "stl": "STL (sticking the landing)"}
TRAIN_DATASETS = ("toy", "digits-halves", "digits-poly", "impedance", "wells")

# Caps for a shared workshop server.
MAX_K = 100
MAX_EPOCHS = 200
MAX_LATENT = 10
MAX_PRIVATE = 8  # private latent size per modality (MMVAE+; 0: none)
MAX_SEED = 10_000

DEFAULT_SETUP = {"dataset": "toy", "fusion": "poe", "estimator": "dreg", "K": 10, "seed": 0,
                 "latent_dim": 2, "private_dim": 0, "epochs": 10, "lesson": ""}
DEFAULT_PRESET = "toy-poe"

# Analysis effort. "quick" (the default, and what the tests use) keeps every page under about a
# second on a CPU; "full" uses the diagnostics' publication settings.
EFFORT = {
    True: {"n_points": 200, "repeats": 3, "ll_samples": 500, "n_mc": 200, "snr_repeats": 10, "snr_batch": 32,
           "emb_points": 400},
    False: {"n_points": 1000, "repeats": 5, "ll_samples": 2000, "n_mc": 1000, "snr_repeats": 50, "snr_batch": 64,
            "emb_points": 1000},
}


def quick() -> bool:
    """Quick analyses (fewer samples and repeats): on unless MMVAE_APP_QUICK=0 or switched off."""
    default = os.environ.get("MMVAE_APP_QUICK", "1").strip().lower() not in ("0", "false", "no", "off")
    return bool(st.session_state.setdefault("quick", default))


def effort() -> dict:
    return dict(EFFORT[quick()])


# --------------------------------------------------------------------------- lazy heavy imports
_TORCH_READY = False
FIRST_PAINT_S = float(os.environ.get("MMVAE_APP_FIRST_PAINT_S", "1.0"))


def yield_to_browser() -> None:
    """Once per server process, before the first heavy import: pause so the browser can fetch and
    draw what the page sent so far. The server's web handlers share the GIL with the script, and
    importing torch (about 2 s) would otherwise starve them: the first chart's plotly.js would
    only arrive after the import."""
    if "torch" not in sys.modules and FIRST_PAINT_S > 0:
        time.sleep(FIRST_PAINT_S)


# At most PAGE_TURNS runs at once do the rest of a page once its first chart has been sent (one
# server, one Python thread at a time: 30 students arriving together otherwise split the
# interpreter 30 ways and the server's web handlers, which send each chart and plotly's script,
# get a thirtieth of it; with turns, every student's first chart goes out before the slower
# controls of the others). A run waits at most PAGE_TURN_WAIT_S for its turn, then goes on.
PAGE_TURNS = max(1, int(os.environ.get("MMVAE_APP_PAGE_TURNS", "2")))
PAGE_TURN_WAIT_S = 10.0
_PAGE_TURNS = threading.BoundedSemaphore(PAGE_TURNS)
_turn = threading.local()  # one script run is one thread: whether this run holds a turn


def wait_turn() -> None:
    """Call after a page's first chart: wait (without the interpreter lock) for a turn to do the
    rest of the page. Released by :func:`end_turn` at the end of the run (streamlit_app.py)."""
    if not getattr(_turn, "held", False):
        _turn.held = _PAGE_TURNS.acquire(timeout=PAGE_TURN_WAIT_S)


def end_turn() -> None:
    """Give back this run's turn, if it holds one (every run ends with this, also on st.stop,
    st.rerun or an error)."""
    if getattr(_turn, "held", False):
        _turn.held = False
        _PAGE_TURNS.release()


def _mmvae():
    """Import torch and mmvae on first use (about 2 s), with the app's thread setting."""
    global _TORCH_READY
    if not _TORCH_READY:
        import torch

        torch.set_num_threads(max(1, min(4, (os.cpu_count() or 2) // 2)))  # leave a core for the server
        _TORCH_READY = True
    import mmvae

    return mmvae


# --------------------------------------------------------------------------- setup
# The setup's validation, its binding to widgets and the shareable link live in app/links.py.
def setup() -> dict:
    return st.session_state.setdefault("setup", dict(DEFAULT_SETUP))


# --------------------------------------------------------------------------- shipped checkpoints
def shipped_names() -> list[str]:
    if not os.path.isdir(CHECKPOINTS):
        return []
    return sorted(f[: -len(".safetensors")] for f in os.listdir(CHECKPOINTS) if f.endswith(".safetensors"))


@st.cache_resource(show_spinner=False, max_entries=16)
def _shipped_checkpoint(name: str):
    # read-only and shared by all sessions; nothing ever trains these in place
    return _mmvae().load_checkpoint(os.path.join(CHECKPOINTS, f"{name}.safetensors"), device=device())


@st.cache_resource(show_spinner=False, max_entries=32)
def shipped_header(name: str) -> dict:
    """The JSON records of a shipped checkpoint (history, train, data, extra) from the safetensors
    header alone: no torch needed, so the first page draws the saved curves at once."""
    with open(os.path.join(CHECKPOINTS, f"{name}.safetensors"), "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        meta = json.loads(f.read(length)).get("__metadata__") or {}
    return {k: json.loads(meta.get(k) or "{}") for k in ("config", "data", "train", "history", "extra")}


@st.cache_resource(show_spinner=False, max_entries=32)
def _shipped_curves(name: str) -> tuple:
    """The saved training curves of a shipped checkpoint as (figure, rows), built once per server:
    every student's first page draws them, and building the figure cost each of 30 students as
    much as sending it. Shared read-only: ``st.plotly_chart`` copies the figure, the CSV reads the rows."""
    from app import figures

    h = shipped_header(name)
    return figures.training_curves(h["history"].get("records", []), h["train"].get("eval_K") or h["train"].get("K", 1))


def preview_curves() -> tuple:
    """The active model's saved training curves (figure, rows), without loading a shipped model."""
    ss = st.session_state
    if "active" in ss and ss["active"].get("source") != "shipped":
        from app import figures

        p = active_preview()
        return figures.training_curves(p["history"].get("records", []), p["train"].get("eval_K") or p["train"].get("K", 1))
    return _shipped_curves(ss["active"]["name"] if "active" in ss else ss.get("active_shipped") or DEFAULT_PRESET)


def shipped_entry(name: str) -> dict:
    ckpt = _shipped_checkpoint(name)
    return {"key": f"shipped:{name}", "model": ckpt.model, "data": ckpt.data, "train": ckpt.train,
            "history": ckpt.history, "title": ckpt.extra.get("title", name), "source": "shipped", "name": name}


def trained_entry(model, data_info: dict, train_info: dict, history: dict, title: str) -> dict:
    return {"key": f"trained:{uuid.uuid4().hex[:8]}", "model": model, "data": data_info, "train": train_info,
            "history": history, "title": title, "source": "trained", "name": "my-model"}


def device():
    return _mmvae().resolve_device("auto")


# --------------------------------------------------------------------------- active model + data
def set_active(entry: dict) -> None:
    st.session_state.pop("active_shipped", None)
    st.session_state["active"] = entry


def set_active_shipped(name: str) -> None:
    """Make a shipped checkpoint the active model without loading it yet (see :func:`active`)."""
    st.session_state.pop("active", None)
    st.session_state["active_shipped"] = name


def active() -> dict:
    """The session's current model (see :func:`current_model`)."""
    ss = st.session_state
    collect_training()  # a training that just came back becomes the current model
    if "active" not in ss:
        ss["active"] = shipped_entry(ss.pop("active_shipped", None) or DEFAULT_PRESET)
    return ss["active"]


def active_preview() -> dict:
    """Title, train settings and history of the active model, without loading a shipped one."""
    ss = st.session_state
    if "active" in ss:
        e = ss["active"]
        return {"title": e["title"], "train": e.get("train", {}), "history": e.get("history", {})}
    name = ss.get("active_shipped") or DEFAULT_PRESET
    h = shipped_header(name)
    return {"title": h["extra"].get("title", name), "train": h["train"], "history": h["history"]}


DATASET_ENTRIES = 8  # (name, seed, options) kept by the server, least recently used dropped first


@st.cache_resource(show_spinner=False, max_entries=DATASET_ENTRIES)
def _dataset(name: str, seed: int, options_json: str):
    # datasets are read-only in the app (never modified in place), so sharing them is safe
    _mmvae()
    from mmvae.data import load_dataset

    return load_dataset(name, seed=seed, **json.loads(options_json))


def dataset(name: str, seed: int = 0, options: dict | None = None):
    return _dataset(name, int(seed), json.dumps(options or {}, sort_keys=True))


def bundle_of(entry: dict):
    info = entry["data"]
    return dataset(info["name"], int(info.get("seed", 0)), dict(info.get("options", {})))


def model_version(entry: dict) -> str:
    """Changes whenever the entry's weights change (training adds records)."""
    return f"{entry['key']}:{len(entry.get('history', {}).get('records', []))}"


MEMO_ENTRIES = 64  # analysis results kept per session (least recently used dropped first)


@st.cache_resource(scope="session", max_entries=MEMO_ENTRIES, show_spinner=False)
def _memo(name: str, version: str | None, args: tuple, _fn: Callable[[], Any]) -> Any:
    # one cache per browser session (dropped when it disconnects); results are never modified
    _memo_keys().add((name, version, args))
    return _fn()


def _memo_keys() -> set:
    keys = st.session_state.setdefault("_memo_keys", set())
    if len(keys) > 4 * MEMO_ENTRIES:  # only a hint for memo_has: keep it small
        keys.clear()
    return keys


def memo(name: str, entry: dict | None, args: tuple, fn: Callable[[], Any]) -> Any:
    """Per-session cache of analysis results keyed on the model's version and the arguments
    (``st.cache_resource(scope="session", max_entries=MEMO_ENTRIES)``: least recently used first
    out, dropped with the session)."""
    return _memo(name, model_version(entry) if entry else None, args, fn)


def dataset_info(name: str):
    _mmvae()
    from mmvae.data import DATASETS

    return DATASETS.get(name)


def display_label_names(bundle) -> list[str] | None:
    """Class names to show: the toy's labels (the signs of the *true* z1, z2 that generated each
    point) are spelled out as such: a learned latent can be rotated or mirrored, so its own
    quadrants need not match them."""
    names = list(bundle.label_names) if bundle.label_names else None
    if names and all(n and set(n) <= {"+", "-"} for n in names):
        return [f"true-z quadrant ({', '.join(n)})" for n in names]
    return names


def label_text(bundle, label) -> str:
    """How to show one data point's class in a title: a name when there is one, else the integer."""
    if label is None:
        return ""
    i = int(label)
    names = display_label_names(bundle)
    if names and 0 <= i < len(names):
        return f"label {names[i]}" if names[i] == str(i) else names[i]
    return f"label {i}"


# --------------------------------------------------------------------------- training in the session
NETWORK = {"type": "mlp", "hidden": [64, 64]}  # small, fast networks for a shared CPU server


def build_trainer(s: dict, fusion: str | None = None, n_train: int | None = None):
    """A fresh model and Trainer for setup ``s`` (session-only); returns (trainer, entry)."""
    mmvae = _mmvae()
    fusion = fusion or s["fusion"]
    b = dataset(s["dataset"], s["seed"])
    scale = None if all(sp.likelihood in ("gaussian", "laplace") for sp in b.specs.values()) else 0.1
    config = mmvae.config_for_specs(b.specs, latent_dim=int(s["latent_dim"]), fusion=fusion, network=NETWORK,
                                    likelihood_scale=scale, private_dim=int(s.get("private_dim", 0)))
    model = mmvae.build_model(config, seed=int(s["seed"]))
    train = b.train.subset(slice(0, int(n_train or b.train.n)))
    tc = mmvae.TrainConfig(estimator=s["estimator"], K=int(s["K"]), epochs=int(s["epochs"]), seed=int(s["seed"]),
                           device=str(device()), eval_K=int(s["K"]))
    trainer = mmvae.Trainer(model, train, b.val.subset(slice(0, 500)), tc)
    data_info = mmvae.data_provenance(s["dataset"], {}, int(s["seed"]), b.specs)
    history = trainer.history.to_dict()  # shares the live records list
    title = f"{s['dataset']} {fusion.upper()} {s['estimator'].upper()} K={s['K']} seed {s['seed']}"
    return trainer, trained_entry(model, data_info, tc.to_dict(), history, title)


def memo_has(name: str, entry: dict | None, args: tuple) -> bool:
    """Whether :func:`memo` computed this result in this session (a hint, e.g. to skip a progress
    bar: the bounded cache may have dropped it since)."""
    return (name, model_version(entry) if entry else None, args) in _memo_keys()


# --------------------------------------------------------------------------- training jobs (app/jobs.py)
@st.cache_resource(show_spinner=False)
def job_pool():
    """The server's one job pool (survives reruns; thread-safe): local worker processes, or Ray when
    ``MMVAE_RAY_ADDRESS`` / ``-- --ray-address`` names a cluster (see app/jobs.py)."""
    from app import jobs

    return jobs.make_pool(**jobs.options_from_argv())


def session_key() -> str:
    """A random id of this browser session (the pool's per-session limit counts by it)."""
    return st.session_state.setdefault("_session_key", uuid.uuid4().hex)


def training_spec(s: dict, n_train: int | None = None, fusion: str | None = None) -> dict:
    """The job spec of setup ``s`` (JSON-able; see ``app.jobs.build_trainer``)."""
    return {"dataset": s["dataset"], "seed": int(s["seed"]), "fusion": fusion or s["fusion"],
            "estimator": s["estimator"], "K": int(s["K"]), "latent_dim": int(s["latent_dim"]),
            "private_dim": int(s.get("private_dim", 0)), "epochs": int(s["epochs"]), "n_train": int(n_train) if n_train else None}


def training() -> dict | None:
    """This session's training run: {job (id or None), spec, records, state, entry (the trained
    model once a job came back), resume (after a pause)}; None before the first Play."""
    return st.session_state.get("run")


def start_training(spec: dict, stop_at: int | None = None) -> str:
    """Submit ``spec`` (continuing a paused run of the same spec); raises ``JobLimitError``."""
    run = training()
    resume = run.get("resume") if run and run["spec"] == spec else None
    if resume is None:
        run = {"spec": spec, "records": [], "entry": None, "resume": None}
    job_spec = dict(spec, resume=resume, stop_at=stop_at)
    run["job"] = job_pool().submit(session_key(), job_spec)
    run["state"] = "queued"
    st.session_state["run"] = run
    return run["job"]


def training_status():
    """The ``JobStatus`` of this session's current job (None when there is none)."""
    run = training()
    if not run or not run.get("job"):
        return None
    return job_pool().status(run["job"])


def pause_training() -> None:
    run = training()
    if run and run.get("job"):
        job_pool().pause(run["job"])


def cancel_training() -> None:
    run = training()
    if run and run.get("job"):
        job_pool().cancel(run["job"])


def reset_training() -> None:
    """Cancel and forget this session's run (the model it already trained stays in "my models")."""
    run = st.session_state.pop("run", None)
    if run and run.get("job"):
        job_pool().forget(run["job"])


def collect_training() -> bool:
    """If this session's job has ended, take its result: the trained (or paused) model becomes the
    active model and joins "my models". Returns True when something changed."""
    run = training()
    if not run or not run.get("job"):
        return False
    status = job_pool().status(run["job"])
    if status is None:  # the pool forgot it (e.g. a restarted server)
        run.update(job=None, state="failed")
        return True
    if status.state in ("queued", "running"):
        return False
    run.update(job=None, state=status.state, error=status.error)
    result = status.result or {}
    if status.state in ("done", "paused") and result.get("weights"):
        from app import jobs

        model = jobs.model_from_result(result)
        run["records"] = list(result["history"]["records"])
        run["resume"] = result.get("resume")
        s = run["spec"]
        b = dataset(s["dataset"], s["seed"])
        data_info = {"name": s["dataset"], "options": {}, "seed": s["seed"],
                     "specs": {k: sp.to_dict() for k, sp in b.specs.items()}}
        title = f"{s['dataset']} {s['fusion'].upper()} {s['estimator'].upper()} K={s['K']} seed {s['seed']}"
        entry = run.get("entry")
        if entry is None:
            entry = trained_entry(model, data_info, result["train"], result["history"], title)
            run["entry"] = entry
            my = st.session_state.setdefault("my_models", [])
            my.append(entry)
            del my[:-5]  # keep memory bounded per session
        else:  # the same run, more epochs: same key, new version (see model_version)
            entry.update(model=model, train=result["train"], history=result["history"])
        set_active(entry)
        # pickers get a new widget identity: a value a browser still holds from before can't undo this
        st.session_state["_trained_version"] = st.session_state.get("_trained_version", 0) + 1
    job_pool().forget(status.id)
    return True


def current_model() -> dict:
    """The session's current model, for every page and the sidebar: a finished (or paused)
    training of this session as soon as it came back, else the model picked or linked
    (the same as :func:`active`)."""
    return active()
