"""Plotly figure builders. Each returns ``(figure, data)``: the data (a DataFrame, or a list of
row dicts for the first page's curves) is offered as a CSV download beside the chart.

``plotly.graph_objects`` and pandas are imported at start (pandas for the reason given at its
import); numpy and plotly.express load on the first figure that needs them.
"""
from __future__ import annotations

from typing import Sequence

# a real import before any figure: plotly looks pandas up in sys.modules without importing it, and
# on a fresh server another thread (the warm-up, another page) may be halfway through importing it
# ("partially initialized module 'pandas' has no attribute 'Series'"); this import waits for it
import pandas  # noqa: F401
import plotly.graph_objects as go

UNIMODAL = "#1f77b4"  # blue
FUSED = "#d62728"  # red
PRIOR = "#7f7f7f"
TRUTH = "#2ca02c"
BASELINE = "#9467bd"
# Okabe & Ito's colour-blind-safe palette (plus three): neighbouring classes never share a hue (with
# plotly's default palette, shale and carbonate were two near-identical blues)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#999999",
           "#882255"]


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    """Title on top, legend under the plot (a legend above the plot ran into long titles)."""
    fig.update_layout(title=dict(text=title, y=0.98, yanchor="top"), height=height + 60,
                      margin=dict(l=50, r=20, t=60, b=110),
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, xanchor="left"))
    return fig


def log_k_axis(fig: go.Figure, Ks, title: str = "K (importance samples, log scale)", **where) -> None:
    """A log axis whose ticks are exactly the K values plotted (plotly's own log ticks label 20 as
    "2" and 500 as "5")."""
    ticks = sorted({int(k) for k in Ks})
    fig.update_xaxes(type="log", tickmode="array", tickvals=ticks, ticktext=[str(k) for k in ticks], title=title,
                     **where)


def empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", 250)


# ---------------------------------------------------------------------- training curves
def training_curves(records: list[dict], K: int) -> tuple[go.Figure, list[dict]]:
    """Train / validation ELBO and IWAE(K) per epoch (plain lists: no pandas on the first page)."""
    records = list(records or [])
    if not records:
        return empty("No epochs yet: press Play or Step."), records
    fig = go.Figure()
    series = [("train_elbo", "train ELBO", "#1f77b4", "dot"), ("train_iwae", f"train IWAE({K})", "#1f77b4", "solid"),
              ("val_elbo", "validation ELBO", "#ff7f0e", "dot"), ("val_iwae", f"validation IWAE({K})", "#ff7f0e", "solid")]
    epochs = [r.get("epoch") for r in records]
    for col, name, color, dash in series:
        if any(col in r for r in records):
            fig.add_trace(go.Scatter(x=epochs, y=[r.get(col) for r in records], name=name, mode="lines+markers",
                                     line=dict(color=color, dash=dash), marker=dict(size=4)))
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="nats per data point (higher is better)")
    return _layout(fig, "Training and validation bounds"), records


# ---------------------------------------------------------------------- embeddings
AXES = {"raw": ("z1", "z2"), "pca": ("PC 1", "PC 2"), "umap": ("UMAP 1", "UMAP 2")}


