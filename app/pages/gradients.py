"""Gradient noise: SNR of encoder and decoder gradients vs K for IWAE, DReG, STL."""
from __future__ import annotations

import streamlit as st

from app import backend, figures, state, widgets

st.title("Gradient noise")
st.markdown("A gradient estimate is useful when its signal (mean) is large compared with its noise (standard "
            "deviation). **What to notice:** with plain IWAE the *encoder's* signal-to-noise ratio falls as K "
            "grows, while DReG (and partly STL) keeps it rising; the decoder's SNR rises with K for all of them.")
widgets.lesson_note()
entry = widgets.model_picker(key="gradients-picker")
model = entry["model"]
bundle = state.bundle_of(entry)
effort = state.effort()
c = st.columns(4)
Ks = c[0].multiselect("K values", [1, 3, 10, 30, 100], default=[1, 3, 10, 30], key="grad_Ks")
estimators = c[1].multiselect("Estimators", ["iwae", "dreg", "stl"], default=["iwae", "dreg", "stl"], key="grad_est")
batch_n = widgets.count_slider(c[2], "Data points in the batch", 8, min(128, bundle.train.n), effort["snr_batch"], 8,
                               key="grad_n")
repeats = c[3].slider("Gradient draws per K", 5, 100, effort["snr_repeats"], step=5, key="grad_repeats",
                      help="The SNR is |mean| / std over this many independent gradient estimates.")
Ks = sorted(int(k) for k in Ks) or [1]
estimators = list(estimators) or ["dreg"]
batch = {k: v[:batch_n] for k, v in bundle.train.modalities.items()}
df = widgets.safe(lambda: state.memo("snr", entry, (tuple(Ks), tuple(estimators), batch_n, repeats),
                                     lambda: backend.gradient_snr(model, batch, Ks, estimators, repeats=repeats)))
if df is not None and not df.empty:
    built = widgets.safe(figures.gradient_snr, df)
    if built is not None:
        widgets.chart(*built, key="gradients-snr",
                      caption=f"Mean SNR over the parameter elements of the encoders and of the decoders, from "
                              f"{repeats} gradient draws on one batch of {batch_n} training points "
                              f"({model.fusion.upper()} fusion).")
