"""Widgets shared by the pages: charts with CSV downloads, the setup controls, the model picker
and the checkpoint download."""
from __future__ import annotations

import csv
import io
import os
import re
import tempfile

import streamlit as st

from app import links, state
from app.safe_text import md
from app.state import ESTIMATOR_NAMES, FUSION_NAMES, MAX_EPOCHS, MAX_K, MAX_LATENT


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$&])")


def plain(text: str) -> str:
    """Text that Streamlit's Markdown shows literally (every Markdown/HTML special character
    backslash-escaped): for anything a user controls, e.g. values from a link."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


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


def chart(fig, df, key: str, on_select=None, caption: str | None = None):
    """An interactive plotly chart with a CSV download of its data (a DataFrame or a list of row
    dicts) underneath. ``on_select``: "rerun" or a callback (points selection mode)."""
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
    """The documented "this view does not apply here" case (:class:`app.backend.Unavailable`)."""
    st.info(f"This view does not apply here: {md(err)}. The rest of the page still works.", icon=":material/info:")


def model_caption(entry: dict) -> str:
    m = entry["model"]
    train = entry.get("train", {})
    records = entry.get("history", {}).get("records", [])
    where = "shipped checkpoint" if entry["source"] == "shipped" else "trained in this session"
    est = train.get("estimator", "?")
    return (f"**{md(entry['title'])}** ({where}): {md(entry['data'].get('name'))} data, {m.fusion.upper()} fusion, "
            f"{md(str(est).upper())} K={md(train.get('K', '?'))}, latent dim {m.latent_dim}"
            + (f" + private {m.private_dim} per modality" if getattr(m, "private_dim", 0) else "")
            + f", {len(records)} epochs")


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
    """Dataset, fusion, estimator, K, latent dim, epochs and seed, each bound to the session's
    setup (:func:`app.links.bind`: no page change resets them). Controls a lesson hides are
    shown as fixed text; names in ``skip`` are not shown at all."""
    s = links.setup()
    hidden = links.hidden_controls()

    def fixed(label: str, text: str) -> None:
        st.markdown(f"**{label}:** {text}")

    cols = st.columns(4)
    with cols[0]:
        if "dataset" in hidden:
            fixed("Dataset", s["dataset"])
        else:
            st.selectbox("Dataset", state.TRAIN_DATASETS, **links.bind("dataset", f"{key_prefix}dataset"),
                         help="toy has an exact log-likelihood; digits are images; impedance and wells are well logs.")
        info = state.dataset_info(links.setup()["dataset"])
        if info is not None:
            st.caption(info.description)
    with cols[1]:
        if "fusion" in skip:
            pass
        elif "fusion" in hidden:
            fixed("Fusion", FUSION_NAMES[s["fusion"]])
        else:
            st.selectbox("Fusion rule", state.FUSIONS, format_func=FUSION_NAMES.get,
                         **links.bind("fusion", f"{key_prefix}fusion"),
                         help="How the modalities' posteriors are combined into one.")
    with cols[2]:
        if "estimator" in hidden:
            fixed("Estimator", ESTIMATOR_NAMES[s["estimator"]])
        else:
            st.selectbox("Estimator", state.ESTIMATORS, format_func=ESTIMATOR_NAMES.get,
                         **links.bind("estimator", f"{key_prefix}estimator"),
                         help="The training objective and its gradient estimator. ELBO and IWAE: plain "
                              "reparameterised gradients. DReG: unbiased for IWAE(K); its encoder gradient's "
                              "signal-to-noise ratio grows with K for a single-Gaussian posterior (PoE), not "
                              "necessarily for MoE / MoPoE, where it keeps score terms. STL: trains the ELBO "
                              "(unbiased) at K = 1 and is biased for IWAE(K) when K > 1.")
    with cols[3]:
        st.number_input(f"K (1-{MAX_K})", min_value=1, max_value=MAX_K, step=1, disabled="K" in hidden,
                        **links.bind("K", f"{key_prefix}K"),
                        help=f"Importance samples per data point. Capped at {MAX_K} on this shared server.")
    if show_training:
        cols = st.columns(4)
        with cols[0]:
            st.number_input(f"Latent dimension (1-{MAX_LATENT})", min_value=1, max_value=MAX_LATENT, step=1,
                            **links.bind("latent_dim", f"{key_prefix}latent_dim"),
                            help="2 lets you see the latent space directly.")
        with cols[1]:
            st.number_input(f"Epochs (1-{MAX_EPOCHS})", min_value=1, max_value=MAX_EPOCHS, step=1,
                            **links.bind("epochs", f"{key_prefix}epochs"),
                            help=f"Passes over the training data. Capped at {MAX_EPOCHS}.")
        with cols[2]:
            st.number_input("Seed", min_value=0, max_value=state.MAX_SEED, step=1,
                            **links.bind("seed", f"{key_prefix}seed"), help="Same seed, same data and same result.")
        with cols[3]:
            st.number_input(f"Private latent per modality (0-{state.MAX_PRIVATE})", min_value=0,
                            max_value=state.MAX_PRIVATE, step=1, **links.bind("private_dim", f"{key_prefix}private_dim"),
                            help="MMVAE+ (Palumbo et al. 2023): each modality gets its own latent w_m of this size "
                                 "beside the shared z; a posterior component that does not encode a modality draws "
                                 "its w from a learned auxiliary prior. 0: one shared latent only. With PoE nothing "
                                 "keeps the shared part out of w (no cross-modal term); see the Swap style page.")
    return links.setup()


def lesson_note() -> None:
    """If a lesson is open, remind the reader what to look for."""
    from app.lessons import LESSONS

    lesson = LESSONS.get(links.setup().get("lesson") or "")
    if lesson:
        with st.expander(f"Lesson {lesson['title']}", expanded=False):
            st.markdown(lesson["text"])


def safe(fn, *args, **kwargs):
    """Run an analysis; when the view does not apply (:class:`app.backend.Unavailable`, a
    documented case) say so and return None. Every other exception is a bug: it propagates, so
    the page shows it and the tests fail."""
    from app import backend

    try:
        return fn(*args, **kwargs)
    except backend.Unavailable as e:
        unavailable(e)
    return None


def _clamp_state(key: str, lo: int, hi: int) -> None:
    """A stored widget value from another model (more test points) is brought into [lo, hi]."""
    v = st.session_state.get(key)
    if isinstance(v, (int, float)) and not lo <= v <= hi:
        st.session_state[key] = int(min(max(v, lo), hi))


def count_slider(where, label: str, lo: int, hi: int, default: int, step: int, key: str,
                 help: str | None = None) -> int:
    """How many items to use, from ``lo`` to ``hi``; when the data hold ``lo`` items or fewer
    (e.g. the 48 test windows of ``wells``) there is nothing to choose: all of them are used."""
    hi = int(hi)
    lo = min(int(lo), hi)
    if hi <= lo:
        where.caption(f"{label}: all {hi} (this data set has no more).")
        return hi
    _clamp_state(key, lo, hi)
    st.session_state.setdefault(key, int(min(max(default, lo), hi)))
    return int(where.slider(label, lo, hi, step=max(1, min(step, hi - lo)), key=key, help=help))


def index_slider(where, label: str, n: int, key: str, help: str | None = None) -> int:
    """A data point's index in [0, n - 1]; with one point there is nothing to choose."""
    n = int(n)
    if n <= 1:
        where.caption(f"{label}: 0 (the only one).")
        return 0
    _clamp_state(key, 0, n - 1)
    st.session_state.setdefault(key, 0)
    return int(where.slider(label, 0, n - 1, key=key, help=help))


