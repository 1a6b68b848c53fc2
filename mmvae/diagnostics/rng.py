"""Explicit random number generators for the diagnostics.

Every diagnostic that samples takes a ``seed`` and draws from its own ``torch.Generator`` on the
model's device, passed down to the samplers (``Posterior.rsample(..., generator=)``,
``objective(..., generator=)``, ``model.generate(..., generator=)``). Torch's global generators,
CPU and CUDA, are never read or reseeded, so a diagnostic neither depends on nor changes what
ran before it (``torch.random.fork_rng(devices=[])``, used before, left the CUDA state shared).
"""
from __future__ import annotations

import torch

__all__ = ["seeded_generator"]


def seeded_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``; ``seed=None`` seeds it from the operating
    system's entropy (a fresh, not reproducible stream)."""
    g = torch.Generator(device=torch.device(device))
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g
