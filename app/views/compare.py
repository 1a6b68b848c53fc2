"""Compare fusion rules: same data and seed, PoE vs MoE vs MoPoE side by side."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from app import backend, figures, state, widgets
from app.state import ESTIMATOR_NAMES, FUSION_NAMES, FUSIONS

ss = st.session_state
st.title("Compare fusion rules")
st.markdown("The same data and seed, fused three ways. **PoE** multiplies the modalities' posteriors (sharp, "
            "but one bad modality can dominate), **MoE** averages them (robust, but blurry), **MoPoE** mixes the "
            "products of every subset. Switch between them with the toggle: the pictures are cached.")
widgets.lesson_note()
s = widgets.setup_controls(show_training=False, key_prefix="cmp_w_", skip=("fusion",))
store: dict = ss.setdefault("compare_models", {})


def wanted_key(fusion: str) -> tuple:
    return (s["dataset"], s["seed"], fusion, s["estimator"], s["K"], s["latent_dim"], s.get("private_dim", 0),
            min(int(s["epochs"]), 30))


def shipped_match(fusion: str) -> str | None:
    """The shipped checkpoint trained with exactly this setup (dataset, fusion, estimator, K, seed,
    latent dimension), if there is one; other setups are trained here."""
    name = f"{s['dataset']}-{fusion}"
    if name not in state.shipped_names():
        return None
    h = state.shipped_header(name)
    same = (h["train"].get("estimator") == s["estimator"] and int(h["train"].get("K", -1)) == s["K"]
            and int(h["train"].get("seed", -1)) == s["seed"] and h["data"].get("name") == s["dataset"]
            and not h["data"].get("options") and int(h["config"].get("latent_dim", -1)) == s["latent_dim"]
            and int(h["config"].get("private_dim", 0)) == int(s.get("private_dim", 0)))
    return name if same else None


def model_for(fusion: str) -> dict | None:
    name = shipped_match(fusion)
    return state.shipped_entry(name) if name else store.get(wanted_key(fusion))


available = {f: model_for(f) for f in FUSIONS}
missing = [f for f, e in available.items() if e is None]
shipped_used = [f.upper() for f in FUSIONS if shipped_match(f)]
st.caption(f"Setup: {s['dataset']} data, {ESTIMATOR_NAMES[s['estimator']]} K={s['K']}, latent dimension "
           f"{s['latent_dim']}, seed {s['seed']}. "
           + (f"Shipped checkpoints trained with exactly this setup: {', '.join(shipped_used)}. " if shipped_used
              else "")
           + "Any other setup is trained here (the latent dimension and epochs come from the Train page).")
if missing:
    epochs = min(int(s["epochs"]), 30)
    st.info(f"No {', '.join(f.upper() for f in missing)} model for this setup yet. Train them here ({epochs} "
            f"epochs each with {ESTIMATOR_NAMES[s['estimator']]} K={s['K']}, a few seconds per model on the toy "
            "data).", icon=":material/info:")
    if st.button(f"Train {len(missing)} model(s)", icon=":material/play_arrow:", key="cmp_train"):
        bar = st.progress(0.0, text="training...")
        for i, f in enumerate(missing):
            trainer, entry = state.build_trainer({**s, "epochs": epochs}, fusion=f)
            for e in range(epochs):
                if trainer.run_epoch() is None:
                    break
                bar.progress((i + (e + 1) / epochs) / len(missing), text=f"training {f.upper()}: epoch {e + 1}")
            store[wanted_key(f)] = entry
            while len(store) > 6:  # bounded per session
                store.pop(next(iter(store)))
        st.rerun()
ready = [f for f in FUSIONS if available[f] is not None]
if not ready:
    st.caption("Train the models above to compare them.")
else:  # no st.stop(): it would also stop the sidebar and the link drawn after the page

    ss.setdefault("cmp_fusion", s["fusion"] if s["fusion"] in ready else ready[0])
    if ss["cmp_fusion"] not in ready:
        ss["cmp_fusion"] = ready[0]
    fusion = st.segmented_control("Fusion rule", ready, format_func=FUSION_NAMES.get, key="cmp_fusion", required=True)
    fusion = fusion or ready[0]
    entry = available[fusion]
    if state.active()["key"] != entry["key"]:
        state.set_active(entry)  # the sidebar's "current model" (and its download) is the one shown here
    widgets.model_banner(entry)
    bundle = state.bundle_of(entry)
    test = bundle.test
    model = entry["model"]
    effort = state.effort()

    left, right = st.columns(2)
    with left:
        df = widgets.safe(lambda: state.memo("embedding", entry, ("auto", effort["emb_points"]),
                                             lambda: backend.latent_embedding(model, test, "auto",
                                                                              n=effort["emb_points"])))
        if df is not None:
            fig, d = figures.embedding(df, "label", state.display_label_names(bundle),
                                       title=f"Latent space ({fusion.upper()})", method=df.attrs.get("method", "raw"))
            widgets.chart(fig, d, key=f"cmp-embedding-{fusion}",
                          caption="Each dot is a test point's posterior mean, from all modalities and from each one alone.")
    with right:
        def all_bounds() -> pd.DataFrame:
            rows = []
            for f in ready:
                e = available[f]
                r = state.memo("bounds", e, (10, effort["n_points"]),
                               lambda e=e: backend.evaluate(e["model"], state.bundle_of(e).test, 10,
                                                            n=effort["n_points"]))
                rows += [{"fusion": f.upper(), "bound": "ELBO", "value": r["elbo"]},
                         {"fusion": f.upper(), "bound": "IWAE(10)", "value": r["iwae"]}]
            return pd.DataFrame(rows)

        bdf = widgets.safe(all_bounds)
        if bdf is not None:
            fig, d = figures.bounds_bar(bdf)
            widgets.chart(fig, d, key="cmp-bounds",
                          caption="Each model evaluated with its own fusion rule on the same test points.")

    first = model.names[0]
    others = [m for m in model.names if m != first]
    idx = list(range(min(8, test.n)))
    gen = widgets.safe(lambda: state.memo("generate", entry, ((first,), tuple(idx)),
                                          lambda: backend.generate(model, test, [first], idx)))
    spec0 = bundle.specs[first]
    if gen is not None:
        st.markdown(f"##### Cross-modal generation: given `{first}`, generate {', '.join(f'`{o}`' for o in others)}")
        if spec0.kind == "image":
            labels = [f"#{i} ({state.label_text(bundle, test.labels[i])})" if test.labels is not None else f"#{i}"
                      for i in idx]
            panels = [(f"given {first}", test.modalities[first][idx].numpy())]
            for o in others:
                panels += [(f"true {o}", test.modalities[o][idx].numpy()), (f"model {o}", gen[o])]
            fig, d = figures.image_grid(panels, labels, f"Given {first} ({fusion.upper()})")
            widgets.chart(fig, d, key=f"cmp-gen-{fusion}")
        elif spec0.kind == "sequence":  # well logs: depth curves in physical units, as on Cross-modal generation
            widgets.depth_log_chart(bundle, idx[0], [first], others, gen, key=f"cmp-gen-{fusion}",
                                    title_suffix=f" ({fusion.upper()})")
        else:
            i = idx[0]
            curves = [{"modality": o, "what": w, "values": v} for o in others
                      for w, v in (("truth", test.modalities[o][i].numpy().ravel()), ("model", gen[o][0].ravel()))]
            fig, d = figures.vectors(curves, f"Test point #{i}: given {first} ({fusion.upper()})")
            widgets.chart(fig, d, key=f"cmp-gen-{fusion}")
    coh = widgets.safe(lambda: state.memo("coherence", entry, ((first,), effort["n_points"]),
                                          lambda: backend.coherence(model, test, [first], train=bundle.train,
                                                                    n=effort["n_points"])))
    if coh is not None:
        acc = ", ".join(f"{t} {a:.2f}" for t, a in coh["accuracy"].items())
        st.metric(f"Coherence of generations from {first}", f"{coh['mean']:.2f}",
                  help="Share of generated samples a classifier assigns to the same class as the input; the "
                       f"classifiers' accuracy on real test data: {acc}; chance {coh['chance']:.2f}.")