def embedding(df, colour: str = "label", label_names: Sequence[str] | None = None, title: str = "Latent space",
              highlight: int | None = None, method: str = "raw"):
    """Scatter of 2-D codes; ``df`` has x, y, index, label, encoded. Hover: index, label, encoded."""
    import plotly.express as px

    d = df.copy()

    def name(i) -> str:
        i = int(i)
        if i < 0:
            return "no label"
        return label_names[i] if label_names is not None and i < len(label_names) else str(i)

    d["label name"] = [name(i) for i in d["label"]]
    col = "label name" if colour == "label" else "encoded"
    present = set(d[col])
    if col == "label name":
        known = [n for n in (label_names or []) if n in present]
        order = known + sorted(present - set(known), key=lambda s: (len(str(s)), str(s)))
    else:
        order = sorted(present, key=_enc_order)
    encoded = sorted(set(d["encoded"]), key=_enc_order)
    by_symbol = colour == "label" and len(encoded) > 1
    fig = px.scatter(d, x="x", y="y", color=col, custom_data=["index"],
                     category_orders={col: order, "encoded": encoded},
                     hover_data={"index": True, "label": True, "label name": True, "encoded": True,
                                 "x": ":.2f", "y": ":.2f"},
                     symbol="encoded" if by_symbol else None, symbol_sequence=SYMBOLS,
                     color_discrete_sequence=PALETTE, opacity=0.75)
    fig.update_traces(marker=dict(size=6))
    if by_symbol:  # one legend entry per label (colour); the symbols are explained in the legend title
        shown: set[str] = set()

        def one_per_label(trace) -> None:
            label = trace.name.rsplit(", ", 1)[0] if ", " in trace.name else trace.name
            trace.update(name=label, legendgroup=label, showlegend=label not in shown)
            shown.add(label)

        fig.for_each_trace(one_per_label)
        key = "; ".join(f"{SYMBOL_NAMES[i % len(SYMBOLS)]}: {e}" for i, e in enumerate(encoded))
        fig.update_layout(legend_title_text=f"label ({key})")
    else:
        fig.update_layout(legend_title_text=col)
    if highlight is not None:
        h = d[(d["index"] == highlight)]
        fig.add_trace(go.Scatter(x=h["x"], y=h["y"], mode="markers", name=f"point {highlight}", hoverinfo="skip",
                                 marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="black", width=2))))
    ax, ay = AXES.get(method, ("z1", "z2"))
    fig.update_xaxes(title=ax)
    fig.update_yaxes(title=ay, scaleanchor="x", scaleratio=1)
    fig = _layout(fig, title, 520)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1.0, x=1.02, xanchor="left"))
    if by_symbol:  # the symbol key goes under the plot (too long for a legend title on the side)
        fig.update_layout(legend_title_text="label", margin=dict(b=80))
        fig.add_annotation(text=key, x=0, y=-0.16, xref="paper", yref="paper", showarrow=False, xanchor="left",
                           font=dict(size=11, color="#555"))
    return fig, d


SYMBOLS = ["circle", "diamond", "square", "x", "cross", "triangle-up"]
SYMBOL_NAMES = ["circles", "diamonds", "squares", "crosses", "pluses", "triangles"]


def _enc_order(s: str):
    return (0 if str(s).startswith("all") else 1, str(s))


# ---------------------------------------------------------------------- posterior ellipses
def _ellipse(mean, cov, k: float, n: int = 80):
    """Points of the k-sigma ellipse of a 2-D Gaussian with a full covariance (drawing only)."""
    import numpy as np

    vals, vecs = np.linalg.eigh(np.asarray(cov, dtype=float))
    t = np.linspace(0, 2 * np.pi, n)
    circle = np.stack([np.cos(t), np.sin(t)])
    pts = vecs @ (k * np.sqrt(np.clip(vals, 0, None))[:, None] * circle)
    return mean[0] + pts[0], mean[1] + pts[1]


def posterior_ellipses(items: list[dict], title: str = "Posteriors of one data point",
                       axes: tuple[str, str] = ("z1", "z2")):
    """1- and 2-sigma ellipses from 2-D means and covariances (``mean`` (2,), ``cov`` (2, 2)):
    unimodal in blue, fused in red, the prior N(0, I) in grey."""
    import numpy as np
    import pandas as pd

    fig = go.Figure()
    rows = []
    prior = {"name": "prior N(0, I)", "role": "prior", "mean": np.zeros(2), "cov": np.eye(2)}
    dashes = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
    counters = {"unimodal": 0, "fused": 0, "prior": 0}
    # Drawing order and style keep every posterior visible: the fused ones first, as wide
    # translucent red bands, the unimodal ones on top as thin blue lines. A mixture's components
    # are (MoE) or contain (MoPoE) the unimodal posteriors themselves: their red band then shows
    # around the blue line instead of hiding it.
    ordered = [prior] + [i for i in items if i["role"] == "fused"] + [i for i in items if i["role"] == "unimodal"]
    for item in ordered:
        role = item["role"]
        color = {"unimodal": UNIMODAL, "fused": FUSED, "prior": PRIOR}[role]
        dash = "solid" if role == "fused" else dashes[counters[role] % len(dashes)]
        counters[role] += 1
        mean, cov = np.asarray(item["mean"], dtype=float), np.asarray(item["cov"], dtype=float)
        for k in (1, 2):
            x, y = _ellipse(mean, cov, k)
            width = (9 if k == 1 else 5) if role == "fused" else (2.5 if k == 1 else 1.2)
            opacity = (0.35 if k == 1 else 0.2) if role == "fused" else (1.0 if k == 1 else 0.55)
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines", name=item["name"], legendgroup=item["name"], showlegend=(k == 1),
                line=dict(color=color, dash=dash, width=width), opacity=opacity,
                hovertemplate=f"{item['name']} ({k} sigma)<extra></extra>"))
        fig.add_trace(go.Scatter(x=[mean[0]], y=[mean[1]], mode="markers", showlegend=False,
                                 legendgroup=item["name"], marker=dict(color=color, size=8, symbol="x"),
                                 hovertemplate=f"{item['name']} mean (%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
        rows.append({"posterior": item["name"], "role": role, "weight": item.get("weight", 1.0),
                     f"mean_{axes[0]}": mean[0], f"mean_{axes[1]}": mean[1], f"var_{axes[0]}": cov[0, 0],
                     f"var_{axes[1]}": cov[1, 1], "cov": cov[0, 1]})
    fig.update_xaxes(title=axes[0])
    fig.update_yaxes(title=axes[1], scaleanchor="x", scaleratio=1)
    fig.add_annotation(text="thick: 1 sigma, thin: 2 sigma; red bands: fused", x=0, y=0, xref="paper", yref="paper",
                       showarrow=False, font=dict(size=11, color="#555"))
    fig = _layout(fig, title, 520)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1.0, x=1.02, xanchor="left",
                                  font=dict(size=11)), margin=dict(r=10))
    return fig, pd.DataFrame(rows)


