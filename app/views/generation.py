"""Cross-modal generation: condition on some modalities and generate the others."""
from __future__ import annotations

import streamlit as st

from app import backend, figures, state, widgets

ss = st.session_state
st.title("Cross-modal generation")
st.markdown("Give the model some modalities, it infers the shared latent z and decodes the others. Compare the "
            "generations with the truth: a **coherent** model keeps what the modalities share (the digit class, "
            "the rock layers) even when it cannot know the details.")
widgets.lesson_note()
entry = widgets.model_picker(key="generation-picker")
model = entry["model"]
bundle = state.bundle_of(entry)
test = bundle.test
effort = state.effort()
names = model.names
c = st.columns([2, 2, 1])
key = f"gen_given_{'-'.join(names)}"
ss.setdefault(key, [names[0]])
given = c[0].multiselect("Condition on", names, key=key, help="One modality or a subset.") or [names[0]]
targets = [m for m in names if m not in given] or list(names)
kind = bundle.specs[names[0]].kind
if kind == "image":
    start = widgets.index_slider(c[1], "First test point", test.n - 7, key="gen_start_images")
    idx = list(range(start, min(start + 8, test.n)))
else:
    start = widgets.index_slider(c[1], "Test point", test.n, key="gen_start")
    idx = [start]
c[2].caption("Generating: " + ", ".join(f"`{t}`" for t in targets))
gen = widgets.safe(lambda: state.memo("generate", entry, (tuple(given), tuple(idx)),
                                      lambda: backend.generate(model, test, given, idx)))
if gen is not None:
    if kind == "image":
        labels = [f"#{i} ({state.label_text(bundle, test.labels[i])})" if test.labels is not None else f"#{i}"
                  for i in idx]
        panels = [(f"given {g}", test.modalities[g][idx].numpy()) for g in given]
        for t in targets:
            panels += [(f"true {t}", test.modalities[t][idx].numpy()), (f"model {t}", gen[t])]
        fig, d = figures.image_grid(panels, labels, f"Given {' + '.join(given)}")
        widgets.chart(fig, d, key="generation-images")
    elif kind == "sequence":
        widgets.depth_log_chart(bundle, idx[0], given, targets, gen, key="generation-logs")
    else:
        i = idx[0]
        panels = [{"modality": t, "what": w, "values": v} for t in targets
                  for w, v in (("truth", test.modalities[t][i].numpy().ravel()), ("model", gen[t][0].ravel()))]
        label = f" ({state.label_text(bundle, test.labels[i])})" if test.labels is not None else ""
        fig, d = figures.vectors(panels, f"Test point #{i}{label}: given {' + '.join(given)}")
        widgets.chart(fig, d, key="generation-vectors")

m = st.columns(3)
coh = widgets.safe(lambda: state.memo("coherence", entry, (tuple(given), effort["n_points"]),
                                      lambda: backend.coherence(model, test, given, train=bundle.train,
                                                                n=effort["n_points"])))
if coh is not None:
    acc = ", ".join(f"{t} {a:.2f}" for t, a in coh["accuracy"].items())
    m[0].metric(f"Coherence given {' + '.join(given)}", f"{coh['mean']:.2f}",
                help="Share of generations that a classifier (logistic regression trained on the real data of "
                     "that modality) assigns to the input's class: 1 = always. Read it against the classifier's "
                     f"accuracy on real test data ({acc}) and chance ({coh['chance']:.2f}).")
    m[1].caption(f"Per target: " + ", ".join(f"`{t}` {v:.2f}" for t, v in coh["per_target"].items())
                 + f". Classifier accuracy on real data: {acc}; chance {coh['chance']:.2f}. "
                 f"({min(effort['n_points'], test.n)} test points.)")
if bundle.name in ("impedance", "wells") and set(given) == {"AI"} and "SI" in targets:
    rmse = widgets.safe(lambda: state.memo("si-rmse", entry, (effort["n_points"],),
                                           lambda: backend.impedance_rmse(model, test, bundle.specs,
                                                                          n=effort["n_points"])))
    if rmse is not None:
        m[2].metric(f"RMSE of SI from AI ({rmse['unit']}, lower is better)", f"{rmse['rmse']:.3f}",
                    help=f"Rock-physics baseline ({rmse['baseline']}): RMSE {rmse['rmse_rock_physics']:.3f}.")
        verdict = "beats" if rmse["ratio"] < 1 else "does not beat"
        st.markdown(f"On these {min(effort['n_points'], test.n)} test logs this model's SI error is "
                    f"**{rmse['ratio']:.2f} x** the rock-physics baseline's ({rmse['rmse']:.3f} against "
                    f"{rmse['rmse_rock_physics']:.3f} {rmse['unit']}): it **{verdict}** the physics here.")
