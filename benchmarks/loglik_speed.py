"""Joint log-likelihood time of mmvae against the floor and multivae, interleaved in one process.

    python benchmarks/loglik_speed.py [--K 1000 10] [--rounds 7] [--quick]

Task: the 360-image test split of digits-halves (``multivae_baseline.digits_halves``), two MLP
encoders 32-128-128-16 and decoders 8-128-128-32 with latent 8 and Bernoulli likelihoods, trained
for 50 Adam steps (each library its own model) so the posteriors are not at initialisation; one
thread. Per fusion and K, three runs are interleaved round by round (see ``harness.py``):

* ``mmvae``: ``mmvae.diagnostics.estimate_log_likelihood(model, test, K)`` (stratified: ceil(K / C)
  samples from each of the C mixture components, weighted against the mixture density);
* ``floor``: the same model's encoders on the 360 images and its decoders, forward only, on
  360 x K latent rows in chunks of ``MAX_ROWS`` (the chunk mmvae uses), with the Bernoulli
  log-likelihood and one logsumexp per image: the matrix products any K-sample estimate needs;
* ``multivae`` (when installed): its ``LikelihoodsEvaluator.joint_nll()`` with ``num_samples=K``,
  default batch sizes (512 images, 100 samples); the evaluator is built once, outside the timing.

Figures: seconds per estimate (median over rounds), ``mmvae / floor`` and ``multivae / mmvae``
as median (IQR; min-max) of per-round time ratios (above 1 in the last column = mmvae faster).
multivae's estimator is not the same one for mixtures: it draws a whole batch from one randomly
chosen expert and weights against that expert alone (see ``mmvae.diagnostics.likelihood``).
"""
from __future__ import annotations

import argparse
import math
import statistics
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

os.environ.setdefault("TQDM_DISABLE", "1")  # multivae's evaluator draws progress bars

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import harness  # noqa: E402

TRAIN_STEPS = 50


def trained_mmvae(fusion: str, device="cpu", seed: int = 0):
    """(model, test data) on digits-halves after ``TRAIN_STEPS`` Adam steps (IWAE, K = 1)."""
    from mmvae import build_model, config_for_specs
    from mmvae.data import load_dataset
    from mmvae.objectives import objective

    bundle = load_dataset("digits-halves", seed=seed)
    cfg = config_for_specs(bundle.specs, latent_dim=8, fusion=fusion, network={"type": "mlp", "hidden": [128, 128]})
    model = build_model(cfg, seed=seed).to(device)
    train = bundle.train.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    step = 0
    while step < TRAIN_STEPS:
        for batch in train.batches(128):
            if step == TRAIN_STEPS:
                break
            opt.zero_grad()
            objective(model, batch, "iwae", 1).loss.backward()
            opt.step()
            step += 1
    model.eval()
    return model, bundle.test.to(device)


def mmvae_case(model, test, K: int, seed: int = 0):
    from mmvae.diagnostics import estimate_log_likelihood

    return lambda: estimate_log_likelihood(model, test, K, seed=seed)


