"""A seeded generator of interleaved Archimedean spirals."""

from __future__ import annotations

import numpy as np


def make_spirals(n_samples=2000, n_arms=2, noise=0.2, *, turns=1.5, seed=0):
    """Points on ``n_arms`` interleaved Archimedean spirals (r = a * theta).

    Arm k is the spiral rotated by 2*pi*k/n_arms. Angles are drawn so that
    points are spread evenly along each arm's length; Gaussian noise of
    standard deviation ``noise * spacing`` is added, where spacing is the
    radial gap between neighbouring arms, so ``noise`` near 1 makes arms
    overlap whatever n_arms and turns are.

    Args:
        n_samples: total number of points, split as evenly as possible
            across the arms.
        n_arms: number of arms (classes), at least 2.
        noise: noise relative to the gap between arms, >= 0.
        turns: how many times each arm winds around the centre.
        seed: seed of the NumPy generator; the same seed gives the same data.

    Returns:
        ``(x, y)``: float32 array (n_samples, 2) with radius <= 1 + noise,
        and int32 arm ids in [0, n_arms).
    """
    if n_arms < 2:
        raise ValueError(f"n_arms must be >= 2, got {n_arms}.")
    if n_samples < n_arms:
        raise ValueError(f"n_samples must be >= n_arms, got {n_samples}.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    if turns <= 0:
        raise ValueError(f"turns must be > 0, got {turns}.")
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % n_arms
    max_theta = 2 * np.pi * turns
    # Uniform in arc length for r ~ theta: theta ~ sqrt(uniform).
    theta = np.sqrt(rng.uniform(0.0, 1.0, n_samples)) * max_theta
    radius = theta / max_theta
    angle = theta + 2 * np.pi * y / n_arms
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    spacing = 1.0 / (turns * n_arms)
    x += rng.normal(0.0, noise * spacing, size=x.shape)
    order = rng.permutation(n_samples)
    return x[order].astype(np.float32), y[order].astype(np.int32)
