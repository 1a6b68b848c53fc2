"""Your well: upload a LAS or .npz well (or pick a shipped one), split it by depth, train the
impedance model in a background process, and see SI predicted from AI with its P10-P90 band against
the rock-physics baseline, with the held-out scores and the predicted LAS to download.

Everything computed comes from :mod:`mmvae.impedance` (through :func:`app.well_jobs.train_well_job`);
this page only draws. Text from the user's file (its name, curve names, metadata) is shown with
st.text / st.dataframe / inside code spans, never as Markdown.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import re
import time

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from app import jobs, links, well_jobs, widgets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MAX_MB = 50  # uploads larger than this are refused before they are parsed
POLL_S = 1.0


@st.cache_resource(max_entries=1)
def _executor() -> cf.ProcessPoolExecutor:
    """One worker process (spawned, one torch thread) shared by the sessions: jobs queue."""
    return cf.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                  initializer=well_jobs.worker_init)


@st.cache_resource(max_entries=1)
def _shipped() -> dict:
    from mmvae.impedance import shipped_wells

    return shipped_wells()


def _data_error():
    from mmvae.data.dataset import DataError

    return DataError


def plain(text: str) -> str:
    """``text`` on one line as a Markdown code span: shown literally (no links, images or HTML)."""
    text = " ".join(str(text).split())
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks} {text} {ticks}"


def problem(message: str) -> None:
    st.error(plain(message), icon=":material/error:")


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "well"


def depth_figure(r: dict) -> go.Figure:
    """AI and SI along depth (depth down), P10-P90 band, the baseline, the intervals shaded."""
    d = np.asarray(r["depth"])
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("AI (km/s * g/cm3)", "SI (km/s * g/cm3)"))
    fig.add_trace(go.Scatter(x=r["ai"], y=d, name="AI measured", line={"color": "#555", "width": 1}), 1, 1)
    fig.add_trace(go.Scatter(x=r["p90"], y=d, line={"width": 0}, showlegend=False, hoverinfo="skip"), 1, 2)
    fig.add_trace(go.Scatter(x=r["p10"], y=d, fill="tonextx", fillcolor="rgba(31,119,180,0.25)", line={"width": 0},
                             name="predicted P10-P90"), 1, 2)
    if r["si"] is not None:
        fig.add_trace(go.Scatter(x=r["si"], y=d, name="SI measured", line={"color": "black", "width": 1}), 1, 2)
    fig.add_trace(go.Scatter(x=r["p50"], y=d, name="predicted P50", line={"color": "#1f77b4", "width": 1.5}), 1, 2)
    fig.add_trace(go.Scatter(x=r["baseline"], y=d, name="rock physics", line={"color": "#ff7f0e", "dash": "dash",
                                                                                 "width": 1.2}), 1, 2)
    shade = {"train": "rgba(0,0,0,0)", "val": "rgba(120,120,120,0.12)", "test": "rgba(214,39,40,0.10)"}
    for k, (top, base) in r["intervals"].items():
        for col in (1, 2):
            fig.add_hrect(y0=top, y1=base, fillcolor=shade.get(k, "rgba(0,0,0,0)"), line_width=0, row=1, col=col)
        fig.add_annotation(x=0, xref="x domain", y=(top + base) / 2, text=k, showarrow=False, xanchor="left",
                           font={"size": 11, "color": "#666"})
    fig.update_yaxes(autorange="reversed", title_text=f"depth ({r['depth_unit']})", row=1, col=1)
    fig.update_layout(height=700, margin={"l": 60, "r": 10, "t": 40, "b": 40}, legend={"orientation": "h", "y": -0.06})
    return fig


def show_result(r: dict, key: str, caption: str | None = None) -> None:
    """The depth plot (left) and the scores (right) of a prediction (:mod:`app.well_jobs`'s dict)."""
    left, right = st.columns([3, 2])
    left.plotly_chart(depth_figure(r), key=f"{key}_depth_plot", config={"displaylogo": False})
    left.caption(caption or "Shaded: validation (grey) and test (red) intervals. The curves are predicted from AI "
                 "alone along the whole well; the scores on the right are on the test interval, predicted from its "
                 "own AI.")
    m = r["metrics"]
    mod, rp = m["model"], m["rock_physics"]
    right.metric("RMSE of P50 (test)", f"{mod['rmse']:.3f}", f"{mod['rmse'] - rp['rmse']:+.3f} vs rock physics",
                 delta_color="inverse", help=f"{m['n']} test samples, {m['unit']}.")
    right.metric("80% band coverage", f"{100 * m['coverage_80']:.0f} %", help="Share of test samples inside P10-P90; "
                 "80 % when the band is calibrated.")
    if "coverage_50" in m:
        right.metric("50% band coverage", f"{100 * m['coverage_50']:.0f} %", help="Inside P25-P75; 50 % ideal.")
    rows = ["RMSE", "bias (pred - measured)", "correlation", "CRPS"]
    right.dataframe({"score": rows,
                     "model": [mod["rmse"], mod["bias"], mod["correlation"], m["crps"]],
                     "rock physics": [rp["rmse"], rp["bias"], rp["correlation"], m["crps_rock_physics"]]},
                    hide_index=True, key=f"{key}_scores")
    right.caption(f"Units {m['unit']} (correlation: none). RMSE model / rock physics = {m['rmse_ratio']:.2f}. "
                  "CRPS of the rock physics = its mean absolute error (a point forecast).")


def coverage_words(c: float) -> str:
    """How a P10-P90 coverage reads against the 80 % of a calibrated band."""
    if abs(c - 0.8) <= 0.06:
        return "close to the 80 % of a calibrated band"
    return ("more than the 80 % of a calibrated band: the band is too wide here" if c > 0.8 else
            "less than the 80 % of a calibrated band: the band is too narrow here (over-confident)")


def verdict_sentence(r: dict) -> str:
    """The held-out well's verdict, from the numbers: RMSE ratio and P10-P90 coverage."""
    m = r["metrics"]
    verdict = "beats" if m["rmse_ratio"] < 1 else "does not beat"
    return (f"On all {m['n']} depth samples of this well, predicted from its AI alone, the model's SI error "
            f"(RMSE of P50) is **{m['rmse_ratio']:.2f} x** the rock-physics formula's ({m['model']['rmse']:.3f} "
            f"against {m['rock_physics']['rmse']:.3f} {m['unit']}): it **{verdict}** the formula on this well. "
            f"Its P10-P90 band holds **{100 * m['coverage_80']:.0f} %** of the measured SI, "
            f"{coverage_words(m['coverage_80'])}.")


@st.cache_resource(max_entries=2, show_spinner=False)
def _held_out(path: str, mtime: float) -> dict:
    # plain data (lists, bytes), read-only and shared by the sessions; recomputed if the file changes
    return well_jobs.held_out_report(path)


# ------------------------------------------------------------------------------------ choose a well
st.title("Your well: SI from AI")
st.markdown("Train the impedance model on one interval of a well and predict shear impedance (SI) from acoustic "
            "impedance (AI) on another, with its P10-P90 band, against the rock-physics baseline (Gardner density "
            "+ Castagna mudrock line). Upload a LAS file (sonic, shear sonic, density) or a well `.npz` (arrays "
            "`depth`, `AI`, `SI` in km/s * g/cm3), or use a well shipped with mmvae. Files stay in this session's "
            f"memory (at most {MAX_MB} MB) and are never saved on the server.")

DataError = _data_error()
HELD_OUT_MODEL = os.path.join(ROOT, "checkpoints", "wells", "wells-physics.safetensors")
ss = st.session_state
lesson_open = links.setup().get("lesson") == "impedance"
if "well_view" not in ss or (lesson_open and not ss.get("_well_lesson_shown")):
    ss["well_view"] = "held-out" if lesson_open else "own"  # lesson 5 opens on the held-out well
ss["_well_lesson_shown"] = lesson_open
view = st.segmented_control("Show", ["held-out", "own"], key="well_view", required=True,
                            format_func=lambda v: {"held-out": "A shipped model on a well it never saw",
                                                   "own": "Train on a well of your choice"}[v])
if view == "held-out":
    widgets.lesson_note()
    with st.spinner("Predicting the held-out well (once per server)...", show_time=True):
        r = _held_out(HELD_OUT_MODEL, os.path.getmtime(HELD_OUT_MODEL))
    st.subheader(f"Held-out well {r['held_out']}")
    st.text(f"Model: {r['title']} (checkpoints/wells/wells-physics.safetensors). Trained on the wells "
            f"{', '.join(r['training_wells'])} (the upper 85 % of each; the deepest 15 % for its validation "
            f"curve). Well {r['held_out']} was left out of training entirely.")
    st.markdown(verdict_sentence(r))
    show_result(r, "heldout", caption="The whole well is held out (shaded red): every curve is predicted from this "
                "well's AI alone, and the scores on the right are on all of its samples.")
    st.caption("This is one of five leave-one-well-out tests over the shipped wells; README, 'Impedance workflow', "
               "gives all five (python benchmarks/impedance_wells.py): the ratio and the coverage differ from well "
               "to well.")
    st.download_button("Download the predicted LAS", r["las"], file_name=f"{_file_name(r['name'])}_pred.las",
                       mime="text/plain", key="heldout_las_download", on_click="ignore", icon=":material/download:")

if view == "own":  # train on a well of your choice
    source = st.radio("Well", ["A shipped well", "Upload a file"], horizontal=True, key="well_source")
    well, spec_source, curves = None, None, None
    if source == "A shipped well":
        names = list(_shipped())
        chosen = st.selectbox("Shipped well", names, key="well_shipped",
                              help="P-135 (Nova Scotia) and four North Sea wells; see "
                                   "mmvae/data/files/wells/README.md.")
        well = _shipped()[chosen]
        spec_source = {"shipped": chosen}
    else:
        up = st.file_uploader(f"A LAS (.las) or well .npz file, at most {MAX_MB} MB", type=["las", "npz"],
                              key="well_upload", max_upload_size=MAX_MB)
        if up is None:
            st.caption("Nothing uploaded yet.")
        elif up.size > MAX_MB * 1024 * 1024:
            problem(f"{up.name}: the file is {up.size / 2**20:.1f} MB; the limit is {MAX_MB} MB (cut the log to the "
                    f"interval you need, or drop curves you do not use)")
        else:
            st.text(f"File: {up.name} ({up.size / 2**20:.2f} MB)")
            blob = up.getvalue()
            is_npz = blob[:4] == b"PK\x03\x04" or up.name.lower().endswith(".npz")
            try:
                if not is_npz:
                    from mmvae.impedance import las_curves

                    offer = las_curves(blob, up.name)
                    mnemonics = [m for m, _ in offer["curves"]]
                    units = dict(offer["curves"])
                    st.dataframe({"curve": mnemonics, "unit": [units[m] for m in mnemonics]}, hide_index=True,
                                 height=min(35 * len(mnemonics) + 38, 250), key="well_curve_table")
                    cols = st.columns(3)
                    roles = [("p", "P-wave sonic (DT, DTC, DTCO; or a Vp curve)"), ("s", "S-wave sonic (DTS, DTSM)"),
                             ("density", "Density (RHOB, DEN, DENS)")]
                    curves = {}
                    for col, (role, label) in zip(cols, roles):
                        d = offer["default"][role]
                        curves[role] = col.selectbox(label, mnemonics,
                                                     index=mnemonics.index(d) if d in mnemonics else None,
                                                     format_func=lambda m: f"{m} ({units[m] or 'no unit'})",
                                                     placeholder="choose a curve", key=f"well_curve_{role}")
                    missing = [label for role, label in roles if curves[role] is None]
                    if missing:
                        problem(f"{up.name}: no curve recognised for: {'; '.join(missing)}; pick one above "
                                f"(available curves: {', '.join(mnemonics)})")
                        curves = None
                if is_npz or curves is not None:
                    key = (up.file_id, tuple(sorted((curves or {}).items())))
                    cached = st.session_state.get("well_read")
                    if cached is None or cached[0] != key:
                        from mmvae.impedance import read_well

                        st.session_state.pop("well_read", None)
                        st.session_state["well_read"] = (key, read_well(blob, name=up.name, curves=curves))
                    well = st.session_state["well_read"][1]
                    spec_source = {"data": blob, "name": up.name, "curves": curves}
            except DataError as e:
                problem(str(e))

    # ------------------------------------------------------------------------------------ split and train
    if well is not None:
        st.text(f"Well {well.name}: {well.n} samples, depth {well.depth[0]:g} to {well.depth[-1]:g} {well.depth_unit}, "
                f"{int(well.valid().sum())} with AI and SI")
        c = st.columns(4)
        order = c[0].radio("Depth split", ["top-down", "bottom-up"], key="well_order",
                           format_func=lambda o: {"top-down": "train above, test below",
                                                  "bottom-up": "train below, test above"}[o],
                           help="Contiguous intervals: no test window overlaps a training window.")
        train_pct = c[1].slider("Training interval (% of samples)", 20, 90, 70, step=5, key="well_train_pct")
        val_pct = c[2].slider("Validation interval (%)", 0, 30, 15, step=5, key="well_val_pct",
                              help="Between the training and test intervals; used for the validation curve only.")
        test_pct = 100 - train_pct - val_pct
        c[3].metric("Test interval", f"{test_pct} %")
        c = st.columns(3)
        epochs = c[0].number_input("Epochs", 1, 200, well_jobs.DEFAULTS["epochs"], key="well_epochs",
                                   help="About 1-2 s per epoch for a shipped well on one CPU core.")
        seed = c[1].number_input("Seed", 0, 10_000, well_jobs.DEFAULTS["seed"], key="well_seed")
        physics = c[2].toggle("Physics-aware features", well_jobs.DEFAULTS["physics"], key="well_physics",
                              help="Model log AI without its window mean, and log SI as a residual from the calibrated "
                                   "rock-physics line (see README, Impedance workflow). Off: model AI and SI "
                                   "themselves.")
        fractions = (train_pct / 100, val_pct / 100, test_pct / 100)
        ok = test_pct >= 5
        if not ok:
            problem(f"the test interval would hold {test_pct} % of the samples; leave at least 5 %")
        else:
            from mmvae.impedance import split_by_depth

            try:
                parts = split_by_depth(well, fractions, order)
                st.dataframe({"interval": list(parts), "top": [float(w.depth[0]) for w in parts.values()],
                              "base": [float(w.depth[-1]) for w in parts.values()],
                              "samples": [w.n for w in parts.values()]}, hide_index=True, key="well_intervals")
            except DataError as e:
                problem(str(e))
                ok = False
        job = st.session_state.get("well_job")
        if st.button("Train and predict", type="primary", key="well_train", disabled=not ok or job is not None,
                     icon=":material/model_training:"):
            spec = {**spec_source, "fractions": fractions, "order": order,
                    "config": {"epochs": int(epochs), "seed": int(seed), "physics": bool(physics)}}
            st.session_state.pop("well_failed", None)
            with jobs.plain_main():  # the worker is spawned on the first submit: not from the page's __main__
                future = _executor().submit(well_jobs.train_well_job, spec)
            st.session_state["well_job"] = {"future": future, "started": time.time(), "well": well.name}


    @st.fragment(run_every=POLL_S)
    def _poll() -> None:
        """Check the background job; on completion keep its result and redraw the page."""
        job = st.session_state.get("well_job")
        if job is None:
            return
        fut = job["future"]
        if not fut.done():
            st.info(f"Training in a background process: {time.time() - job['started']:.0f} s so far.",
                    icon=":material/hourglass_top:")
            return
        del st.session_state["well_job"]
        try:
            st.session_state["well_result"] = fut.result()
        except DataError as e:
            st.session_state["well_failed"] = str(e)
        except cf.process.BrokenProcessPool:
            _executor.clear()
            st.session_state["well_failed"] = "the training process stopped unexpectedly; press Train again"
        st.rerun()


    if "well_job" in st.session_state:
        _poll()
    if "well_failed" in st.session_state:
        problem(st.session_state["well_failed"])


    r = st.session_state.get("well_result")
    if r is not None:
        st.subheader("Prediction along depth")
        st.text(f"Results for well {r['name']}")
        show_result(r, "well")
        stem = _file_name(r["name"])
        c = st.columns(2)
        c[0].download_button("Download the predicted LAS", r["las"], file_name=f"{stem}_pred.las", mime="text/plain",
                             key="well_las_download", on_click="ignore", icon=":material/download:",
                             help="The measured curves, AI, SI, SI_P10 ... SI_P90 and SI_RP (rock physics).")
        c[1].download_button("Download the model (.safetensors)", r["checkpoint"], file_name=f"{stem}.safetensors",
                             mime="application/octet-stream", key="well_ckpt_download", on_click="ignore",
                             icon=":material/download:", help="Use it with python -m mmvae predict / evaluate.")
