"""Latent embeddings: raw (D=2) or PCA / UMAP, coloured by label or by the modality encoded."""
from __future__ import annotations

import streamlit as st

from app import backend, figures, latent_explorer, state, warmup, widgets

EXPLORER_HEIGHT = 440

st.title("Latent embeddings")
st.markdown("Each test point is encoded from all modalities together and from each modality alone. A good "
            "multimodal model puts the single-modality codes of a point close to its joint code, and separates "
            "the classes. Hover over a dot to see the data point's index and label.")
widgets.lesson_note()
entry = widgets.model_picker(key="embeddings-picker")
model = entry["model"]
bundle = state.bundle_of(entry)
effort = state.effort()
D = model.latent_dim
if backend.private_dim(model):
    st.caption(f"This model also has private latents w_m ({backend.private_dim(model)} numbers per modality, "
               f"MMVAE+): every point here is the shared z alone, the first {D} numbers of a posterior mean.")
c = st.columns(3)
methods = ["auto", "raw", "pca", "umap"] if D == 2 else ["auto", "pca", "umap"]
if st.session_state.get("emb_method") not in methods:
    st.session_state["emb_method"] = "auto"
method = c[0].radio("Projection", methods, horizontal=True, key="emb_method",
                    format_func=lambda m: {"auto": f"auto ({'raw' if D == 2 else 'PCA'})", "raw": "raw z",
                                           "pca": "PCA", "umap": "UMAP"}[m],
                    help="raw: the latent itself (2-D models); PCA: the top-2 principal directions (instant); "
                         "UMAP: a non-linear map (umap-learn compiles with numba once per server; this server "
                         "starts that in the background when it starts).")
colour = c[1].radio("Colour by", ["label", "modality encoded"], horizontal=True, key="emb_colour")
n_max = min(1000, bundle.test.n)
n = widgets.count_slider(c[2], "Test points", 100, n_max, effort["emb_points"], 50, key="emb_n")
used = backend.resolve_method(method, D)
means = widgets.safe(lambda: state.memo("latent-means", entry, (n,), lambda: backend.latent_means(model, bundle.test,
                                                                                                 n=n)))
df = None
if means is not None:
    if used == "umap" and not state.memo_has("embedding-2d", entry, (n, used)):
        # umap-learn is imported here, never at page load: the first import compiles with numba
        st.caption(warmup.umap_note())
        progress = st.progress(0.05, text="UMAP 1/2: importing umap-learn")
        with st.spinner("Working...", show_time=True):
            ok = widgets.safe(backend.import_umap)
            if ok:
                progress.progress(0.5, text=f"UMAP 2/2: fitting a 2-D map of {len(means['labels'])} x "
                                            f"{len(means['means'])} posterior means")
                df = widgets.safe(lambda: state.memo("embedding-2d", entry, (n, used),
                                                     lambda: backend.embed(means, used)))
        progress.empty()
    else:
        df = widgets.safe(lambda: state.memo("embedding-2d", entry, (n, used), lambda: backend.embed(means, used)))
if df is not None:
    names = state.display_label_names(bundle)
    fig, d = figures.embedding(df, "label" if colour == "label" else "encoded", names,
                               title=f"Latent space ({df.attrs.get('method', used)}): {entry['title']}",
                               method=df.attrs.get("method", used))
    widgets.chart(fig, d, key="embeddings-scatter",
                  caption="Colour: the class; symbol (see the legend title): which modalities were encoded, all "
                          "together or one alone. One projection is fitted to all of them, so they share the axes.")
    if names and any(n != str(i) for i, n in enumerate(names)):
        st.caption("Labels: " + "; ".join(f"{i} = {n}" for i, n in enumerate(names)))
    if names and any(n.startswith("true-z quadrant") for n in names):
        st.caption("Toy labels are the quadrant of the *true* latent z that generated each point. The learned "
                   "latent is only defined up to a rotation or reflection, so the colours form four sectors that "
                   "need not line up with the learned axes' quadrants.")

# ------------------------------------------------------------------ the latent explorer
st.divider()
st.subheader("Drag a point over the latent plane: every modality decoded live")
st.markdown("Drag the white marker (or click in the plane, then use the arrow keys): every modality is decoded "
            "from that z at once, E[x_m | z], while you drag. Walk between two classes and watch the decoded "
            "modalities change together. The decodings are computed once for a grid of points over the plane and "
            "drawn in your browser: the page shows the grid point nearest to the marker.")
names_d = [f"z{i + 1}" for i in range(D)]
fixed_mode = "prior"
if D < 2:
    st.caption(f"This model has a {D}-D latent: there is no plane to explore (train one with latent dimension 2 or "
               "more).")
else:
    if D > 2:
        c = st.columns(3)
        ax_a = c[0].selectbox("Horizontal axis", range(D), index=0, format_func=lambda i: names_d[i],
                              key="explore_ax_a")
        ax_b = c[1].selectbox("Vertical axis", [i for i in range(D) if i != ax_a], index=0,
                              format_func=lambda i: names_d[i], key=f"explore_ax_b_{ax_a}")
        fixed_mode = c[2].radio("The other coordinates", ["prior", "data"], horizontal=True, key="explore_fixed",
                                format_func=lambda m: {"prior": "at 0 (the prior's mean)",
                                                       "data": "at the test codes' mean"}[m])
    else:
        ax_a, ax_b = 0, 1
    explorer = widgets.safe(lambda: state.memo(
        "latent-explorer", entry, (ax_a, ax_b, fixed_mode, n),
        lambda: latent_explorer.build(model, means, bundle, (ax_a, ax_b), fixed_mode)))
    if explorer is not None:
        html_page, info = explorer
        st.caption(info)
        st.iframe(html_page, height=EXPLORER_HEIGHT)  # self-contained: inline script, nothing fetched
