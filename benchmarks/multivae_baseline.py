"""Baseline side of the mmvae-vs-multivae benchmarks (multivae 1.0.3, PyPI).

Two measurements on the digits-halves task (sklearn 8x8 digits, top half
rows 0-3 and bottom half rows 4-7 as two 32-dim modalities):

* ``multivae_train_throughput``: training samples/s of a plain Adam loop
  around ``model(inputs).loss``;
* ``multivae_loglik_seconds``: wall time of multivae's
  ``LikelihoodsEvaluator`` (joint log-likelihood, K importance samples) on
  the 360-image test split.

Nothing here runs at import time.  multivae is imported lazily through
``multivae_shim.import_multivae`` (CPU torch vs torchvision op mismatch).

Notes on multivae's objectives (read from its 1.0.3 source):

* MVAE (``MVAEConfig``): with 2 modalities and ``use_subsampling=True``
  (default) the loss is joint ELBO + the two unimodal ELBOs, each with one
  reparameterised sample (K=1) and an analytic Gaussian KL; the PoE
  includes the N(0, I) prior expert.  ``k`` random subsets are forced to 0
  for <= 2 modalities.  KL annealing: beta = (epoch-1+batch_ratio)/warmup
  until ``epoch >= warmup``; a bare ``model(inputs)`` call means epoch=1,
  i.e. beta = 0, so we build it with ``warmup=0`` to get the full ELBO.
  The loss is a mean over the batch.
* MoPoE (``MoPoEConfig``): subsets {x1}, {x2}, {x1,x2} (the full PoE adds
  the prior expert); one sample per datapoint (K=1), the batch is split
  deterministically into equal chunks, one chunk per subset; KL is the
  weight-averaged sum of per-subset Gaussian KLs.  Mean over the batch.
* MMVAE (``MMVAEConfig``): K samples from *each* unimodal expert
  (stratified), every sample decoded into both modalities; importance
  weights use the mixture density; ``loss="dreg_looser"`` (default) is the
  DReG-gradient version of the looser IWAE bound (mean over experts
  outside the log); ``"iwae_looser"`` is the plain one.  Laplace posterior
  / learned Laplace prior with softmax scales by default.  Sum over batch.
"""

import contextlib
import statistics
import time

import numpy as np

from multivae_shim import import_multivae

MODALITIES = ("top", "bottom")
HALF_DIM = 32
HIDDEN = 128
N_IMAGES = 1797
N_TRAIN = 1077
N_VAL = 360

FUSIONS = {"poe": "MVAE", "moe": "MMVAE", "mopoe": "MoPoE"}


# --------------------------------------------------------------------------
# data


def digits_halves(seed=0):
    """Digits split into top/bottom halves, scaled to [0, 1].

    Returns ``(train_top, train_bottom, test_top, test_bottom)`` as float32
    numpy arrays of shapes (1077, 32) and (360, 32).  The permutation is
    ``np.random.default_rng(seed).permutation(1797)``: first 1077 train,
    next 360 validation (unused here), last 360 test.
    """
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) / 16.0  # (1797, 8, 8)
    top = images[:, 0:4, :].reshape(len(images), HALF_DIM)
    bottom = images[:, 4:8, :].reshape(len(images), HALF_DIM)

    rng = np.random.default_rng(seed)
    perm = rng.permutation(N_IMAGES)
    train = perm[:N_TRAIN]
    test = perm[N_TRAIN + N_VAL:]
    return top[train], bottom[train], top[test], bottom[test]


@contextlib.contextmanager
def _no_distribution_validation():
    """multivae scores Bernoulli logits with ``dist.Bernoulli(...).log_prob``,
    which rejects non-binary targets (pixels/16) when argument validation
    is on (torch's default).  Switch validation off for the benchmark."""
    import torch.distributions as D

    previous = D.Distribution._validate_args
    D.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        D.Distribution.set_default_validate_args(previous)


# --------------------------------------------------------------------------
# model


def _architectures(latent_dim):
    """Encoder/decoder classes built on pythae's BaseEncoder/BaseDecoder."""
    import torch.nn as nn
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder

    class HalfEncoder(BaseEncoder):
        """32 -> 128 -> 128 -> (mu, log_var) of size latent_dim."""

        def __init__(self):
            BaseEncoder.__init__(self)
            self.latent_dim = latent_dim
            self.body = nn.Sequential(
                nn.Linear(HALF_DIM, HIDDEN), nn.ReLU(),
                nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
            )
            self.mu = nn.Linear(HIDDEN, latent_dim)
            self.log_var = nn.Linear(HIDDEN, latent_dim)

        def forward(self, x):
            h = self.body(x)
            return ModelOutput(embedding=self.mu(h), log_covariance=self.log_var(h))

    class HalfDecoder(BaseDecoder):
        """latent_dim -> 128 -> 128 -> 32 Bernoulli logits."""

        def __init__(self):
            BaseDecoder.__init__(self)
            self.net = nn.Sequential(
                nn.Linear(latent_dim, HIDDEN), nn.ReLU(),
                nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                nn.Linear(HIDDEN, HALF_DIM),
            )

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z))

    return HalfEncoder, HalfDecoder


