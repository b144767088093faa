"""Quality metrics of a mosaic (numpy kernels).

``seam_metric``
    Gradient energy across source transitions relative to the interior: the mean absolute
    difference between 4-neighbours whose source scenes differ, divided by the same mean over
    neighbours with the same source (per band, then averaged).  1.0 means a transition is no
    stronger than ordinary texture; a visible seam gives > 1.  Optionally the same ratio across
    given cell-edge rows/columns.
``colour_difference``
    Mean absolute difference (DN) between two scenes on the pixels clear in both, per band,
    and relative to the mean reflectance; used before and after harmonization.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["seam_metric", "edge_seam_metric", "colour_difference"]


def _pairs(a: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    if axis == 0:
        return a[:-1], a[1:]
    return a[:, :-1], a[:, 1:]


def seam_metric(bands: np.ndarray, source: np.ndarray) -> float:
    """Transition/interior gradient ratio of a composite.

    Parameters
    ----------
    bands
        ``(band, y, x)`` reflectance (0 = nodata).
    source
        ``(y, x)`` source scene per pixel (-1 = none).

    Returns
    -------
    float
        NaN when there is no transition or no interior.
    """
    num = den = 0.0
    n_t = n_i = 0
    for axis in (0, 1):
        s0, s1 = _pairs(source, axis)
        valid = (s0 >= 0) & (s1 >= 0)
        trans = valid & (s0 != s1)
        inter = valid & (s0 == s1)
        for b in range(bands.shape[0]):
            v0, v1 = _pairs(bands[b].astype("float64"), axis)
            g = np.abs(v1 - v0)
            num += g[trans].sum()
            den += g[inter].sum()
        n_t += int(trans.sum()) * bands.shape[0]
        n_i += int(inter.sum()) * bands.shape[0]
    if n_t == 0 or n_i == 0 or den == 0:
        return float("nan")
    return float((num / n_t) / (den / n_i))


def edge_seam_metric(
    bands: np.ndarray, rows: Sequence[int] = (), cols: Sequence[int] = ()
) -> float:
    """Gradient across the given row/column edges relative to all other neighbour pairs.

    Edge ``r`` of ``rows`` lies between rows ``r-1`` and ``r`` (``cols`` likewise).
    """
    valid = np.asarray((bands > 0).all(axis=0))  # an array, for the typing of the slices
    g_edge: list[np.ndarray] = []
    g_all: list[np.ndarray] = []
    for b in range(bands.shape[0]):
        v = bands[b].astype("float64")
        dy = np.abs(np.diff(v, axis=0))
        vy = valid[:-1] & valid[1:]
        dx = np.abs(np.diff(v, axis=1))
        vx = valid[:, :-1] & valid[:, 1:]
        mask_y = np.zeros_like(vy)
        for r in rows:
            if 0 < r < v.shape[0]:
                mask_y[r - 1] = True
        mask_x = np.zeros_like(vx)
        for c in cols:
            if 0 < c < v.shape[1]:
                mask_x[:, c - 1] = True
        g_edge += [dy[vy & mask_y], dx[vx & mask_x]]
        g_all += [dy[vy & ~mask_y], dx[vx & ~mask_x]]
    e = np.concatenate(g_edge)
    a = np.concatenate(g_all)
    if e.size == 0 or a.size == 0 or a.mean() == 0:
        return float("nan")
    return float(e.mean() / a.mean())


def colour_difference(
    a: np.ndarray, b: np.ndarray, clear_a: np.ndarray, clear_b: np.ndarray
) -> dict[str, float]:
    """Difference between two co-registered observations ``(band, y, x)`` on shared clear pixels.

    Returns ``{"mad": mean |a-b| in DN, "relative": mad / mean reflectance, "n": pixels}``.
    """
    ok = clear_a & clear_b & (a > 0).all(axis=0) & (b > 0).all(axis=0)
    n = int(ok.sum())
    if n == 0:
        return {"mad": float("nan"), "relative": float("nan"), "n": 0}
    da = a[:, ok].astype("float64")
    db = b[:, ok].astype("float64")
    mad = float(np.abs(da - db).mean())
    return {"mad": mad, "relative": mad / float((da + db).mean() / 2), "n": n}
