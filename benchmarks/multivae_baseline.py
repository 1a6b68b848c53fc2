"""Baseline side of the mmvae-vs-multivae benchmarks (multivae 1.0.3, PyPI).

The digits-halves task (sklearn 8x8 digits, top half rows 0-3 and bottom
half rows 4-7 as two 32-dim modalities) and multivae's models for it, for
``train_throughput.py`` and ``loglik_speed.py`` (which time them interleaved
with mmvae and the floor, see ``harness.py``).

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