OVERLAP_PANELS = (
    ("bhattacharyya", "Bhattacharyya coefficient<br>(1 = identical, 0 = disjoint)"),
    ("symmetric_kl", "Symmetric KL between<br>unimodal posteriors (nats)"),
    ("fused_kl", "KL(fused || unimodal) (nats)"),
    ("prior", "What each keeps of the prior (nats)"),
)


def overlap_panels(df):
    """Four panels from a long table (panel, item, series, value, stderr): Bhattacharyya
    coefficient and symmetric KL of each pair of unimodal posteriors, KL from the fused posterior
    to each unimodal one, and KL to the prior / log volume ratio of every posterior."""
    import numpy as np
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(OVERLAP_PANELS), subplot_titles=[t for _, t in OVERLAP_PANELS],
                        horizontal_spacing=0.07)
    colours = {"KL(q || prior)": "#8c564b", "log volume ratio": "#17becf"}
    shown = set()
    for c, (panel, _) in enumerate(OVERLAP_PANELS, start=1):
        g = df[df["panel"] == panel]
        if g.empty:
            fig.add_annotation(text="(one modality: no pair)" if panel != "prior" else "-", showarrow=False,
                               x=0.5, y=0.5, xref=f"x{c} domain", yref=f"y{c} domain")
            continue
        for series, gs in g.groupby("series", sort=False):
            err = gs["stderr"].fillna(0).to_numpy()
            fig.add_trace(go.Bar(x=gs["item"], y=gs["value"], name=series, legendgroup=series,
                                 showlegend=panel == "prior" and series not in shown,
                                 marker_color=colours.get(series, PALETTE[c - 1]),
                                 error_y=dict(type="data", array=err, visible=bool(np.any(err > 0))),
                                 text=[f"{v:.2f}" for v in gs["value"]], textposition="outside",
                                 cliponaxis=False,
                                 hovertemplate=f"{series}<br>%{{x}}: %{{y:.3f}}<extra></extra>"), row=1, col=c)
            shown.add(series)
        if panel == "bhattacharyya":
            fig.update_yaxes(range=[0, 1.15], row=1, col=c)
    fig.update_layout(barmode="group")
    fig.update_annotations(font_size=12)
    fig = _layout(fig, "How different are the posteriors?", 400)
    fig.update_layout(margin=dict(t=80), legend=dict(orientation="h", yanchor="top", y=-0.25, x=0.6))
    return fig, df


