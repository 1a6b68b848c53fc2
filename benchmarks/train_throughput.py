"""Training throughput of mmvae against the floor and multivae, interleaved in one process.

    python benchmarks/train_throughput.py [--rounds 15] [--calls 20] [--warmup 10] [--quick]

Task: digits-halves (scikit-learn's 8x8 digits, pixels / 16; modality ``top`` = rows 0-3 and
``bottom`` = rows 4-7, 32 values each; the 1077-image training split of
``multivae_baseline.digits_halves``), Bernoulli likelihoods, MLP encoders 32-128-128-16 and
decoders 8-128-128-32, latent 8, batch 128, Adam lr 1e-3, one thread.

Per case, three runs are interleaved round by round (see ``harness.py``):

* ``mmvae``: one training step (``Trainer._step``: objective, backward, finite check, fused Adam)
  on shuffled full batches of 128;
* ``floor``: the same networks' plain forward + backward + fused Adam step with a Gaussian-VAE
  loss of the same shapes: both encoders on the batch, a reparameterised sample, and each decoder
  on as many latent rows as the mmvae step decodes for it (PoE/MVAE: joint + its own unimodal term,
  2 K B rows; MoE: 2 K B; MoPoE: 3 K B), Bernoulli log-likelihood x l - softplus(l) of the logits l plus analytic
  KL to N(0, I). No fusion, no importance weights, no gradient estimator: the least a step with
  these networks and rows can cost;
* ``multivae`` (only when ``multivae`` 1.0.3 imports; ``bash benchmarks/install_multivae.sh``):
  one step of its MVAE (poe), MMVAE (moe, DReG on the looser bound, its default) or MoPoE (mopoe)
  on consecutive full batches. MVAE and MoPoE have no K: at K=10 they are not run.

Figures: samples/s (median seconds per step over rounds), ``mmvae / floor`` = per-round ratio of
step times (1.00x = no overhead above the networks), ``multivae / mmvae`` = per-round ratio of
step times (above 1 = mmvae is faster), each as median (IQR; min-max) over rounds.

Equal work? multivae's MVAE = joint + 2 unimodal ELBOs, one sample, analytic KL (ours: the same
terms, Monte-Carlo KL). MMVAE: K samples per expert, looser bound, DReG (ours: the exactly
unbiased mixture DReG, with extra score terms; multivae's default Laplace latents vs our
Gaussian). MoPoE: multivae splits each batch into one chunk per subset, so each data point sees
ONE of the 3 subsets (2 decodes per point); ours samples all 3 subsets for every point (6 decodes
per point at K=1): the MoPoE ratio compares a step on the same 128 points, not equal work.
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import harness  # noqa: E402
import multivae_baseline as mb  # noqa: E402  (imports neither multivae nor sklearn at import time)

BATCH = 128
LR = 1e-3
LATENT_DIM = 8
MATCH = {"poe": ("elbo", "tight"), "moe": ("dreg", "looser"), "mopoe": ("elbo", "tight")}
DECODED = {"poe": 2, "moe": 2, "mopoe": 3}  # latent components each decoder sees, per sample


def digits_data(device="cpu"):
    from mmvae.data import MultimodalData

    top, bottom = mb._train_tensors(0)
    return MultimodalData({"top": top.contiguous(), "bottom": bottom.contiguous()}).to(device)


def make_model(fusion, seed=0):
    from mmvae import ModalityConfig, ModelConfig, build_model

    net = {"type": "mlp", "hidden": [128, 128]}
    mods = [ModalityConfig(name, (32,), "bernoulli", None, network=net) for name in ("top", "bottom")]
    return build_model(ModelConfig(mods, latent_dim=LATENT_DIM, fusion=fusion), seed=seed)


def mmvae_step(data, fusion, estimator, bound, K, device="cpu", batch=BATCH):
    """A zero-argument callable running one mmvae training step on the next full batch."""
    from mmvae import Trainer

    trainer = Trainer(make_model(fusion), data, None, estimator=estimator, K=K, bound=bound, batch_size=batch,
                      lr=LR, device=device, seed=0)
    batches = full_batches(trainer.train, batch, torch.Generator().manual_seed(0))
    return lambda: trainer._step(next(batches))


def full_batches(data, batch, generator):
    """Endless shuffled full batches (each epoch's last, partial batch is dropped)."""
    while True:
        for b in data.batches(batch, True, generator):
            if next(iter(b.values())).shape[0] == batch:
                yield b


def floor_step(data, fusion, K, device="cpu", batch=BATCH):
    """One plain Gaussian-VAE step on the same networks and the same number of decoded rows."""
    model = make_model(fusion).to(device)
    encoders = {n: model.encoders[n].net for n in model.names}  # (B, 32) -> (B, 2D)
    decoders = {n: model.decoders[n].net for n in model.names}  # (R, D) -> (R, 32)
    params = [p for m in (*encoders.values(), *decoders.values()) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=LR, fused=True)
    gen = torch.Generator(device=device).manual_seed(0)
    batches = full_batches(data, batch, torch.Generator().manual_seed(0))
    C = DECODED[fusion] * K  # latent rows per data point that each decoder sees
    M = len(encoders)
    pick = torch.arange(C, device=device) % M  # which encoder's posterior each row block samples

    def step():
        x = next(batches)
        h = torch.stack([encoders[n](x[n]) for n in encoders])  # (M, B, 2D)
        mu, logvar = h.chunk(2, -1)  # (M, B, D) each
        eps = torch.randn((C, *mu.shape[1:]), generator=gen, device=device)
        z = mu[pick] + eps * (0.5 * logvar[pick]).exp()  # (C, B, D)
        loss = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum((0, 2)).mean()  # analytic KL
        for n, dec in decoders.items():
            logits = dec(z.reshape(-1, z.shape[-1])).view(C, -1, x[n].shape[-1])  # (C, B, 32)
            loss = loss - (x[n] * logits - F.softplus(logits)).sum(-1).mean()  # Bernoulli log-likelihood
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def multivae_step(fusion, K):
    """One step of multivae's model for ``fusion`` on consecutive full batches."""
    top, bottom = mb._train_tensors(0)
    torch.manual_seed(0)  # multivae draws from the global generator; this process is a benchmark
    with mb._no_distribution_validation():
        model = mb.make_multivae_model(fusion, K)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    pos = [0]

    def step():
        with mb._no_distribution_validation():
            pos[0] = mb._run_steps(model, opt, top, bottom, BATCH, 1, pos[0])

    return step


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    p.add_argument("--calls", type=int, default=20, help="steps per case per round (default 20)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps per case first (default 10)")
    p.add_argument("--fusions", nargs="+", default=["poe", "moe", "mopoe"], choices=["poe", "moe", "mopoe"])
    p.add_argument("--K", nargs="+", type=int, default=[1, 10])
    p.add_argument("--no-multivae", action="store_true", help="floor and mmvae only")
    p.add_argument("--quick", action="store_true", help="smoke run: 3 rounds of 2 steps, 2 warm-up steps")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.calls, args.warmup = 3, 2, 2
    harness.setup(args.threads)
    have_mv = not args.no_multivae and harness.import_multivae_or_none() is not None
    print(f"training throughput, digits-halves, batch {BATCH}, latent {LATENT_DIM}, MLP 32-128-128, Adam lr {LR}")
    print(harness.machine())
    print(f"{args.rounds} interleaved rounds x {args.calls} steps per case, {args.warmup} warm-up steps; "
          "ratios: median (IQR; min-max) of per-round step-time ratios")
    data = digits_data()
    rows = []
    for fusion in args.fusions:
        estimator, bound = MATCH[fusion]
        for K in args.K:
            cases = {"floor": floor_step(data, fusion, K), "mmvae": mmvae_step(data, fusion, estimator, bound, K)}
            mv = have_mv and (fusion == "moe" or K == 1)
            if mv:
                cases["multivae"] = multivae_step(fusion, K)
                harness.setup(args.threads)
            t = harness.interleave(cases, args.rounds, args.calls, args.warmup)
            row = [f"{fusion} {estimator}{' ' + bound if fusion != 'poe' else ''} K={K}",
                   f"{harness.rate(t, 'mmvae', BATCH):,.0f}", f"{harness.rate(t, 'floor', BATCH):,.0f}",
                   harness.ratio_summary(t, "mmvae", "floor").ratio()]
            if mv:
                row += [f"{harness.rate(t, 'multivae', BATCH):,.0f}", harness.ratio_summary(t, "multivae", "mmvae").ratio()]
            elif have_mv:
                row += ["n/a (no K)", "n/a"]
            rows.append(row)
            print(" | ".join(row), f"(load {harness.load_now()})", flush=True)
    harness.report("train_throughput.md", ["case", "mmvae samples/s", "floor samples/s", "mmvae / floor (time)"], rows,
                   ["multivae samples/s", "multivae / mmvae (time)"] if have_mv else ())


if __name__ == "__main__":
    main()
