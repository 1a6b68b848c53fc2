"""The session's setup and the shareable link.

The *setup* (dataset, fusion rule, estimator, K, latent dimension, epochs, seed, open lesson) is
a plain dict in ``st.session_state["setup"]``. It is not a widget's state, so Streamlit never
clears it when a page without those widgets runs: visiting Compare (or any page) cannot reset it.
Widgets are bound to it by :func:`bind`: before a widget is drawn its key gets the setup's value,
and its ``on_change`` callback writes the user's choice back.

The *link* (``st.query_params``) is rewritten at the end of every run from the setup, the open
lesson and the current model (``model=`` when it is a shipped checkpoint), and the page is the
URL's path, so copying the address bar reproduces page, lesson, model and setup. Opening a link
reads it once per browser session (:func:`init_session`); every value is validated, and notes on
what was changed are shown as plain text (never Markdown).
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from app import state
from app.state import DEFAULT_SETUP, FUSIONS, MAX_EPOCHS, MAX_K, MAX_LATENT, MAX_PRIVATE, MAX_SEED, TRAIN_DATASETS

SETUP_KEYS = ("dataset", "fusion", "estimator", "K", "latent_dim", "private_dim", "epochs", "seed")
QUERY_KEYS = SETUP_KEYS + ("lesson", "model")
INT_RANGES = {"K": (1, MAX_K), "seed": (0, MAX_SEED), "latent_dim": (1, MAX_LATENT), "private_dim": (0, MAX_PRIVATE),
              "epochs": (1, MAX_EPOCHS)}


# --------------------------------------------------------------------------- validation
def _clamp_int(name: str, value: Any, lo: int, hi: int, notes: list[str]) -> int | None:
    try:
        v = int(value)
    except (TypeError, ValueError):
        notes.append(f"{name}={value!r} in the link is not a whole number; using the default.")
        return None
    if v < lo or v > hi:
        notes.append(f"{name}={v} is outside {lo}..{hi} on this shared server; using {min(max(v, lo), hi)}.")
        v = min(max(v, lo), hi)
    return v


def validate_setup(raw: dict, base: dict | None = None) -> tuple[dict, list[str]]:
    """A clean setup from untrusted values (URL or presets) on top of ``base`` (default: the
    defaults), plus notes on anything that was changed."""
    from app.lessons import LESSONS

    notes: list[str] = []
    setup = dict(base or DEFAULT_SETUP)
    choices = {"dataset": lambda: TRAIN_DATASETS, "fusion": lambda: FUSIONS,
               "estimator": lambda: tuple(state.ESTIMATORS)}  # imports mmvae: only when a link names one
    for name, options in choices.items():
        if raw.get(name) is not None:
            allowed = options()
            if raw[name] in allowed:
                setup[name] = raw[name]
            else:
                notes.append(f"Unknown {name} {raw[name]!r}; choose one of {', '.join(allowed)}.")
    for name, (lo, hi) in INT_RANGES.items():
        if raw.get(name) is not None:
            v = _clamp_int(name, raw[name], lo, hi, notes)
            if v is not None:
                setup[name] = v
    lesson = raw.get("lesson") or ""
    if lesson and lesson not in LESSONS:
        notes.append(f"Unknown lesson {lesson!r}; lessons: {', '.join(LESSONS)}.")
        lesson = ""
    setup["lesson"] = lesson
    return setup, notes


# --------------------------------------------------------------------------- the setup
def setup() -> dict:
    """The session's setup (a copy would not persist edits: this is the stored dict)."""
    return state.setup()


def update_setup(**values: Any) -> None:
    setup().update(values)


def hidden_controls() -> set[str]:
    from app.lessons import LESSONS

    lesson = setup().get("lesson")
    return set(LESSONS[lesson].get("hide", ())) if lesson in LESSONS else set()


def bind(name: str, key: str) -> dict:
    """Keyword arguments that bind a widget (``key``) to the setup's ``name``: the widget shows
    the setup's value on every page and run, and a change by the user is written back.

    The widget's value is set from code only when it differs from the setup (a lesson, a link or
    another page changed the setup; or the widget is new on this page): setting it on every run
    would make a run that started before the user's latest change send the old value back to
    the browser and overwrite what the user just typed."""
    value = setup()[name]
    if st.session_state.get(key, object()) != value:
        st.session_state[key] = value

    def write_back() -> None:
        value = st.session_state[key]
        update_setup(**{name: int(value) if name in INT_RANGES else value})

    return {"key": key, "on_change": write_back}


# --------------------------------------------------------------------------- the current model
def current_model() -> dict:
    """The session's current model (an entry of :mod:`app.state`): what every page shows and
    what the sidebar names and downloads."""
    return state.active()


def current_model_name() -> str | None:
    """The shipped checkpoint's name when the current model is one (it can go in a link), else
    None (a model trained in this session lives in that session only)."""
    ss = st.session_state
    if "active" in ss:
        entry = ss["active"]
        return entry.get("name") if entry.get("source") == "shipped" else None
    return ss.get("active_shipped") or state.DEFAULT_PRESET


# --------------------------------------------------------------------------- lessons
def apply_lesson(lesson_id: str, link: dict | None = None) -> None:
    """Open a lesson: its setup (explicit values of a shared ``link`` win) and its checkpoint."""
    from app.lessons import LESSONS

    lesson = LESSONS[lesson_id]
    raw = {**lesson["setup"], "lesson": lesson_id}
    if link:
        raw.update({k: v for k, v in link.items() if v is not None and k in SETUP_KEYS})
    s, notes = validate_setup(raw, base=setup())
    st.session_state["setup"] = s
    st.session_state.setdefault("url_notes", []).extend(notes)
    state.set_active_shipped(lesson["checkpoint"])


def leave_lesson() -> None:
    update_setup(lesson="")


# --------------------------------------------------------------------------- the link
def query() -> dict[str, str]:
    """The link's query: the setup, the open lesson and the current shipped model."""
    s = setup()
    q = {k: str(s[k]) for k in SETUP_KEYS + ("lesson",) if s.get(k) not in (None, "")}
    name = current_model_name()
    if name:
        q["model"] = name
    return q


def sync_url() -> None:
    """Write the session's state into the address bar, on every run: a click on a page in the
    sidebar clears the browser's query string even when the server's copy still holds it."""
    st.query_params.from_dict(query())


def init_session() -> str | None:
    """Once per browser session: read the link. Returns the page a ``?lesson=`` link should open
    (None otherwise). A ``model=`` naming a shipped checkpoint opens it; a ``dataset`` + ``fusion``
    with a shipped model opens that one."""
    from app.lessons import LESSONS

    ss = st.session_state
    if ss.get("_initialised"):
        return None
    ss["_initialised"] = True
    raw = {k: st.query_params.get(k) for k in QUERY_KEYS}
    goto = None
    ss["url_notes"] = []
    s, notes = validate_setup(raw)
    ss["url_notes"].extend(notes)
    ss["setup"] = s
    state.set_active_shipped(state.DEFAULT_PRESET)
    if s["lesson"]:
        apply_lesson(s["lesson"], link=raw)
        goto = LESSONS[s["lesson"]]["page"]
    else:
        preset = f"{s['dataset']}-{s['fusion']}"
        if any(raw.get(k) for k in ("dataset", "fusion")) and preset in state.shipped_names():
            state.set_active_shipped(preset)
    model = raw.get("model")
    if model:
        if model in state.shipped_names():
            state.set_active_shipped(model)
        else:
            ss["url_notes"].append(f"Unknown model {model!r}; shipped models: {', '.join(state.shipped_names())}.")
    return goto
