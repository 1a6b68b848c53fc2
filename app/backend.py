"""The app's only door into the package's analyses.

Every function calls ``mmvae`` (and ``mmvae.diagnostics`` where it exists) and reshapes the
answer into a pandas DataFrame or a small dict for the figures; none of them does maths. When a
diagnostics function is missing, :class:`Unavailable` says which one, and the page shows that.
"""
from __future__ import annotations

import importlib
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch


class Unavailable(RuntimeError):
    """A diagnostics function this view needs is not in the installed mmvae (yet)."""


def diagnostics_function(name: str):
    try:
        module = importlib.import_module("mmvae.diagnostics")
    except ImportError:
        raise Unavailable(f"`mmvae.diagnostics.{name}` is needed here, but `mmvae.diagnostics` is not "
                          "installed yet") from None
    fn = getattr(module, name, None)
    if fn is None:
        raise Unavailable(f"`mmvae.diagnostics.{name}` is needed here, but this mmvae does not have it yet")
    return fn


def _np(v: Any) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def _subset(data, n: int):
    return data.subset(slice(0, min(int(n), data.n)))


def modality_slices(data, index: int) -> dict[str, torch.Tensor]:
    return {k: v[index : index + 1] for k, v in data.modalities.items()}


# ------------------------------------------------------------------------------ embeddings
@torch.no_grad()
def latent_embedding(model, data, method: str = "auto", fusion: str | None = None, n: int = 600) -> pd.DataFrame:
    """Posterior means of the joint and of each single modality, in 2-D.

    Columns: x, y, index, label, encoded (which modalities were encoded)."""
    data = _subset(data, n).to(model.device)
    try:
        fn = diagnostics_function("latent_embedding")
    except Unavailable:
        fn = None
    if fn is not None:
        try:
            return _embedding_frame(fn(model, data, method=method), data)
        except Exception:  # noqa: BLE001 - diagnostics API still settling: use the package-only view
            if model.latent_dim != 2 or method in ("pca", "umap"):
                raise
    if model.latent_dim != 2 or method in ("pca", "umap"):
        raise Unavailable("`mmvae.diagnostics.latent_embedding` is needed for PCA / UMAP views of a "
                          f"{model.latent_dim}-D latent, and it is not in this mmvae yet")
    frames = []
    labels = _np(data.labels) if data.labels is not None else np.full(data.n, -1)
    groups = [("all modalities", dict(data.modalities))] + [(m, {m: data.modalities[m]}) for m in model.names]
    for what, x in groups:
        mean = _np(model.posterior(x, fusion).mean)
        frames.append(pd.DataFrame({"x": mean[:, 0], "y": mean[:, 1], "index": np.arange(data.n),
                                    "label": labels, "encoded": what}))
    return pd.concat(frames, ignore_index=True)


def _embedding_frame(result: Any, data) -> pd.DataFrame:
    if isinstance(result, pd.DataFrame):
        df = result.copy()
    elif isinstance(result, dict) and ("coords" in result or "embedding" in result):
        coords = _np(result.get("coords", result.get("embedding")))
        df = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1]})
        for k in ("index", "label", "labels", "encoded", "modality", "source"):
            if k in result:
                df[k] = _np(result[k]) if not isinstance(result[k], list) else result[k]
    else:
        coords = _np(result)
        df = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1]})
    df = df.rename(columns={"labels": "label", "modality": "encoded", "source": "encoded", 0: "x", 1: "y"})
    if "index" not in df:
        df["index"] = np.arange(len(df)) % max(data.n, 1)
    if "label" not in df:
        labels = _np(data.labels) if data.labels is not None else np.full(data.n, -1)
        df["label"] = labels[df["index"].to_numpy().astype(int)]
    if "encoded" not in df:
        df["encoded"] = "all modalities"
    return df