def floor_case(model, test, K: int, device="cpu"):
    """The decoders' forward pass on 360 x K latent rows, Bernoulli log-likelihood, logsumexp."""
    from mmvae.diagnostics.likelihood import MAX_ROWS

    gen = torch.Generator(device=device).manual_seed(0)
    x = {n: v.flatten(1) for n, v in test.modalities.items()}  # (N, 32) each
    n_img = test.n
    per_chunk = max(1, MAX_ROWS // K)  # images per chunk, K samples each

    @torch.no_grad()
    def run():
        h = torch.stack([model.encoders[n].net(x[n]) for n in x]).mean(0)  # (N, 2D)
        mu, log_scale = h.chunk(2, -1)
        out = []
        for s in range(0, n_img, per_chunk):
            b = slice(s, s + per_chunk)
            eps = torch.randn((K, *mu[b].shape), generator=gen, device=device)
            z = mu[b] + eps * torch.sigmoid(log_scale[b]).sqrt()  # (K, b, D)
            lw = -0.5 * (eps.square() - z.square()).sum(-1)  # (K, b): log p(z) - log q(z) + const
            for n in x:
                logits = model.decoders[n].net(z.reshape(-1, z.shape[-1])).view(K, -1, x[n].shape[-1])
                lw = lw + (x[n][b] * logits - F.softplus(logits)).sum(-1)
            out.append(torch.logsumexp(lw, 0) - math.log(K))
        return torch.cat(out)

    return run


def multivae_case(fusion: str, K: int, seed: int = 0):
    import logging

    import multivae_baseline as mb
    from multivae.data.datasets.base import MultimodalBaseDataset
    from multivae.metrics import LikelihoodsEvaluator, LikelihoodsEvaluatorConfig

    _, _, te_top, te_bottom = mb.digits_halves(seed)
    test = MultimodalBaseDataset(data={"top": torch.from_numpy(te_top), "bottom": torch.from_numpy(te_bottom)})
    torch.manual_seed(seed)  # multivae draws from the global generator; this process is a benchmark
    with mb._no_distribution_validation():
        model = mb.make_multivae_model(fusion, 1)
        top, bottom = mb._train_tensors(seed)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        mb._run_steps(model, opt, top, bottom, 128, TRAIN_STEPS, 0)
    config = LikelihoodsEvaluatorConfig(batch_size=512, num_samples=int(K), batch_size_k=100)
    evaluator = LikelihoodsEvaluator(model, test, eval_config=config)
    evaluator.logger.setLevel(logging.WARNING)  # it logs the mean NLL

    def run():
        with mb._no_distribution_validation():
            return evaluator.joint_nll()

    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--K", nargs="+", type=int, default=[1000, 10], help="importance samples (default 1000 10)")
    p.add_argument("--fusions", nargs="+", default=["poe", "moe", "mopoe"], choices=["poe", "moe", "mopoe"])
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-multivae", action="store_true")
    p.add_argument("--quick", action="store_true", help="smoke run: K=10, 2 rounds")
    args = p.parse_args(argv)
    if args.quick:
        args.K, args.rounds = [10], 2
    harness.setup(args.threads)
    have_mv = not args.no_multivae and harness.import_multivae_or_none() is not None
    print("joint log-likelihood of the 360 digits-halves test images; seconds per estimate")
    print(harness.machine())
    print(f"{args.rounds} interleaved rounds, 1 warm-up call per case; ratios: median (IQR; min-max) of "
          "per-round time ratios")
    rows = []
    for fusion in args.fusions:
        model, test = trained_mmvae(fusion)
        for K in args.K:
            calls = 1 if K >= 100 else 3  # repeat the cheap small-K estimates so a round is not all clock noise
            cases = {"floor": floor_case(model, test, K), "mmvae": mmvae_case(model, test, K)}
            if have_mv:
                cases["multivae"] = multivae_case(fusion, K)
                harness.setup(args.threads)
            t = harness.interleave(cases, args.rounds, calls, 1)
            med = {n: statistics.median(v) for n, v in t.items()}
            row = [f"{fusion} K={K}", f"{med['mmvae']:.3f}", f"{med['floor']:.3f}",
                   harness.ratio_summary(t, "mmvae", "floor").ratio()]
            if have_mv:
                row += [f"{med['multivae']:.3f}", harness.ratio_summary(t, "multivae", "mmvae").ratio()]
            rows.append(row)
            print(" | ".join(row), f"(load {harness.load_now()})", flush=True)
    harness.report("loglik_speed.md", ["case (360 images)", "mmvae s", "floor s", "mmvae / floor (time)"], rows,
                   ["multivae s", "multivae / mmvae (time)"] if have_mv else ())
    return 0


if __name__ == "__main__":
    sys.exit(main())
