"""Cross-modal generation, coherence (with per-modality classifiers) and, for impedance data, the
error of SI predicted from AI against a rock-physics baseline.

Coherence (Shi et al. 2019, sec. 4; Sutter et al. 2021, sec. 5): a classifier per modality,
trained on the real *training* data of that modality alone, labels *generated* data of that
modality alone.

* conditional coherence of S -> t: the fraction of test points whose x_t generated from x_S
  (decoder mean at the posterior mean of x_S by default, or ``n_samples`` posterior samples each
  scored) is classified as the label of the conditioning data;
* joint coherence: the fraction of prior samples z ~ p(z) whose generated modalities all get the
  same predicted label.

With private latents (``private_dim`` > 0, MMVAE+: u = [z | w_1 | ... | w_M]) generation goes
through :meth:`MultimodalVAE.generate`: z from the posterior of the given modalities, and a target
t's private w_t from its cross-modal distribution r_t (the mode 0 at ``n_samples = 0``, else
samples), never from t's own posterior, so the coherence measures what z alone carries; joint
coherence draws z and every w_m from the prior (``model.sample_prior``).

Classifiers: scikit-learn ``LogisticRegression`` (lbfgs, C = 1, max_iter = 500, seeded) on the
flattened data, trained in seconds and cached in memory per (data fingerprint, modality, seed);
their accuracy on the real test data is reported beside every coherence (a coherence can only be
read against it: a perfect generator scores about the classifier's accuracy, a constant one about
chance).
"""
from __future__ import annotations

import hashlib
import itertools
import threading
from collections import OrderedDict
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .likelihood import _batches, as_inputs
from .rng import seeded_generator

__all__ = [
    "generate",
    "prior_samples",
    "train_classifier",
    "modality_classifiers",
    "coherence_of",
    "coherence",
    "rock_physics_si",
    "impedance_si_rmse",
    "clear_classifier_cache",
]

_CLASSIFIERS: "OrderedDict[tuple, object]" = OrderedDict()  # least recently used first out
_CLASSIFIERS_MAX = 16  # (data fingerprint, modality, seed) entries kept
_CLASSIFIERS_LOCK = threading.Lock()


@torch.no_grad()
def generate(model, data, given: Sequence[str], targets: Sequence[str] | None = None, n_samples: int = 0,
             fusion: str | None = None, batch_size: int = 1024, seed: int | None = None) -> dict[str, Tensor]:
    """E[x_t | z] for every target from the posterior of the ``given`` modalities: at its mean
    (``n_samples = 0``, (N, *shape)) or at ``n_samples`` posterior samples ((n, N, *shape))."""
    x, _ = as_inputs(model, data, list(given))
    targets = list(targets or model.names)
    out: dict[str, list] = {t: [] for t in targets}
    generator = seeded_generator(seed, model.device)
    for _, xb in _batches(x, batch_size):
        g = model.generate(xb, targets, n_samples, fusion, generator=generator)
        for t in targets:
            out[t].append(g[t])
    dim = 0 if n_samples == 0 else 1
    return {t: torch.cat(v, dim).cpu() for t, v in out.items()}


@torch.no_grad()
def prior_samples(model, n: int, targets: Sequence[str] | None = None, seed: int | None = 0) -> dict[str, Tensor]:
    """Unconditional generations E[x_m | z] at n prior samples (``model.sample_prior``), on the CPU."""
    out = model.sample_prior(n, list(targets or model.names), generator=seeded_generator(seed, model.device))
    return {k: v.cpu() for k, v in out.items()}


def _flat(x) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    return a.reshape(a.shape[0], -1).astype(np.float64)


