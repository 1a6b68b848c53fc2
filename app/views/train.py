"""Train: pick a dataset, fusion rule and estimator; Play / Pause / Step / Cancel / Reset; live curves.

Training runs as a job in the server's job pool (app/jobs.py), never in this script: the page
submits the job, then polls it (queue position, epochs done, live curves, an ETA) in a fragment
that reruns every POLL_S seconds while the job is queued or running."""
from __future__ import annotations

import streamlit as st

from app import figures, state, widgets
from app.jobs import JobLimitError
from app.safe_text import md

POLL_S = 1.5  # how often the panel of a queued or running job redraws (a fragment rerun, not the page)
LIVE = ("queued", "running")

st.title("Train a multimodal VAE")
st.markdown("Choose the data, how the modalities' posteriors are **fused** and which **estimator** trains "
            "the model, then press **Play**. The curves show the evidence lower bound (ELBO) and the tighter "
            "IWAE(K) bound on training and validation data: higher is better.")
widgets.lesson_note()
controls = st.container()
panel = st.container()
if state.training() is None:
    # First the saved curves of the current model, read from the checkpoint's JSON header: no torch
    # yet, so they appear while the controls below import the package and load the data.
    st.info("Showing the curves saved with the current model (no training needed). Press **Play** to train "
            "your own model with the settings above.", icon=":material/info:")
    fig, rows = state.preview_curves()  # a shipped model's figure is built once per server
    widgets.chart(fig, rows, key="curves-shipped")
    state.yield_to_browser()
state.wait_turn()  # the rest of the page waits while other students' first charts go out (app/state.py)
with controls:
    setup = widgets.setup_controls()
    bundle = state.dataset(setup["dataset"], setup["seed"])
    n_max = bundle.train.n
    cols = st.columns([1, 3])
with cols[0]:
    ss = st.session_state
    ss.setdefault("w_n_train", n_max)
    if ss["w_n_train"] > n_max:
        ss["w_n_train"] = n_max
    n_train = st.number_input(f"Training samples (up to {n_max})", min_value=20, max_value=n_max, step=100,
                              key="w_n_train", help="Fewer samples train faster.")
with cols[1]:
    st.caption(f"**{md(bundle.description)}**: {bundle.train.n} training and {bundle.val.n} validation samples; "
               f"modalities " + ", ".join(f"{md(k)} {tuple(s.shape)}" for k, s in bundle.specs.items())
               + f". Caps on this shared server: K <= {state.MAX_K}, epochs <= {state.MAX_EPOCHS}, "
               f"samples <= dataset size.")

SPEC = state.training_spec(setup, n_train=int(n_train))
state.job_pool()  # the first visit starts (and warms) the server's workers, before anyone presses Play


def seconds(s: float | None) -> str:
    return "a few seconds" if s is None else f"about {max(1, round(s))} s"


def status_line(status, epochs_done: int, epochs: int) -> None:
    """Queue position / progress bar with an ETA."""
    if status is not None and status.state == "queued":
        st.progress(0.0, text=f"epoch {epochs_done} of {epochs} (waiting in the queue: position {status.position}, "
                              f"{seconds(status.eta_s)} until trained)")
        st.caption(f"{state.job_pool().workers} models train at once on this server, first come first served; "
                   "your place is kept while you look at other pages.")
    elif status is not None and status.state == "running":
        st.progress(min(epochs_done / epochs, 1.0),
                    text=f"epoch {epochs_done} of {epochs} (training, {seconds(status.eta_s)} left)")
    else:
        run = state.training() or {}
        what = {"done": "done", "paused": "paused", "cancelled": "cancelled", "failed": "failed"}
        tail = what.get(run.get("state"), "paused") if epochs_done < epochs else "done"
        st.progress(min(epochs_done / epochs, 1.0), text=f"epoch {epochs_done} of {epochs} ({tail})")
        if run.get("state") == "failed":
            st.error(f"The training job failed: {md(run.get('error') or 'unknown error')}")


def panel_body(kind: str) -> None:
    if state.collect_training():
        st.rerun()  # the whole page: the sidebar and the picker show the model that came back
    run = state.training()
    status = state.training_status()
    live = status is not None and status.state in LIVE
    if kind != ("live" if live else "idle"):
        st.rerun()  # the whole page: this panel polls only while a job is queued or running
    b = st.columns(5)
    play = b[0].button("Play", icon=":material/play_arrow:", type="primary", use_container_width=True, key="btn_play")
    pause = b[1].button("Pause", icon=":material/pause:", use_container_width=True, key="btn_pause", disabled=not live)
    step = b[2].button("Step (1 epoch)", icon=":material/skip_next:", use_container_width=True, key="btn_step")
    cancel = b[3].button("Cancel", icon=":material/stop:", use_container_width=True, key="btn_cancel",
                         disabled=not live)
    reset = b[4].button("Reset", icon=":material/restart_alt:", use_container_width=True, key="btn_reset")
    if reset:
        state.reset_training()
        st.rerun()  # the whole page: the saved curves come back
    if pause:
        state.pause_training()
    if cancel:
        state.cancel_training()
    same = run is not None and run["spec"] == SPEC
    done = len(run["records"]) if same else 0
    if (play or step) and live:
        st.info("Your model is already training: Pause or Cancel it first.", icon=":material/info:")
    elif (play or step) and same and done >= SPEC["epochs"] and not run.get("resume"):
        st.info("This model has trained all its epochs: raise the epochs or change a setting to train a new one.",
                icon=":material/info:")
    elif play or step:
        try:
            state.start_training(SPEC, stop_at=done + 1 if step else None)
        except JobLimitError as e:
            st.warning(md(str(e)))
        else:
            st.rerun()  # the whole page: the live panel replaces the saved curves
    if run is None:
        return  # the saved curves of the current model are drawn above (outside this fragment)
    if not same:
        st.info("The settings changed since this model started training: press Play or Step to train a new "
                "model with the new settings (or Reset).", icon=":material/info:")
    records = list(run["records"]) + (list(status.records) if live else [])
    epochs = int(run["spec"]["epochs"])
    status_line(status if live else None, len(records), epochs)
    stopped = (run.get("entry") or {}).get("history", {}).get("stopped")
    if stopped:
        st.error(md(stopped))
    K = int(run["spec"]["K"])
    if records:
        last = records[-1]
        m = st.columns(4)
        m[0].metric("validation ELBO", f"{last.get('val_elbo', float('nan')):.2f}")
        m[1].metric(f"validation IWAE({K})", f"{last.get('val_iwae', float('nan')):.2f}")
        m[2].metric("effective sample size", f"{last.get('ess', float('nan')):.1f} of {K}")
        m[3].metric("seconds per epoch", f"{last.get('seconds', float('nan')):.2f}")
        fig, df = figures.training_curves(records, K)
        widgets.chart(fig, df, key="curves-live")


PANELS = {"idle": st.fragment(lambda: panel_body("idle")),
          "live": st.fragment(lambda: panel_body("live"), run_every=POLL_S)}
with panel:
    current = state.training_status()
    PANELS["live" if current is not None and current.state in LIVE else "idle"]()
st.divider()
entry = state.active()
st.markdown("##### The current model")
widgets.model_picker(key="train-picker")
widgets.checkpoint_download(entry, key="train-ckpt")
