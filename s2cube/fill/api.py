"""``s2cube.fill_holes``: fill a composite's holes from other periods, then inpaint the rest.

A thin xarray wrapper over :mod:`s2cube.fill.kernels` that carries the provenance: a pixel filled
by a donor takes the donor's real acquisition ``date`` and ``scene``; an inpainted pixel has no
date (NaT) and no scene (-1), is never counted in ``clear_count``, and every pixel says what it
is in ``fill`` (0 none, 1 observed in the period, 2 donor from another period, 3 inpainted).

Donor order: with a ``period``, donors are ranked by how many periods away they lie
(:func:`period_rank`; 1 = the periods right before or after), donors farther than
``max_periods`` are not used, and nearer periods fill first; within one period, the donor whose
radiometry fits the ring around the hole best fills first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..mask import CIRRUS, CLEAR, CLOUD, SHADOW, dilate_disk, scl_to_mask
from .kernels import (
    FILL_CODES,
    FILL_INPAINTED,
    FILL_NONE,
    FILL_OBSERVED,
    fill_codes,
    fill_from_donors,
    inpaint,
)

__all__ = ["fill_holes", "fill_window", "period_rank", "donor_periods", "FILL_HALO"]

#: pixels of the neighbouring cells a cell's holes are filled with (see :func:`fill_window`):
#: a hole and its ring that reach less far than this past the cell edge are filled exactly as
#: in one window over both cells
FILL_HALO = 256

_NOT_BANDS = {"date", "scene", "clear_count", "fill", "spatial_ref"}


def period_rank(
    dates: Sequence[np.datetime64] | np.ndarray, period: tuple[str, str] | tuple[Any, Any]
) -> np.ndarray:
    """How many periods (of the period's own length) each date lies before or after it (0 inside).

    >>> d = np.array(["2023-08-05", "2023-08-12", "2023-08-25", "2023-09-20"], "datetime64[D]")
    >>> period_rank(d, ("2023-08-10", "2023-08-19")).tolist()
    [1, 0, 1, 4]
    """
    start = np.datetime64(str(period[0])[:10], "D")
    end = np.datetime64(str(period[1])[:10], "D")
    length = int((end - start).astype(int)) + 1
    days = np.asarray(dates).astype("datetime64[D]")
    before = (start - days).astype(int)
    after = (days - end).astype(int)
    dist = np.maximum(np.maximum(before, after), 0)
    return np.ceil(dist / length).astype("int64")


def donor_periods(
    start: dt.date | str, end: dt.date | str, max_periods: int
) -> list[tuple[int, dt.date, dt.date]]:
    """The periods to search for donors: ``(rank, start, end)``, back and forward, nearest first.

    >>> [(k, str(a), str(b)) for k, a, b in donor_periods("2023-08-01", "2023-08-31", 1)]
    [(1, '2023-07-01', '2023-07-31'), (1, '2023-09-01', '2023-10-01')]
    """
    s = dt.date.fromisoformat(str(start)[:10])
    e = dt.date.fromisoformat(str(end)[:10])
    n = (e - s).days + 1
    out = []
    for k in range(1, max_periods + 1):
        out.append((k, s - dt.timedelta(days=k * n), s - dt.timedelta(days=(k - 1) * n + 1)))
        out.append((k, e + dt.timedelta(days=(k - 1) * n + 1), e + dt.timedelta(days=k * n)))
    return out


def _scene_indices(donors: xr.DataArray, scene_index: Any) -> np.ndarray:
    n = donors.sizes["time"]
    if scene_index is None:
        return np.arange(n, dtype="int32")
    if isinstance(scene_index, Mapping):
        ids = [str(v) for v in np.asarray(donors["id"].values)]
        return np.array([int(scene_index[i]) for i in ids], dtype="int32")
    out = np.asarray(scene_index, dtype="int32")
    if out.shape != (n,):
        raise ValueError(f"scene_index has {out.shape[0]} entries for {n} donors")
    return out


def fill_holes(
    composite: xr.Dataset,
    donors: xr.DataArray,
    *,
    donor_clear: xr.DataArray | np.ndarray | None = None,
    scene_index: Mapping[str, int] | Sequence[int] | None = None,
    period: tuple[Any, Any] | None = None,
    max_periods: int = 2,
    ring: int = 8,
    max_fit_rmse: float = 0.015,
    donor_buffer: int = 2,
    inpaint_method: str | None = "telea",
    inpainter: Any = None,
    domain: np.ndarray | None = None,
) -> xr.Dataset:
    """Fill the holes of ``composite`` from ``donors``, then inpaint what is left.

    Parameters
    ----------
    composite
        A composite (``s2cube.composite`` or a store read): uint16 bands (0 = nodata), ``date``,
        ``scene``; ``clear_count`` is kept as it is (fills are not observations).
    donors
        ``(time, band, y, x)`` candidate scenes on the same grid (e.g. ``s2cube.load`` of the
        periods :func:`donor_periods` names); must hold the composite's bands, plus ``scl``
        unless ``donor_clear`` is given.
    donor_clear
        ``(time, y, x)`` bool, where each donor is clear; default: SCL clear, away from SCL
        cloud/shadow/cirrus by ``donor_buffer`` pixels (haze hugs cloud edges).
    scene_index
        Scene-table index of each donor (sequence per time, or ``{item id: index}``); default:
        position along ``time``.
    period
        ``(start, end)`` of the composite; donors are ranked by :func:`period_rank` and those
        beyond ``max_periods`` are ignored.  Default: all donors one rank (best fit first).
    ring, max_fit_rmse
        See :func:`s2cube.fill.kernels.fill_from_donors`.
    inpaint_method
        ``"telea"``, ``"biharmonic"``, ``"learned"`` (needs ``inpainter``, an
        :class:`s2cube.fill.learned.InpaintNet`) or None (leave residual holes as nodata).
    domain
        ``(y, x)`` bool, the pixels that may be filled (default: all); see
        :func:`~s2cube.fill.kernels.fill_from_donors`.  The hole fractions in ``fill_stats``
        are over the domain.

    Returns
    -------
    xarray.Dataset
        ``composite`` with filled bands, provenance ``date``/``scene`` of donor pixels, and
        ``fill`` (uint8, ``flag_values``/``flag_meanings``).  ``attrs["fill_stats"]`` has the
        hole fractions before, after donors and after inpainting.
    """
    bands = [v for v in composite.data_vars if v not in _NOT_BANDS]
    ydim, xdim = composite[bands[0]].dims
    stack = np.stack([np.asarray(composite[b].values) for b in bands])
    observed: np.ndarray = np.asarray((stack > 0).all(axis=0))
    inside = np.ones(observed.shape, bool) if domain is None else np.asarray(domain, dtype=bool)
    d = donors.transpose("time", "band", ydim, xdim)
    if d.shape[-2:] != stack.shape[-2:]:
        raise ValueError(f"donors {d.shape[-2:]} and composite {stack.shape[-2:]} differ in shape")
    dn = np.asarray(d.sel(band=bands).values)
    if donor_clear is None:
        codes = scl_to_mask(np.asarray(d.sel(band="scl").values))
        bad = np.isin(codes, [CLOUD, SHADOW, CIRRUS])
        clear = (codes == CLEAR) & ~dilate_disk(bad, donor_buffer)
    else:
        clear = np.asarray(donor_clear, dtype=bool)
    times = np.asarray(d["time"].values).astype("datetime64[ns]")
    scenes = _scene_indices(d, scene_index)
    rank = np.zeros(len(times), "int64") if period is None else period_rank(times, period)
    use = rank <= max_periods
    filled, source, fits = fill_from_donors(
        stack,
        observed,
        dn[use],
        clear[use],
        ring=ring,
        max_fit_rmse=max_fit_rmse,
        rank=rank[use],
        domain=inside,
    )
    by_donor = source >= 0
    holes_left = ~observed & ~by_donor & inside
    inpainted = np.zeros_like(observed)
    # inpainting guesses from the neighbourhood: with no pixel of data at all there is none
    has_data = bool(observed.any() or by_donor.any())
    if inpaint_method is not None and holes_left.any() and has_data:
        # nodata outside the domain is unknown too, never a dark neighbour to copy from
        unknown = holes_left | (~inside & ~(filled > 0).all(axis=0))
        if inpaint_method == "learned":
            from .learned import inpaint_learned

            if inpainter is None:
                raise ValueError("inpaint_method='learned' needs an inpainter (InpaintNet)")
            guessed = inpaint_learned(inpainter, filled, unknown)
        else:
            guessed = inpaint(filled, unknown, method=inpaint_method)
        filled[:, holes_left] = guessed[:, holes_left]
        inpainted = holes_left
    out = composite.copy()
    for i, b in enumerate(bands):
        out[b] = composite[b].copy(data=filled[i].astype(composite[b].dtype))
    if "date" in composite:
        date = np.asarray(composite["date"].values).astype("datetime64[ns]").copy()
        date[by_donor] = times[use][source[by_donor]]
        out["date"] = composite["date"].copy(data=date.astype(composite["date"].dtype))
    if "scene" in composite:
        scene = np.asarray(composite["scene"].values).copy()
        scene[by_donor] = scenes[use][source[by_donor]]
        out["scene"] = composite["scene"].copy(data=scene)
    code = fill_codes(observed, by_donor, inpainted)
    out["fill"] = ((ydim, xdim), code)
    out["fill"].attrs.update(
        flag_values=list(FILL_CODES),
        flag_meanings=" ".join(FILL_CODES.values()),
        long_name="how the pixel was filled",
    )
    n = max(int(inside.sum()), 1)
    out.attrs["fill_stats"] = {
        "holes_before": float((~observed & inside).sum() / n),
        "holes_after_donors": float(holes_left.sum() / n),
        "holes_after": float((holes_left & ~inpainted).sum() / n),
        "donor_fits": len(fits),
        "donor_fits_accepted": sum(f.accepted for f in fits),
        "donor_fits_rejected_fit_error": sum(f.reason == "fit error" for f in fits),
        "donor_fits_unfitted": sum(f.reason == "no ring: unfitted" for f in fits),
        "donor_fits_chained": sum(f.reason == "fitted to an earlier donor" for f in fits),
        "max_periods": max_periods,
        "inpaint": inpaint_method or "none",
    }
    return out


def fill_window(
    composite: xr.Dataset,
    donors: xr.DataArray | None,
    *,
    spec: Any,
    mask_halo: int,
    halo: int,
    domain: np.ndarray | None,
    period: tuple[Any, Any] | None,
    max_periods: int,
    inpaint_method: str | None,
    scene_index: Mapping[str, int] | Sequence[int] | None = None,
    donor_buffer: int = 2,
) -> xr.Dataset:
    """:func:`fill_holes` of one cell of a mosaic, seen with ``halo`` px of its neighbours.

    ``composite`` is the cell padded by ``halo`` px as the store holds it after compositing
    (its observed pixels only: every other pixel nodata), so a hole on a cell edge is one
    component with one fit in both cells; ``domain`` marks the pixels of the run's cells (the
    rest are neither observed nor holes).  ``donors`` is the donor cube over that window padded
    by ``mask_halo`` px more (``s2cube.load``, ``mask_halo = spec.mask_halo``), or None (no
    donor: inpainting only).  Their clear pixels are the mosaic's own mask
    (:func:`s2cube.mask.window_codes` with ``spec``: SCL rules or the learned model, with its
    dilation), kept ``donor_buffer`` px away from cloud, shadow and cirrus.

    Returns the filled cell (the window without its halo); ``attrs["fill_stats"]`` has the
    cell's own hole fractions and the donor fits of the window.
    """
    from ..mask import window_codes

    ydim, xdim = composite["date"].dims
    h, w = composite.sizes[ydim], composite.sizes[xdim]
    bands = [v for v in composite.data_vars if v not in _NOT_BANDS]
    if donors is None or donors.sizes.get("time", 0) == 0:
        empty = np.zeros((0, len(bands) + 1, h, w), "uint16")
        cube = xr.DataArray(
            empty,
            dims=("time", "band", ydim, xdim),
            coords={
                "time": np.array([], "datetime64[ns]"),
                "band": [*bands, "scl"],
                "id": ("time", np.array([], object)),
            },
        )
        clear = np.zeros((0, h, w), bool)
        scene_index = []
    else:
        d = donors.transpose("time", "band", ...)
        data = np.asarray(d.sel(band=[*spec.bands, "scl"]).values)
        codes = window_codes(data, spec)
        bad = np.isin(codes, [CLOUD, SHADOW, CIRRUS])
        keep = (codes == CLEAR) & ~dilate_disk(bad, donor_buffer)
        core = (slice(mask_halo, mask_halo + h), slice(mask_halo, mask_halo + w))
        clear = keep[(slice(None), *core)]
        cube = d.isel({d.dims[2]: core[0], d.dims[3]: core[1]})
        names = {a: b for a, b in zip(cube.dims[2:], (ydim, xdim), strict=True) if a != b}
        cube = cube.rename(names) if names else cube
        cube = cube.drop_vars([ydim, xdim], errors="ignore")
    out = fill_holes(
        composite,
        cube,
        donor_clear=clear,
        scene_index=scene_index,
        period=period,
        max_periods=max_periods,
        donor_buffer=donor_buffer,
        inpaint_method=inpaint_method,
        domain=domain,
    )
    cell = out.isel({ydim: slice(halo, h - halo), xdim: slice(halo, w - halo)})
    code = np.asarray(cell["fill"].values)
    n = code.size
    stats = dict(out.attrs["fill_stats"])
    stats.update(
        holes_before=float((code != FILL_OBSERVED).sum() / n),
        holes_after_donors=float(np.isin(code, [FILL_NONE, FILL_INPAINTED]).sum() / n),
        holes_after=float((code == FILL_NONE).sum() / n),
        halo=halo,
    )
    cell.attrs["fill_stats"] = stats
    return cell