def train_classifier(x, y, seed: int = 0):
    """A seeded scikit-learn LogisticRegression on flattened x (N, ...) and integer labels y."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0, max_iter=500, random_state=seed)
    clf.fit(_flat(x), np.asarray(y.cpu() if isinstance(y, Tensor) else y))
    return clf


def _fingerprint(x: Tensor, y: Tensor) -> str:
    h = hashlib.sha1(x.detach().cpu().float().numpy().tobytes())
    h.update(y.detach().cpu().numpy().astype(np.int64).tobytes())
    return h.hexdigest()


def clear_classifier_cache() -> None:
    _CLASSIFIERS.clear()


def modality_classifiers(train, names: Sequence[str] | None = None, seed: int = 0) -> dict[str, object]:
    """One classifier per modality trained on ``train`` (a MultimodalData with labels); cached in
    memory on (data fingerprint, modality, seed), at most ``_CLASSIFIERS_MAX`` of them (least recently
    used dropped first)."""
    if getattr(train, "labels", None) is None:
        raise ValueError("coherence needs labelled training data")
    out = {}
    for m in names or train.names:
        key = (_fingerprint(train.modalities[m], train.labels), m, seed)
        with _CLASSIFIERS_LOCK:
            clf = _CLASSIFIERS.get(key)
            if clf is not None:
                _CLASSIFIERS.move_to_end(key)
        if clf is None:
            clf = train_classifier(train.modalities[m], train.labels, seed)
            with _CLASSIFIERS_LOCK:
                _CLASSIFIERS[key] = clf
                while len(_CLASSIFIERS) > _CLASSIFIERS_MAX:
                    _CLASSIFIERS.popitem(last=False)
        out[m] = clf
    return out


def classifier_accuracy(classifiers: Mapping[str, object], test) -> dict[str, float]:
    """Accuracy of each modality's classifier on the real ``test`` data."""
    y = np.asarray(test.labels.cpu())
    return {m: float((c.predict(_flat(test.modalities[m])) == y).mean()) for m, c in classifiers.items()}


def coherence_of(generated: Mapping[str, Tensor], labels, classifiers: Mapping[str, object],
                 n_samples: int = 0) -> dict[str, float]:
    """Fraction of generated x_t classified as ``labels`` (N,), per target: ``generated[t]`` is
    (N, *shape), or (n_samples, N, *shape) when ``n_samples`` > 0 (each sample scored)."""
    y = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels)
    out = {}
    for t, g in generated.items():
        g = torch.as_tensor(g)
        reps = n_samples if n_samples else 1
        flat = g.reshape(reps * len(y), -1)
        out[t] = float((_predict(classifiers[t], flat) == np.tile(y, reps)).mean())
    return out


def _predict(clf, g: Tensor) -> np.ndarray:
    return clf.predict(_flat(g))


@torch.no_grad()
def coherence(
    model,
    test,
    classifiers: Mapping[str, object],
    fusion: str | None = None,
    n_samples: int = 0,
    n_prior: int = 1000,
    seed: int | None = 0,
    subsets: Sequence[Sequence[str]] | None = None,
) -> dict:
    """Conditional coherence for every non-empty subset S and every target t not in S (or the
    given ``subsets``), joint coherence of ``n_prior`` prior samples, and the classifiers'
    accuracies on the real test data."""
    names = [m for m in model.names if m in classifiers]
    y = np.asarray(test.labels.cpu())
    subsets = subsets or [s for r in range(1, len(names)) for s in itertools.combinations(names, r)]
    rows = []
    for s in subsets:
        targets = [t for t in names if t not in s]
        if not targets:
            continue
        gen = generate(model, test, list(s), targets, n_samples, fusion, seed=seed)
        values = coherence_of(gen, y, classifiers, n_samples)
        rows.extend({"given": list(s), "target": t, "coherence": values[t]} for t in targets)
    joint = None
    if n_prior and len(names) > 1:
        prior = prior_samples(model, n_prior, names, seed)
        preds = np.stack([_predict(classifiers[m], prior[m]) for m in names])
        joint = float((preds == preds[:1]).all(0).mean())
    n_classes = len(np.unique(y))
    return {"conditional": rows, "joint": joint, "n_prior": n_prior, "n_samples": n_samples,
            "classifier_accuracy": classifier_accuracy({m: classifiers[m] for m in names}, test),
            "chance": 1.0 / max(n_classes, 1), "classifier": "LogisticRegression(C=1, max_iter=500)"}


