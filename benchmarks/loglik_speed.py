"""Time mmvae's joint log-likelihood (K = 1,000 importance samples) on the 360-image test split of
digits-halves for each fusion, beside multivae's LikelihoodsEvaluator on a same-size model when
multivae is installed.

Model: two MLP encoders / decoders 32-128-128 with a latent of 8 (images (1, 4, 8), Bernoulli
likelihoods), trained for a few steps so the posteriors are not at initialisation. One CPU thread,
median of ``--repeats`` timed runs after one warm-up run.

    python benchmarks/loglik_speed.py [--repeats 5] [--no-multivae]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)


def mmvae_loglik_seconds(fusion: str, K: int = 1000, repeats: int = 5, train_steps: int = 50, seed: int = 0):
    """(median seconds, mean log p(x), MC stderr) of estimate_log_likelihood on the test split."""
    import torch

    from mmvae import build_model, config_for_specs
    from mmvae.data import load_dataset
    from mmvae.diagnostics import estimate_log_likelihood
    from mmvae.objectives import objective

    bundle = load_dataset("digits-halves", seed=seed)
    cfg = config_for_specs(bundle.specs, latent_dim=8, fusion=fusion, network={"type": "mlp", "hidden": [128, 128]})
    model = build_model(cfg, seed=seed)
    if train_steps:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        batches = bundle.train.batches(128)
        for step in range(train_steps):
            try:
                batch = next(batches)
            except StopIteration:
                batches = bundle.train.batches(128)
                batch = next(batches)
            opt.zero_grad()
            objective(model, batch, "iwae", 1).loss.backward()
            opt.step()
    model.eval()
    test = bundle.test
    estimate_log_likelihood(model, test, K, seed=seed)  # warm-up
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        ll = estimate_log_likelihood(model, test, K, seed=seed + r)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), ll.mean, ll.mc_stderr, test.n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("-K", type=int, default=1000)
    parser.add_argument("--fusions", default="poe,moe,mopoe")
    parser.add_argument("--no-multivae", action="store_true")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    baseline = None
    if not args.no_multivae:
        try:
            from multivae_baseline import multivae_loglik_seconds
            from multivae_shim import import_multivae

            import_multivae()
            baseline = multivae_loglik_seconds
        except Exception as e:  # not installed or not importable
            print(f"multivae not available ({type(e).__name__}: {e}); timing mmvae only", file=sys.stderr)
    print(f"joint log-likelihood, K={args.K}, digits-halves test split, 1 thread, median of {args.repeats}")
    print(f"{'fusion':8s} {'n':>5s} {'mmvae s':>9s} {'log p(x)':>10s} {'mc se':>7s} {'multivae s':>11s} {'ratio':>7s}")
    for fusion in args.fusions.split(","):
        sec, mean, se, n = mmvae_loglik_seconds(fusion, args.K, args.repeats)
        line = f"{fusion:8s} {n:5d} {sec:9.3f} {mean:10.3f} {se:7.3f}"
        if baseline is not None:
            base = baseline(fusion, K=args.K, threads=1, repeats=args.repeats)
            line += f" {base:11.3f} {base / sec:6.2f}x"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
