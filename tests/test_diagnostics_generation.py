"""Coherence against a perfect and a constant generator; cross-modal generation; impedance RMSE."""
import numpy as np
import torch

from mmvae import build_model, config_for_specs
from mmvae.data import load_dataset
from mmvae.diagnostics import (classifier_accuracy, coherence, coherence_of, generate, impedance_si_rmse,
                               modality_classifiers, prior_samples, rock_physics_si)
from tests.test_diagnostics_likelihood import exact_toy_model, toy_bundle


def test_coherence_of_perfect_and_constant_generators():
    bundle = load_dataset("digits-halves")
    clfs = modality_classifiers(bundle.train, seed=0)
    assert modality_classifiers(bundle.train, seed=0)["top"] is clfs["top"]  # cached
    acc = classifier_accuracy(clfs, bundle.test)
    assert min(acc.values()) > 0.6
    test = bundle.test
    perfect = coherence_of({m: test.modalities[m] for m in clfs}, test.labels, clfs)
    for m in clfs:
        assert abs(perfect[m] - acc[m]) < 1e-12
    const = {m: test.modalities[m].mean(0, keepdim=True).expand_as(test.modalities[m]) for m in clfs}
    chance = coherence_of(const, test.labels, clfs)
    assert all(v < 0.2 for v in chance.values())  # ~ 1/10 (the frequency of one class)
    # sampled generations: (n, N, ...) each scored
    twice = coherence_of({"top": test.modalities["top"].expand(2, *test.modalities["top"].shape)}, test.labels,
                         clfs, n_samples=2)
    assert abs(twice["top"] - acc["top"]) < 1e-12


def test_generation_and_coherence_on_toy():
    bundle = toy_bundle()
    model = exact_toy_model(bundle, "mopoe")
    g = generate(model, bundle.test, ["x1"], ["x2"])
    assert g["x2"].shape == bundle.test.modalities["x2"].shape
    gs = generate(model, bundle.test, ["x1"], ["x2"], n_samples=3, seed=0)
    assert gs["x2"].shape == (3, *bundle.test.modalities["x2"].shape)
    p = prior_samples(model, 50, seed=0)
    assert set(p) == {"x1", "x2"} and p["x1"].shape == (50, 5)
    clfs = modality_classifiers(bundle.train, seed=0)
    out = coherence(model, bundle.test, clfs, n_prior=200, seed=0)
    assert {(tuple(r["given"]), r["target"]) for r in out["conditional"]} == {(("x1",), "x2"), (("x2",), "x1")}
    for r in out["conditional"]:
        assert r["coherence"] > 0.25  # above chance (quadrants: 1/4)
    assert out["joint"] > 0.25 and out["chance"] == 0.25


def test_coherence_scores_generations_with_coherence_of(monkeypatch):
    """coherence() has no scoring rule of its own: every conditional figure is coherence_of's."""
    from mmvae.diagnostics import generation

    bundle = toy_bundle()
    model = exact_toy_model(bundle, "moe")
    clfs = modality_classifiers(bundle.train, seed=0)
    seen = []

    def fake(generated, labels, classifiers, n_samples=0):
        seen.append((sorted(generated), n_samples))
        return {t: 0.125 for t in generated}

    monkeypatch.setattr(generation, "coherence_of", fake)
    out = coherence(model, bundle.test, clfs, n_samples=2, n_prior=0, seed=0)
    assert [r["coherence"] for r in out["conditional"]] == [0.125, 0.125]
    assert seen == [(["x2"], 2), (["x1"], 2)]


def test_rock_physics_and_impedance_rmse():
    vp = np.array([2.5, 3.0, 4.0])
    rho = 1.741 * vp ** 0.25
    si = (0.8621 * vp - 1.1724) * rho
    np.testing.assert_allclose(rock_physics_si(vp * rho), si, rtol=1e-10)
    bundle = load_dataset("impedance", n=200)
    model = build_model(config_for_specs(bundle.specs, latent_dim=4, fusion="poe")).eval()
    out = impedance_si_rmse(model, bundle.test, bundle.specs)
    assert out["rmse"] > 0 and out["rmse_rock_physics"] > 0 and out["unit"] == bundle.specs["SI"].unit