# ---------------------------------------------------------------------- bounds
def bound_gaps(df, title: str = "ELBO <= IWAE(K) <= log p(x)"):
    """``df``: K, bound, mean, std. ELBO and IWAE(K) with error bars (std over repeats); the
    importance-sampled log p(x) estimate (band: its Monte Carlo standard error) and the exact
    log p(x) (toy) as horizontal lines."""
    fig = go.Figure()
    colors = {"ELBO": "#1f77b4", "IWAE(K)": "#ff7f0e", "log p(x) estimate": BASELINE, "exact log p(x)": TRUTH}
    for name, g in df.groupby("bound", sort=False):
        g = g.sort_values("K")
        if name == "exact log p(x)":
            fig.add_trace(go.Scatter(x=g["K"], y=g["mean"], name=name, mode="lines",
                                     line=dict(color=TRUTH, dash="dash", width=2),
                                     hovertemplate="exact log p(x) = %{y:.3f}<extra></extra>"))
            continue
        if name.startswith("log p(x) estimate"):
            hi, lo = g["mean"] + g["std"].fillna(0), g["mean"] - g["std"].fillna(0)
            fig.add_trace(go.Scatter(x=list(g["K"]) + list(g["K"])[::-1], y=list(hi) + list(lo)[::-1],
                                     fill="toself", fillcolor="rgba(148,103,189,0.18)", line=dict(width=0), mode="lines",
                                     hoverinfo="skip", showlegend=False))
            fig.add_trace(go.Scatter(x=g["K"], y=g["mean"], name=name, mode="lines",
                                     line=dict(color=BASELINE, dash="dot", width=2),
                                     hovertemplate="log p(x) estimate = %{y:.3f}<extra></extra>"))
            continue
        fig.add_trace(go.Scatter(x=g["K"], y=g["mean"], name=name, mode="lines+markers",
                                 line=dict(color=colors.get(name)),
                                 error_y=dict(type="data", array=g["std"].fillna(0), visible=True),
                                 hovertemplate=f"{name}, K=%{{x}}: %{{y:.3f}}<extra></extra>"))
    log_k_axis(fig, df["K"])
    fig.update_yaxes(title="nats per data point (higher is better)")
    return _layout(fig, title), df


def bounds_bar(df):
    import plotly.express as px

    fig = px.bar(df, x="fusion", y="value", color="bound", barmode="group", text_auto=".2f",
                 color_discrete_sequence=PALETTE)
    fig.update_yaxes(title="nats per data point (higher is better)")
    return _layout(fig, "Test-set bounds", 380), df


def importance_weights(df, n_components: int = 1):
    """``df``: component, sample, log_w, normalised. Bars of the normalised weights (one colour per
    mixture component) and the log-weights as dots on a second axis."""
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    labels = [f"{c}.{k}" if n_components > 1 else str(k) for c, k in zip(df["component"], df["sample"])]
    for c, g in df.groupby("component", sort=True):
        x = [lab for lab, cc in zip(labels, df["component"]) if cc == c]
        fig.add_trace(go.Bar(x=x, y=g["normalised"], name=f"component {c}" if n_components > 1 else "w_k / sum w",
                             marker_color=PALETTE[(int(c) - 1) % len(PALETTE)],
                             hovertemplate="sample %{x}: normalised weight %{y:.3f}<extra></extra>"),
                      secondary_y=False)
    fig.add_trace(go.Scatter(x=labels, y=df["log_w"], mode="markers", name="log w_k",
                             marker=dict(color="#000", size=6, symbol="diamond"),
                             hovertemplate="sample %{x}: log w = %{y:.2f}<extra></extra>"), secondary_y=True)
    fig.update_xaxes(title="sample k" if n_components == 1 else "component.sample", type="category")
    fig.update_yaxes(title_text="normalised weight", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="log w (nats)", secondary_y=True, showgrid=False)
    return _layout(fig, "Importance weights of one data point", 360), df


# ---------------------------------------------------------------------- generations
def image_grid(panels: list, labels: Sequence[str], title: str):
    """``panels``: (row name, images (n, 1|C, H, W)); one row per modality, one column per data point."""
    import numpy as np
    import pandas as pd
    from plotly.subplots import make_subplots

    n_rows, n_cols = len(panels), len(labels)
    fig = make_subplots(rows=n_rows, cols=n_cols, horizontal_spacing=0.01, vertical_spacing=0.04,
                        row_titles=[p[0] for p in panels], column_titles=list(labels))
    rows = []
    for r, (name, imgs) in enumerate(panels, start=1):
        for c in range(n_cols):
            img = np.asarray(imgs[c]).reshape(-1, *np.asarray(imgs[c]).shape[-2:])[0]
            fig.add_trace(go.Heatmap(z=img[::-1], colorscale="gray_r", zmin=0, zmax=1, showscale=False,
                                     hovertemplate=f"{name}<br>row %{{y}}, col %{{x}}: %{{z:.2f}}<extra></extra>"),
                          row=r, col=c + 1)
            for (i, j), v in np.ndenumerate(img):
                rows.append({"row": name, "column": labels[c], "pixel_row": i, "pixel_col": j, "value": float(v)})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    fig.update_annotations(font_size=11)
    return _layout(fig, title, 120 + 110 * n_rows), pd.DataFrame(rows)