def make_multivae_model(fusion, K, latent_dim=8, mmvae_loss="dreg_looser",
                        mmvae_latent="laplace_with_softmax"):
    """Build multivae's model for ``fusion`` in {"poe", "moe", "mopoe"}.

    poe -> MVAE, moe -> MMVAE, mopoe -> MoPoE; two 32-dim modalities,
    Bernoulli decoders (logits).  Only MMVAE has an importance-sample count
    (``MMVAEConfig.K``, DReG by default); MVAE and MoPoE have no K option
    and always train a K=1 objective, so ``K`` is ignored for them.
    """
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {sorted(FUSIONS)}, got {fusion!r}")
    import_multivae()
    from multivae.models import MMVAE, MVAE, MMVAEConfig, MoPoE, MoPoEConfig, MVAEConfig

    common = dict(
        n_modalities=len(MODALITIES),
        latent_dim=latent_dim,
        input_dims={m: (HALF_DIM,) for m in MODALITIES},
        decoders_dist={m: "bernoulli" for m in MODALITIES},
    )
    if fusion == "poe":
        model_cls, config = MVAE, MVAEConfig(**common, warmup=0)
    elif fusion == "moe":
        model_cls = MMVAE
        config = MMVAEConfig(**common, K=int(K), loss=mmvae_loss,
                             prior_and_posterior_dist=mmvae_latent)
    else:
        model_cls, config = MoPoE, MoPoEConfig(**common)

    encoder_cls, decoder_cls = _architectures(latent_dim)
    encoders = {m: encoder_cls() for m in MODALITIES}
    decoders = {m: decoder_cls() for m in MODALITIES}
    return model_cls(config, encoders=encoders, decoders=decoders)


# --------------------------------------------------------------------------
# benchmarks


def _train_tensors(seed=0):
    import torch

    tr_top, tr_bottom, _, _ = digits_halves(seed)
    return torch.from_numpy(tr_top), torch.from_numpy(tr_bottom)


def _run_steps(model, optimizer, top, bottom, batch_size, n_steps, start):
    """Run ``n_steps`` optimisation steps over consecutive slices."""
    from multivae.data.datasets.base import DatasetOutput

    n = len(top)
    pos = start
    for _ in range(n_steps):
        if pos + batch_size > n:
            pos = 0
        batch = DatasetOutput(data={"top": top[pos:pos + batch_size],
                                    "bottom": bottom[pos:pos + batch_size]})
        pos += batch_size
        optimizer.zero_grad(set_to_none=True)
        loss = model(batch).loss
        loss.backward()
        optimizer.step()
    return pos


def multivae_train_throughput(fusion, K, n_steps=200, batch_size=128, lr=1e-3,
                              threads=1, warmup_steps=20, repeats=3, seed=0):
    """Training samples/s of multivae's ``fusion`` model (median of repeats).

    Each repeat builds a fresh model and Adam optimiser, runs
    ``warmup_steps`` untimed steps, then times ``n_steps`` steps of
    batch ``batch_size`` (contiguous slices of the 1077 training images,
    wrapping around).  Throughput = n_steps * batch_size / seconds.
    """
    import torch

    torch.set_num_threads(threads)
    import_multivae()
    top, bottom = _train_tensors(seed)
    rates = []
    with _no_distribution_validation():
        for rep in range(repeats):
            torch.manual_seed(seed + rep)
            np.random.seed(seed + rep)
            model = make_multivae_model(fusion, K)
            model.train()
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            pos = _run_steps(model, optimizer, top, bottom, batch_size, warmup_steps, 0)
            t0 = time.perf_counter()
            _run_steps(model, optimizer, top, bottom, batch_size, n_steps, pos)
            elapsed = time.perf_counter() - t0
            rates.append(n_steps * batch_size / elapsed)
    return statistics.median(rates)


def multivae_loglik_seconds(fusion, K=1000, threads=1, train_steps=50,
                            repeats=3, seed=0, batch_size=512, batch_size_k=100):
    """Seconds for multivae's ``LikelihoodsEvaluator`` joint log-likelihood.

    The model is trained briefly (``train_steps`` Adam steps) so the
    posteriors are not at initialisation; then the evaluator's
    ``joint_nll()`` (what ``eval()`` runs, without the wandb hook) is timed
    on the 360 test images with ``num_samples=K`` and its default
    ``batch_size`` 512 / ``batch_size_k`` 100 (``unified_implementation``
    True).  The evaluator is built outside the timed region.  Returns the
    median over ``repeats`` and stores the last NLL in
    ``multivae_loglik_seconds.last_nll``.
    """
    import logging

    import torch

    torch.set_num_threads(threads)
    import_multivae()
    from multivae.data.datasets.base import MultimodalBaseDataset
    from multivae.metrics import LikelihoodsEvaluator, LikelihoodsEvaluatorConfig

    _, _, te_top, te_bottom = digits_halves(seed)
    test = MultimodalBaseDataset(data={"top": torch.from_numpy(te_top),
                                       "bottom": torch.from_numpy(te_bottom)})
    config = LikelihoodsEvaluatorConfig(batch_size=batch_size, num_samples=int(K),
                                        batch_size_k=batch_size_k)
    times = []
    with _no_distribution_validation():
        torch.manual_seed(seed)
        np.random.seed(seed)
        model = make_multivae_model(fusion, 1)
        if train_steps:
            top, bottom = _train_tensors(seed)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            model.train()
            _run_steps(model, optimizer, top, bottom, 128, train_steps, 0)
        for _ in range(repeats):
            evaluator = LikelihoodsEvaluator(model, test, eval_config=config)
            evaluator.logger.setLevel(logging.WARNING)  # it logs the mean NLL
            t0 = time.perf_counter()
            nll = evaluator.joint_nll()
            times.append(time.perf_counter() - t0)
            evaluator.finish()
    multivae_loglik_seconds.last_nll = float(nll)
    return statistics.median(times)
