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
        m[3].metric("exact log p(x) of the true model", f"{raw['exact']:.3f}",
                    help="Closed form on the linear toy, for the model that generated the data, not for the "
                         "trained model. The trained model's own log p(x) is the estimate beside it; the gap "
                         "between the two is the trained model's error, which no K closes.")
        st.caption("The green dashed line is the exact log p(x) of the *true* model that generated the toy data, "
                   "not of the trained model: the trained model's own log p(x) is the dotted estimate, and every "
                   "bound of the trained model lies below that.")
    else:
        st.caption("This dataset has no closed-form log p(x); the importance-sampled estimate is the best "
                   "available.")
    # the bounds' formulas, with this model's numbers substituted
    bottom = raw["rows"][0]
    st.markdown("With importance weights $w_k = p(x, z_k) / q(z_k \\mid x)$, $z_k \\sim q(z \\mid x)$:")
    st.latex(r"\mathrm{ELBO} = \mathbb{E}\big[\log w_1\big] \;\le\; "
             r"\mathrm{IWAE}(K) = \mathbb{E}\Big[\log \tfrac{1}{K}\textstyle\sum_{k=1}^{K} w_k\Big] "
             r"\;\le\; \log p(x)")
    numbers = (f"{top['elbo_mean']:.3f} \\;\\le\\; \\mathrm{{IWAE}}({top['K']}) = {top['iwae_mean']:.3f}")
    if ll:
        numbers += f" \\;\\le\\; \\log p(x) \\approx {ll['mean']:.3f}"
    st.latex(r"\text{here: } \mathrm{ELBO} = " + numbers)
    st.caption(f"Means over {raw['n']} test points; IWAE({bottom['K']}) = {bottom['iwae_mean']:.3f} at the smallest K "
               "shown (IWAE(1) is the ELBO). The Importance weights section below shows the w_k of one point.")
    if not raw.get("chain_holds", True):
        st.caption(f"Note: ELBO <= IWAE(K) <= log p(x) is violated beyond {raw['tolerance_std']:.0f} standard "
                   "deviations somewhere; try more repeats or test points.")

# ------------------------------------------------------------------ one data point's importance weights
st.divider()
st.subheader("Importance weights of one data point")
st.markdown("The bounds above are averages over test points of numbers built from **importance weights**. Here "
            "are the weights of one point: every bar is one sample z_k from the posterior; the ELBO averages "
            "log w_k, IWAE averages w_k *before* taking the log, so a few large weights lift it above the ELBO.")
c = st.columns([2, 1])
point = widgets.index_slider(c[0], "Test data point", min(bundle.test.n, 600), key="weights_point")
K_w = c[1].select_slider("K (samples per component)", [5, 10, 20, 50, 100], value=20, key="weights_K")
w = widgets.safe(lambda: state.memo("weights", entry, (point, K_w),
                                    lambda: backend.importance_weights(model, bundle.test, point, K_w)))
if w is not None:
    left, right = st.columns([3, 2])
    with left:
        widgets.chart(*figures.importance_weights(w["table"], w["C"]), key="bounds-weights",
                      caption="Normalised weights w_k / sum w (bars) and log w_k (dots, right axis). "
                              + ("One bar colour per mixture component: every sample is weighed against the "
                                 "whole mixture." if w["C"] > 1 else ""))
    with right:
        CK = f"{w['C']} \\cdot {w['K']}" if w["C"] > 1 else f"{w['K']}"
        st.latex(r"\widehat{\mathrm{ELBO}} = \frac{1}{" + CK + r"} \sum \log w_k = " + f"{w['elbo']:.3f}")
        st.latex(r"\widehat{\mathrm{IWAE}} = \log \frac{1}{" + CK + r"} \sum w_k = " + f"{w['iwae']:.3f}")
        st.markdown(f"IWAE - ELBO for this draw: **{w['iwae'] - w['elbo']:.3f} nats** (never negative: the log of "
                    f"an average is at least the average of the logs). Effective sample size "
                    f"**{w['ess']:.1f} of {w['C'] * w['K']}**: "
                    + ("the weights are nearly equal, q(z|x) is close to the true posterior."
                       if w["ess"] > 0.8 * w["C"] * w["K"] else
                       "a few samples carry most of the weight, q(z|x) differs from the true posterior."))
