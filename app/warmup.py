"""Start warm: once per server process, a background thread imports torch and mmvae's diagnostics
and compiles umap-learn's numba functions on a tiny problem, so the first student to open a page
(or to ask for UMAP) does not pay for it.

Numba's compiler is Python code that holds the GIL (about 10 CPU-seconds here), and every page
of every session is drawn by the same one Python process: while a room is opening pages, the
UMAP compilation would delay all of them. So it waits until no page has started a run for
:data:`QUIET_S` seconds (:func:`start` is called at the top of every page run). After the imports
the thread freezes the objects they created (``gc.freeze``): Python's full collections then skip
the millions of objects of torch, scipy and numba that live as long as the server.

``MMVAE_APP_WARM``: ``all`` (default) warms torch and UMAP, ``torch`` only torch and the
diagnostics, ``0`` nothing (the AppTest suite, which checks that "auto" never imports umap-learn).
:data:`STATUS` records what is done and how long it took; the Latent embeddings page reads it, so
its text about UMAP's first-run cost is what this server measured.
"""
from __future__ import annotations

import gc
import os
import threading
import time

import streamlit as st

FIRST_PAINT_DELAY_S = 2.0  # let the first page draw before the thread competes for the GIL
QUIET_S = 5.0  # UMAP compiles once no page has started a run for this long
STATUS: dict = {"started": None, "torch_s": None, "umap_started": None, "umap_s": None, "umap_error": None,
                "mode": None}
_LAST_RUN = [time.monotonic()]  # when a page run last called start()


def mode() -> str:
    value = os.environ.get("MMVAE_APP_WARM", "all").strip().lower()
    return {"0": "off", "false": "off", "no": "off", "off": "off", "torch": "torch"}.get(value, "all")


def _warm(what: str) -> None:
    time.sleep(FIRST_PAINT_DELAY_S)
    t0 = time.perf_counter()
    from app import state

    state._mmvae()  # torch + mmvae with the app's thread setting
    import mmvae.diagnostics  # noqa: F401 - scikit-learn behind it

    STATUS["torch_s"] = time.perf_counter() - t0
    gc.collect()
    gc.freeze()  # what the imports built lives as long as the server: later full collections skip it
    if what != "all":
        return
    wait_for_quiet()  # a room opening pages goes first
    STATUS["umap_started"] = time.time()
    t0 = time.perf_counter()
    try:
        import numpy as np

        from mmvae.diagnostics import embed_2d

        rng = np.random.default_rng(0)
        tiny = {"joint": rng.standard_normal((60, 3)).astype("float32")}
        embed_2d(tiny, method="umap", seed=0)  # compiles nn-descent and the layout optimiser
        STATUS["umap_s"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - warming is best effort; the page reports the real error
        STATUS["umap_error"] = f"{type(e).__name__}: {e}"


def wait_for_quiet(clock=time.monotonic, sleep=time.sleep) -> None:
    """Return once no page run has called :func:`start` for :data:`QUIET_S` seconds."""
    while clock() - _LAST_RUN[0] < QUIET_S:
        sleep(0.5)


def start() -> threading.Thread | None:
    """Note that a page run started (see :data:`QUIET_S`); start the warm-up thread once."""
    _LAST_RUN[0] = time.monotonic()
    return _start_once()


@st.cache_resource(show_spinner=False)
def _start_once() -> threading.Thread | None:
    """Start the warm-up thread (once per server process: ``st.cache_resource``)."""
    what = mode()
    STATUS["mode"] = what
    if what == "off":
        return None
    STATUS["started"] = time.time()
    thread = threading.Thread(target=_warm, args=(what,), name="mmvae-warmup", daemon=True)
    thread.start()
    return thread


def umap_note() -> str:
    """One sentence on the state of UMAP's compilation in this server, from :data:`STATUS`."""
    if STATUS["umap_s"] is not None:
        return (f"umap-learn was compiled in the background after this server started (it took "
                f"{STATUS['umap_s']:.0f} s): a UMAP of a few hundred points now takes a few seconds.")
    if STATUS["mode"] == "all" and STATUS["umap_error"] is None and STATUS["umap_started"] is not None:
        waited = time.time() - STATUS["umap_started"]
        return (f"umap-learn is still compiling in the background (started {waited:.0f} s ago; it takes about "
                "15 s on an idle 2-core CPU and minutes on a busy one): the first UMAP waits for it.")
    if STATUS["mode"] == "all" and STATUS["umap_error"] is None:
        return (f"umap-learn compiles in the background once no page has started for {QUIET_S:.0f} s (pages go "
                "first); until then the first UMAP compiles it: about 15 s on an idle 2-core CPU, minutes on a busy "
                "one. PCA is instant.")
    return ("The first UMAP in this server compiles umap-learn with numba: about 15 s on an idle 2-core CPU, "
            "minutes on a busy one. PCA is instant.")
