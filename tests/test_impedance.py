"""The impedance workflow (issue 10): physics-aware features, predictive quantiles, calibration,
depth splits, LAS in and out, and clear errors for bad wells."""
import json
import math
import os

import lasio
import numpy as np
import pytest
from scipy.stats import norm

from mmvae import impedance as imp
from mmvae.cli import main
from mmvae.data import DataError
from mmvae.data.physics import fit_trend, physics_features, physics_inverse, rock_physics_si, si_from_residual
from mmvae.diagnostics.predictive import band_coverage, gaussian_crps, mixture_quantiles, sample_crps


def _synthetic_logs(n=700, seed=0):
    """Depth (m), DT, DTS (us/ft), RHOB (g/cm3), GR of a compacting sand-shale column."""
    rng = np.random.default_rng(seed)
    depth = 1000 + 0.1524 * np.arange(n)
    layer = np.repeat(rng.integers(0, 2, n // 20 + 1), 20)[:n]
    vp = 2.2 + 0.0015 * np.arange(n) + 0.4 * layer + 0.05 * rng.standard_normal(n)
    vs = (0.8621 * vp - 1.1724) * (0.95 + 0.1 * layer) + 0.02 * rng.standard_normal(n)
    rho = 1.741 * vp ** 0.25 + 0.02 * rng.standard_normal(n)
    return depth, 304.8 / vp, 304.8 / vs, rho, 60 + 40 * layer


def _write_las(path, n=700, seed=0, dt_scale=1.0, rho_scale=1.0, dt_unit="us/ft", drop=None, negative_at=None):
    depth, dt, dts, rho, gr = _synthetic_logs(n, seed)
    dt = dt * dt_scale
    if negative_at is not None:
        dt[negative_at] = -5.0
    las = lasio.LASFile()
    las.append_curve("DEPT", depth, unit="m")
    for name, v, u in (("DT", dt, dt_unit), ("DTS", dts, "us/ft"), ("RHOB", rho * rho_scale, "g/cm3"), ("GR", gr, "gAPI")):
        if name != drop:
            las.append_curve(name, v, unit=u)
    las.write(str(path), version=2.0)
    return str(path)


def test_physics_transform_round_trips_exactly():
    rng = np.random.default_rng(0)
    ai = rng.uniform(2.0, 16.0, size=(50, 64))
    si = rng.uniform(0.3, 9.0, size=(50, 64))
    for trend in ((0.0, 0.0), (0.5, -0.3)):
        u, r, level = physics_features(ai, si, trend)
        assert np.allclose(u.mean(-1), 0.0, atol=1e-12)  # the AI window carries no level
        ai2, si2 = physics_inverse(u, r, level, trend)
        np.testing.assert_allclose(ai2, ai, rtol=1e-13)
        np.testing.assert_allclose(si2, si, rtol=1e-13)
    # the calibration line is recovered from data that follow it
    si_line = rock_physics_si(ai) * np.exp(0.5 - 0.3 * np.log(ai))
    np.testing.assert_allclose(fit_trend(ai, si_line), (0.5, -0.3), atol=1e-10)
    # zero residual is the rock-physics prediction itself; the residual is multiplicative
    np.testing.assert_allclose(si_from_residual(0.0, ai), rock_physics_si(ai), rtol=1e-15)
    np.testing.assert_allclose(si_from_residual(np.log(1.1), ai), 1.1 * rock_physics_si(ai), rtol=1e-13)


def test_rock_physics_si_is_gardner_and_castagna():
    vp = np.array([2.0, 3.0, 4.5])
    rho = 1.741 * vp ** 0.25
    np.testing.assert_allclose(rock_physics_si(vp * rho), (0.8621 * vp - 1.1724) * rho, rtol=1e-12)


def test_quantiles_of_a_known_gaussian_predictive_are_analytic():
    probs = [0.1, 0.25, 0.5, 0.75, 0.9]
    mu = np.array([[1.0], [-3.0]])
    q = mixture_quantiles(mu, 0.7, probs)
    np.testing.assert_allclose(q, mu + 0.7 * norm.ppf(probs), atol=1e-9)
    # padding components (weight 0) are ignored; identical components change nothing
    loc = np.array([[1.0, 1.0, 99.0]])
    w = np.array([[1.0, 1.0, 0.0]])
    np.testing.assert_allclose(mixture_quantiles(loc, 0.7, probs, w), q[:1], atol=1e-9)
    # an equal two-component mixture: its CDF at each quantile is the level
    loc2 = np.array([[0.0, 2.0]])
    q2 = mixture_quantiles(loc2, 0.5, probs)[0]
    np.testing.assert_allclose(0.5 * (norm.cdf(q2 / 0.5) + norm.cdf((q2 - 2) / 0.5)), probs, atol=1e-12)


def test_coverage_and_crps_on_a_case_with_known_calibration():
    rng = np.random.default_rng(1)
    y = rng.standard_normal(40_000)
    mu = np.zeros((y.size, 1))
    for s in (1.0, 0.5):  # calibrated, then over-confident
        q = mixture_quantiles(mu[:2], s, [0.1, 0.25, 0.75, 0.9])[0]
        expected80 = 2 * norm.cdf(norm.ppf(0.9) * s) - 1
        expected50 = 2 * norm.cdf(norm.ppf(0.75) * s) - 1
        tol = 4 * math.sqrt(0.25 / y.size)
        assert abs(band_coverage(np.full_like(y, q[0]), np.full_like(y, q[3]), y) - expected80) < tol
        assert abs(band_coverage(np.full_like(y, q[1]), np.full_like(y, q[2]), y) - expected50) < tol
    assert abs(expected80 - 0.478) < 0.01  # the over-confident case really is mis-calibrated
    samples = rng.normal(0.3, 1.5, size=(200, 4000))
    yy = rng.normal(size=200)
    np.testing.assert_allclose(sample_crps(samples, yy), gaussian_crps(0.3, 1.5, yy), atol=0.05)


def test_depth_split_is_contiguous_and_ordered(tmp_path):
    well = imp.read_well(_write_las(tmp_path / "w.las"))
    parts = imp.split_by_depth(well)
    assert parts["train"].depth[-1] < parts["val"].depth[0] <= parts["val"].depth[-1] < parts["test"].depth[0]
    n = [int(p.valid().sum()) for p in parts.values()]
    assert sum(n) == int(well.valid().sum()) and abs(n[0] / sum(n) - 0.7) < 0.01


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("imp")
    path = _write_las(tmp / "a.las", n=700, seed=0)
    well = imp.read_well(path)
    parts = imp.split_by_depth(well)
    cfg = imp.ImpedanceConfig(window=32, stride=8, epochs=2, latent_dim=2, K=2,
                              network={"type": "mlp", "hidden": [16]})
    return imp.train([parts["train"]], [parts["val"]], cfg), parts, tmp


def test_prediction_merges_every_covering_window(trained):
    model, parts, _ = trained
    pred = imp.predict(model, parts["test"], n_samples=4, stride=8)
    n, L = parts["test"].n, model.config.window
    assert n >= L
    # every sample is covered; inside, a sample is covered by L / stride windows of 4 samples each
    assert (pred.n_components > 0).all()
    assert pred.n_components[L:-L].min() == (L // 8) * 4
    p10, p50, p90 = (pred.quantile(p) for p in (0.1, 0.5, 0.9))
    assert (p10 <= p50).all() and (p50 <= p90).all() and (p10 < p90).all()
    m = imp.metrics(pred)
    assert m["n"] == n and 0 <= m["coverage_80"] <= 1 and m["crps"] > 0


def test_predicted_las_reads_back_with_the_same_values(trained, tmp_path):
    model, parts, _ = trained
    pred = imp.predict(model, parts["test"], quantiles=(0.1, 0.5, 0.9, 0.05), n_samples=4)
    out = imp.write_las(pred, tmp_path / "pred.las")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask  # the usual permissions, not mkstemp's 0600
    assert os.listdir(tmp_path) == ["pred.las"]  # no temporary file left
    las = lasio.read(out)
    np.testing.assert_allclose(las.index, pred.depth, rtol=1e-9)
    for name, values in (("SI_P10", pred.quantile(0.1)), ("SI_P50", pred.quantile(0.5)), ("SI_P90", pred.quantile(0.9)),
                         ("SI_P5", pred.quantile(0.05)), ("SI_RP", pred.baseline), ("AI", parts["test"].ai),
                         ("SI", parts["test"].si), ("DT", parts["test"].curves["DT"][0])):
        np.testing.assert_allclose(las[name], values, rtol=1e-9, equal_nan=True, err_msg=name)


def test_cli_train_evaluate_predict_on_las(tmp_path, capsys):
    a = _write_las(tmp_path / "a.las", seed=0)
    b = _write_las(tmp_path / "b.las", seed=1)
    other = _write_las(tmp_path / "c.las", n=500, seed=2)
    ckpt = tmp_path / "m.safetensors"
    assert main(["train", "--data", a, "--data", b, "--out", str(ckpt), "--epochs", "1", "--quiet", "--latent-dim", "2",
                 "--network", "mlp", "--hidden", "16", "--data-option", "window=32"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--json"]) == 0  # the held-out deepest 15% of each training well
    rows = json.loads(capsys.readouterr().out)["impedance"]
    assert [r["split"] for r in rows] == ["test", "test"] and all(r["top"] > 1080 for r in rows)
    assert main(["evaluate", str(ckpt), "--data", other, "--json"]) == 0  # another well: every sample
    report = json.loads(capsys.readouterr().out)
    row = report["impedance"][0]
    assert row["n"] == 500 and {"rmse", "bias", "correlation"} <= set(row["model"]) and "coverage_80" in row
    assert row["rock_physics"]["rmse"] > 0 and report["units"]["normalization"]["SI"]["scale"] > 0
    assert main(["predict", str(ckpt), "--data", other, "--out", str(tmp_path / "p.las")]) == 0
    assert {"SI_P10", "SI_P50", "SI_P90", "SI_RP"} <= set(lasio.read(str(tmp_path / "p.las")).keys())


@pytest.mark.parametrize("kwargs,message", [
    (dict(drop="DTS"), r"no S-wave sonic curve .*available curves: DT, RHOB, GR"),
    (dict(drop="RHOB"), r"no density curve .*available curves: DT, DTS, GR"),
    (dict(n=40), r"only 40 depth samples have both AI and SI"),
    (dict(negative_at=10), r"curve DT has 1 zero or negative value"),
    (dict(dt_scale=3.2808), r"curve DT .*median P-wave velocity .* us/m labelled us/ft"),
    (dict(rho_scale=1000.0), r"curve RHOB .*median density .* kg/m3 labelled g/cm3"),
])
def test_bad_wells_give_one_clear_error_before_training(tmp_path, kwargs, message):
    path = _write_las(tmp_path / "bad.las", **kwargs)
    with pytest.raises(DataError, match=message):
        imp.read_well(path)
    with open(path, "rb") as f:  # the same from bytes (an upload)
        with pytest.raises(DataError, match=message):
            imp.read_well(f.read(), name="bad.las")


def test_well_from_bytes_equals_well_from_path(tmp_path):
    path = _write_las(tmp_path / "w.las")
    a = imp.read_well(path)
    with open(path, "rb") as f:
        b = imp.read_well(f.read(), name="w.las")
    np.testing.assert_array_equal(a.ai, b.ai)
    np.testing.assert_array_equal(a.si, b.si)


def test_wrapped_las_from_bytes_equals_well_from_path(caplog):
    from mmvae.data.las import P135_LAS  # the shipped P-135 file is a wrapped LAS (WRAP. YES)
    a = imp.read_well(P135_LAS)
    with open(P135_LAS, "rb") as f:
        b = imp.read_well(f.read(), name="P-135_out.LAS")
    assert not [r for r in caplog.records if "wrapped" in r.getMessage()]  # read with the right engine, no warning
    np.testing.assert_array_equal(a.depth, b.depth)
    np.testing.assert_array_equal(a.si, b.si)


def test_overlapping_windows_are_pooled_per_depth_sample():
    loc = np.array([[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]])  # S = 1, windows at rows 0 and 2, L = 4
    comp, cover = imp.merge_windows(loc, np.array([0, 2]), 7)
    assert cover.tolist() == [1, 1, 2, 2, 1, 1, 0]
    got = [sorted(v for v in row if np.isfinite(v)) for row in comp]
    assert got == [[1.0], [2.0], [3.0, 5.0], [4.0, 6.0], [7.0], [8.0], []]


def test_curves_can_be_chosen_by_role(tmp_path):
    path = _write_las(tmp_path / "w.las")
    offer = imp.las_curves(path)
    assert offer["default"] == {"p": "DT", "s": "DTS", "density": "RHOB"}
    assert ("GR", "gAPI") in offer["curves"]
    default = imp.read_well(path)
    chosen = imp.read_well(path, curves={"p": "DT", "s": "DTS", "density": "RHOB"})
    np.testing.assert_array_equal(default.si, chosen.si)
    with pytest.raises(DataError, match=r"no curve 'DTSM' \(chosen as the S-wave sonic\); available curves: DT, DTS"):
        imp.read_well(path, curves={"s": "DTSM"})


def test_bad_output_path_fails_before_training(tmp_path, capsys):
    a = _write_las(tmp_path / "a.las")
    (tmp_path / "dir.safetensors").mkdir()
    assert main(["train", "--data", a, "--out", str(tmp_path / "dir.safetensors"), "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and "training impedance model" not in err


def test_predict_a_well_without_shear_sonic(trained, tmp_path, capsys):
    model, _, _ = trained
    path = _write_las(tmp_path / "no_s.las", drop="DTS")
    with pytest.raises(DataError, match="no S-wave sonic"):
        imp.read_well(path)  # training and scoring need SI
    well = imp.read_well(path, require_si=False)
    assert well.si is None
    pred = imp.predict(model, well, n_samples=4)
    assert np.isfinite(pred.quantile(0.5)).all()
    ckpt = tmp_path / "m.safetensors"
    imp.save(model, ckpt)
    assert main(["predict", str(ckpt), "--data", path, "--out", str(tmp_path / "p.las")]) == 0
    las = lasio.read(str(tmp_path / "p.las"))
    assert "SI" not in las.keys() and np.isfinite(las["SI_P50"]).all()


def test_uploaded_well_npz_is_refused_from_its_headers_before_loading(monkeypatch):
    """A small compressed upload can declare gigabytes: the headers are checked before np.load
    reads a byte of array data (np.load is never reached), and an honest file still loads."""
    import io
    import zipfile

    from mmvae import limits
    from mmvae.data import well as well_module

    n = 300
    depth = np.linspace(1000.0, 1000.0 + 0.15 * (n - 1), n)
    ok = io.BytesIO()
    np.savez(ok, depth=depth, AI=np.full(n, 6.0), SI=np.full(n, 3.0))
    assert imp.read_well(ok.getvalue(), name="ok.npz").depth.shape == (n,)

    bomb = io.BytesIO()  # 64 MB of zeros compress to ~64 KB
    np.savez_compressed(bomb, depth=np.zeros(8_000_000), AI=np.zeros(n), SI=np.zeros(n))
    assert len(bomb.getvalue()) < 200_000
    loads = []
    monkeypatch.setattr(well_module.np, "load", lambda *a, **k: loads.append(a) or pytest.fail("np.load reached"))
    with limits.raised(max_data_bytes=16 * 2**20), pytest.raises(DataError, match="bomb.npz.*above the limit"):
        imp.read_well(bomb.getvalue(), name="bomb.npz")

    forged = io.BytesIO()  # a header that declares more than the entry holds
    with zipfile.ZipFile(forged, "w") as z:
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)})
        z.writestr("depth.npy", head.getvalue() + b"\0" * 64)
    with pytest.raises(DataError, match="forged.npz.*truncated or forged"):
        imp.read_well(forged.getvalue(), name="forged.npz")
    with pytest.raises(DataError, match="obj.npz.*object array"):
        obj = io.BytesIO()
        np.savez(obj, depth=np.array([{"a": 1}] * 3, dtype=object))
        imp.read_well(obj.getvalue(), name="obj.npz")
    assert loads == []
