"""Latent embeddings: raw (D=2) or PCA / UMAP, coloured by label or by the modality encoded."""
from __future__ import annotations

import streamlit as st

from app import backend, figures, state, widgets

st.title("Latent embeddings")
st.markdown("Each test point is encoded from all modalities together and from each modality alone. A good "
            "multimodal model puts the single-modality codes of a point close to its joint code, and separates "
            "the classes. Hover over a dot to see the data point's index and label.")
widgets.lesson_note()
entry = widgets.model_picker(key="embeddings-picker")
model = entry["model"]
bundle = state.bundle_of(entry)
c = st.columns(3)
methods = ["auto", "raw", "pca", "umap"]
method = c[0].radio("Projection", methods, horizontal=True, key="emb_method",
                    help="raw: the latent itself (2-D models); PCA / UMAP for larger latents; auto picks.")
colour = c[1].radio("Colour by", ["label", "modality encoded"], horizontal=True, key="emb_colour")
n = c[2].slider("Test points", 100, min(1000, bundle.test.n), min(400, bundle.test.n), step=50, key="emb_n")
df = widgets.safe(lambda: state.memo("embedding", entry, (method, n),
                                     lambda: backend.latent_embedding(model, bundle.test, method, n=n)))
if df is not None:
    fig, d = figures.embedding(df, "label" if colour == "label" else "encoded", bundle.label_names,
                               title=f"Latent space ({method}): {entry['title']}")
    widgets.chart(fig, d, key="embeddings-scatter")
    if bundle.label_names:
        st.caption("Labels: " + "; ".join(f"{i} = {n}" for i, n in enumerate(bundle.label_names)))
