"""Evaluation of a trained checkpoint: test-set bounds (the diagnostics build on this)."""
from __future__ import annotations

from typing import Sequence

import torch

from .checkpoint import Checkpoint
from .data import DatasetBundle, MultimodalData, load_dataset
from .diagnostics.rng import seeded_generator
from .training import evaluate_bounds


def checkpoint_dataset(ckpt: Checkpoint, data: str | None = None) -> DatasetBundle:
    """The dataset a checkpoint was trained on (same name, options and seed), or ``data`` instead;
    either way its modalities must match the model's."""
    info = ckpt.data or {}
    if data is None:
        if "name" not in info:
            raise ValueError("the checkpoint does not record its dataset; pass one with --data")
        bundle = load_dataset(info["name"], seed=int(info.get("seed", 0)), **dict(info.get("options", {})))
    else:
        bundle = load_dataset(data, seed=int(info.get("seed", 0)))
    model = ckpt.model
    missing = set(model.names) - set(bundle.specs)
    if missing:
        raise ValueError(f"dataset {bundle.name!r} lacks the model's modalities {sorted(missing)}")
    for name in model.names:
        if tuple(bundle.specs[name].shape) != model.specs[name].shape:
            raise ValueError(f"modality {name!r}: dataset shape {tuple(bundle.specs[name].shape)} does not match "
                             f"the model's {model.specs[name].shape}")
    return bundle


def split_of(bundle: DatasetBundle, split: str) -> MultimodalData:
    if split not in ("train", "val", "test"):
        raise ValueError(f"unknown split {split!r}; choose train, val or test")
    return getattr(bundle, split)


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


def evaluate_checkpoint(
    ckpt: Checkpoint,
    Ks: Sequence[int] = (1, 10, 100),
    split: str = "test",
    fusion: str | None = None,
    data: str | None = None,
    seed: int = 0,
    parts: Sequence[str] | str | None = None,
    n_samples: int = 1000,
    points: Sequence[int] | None = None,
    embedding_method: str | None = None,
) -> dict:
    """A JSON-able report: the model, the data, and ELBO / IWAE(K) for each K on ``split``.

    ``parts`` (names from :data:`mmvae.diagnostics.report.PARTS`, a comma-separated string or
    ``"all"``) adds a ``diagnostics`` entry (:func:`mmvae.diagnostics.diagnostics_report`) with
    ``n_samples`` importance samples for log-likelihoods and overlap figures for ``points``.
    ``embedding_method`` (auto, raw, pca, umap; default auto: raw when D <= 2, else pca, see
    :func:`mmvae.diagnostics.embeddings.embedding_method`)."""
    model = ckpt.model
    bundle = checkpoint_dataset(ckpt, data)
    subset = split_of(bundle, split).to(model.device)
    fusion = fusion or model.fusion
    report = {
        "model": {"fusion": model.fusion, "latent": model.family, "latent_dim": model.latent_dim,
                  "modalities": model.names, "train": ckpt.train},
        "data": {"name": bundle.name, "split": split, "n": subset.n},
        "fusion": fusion,
        "bounds": bound_table(model, subset, Ks, fusion, seeded_generator(seed, model.device)),
    }
    if parts:
        from .diagnostics.report import diagnostics_report

        report["diagnostics"] = diagnostics_report(model, bundle, split, parts, fusion, Ks, n_samples=n_samples,
                                                   points=points, seed=seed,
                                                   embedding_method=embedding_method or "auto")
    return report