def depth_logs(depth, curves: list[dict], unit: str, depth_unit: str = "m", title: str = "Logs"):
    """Curves: dicts with modality, what (truth / model / baseline), values (L,). One panel per modality."""
    import pandas as pd
    from plotly.subplots import make_subplots

    mods = list(dict.fromkeys(c["modality"] for c in curves))
    fig = make_subplots(rows=1, cols=len(mods), shared_yaxes=True, subplot_titles=mods, horizontal_spacing=0.06)
    styles = {"truth": (TRUTH, "solid"), "model": (FUSED, "solid"), "baseline": (BASELINE, "dash"),
              "given": (UNIMODAL, "solid")}
    rows = []
    seen: set[str] = set()
    for c in curves:
        col = mods.index(c["modality"]) + 1
        color, dash = styles.get(c["what"], ("#000", "solid"))
        first = c["what"] not in seen
        seen.add(c["what"])
        fig.add_trace(go.Scatter(x=c["values"], y=depth, mode="lines", name=f"{c['what']}",
                                 legendgroup=c["what"], showlegend=first,
                                 line=dict(color=color, dash=dash, shape="hv" if c["what"] == "truth" else "linear"),
                                 hovertemplate=f"{c['modality']} {c['what']}: %{{x:.2f}} {unit}<br>depth %{{y:.0f}} "
                                               f"{depth_unit}<extra></extra>"), row=1, col=col)
        for d, v in zip(depth, c["values"]):
            rows.append({"modality": c["modality"], "curve": c["what"], "depth": float(d), "value": float(v)})
    fig.update_yaxes(autorange="reversed", title_text=f"depth ({depth_unit})", row=1, col=1)
    fig.update_xaxes(title_text=unit or "value")
    return _layout(fig, title, 560), pd.DataFrame(rows)


def vectors(panels: list[dict], title: str):
    """Vector modalities (toy): one bar group per modality, truth vs model."""
    import pandas as pd
    import plotly.express as px

    df = pd.DataFrame([{"modality": p["modality"], "what": p["what"], "component": i, "value": float(v)}
                       for p in panels for i, v in enumerate(p["values"])])
    fig = px.bar(df, x="component", y="value", color="what", facet_col="modality", barmode="group",
                 color_discrete_map={"truth": TRUTH, "model": FUSED, "given": UNIMODAL})
    return _layout(fig, title, 380), df


# ---------------------------------------------------------------------- gradients
def gradient_snr(df):
    """``df``: K, estimator, part (encoder / decoder), snr."""
    import plotly.express as px

    fig = px.line(df, x="K", y="snr", color="estimator", facet_col="part", markers=True, log_x=True, log_y=True,
                  color_discrete_sequence=PALETTE, category_orders={"part": ["encoder", "decoder"]})
    log_k_axis(fig, df["K"], title="K")
    fig.update_yaxes(title_text="gradient SNR (log scale)", col=1)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1] + " gradients"))
    fig.update_layout(legend_title_text="")
    return _layout(fig, "Signal-to-noise ratio of the gradients vs K"), df


# ---------------------------------------------------------------------- shared and private latents
def coherence_bars(df, chance: float, title: str = "Coherence given each modality and each pair"):
    """``df``: given, model, coherence. Grouped bars (one colour per model) and a dotted line at chance."""
    import plotly.express as px

    fig = px.bar(df, x="given", y="coherence", color="model", barmode="group", text_auto=".2f",
                 color_discrete_sequence=PALETTE)
    fig.add_hline(y=chance, line_dash="dot", line_color="#555", annotation_text="chance")
    fig.update_yaxes(range=[0, 1.05], title="coherence (share keeping the class)")
    fig.update_xaxes(title="given")
    return _layout(fig, title, 380), df
