"""Hole filling kernels (numpy in, numpy out): donors from other dates, classical inpainting.

A *hole* is a pixel of a composite with no clear observation in its period.  Holes are filled
in two steps, and every filled pixel says how (:data:`FILL_CODES`):

1. :func:`fill_from_donors`: holes are grouped into components (holes closer than ``merge``
   pixels share one component); for each component, donors (other dates, in the caller's
   order: nearest period first) are tried in turn.  A donor's radiometry is fitted band by band
   to the composite on the *ring* of observed pixels around the component that the donor also
   sees clear (:func:`s2cube.harmonize.radiometry.fit_linear`, robust gain/offset), and the fit
   error (RMSE of the fitted donor on that ring, reflectance) decides: a donor that is hazy
   (SCL can call haze clear), changed (harvest, flood) or misregistered fits badly and is
   rejected.  Accepted donors fill the component's pixels they see clear, with their fitted
   transfers: nearest period first, and within a period the best-fitting donor first; what one
   donor leaves, the next one may fill.  A component with nothing observed around it takes its
   first donor as it is and fits each next one to what the earlier ones filled.
2. :func:`inpaint`: spatial inpainting of what no donor could fill (OpenCV Telea on uint16, or
   scikit-image's biharmonic): a guess from the neighbourhood, never an observation.

These kernels know nothing about dates and scenes; :func:`s2cube.fill.fill_holes` carries
provenance (date, scene, ``fill`` code) around them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import require
from ..harmonize.radiometry import IDENTITY, apply_knots, fit_linear
from ..mask import dilate_disk

__all__ = [
    "FILL_NONE",
    "FILL_OBSERVED",
    "FILL_DONOR",
    "FILL_INPAINTED",
    "FILL_CODES",
    "DonorFit",
    "hole_components",
    "fill_from_donors",
    "inpaint",
    "fill_codes",
]

FILL_NONE, FILL_OBSERVED, FILL_DONOR, FILL_INPAINTED = 0, 1, 2, 3
#: meaning of each ``fill`` code (stored as the variable's ``flag_values``/``flag_meanings``)
FILL_CODES = {
    FILL_NONE: "none",
    FILL_OBSERVED: "observed_in_period",
    FILL_DONOR: "donor_from_other_period",
    FILL_INPAINTED: "inpainted",
}


@dataclasses.dataclass(frozen=True)
class DonorFit:
    """One donor tried on one hole component."""

    component: int
    donor: int
    n_ring: int
    rmse: float
    """RMSE (reflectance, all bands) of the fitted donor on the ring; NaN when not fitted."""
    accepted: bool
    reason: str
    """``"ok"``, ``"no ring: unfitted"`` (accepted without a fit: the composite observed too
    few pixels around the component, e.g. a cell the period never saw clear), ``"no clear
    pixels in the hole"``, ``"ring too small"`` (this donor shares too little of the ring),
    ``"degenerate fit"`` or ``"fit error"``."""
    n_filled: int


def hole_components(hole: np.ndarray, merge: int = 2) -> tuple[np.ndarray, int]:
    """Label holes into components; holes within ``merge`` pixels share one label.

    Returns ``(labels, n)``: ``labels`` is int32, 0 outside holes, 1..n on hole pixels.

    >>> h = np.zeros((1, 9), bool); h[0, [1, 3, 8]] = True
    >>> hole_components(h, merge=1)[0].tolist()
    [[0, 1, 0, 1, 0, 0, 0, 0, 2]]
    """
    from scipy import ndimage

    hole = np.asarray(hole, dtype=bool)
    grown = dilate_disk(hole, merge) if merge > 0 else hole
    labels, n = ndimage.label(grown, structure=np.ones((3, 3), bool))
    return np.where(hole, labels, 0).astype("int32"), int(n)


def fill_from_donors(
    bands: np.ndarray,
    observed: np.ndarray,
    donors: np.ndarray,
    donor_clear: np.ndarray,
    *,
    ring: int = 8,
    gap: int = 2,
    merge: int = 2,
    max_fit_rmse: float = 0.015,
    min_ring: int = 50,
    rank: np.ndarray | None = None,
    domain: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[DonorFit]]:
    """Fill the holes of a composite from donor dates fitted to the pixels around each hole.

    Parameters
    ----------
    bands
        ``(band, y, x)`` uint16 composite (reflectance × 10000, 0 = nodata).
    observed
        ``(y, x)`` bool: pixels the composite observed (everything else is a hole).
    donors
        ``(donor, band, y, x)`` uint16 candidate dates.
    donor_clear
        ``(donor, y, x)`` bool: where each donor sees the surface clear.
    ring
        Width (pixels) of the ring of observed pixels around a hole that the fit uses.
    gap
        The ring leaves out the observed pixels within ``gap`` of the hole: the edge of a cloud
        the composite did see past is where its own pixels are least trustworthy.
    merge
        Holes closer than this share one component (and one fit).
    max_fit_rmse
        A donor whose fitted RMSE on the ring (reflectance, all bands) exceeds this is rejected.
    min_ring
        Fewest ring pixels (observed in the composite and clear in the donor) to fit on.  A
        component whose ring has fewer observed pixels than this *in the composite itself*
        (nothing to fit to: the period saw none of it or its surroundings clear) takes its
        donors unfitted (identity transfer), nearest period first and, within a period, the
        donor clear over most of the component first; no fit error can reject a hazy donor
        there, only its mask.  Each donor after the first is fitted to the pixels the donors
        before it filled ``gap``..``ring`` px from its own (at least ``min_ring`` of them, fit
        RMSE within ``2 * max_fit_rmse``; otherwise it too comes unfitted), so donors meet
        with a smaller step.
    rank
        ``(donor,)`` int: donors of a lower rank fill first (the period distance: 1 = the
        periods right before/after, 2 = the next ones…); within one rank the donor with the
        smallest fit error fills first.  Default: all donors one rank.
    domain
        ``(y, x)`` bool: the pixels that may be filled (default: all).  Pixels outside it are
        neither observed nor holes (e.g. cells outside the run around a cell read with a halo):
        they join no component and no ring.

    Returns
    -------
    filled, source, fits
        ``filled`` (band, y, x) uint16: ``bands`` with donor pixels written into holes;
        ``source`` (y, x) int32: index of the donor that filled each pixel, -1 elsewhere;
        ``fits``: every donor tried on every component (:class:`DonorFit`).
    """
    from scipy import ndimage

    bands = np.asarray(bands)
    observed = np.asarray(observed, dtype=bool) & (bands > 0).all(axis=0)
    donors = np.asarray(donors)
    donor_clear = np.asarray(donor_clear, dtype=bool) & (donors > 0).all(axis=1)
    if donors.shape[1:] != bands.shape or donor_clear.shape != (donors.shape[0], *bands.shape[1:]):
        raise ValueError(
            f"donors {donors.shape} / donor_clear {donor_clear.shape} do not match bands "
            f"{bands.shape}"
        )
    nan = float("nan")
    rank = np.zeros(donors.shape[0], "int64") if rank is None else np.asarray(rank)
    filled = bands.copy()
    source = np.full(bands.shape[1:], -1, dtype="int32")
    fits: list[DonorFit] = []
    hole_mask = ~observed if domain is None else ~observed & np.asarray(domain, dtype=bool)
    labels, n = hole_components(hole_mask, merge)
    ny, nx = observed.shape
    pad = max(ring, gap) + 1
    for comp, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        ys = slice(max(sl[0].start - pad, 0), min(sl[0].stop + pad, ny))
        xs = slice(max(sl[1].start - pad, 0), min(sl[1].stop + pad, nx))
        hole = labels[ys, xs] == comp
        around = dilate_disk(hole, ring) & ~dilate_disk(hole, gap) & observed[ys, xs]
        target = bands[:, ys, xs]
        left = hole.copy()
        tried: list[tuple[int, float, int, list]] = []
        # a component with no observed ring at all (a cell or region the period never saw
        # clear) has nothing to fit to: its donors are taken as they are, unfitted, those
        # that see more of it clear first (a donor clear over more of it is less likely hazy)
        unfitted = int(around.sum()) < min_ring
        for d in range(donors.shape[0]):
            clear = donor_clear[d, ys, xs]
            if not (left & clear).any():
                fits.append(DonorFit(comp, d, 0, nan, False, "no clear pixels in the hole", 0))
                continue
            if unfitted:
                tried.append((d, -float((hole & clear).sum()), 0, [IDENTITY] * len(bands)))
                continue
            shared = around & clear
            n_ring = int(shared.sum())
            if n_ring < min_ring:
                fits.append(DonorFit(comp, d, n_ring, nan, False, "ring too small", 0))
                continue
            fit = _fit_bands(donors[d][:, ys, xs][:, shared], target[:, shared])
            if fit is None:
                fits.append(DonorFit(comp, d, n_ring, nan, False, "degenerate fit", 0))
                continue
            knots, rmse = fit
            if rmse > max_fit_rmse:
                fits.append(DonorFit(comp, d, n_ring, rmse, False, "fit error", 0))
                continue
            tried.append((d, rmse, n_ring, knots))
        # nearest rank (period) first; within a rank, the donor that fits best first
        for d, rmse, n_ring, knots in sorted(tried, key=lambda r: (rank[r[0]], r[1])):
            take = left & donor_clear[d, ys, xs]
            win = filled[:, ys, xs]
            donor = donors[d][:, ys, xs]
            reason = "ok"
            if unfitted:
                reason, rmse = "no ring: unfitted", nan
                # nothing observed to fit to, but the donors that filled part of the
                # component already are: fit this one to them, so the two meet without a step
                chained = _fit_to_filled(
                    donor, win, take, hole & ~left & donor_clear[d, ys, xs], ring, gap, min_ring
                )
                # two clear dates differ more than a date and the composite it is fitted to;
                # beyond twice the limit they disagree (snow, flood): leave the donor as it is
                if chained is not None and chained[1] <= 2 * max_fit_rmse:
                    knots, rmse, n_ring = chained
                    reason = "fitted to an earlier donor"
            if take.any():
                for b, k in enumerate(knots):
                    win[b][take] = apply_knots(donor[b][take], k)
                source[ys, xs][take] = d
                left &= ~take
            fits.append(DonorFit(comp, d, n_ring, rmse, True, reason, int(take.sum())))
    return filled, source, fits


def _fit_to_filled(
    donor: np.ndarray,
    filled: np.ndarray,
    take: np.ndarray,
    earlier: np.ndarray,
    ring: int,
    gap: int,
    min_ring: int,
) -> tuple[list, float, int] | None:
    """A donor's band-by-band fit to the pixels ``earlier`` donors filled ``gap``..``ring`` px
    from the pixels it is about to fill (``take``: the earlier donor's own cloud gaps, whose
    edges are where it is least trustworthy): ``(knots, rmse, n)``, or None when they share
    fewer than ``min_ring`` pixels or a band's fit is degenerate."""
    ref = dilate_disk(take, ring) & ~dilate_disk(take, gap) & earlier
    n = int(ref.sum())
    if n < min_ring:
        return None
    fit = _fit_bands(donor[:, ref], filled[:, ref])
    return None if fit is None else (fit[0], fit[1], n)