# ------------------------------------------------------------------------------ posteriors
@torch.no_grad()
def posterior_ellipses(model, x: dict[str, torch.Tensor], fusion: str) -> list[dict]:
    """Gaussian posteriors of one data point: each unimodal one, and each component of the fused
    one. Items: name, role (unimodal / fused), mean (2,), std (2,) (diagonal) in latent dims 0, 1."""
    out = []
    experts = model.posterior  # unimodal posterior = the model's posterior of that modality alone
    for m in model.names:
        p = experts({m: x[m]}, "poe")
        out.append({"name": f"q(z | {m})", "role": "unimodal", "mean": _np(p.loc[0, 0]),
                    "std": _np(p.log_scale[0, 0].exp())})
    fused = model.posterior(x, fusion)
    for c in range(fused.n_components):
        label = "+".join(fused.subsets[c])
        name = f"fused {fusion.upper()}" if fused.n_components == 1 else f"{fusion.upper()} part {label}"
        out.append({"name": name, "role": "fused", "mean": _np(fused.loc[c, 0]),
                    "std": _np(fused.log_scale[c, 0].exp()), "weight": 1.0 / fused.n_components})
    return out


def posterior_overlap(model, x: dict[str, torch.Tensor], fusions: Sequence[str]) -> pd.DataFrame:
    """Overlap measures from ``mmvae.diagnostics.posterior_overlap`` as a long table
    (measure, pair, value)."""
    fn = diagnostics_function("posterior_overlap")
    result = fn(model, x, fusions=list(fusions))
    return _long_table(result, ("measure", "pair", "value"))


def _long_table(result: Any, columns: tuple[str, ...]) -> pd.DataFrame:
    if isinstance(result, pd.DataFrame):
        return result
    if isinstance(result, list):
        return pd.DataFrame(result)
    if isinstance(result, dict):
        rows = []
        for k, v in result.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    if np.ndim(_np(v2)) == 0:
                        rows.append({columns[0]: k, columns[1]: k2, columns[2]: float(_np(v2))})
            elif np.ndim(_np(v)) == 0:
                rows.append({columns[0]: k, columns[1]: "", columns[2]: float(_np(v))})
        return pd.DataFrame(rows, columns=list(columns))
    raise TypeError(f"unexpected result of type {type(result).__name__}")


# ------------------------------------------------------------------------------ bounds
def bound_gaps(model, data, Ks: Sequence[int], repeats: int = 3, exact_params=None, fusion=None,
               n: int = 300) -> pd.DataFrame:
    """ELBO and IWAE(K) vs K (mean and spread over repeats) and log p(x) where known.

    Columns: K, bound, mean, std."""
    data = _subset(data, n).to(model.device)
    try:
        fn = diagnostics_function("bound_gaps")
    except Unavailable:
        fn = None
    if fn is not None:
        try:
            df = _gaps_frame(fn(model, data, Ks=list(Ks), repeats=repeats))
            if not df.empty:
                return df
        except Exception:  # noqa: BLE001 - diagnostics API still settling: use bound_table below
            pass
    from mmvae.evaluation import bound_table

    rows = []
    for r in range(repeats):
        torch.manual_seed(1000 + r)
        for row in bound_table(model, data, Ks, fusion):
            rows.append({"K": row["K"], "bound": "ELBO", "value": row["elbo"]})
            rows.append({"K": row["K"], "bound": "IWAE(K)", "value": row["iwae"]})
    df = pd.DataFrame(rows).groupby(["K", "bound"], as_index=False)["value"].agg(["mean", "std"]).reset_index()
    if exact_params is not None:
        from mmvae.data.toy import exact_log_likelihood

        x64 = {k: v.double().cpu() for k, v in data.modalities.items()}
        exact = float(exact_log_likelihood(exact_params, x64).mean())
        df = pd.concat([df, pd.DataFrame([{"K": k, "bound": "exact log p(x)", "mean": exact, "std": 0.0}
                                          for k in Ks])], ignore_index=True)
    return df[["K", "bound", "mean", "std"]]


