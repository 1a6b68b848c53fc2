"""Quality of shared + private latents (MMVAE+) against multivae's ``MMVAEPlus``, on digits-poly.

    python benchmarks/mmvae_plus.py [--seeds 0 1 2] [--epochs 100] [--K 10] [--private-dim 4]

Task: ``digits-poly`` (three modalities m0, m1, m2: *different* 8x8 digits of the same class, each
in its own style; data seed 0: 1,077 train / 360 test tuples). Both models get the same networks
(:class:`mmvae.networks.MLPEncoder` 64-128-128-2(D+D_w) and :class:`mmvae.networks.MLPDecoder`
(D+D_w)-128-128-64, initialised from the same seeded generator), the same Bernoulli likelihood
(logits), shared latent D and private latent D_w per modality, the same K, epochs, batch size
(128, reshuffled every epoch from a seeded generator) and Adam (lr 1e-3); each trains its own
objective:

* ``mmvae``: this package, ``ModelConfig(private_dim=D_w, cross_private=...)``, fusion ``--fusion``
  (default ``moe``, the fusion of MMVAE+), ``--estimator`` (default DReG) on the ``--bound``
  (default ``looser``, MMVAE+'s);
* ``multivae``: ``multivae.models.MMVAEPlus`` 1.0.3 (PyPI) with its defaults (the paper's:
  ``loss="dreg_looser"``, Laplace latents with softmax scales, learned auxiliary priors r_m,
  ``reconstruction_option="joint_prior"``) unless ``--multivae-latent`` says otherwise.

Scores, identical for both models (the project's :mod:`mmvae.diagnostics`):

* coherence: one scikit-learn classifier per modality (``modality_classifiers``, trained on the
  real training data) labels generated test images (``coherence_of``). Conditional coherence
  given S: x_t decoded at the posterior mean of the shared z given x_S with the target's private
  w_t at the mode of its auxiliary prior (zero), for every t not in S; "given 1" is the mean over
  the 3 x 2 (S, t) pairs with one modality, "given 2" over the 3 pairs with two. multivae's side
  is ``model.predict(..., return_mean=True)`` (the mean of the unimodal means of z, w_t = the
  prior's mean, 0), then the sigmoid of the logits. Unconditional coherence: the fraction of
  1,000 draws z ~ p(z), w_m ~ p(w_m) (independently per modality) whose three decoded images get
  one label. (multivae's own ``generate_from_prior`` would give all modalities the *same* w
  sample; we sample the generative model of the paper instead.)
* test log-likelihood log p(x_0, x_1, x_2) (nats per tuple, Bernoulli on grey levels: comparable
  between the two, not a normalised density): stratified importance sampling over the full latent
  (z, w_0, w_1, w_2), ``--ll-samples`` draws per point split evenly over the three components,
  component m = q(z | x_m) q(w_m | x_m) prod_{n != m} r_n(w_n), weighted against the mixture
  density -- ``mmvae.diagnostics.estimate_log_likelihood`` for ours and the same estimator written
  out below for multivae (its own ``compute_joint_nll`` leaves the r_n draws out of the weights).

* w use: how much the decoders read the private latent: z_i from all modalities of test tuple i
  and w_t,j = the mean of q(w_t | x_t) of tuple j (i, j over 50 test tuples, ours:
  :func:`mmvae.diagnostics.swap_style`), the mean |E[x_t | z_i, w_t,j] change| along j divided by
  the one along i, averaged over t. 0: the decoders ignore w.

Every figure is the median over the seeds (``--seeds``) with the per-seed values beside it. One
torch thread. Our side never touches the global RNG; multivae's does (below).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

DATA_SEED = 0
N_PRIOR = 1000
STYLE_POINTS = 50  # the w-use figure: z of 50 test tuples x w_t of the same 50


# ----------------------------------------------------------------------------------- ours
def train_ours(bundle, args, seed: int):
    from mmvae import ModelConfig, Trainer, TrainConfig, build_model, config_for_specs

    cfg = config_for_specs(bundle.specs, latent_dim=args.latent_dim, latent=args.latent, fusion=args.fusion,
                           network={"type": "mlp", "hidden": list(args.hidden)})
    cfg = ModelConfig.from_dict({**cfg.to_dict(), "private_dim": args.private_dim,
                                 "cross_private": args.cross_private})
    model = build_model(cfg, seed=seed)
    train = TrainConfig(estimator=args.estimator, bound=args.bound, K=args.K, epochs=args.epochs,
                        batch_size=args.batch_size, lr=args.lr, seed=seed, device="cpu", eval_K=1)
    Trainer(model, bundle.train, None, train).fit()
    return model.eval()


def score_ours(model, bundle, classifiers, args, seed: int) -> dict:
    from mmvae.diagnostics import coherence, estimate_log_likelihood

    c = coherence(model, bundle.test, classifiers, n_samples=0, n_prior=N_PRIOR, seed=seed)
    rows = c["conditional"]
    ll = estimate_log_likelihood(model, bundle.test, n_samples=args.ll_samples, seed=seed)
    return {"given1": _mean([r["coherence"] for r in rows if len(r["given"]) == 1]),
            "given2": _mean([r["coherence"] for r in rows if len(r["given"]) == 2]),
            "joint": c["joint"], "loglik": ll.mean, "w_use": w_use_ours(model, bundle.test)}


def _w_use(grids) -> float:
    """Mean over targets of (mean |x change| when only w_t changes) / (... when only z changes), from
    grids (n, n, ...) of E[x_t | z_i, w_t,j]: 0 = the decoder ignores w."""
    ratios = []
    for g in grids:
        along_w = (g - g.mean(1, keepdim=True)).abs().mean()
        along_z = (g - g.mean(0, keepdim=True)).abs().mean()
        ratios.append(float(along_w / along_z))
    return _mean(ratios)


@torch.no_grad()
def w_use_ours(model, test, n: int = STYLE_POINTS) -> float:
    from mmvae.diagnostics import swap_style

    if not getattr(model, "private_dim", 0):
        return float("nan")
    x = {m: v[:n] for m, v in test.modalities.items()}
    return _w_use([swap_style(model, x, x, t)["grid"] for t in model.names])


# ------------------------------------------------------------------------------- multivae
def _multivae_networks(shape, latent_dim: int, private_dim: int, hidden, generator):
    """multivae wrappers around *our* MLPEncoder / MLPDecoder (the same layers as ours).

    The encoder's 2 (D + D_w) outputs (a, b): z's (embedding, log_covariance) = (a[:D], b[:D]),
    w's = (a[D:], b[D:]); multivae maps log_covariance to a scale itself (softmax for its Laplace
    default, exp(b / 2) for ``normal``)."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn.base_architectures import BaseDecoder

    from multivae.models.nn.base_architectures import BaseMultilatentEncoder
    from mmvae.networks import MLPDecoder, MLPEncoder, reset_parameters

    total = latent_dim + private_dim

    class Encoder(BaseMultilatentEncoder):
        def __init__(self):
            BaseMultilatentEncoder.__init__(self)
            self.latent_dim, self.style_dim = latent_dim, private_dim
            self.net = MLPEncoder(shape, total, hidden, prior_product=False)  # returns (a, b / 2)

        def forward(self, x):
            a, half_b = self.net(x)  # (B, D + D_w) each
            b = 2 * half_b
            return ModelOutput(embedding=a[:, :latent_dim], log_covariance=b[:, :latent_dim],
                               style_embedding=a[:, latent_dim:], style_log_covariance=b[:, latent_dim:])

    class Decoder(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.net = MLPDecoder(shape, total, hidden)

        def forward(self, u):  # (N, D + D_w) -> logits (N, *shape)
            return ModelOutput(reconstruction=self.net(u))

    enc, dec = Encoder(), Decoder()
    reset_parameters(enc, generator)
    reset_parameters(dec, generator)
    return enc, dec


def train_multivae(bundle, args, seed: int):
    from multivae_baseline import _no_distribution_validation
    from multivae_shim import import_multivae

    import_multivae()
    from multivae.data.datasets.base import DatasetOutput
    from multivae.models import MMVAEPlus, MMVAEPlusConfig

    names = list(bundle.specs)
    shapes = {m: tuple(bundle.specs[m].shape) for m in names}
    g = torch.Generator().manual_seed(seed)
    nets = {m: _multivae_networks(shapes[m], args.latent_dim, args.private_dim, args.hidden, g) for m in names}
    config = MMVAEPlusConfig(n_modalities=len(names), latent_dim=args.latent_dim, input_dims=shapes,
                             decoders_dist={m: "bernoulli" for m in names}, K=args.K,
                             modalities_specific_dim=args.private_dim,
                             prior_and_posterior_dist=args.multivae_latent)
    model = MMVAEPlus(config, encoders={m: nets[m][0] for m in names}, decoders={m: nets[m][1] for m in names})
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    x = bundle.train.modalities
    n = len(bundle.train.labels)
    order = torch.Generator().manual_seed(seed + 1)
    # multivae draws its reparameterised samples with Distribution.rsample(), which reads torch's
    # global RNG and takes no generator; to make its runs reproducible we seed the global RNG here,
    # inside fork_rng, so the state before and after this function is unchanged.
    with torch.random.fork_rng(devices=[]), _no_distribution_validation():
        torch.manual_seed(seed)
        model.train()
        for _ in range(args.epochs):
            perm = torch.randperm(n, generator=order)
            for i in range(0, n, args.batch_size):
                idx = perm[i : i + args.batch_size]
                loss = model(DatasetOutput(data={m: x[m][idx] for m in names})).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return model.eval()


def _draw(family, loc: torch.Tensor, scale: torch.Tensor, shape, generator) -> torch.Tensor:
    """Samples (*shape, D) of Normal / Laplace(loc, scale) (broadcast) from ``generator``."""
    full = (*shape, *torch.broadcast_shapes(loc.shape, scale.shape))
    if family is torch.distributions.Normal:
        return loc + scale * torch.randn(full, generator=generator)
    u = torch.rand(full, generator=generator).clamp(1e-7, 1 - 1e-7) - 0.5  # inverse CDF of the Laplace
    return loc - scale * u.sign() * torch.log1p(-2 * u.abs())


@torch.no_grad()
def multivae_generate(model, x: dict, given, targets) -> dict:
    """E[x_t | z, w_t] (sigmoid of the logits) at multivae's ``return_mean`` encoding, (N, *shape)."""
    from multivae.data.datasets.base import DatasetOutput

    out = model.predict(DatasetOutput(data={m: x[m] for m in given}), cond_mod=list(given),
                        gen_mod=list(targets), N=1, return_mean=True)
    return {t: torch.sigmoid(out[t]) for t in targets}


@torch.no_grad()
def multivae_prior_samples(model, names, n: int, generator) -> dict:
    """z ~ p(z), w_m ~ p(w_m) independently per modality (the paper's generative model), decoded."""
    D = model.latent_dim
    loc, scale = model.pz_params  # (1, D + D_w): the joint prior of (z, w)
    z = _draw(model.prior_dist, loc[0, :D], scale[0, :D], (n,), generator)
    out = {}
    for m in names:
        w = _draw(model.prior_dist, loc[0, D:], scale[0, D:], (n,), generator)
        out[m] = torch.sigmoid(model.decoders[m](torch.cat([z, w], -1)).reconstruction)
    return out


@torch.no_grad()
def multivae_log_likelihood(model, x: dict, n_samples: int, generator, batch: int = 40) -> torch.Tensor:
    """Stratified importance-sampled log p(x) per data point (N,), the estimator of
    ``mmvae.diagnostics.estimate_log_likelihood`` over the full latent u = (z, w_1..w_M):
    ceil(n_samples / M) draws from each component q_m(u) = q(z|x_m) q(w_m|x_m) prod_{n!=m} r_n(w_n),
    log w = log p(u) + sum_n log p(x_n | z, w_n) - log (1/M) sum_m' q_m'(u)."""
    names = list(x)
    M, D = len(names), model.latent_dim
    K = math.ceil(n_samples / M)
    P, Q = model.prior_dist, model.post_dist
    ploc, pscale = model.pz_params
    prior_z, prior_w = P(ploc[0, :D], pscale[0, :D]), P(ploc[0, D:], pscale[0, D:])
    aux = {m: Q(model.mean_priors[m][0], model._log_var_to_std(model.logvars_priors[m])[0]) for m in names}
    out = []
    n = len(next(iter(x.values())))
    for s in range(0, n, batch):
        xb = {m: v[s : s + batch] for m, v in x.items()}
        enc = {m: model.encoders[m](xb[m]) for m in names}
        qz = {m: Q(enc[m].embedding, model._log_var_to_std(enc[m].log_covariance)) for m in names}  # (B, D)
        qw = {m: Q(enc[m].style_embedding, model._log_var_to_std(enc[m].style_log_covariance)) for m in names}
        lws = []
        for c in names:  # component c: z and w_c from the posterior of x_c, other w_n from r_n
            z = _draw(Q, qz[c].loc, qz[c].scale, (K,), generator)  # (K, B, D)
            w = {m: _draw(Q, qw[m].loc, qw[m].scale, (K,), generator) if m == c
                 else _draw(Q, aux[m].loc, aux[m].scale, (K, z.shape[1]), generator) for m in names}
            log_q = torch.stack([qz[j].log_prob(z).sum(-1) + sum(
                (qw[m].log_prob(w[m]) if m == j else aux[m].log_prob(w[m])).sum(-1) for m in names)
                for j in names])  # (M, K, B)
            log_q_mix = torch.logsumexp(log_q, 0) - math.log(M)
            log_p = prior_z.log_prob(z).sum(-1) + sum(prior_w.log_prob(w[m]).sum(-1) for m in names)
            for m in names:
                logits = model.decoders[m](torch.cat([z, w[m]], -1).flatten(0, 1)).reconstruction
                logits = logits.view(*z.shape[:2], *logits.shape[1:])
                target = xb[m].expand_as(logits)
                log_p = log_p + (-F.binary_cross_entropy_with_logits(logits, target, reduction="none")).flatten(2).sum(-1)
            lws.append(log_p - log_q_mix)  # (K, B)
        lw = torch.cat(lws)  # (M K, B)
        out.append(torch.logsumexp(lw, 0) - math.log(lw.shape[0]))
    return torch.cat(out)


def score_multivae(model, bundle, classifiers, args, seed: int) -> dict:
    from mmvae.diagnostics import coherence_of

    names = list(bundle.specs)
    x, y = bundle.test.modalities, bundle.test.labels
    g1, g2 = [], []
    for r in (1, 2):
        for s in _subsets(names, r):
            targets = [t for t in names if t not in s]
            values = coherence_of(multivae_generate(model, x, s, targets), y, classifiers)
            (g1 if r == 1 else g2).extend(values[t] for t in targets)
    g = torch.Generator().manual_seed(seed)
    prior = multivae_prior_samples(model, names, N_PRIOR, g)
    preds = np.stack([classifiers[m].predict(prior[m].reshape(N_PRIOR, -1).double().numpy()) for m in names])
    joint = float((preds == preds[:1]).all(0).mean())
    ll = multivae_log_likelihood(model, x, args.ll_samples, g)
    return {"given1": _mean(g1), "given2": _mean(g2), "joint": joint, "loglik": float(ll.mean()),
            "w_use": w_use_multivae(model, x)}


@torch.no_grad()
def w_use_multivae(model, x: dict, n: int = STYLE_POINTS) -> float:
    """:func:`_w_use` for multivae: z_i = mean of the unimodal means of z (its ``return_mean``),
    w_t,j = the mean of q(w_t | x_t,j)."""
    names = list(x)
    enc = {m: model.encoders[m](x[m][:n]) for m in names}
    z = torch.stack([enc[m].embedding for m in names]).mean(0)  # (n, D)
    grids = []
    for t in names:
        w = enc[t].style_embedding  # (n, D_w)
        u = torch.cat([z[:, None].expand(n, n, z.shape[-1]), w[None].expand(n, n, w.shape[-1])], -1)
        logits = model.decoders[t](u.reshape(n * n, -1)).reconstruction
        grids.append(torch.sigmoid(logits).reshape(n, n, -1))
    return _w_use(grids)


# ---------------------------------------------------------------------------------- table
def _subsets(names, r):
    import itertools

    return [list(s) for s in itertools.combinations(names, r)]


def _mean(v) -> float:
    return float(sum(v) / len(v))


ROWS = (("given1", "coherence given 1 modality"), ("given2", "coherence given 2 modalities"),
        ("joint", "unconditional coherence"), ("loglik", "test log p(x0, x1, x2), nats"),
        ("w_use", "w use (x change swapping w_t / swapping z)"), ("seconds", "training seconds (loaded machine)"))


def _cell(values, key) -> str:
    v = [r[key] for r in values]
    fmt = "{:.1f}" if key in ("loglik", "seconds") else "{:.4f}" if key == "w_use" else "{:.3f}"
    return f"{fmt.format(statistics.median(v))} ({', '.join(fmt.format(a) for a in v)})"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--K", type=int, default=10)
    p.add_argument("--latent-dim", type=int, default=8)
    p.add_argument("--private-dim", type=int, default=4)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--fusion", default="moe", help="ours: poe, moe or mopoe (default moe, MMVAE+'s)")
    p.add_argument("--latent", default="gaussian", help="ours: gaussian or laplace (laplace needs moe)")
    p.add_argument("--estimator", default="dreg")
    p.add_argument("--bound", default="looser")
    p.add_argument("--cross-private", default="auxiliary", choices=["auxiliary", "prior"])
    p.add_argument("--multivae-latent", default="laplace_with_softmax",
                   choices=["laplace_with_softmax", "normal_with_softplus", "normal"])
    p.add_argument("--ll-samples", type=int, default=300, help="importance samples per test point (all components)")
    p.add_argument("--models", nargs="+", default=["mmvae", "multivae"], choices=["mmvae", "multivae"])
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    from mmvae.data import load_dataset
    from mmvae.diagnostics import classifier_accuracy, modality_classifiers

    bundle = load_dataset("digits-poly", seed=DATA_SEED)
    classifiers = modality_classifiers(bundle.train, seed=0)
    acc = classifier_accuracy(classifiers, bundle.test)
    results = {m: [] for m in args.models}
    for seed in args.seeds:
        for name in args.models:
            t0 = time.perf_counter()
            if name == "mmvae":
                model = train_ours(bundle, args, seed)
                seconds = time.perf_counter() - t0
                r = score_ours(model, bundle, classifiers, args, seed)
            else:
                model = train_multivae(bundle, args, seed)
                seconds = time.perf_counter() - t0
                with torch.no_grad():
                    r = score_multivae(model, bundle, classifiers, args, seed)
            r["seconds"] = seconds
            results[name].append(r)
            print(f"seed {seed} {name:8s} " + " ".join(f"{k}={v:.3f}" for k, v in r.items()), flush=True)
    print()
    print(f"digits-poly, D={args.latent_dim}, D_w={args.private_dim}, K={args.K}, {args.epochs} epochs, "
          f"seeds {args.seeds}; ours: fusion={args.fusion}, latent={args.latent}, {args.estimator} "
          f"{args.bound}, cross_private={args.cross_private}; multivae MMVAEPlus: {args.multivae_latent}, dreg_looser")
    print(f"classifier accuracy on real test images: "
          + ", ".join(f"{m} {a:.3f}" for m, a in acc.items()) + "; chance 0.100")
    print("median over seeds (per-seed values)")
    header = "| metric | " + " | ".join(args.models) + " |"
    print(header)
    print("|---" * (len(args.models) + 1) + "|")
    for key, label in ROWS:
        print(f"| {label} | " + " | ".join(_cell(results[m], key) for m in args.models) + " |")


if __name__ == "__main__":
    main()
