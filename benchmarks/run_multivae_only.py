"""Print the multivae baseline numbers alone (no mmvae side).

    python benchmarks/run_multivae_only.py [--threads 1] [--steps 200]

Training throughput (samples/s, median of 3) for poe/moe/mopoe at K=1 and
K=10, then the LikelihoodsEvaluator joint log-likelihood time (s, median
of 3, K=1000, 360 test images).  Only MMVAE (moe) uses K during training;
MVAE and MoPoE always train their K=1 objective.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import multivae_baseline as mb  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--loglik-K", type=int, default=1000)
    args = parser.parse_args(argv)

    print(f"multivae baseline, torch threads={args.threads}")
    print("training throughput (samples/s, median of 3, batch 128, "
          f"{args.steps} timed steps)")
    for K in (1, 10):
        for fusion in ("poe", "moe", "mopoe"):
            rate = mb.multivae_train_throughput(fusion, K, n_steps=args.steps,
                                                threads=args.threads)
            note = "" if fusion == "moe" else "  (K unused: K=1 objective)"
            print(f"  {fusion:6s} {mb.FUSIONS[fusion]:6s} K={K:<3d} {rate:10.0f}{note}",
                  flush=True)

    print(f"LikelihoodsEvaluator joint NLL, K={args.loglik_K}, 360 test images "
          "(s, median of 3)")
    for fusion in ("poe", "moe", "mopoe"):
        secs = mb.multivae_loglik_seconds(fusion, K=args.loglik_K, threads=args.threads)
        print(f"  {fusion:6s} {mb.FUSIONS[fusion]:6s} {secs:7.3f} s"
              f"   (NLL {mb.multivae_loglik_seconds.last_nll:.2f})", flush=True)


if __name__ == "__main__":
    main()
