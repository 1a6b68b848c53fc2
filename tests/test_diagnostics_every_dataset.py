"""Every diagnostic comes out as JSON for every built-in dataset and every fusion rule."""
import json
import math

import numpy as np
import pytest
import torch

from mmvae import build_model, config_for_specs, fit
from mmvae.data import load_dataset
from mmvae.diagnostics.report import PARTS, diagnostics_report, jsonable

DATASETS = [("toy", {"n": 300}), ("toy", {"n": 300, "nonlinear": True}), ("digits-halves", {}),
            ("digits-poly", {"n_modalities": 3}), ("impedance", {"n": 200, "seismic": True}), ("wells", {})]


def _non_finite(obj, path="report"):
    """Paths of every NaN or inf in the report *before* its JSON conversion (which makes them None)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _non_finite(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _non_finite(v, f"{path}[{i}]")
    elif isinstance(obj, torch.Tensor):
        if obj.is_floating_point() and not bool(torch.isfinite(obj).all()):
            yield path
    elif isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and not bool(np.isfinite(obj).all()):
            yield path
    elif isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
        yield path


@pytest.mark.parametrize("name,options", DATASETS, ids=[d[0] + ("-" + "-".join(map(str, d[1].values())) if d[1] else "")
                                                        for d in DATASETS])
@pytest.mark.parametrize("fusion", ["poe", "moe", "mopoe"])
def test_every_part_for_every_dataset_and_fusion(name, options, fusion):
    bundle = load_dataset(name, seed=0, **options)
    model = build_model(config_for_specs(bundle.specs, latent_dim=3, fusion=fusion,
                                         network={"type": "mlp", "hidden": [16]}))
    fit(model, bundle.train.subset(slice(0, 128)), None, epochs=1, K=2, device="cpu")
    test = bundle.test.subset(slice(0, 24))
    small = type(bundle)(bundle.name, bundle.train, bundle.val, test, bundle.specs, bundle.description,
                         bundle.label_names, bundle.extras)
    torch.manual_seed(0)
    raw = diagnostics_report(model, small, "test", "all", Ks=(1, 5), repeats=2, n_samples=20, points=[0, 1],
                             embedding_method="pca", snr_Ks=(1, 3), snr_repeats=3, snr_batch=4, as_json=False)
    assert set(PARTS) <= set(raw)
    bad = list(_non_finite(raw))
    assert not bad, f"NaN or inf in {bad}"
    report = jsonable(raw)
    json.dumps(report, allow_nan=False)  # JSON-able
    assert report["bounds"]["rows"][0]["K"] == 1 and len(report["embedding"]["coords"]["joint"]) == 24
    assert ("impedance" in report) == (name in ("impedance", "wells"))