def _fit_bands(x: np.ndarray, y: np.ndarray) -> tuple[list, float] | None:
    """Band-by-band robust gain/offset of ``(band, n)`` donor DN ``x`` onto ``y``: the
    transfers and their RMSE (reflectance, all bands), or None if a band's fit is degenerate."""
    knots = [fit_linear(x[b], y[b]) for b in range(len(x))]
    if any(k is IDENTITY for k in knots):
        return None
    err = np.stack([apply_knots(x[b], k).astype("float64") - y[b] for b, k in enumerate(knots)])
    return knots, float(np.sqrt(np.mean(err**2)) / 10000.0)


def inpaint(
    bands: np.ndarray, hole: np.ndarray, *, method: str = "telea", radius: int = 5
) -> np.ndarray:
    """Spatially inpaint ``hole`` pixels of ``(band, y, x)`` uint16 reflectance.

    ``method``: ``"telea"`` (OpenCV's fast marching, Telea 2004; run on uint16, since OpenCV's
    inpainting returns garbage on float32 input) or ``"biharmonic"`` (scikit-image).  Pixels
    outside ``hole`` are returned unchanged; filled values are ≥ 1 (never nodata).

    >>> b = np.full((1, 5, 5), 1000, "uint16"); h = np.zeros((5, 5), bool); h[2, 2] = True
    >>> b[0, 2, 2] = 0
    >>> int(inpaint(b, h, method="biharmonic")[0, 2, 2])
    1000
    """
    bands = np.asarray(bands)
    hole = np.asarray(hole, dtype=bool)
    out = bands.copy()
    if not hole.any():
        return out
    if method == "telea":
        cv2: Any = require("cv2", "fill")

        m8 = hole.astype("uint8")
        for b in range(bands.shape[0]):
            src = np.ascontiguousarray(bands[b].astype("uint16"))
            out[b] = cv2.inpaint(src, m8, radius, cv2.INPAINT_TELEA)
    elif method == "biharmonic":
        from skimage.restoration import inpaint_biharmonic

        for b in range(bands.shape[0]):
            res = inpaint_biharmonic(bands[b].astype("float64"), hole)
            out[b] = np.clip(np.rint(res), 1, 65535).astype(bands.dtype)
    else:
        raise ValueError(f"inpainting method {method!r}; choose 'telea' or 'biharmonic'")
    out[:, ~hole] = bands[:, ~hole]
    out[:, hole] = np.maximum(out[:, hole], 1)
    return out


def fill_codes(observed: np.ndarray, donor: np.ndarray, inpainted: np.ndarray) -> np.ndarray:
    """The ``fill`` code per pixel: 1 observed, 2 donor, 3 inpainted, 0 none (uint8).

    >>> fill_codes(np.array([1, 0, 0, 0], bool), np.array([0, 1, 0, 0], bool),
    ...            np.array([0, 0, 1, 0], bool)).tolist()
    [1, 2, 3, 0]
    """
    out = np.zeros(np.shape(observed), dtype="uint8")
    out[np.asarray(inpainted, bool)] = FILL_INPAINTED
    out[np.asarray(donor, bool)] = FILL_DONOR
    out[np.asarray(observed, bool)] = FILL_OBSERVED
    return out
