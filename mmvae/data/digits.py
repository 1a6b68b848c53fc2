"""Digit datasets built from scikit-learn's bundled 8x8 digits (1,797 images, no download).

``digits-halves``: the top half (rows 0-3) and the bottom half (rows 4-7) of the same image.

``digits-poly`` (in the spirit of PolyMNIST, Sutter et al. 2021): each sample is a tuple of
*different* handwritten images of the same digit, one per modality, each drawn in a
modality-specific style (plain; inverted; over a random crop of a fixed blotchy texture; over
shifted stripes; shifted by one pixel over a checkerboard). Modalities share only the class;
the style and the handwriting are private to each modality.

Pixels are in [0, 1] (Bernoulli likelihood). The 1,797 source images are split first (1,077
train, 360 validation, 360 test), and the poly tuples are built inside each split, so test images
never appear in training.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["load_digit_images", "digit_split", "halves", "poly_tuples", "N_TRAIN", "N_VAL", "N_TEST"]

N_TRAIN, N_VAL, N_TEST = 1077, 360, 360


@lru_cache(maxsize=1)
def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float32 in [0, 1], labels (1797,) int64).

    Reads scikit-learn's bundled ``digits.csv.gz`` (the data of ``load_digits``) directly: finding
    the file does not import scikit-learn, which alone takes about a second.
    """
    import importlib.util
    import os

    spec = importlib.util.find_spec("sklearn")
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") if spec else ""
    if os.path.exists(path):
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
        pixels, target = table[:, :-1], table[:, -1]
    else:  # a scikit-learn that stores the file elsewhere: use its loader
        from sklearn.datasets import load_digits

        d = load_digits()
        pixels, target = d.data, d.target
    images = (pixels.reshape(-1, 8, 8) / 16.0).astype(np.float32)
    images.setflags(write=False)
    labels = target.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def digit_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint train / val / test indices into the 1,797 images (1,077 / 360 / 360)."""
    perm = np.random.default_rng(seed).permutation(N_TRAIN + N_VAL + N_TEST)
    return perm[:N_TRAIN], perm[N_TRAIN : N_TRAIN + N_VAL], perm[N_TRAIN + N_VAL :]


def halves(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top (rows 0-3) and bottom (rows 4-7) halves, each (N, 1, 4, 8)."""
    return images[:, None, :4, :].copy(), images[:, None, 4:, :].copy()


def _texture(m: int) -> np.ndarray:
    """A fixed 16x16 periodic background for style ``m`` (independent of the data seed)."""
    rng = np.random.default_rng(777 + m)
    if m == 2:  # smooth blotches
        t = rng.uniform(0, 1, (16, 16))
        for _ in range(2):
            t = (t + np.roll(t, 1, 0) + np.roll(t, -1, 0) + np.roll(t, 1, 1) + np.roll(t, -1, 1)) / 5
        t = (t - t.min()) / (t.max() - t.min())
        return 0.6 * t
    if m == 3:  # diagonal stripes
        i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
        return 0.45 * (((i + j) // 2) % 2).astype(float)
    # checkerboard
    i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    return 0.3 * ((i + j) % 2).astype(float)


def stylise(images: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Apply modality ``m``'s style to images (N, 8, 8) in [0, 1]; returns (N, 1, 8, 8)."""
    n = images.shape[0]
    if m == 0:
        out = images
    elif m == 1:
        out = 1.0 - images
    else:
        tex = _texture(m)
        oi = rng.integers(0, 8, n)
        oj = rng.integers(0, 8, n)
        rows = (oi[:, None] + np.arange(8)[None, :]) % 16
        cols = (oj[:, None] + np.arange(8)[None, :]) % 16
        bg = tex[rows[:, :, None], cols[:, None, :]]
        x = images if m != 4 else np.roll(images, 1, axis=2)
        out = np.maximum(x, bg)
    return np.clip(out, 0.0, 1.0).astype(np.float32)[:, None]


def poly_tuples(idx: np.ndarray, labels: np.ndarray, n_modalities: int, rng: np.random.Generator
                ) -> np.ndarray:
    """For each image index in ``idx`` one tuple of ``n_modalities`` distinct image indices of the
    same class, all from ``idx``; modality 0 is the image itself. Returns (len(idx), M)."""
    out = np.empty((len(idx), n_modalities), dtype=np.int64)
    lab = labels[idx]
    for c in np.unique(lab):
        pos = np.flatnonzero(lab == c)
        order = rng.permutation(len(pos))
        k = len(pos)
        if k < n_modalities:
            offsets = np.arange(n_modalities) % k
        else:
            offsets = np.concatenate([[0], 1 + rng.choice(k - 1, n_modalities - 1, replace=False)])
        for m in range(n_modalities):
            out[pos[order], m] = idx[pos[order[(np.arange(k) + offsets[m]) % k]]]
    return out
