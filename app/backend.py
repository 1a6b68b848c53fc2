"""The app's only door into the package's analyses.

Every function calls ``mmvae.diagnostics`` (or ``mmvae``) and reshapes the answer into a pandas
DataFrame or a small dict for the figures; none of them does maths. ``mmvae.diagnostics`` (and
scikit-learn / umap-learn behind it) is imported on first use, never at page load, by a plain
``from mmvae.diagnostics import ...``: a missing function is an ImportError that fails loudly (and
fails the tests), never a quiet "not available". :class:`Unavailable` is raised only for the
documented cases where a view does not apply to this model or data (a 1-D latent has no plane,
unlabelled data has no coherence, UMAP without umap-learn).

Shared models (the shipped checkpoints are cached once per server and read by every session) are
never mutated: analyses that need gradients (:func:`gradient_snr`) work on a private deep copy.
"""
from __future__ import annotations

import copy
import importlib
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch


class Unavailable(RuntimeError):
    """The view does not apply to this model or data (documented cases only; see the module
    docstring). Every other exception is a bug and propagates."""


def _np(v: Any) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def _subset(data, n: int):
    return data.subset(slice(0, min(int(n), data.n)))


def _labels(data) -> np.ndarray:
    return _np(data.labels).astype(int) if data.labels is not None else np.full(data.n, -1)


def fusion_name(fusion: str) -> str:
    return {"poe": "PoE", "moe": "MoE", "mopoe": "MoPoE"}.get(fusion, fusion)


# ------------------------------------------------------------------------------ embeddings
def resolve_method(method: str, latent_dim: int) -> str:
    """``mmvae.diagnostics.embeddings.embedding_method``: "auto" is the latent itself when D <= 2,
    else PCA (instant); UMAP only when asked for, since its first import compiles with numba."""
    from mmvae.diagnostics.embeddings import embedding_method

    try:
        return embedding_method(method, latent_dim)
    except ValueError as e:
        raise Unavailable(str(e)) from None


def latent_means(model, data, fusion: str | None = None, n: int = 400) -> dict:
    """Posterior means of the first ``n`` points: joint and each modality alone
    (``mmvae.diagnostics.latent_means``), with their labels."""
    from mmvae import diagnostics

    data = _subset(data, n)
    means = diagnostics.latent_means(model, data, fusion)
    return {"means": means, "labels": _labels(data), "fusion": fusion or model.fusion}


def embed(means: dict, method: str, seed: int = 0) -> pd.DataFrame:
    """2-D coordinates of :func:`latent_means` (``mmvae.diagnostics.embed_2d``, one shared
    projection). Columns: x, y, index, label, encoded; ``attrs['method']`` the method used."""
    from mmvae import diagnostics

    result = diagnostics.embed_2d(means["means"], method=method, seed=seed)
    frames = []
    for name, xy in result["coords"].items():
        what = f"all modalities ({fusion_name(means['fusion'])})" if name == "joint" else f"{name} only"
        frames.append(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "index": np.arange(len(xy)),
                                    "label": means["labels"][: len(xy)], "encoded": what}))
    df = pd.concat(frames, ignore_index=True)
    df.attrs["method"] = result["method"]
    return df


def import_umap() -> bool:
    """Import umap-learn (its first import compiles with numba: call it behind a spinner)."""
    try:
        importlib.import_module("umap")
    except ImportError:
        raise Unavailable("UMAP needs the umap-learn package (pip install umap-learn); PCA works without it") from None
    return True


def latent_embedding(model, data, method: str = "auto", fusion: str | None = None, n: int = 400) -> pd.DataFrame:
    """:func:`latent_means` then :func:`embed` (``auto`` = raw for D = 2, else PCA)."""
    return embed(latent_means(model, data, fusion, n), resolve_method(method, model.latent_dim))


# ------------------------------------------------------------------------------ posteriors
def posterior_overlap(model, data, point: int, fusion: str, n_mc: int = 200, projection: str = "pca") -> dict:
    """``mmvae.diagnostics.posterior_overlap`` of one data point (index into ``data``) with one
    fusion rule: unimodal and fused posteriors, their 2-D view and the overlap figures."""
    from mmvae import diagnostics

    if model.latent_dim < 2:
        raise Unavailable("a 1-D latent has no 2-D view")
    return diagnostics.posterior_overlap(model, data, points=[int(point)], fusions=[fusion], n_mc=int(n_mc),
                                         projection=projection, seed=0)


