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
effort = state.effort()
c = st.columns(4)
Ks = c[0].multiselect("K values", [1, 2, 5, 10, 20, 50, 100, 200, 500], default=[1, 5, 20, 100], key="bounds_Ks",
                      help="IWAE(K) for each K; more samples cost more time (500 is the most).")
repeats = c[1].slider("Repeats (error bars)", 1, 5, effort["repeats"], key="bounds_repeats")
n_max = min(1000, bundle.test.n)
n = widgets.count_slider(c[2], "Test points", 50, n_max, effort["n_points"], 50, key="bounds_n")
Ks = sorted(int(k) for k in Ks) or [1]
n_samples = max(effort["ll_samples"], 2 * Ks[-1])  # the estimate uses more samples than the largest K
c[3].caption(f"log p(x) is estimated by importance sampling with {n_samples} samples per point "
             f"(stratified over the posterior's components).")
exact = bundle.extras.get("toy_params")
res = widgets.safe(lambda: state.memo("gaps", entry, (tuple(Ks), repeats, n, n_samples),
                                      lambda: backend.bound_gaps(model, bundle.test, Ks, repeats, exact, n=n,
                                                                 n_samples=n_samples)))
if res is not None:
    df, raw = res
    fig, d = figures.bound_gaps(df, f"ELBO <= IWAE(K) <= log p(x): {entry['title']}")
    widgets.chart(fig, d, key="bounds-gaps",
                  caption=f"Error bars: standard deviation over {repeats} repeat(s) with fresh samples "
                          f"({raw['n']} test points). The dotted line is the log-likelihood estimate (band: its "
                          "Monte Carlo standard error). Higher is better; no bound can pass log p(x).")
    ll = raw.get("log_likelihood")
    m = st.columns(4)
    top = raw["rows"][-1]
    m[0].metric(f"IWAE({top['K']}) - ELBO", f"{top['gap_iwae_elbo']:.3f} nats")
    if ll:
        m[1].metric("log p(x) estimate", f"{ll['mean']:.3f}", help=f"Monte Carlo standard error {ll['mc_stderr']:.4f}; "
                    f"standard error over data points {ll['stderr']:.3f}.")
        m[2].metric("mean effective sample size", f"{ll['mean_ess']:.0f} of {ll['n_samples']}",
                    help="Of the importance weights behind the log p(x) estimate: low means the posterior is a "
                         "poor proposal.")
    if raw.get("exact") is not None:
        m[3].metric("exact log p(x)", f"{raw['exact']:.3f}",
                    help="Closed form on the linear toy: the gap to it is what no amount of sampling closes "
                         "for this model.")
    else:
        st.caption("This dataset has no closed-form log p(x); the importance-sampled estimate is the best "
                   "available.")
    if not raw.get("chain_holds", True):
        st.caption(f"Note: ELBO <= IWAE(K) <= log p(x) is violated beyond {raw['tolerance_std']:.0f} standard "
                   "deviations somewhere; try more repeats or test points.")
