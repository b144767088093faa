"""Seeded randomness of the synthetic sample scene: random streams, hashes and noise fields.

Every random choice of :mod:`s2cube.testing` draws from its own stream (``seed`` plus a stream
identifier), so adding a field never changes the others, and every noise field is defined in
local metres rather than per tile, so both tiles of the sample see the same values where they
overlap.  Numpy and scipy only.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = [
    "STREAM_DARK",
    "STREAM_DATE",
    "STREAM_EDGE",
    "STREAM_FOREST",
    "STREAM_FOREST2",
    "STREAM_ITEM",
    "STREAM_LAYOUT",
    "STREAM_MEANDER",
    "STREAM_TEX",
    "STREAM_TEX2",
    "NoiseField",
    "hash01",
    "hash_salt",
    "stream_rng",
]

# Random-stream identifiers (so that adding a field never changes the others).
(
    STREAM_LAYOUT,
    STREAM_FOREST,
    STREAM_FOREST2,
    STREAM_EDGE,
    STREAM_TEX,
    STREAM_TEX2,
    STREAM_DARK,
    STREAM_MEANDER,
) = range(1, 9)
STREAM_DATE = 1000  # + 100 * date index + k
STREAM_ITEM = 50_000  # + 10 * date index + tile index


def stream_rng(seed: int, *stream: int) -> np.random.Generator:
    """The generator of one random stream: ``seed`` and the stream identifier(s)."""
    return np.random.default_rng([seed, *stream])


def hash01(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """A uniform [0, 1) value per integer pair (splitmix64), vectorised and platform-exact."""
    m64 = (1 << 64) - 1
    shape = np.shape(i)
    # at least 1-d: numpy warns about wrapping in scalar (0-d) arithmetic, never in arrays
    i64 = np.atleast_1d(np.asarray(i, dtype=np.int64)).view(np.uint64)
    j64 = np.atleast_1d(np.asarray(j, dtype=np.int64)).view(np.uint64)
    x = (i64 * np.uint64(0x9E3779B97F4A7C15)) ^ (j64 * np.uint64(0xC2B2AE3D27D4EB4F))
    x ^= np.uint64(salt & m64)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return ((x >> np.uint64(11)).astype(np.float64) / float(1 << 53)).reshape(shape)


def hash_salt(seed: int, k: int) -> int:
    """The 64-bit salt of :func:`hash01` for hash ``k`` of a scene made with ``seed``."""
    mixed = seed * 0x2545F4914F6CDD1D + k * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
    return mixed & ((1 << 64) - 1)


class NoiseField:
    """Gaussian-filtered white noise on a lattice over the scene, sampled bilinearly.

    Standardised to zero mean and unit variance.  Values depend only on the lon/lat of the
    sample point, so all tiles see the same field.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        domain: tuple[float, float, float, float],
        scale_m: float,
        min_spacing: float,
    ) -> None:
        e0, e1, n0, n1 = domain
        self.spacing = max(scale_m / 2.5, min_spacing)
        nx = int(math.ceil((e1 - e0) / self.spacing)) + 2
        ny = int(math.ceil((n1 - n0) / self.spacing)) + 2
        grid = ndimage.gaussian_filter(
            rng.standard_normal((ny, nx)), scale_m / self.spacing, mode="wrap"
        )
        grid -= grid.mean()
        grid /= grid.std()
        self.grid = grid
        self.e0, self.n0 = e0, n0

    def __call__(self, e: np.ndarray, n: np.ndarray) -> np.ndarray:
        coords = np.stack(
            [((n - self.n0) / self.spacing).ravel(), ((e - self.e0) / self.spacing).ravel()]
        )
        out = ndimage.map_coordinates(self.grid, coords, order=1, mode="nearest")
        return out.reshape(np.shape(e))