def overlap_ellipses(result: dict) -> list[dict]:
    """One item per Gaussian to draw in the diagnostics' 2-D view: each unimodal posterior and
    each component of the fused one. Items: name, role, mean (2,), cov (2, 2), weight."""
    out = []
    for key, p in result["posteriors"].items():
        loc2d, cov2d = np.asarray(p["loc2d"])[0], np.asarray(p["cov2d"])[0]  # (C, 2), (C, 2, 2)
        C = loc2d.shape[0]
        if p["kind"] == "unimodal":
            for c in range(C):
                name = f"q(z | {key})" + (f" part {c + 1}" if C > 1 else "")
                out.append({"name": name, "role": "unimodal", "mean": loc2d[c], "cov": cov2d[c], "weight": 1.0 / C})
            continue
        for c in range(C):
            subset = "+".join(p["subsets"][c]) if c < len(p["subsets"]) else str(c)
            name = f"fused {fusion_name(key)}" if C == 1 else f"{fusion_name(key)} part q(z | {subset})"
            out.append({"name": name, "role": "fused", "mean": loc2d[c], "cov": cov2d[c], "weight": 1.0 / C})
    return out


def overlap_table(result: dict) -> pd.DataFrame:
    """The overlap figures as a long table: panel, item, series, value, stderr (all nats but the
    Bhattacharyya coefficient). NaN values (e.g. BC of Laplace latents) are left out."""
    rows = []
    for pair in result["pairs"]:
        item = f"{pair['a']} vs {pair['b']}"
        rows.append({"panel": "bhattacharyya", "item": item, "series": "Bhattacharyya coefficient",
                     "value": _np(pair["bhattacharyya"])[0], "stderr": 0.0})
        rows.append({"panel": "symmetric_kl", "item": item, "series": "symmetric KL",
                     "value": _np(pair["symmetric_kl"])[0], "stderr": _np(pair["symmetric_kl_stderr"])[0]})
    for r in result["fused_vs_unimodal"]:
        rows.append({"panel": "fused_kl", "item": f"{fusion_name(r['fused'])} || {r['unimodal']}",
                     "series": f"KL ({r['method']})", "value": _np(r["kl"])[0], "stderr": _np(r["stderr"])[0]})
    for key, p in result["posteriors"].items():
        item = key if p["kind"] == "unimodal" else fusion_name(key)
        rows.append({"panel": "prior", "item": item, "series": "KL(q || prior)", "value": _np(p["kl_prior"])[0],
                     "stderr": _np(p["kl_prior_stderr"])[0]})
        rows.append({"panel": "prior", "item": item, "series": "log volume ratio",
                     "value": _np(p["log_volume_ratio"])[0], "stderr": 0.0})
    df = pd.DataFrame(rows, columns=["panel", "item", "series", "value", "stderr"])
    df["value"] = df["value"].astype(float)
    df["stderr"] = df["stderr"].astype(float)
    return df[np.isfinite(df["value"])].reset_index(drop=True)


# ------------------------------------------------------------------------------ bounds
def bound_gaps(model, data, Ks: Sequence[int], repeats: int = 3, exact_params=None, fusion=None, n: int = 200,
               n_samples: int | None = 500) -> tuple[pd.DataFrame, dict]:
    """``mmvae.diagnostics.bound_gaps``: ELBO and IWAE(K) vs K (mean and std over repeats), the
    importance-sampled log p(x) (``n_samples`` samples; std = its Monte Carlo standard error) and,
    for the toy, the exact log p(x). Returns (long table K, bound, mean, std; the raw result)."""
    from mmvae import diagnostics

    data = _subset(data, n)
    exact = diagnostics.exact_log_likelihood_fn(exact_params) if exact_params is not None else None
    result = diagnostics.bound_gaps(model, data, Ks=list(Ks), repeats=int(repeats), fusion=fusion,
                                    n_samples=n_samples, exact=exact, seed=0)
    out = []
    for r in result["rows"]:
        out.append({"K": r["K"], "bound": "ELBO", "mean": r["elbo_mean"], "std": r["elbo_std"]})
        out.append({"K": r["K"], "bound": "IWAE(K)", "mean": r["iwae_mean"], "std": r["iwae_std"]})
    ll = result.get("log_likelihood")
    if ll:
        out += [{"K": r["K"], "bound": f"log p(x) estimate ({ll['n_samples']} samples)", "mean": ll["mean"],
                 "std": ll["mc_stderr"]} for r in result["rows"]]
    if result.get("exact") is not None:
        out += [{"K": r["K"], "bound": "exact log p(x)", "mean": result["exact"], "std": 0.0} for r in result["rows"]]
    return pd.DataFrame(out, columns=["K", "bound", "mean", "std"]), result


