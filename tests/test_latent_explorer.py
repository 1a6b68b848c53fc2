"""The latent explorer: decodings on a grid over a latent plane (mmvae.diagnostics.latent_grid)
equal the model's own decoder at those points, the data sent to the browser is bounded and is
exactly those decodings, and the Latent embeddings page draws it (AppTest). The drag itself is
tested in a real browser in tests/test_browser_walkthrough.py."""
from __future__ import annotations

import base64
import json
import os
import re

import numpy as np
import pytest
import torch

import mmvae
from mmvae.diagnostics.latent_grid import grid_size, latent_grid, plane_limits, slice_point

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shipped(name: str):
    return mmvae.load_checkpoint(os.path.join(ROOT, "checkpoints", f"{name}.safetensors")).model


def decoder_at(model, z: np.ndarray) -> dict:
    """E[x_m | z] straight from the decoders and likelihoods (not through diagnostics)."""
    with torch.no_grad():
        params = model.decode(torch.as_tensor(z, dtype=torch.float32)[None, :], list(model.names))
        return {m: model.likelihoods[m].mean(p)[0].numpy() for m, p in params.items()}


@pytest.mark.parametrize("name, axes, at", [("toy-poe", (0, 1), "prior"), ("digits-halves-moe", (1, 0), "prior"),
                                            ("digits-poly-mopoe", (2, 5), "data")])
def test_grid_decoding_equals_the_decoder_at_that_point(name, axes, at):
    model = shipped(name)
    D = model.latent_dim
    codes = np.random.default_rng(0).normal(size=(50, D))
    fixed = slice_point(D, codes, at)
    grid = latent_grid(model, axes, n=7, limits=(-2.5, 2.0), fixed=fixed)
    g = grid["grid"]
    assert g.shape == (7,) and g[0] == -2.5 and g[-1] == 2.0
    a, b = axes
    for i, j in [(0, 0), (6, 0), (0, 6), (3, 5), (6, 6)]:
        z = fixed.copy()
        z[a], z[b] = g[i], g[j]
        want = decoder_at(model, z)
        for m in model.names:
            got = grid["decoded"][m][i, j]
            assert got.shape == tuple(model.specs[m].shape)
            np.testing.assert_allclose(got, want[m], rtol=1e-5, atol=1e-6, err_msg=f"{m} at {(i, j)}")
    if at == "data":
        np.testing.assert_allclose(fixed, codes.mean(axis=0))


def test_grid_of_a_model_with_private_latents_decodes_z_with_w_at_the_mode_of_r():
    """Private latents (MMVAE+): the plane is of the shared z; every modality's w_m sits at the mode
    of r_m (0), and the grid equals the decoders fed [z | w_m = 0]."""
    from mmvae.data import load_dataset
    from mmvae.model import build_model, config_for_specs

    ds = load_dataset("toy", seed=0)
    model = build_model(config_for_specs(ds.specs, latent_dim=2, fusion="moe", private_dim=3), seed=0)
    with torch.no_grad():  # w must matter: a decoder that ignored it would pass trivially
        for m in model.names:
            first = next(p for p in model.decoders[m].parameters() if p.dim() == 2)
            first[:, 2:] += 0.5
    grid = latent_grid(model, (0, 1), n=5, limits=(-2.0, 2.0))
    g = grid["grid"]
    for i, j in [(0, 0), (4, 1), (2, 3)]:
        u = torch.zeros(1, model.total_dim)
        u[0, 0], u[0, 1] = float(g[i]), float(g[j])
        with torch.no_grad():
            want = {m: model.likelihoods[m].mean(p)[0].numpy() for m, p in model.decode(u).items()}
            shifted = u.clone()
            shifted[0, 2:] = 1.0
            other = {m: model.likelihoods[m].mean(p)[0].numpy() for m, p in model.decode(shifted).items()}
        for m in model.names:
            np.testing.assert_allclose(grid["decoded"][m][i, j], want[m], rtol=1e-5, atol=1e-6)
            assert not np.allclose(want[m], other[m], atol=1e-4), "w does not reach the decoder"


def test_grid_size_keeps_the_decodings_within_the_budget():
    assert grid_size([5, 5]) == 41  # toy: the largest grid
    n = grid_size([3 * 28 * 28], max_bytes=2_000_000)
    assert 4 * 3 * 28 * 28 * n * n <= 2_000_000 < 4 * 3 * 28 * 28 * (n + 1) ** 2
    with pytest.raises(ValueError, match="do not fit"):
        grid_size([3 * 256 * 256])


def test_plane_limits_cover_the_points():
    assert plane_limits(None) == (-3.0, 3.0)
    pts = np.random.default_rng(1).normal(scale=3.0, size=(500, 2))
    lo, hi = plane_limits(pts)
    assert lo == -hi and np.mean(np.abs(pts) <= hi) >= 0.99
    assert plane_limits(np.full((10, 2), 1e6)) == (-8.0, 8.0)  # capped


def test_the_page_data_is_the_grid_in_physical_units_and_bounded():
    pytest.importorskip("streamlit")
    from app import latent_explorer
    from mmvae.data import load_dataset

    model = shipped("impedance-poe")
    bundle = load_dataset("impedance", seed=0)
    grid = latent_grid(model, (0, 1), n=9)
    pts = np.random.default_rng(2).normal(size=(20, 2))
    data = latent_explorer.payload(grid, bundle.specs, pts, np.arange(20) % 3, ["a", "b", "</script><b>x"])
    for m in data["mods"]:
        values = np.frombuffer(base64.b64decode(m["data"]), dtype=np.float32).reshape(9, 9, *m["shape"])
        want = bundle.specs[m["name"]].to_physical(grid["decoded"][m["name"]].astype(np.float64))
        np.testing.assert_allclose(values, want, rtol=1e-6)
        assert m["kind"] == "sequence" and m["unit"] == "km/s*g/cm3"
    page = latent_explorer.page_html(data)
    assert "</script><b>" not in page  # a label from a user's file cannot close the data block
    blob = re.search(r'<script id="data" type="application/json">(.*?)</script>', page, re.S).group(1)
    assert json.loads(blob)["labels"][2] == "</script><b>x"
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)  # nothing fetched from anywhere


@pytest.mark.parametrize("name", ["toy-poe", "digits-poly-mopoe"])
def test_embeddings_page_draws_the_explorer(name):
    pytest.importorskip("streamlit")
    from tests.test_app import TIMEOUT, fresh, no_errors

    at = fresh({"model": name})
    at.switch_page("views/embeddings.py")
    at.run(timeout=TIMEOUT)
    no_errors(at)
    frames = at.get("iframe")
    assert len(frames) == 1
    html = frames[0].proto.srcdoc
    assert 'id="plane"' in html and len(html) < 3_000_000
    info = " ".join(c.value for c in at.caption if "grid" in c.value)
    if name == "digits-poly-mopoe":  # 8-D: two chosen axes, the others stated
        assert "z3 = 0.00" in info and "prior's mean" in info, info
        at.selectbox(key="explore_ax_a").set_value(3)
        at.radio(key="explore_fixed").set_value("data")
        at.run(timeout=TIMEOUT)
        no_errors(at)
        info = " ".join(c.value for c in at.caption if "grid" in c.value)
        assert info.startswith("The plane of z4 and z1") and "test points' codes" in info, info
    else:
        assert "other coordinates" not in info, info
