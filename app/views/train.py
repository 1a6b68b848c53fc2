"""Train: pick a dataset, fusion rule and estimator; Play / Pause / Step / Reset; live curves."""
from __future__ import annotations

import time

import streamlit as st
from streamlit.errors import StreamlitAPIException

from app import figures, state, widgets

ss = st.session_state
SECONDS_PER_RERUN = 0.8  # train this long, redraw, then continue (so Pause is responsive)

st.title("Train a multimodal VAE")
st.markdown("Choose the data, how the modalities' posteriors are **fused** and which **estimator** trains "
            "the model, then press **Play**. The curves show the evidence lower bound (ELBO) and the tighter "
            "IWAE(K) bound on training and validation data: higher is better.")
widgets.lesson_note()
controls = st.container()
panel = st.container()
if ss.get("trainer") is None:
    # First the saved curves of the current model, read from the checkpoint's JSON header: no torch
    # yet, so they appear while the controls below import the package and load the data.
    preview = state.active_preview()
    st.info("Showing the curves saved with the current model (no training needed). Press **Play** to train "
            "your own model with the settings above.", icon=":material/info:")
    fig, rows = figures.training_curves(preview["history"].get("records", []),
                                        preview["train"].get("eval_K") or preview["train"].get("K", 1))
    widgets.chart(fig, rows, key="curves-shipped")
    state.yield_to_browser()
with controls:
    setup = widgets.setup_controls()
    bundle = state.dataset(setup["dataset"], setup["seed"])
    n_max = bundle.train.n
    cols = st.columns([1, 3])
with cols[0]:
    ss.setdefault("w_n_train", n_max)
    if ss["w_n_train"] > n_max:
        ss["w_n_train"] = n_max
    n_train = st.number_input(f"Training samples (up to {n_max})", min_value=20, max_value=n_max, step=100,
                              key="w_n_train", help="Fewer samples train faster.")
with cols[1]:
    st.caption(f"**{bundle.description}**: {bundle.train.n} training and {bundle.val.n} validation samples; "
               f"modalities " + ", ".join(f"`{k}` {tuple(s.shape)}" for k, s in bundle.specs.items())
               + f". Caps on this shared server: K <= {state.MAX_K}, epochs <= {state.MAX_EPOCHS}, "
               f"samples <= dataset size.")

WANTED = (setup["dataset"], setup["fusion"], setup["estimator"], setup["K"], setup["latent_dim"], setup["seed"],
          int(n_train))


def new_trainer() -> None:
    trainer, entry = state.build_trainer(state.setup(), n_train=int(n_train))
    ss["trainer"], ss["trainer_entry"], ss["trainer_setup"] = trainer, entry, WANTED
    ss.setdefault("my_models", []).append(entry)
    ss["my_models"] = ss["my_models"][-5:]  # keep memory bounded per session
    state.set_active(entry)


def run_epochs(budget_s: float, target: int) -> None:
    tr = ss["trainer"]
    t0 = time.perf_counter()
    while tr.epoch < target and not tr.history.stopped:
        tr.run_epoch()
        if time.perf_counter() - t0 > budget_s:
            break


def continue_playing() -> None:
    """Rerun the panel for the next epochs: only the fragment when this is a fragment run, else
    (e.g. right after Play made a new model, or a control changed while playing) the whole page,
    since Streamlit refuses a fragment-scoped rerun during a full run."""
    try:
        st.rerun(scope="fragment")
    except StreamlitAPIException:
        st.rerun()


@st.fragment
def training_panel() -> None:
    epochs = state.setup()["epochs"]
    b = st.columns(4)
    play = b[0].button("Play", icon=":material/play_arrow:", type="primary", use_container_width=True, key="btn_play")
    pause = b[1].button("Pause", icon=":material/pause:", use_container_width=True, key="btn_pause")
    step = b[2].button("Step (1 epoch)", icon=":material/skip_next:", use_container_width=True, key="btn_step")
    reset = b[3].button("Reset", icon=":material/restart_alt:", use_container_width=True, key="btn_reset")
    if reset:
        ss.pop("trainer", None)
        ss["playing"] = False
        st.rerun()  # the whole page: the saved curves come back
    if pause:
        ss["playing"] = False
    created = False
    if (play or step) and (ss.get("trainer") is None or ss.get("trainer_setup") != WANTED):
        new_trainer()
        created = True
    if play:
        ss["playing"] = True
    tr = ss.get("trainer")
    if step and tr is not None:
        ss["playing"] = False
        run_epochs(0.0, tr.epoch + 1)
    if created:
        st.rerun()  # the whole page: live curves replace the saved ones, the sidebar shows the new model
    if tr is not None and ss.get("trainer_setup") != WANTED:
        st.info("The settings changed since this model started training: press Play or Step to start a new "
                "model with the new settings (or Reset).", icon=":material/info:")
    if tr is None:
        return  # the saved curves of the current model are drawn below (outside this fragment)
    playing = bool(ss.get("playing")) and tr.epoch < epochs and not tr.history.stopped
    if playing:
        run_epochs(SECONDS_PER_RERUN, epochs)
    done = tr.epoch >= epochs
    st.progress(min(tr.epoch / epochs, 1.0), text=f"epoch {tr.epoch} of {epochs}"
                + (" (playing)" if playing and not done else " (paused)" if not done else " (done)"))
    if tr.history.stopped:
        st.error(tr.history.stopped)
    records = tr.history.records
    if records:
        last = records[-1]
        m = st.columns(4)
        m[0].metric("validation ELBO", f"{last.get('val_elbo', float('nan')):.2f}")
        m[1].metric(f"validation IWAE({tr.config.K})", f"{last.get('val_iwae', float('nan')):.2f}")
        m[2].metric("effective sample size", f"{last.get('ess', float('nan')):.1f} of {tr.config.K}")
        m[3].metric("seconds per epoch", f"{last.get('seconds', float('nan')):.2f}")
    fig, df = figures.training_curves(records, tr.config.K)
    widgets.chart(fig, df, key="curves-live")
    if playing and not done and not tr.history.stopped:
        continue_playing()
    if done or tr.history.stopped:
        ss["playing"] = False


with panel:
    training_panel()
st.divider()
entry = state.active()
st.markdown("##### The current model")
widgets.model_picker(key="train-picker")
widgets.checkpoint_download(entry, key="train-ckpt")
