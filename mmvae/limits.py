"""The documented size limits: every user-controlled size is checked against this table before
any work starts, so a bad value is a one-line error instead of unbounded memory or time.

``RANGES`` is the central range table of integer options (command line and checkpoints): name ->
(lowest, highest). ``DEFAULTS`` holds the memory limits (data size, LAS file size, parameters,
estimated memory of one training step); they can be raised for one block of code::

    with mmvae.limits.raised(max_data_bytes=8 * 2**30, max_parameters=500_000_000):
        bundle = load_dataset("big.npz")

(the command line's ``--max-data-gb``, ``--max-las-mb``, ``--max-step-gb`` and ``--max-parameters``
do this).
"""
from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar
from typing import Iterator

from .errors import ConfigError

__all__ = ["RANGES", "DEFAULTS", "current", "raised", "check_int", "MAX_LAS_HEADER_LINES"]

# name -> (lowest, highest) for integer options; the command line's help quotes these.
RANGES: dict[str, tuple[int, int]] = {
    "K": (1, 10_000),                  # importance samples per component (training)
    "eval_K": (1, 10_000),             # K of the recorded IWAE(K) curves
    "eval_Ks": (1, 100_000),           # each K of `evaluate --K`
    "n_samples": (1, 100_000),         # importance samples per point for log-likelihoods
    "latent_dim": (1, 1_024),
    "private_dim": (0, 1_024),         # private latent size per modality (MMVAE+; 0: none)
    "hidden": (1, 16_384),             # width of one hidden layer
    "hidden_layers": (0, 16),          # number of hidden layers of an MLP (0: a linear map)
    "channels": (1, 4_096),            # channels of one conv layer
    "conv_layers": (1, 8),
    "epochs": (1, 1_000_000),
    "batch_size": (1, 1_000_000),
    "samples_per_step": (1, 2_000_000),  # batch_size * K: latent samples per training step
    "modalities": (1, 16),
    "mopoe_modalities": (1, 10),       # MoPoE fuses all 2^M - 1 subsets
    "shape_axes": (1, 4),              # axes of one sample (vector, (C, L), (H, W), (C, H, W))
    "features": (1, 10_000_000),       # numbers in one sample of one modality
    "points": (0, 10_000),             # overlap points of `evaluate --points` (count)
    # dataset size options (--data-option), checked before the dataset is built
    "n": (1, 1_000_000),
    "dims": (1, 10_000),
    "length": (1, 100_000),
    "window": (1, 100_000),
    "stride": (1, 100_000),
    "n_blocks": (1, 10_000),
    "n_modalities": (1, 16),
}

MAX_LAS_HEADER_LINES = 10_000   # lines before the ~A (data) section of a LAS file
MAX_LAS_LINE_BYTES = 65_536     # one header line
MAX_ARRAYS = 64                 # arrays in one .npz file

DEFAULTS = {
    "max_data_bytes": 2 * 2**30,       # total float32 size of the arrays of one data file / dataset
    "max_las_bytes": 32 * 2**20,       # size of one LAS file: lasio needs ~30x that in memory, ~1 s per MiB
    "max_parameters": 100_000_000,     # parameters of one model (built or loaded)
    "max_step_bytes": 4 * 2**30,       # estimated memory of one training / validation step
}

_current: ContextVar[dict] = ContextVar("mmvae_limits", default=DEFAULTS)


def current() -> dict:
    """The limits in force here (:data:`DEFAULTS` unless raised by :func:`raised`)."""
    return _current.get()


@contextlib.contextmanager
def raised(**limits: int) -> Iterator[dict]:
    """Use other values of the :data:`DEFAULTS` (``max_data_bytes``, ``max_las_bytes``,
    ``max_parameters``, ``max_step_bytes``) inside the block."""
    unknown = set(limits) - set(DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown limit(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    for k, v in limits.items():
        if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise ConfigError(f"limit {k} must be a positive integer, got {v!r}")
    token = _current.set({**_current.get(), **limits})
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def check_int(name: str, value: object, where: str = "", key: str | None = None, error: type = ConfigError) -> int:
    """``value`` as an int inside ``RANGES[key or name]``, else a :class:`ConfigError` naming
    ``where`` (an option such as ``--latent-dim``) and the allowed range (``error``: the type raised)."""
    lo, hi = RANGES[key or name]
    label = where or name
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not (math.isfinite(value) and value.is_integer())):
        raise error(f"{label} must be an integer from {lo:,} to {hi:,}, got {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise error(f"{label} must be from {lo:,} to {hi:,}, got {v:,}"
                          + (" (a documented limit; see README 'Bad input')" if v > hi else ""))
    return v
