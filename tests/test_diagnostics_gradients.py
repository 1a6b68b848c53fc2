"""Gradient SNR trends (Rainforth et al. 2018; Tucker et al. 2018) on the toy with wrong experts."""
import math

import torch

from mmvae.diagnostics import gradient_snr
from tests.test_diagnostics_likelihood import exact_toy_model, toy_bundle


def test_snr_trends_poe():
    bundle = toy_bundle()
    model = exact_toy_model(bundle, "poe", shift=0.3, scale_factor=1.5)
    before = [p.detach().clone() for p in model.parameters()]
    rows = gradient_snr(model, bundle.test.subset(slice(0, 8)), Ks=(1, 10, 100), estimators=("iwae", "dreg", "stl"),
                        repeats=60, seed=0)
    snr = {(r["estimator"], r["K"]): r for r in rows}
    iwae = [snr[("iwae", K)]["encoder_snr"] for K in (1, 10, 100)]
    assert iwae[0] > iwae[1] > iwae[2]  # falls like 1/sqrt(K)
    assert snr[("dreg", 100)]["encoder_snr"] > snr[("dreg", 1)]["encoder_snr"]  # does not fall
    for est in ("iwae", "dreg"):
        dec = [snr[(est, K)]["decoder_snr"] for K in (1, 10, 100)]
        assert dec[0] < dec[1] < dec[2]  # rises like sqrt(K)
    assert all(r["ess"] == 1.0 for r in rows if r["K"] == 1)  # one weight per sum
    assert 1 < snr[("iwae", 10)]["ess"] < 10 and 1 < snr[("iwae", 100)]["ess"] < 100
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_snr_every_fusion_runs():
    bundle = toy_bundle()
    model = exact_toy_model(bundle, "mopoe", shift=0.3)
    rows = gradient_snr(model, bundle.test.subset(slice(0, 4)), Ks=(1, 3), fusion="all", repeats=4)
    assert {r["fusion"] for r in rows} == {"poe", "moe", "mopoe"} and len(rows) == 3 * 3 * 2
    assert all(math.isfinite(r["encoder_snr"]) and math.isfinite(r["decoder_snr"]) and r["repeats"] == 4 for r in rows)
