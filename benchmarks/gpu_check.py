"""Throughput, log p(x) time and peak memory on one device (a GPU by default), floor beside mmvae.

    PYTHONPATH=. python3 benchmarks/gpu_check.py [--device cuda] [--quick]

Called by ``benchmarks/gpu_check.sh`` after the device tests. Task as in
``train_throughput.py`` (digits-halves, MLP 32-128-128, latent 8, Adam lr 1e-3): for each fusion
(poe ELBO, moe DReG looser, mopoe ELBO), K in 1, 10, 100 and batch sizes 128 and 1024, the mmvae
training step and its floor (the same networks' plain Gaussian-VAE step on the same rows) are
interleaved round by round with a device synchronisation around every timed block; then the
joint log-likelihood (K = 1000, 360 test images) against its floor (see ``loglik_speed.py``).
Peak memory: ``torch.cuda.max_memory_allocated`` over one step (stats reset before it; weights,
Adam state and the data set on the device included). Tables go to stdout and to $OUT when set.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import torch  # noqa: E402

import harness  # noqa: E402
import loglik_speed as ll  # noqa: E402
import train_throughput as tt  # noqa: E402


def peak_mb(step, device) -> float:
    """Peak allocated device memory (MB) during one call of ``step`` (nan on the CPU)."""
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--K", nargs="+", type=int, default=[1, 10, 100])
    p.add_argument("--batch", nargs="+", type=int, default=[128, 1024])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--loglik-K", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of this script on the CPU)")
    args = p.parse_args(argv)
    if args.quick:
        args.K, args.batch, args.rounds, args.calls, args.loglik_K = [1, 10], [64], 2, 2, 20
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    harness.setup(1)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    head = f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    print(head)
    print(harness.machine())
    t_start = time.perf_counter()

    data = tt.digits_data(device)
    rows = []
    for fusion in ("poe", "moe", "mopoe"):
        estimator, bound = tt.MATCH[fusion]
        for batch in args.batch:
            for K in args.K:
                cases = {"floor": tt.floor_step(data, fusion, K, device, batch),
                         "mmvae": tt.mmvae_step(data, fusion, estimator, bound, K, device, batch)}
                t = harness.interleave(cases, args.rounds, args.calls, 3, sync)
                row = [f"{fusion} {estimator} K={K}", batch, f"{harness.rate(t, 'mmvae', batch):,.0f}",
                       f"{harness.rate(t, 'floor', batch):,.0f}", harness.ratio_summary(t, "mmvae", "floor").ratio(),
                       f"{peak_mb(cases['mmvae'], device):.1f}", f"{peak_mb(cases['floor'], device):.1f}"]
                rows.append(row)
                print(" | ".join(map(str, row)), flush=True)
    train_table = harness.markdown_table(
        ["case", "batch", "mmvae samples/s", "floor samples/s", "mmvae / floor (time)", "peak MB mmvae",
         "peak MB floor"], rows)

    rows = []
    for fusion in ("poe", "moe", "mopoe"):
        model, test = ll.trained_mmvae(fusion, device)
        cases = {"floor": ll.floor_case(model, test, args.loglik_K, device),
                 "mmvae": ll.mmvae_case(model, test, args.loglik_K)}
        t = harness.interleave(cases, args.rounds, 1, 1, sync)
        rows.append([f"{fusion} K={args.loglik_K}", test.n, f"{statistics.median(t['mmvae']):.3f}",
                     f"{statistics.median(t['floor']):.3f}", harness.ratio_summary(t, "mmvae", "floor").ratio(),
                     f"{peak_mb(cases['mmvae'], device):.1f}"])
        print(" | ".join(map(str, rows[-1])), flush=True)
    ll_table = harness.markdown_table(["log p(x)", "images", "mmvae s", "floor s", "mmvae / floor (time)",
                                       "peak MB mmvae"], rows)
    text = (f"{head}\n{harness.machine()}\n\ntraining ({args.rounds} interleaved rounds x {args.calls} steps; "
            f"ratios: median (IQR; min-max) of per-round ratios)\n\n{train_table}\n\njoint log-likelihood\n\n"
            f"{ll_table}\n\ntotal {time.perf_counter() - t_start:.0f} s\n")
    print()
    print(text)
    harness.write_out("gpu_check.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
