"""Leave-one-well-out SI-from-AI on the shipped real wells: for each well, train on all the others
(the upper 85% of each for training, the deepest 15% for validation curves), predict the whole
held-out well from its AI alone and print, per well, the model's RMSE against the rock-physics
baseline's (Gardner + Castagna) on the same depth samples, their ratio, the coverage of the
P10-P90 and P25-P75 bands and the CRPS (km/s * g/cm3). ``RMSE_cal`` is the calibrated rock-physics
line alone (g(AI) exp(a + b log AI), fitted on the training wells, no VAE) on the same samples.

    python benchmarks/impedance_wells.py                  # physics-aware features (the default)
    python benchmarks/impedance_wells.py --no-physics     # AI and SI modelled directly
    python benchmarks/impedance_wells.py --json out.json  # also write the table as JSON

Targets (issue 10): RMSE <= 0.5x the baseline on every held-out well, 80% coverage in [0.75, 0.85].
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from mmvae.data.physics import si_from_residual  # noqa: E402
from mmvae.data.well import split_by_depth  # noqa: E402
from mmvae.impedance import ImpedanceConfig, metrics, predict, shipped_wells, train  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-physics", action="store_true", help="model AI and SI directly")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--stride", type=int, default=16, help="training window stride (samples)")
    p.add_argument("--latent-dim", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wells", default=None,
                   help="comma-separated subset of the shipped wells, at least two: each is held out in turn, "
                        "the others train")
    p.add_argument("--json", default=None, help="write the rows as JSON to this path")
    args = p.parse_args()
    torch.set_num_threads(1)
    wells = shipped_wells()
    if args.wells:
        wells = {k: v for k, v in wells.items() if k in args.wells.split(",")}
        if len(wells) < 2:
            p.error(f"--wells needs at least two of the shipped wells {', '.join(shipped_wells())} "
                    "(each is held out in turn and the model trains on the others)")
    cfg = ImpedanceConfig(physics=not args.no_physics, epochs=args.epochs, stride=args.stride,
                          latent_dim=args.latent_dim, seed=args.seed)
    print(f"leave-one-well-out, physics={cfg.physics}, epochs={cfg.epochs}, stride={cfg.stride}, "
          f"D={cfg.latent_dim}, {cfg.fusion}/{cfg.estimator} K={cfg.K}, seed={cfg.seed}")
    print(f"{'held-out well':<14}{'n':>6}{'RMSE':>8}{'RMSE_RP':>9}{'ratio':>7}{'RMSE_cal':>9}{'bias':>8}{'cov80':>7}"
          f"{'cov50':>7}{'CRPS':>7}{'CRPS_RP':>8}{'s':>6}")
    rows = []
    for held, well in wells.items():
        t0 = time.time()
        tr, va = [], []
        for name, w in wells.items():
            if name == held:
                continue
            parts = split_by_depth(w, (0.85, 0.15, 0.0))
            tr.append(parts["train"])
            va.append(parts["val"])
        imp = train(tr, va, cfg)
        pred = predict(imp, well, seed=args.seed)
        m = metrics(pred)
        ok = np.isfinite(well.si) & np.isfinite(pred.quantile(0.5))
        cal = si_from_residual(0.0, well.ai[ok], imp.trend)
        rmse_cal = float(np.sqrt(np.mean((cal - well.si[ok]) ** 2)))
        row = {"well": held, "n": m["n"], "rmse": m["model"]["rmse"], "rmse_rock_physics": m["rock_physics"]["rmse"],
               "ratio": m["rmse_ratio"], "rmse_calibrated_line": rmse_cal, "trend": list(imp.trend), "bias": m["model"]["bias"], "coverage_80": m["coverage_80"],
               "coverage_50": m["coverage_50"], "crps": m["crps"], "crps_rock_physics": m["crps_rock_physics"],
               "seconds": time.time() - t0}
        rows.append(row)
        print(f"{held:<14}{row['n']:>6}{row['rmse']:>8.3f}{row['rmse_rock_physics']:>9.3f}{row['ratio']:>7.2f}"
              f"{rmse_cal:>9.3f}{row['bias']:>8.3f}{row['coverage_80']:>7.2f}{row['coverage_50']:>7.2f}{row['crps']:>7.3f}"
              f"{row['crps_rock_physics']:>8.3f}{row['seconds']:>6.0f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"config": vars(args), "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
