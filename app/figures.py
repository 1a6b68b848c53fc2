"""Plotly figure builders. Each returns ``(figure, DataFrame)``: the frame is the figure's data,
offered as a CSV download beside the chart."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

UNIMODAL = "#1f77b4"  # blue
FUSED = "#d62728"  # red
PRIOR = "#7f7f7f"
TRUTH = "#2ca02c"
BASELINE = "#9467bd"
PALETTE = px.colors.qualitative.Plotly


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=50, r=20, t=50, b=45),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0), title_y=0.98)
    return fig


def empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", 250)


# ---------------------------------------------------------------------- training curves
def training_curves(records: list[dict], K: int) -> tuple[go.Figure, pd.DataFrame]:
    df = pd.DataFrame(records)
    fig = go.Figure()
    series = [("train_elbo", "train ELBO", "#1f77b4", "dot"), ("train_iwae", f"train IWAE({K})", "#1f77b4", "solid"),
              ("val_elbo", "validation ELBO", "#ff7f0e", "dot"), ("val_iwae", f"validation IWAE({K})", "#ff7f0e", "solid")]
    for col, name, color, dash in series:
        if col in df:
            fig.add_trace(go.Scatter(x=df["epoch"], y=df[col], name=name, mode="lines+markers",
                                     line=dict(color=color, dash=dash), marker=dict(size=4)))
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(title="nats per data point (higher is better)")
    if df.empty:
        return empty("No epochs yet: press Play or Step."), df
    return _layout(fig, "Training and validation bounds"), df


# ---------------------------------------------------------------------- embeddings
def embedding(df: pd.DataFrame, colour: str = "label", label_names: Sequence[str] | None = None,
              title: str = "Latent space", highlight: int | None = None) -> tuple[go.Figure, pd.DataFrame]:
    d = df.copy()
    if label_names is not None:
        d["label name"] = [label_names[int(i)] if 0 <= int(i) < len(label_names) else str(i) for i in d["label"]]
    else:
        d["label name"] = d["label"].astype(str)
    col = "label name" if colour == "label" else "encoded"
    order = sorted(d[col].unique(), key=lambda s: (len(str(s)), str(s)))
    fig = px.scatter(d, x="x", y="y", color=col, custom_data=["index"], category_orders={col: order},
                     hover_data={"index": True, "label name": True, "encoded": True, "x": ":.2f", "y": ":.2f"},
                     symbol="encoded" if colour == "label" and d["encoded"].nunique() > 1 else None,
                     color_discrete_sequence=PALETTE, opacity=0.75)
    fig.update_traces(marker=dict(size=6))
    if highlight is not None:
        h = d[(d["index"] == highlight)]
        fig.add_trace(go.Scatter(x=h["x"], y=h["y"], mode="markers", name=f"point {highlight}",
                                 marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="black", width=2))))
    fig.update_xaxes(title="z1")
    fig.update_yaxes(title="z2", scaleanchor="x", scaleratio=1)
    return _layout(fig, title, 480), d


# ---------------------------------------------------------------------- posterior ellipses
def _ellipse(mean, std, k: float, n: int = 80):
    t = np.linspace(0, 2 * np.pi, n)
    return mean[0] + k * std[0] * np.cos(t), mean[1] + k * std[1] * np.sin(t)


def posterior_ellipses(items: list[dict], title: str = "Posteriors of one data point") -> tuple[go.Figure, pd.DataFrame]:
    """1- and 2-sigma ellipses: unimodal in blue, fused in red, the prior N(0, I) in grey."""
    fig = go.Figure()
    rows = []
    prior = {"name": "prior N(0, I)", "role": "prior", "mean": np.zeros(2), "std": np.ones(2)}
    dashes = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"]
    counters = {"unimodal": 0, "fused": 0, "prior": 0}
    for item in [prior] + list(items):
        role = item["role"]
        color = {"unimodal": UNIMODAL, "fused": FUSED, "prior": PRIOR}[role]
        dash = dashes[counters[role] % len(dashes)]
        counters[role] += 1
        for k in (1, 2):
            x, y = _ellipse(item["mean"], item["std"], k)
            fig.add_trace(go.Scatter(
                x=x, y=y, mode="lines", name=item["name"], legendgroup=item["name"], showlegend=(k == 1),
                line=dict(color=color, dash=dash, width=2.5 if k == 1 else 1.2),
                opacity=1.0 if k == 1 else 0.55,
                hovertemplate=f"{item['name']} ({k} sigma)<extra></extra>"))
        fig.add_trace(go.Scatter(x=[item["mean"][0]], y=[item["mean"][1]], mode="markers", showlegend=False,
                                 legendgroup=item["name"], marker=dict(color=color, size=8, symbol="x"),
                                 hovertemplate=f"{item['name']} mean (%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
        rows.append({"posterior": item["name"], "role": role, "mean_z1": float(item["mean"][0]),
                     "mean_z2": float(item["mean"][1]), "std_z1": float(item["std"][0]),
                     "std_z2": float(item["std"][1])})
    fig.update_xaxes(title="z1")
    fig.update_yaxes(title="z2", scaleanchor="x", scaleratio=1)
    fig.add_annotation(text="thick: 1 sigma, thin: 2 sigma", x=0, y=0, xref="paper", yref="paper",
                       showarrow=False, font=dict(size=11, color="#555"))
    return _layout(fig, title, 520), pd.DataFrame(rows)


def overlap_bars(df: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    fig = px.bar(df, x="pair", y="value", color="measure", barmode="group", color_discrete_sequence=PALETTE)
    fig.update_yaxes(title="value (0 = identical)")
    fig.update_xaxes(title="")
    return _layout(fig, "How different are the posteriors?", 400), df


# ---------------------------------------------------------------------- bounds
def bound_gaps(df: pd.DataFrame, title: str = "ELBO <= IWAE(K) <= log p(x)") -> tuple[go.Figure, pd.DataFrame]:
    fig = go.Figure()
    colors = {"ELBO": "#1f77b4", "IWAE(K)": "#ff7f0e", "log p(x) estimate": "#9467bd", "exact log p(x)": TRUTH}
    for name, g in df.groupby("bound", sort=False):
        g = g.sort_values("K")
        if name == "exact log p(x)":
            fig.add_trace(go.Scatter(x=g["K"], y=g["mean"], name=name, mode="lines",
                                     line=dict(color=TRUTH, dash="dash", width=2)))
            continue
        fig.add_trace(go.Scatter(x=g["K"], y=g["mean"], name=name, mode="lines+markers",
                                 line=dict(color=colors.get(name)),
                                 error_y=dict(type="data", array=g["std"].fillna(0), visible=True)))
    fig.update_xaxes(type="log", title="K (importance samples, log scale)")
    fig.update_yaxes(title="nats per data point")
    return _layout(fig, title), df


def bounds_bar(df: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    fig = px.bar(df, x="fusion", y="value", color="bound", barmode="group", text_auto=".2f",
                 color_discrete_sequence=PALETTE)
    fig.update_yaxes(title="nats per data point (higher is better)")
    return _layout(fig, "Test-set bounds", 380), df


# ---------------------------------------------------------------------- generations
def image_grid(panels: list[tuple[str, np.ndarray]], labels: Sequence[str], title: str) -> tuple[go.Figure, pd.DataFrame]:
    """``panels``: (row name, images (n, 1|C, H, W)); one row per modality, one column per data point."""
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


def depth_logs(depth: np.ndarray, curves: list[dict], unit: str, depth_unit: str = "m",
               title: str = "Logs") -> tuple[go.Figure, pd.DataFrame]:
    """Curves: dicts with modality, what (truth / model / baseline), values (L,). One panel per modality."""
    mods = list(dict.fromkeys(c["modality"] for c in curves))
    fig = make_subplots(rows=1, cols=len(mods), shared_yaxes=True, subplot_titles=mods, horizontal_spacing=0.06)
    styles = {"truth": (TRUTH, "solid"), "model": (FUSED, "solid"), "baseline": (BASELINE, "dash"),
              "given": (UNIMODAL, "solid")}
    rows = []
    for c in curves:
        col = mods.index(c["modality"]) + 1
        color, dash = styles.get(c["what"], ("#000", "solid"))
        fig.add_trace(go.Scatter(x=c["values"], y=depth, mode="lines", name=f"{c['what']}",
                                 legendgroup=c["what"], showlegend=col == 1 or c["what"] == "baseline",
                                 line=dict(color=color, dash=dash, shape="hv" if c["what"] == "truth" else "linear"),
                                 hovertemplate=f"{c['modality']} {c['what']}: %{{x:.2f}} {unit}<br>depth %{{y:.0f}} "
                                               f"{depth_unit}<extra></extra>"), row=1, col=col)
        for d, v in zip(depth, c["values"]):
            rows.append({"modality": c["modality"], "curve": c["what"], "depth": float(d), "value": float(v)})
    fig.update_yaxes(autorange="reversed", title_text=f"depth ({depth_unit})", row=1, col=1)
    fig.update_xaxes(title_text=unit or "value")
    return _layout(fig, title, 560), pd.DataFrame(rows)


def vectors(panels: list[dict], title: str) -> tuple[go.Figure, pd.DataFrame]:
    """Vector modalities (toy): one bar group per modality, truth vs model."""
    df = pd.DataFrame([{"modality": p["modality"], "what": p["what"], "component": i, "value": float(v)}
                       for p in panels for i, v in enumerate(p["values"])])
    fig = px.bar(df, x="component", y="value", color="what", facet_col="modality", barmode="group",
                 color_discrete_map={"truth": TRUTH, "model": FUSED, "given": UNIMODAL})
    return _layout(fig, title, 380), df


# ---------------------------------------------------------------------- gradients
def gradient_snr(df: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    fig = px.line(df, x="K", y="snr", color="estimator", facet_col="part", markers=True, log_x=True, log_y=True,
                  color_discrete_sequence=PALETTE)
    fig.update_yaxes(title_text="gradient SNR (log scale)", col=1)
    return _layout(fig, "Signal-to-noise ratio of the gradients vs K"), df
