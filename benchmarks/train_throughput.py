"""Training throughput and peak memory of mmvae (and multivae, when installed) on digits-halves.

    python benchmarks/train_throughput.py [--threads 1] [--steps 200] [--repeats 3] [--quick]

Task: scikit-learn's bundled ``load_digits``, pixels / 16, modality ``top`` = rows 0-3 and
``bottom`` = rows 4-7, each flattened to 32 values (the 1077-image training split of
``multivae_baseline.digits_halves``, so both libraries see the same data); Bernoulli likelihoods,
MLP encoders and decoders 32-128-128, latent_dim 8, batch 128, Adam lr 1e-3.

mmvae side: every fusion (poe, moe, mopoe) x estimator (elbo, iwae, dreg, stl) at K=1 and K=10,
timed through ``mmvae.training.Trainer._step`` over the trainer's own shuffled tensor-slice
batches (full batches of 128 only, like the multivae loop). Throughput = samples / second,
median over ``--repeats`` timed runs of ``--steps`` steps each, after ``--warmup`` untimed steps.

Peak memory: the peak of live CPU tensor memory allocated *during one training step* (forward,
backward, optimiser step), above what was live when the step began. It is read from
``torch.profiler`` (``profile_memory=True``): the running sum of the allocator's allocation and
free events of the step, in time order; its maximum is the figure. Model weights, optimiser
state and data that exist before the step are not counted; Python objects are not counted. The
same measurement is applied to one multivae step. Measured in a separate, untimed step.

multivae side (only if ``multivae`` imports, via ``multivae_shim.import_multivae``): the
throughput of ``multivae_baseline.multivae_train_throughput`` for MVAE (poe), MMVAE (moe) and
MoPoE (mopoe), and the ratio ours / theirs for the objective closest to theirs.
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

import multivae_baseline as mb  # noqa: E402  (imports neither multivae nor sklearn at import time)

FUSIONS = ("poe", "moe", "mopoe")
ESTIMATORS = ("elbo", "iwae", "dreg", "stl")
KS = (1, 10)
BATCH = 128
LR = 1e-3
LATENT_DIM = 8

# The mmvae objective compared with each multivae model (see CAVEATS).
MATCH = {"poe": ("elbo", "tight"), "moe": ("dreg", "looser"), "mopoe": ("elbo", "tight")}

CAVEATS = """\
Equal work? (multivae 1.0.3 objectives, read from its source)
  poe   vs MVAE : theirs = joint + 2 unimodal ELBOs, ONE sample (K=1), analytic Gaussian KL, no K option.
                  Ours (elbo) = the same three terms with a Monte-Carlo KL; at K=10 ours draws 10x the
                  samples while theirs stays K=1, so the K=10 ratio is NOT equal work.
  moe   vs MMVAE: theirs = K samples per expert, looser bound (mean over experts outside the log), DReG
                  gradient by default, Laplace latents; ours = dreg with bound='looser' and Gaussian
                  latents, K per component, with the exactly unbiased mixture DReG (extra score terms).
  mopoe vs MoPoE: theirs = K=1 and the batch split into one chunk per subset, so each data point sees
                  ONE of the 3 subsets (1 posterior sample + 2 decodes per point); ours (elbo) samples
                  all 3 subsets for every point (3 samples + 6 decodes per point at K=1: ~3x their work)
                  and weights against the mixture density. K=10 ratio is NOT equal work either."""


# --------------------------------------------------------------------------- data / model


def digits_data():
    from mmvae.data import MultimodalData

    top, bottom = mb._train_tensors(0)
    return MultimodalData({"top": top.contiguous(), "bottom": bottom.contiguous()})


def make_trainer(data, fusion, estimator, K, bound="tight", seed=0):
    from mmvae import ModalityConfig, ModelConfig, Trainer, build_model

    net = {"type": "mlp", "hidden": [128, 128]}
    mods = [ModalityConfig(name, (32,), "bernoulli", None, network=net) for name in ("top", "bottom")]
    model = build_model(ModelConfig(mods, latent_dim=LATENT_DIM, fusion=fusion), seed=seed)
    return Trainer(model, data, None, estimator=estimator, K=K, bound=bound, batch_size=BATCH, lr=LR,
                   device="cpu", seed=seed)


def full_batches(trainer):
    """Endless shuffled full batches (each epoch's last, partial batch is dropped)."""
    while True:
        for batch in trainer.train.batches(BATCH, True, trainer.generator):
            if next(iter(batch.values())).shape[0] == BATCH:
                yield batch


# --------------------------------------------------------------------------- measurement


def step_peak_bytes(run_step) -> int:
    """Peak of live CPU tensor memory allocated during ``run_step()``, from torch.profiler's
    allocator events (allocation sizes positive, frees negative) summed in time order."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    saved = os.dup(2)  # kineto prints start/stop lines on stderr
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                run_step()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        e = stack.pop()
        if e.typed[0] == _EventType.Allocation and e.typed[1].device.type == "cpu":
            events.append((e.start_time_ns, e.typed[1].alloc_size))
        stack.extend(e.children)
    live = peak = 0
    for _, nbytes in sorted(events):
        live += nbytes
        peak = max(peak, live)
    return peak


def mmvae_throughput(data, fusion, estimator, K, steps, warmup, repeats, bound="tight"):
    trainer = make_trainer(data, fusion, estimator, K, bound)
    batches = full_batches(trainer)
    for _ in range(warmup):
        trainer._step(next(batches))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            trainer._step(next(batches))
        rates.append(steps * BATCH / (time.perf_counter() - t0))
    peak = step_peak_bytes(lambda: trainer._step(next(batches)))
    return statistics.median(rates), peak


def multivae_available() -> bool:
    try:
        from multivae_shim import import_multivae

        import_multivae()
        return True
    except Exception as e:  # not installed, or broken beside this torch
        print(f"multivae not available ({type(e).__name__}: {e}); skipping the comparison")
        return False


def multivae_peak_bytes(fusion, K) -> int:
    """Peak step memory of multivae's model, with the same profiler measurement."""
    torch.manual_seed(0)
    top, bottom = mb._train_tensors(0)
    with mb._no_distribution_validation():
        model = mb.make_multivae_model(fusion, K)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        mb._run_steps(model, opt, top, bottom, BATCH, 3, 0)
        return step_peak_bytes(lambda: mb._run_steps(model, opt, top, bottom, BATCH, 1, 3 * BATCH))


# --------------------------------------------------------------------------- main


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--steps", type=int, default=200, help="timed steps per repeat")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    p.add_argument("--fusions", nargs="+", default=list(FUSIONS), choices=FUSIONS)
    p.add_argument("--estimators", nargs="+", default=list(ESTIMATORS), choices=ESTIMATORS)
    p.add_argument("--K", nargs="+", type=int, default=list(KS))
    p.add_argument("--no-multivae", action="store_true", help="skip the multivae comparison")
    p.add_argument("--quick", action="store_true", help="smoke run: 10 steps, 3 warm-up, 3 repeats")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.repeats = 10, 3, 3
    torch.set_num_threads(args.threads)
    print(f"digits-halves training, batch {BATCH}, Adam lr {LR}, latent {LATENT_DIM}, torch {torch.__version__}, "
          f"threads={args.threads}, {args.steps} timed steps x {args.repeats} repeats (median), "
          f"{args.warmup} warm-up steps")
    print("samples/s = training samples per second; peak MB = peak tensor memory allocated during one step "
          "(torch.profiler allocator events)")

    data = digits_data()
    ours = {}
    print(f"\n{'fusion':6s} {'estimator':9s} {'K':>3s} {'samples/s':>10s} {'peak MB':>8s}")
    for fusion in args.fusions:
        for est in args.estimators:
            for K in args.K:
                rate, peak = mmvae_throughput(data, fusion, est, K, args.steps, args.warmup, args.repeats)
                ours[fusion, est, "tight", K] = (rate, peak)
                print(f"{fusion:6s} {est:9s} {K:3d} {rate:10.0f} {peak / 2**20:8.2f}", flush=True)

    if args.no_multivae or not multivae_available():
        return
    print(f"\nours / multivae (same data, batch, networks, Adam, threads={args.threads})")
    print(f"{'fusion':6s} {'multivae':8s} {'K':>3s} {'ours (estimator, bound)':>24s} {'samples/s':>10s} "
          f"{'multivae':>9s} {'ratio':>6s} {'peak MB ours/theirs':>20s}")
    for fusion in args.fusions:
        est, bound = MATCH[fusion]
        for K in args.K:
            key = (fusion, est, bound, K)
            if key not in ours:
                ours[key] = mmvae_throughput(data, fusion, est, K, args.steps, args.warmup, args.repeats, bound)
            rate, peak = ours[key]
            theirs = mb.multivae_train_throughput(fusion, K, n_steps=args.steps, batch_size=BATCH, lr=LR,
                                                  threads=args.threads, warmup_steps=args.warmup,
                                                  repeats=args.repeats)
            their_peak = multivae_peak_bytes(fusion, K)
            torch.set_num_threads(args.threads)
            print(f"{fusion:6s} {mb.FUSIONS[fusion]:8s} {K:3d} {f'{est}, {bound}':>24s} {rate:10.0f} {theirs:9.0f} "
                  f"{rate / theirs:6.2f} {f'{peak / 2**20:.2f}/{their_peak / 2**20:.2f}':>20s}", flush=True)
    print()
    print(CAVEATS)


if __name__ == "__main__":
    main()
