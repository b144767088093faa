"""Filling holes, wired into a mosaic run: donor scenes from adjacent periods, the fill job
of every cell, and the fill tasks that run once every cell of the run is composited.

:func:`check_fill` validates before anything is read; :func:`find_donors` searches the
catalog over the ``config.fill_periods`` periods around the run's; :func:`fill_jobs` gives each
cell its :class:`~s2cube.execute.FillJob` and lazy donor cube; :func:`fill_waves` orders the
:func:`fill_task` of every cell written ``fill_pending`` (each reads its composite back with a
halo of its neighbours' observed pixels, :func:`stored_window`, and runs
:func:`s2cube.fill.fill_window`).  See ``docs/fill.md``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pystac

from .config import ExecutionOptions, MosaicConfig
from .errors import InputError
from .grid import Cell, GlobalGrid
from .search import Catalog, find_items, parse_dates
from .store import StoreLike

if TYPE_CHECKING:
    import xarray as xr

    from .execute import FillJob

__all__ = [
    "check_fill",
    "fill_jobs",
    "fill_task",
    "fill_waves",
    "find_donors",
    "stored_window",
]


def check_fill(config: MosaicConfig, catalog: Catalog, start: Any, end: Any) -> None:
    """Donors need a period (start and end) and a catalog to search for other periods."""
    if config.fill_periods == 0:
        return
    if start is None or end is None:
        raise InputError(
            f"fill_periods={config.fill_periods} needs the period's start and end: donors come "
            "from the periods of the same length before and after it"
        )
    if not isinstance(catalog, str | os.PathLike):
        raise InputError(
            f"fill_periods={config.fill_periods} needs a catalog to search for donor scenes "
            "(a STAC API, preset or static catalog); a list of items has no other periods"
        )


def find_donors(
    catalog: Catalog,
    config: MosaicConfig,
    items: Sequence[pystac.Item],
    *,
    bbox: tuple[float, float, float, float],
    start: Any,
    end: Any,
    max_cloud: float | None,
    search_kwargs: Mapping[str, Any] | None = None,
) -> list[pystac.Item]:
    """Donor scenes for filling holes: the catalog searched over the ``config.fill_periods``
    adjacent periods (:func:`s2cube.fill.donor_periods`, in ``config.fill_direction``), with the
    run's own filters; scenes of the period itself are left out.  Sorted by date, then id."""
    if config.fill_periods == 0:
        return []
    from .errors import EmptySearchError
    from .fill import donor_periods

    check_fill(config, catalog, start, end)
    s, e = parse_dates(start, end)
    assert s is not None and e is not None
    seen = {it.id for it in items}
    out: dict[str, pystac.Item] = {}
    for _, a, b in donor_periods(s.date(), e.date(), config.fill_periods):
        back = b < s.date()
        if config.fill_direction == ("forward" if back else "back"):
            continue
        try:
            found = find_items(
                catalog,
                bbox=bbox,
                start=a.isoformat(),
                end=b.isoformat(),
                max_cloud=max_cloud,
                bands=config.bands,
                search_kwargs=search_kwargs,
            )
        except EmptySearchError:
            continue
        out.update({it.id: it for it in found if it.id not in seen})
    return sorted(out.values(), key=lambda it: (str(it.datetime), it.id))


def fill_jobs(
    cells: Sequence[str],
    donors: Sequence[pystac.Item],
    grid: GlobalGrid,
    config: MosaicConfig,
    execution: ExecutionOptions,
    scene_index: Mapping[str, int],
    start: Any,
    end: Any,
    run_cells: Sequence[str] = (),
) -> dict[str, tuple[Any, Any]]:
    """Per cell (by name; planned or not: a cell its period never reached is filled from
    donors alone): its :class:`~s2cube.execute.FillJob` and lazy donor cube over the cell with
    :data:`~s2cube.fill.FILL_HALO` px of its neighbours and the mask's context (None: no donor
    touches it).  ``run_cells``: every cell of the run (the pixels that may be holes; default
    ``cells``).  Empty when the config fills no holes."""
    if not config.fills_holes:
        return {}
    from .cube import items_touching, load
    from .execute import FillJob
    from .fill import FILL_HALO

    spec = config.for_grid(grid).spec
    # at most one cell of neighbours all round (fill_waves keeps neighbours apart)
    fill_halo = min(FILL_HALO, grid.cell_pixels)
    halo = spec.mask_halo + fill_halo
    in_run = set(run_cells or cells)
    s, e = parse_dates(start, end)
    period = (str(s.date()), str(e.date())) if s is not None and e is not None else None
    out: dict[str, tuple[Any, Any]] = {}
    for name in cells:
        cell = Cell.from_name(name)
        near = items_touching(donors, grid.cell_window(cell).pad(halo).bounds) if donors else []
        cube = None
        if near:
            cube = load(
                near,
                cell,
                grid=grid,
                bands=config.bands,
                halo=halo,
                resampling=config.resampling,
                strict=execution.strict,
            )
        near_cells = (Cell(cell.row + i, cell.col + j) for i in (-1, 0, 1) for j in (-1, 0, 1))
        job = FillJob(
            spec=spec,
            halo=spec.mask_halo,
            period=period,
            max_periods=config.fill_periods,
            inpaint=None if config.inpaint == "none" else config.inpaint,
            scene_index={it.id: scene_index[it.id] for it in near},
            window=grid.cell_window(cell),
            fill_halo=fill_halo,
            domain=tuple(c.name for c in near_cells if c.name in in_run),
        )
        out[name] = (job, cube)
    return out