def _gaps_frame(result: Any) -> pd.DataFrame:
    if isinstance(result, pd.DataFrame):
        return result
    rows = result if isinstance(result, list) else result.get("rows", [])
    out = []
    for r in rows:
        for key, name in (("elbo", "ELBO"), ("iwae", "IWAE(K)"), ("log_likelihood", "log p(x) estimate"),
                          ("exact", "exact log p(x)")):
            if key in r and r[key] is not None:
                out.append({"K": r["K"], "bound": name, "mean": float(r[key]),
                            "std": float(r.get(f"{key}_std", 0.0) or 0.0)})
    return pd.DataFrame(out, columns=["K", "bound", "mean", "std"])


def evaluate(model, data, K: int, fusion=None, n: int = 500) -> dict:
    """Mean ELBO and IWAE(K) of the fused posterior on (up to n points of) ``data``."""
    from mmvae.evaluation import bound_table

    data = _subset(data, n).to(model.device)
    torch.manual_seed(0)
    return bound_table(model, data, [K], fusion)[0]


# ------------------------------------------------------------------------------ generation
@torch.no_grad()
def generate(model, data, given: Sequence[str], indices: Sequence[int], fusion: str | None = None) -> dict:
    """Cross-modal generations for the data points ``indices``: targets are the modalities not
    given (or all, when everything is given). Returns name -> array (len(indices), *shape)."""
    idx = torch.as_tensor(list(indices), dtype=torch.long)
    x = {m: data.modalities[m][idx].to(model.device) for m in given}
    targets = [m for m in model.names if m not in given] or list(model.names)
    out = model.generate(x, targets, fusion=fusion)
    return {k: _np(v) for k, v in out.items()}


def coherence(model, data, given: Sequence[str], fusion: str | None = None, train=None) -> float:
    """Mean share of generations (from ``given``) that a per-modality classifier assigns to the
    input's class (``mmvae.diagnostics.coherence``); needs labels and the training split."""
    fn = diagnostics_function("coherence")
    classifiers_fn = diagnostics_function("modality_classifiers")
    if data.labels is None or train is None:
        raise Unavailable("coherence needs labelled data")
    classifiers = classifiers_fn(train, model.names)
    result = fn(model, data, classifiers, fusion=fusion, n_prior=0, subsets=[list(given)])
    rows = [r for r in result.get("conditional", []) if sorted(r.get("given", [])) == sorted(given)]
    if not rows:
        raise Unavailable("mmvae.diagnostics.coherence returned no value for this subset")
    return float(np.mean([r["coherence"] for r in rows]))


def rock_physics_baseline(ai_physical: np.ndarray) -> np.ndarray:
    """SI predicted from AI by a rock-physics relation (from ``mmvae.diagnostics``)."""
    for name in ("rock_physics_si", "rock_physics_baseline", "si_from_ai"):
        try:
            return _np(diagnostics_function(name)(ai_physical))
        except Unavailable:
            continue
    raise Unavailable("`mmvae.diagnostics.rock_physics_baseline` (SI from AI by a rock-physics relation) is "
                      "needed for the baseline curve, and this mmvae does not have it yet")


# ------------------------------------------------------------------------------ gradients
def gradient_snr(model, batch: dict, Ks: Sequence[int], estimators: Sequence[str], fusion=None) -> pd.DataFrame:
    """Signal-to-noise ratio of encoder and decoder gradients. Columns: K, estimator, part, snr."""
    fn = diagnostics_function("gradient_snr")
    result = fn(model, batch, Ks=list(Ks), estimators=list(estimators), fusion=fusion)
    if isinstance(result, pd.DataFrame):
        return result
    rows = result if isinstance(result, list) else result.get("rows", result.get("table", []))
    df = pd.DataFrame(rows)
    df = df[[c for c in df.columns if not c.endswith("_median")]]
    if "part" not in df and {"encoder_snr", "decoder_snr"} <= set(df.columns):
        df = df.rename(columns={"encoder_snr": "encoder", "decoder_snr": "decoder"})
    if "part" not in df and {"encoder", "decoder"} <= set(df.columns):
        df = df.melt(id_vars=[c for c in df.columns if c not in ("encoder", "decoder")],
                     value_vars=["encoder", "decoder"], var_name="part", value_name="snr")
    return df