# ------------------------------------------------------------------------------------ impedance
def rock_physics_si(ai):
    """SI predicted from AI (km/s * g/cm3) by Gardner and Castagna's mudrock line:
    AI = rho Vp with rho = 1.741 Vp^0.25 -> Vp = (AI / 1.741)^(1 / 1.25); Vs = 0.8621 Vp - 1.1724
    (floored at 0.05 km/s); SI = Vs rho. One definition: :func:`mmvae.data.physics.rock_physics_si`."""
    from ..data.physics import rock_physics_si as g

    return g(ai)


@torch.no_grad()
def impedance_si_rmse(model, test, specs: Mapping, fusion: str | None = None, source: str = "AI",
                      target: str = "SI", predictive: int = 0, seed: int = 0) -> dict:
    """RMSE and bias (mean of prediction - truth), in physical units (``specs``: the model's
    training statistics, ModalitySpec.shift / scale undone) of ``target`` generated from
    ``source`` (decoder mean at the posterior mean) against the truth, beside the rock-physics
    baseline :func:`rock_physics_si` applied to the true AI.

    ``predictive`` > 0 adds calibration of the predictive distribution of every value: the
    mixture of N(mu(z_s), sigma^2) over ``predictive`` posterior samples z_s ~ q(z | source)
    (:mod:`mmvae.diagnostics.predictive`): ``coverage_80`` (P10-P90), ``coverage_50`` (P25-P75)
    and ``crps`` in physical units (the baseline's CRPS is its mean absolute error)."""
    gen = generate(model, test, [source], [target], 0, fusion)[target].double().numpy()
    pred = specs[target].to_physical(gen)
    truth = specs[target].to_physical(test.modalities[target].double().cpu().numpy())
    ai = specs[source].to_physical(test.modalities[source].double().cpu().numpy())
    base = rock_physics_si(ai)
    rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
    rmse_base = float(np.sqrt(np.mean((base - truth) ** 2)))
    return {"source": source, "target": target, "unit": specs[target].unit, "rmse": rmse,
            "rmse_rock_physics": rmse_base, "ratio": rmse / rmse_base if rmse_base > 0 else float("nan"),
            "bias": float(np.mean(pred - truth)), "bias_rock_physics": float(np.mean(base - truth)),
            "n_values": int(truth.size),
            "baseline": "Gardner rho = 1.741 Vp^0.25 and Castagna Vs = 0.8621 Vp - 1.1724",
            **(_predictive_scores(model, test, specs[target], fusion, source, target, truth, base, predictive, seed)
               if predictive else {})}


def _predictive_scores(model, test, spec, fusion, source, target, truth, base, n_samples: int, seed: int) -> dict:
    from .predictive import band_coverage, mixture_quantiles, sample_crps

    gen = generate(model, test, [source], [target], n_samples, fusion, seed=seed)[target].double().numpy()
    loc = spec.to_physical(gen).reshape(n_samples, -1).T  # (values, S) in physical units
    sigma = float(model.likelihoods[target].scale()) * spec.scale
    y = truth.reshape(-1)
    q = np.concatenate([mixture_quantiles(loc[i : i + 4096], sigma, [0.1, 0.25, 0.75, 0.9], iterations=50)
                        for i in range(0, loc.shape[0], 4096)])
    rng = np.random.default_rng(seed)
    k = rng.integers(0, n_samples, size=(loc.shape[0], 100))
    draws = np.take_along_axis(loc, k, 1) + sigma * rng.standard_normal(k.shape)
    return {"coverage_80": band_coverage(q[:, 0], q[:, 3], y), "coverage_50": band_coverage(q[:, 1], q[:, 2], y),
            "crps": float(sample_crps(draws, y).mean()), "crps_rock_physics": float(np.mean(np.abs(base - truth))),
            "predictive_samples": n_samples}