def evaluate(model, data, K: int, fusion=None, n: int = 200) -> dict:
    """Mean ELBO and IWAE(K) on (up to n points of) ``data`` (``mmvae.diagnostics.bound_gaps``,
    one repeat, no log-likelihood estimate)."""
    from mmvae import diagnostics

    result = diagnostics.bound_gaps(model, _subset(data, n), Ks=[int(K)], repeats=1, fusion=fusion,
                                    n_samples=None, seed=0)
    row = result["rows"][0]
    return {"K": row["K"], "elbo": row["elbo_mean"], "iwae": row["iwae_mean"]}


# ------------------------------------------------------------------------------ generation
def generate(model, data, given: Sequence[str], indices: Sequence[int], fusion: str | None = None) -> dict:
    """Cross-modal generations (``mmvae.diagnostics.generate``, decoder mean at the posterior mean)
    for the data points ``indices``: targets are the modalities not given (or all, when everything
    is given). Returns name -> array (len(indices), *shape)."""
    from mmvae import diagnostics

    idx = torch.as_tensor(list(indices), dtype=torch.long)
    x = {m: data.modalities[m][idx] for m in given}
    targets = [m for m in model.names if m not in given] or list(model.names)
    out = diagnostics.generate(model, x, list(given), targets, fusion=fusion)
    return {k: _np(v) for k, v in out.items()}


def coherence(model, data, given: Sequence[str], fusion: str | None = None, train=None, n: int = 200) -> dict | None:
    """Share of generations from ``given`` that a per-modality classifier (trained on the real
    training data) assigns to the input's class (``mmvae.diagnostics.coherence``), with the
    classifiers' accuracy on real data and chance. None when nothing is left to generate."""
    from mmvae import diagnostics

    if data.labels is None or train is None or train.labels is None:
        raise Unavailable("coherence needs labelled data")
    targets = [m for m in model.names if m not in given]
    if not targets:
        return None
    classifiers = diagnostics.modality_classifiers(train, list(model.names))
    result = diagnostics.coherence(model, _subset(data, n), classifiers, fusion=fusion, n_prior=0,
                                   subsets=[list(given)])
    rows = [r for r in result["conditional"] if sorted(r["given"]) == sorted(given)]
    acc = result["classifier_accuracy"]
    return {"per_target": {r["target"]: r["coherence"] for r in rows},
            "mean": float(np.mean([r["coherence"] for r in rows])),
            "accuracy": {t: acc[t] for t in targets if t in acc}, "chance": result["chance"]}


def rock_physics_baseline(ai_physical: np.ndarray) -> np.ndarray:
    """SI predicted from AI by Gardner and Castagna's relations (``mmvae.diagnostics.rock_physics_si``)."""
    from mmvae import diagnostics

    return _np(diagnostics.rock_physics_si(ai_physical))


def impedance_rmse(model, data, specs, fusion: str | None = None, n: int = 200) -> dict:
    """RMSE of SI generated from AI against the truth, beside the rock-physics baseline
    (``mmvae.diagnostics.impedance_si_rmse``)."""
    from mmvae import diagnostics

    return diagnostics.impedance_si_rmse(model, _subset(data, n), specs, fusion=fusion)


