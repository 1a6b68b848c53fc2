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
effort = state.effort()
if model.latent_dim < 2:  # no st.stop(): it would also stop the sidebar and the link drawn after the page
    st.warning("This model has a 1-D latent; the latent plane needs at least two dimensions.")
else:



    def pick_clicked_point() -> None:
        """A click on a dot of the embedding moves the point slider. This runs as the chart's
        ``on_select`` callback, i.e. before the script, the only moment Streamlit lets a widget's
        value (the slider's) be set from code."""
        event = ss.get("overlap-embedding")
        points = (event or {}).get("selection", {}).get("points", [])
        for p in points:
            cd = p.get("customdata")
            index = cd[0] if isinstance(cd, (list, tuple)) else cd
            if index is not None and 0 <= int(index) < min(test.n, 600):
                ss["overlap_point"] = int(index)
                return


    c = st.columns([2, 2])
    with c[0]:
        n_points = min(test.n, 600)
        point = widgets.index_slider(st, "Test data point", n_points, key="overlap_point",
                                     help="Or click a dot in the latent space on the right.")
    with c[1]:
        if ss.get("overlap_fusion") not in FUSIONS:
            ss["overlap_fusion"] = model.fusion
        fusion = st.segmented_control("Fusion rule to draw", FUSIONS, format_func=FUSION_NAMES.get,
                                      key="overlap_fusion", required=True) or model.fusion
        if fusion != model.fusion:
            st.caption(f"This model was trained with {model.fusion.upper()}; drawing its experts fused with "
                       f"{fusion.upper()}.")
    label = state.label_text(bundle, test.labels[point]) if test.labels is not None else ""
    result = widgets.safe(lambda: state.memo("overlap", entry, (point, fusion, effort["n_mc"]),
                                             lambda: backend.posterior_overlap(model, test, point, fusion,
                                                                               effort["n_mc"])))

    left, right = st.columns([3, 2])
    with left:
        if result is not None:
            method = result["projection"]["method"]
            axes = ("z1", "z2") if method == "identity" else (("PC 1", "PC 2") if method == "pca" else ("z1", "z2"))
            built = widgets.safe(lambda: figures.posterior_ellipses(backend.overlap_ellipses(result),
                                                                    f"Point #{point}" + (f" ({label})" if label else ""),
                                                                    axes))
            if built is not None:
                widgets.chart(*built, key="overlap-ellipses")
                if fusion in ("moe", "mopoe"):
                    st.caption(f"{fusion.upper()} is a mixture: its fused posterior is "
                               + ("the unimodal posteriors themselves" if fusion == "moe" else
                                  "the unimodal posteriors and their product")
                               + ", each part drawn as a wide red band; the blue line inside a band is the same "
                                 "Gaussian.")
            table = widgets.safe(backend.overlap_table, result)
            if table is not None:
                kept = table[(table["panel"] == "prior") & (table["series"] == "KL(q || prior)") & (table["value"] < 0.01)]
                if not kept.empty:
                    st.caption(f"Posteriors {', '.join(kept['item'])}: KL to the prior below 0.01 nats, so the ellipse is the "
                               "prior's (hidden under it). The model ignores what that encoder sees for this point "
                               "(posterior collapse).")
            if model.latent_dim > 2:
                st.caption(f"The model has {model.latent_dim} latent dimensions: the plane is the "
                           + ("top-2 principal directions of the posterior means shown" if method == "pca"
                              else "first two latent axes")
                           + " (an orthonormal projection, so the prior is still the unit circle).")
    with right:
        emb = widgets.safe(lambda: state.memo("embedding", entry, ("auto", effort["emb_points"]),
                                              lambda: backend.latent_embedding(model, test, "auto",
                                                                               n=effort["emb_points"])))
        if emb is not None:
            method = emb.attrs.get("method", "raw")
            emb = emb[emb["encoded"] == emb["encoded"].iloc[0]]
            fig, d = figures.embedding(emb, "label", state.display_label_names(bundle), title="Pick a point (click a dot)",
                                       highlight=point, method=method)
            fig.update_layout(height=420, showlegend=False)
            widgets.chart(fig, d, key="overlap-embedding", on_select=pick_clicked_point)

    if result is not None:
        if table is not None and not table.empty:
            built = widgets.safe(figures.overlap_panels, table)
            if built is not None:
                widgets.chart(*built, key="overlap-bars",
                              caption="Bhattacharyya coefficient: 1 = the two unimodal posteriors are identical, 0 = "
                                      "they do not overlap. KL divergences in nats (0 = identical; error bars: Monte "
                                      "Carlo standard error for mixtures). KL(q || prior): what the posterior has "
                                      "learnt beyond the prior; log volume ratio: log of the posterior's spread "
                                      "relative to the prior's (0 = keeps all of it, negative = sharper).")
