"""MoPoE with subsampled components: cost and variance against the full MoPoE and MoE.

    python benchmarks/mopoe_subsample.py [--modalities 5] [--subsample 5] [--epochs 3] [--rounds 10] [--draws 30]

Task: digits-poly with M modalities (C = 2^M - 1 MoPoE components), MLP 64-128-128, latent 8,
batch 128, DReG with K = 1 and the ``looser`` bound, one thread. A MoPoE model is trained for a
few epochs first (so the figures are for a model that has learned something), then:

* **cost**: one training step of full MoPoE, MoPoE with ``subsample=S`` and MoE (M components)
  take turns (A B C A B C ...); printed: medians of per-round ratios to the MoE step, [min-max];
* **variance**: on one fixed batch, ``--draws`` repeated draws of the loss and of its gradient
  (w.r.t. all parameters) for the full and the subsampled objective. Printed: the mean value
  (the two must agree within their standard errors: unbiased), the standard deviation of the loss
  over draws, and the trace of the gradient covariance (sum over parameters of the variance),
  with their ratio subsampled / full: how many more steps (or how much smaller a learning rate)
  the subsampled gradient needs for the same noise.
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import mmvae  # noqa: E402
from mmvae.data import load_dataset  # noqa: E402
from mmvae.training import Trainer, TrainConfig  # noqa: E402


def _time(fn, steps):
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modalities", type=int, default=5)
    p.add_argument("--subsample", type=int, default=5)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--draws", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("digits-poly", seed=0, n_modalities=args.modalities)
    net = {"type": "mlp", "hidden": [128, 128]}
    config = mmvae.config_for_specs(data.specs, latent_dim=8, fusion="mopoe", network=net)
    model = mmvae.build_model(config, seed=0)
    opts = dict(estimator="dreg", K=1, bound="looser", batch_size=128, device="cpu", seed=0)
    mmvae.fit(model, data.train, None, epochs=args.epochs, **opts)
    C = 2 ** args.modalities - 1
    print(f"digits-poly, M = {args.modalities} (MoPoE C = {C}), S = {args.subsample}, DReG K = 1 looser, "
          f"after {args.epochs} epochs of MoPoE training; one thread")

    moe_model = mmvae.build_model(mmvae.config_for_specs(data.specs, latent_dim=8, fusion="moe", network=net), seed=0)
    trainers = {"mopoe": Trainer(copy.deepcopy(model), data.train, None, TrainConfig(**opts)),
                "mopoe-sub": Trainer(copy.deepcopy(model), data.train, None, TrainConfig(**opts, subsample=args.subsample)),
                "moe": Trainer(moe_model, data.train, None, TrainConfig(**opts))}
    batch = data.train.subset(slice(0, 128)).modalities
    steps = {k: (lambda t=t: t._step(batch)) for k, t in trainers.items()}
    for fn in steps.values():
        _time(fn, 2)
    ratios = {"mopoe/moe": [], "mopoe-sub/moe": []}
    for _ in range(args.rounds):
        t = {k: _time(fn, args.steps) for k, fn in steps.items()}
        ratios["mopoe/moe"].append(t["mopoe"] / t["moe"])
        ratios["mopoe-sub/moe"].append(t["mopoe-sub"] / t["moe"])
    print("cost per step, medians of per-round ratios [min-max]: " + ", ".join(
        f"{k} {statistics.median(v):.2f}x [{min(v):.2f}-{max(v):.2f}]" for k, v in ratios.items()))

    g = torch.Generator().manual_seed(1)
    params = list(model.parameters())
    out = {}
    for name, sub in (("full", None), ("subsampled", args.subsample)):
        values, grads = [], []
        for _ in range(args.draws):
            model.zero_grad()
            o = mmvae.objective(model, batch, "dreg", 1, bound="looser", subsample=sub, generator=g)
            o.loss.backward()
            values.append(float(o.value.mean()))
            grads.append(torch.cat([q.grad.flatten() for q in params]))
        G = torch.stack(grads)
        out[name] = (statistics.mean(values), statistics.stdev(values), float(G.var(0).sum()))
        m, sd, tr = out[name]
        print(f"{name:10s}: mean objective {m:9.3f} (+- {sd / math.sqrt(args.draws):.3f}), "
              f"std of the batch loss over draws {sd:.3f}, trace of the gradient covariance {tr:.4g}")
    print(f"variance cost of subsampling: loss variance x{(out['subsampled'][1] / out['full'][1]) ** 2:.1f}, "
          f"gradient covariance trace x{out['subsampled'][2] / out['full'][2]:.1f}")


if __name__ == "__main__":
    main()