def stored_window(store: StoreLike, window: Any, domain: Sequence[str]) -> tuple[Any, Any]:
    """The store's composite over ``window`` (a cell with a halo) as a Dataset of its
    *observed* pixels only (``fill`` 1; donor and inpainted pixels of cells filled already
    are nodata again), and the ``(y, x)`` bool mask of the pixels in the ``domain`` cells."""
    from .composite.engine import empty_composite
    from .fill.kernels import FILL_OBSERVED
    from .store import DATE_EPOCH, store_metadata
    from .store.superres import read_parent_window

    meta = store_metadata(store)
    grid = GlobalGrid.from_dict(meta["grid"])
    bands = list(meta["bands"])
    arrays = read_parent_window(store, window)
    r, c = (int(v) for v in arrays.pop("_offset"))
    h, w = arrays["scene"].shape
    part = (slice(r, r + h), slice(c, c + w))
    ds = empty_composite(window, bands)
    seen = arrays["fill"] == FILL_OBSERVED
    for b in bands:
        ds[b].values[part] = np.where(seen, arrays[b], 0)
    days = arrays["date"].astype("int64")
    dates = np.datetime64(DATE_EPOCH, "D") + days.astype("timedelta64[D]")
    ds["date"].values[part] = np.where(seen & (days > 0), dates, np.datetime64("NaT"))
    ds["scene"].values[part] = np.where(seen, arrays["scene"], -1)
    ds["clear_count"].values[part] = np.where(seen, arrays["clear_count"], 0)
    n = grid.cell_pixels
    rows = np.arange(window.rows.start, window.rows.stop) // n
    cols = np.arange(window.cols.start, window.cols.stop) // n
    inside = np.zeros(window.shape, bool)
    for name in domain:
        cell = Cell.from_name(name)
        inside |= (rows == cell.row)[:, None] & (cols == cell.col)[None, :]
    return ds, inside


def fill_task(
    store: StoreLike,
    cell: Cell,
    job: FillJob,
    donors: xr.DataArray | None,
    overviews: bool,
    lease: str | None = None,
) -> dict[str, Any]:
    """Runs on a worker once every cell of the run is composited: fill the cell's holes
    (:func:`s2cube.fill.fill_window`) from its stored composite with ``job.fill_halo`` px of its
    neighbours' observed pixels and ``donors`` (computed) over that window, then write it again
    (record last, without ``fill_pending``) and build its overview levels.

    Race-free: it reads only observed pixels, which no fill ever changes, and
    :func:`fill_waves` never runs two neighbours at once.  Killed partway, the cell has no
    record and the rerun composites it again."""
    from .execute import write_composite
    from .fill import fill_window
    from .store import read_record

    t0 = time.perf_counter()
    record = read_record(store, cell)
    if record is None:
        raise RuntimeError(f"cell {cell.name} has no record to fill; rerun the mosaic")
    assert job.window is not None
    window = job.window.pad(job.fill_halo)
    ds, domain = stored_window(store, window, job.domain)
    filled = fill_window(
        ds,
        donors,
        spec=job.spec,
        mask_halo=job.halo,
        halo=job.fill_halo,
        domain=domain,
        period=job.period,
        max_periods=job.max_periods,
        inpaint_method=job.inpaint,
        scene_index=job.scene_index,
    )
    record.pop("fill_pending", None)
    record["fill_stats"] = filled.attrs["fill_stats"]
    rec = write_composite(store, cell, filled, record, None, lease)
    rec["fill_seconds"] = round(time.perf_counter() - t0, 3)
    if overviews:
        from .overviews import build_cell_overviews

        build_cell_overviews(store, cell)
    return rec


def fill_waves(
    store: StoreLike,
    cells: Sequence[Cell],
    fills: Mapping[str, tuple[FillJob, xr.DataArray | None]],
    *,
    overviews: bool,
    lease: str | None = None,
) -> list[list[tuple[Cell, Any]]]:
    """The delayed :func:`fill_task` of each cell, in four waves by the parity of its row and
    column: no two cells of a wave are neighbours (diagonals included), so no fill reads a
    cell while it is being written.  Run the waves one after the other."""
    import dask

    waves: list[list[tuple[Cell, Any]]] = [[], [], [], []]
    for cell in cells:
        job, donors = fills[cell.name]
        task = dask.delayed(fill_task, pure=False, name=f"fill-{cell.name}")(
            store, cell, job, donors, overviews, lease
        )
        waves[2 * (cell.row % 2) + cell.col % 2].append((cell, task))
    return [w for w in waves if w]