def depth_log_chart(bundle, i: int, given, targets, gen: dict, key: str, title_suffix: str = "") -> None:
    """Test log ``i``: the given logs, the true and generated targets against depth in physical
    units and, for impedance data given AI, the rock-physics SI baseline."""
    import numpy as np

    from app import backend, figures

    test = bundle.test
    names = list(bundle.specs)
    depth_all = bundle.extras.get("depth", {})
    depth = np.asarray(depth_all["test"][i]) if "test" in depth_all else np.arange(bundle.specs[names[0]].shape[-1])
    depth_unit = bundle.extras.get("depth_unit", "sample")

    def physical(name: str, values) -> np.ndarray:
        return np.asarray(bundle.specs[name].to_physical(np.asarray(values))).ravel()

    curves = [{"modality": g, "what": "given", "values": physical(g, test.modalities[g][i].numpy())} for g in given]
    for t in targets:
        curves.append({"modality": t, "what": "truth", "values": physical(t, test.modalities[t][i].numpy())})
        curves.append({"modality": t, "what": "model", "values": physical(t, gen[t][0])})
    if bundle.name in ("impedance", "wells") and "AI" in given and "SI" in targets:
        ai = physical("AI", test.modalities["AI"][i].numpy())
        curves.append({"modality": "SI", "what": "baseline", "values": backend.rock_physics_baseline(ai)})
    label = f" (mostly {state.label_text(bundle, test.labels[i])})" if test.labels is not None else ""
    unit = bundle.specs[targets[0]].unit
    fig, d = figures.depth_logs(depth, curves, unit, depth_unit,
                                f"Test log #{i}{label}: given {' + '.join(given)}{title_suffix}")
    chart(fig, d, key=key)
