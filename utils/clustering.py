"""k-means++ seeding, shared by the GMM prior fit (Euclidean) and the retrieval clusters (cosine)."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator,
                     distance: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """k-means++ seeding: the first centre uniformly, each next one with probability proportional to the distance of a
    point to its nearest centre so far (uniformly when every point sits on a centre).

    Args:
        x: [N, D] points, N >= k.
        k: number of centres.
        rng: the only randomness.
        distance: (points [N, D], one centre [D]) -> [N] non-negative distances (e.g. squared Euclidean, 1 - cos).
    Returns:
        [k, D] centres, rows of `x`.
    """
    assert x.ndim == 2 and 1 <= k <= len(x), (x.shape, k)
    centres = [x[rng.integers(len(x))]]
    dist = distance(x, centres[0])  # [N] to the nearest centre so far
    for _ in range(1, k):
        total = dist.sum()
        centres.append(x[rng.choice(len(x), p=dist / total)] if total > 0 else x[rng.integers(len(x))])
        dist = np.minimum(dist, distance(x, centres[-1]))
    return np.stack(centres)
