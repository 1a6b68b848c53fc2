"""Bound gaps: ELBO <= IWAE(K) <= log p(x) as K grows."""
from __future__ import annotations

import streamlit as st

from app import backend, figures, state, widgets

st.title("Bound gaps")
st.markdown("Every estimator maximises a lower bound on the log-likelihood log p(x). The ELBO is the loosest; "
            "IWAE(K) averages K importance weights and tightens towards log p(x) as K grows. On the **toy** data "
            "log p(x) is known exactly (green dashed line), so you can see the gap that remains.")
widgets.lesson_note()
entry = widgets.model_picker(key="bounds-picker")
model = entry["model"]
bundle = state.bundle_of(entry)
c = st.columns(3)
Ks = c[0].multiselect("K values", [1, 2, 5, 10, 20, 50, 100, 200, 500], default=[1, 5, 20, 100], key="bounds_Ks",
                      help="IWAE(K) for each K; more samples cost more time (500 is the most).")
repeats = c[1].slider("Repeats (error bars)", 1, 5, 3, key="bounds_repeats")
n = c[2].slider("Test points", 50, min(1000, bundle.test.n), min(300, bundle.test.n), step=50, key="bounds_n")
Ks = sorted(int(k) for k in Ks) or [1]
exact = bundle.extras.get("toy_params")
df = widgets.safe(lambda: state.memo("gaps", entry, (tuple(Ks), repeats, n),
                                     lambda: backend.bound_gaps(model, bundle.test, Ks, repeats, exact, n=n)))
if df is not None:
    fig, d = figures.bound_gaps(df, f"ELBO <= IWAE(K) <= log p(x): {entry['title']}")
    widgets.chart(fig, d, key="bounds-gaps",
                  caption="Error bars: spread over repeats with fresh samples. Higher is better; nothing can "
                          "pass log p(x).")
    if exact is None:
        st.caption("This dataset has no closed-form log p(x); IWAE(K) with the largest K is the best estimate.")
