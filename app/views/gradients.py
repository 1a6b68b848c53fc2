"""Gradient noise: SNR of encoder and decoder gradients vs K for IWAE, DReG, STL."""
from __future__ import annotations

import streamlit as st

from app import backend, figures, state, widgets

st.title("Gradient noise")
st.markdown("A gradient estimate is useful when its signal (mean) is large compared with its noise (standard "
            "deviation). Rainforth et al. (2018): as K grows, the *decoder's* signal-to-noise ratio (SNR) rises "
            "for every estimator, while plain IWAE's *encoder* SNR falls (like 1/sqrt(K)). DReG (Tucker et al. "
            "2018) removes the noisy score term and the encoder SNR rises instead, when the posterior is one "
            "Gaussian.")
widgets.lesson_note()
entry = widgets.model_picker(key="gradients-picker")
model = entry["model"]
if model.fusion == "poe":
    st.info("This model fuses with **PoE**: its posterior is one Gaussian, the setting of the theory, which "
            "predicts that IWAE's encoder SNR falls with K and DReG's rises. A trained model on one batch need not "
            "follow it exactly: the sentence under the chart says what this one shows.", icon=":material/info:")
else:
    st.info(f"This model fuses with **{model.fusion.upper()}**, a *mixture*. DReG for mixtures keeps score terms "
            "(the cross-component part of the mixture's density, see the README's Objectives), so its encoder SNR "
            "need not rise with K and may fall too (it falls on the shipped toy-mopoe model). Pick a PoE model to see "
            "the single-Gaussian case.", icon=":material/warning:")
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
    widgets.chart(*figures.gradient_snr(df), key="gradients-snr",
                  caption=f"Mean SNR over the parameter elements of the encoders and of the decoders, from "
                          f"{repeats} gradient draws on one batch of {batch_n} training points "
                          f"({model.fusion.upper()} fusion).")
    if len(Ks) > 1:  # say what this chart shows, from its own numbers
        enc = df[df["part"] == "encoder"]
        said = []
        for est in estimators:
            e = enc[enc["estimator"] == est].sort_values("K")
            if len(e) >= 2:
                lo, hi = float(e["snr"].iloc[0]), float(e["snr"].iloc[-1])
                trend = "rises" if hi > lo else "falls"
                said.append(f"{est.upper()} {trend} from {lo:.2f} (K = {Ks[0]}) to {hi:.2f} (K = {Ks[-1]})")
        if said:
            st.markdown("**On this chart**, the encoder SNR of " + "; ".join(said) + ".")
