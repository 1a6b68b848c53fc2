"""Evaluation of a trained checkpoint on its test split or on any file, with the checkpoint's own
normalisation: bounds in the data's units (the diagnostics build on this)."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .checkpoint import Checkpoint
from .data import DatasetBundle, MultimodalData
from .data.normalize import Normalizer
from .data.scoring import load_for_scoring
from .diagnostics.rng import seeded_generator
from .training import evaluate_bounds


@torch.no_grad()
def bound_table(model, data: MultimodalData, Ks: Sequence[int], fusion: str | None = None,
                generator: torch.Generator | None = None) -> list[dict]:
    """Mean ELBO and IWAE(K) over ``data`` for each K (K samples per mixture component, drawn
    from ``generator``)."""
    rows = []
    for K in Ks:
        batch = max(1, min(data.n, 200_000 // max(K, 1)))
        rows.append({"K": int(K), **evaluate_bounds(model, data, K, batch, fusion, generator=generator)})
    return rows


def scoring_data(ckpt: Checkpoint, data: str | None = None, split: str | None = None, seed: int | None = None,
                 options: Mapping | None = None) -> tuple[MultimodalData, dict, Normalizer]:
    """The data a checkpoint is scored on, in the model's units with the model's *training*
    statistics (:class:`~mmvae.data.normalize.Normalizer`), never the scored data's.

    ``data=None``: the checkpoint's own dataset (same name, options and seed), ``split``
    default ``test``. ``data`` = a file or dataset name: ``split`` default ``all`` (every point of
    a file given for scoring); ``options`` default to the checkpoint's for LAS window settings.
    Returns (data on the model's device, info {name, split, n, ...}, the normaliser)."""
    info = ckpt.data or {}
    normalizer = Normalizer.from_checkpoint(ckpt)
    seed = int(info.get("seed", 0)) if seed is None else int(seed)
    if data is None:
        if "name" not in info:
            raise ValueError("the checkpoint does not record its dataset; pass one with --data")
        data, split = info["name"], split or "test"
        options = dict(options) if options else dict(info.get("options", {}))
    else:
        split = split or "all"
        options = dict(options or {})
        if str(data).lower().endswith(".las"):  # same windows as in training unless told otherwise
            for k in ("window", "stride", "curves", "impedance"):
                if k in (info.get("options") or {}) and k not in options:
                    options[k] = info["options"][k]
    model = ckpt.model
    scored, meta = load_for_scoring(data, normalizer, split, seed, options)
    param = next(model.parameters())
    return scored.to(param.device, param.dtype), meta, normalizer


def _training_split(ckpt: Checkpoint, normalizer: Normalizer, device) -> MultimodalData | None:
    """The checkpoint's training split (for coherence classifiers), or None when unavailable."""
    info = ckpt.data or {}
    try:
        train, _ = load_for_scoring(info["name"], normalizer, "train", int(info.get("seed", 0)),
                                    dict(info.get("options", {})))
    except (KeyError, ValueError, OSError):
        return None
    return train.to(device)


def evaluate_checkpoint(
    ckpt: Checkpoint,
    Ks: Sequence[int] = (1, 10, 100),
    split: str | None = None,
    fusion: str | None = None,
    data: str | None = None,
    seed: int = 0,
    parts: Sequence[str] | str | None = None,
    n_samples: int = 1000,
    points: Sequence[int] | None = None,
    embedding_method: str | None = None,
    data_options: Mapping | None = None,
) -> dict:
    """A JSON-able report: the model, the data, and ELBO / IWAE(K) for each K.

    Data: :func:`scoring_data` (``data=None``: the test split of the checkpoint's dataset; a
    file: every point of it unless ``split`` names one), always with the checkpoint's training
    statistics. Log-likelihoods and bounds are in the data's own units (``units.log_jacobian``
    = sum_m D_m (-log scale_m) added, see :mod:`mmvae.data.normalize`); the standardised
    figures are beside them (``*_standardised``).

    ``parts`` (names from :data:`mmvae.diagnostics.report.PARTS`, a comma-separated string or
    ``"all"``) adds a ``diagnostics`` entry (:func:`mmvae.diagnostics.diagnostics_report`) with
    ``n_samples`` importance samples for log-likelihoods and overlap figures for ``points``.
    ``embedding_method`` (auto, raw, pca, umap; default auto: raw when D <= 2, else pca, see
    :func:`mmvae.diagnostics.embeddings.embedding_method`)."""
    model = ckpt.model
    subset, meta, normalizer = scoring_data(ckpt, data, split, None, data_options)
    fusion = fusion or model.fusion
    jac = normalizer.log_jacobian(model.names)
    rows = bound_table(model, subset, Ks, fusion, seeded_generator(seed, model.device))
    for r in rows:
        r["elbo_standardised"], r["iwae_standardised"] = r["elbo"], r["iwae"]
        r["elbo"], r["iwae"] = r["elbo"] + jac, r["iwae"] + jac
    report = {
        "model": {"fusion": model.fusion, "latent": model.family, "latent_dim": model.latent_dim,
                  "private_dim": model.private_dim, "cross_private": model.config.cross_private,
                  "modalities": model.names, "train": ckpt.train},
        "data": {"name": meta["name"], "split": meta["split"], "n": subset.n, "source": meta.get("source")},
        "fusion": fusion,
        "units": {"log_likelihood": "data", "log_jacobian": jac,
                  "note": "log-densities of the data in its own units: the standardised figure plus "
                          "log_jacobian = sum over modalities of -dims * log(scale)",
                  "normalization": normalizer.to_dict(),
                  "statistics_from": "the checkpoint (the model's training split)"},
        "bounds": rows,
    }
    if parts:
        from .diagnostics.report import diagnostics_report, parse_parts

        train = _training_split(ckpt, normalizer, model.device) if "coherence" in parse_parts(parts) else None
        bundle = DatasetBundle(meta["name"], train, subset, subset, dict(normalizer.specs),
                               extras=meta.get("extras") or {})
        report["diagnostics"] = diagnostics_report(model, bundle, "test", parts, fusion, Ks, n_samples=n_samples,
                                                   points=points, seed=seed,
                                                   embedding_method=embedding_method or "auto",
                                                   normalizer=normalizer)
    return report
