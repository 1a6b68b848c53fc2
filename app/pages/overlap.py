"""Posterior overlap: the unimodal and fused posteriors of one data point in the latent plane."""
from __future__ import annotations

import streamlit as st

from app import backend, figures, state, widgets
from app.state import FUSION_NAMES, FUSIONS

ss = st.session_state
st.title("Posterior overlap")
st.markdown("For one data point, each modality alone gives a posterior over the latent z (**blue**); the "
            "fusion rule combines them into one (**red**); the prior N(0, I) is **grey**. Ellipses are 1 and 2 "
            "standard deviations. Where the blue ellipses disagree, PoE trusts the sharper one and MoE keeps both.")
widgets.lesson_note()
entry = widgets.model_picker(key="overlap-picker")
model = entry["model"]
bundle = state.bundle_of(entry)
test = bundle.test
if model.latent_dim < 2:
    st.warning("This model has a 1-D latent; the latent plane needs at least two dimensions.")
    st.stop()
if model.latent_dim > 2:
    st.caption(f"The model has {model.latent_dim} latent dimensions: the plane shows the first two.")

c = st.columns([2, 2])
with c[0]:
    ss.setdefault("overlap_point", 0)
    if ss["overlap_point"] >= test.n:
        ss["overlap_point"] = 0
    point = st.slider("Test data point", 0, min(test.n, 600) - 1, key="overlap_point",
                      help="Or click a dot in the latent space below.")
with c[1]:
    ss.setdefault("overlap_fusion", model.fusion)
    fusion = st.segmented_control("Fusion rule to draw", FUSIONS, format_func=FUSION_NAMES.get,
                                  key="overlap_fusion", required=True) or model.fusion
    if fusion != model.fusion:
        st.caption(f"This model was trained with {model.fusion.upper()}; drawing its experts fused with "
                   f"{fusion.upper()}.")
label = ""
if test.labels is not None:
    li = int(test.labels[point])
    label = bundle.label_names[li] if bundle.label_names and li < len(bundle.label_names) else str(li)
x = backend.modality_slices(test, point)
x = {k: v.to(model.device) for k, v in x.items()}

left, right = st.columns([3, 2])
with left:
    items = widgets.safe(lambda: backend.posterior_ellipses(model, x, fusion))
    if items is not None:
        fig, d = figures.posterior_ellipses(items, f"Point #{point}" + (f" (label {label})" if label else ""))
        widgets.chart(fig, d, key="overlap-ellipses")
with right:
    odf = widgets.safe(lambda: state.memo("overlap", entry, (point, fusion),
                                          lambda: backend.posterior_overlap(model, x, [fusion])))
    if odf is not None and not odf.empty:
        fig, d = figures.overlap_bars(odf)
        widgets.chart(fig, d, key="overlap-bars",
                      caption="Bhattacharyya distance, symmetric KL and KL(fused || unimodal): 0 means identical.")
    emb = widgets.safe(lambda: state.memo("embedding", entry, ("auto",),
                                          lambda: backend.latent_embedding(model, test, "auto")))
    if emb is not None:
        emb = emb[emb["encoded"] == emb["encoded"].iloc[0]]
        fig, d = figures.embedding(emb, "label", bundle.label_names, title="Pick a point (click a dot)",
                                   highlight=point)
        fig.update_layout(height=380, showlegend=False)
        event = widgets.chart(fig, d, key="overlap-embedding", on_select="rerun")
        try:
            pts = event.selection.points if event is not None else []
        except AttributeError:
            pts = []
        if pts:
            cd = pts[0].get("customdata")
            new = int(cd[0] if isinstance(cd, (list, tuple)) else cd) if cd is not None else None
            if new is not None and new != point and new < test.n:
                ss["overlap_point"] = new
                st.rerun()
