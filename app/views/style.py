"""Shared and private latents (MMVAE+): coherence with and without them, and the "swap style" grid."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import backend, figures, state, widgets

st.title("Swap style: shared and private latents")
st.markdown("With one shared latent z, everything a modality shows (the digit *and* its style) has to be coded in "
            "z. A model with **private latents** (MMVAE+) gives each modality m its own w_m beside z: decoding "
            "modality t uses (z, w_t). Cross-modal generation takes z from the given modalities and w_t from its "
            "prior, so only z has to carry what the modalities share.")
widgets.lesson_note()
entry = widgets.model_picker(key="style-picker")
model = entry["model"]
bundle = state.bundle_of(entry)
test = bundle.test
effort = state.effort()
names = list(model.names)
D_w = backend.private_dim(model)


def model_label(e: dict, d_w: int) -> str:
    name = e.get("name") or e["title"]
    return f"{name} (shared z only)" if d_w == 0 else f"{name} (shared z + private w, {d_w} per modality)"


# ------------------------------------------------------------------ coherence, with a model to compare
st.subheader("Coherence given each modality and each pair")
n = min(effort["n_points"], test.n)
same_data = [s for s in state.shipped_names() if s != entry.get("name")
             and state.shipped_header(s)["data"].get("name") == entry["data"].get("name")
             and state.shipped_header(s)["data"].get("options", {}) == entry["data"].get("options", {})]
other_name = st.selectbox("Compare with", ["(none)"] + same_data, index=1 if same_data else 0, key="style-compare",
                          help="A shipped model of the same data, drawn beside the current one.")
if len(names) < 2 or test.labels is None:
    st.caption("Coherence needs labelled data with at least two modalities.")
else:
    frames = []
    mine = widgets.safe(lambda: state.memo("coherence-subsets", entry, (n,),
                                           lambda: backend.coherence_by_subset(model, test, bundle.train, n)))
    if mine is not None:
        frames.append(mine.assign(model=model_label(entry, D_w)))
    if other_name != "(none)":
        other = state.shipped_entry(other_name)
        other_bundle = state.bundle_of(other)
        theirs = widgets.safe(lambda: state.memo(
            "coherence-subsets", other, (n,),
            lambda: backend.coherence_by_subset(other["model"], other_bundle.test, other_bundle.train, n)))
        if theirs is not None:
            frames.append(theirs.assign(model=model_label(other, backend.private_dim(other["model"]))))
    if frames:
        df = pd.concat(frames, ignore_index=True)[["model", "given", "n_given", "coherence"]]
        fig, d = figures.coherence_bars(df, frames[0].attrs["chance"])
        acc = ", ".join(f"{m} {a:.2f}" for m, a in frames[0].attrs["classifier_accuracy"].items())
        widgets.chart(fig, d, key="style-coherence",
                      caption=f"Share of generated test images ({n} points, every modality not given) that a classifier "
                              f"trained on real images assigns to the input's class; its accuracy on real test "
                              f"images: {acc}. Dotted: chance.")

# ------------------------------------------------------------------ keep z, change w
st.divider()
st.subheader("Keep z, change w")
if D_w == 0:
    st.caption("This model has one shared latent and no private latents, so there is no style to swap. Pick a model "
               "trained with private latents (shipped: digits-poly-plus; or train with `--private-dim`).")
else:
    c = st.columns(4)
    target = c[0].selectbox("Draw modality", names, index=len(names) - 1, key="style-target",
                            help="The modality t decoded from (z, w_t).")
    rest = [m for m in names if m != target]
    given = c[1].multiselect("z from", rest, default=rest[:1], key=f"style-given-{target}",
                             help="Modalities of the content points whose fused posterior mean gives z.") or rest[:1]
    start_c = widgets.index_slider(c[2], "First content point", test.n - 3, key="style-content")
    start_s = widgets.index_slider(c[3], "First style point", test.n - 5, key="style-style")
    content_idx = list(range(start_c, min(start_c + 4, test.n)))
    style_idx = list(range(start_s, min(start_s + 6, test.n)))
    out = widgets.safe(lambda: state.memo("swap-style", entry, (target, tuple(given), tuple(content_idx), tuple(style_idx)),
                                          lambda: backend.swap_style(model, test, content_idx, style_idx, given, target)))
    if out is not None:
        def tag(i: int) -> str:
            return f"#{i} ({state.label_text(bundle, test.labels[i])})" if test.labels is not None else f"#{i}"

        if bundle.specs[target].kind == "image":
            blank = np.zeros_like(out["style"][0])
            columns = [f"{g} given" for g in given] + [f"{target}, w = 0"] + [f"w of {tag(j)}" for j in style_idx]
            panels = [(f"style: {target}", [blank] * (len(given) + 1) + list(out["style"]))]
            for r, i in enumerate(content_idx):
                panels.append((f"z of {tag(i)}", [out["content"][g][r] for g in given] + [out["generated"][r]]
                               + list(out["grid"][r])))
            fig, d = figures.image_grid(panels, columns, f"{target} decoded from z (rows) and w_{target} (columns)")
            widgets.chart(fig, d, key="style-grid")
        else:
            panels = [{"modality": f"w of {tag(j)}", "what": "model", "values": out["grid"][0][k].ravel()}
                      for k, j in enumerate(style_idx)]
            fig, d = figures.vectors(panels, f"{target} decoded from z of {tag(content_idx[0])} and each w_{target}")
            widgets.chart(fig, d, key="style-vectors")
        st.caption(f"Each row keeps the shared z of one content point (inferred from {' + '.join(given)}); each column "
                   f"takes w_{target}, the mean of q(w_{target} | x_{target}), from the {target} image of one style point "
                   f"(top row). The column 'w = 0' is what cross-modal generation draws: w_{target} at the mode of its "
                   "prior. If the split worked, the digit follows the row and the style follows the column.")
