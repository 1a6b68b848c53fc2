"""Widgets shared by the pages: charts with CSV downloads, the setup controls, the model picker
and the checkpoint download."""
from __future__ import annotations

import csv
import io
import os
import re
import tempfile

import streamlit as st

from app import state
from app.safe_text import md
from app.state import ESTIMATOR_NAMES, FUSION_NAMES, MAX_EPOCHS, MAX_K, MAX_LATENT


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "data"


def _csv(data) -> bytes | None:
    """CSV bytes of a DataFrame or of a list of row dicts (the latter without pandas)."""
    if data is None:
        return None
    if isinstance(data, list):
        if not data:
            return None
        fields = list(dict.fromkeys(k for row in data for k in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(data)
        return buf.getvalue().encode()
    return None if data.empty else data.to_csv(index=False).encode()


def chart(fig, df, key: str, on_select: str | None = None, caption: str | None = None):
    """An interactive plotly chart with a CSV download of its data (a DataFrame or a list of row
    dicts) underneath."""
    kwargs = {"on_select": on_select, "selection_mode": ("points",)} if on_select else {}
    event = st.plotly_chart(fig, key=key, config={"displaylogo": False}, **kwargs)
    if caption:
        st.caption(caption)
    data = _csv(df)
    if data is not None:
        st.download_button("Download the data (CSV)", data, file_name=f"{slug(key)}.csv",
                           mime="text/csv", key=f"{key}-csv", on_click="ignore", icon=":material/download:")
    return event


def unavailable(err: Exception) -> None:
    st.info(f"This view is not available yet: {md(err)}. The rest of the page still works.",
            icon=":material/construction:")


def model_caption(entry: dict) -> str:
    m = entry["model"]
    train = entry.get("train", {})
    records = entry.get("history", {}).get("records", [])
    where = "shipped checkpoint" if entry["source"] == "shipped" else "trained in this session"
    est = train.get("estimator", "?")
    return (f"**{md(entry['title'])}** ({where}): {md(entry['data'].get('name'))} data, {m.fusion.upper()} fusion, "
            f"{md(str(est).upper())} K={md(train.get('K', '?'))}, latent dim {m.latent_dim}, {len(records)} epochs")


def model_banner(entry: dict | None = None) -> dict:
    entry = entry or state.active()
    st.caption("Model: " + model_caption(entry))
    return entry


def model_picker(key: str = "picker") -> dict:
    """Choose among the shipped checkpoints and the models trained in this session."""
    options: dict[str, dict | str] = {}
    for name in state.shipped_names():
        options[f"shipped: {name}"] = name
    for entry in st.session_state.get("my_models", []):
        options[f"mine: {entry['title']}"] = entry
    current = state.active()
    labels = list(options)
    cur_label = next((lab for lab, v in options.items()
                      if (isinstance(v, str) and current["key"] == f"shipped:{v}")
                      or (isinstance(v, dict) and v["key"] == current["key"])), None)
    if cur_label is None:
        labels.insert(0, f"current: {current['title']}")
        options[labels[0]] = current
        cur_label = labels[0]
    version = st.session_state.get("_trained_version", 0)  # see state.collect_training
    key = key if not version else f"{key}-v{version}"
    shown = f"_{key}_shows"  # the active model this picker showed last time
    if st.session_state.get(shown) != current["key"] or st.session_state.get(key) not in options:
        st.session_state[key] = cur_label  # show the active model (e.g. a training that just came back)
    st.session_state[shown] = current["key"]
    # The choice is read from the return value, not an on_change callback: a callback of this picker
    # could fire later, on another page, with a value the browser kept from before the active model
    # changed, and silently swap the session's trained model for the shipped one.
    choice = st.selectbox("Model to look at", labels, key=key,
                          help="Shipped checkpoints load instantly; models you train appear here too.")
    if choice != cur_label:
        value = options[choice]
        if isinstance(value, str):
            state.set_active_shipped(value)
        else:
            state.set_active(value)
        st.session_state[shown] = None
        st.rerun()  # the whole page (and the sidebar) for the chosen model
    return current


@st.cache_data(show_spinner=False, max_entries=64)
def _shipped_bytes(name: str) -> bytes:
    with open(os.path.join(state.CHECKPOINTS, f"{name}.safetensors"), "rb") as f:
        return f.read()


def checkpoint_bytes(entry: dict) -> bytes:
    """The entry's model as checkpoint file bytes (save_checkpoint writes to a path: use a temp file)."""
    if entry["source"] == "shipped":
        return _shipped_bytes(entry["name"])

    def build() -> bytes:
        import mmvae

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.safetensors")
            mmvae.save_checkpoint(path, entry["model"], entry["data"], entry["train"], entry["history"],
                                  {"title": entry["title"]})
            with open(path, "rb") as f:
                return f.read()

    return state.memo("checkpoint-bytes", entry, (), build)


def checkpoint_download(entry: dict | None = None, key: str = "ckpt-download") -> None:
    entry = entry or state.active()
    st.download_button("Download this model's checkpoint", checkpoint_bytes(entry),
                       file_name=f"{slug(entry['title'])}.safetensors", mime="application/octet-stream",
                       key=key, on_click="ignore", icon=":material/download:",
                       help="A .safetensors file; load it with mmvae.load_checkpoint(path).")


def setup_controls(show_training: bool = True, key_prefix: str = "w_", skip: tuple = ()) -> dict:
    """Dataset, fusion, estimator, K, latent dim, epochs and seed; hidden ones (by a lesson) are
    shown as fixed text. Changes are written into the URL."""
    s = state.setup()
    hidden = state.hidden_controls()
    for k, v in s.items():  # widget keys start from the setup (after presets / links)
        st.session_state.setdefault(f"{key_prefix}{k}", v)
    values = {}
    cols = st.columns(4)
    with cols[0]:
        if "dataset" in hidden:
            st.markdown(f"**Dataset:** {s['dataset']}")
            values["dataset"] = s["dataset"]
        else:
            values["dataset"] = st.selectbox("Dataset", state.TRAIN_DATASETS, key=f"{key_prefix}dataset",
                                             help="toy has an exact log-likelihood; digits are images; "
                                                  "impedance and wells are well logs.")
        info = state.dataset_info(values["dataset"])
        if info is not None:
            st.caption(info.description)
    with cols[1]:
        if "fusion" in skip:
            values["fusion"] = s["fusion"]
        elif "fusion" in hidden:
            st.markdown(f"**Fusion:** {FUSION_NAMES[s['fusion']]}")
            values["fusion"] = s["fusion"]
        else:
            values["fusion"] = st.selectbox("Fusion rule", state.FUSIONS, format_func=FUSION_NAMES.get,
                                            key=f"{key_prefix}fusion",
                                            help="How the modalities' posteriors are combined into one.")
    with cols[2]:
        if "estimator" in hidden:
            st.markdown(f"**Estimator:** {ESTIMATOR_NAMES[s['estimator']]}")
            values["estimator"] = s["estimator"]
        else:
            values["estimator"] = st.selectbox("Estimator", state.ESTIMATORS, format_func=ESTIMATOR_NAMES.get,
                                               key=f"{key_prefix}estimator",
                                               help="The training objective and its gradient estimator.")
    with cols[3]:
        values["K"] = st.number_input(f"K (1-{MAX_K})", min_value=1, max_value=MAX_K, step=1,
                                      key=f"{key_prefix}K", disabled="K" in hidden,
                                      help=f"Importance samples per data point. Capped at {MAX_K} on this shared server.")
    if show_training:
        cols = st.columns(4)
        with cols[0]:
            values["latent_dim"] = st.number_input(f"Latent dimension (1-{MAX_LATENT})", min_value=1,
                                                   max_value=MAX_LATENT, step=1, key=f"{key_prefix}latent_dim",
                                                   help="2 lets you see the latent space directly.")
        with cols[1]:
            values["epochs"] = st.number_input(f"Epochs (1-{MAX_EPOCHS})", min_value=1, max_value=MAX_EPOCHS,
                                               step=1, key=f"{key_prefix}epochs",
                                               help=f"Passes over the training data. Capped at {MAX_EPOCHS}.")
        with cols[2]:
            values["seed"] = st.number_input("Seed", min_value=0, max_value=state.MAX_SEED, step=1,
                                             key=f"{key_prefix}seed", help="Same seed, same data and same result.")
    values = {k: (int(v) if k in ("K", "latent_dim", "epochs", "seed") else v) for k, v in values.items()}
    changed = {k: v for k, v in values.items() if s.get(k) != v}
    if changed:
        state.update_setup(**changed)
    else:
        state.sync_url()
    return state.setup()


def lesson_note() -> None:
    """If a lesson is open, remind the reader what to look for."""
    from app.lessons import LESSONS

    lesson = LESSONS.get(state.setup().get("lesson") or "")
    if lesson:
        with st.expander(f"Lesson {lesson['title']}", expanded=False):
            st.markdown(lesson["text"])


def safe(fn, *args, **kwargs):
    """Run an analysis; show a clear message instead of a traceback if it is unavailable."""
    from app import backend

    try:
        return fn(*args, **kwargs)
    except backend.Unavailable as e:
        unavailable(e)
    except Exception as e:  # noqa: BLE001 - a workshop page must never crash
        st.warning(f"This view could not be drawn: {type(e).__name__}: {md(e)}")
    return None
