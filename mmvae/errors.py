"""One error type per layer, each with a one-line message naming the file (if any) and the problem.

Every type is a :class:`ValueError` (so ``except ValueError`` keeps working) through
:class:`MmvaeError`; the command line prints any of them as ``mmvae: error: MESSAGE`` and exits
with status 2 (``--debug`` shows the traceback instead).

- :class:`DataError`: a dataset, a data file (npz, LAS) or a dataset option is malformed or too big.
- :class:`CheckpointError`: a checkpoint is missing, corrupt, foreign, or its configuration does
  not fit its weights or the size limits.
- :class:`ConfigError`: an option value (command line or Python) is out of range or inconsistent;
  :data:`OptionError` is the same type.
- :class:`TrainingError`: training diverged (non-finite loss, gradient or weights); the result was
  not saved over an existing checkpoint.

The types are re-exported where they were defined before (``mmvae``, ``mmvae.data``,
``mmvae.checkpoint``), so existing imports keep working.
"""
from __future__ import annotations

__all__ = ["MmvaeError", "DataError", "CheckpointError", "ConfigError", "OptionError", "TrainingError"]


class MmvaeError(ValueError):
    """Base of every error a user can cause; the message is one line."""


class DataError(MmvaeError):
    """Raised for malformed data; the message names the file (if any) and the problem."""


class CheckpointError(MmvaeError):
    """A checkpoint that cannot be read: missing, corrupt, truncated, foreign, mismatched or too big."""


class ConfigError(MmvaeError):
    """An option value out of its documented range, or options that contradict each other."""


OptionError = ConfigError


class TrainingError(MmvaeError):
    """Training diverged or ended with non-finite weights; nothing good was overwritten."""
