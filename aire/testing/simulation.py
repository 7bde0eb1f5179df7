"""Simulated paired 0/1 scores, shared by the statistical tests and benchmarks (one generator each,
instead of a copy per test file). Nothing in the product imports this.

Two models of "the same input is easy or hard for both arms":
- ``mixture_pairs``: the challenger's uniform draw is the champion's with probability ``keep``, a fresh
  one otherwise (simple, and what the older tests were written against);
- ``latent_pairs``: a bivariate normal latent difficulty with correlation ``rho``, thresholded at each
  arm's accuracy (the model the exact enumeration in aire.stats.paired_proportions uses).
Both draw from ``rng`` in a fixed order, so a seeded test sees the same numbers every run.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special


def mixture_pairs(
    rng: np.random.Generator, n: int | tuple[int, ...], p_a: float, p_b: float, keep: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """(champion, challenger) 0/1 scores of shape ``n``: accuracies p_a, p_b, shared draws with prob. keep."""
    u = rng.random(n)
    v = np.where(rng.random(n) < keep, u, rng.random(n))
    return (u < p_a).astype(float), (v < p_b).astype(float)


def latent_pairs(
    rng: np.random.Generator, shape: int | tuple[int, ...], p_a: float, p_b: float, rho: float
) -> tuple[np.ndarray, np.ndarray]:
    """(champion, challenger) 0/1 scores of ``shape``: latent normals with correlation ``rho``."""
    z1 = rng.standard_normal(shape)
    z2 = rho * z1 + math.sqrt(1 - rho * rho) * rng.standard_normal(shape)
    return (z1 < special.ndtri(p_a)).astype(float), (z2 < special.ndtri(p_b)).astype(float)


def tables(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Paired 0/1 scores (last axis: inputs) reduced to (both right, only a right, only b right)."""
    a, b = a.astype(bool), b.astype(bool)
    return np.stack([(a & b).sum(-1), (a & ~b).sum(-1), (~a & b).sum(-1)], axis=-1)
