"""utils/clustering.py: k-means++ seeding."""
from __future__ import annotations

import numpy as np

from utils.clustering import kmeans_plus_plus


def _sq(points: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return ((points - centre) ** 2).sum(axis=1)


def test_seeds_are_rows_deterministic_and_spread_over_clusters():
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(c, 0.01, size=(50, 2)) for c in ((0, 0), (10, 0), (0, 10))])
    first = kmeans_plus_plus(blobs, 3, np.random.default_rng(4), _sq)
    assert np.array_equal(first, kmeans_plus_plus(blobs, 3, np.random.default_rng(4), _sq))
    assert all(any(np.array_equal(c, row) for row in blobs) for c in first)
    # far-apart blobs: the squared-distance weighting puts one seed in each (chance of failure ~1e-5)
    assert sorted(np.round(first / 10).astype(int).tolist()) == [[0, 0], [0, 1], [1, 0]]


def test_points_all_on_one_centre_fall_back_to_uniform_choice():
    same = np.ones((5, 3))
    seeds = kmeans_plus_plus(same, 3, np.random.default_rng(0), _sq)
    assert seeds.shape == (3, 3) and np.all(seeds == 1.0)