# ------------------------------------------------------------------------------ gradients
def gradient_snr(model, batch: dict, Ks: Sequence[int], estimators: Sequence[str], fusion=None,
                 repeats: int = 10) -> pd.DataFrame:
    """Signal-to-noise ratio of encoder and decoder gradients (``mmvae.diagnostics.gradient_snr``,
    mean over parameter elements). Columns: K, estimator, part, snr, ess, repeats.

    ``model`` may be a shipped checkpoint shared by every session of the server: back-propagating
    through it from two script runs at once writes the same ``.grad`` tensors from two threads (a
    crash). The gradients are therefore computed on a private deep copy made for this call."""
    from mmvae import diagnostics

    private = copy.deepcopy(model)  # never backprop through (or touch .grad of) a shared model
    rows = diagnostics.gradient_snr(private, batch, Ks=list(Ks), estimators=list(estimators),
                                    fusion=fusion, repeats=max(2, int(repeats)))
    df = pd.DataFrame(rows)
    df = df.rename(columns={"encoder_snr": "encoder", "decoder_snr": "decoder"})
    keep = [c for c in ("fusion", "estimator", "K", "ess", "repeats") if c in df]
    return df.melt(id_vars=keep, value_vars=["encoder", "decoder"], var_name="part", value_name="snr")


# ------------------------------------------------------------------------------ one point's weights
def importance_weights(model, data, index: int, K: int, fusion: str | None = None) -> dict:
    """``mmvae.diagnostics.weights.importance_weights`` of one data point, plus a long table of the
    weights (component, sample, log_w, normalised) for the figure."""
    from mmvae.diagnostics import weights

    result = weights.importance_weights(model, data, int(index), K=int(K), fusion=fusion, seed=0)
    rows = [{"component": c + 1, "sample": k + 1, "log_w": lw, "normalised": nw}
            for c, (lws, nws) in enumerate(zip(result["log_w"], result["normalised"]))
            for k, (lw, nw) in enumerate(zip(lws, nws))]
    result["table"] = pd.DataFrame(rows)
    return result


# ------------------------------------------------------------------------------ private latents (MMVAE+)
def private_dim(model) -> int:
    """D_w, the private latent size per modality (0: one shared latent only)."""
    from mmvae.diagnostics.style import private_dim as d_w

    return d_w(model)


def swap_style(model, data, content: Sequence[int], style: Sequence[int], given: Sequence[str], target: str,
               fusion: str | None = None) -> dict:
    """``mmvae.diagnostics.swap_style`` on test points: z from the ``given`` modalities of the points
    ``content``, w_target from x_target of the points ``style``. Numpy arrays: grid (n_content, n_style,
    *shape), generated (n_content, *shape), content {name: (n_content, *shape)}, style (n_style, *shape)."""
    from mmvae import diagnostics

    if private_dim(model) == 0:
        raise Unavailable("this model has one shared latent and no private latents: there is no style to swap")
    ci = torch.as_tensor(list(content), dtype=torch.long)
    si = torch.as_tensor(list(style), dtype=torch.long)
    out = diagnostics.swap_style(model, {m: data.modalities[m][ci] for m in given},
                                 {target: data.modalities[target][si]}, target, fusion=fusion)
    return {"grid": _np(out["grid"]), "generated": _np(out["generated"]),
            "content": {m: _np(v) for m, v in out["content"].items()}, "style": _np(out["style"]),
            "target": target, "given": list(given)}


def coherence_by_subset(model, data, train, n: int = 200, max_given: int = 2, fusion: str | None = None
                        ) -> pd.DataFrame:
    """Coherence (``mmvae.diagnostics.coherence``, decoder mean at the posterior mean; with private
    latents the target's w_t at the mode of r_t) given every subset of at most ``max_given`` modalities
    that leaves something to generate. Columns: given ("m0 + m2"), n_given, coherence (mean over the
    targets); ``attrs``: chance, classifier_accuracy."""
    import itertools

    from mmvae import diagnostics

    if data.labels is None or train is None or train.labels is None:
        raise Unavailable("coherence needs labelled data")
    names = list(model.names)
    subsets = [list(s) for r in range(1, min(max_given, len(names) - 1) + 1) for s in itertools.combinations(names, r)]
    if not subsets:
        raise Unavailable("coherence needs at least two modalities")
    classifiers = diagnostics.modality_classifiers(train, names)
    result = diagnostics.coherence(model, _subset(data, n), classifiers, fusion=fusion, n_prior=0, subsets=subsets)
    rows = []
    for s in subsets:
        values = [r["coherence"] for r in result["conditional"] if r["given"] == s]
        rows.append({"given": " + ".join(s), "n_given": len(s), "coherence": float(np.mean(values))})
    df = pd.DataFrame(rows)
    df.attrs.update(chance=result["chance"], classifier_accuracy=result["classifier_accuracy"])
    return df
