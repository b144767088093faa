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
) -> dict[str, FillJob]:
    """Per cell (by name; planned or not: a cell its period never reached is filled from
    donors alone): its :class:`~s2cube.execute.FillJob`, with the donor scenes touching the
    cell with :data:`~s2cube.fill.FILL_HALO` px of its neighbours and the mask's context.
    ``run_cells``: every cell of the run (the pixels that may be holes; default ``cells``).
    Empty when the config fills no holes."""
    if not config.fills_holes:
        return {}
    from .cube import items_touching
    from .execute import FillJob
    from .fill import FILL_HALO

    spec = config.for_grid(grid).spec
    # at most one cell of neighbours all round (fill_waves keeps neighbours apart)
    fill_halo = min(FILL_HALO, grid.cell_pixels)
    halo = spec.mask_halo + fill_halo
    in_run = set(run_cells or cells)
    s, e = parse_dates(start, end)
    period = (str(s.date()), str(e.date())) if s is not None and e is not None else None
    out: dict[str, FillJob] = {}
    for name in cells:
        cell = Cell.from_name(name)
        near = items_touching(donors, grid.cell_window(cell).pad(halo).bounds) if donors else []
        near_cells = (Cell(cell.row + i, cell.col + j) for i in (-1, 0, 1) for j in (-1, 0, 1))
        out[name] = FillJob(
            spec=spec,
            halo=spec.mask_halo,
            period=period,
            max_periods=config.fill_periods,
            inpaint=None if config.inpaint == "none" else config.inpaint,
            scene_index={it.id: scene_index[it.id] for it in near},
            window=grid.cell_window(cell),
            fill_halo=fill_halo,
            domain=tuple(c.name for c in near_cells if c.name in in_run),
            donors=tuple(near),
            strict=execution.strict,
        )
    return out


def stored_window(store: StoreLike, window: Any, domain: Sequence[str]) -> tuple[Any, Any]:
    """The store's composite over ``window`` (a cell with a halo) as a Dataset of its
    *observed* pixels in the ``domain`` cells only (``fill`` 1; donor and inpainted pixels of
    cells filled already, and whatever other runs wrote outside the domain, are nodata), and
    the ``(y, x)`` bool mask of the pixels in the ``domain`` cells."""
    from .composite.engine import empty_composite
    from .fill.kernels import FILL_OBSERVED
    from .store import days_to_dates, store_metadata
    from .store.superres import read_parent_window

    meta = store_metadata(store)
    grid = GlobalGrid.from_dict(meta["grid"])
    bands = list(meta["bands"])
    n = grid.cell_pixels
    rows = np.arange(window.rows.start, window.rows.stop) // n
    cols = np.arange(window.cols.start, window.cols.stop) // n
    inside = np.zeros(window.shape, bool)
    for name in domain:
        cell = Cell.from_name(name)
        inside |= (rows == cell.row)[:, None] & (cols == cell.col)[None, :]
    arrays = read_parent_window(store, window)
    r, c = (int(v) for v in arrays.pop("_offset"))
    h, w = arrays["scene"].shape
    part = (slice(r, r + h), slice(c, c + w))
    ds = empty_composite(window, bands)
    # a run's fill depends on its own cells only: the same store whatever ran beside it
    seen = (arrays["fill"] == FILL_OBSERVED) & inside[part]
    for b in bands:
        ds[b].values[part] = np.where(seen, arrays[b], 0)
    ds["date"].values[part] = np.where(seen, days_to_dates(arrays["date"]), np.datetime64("NaT"))
    ds["scene"].values[part] = np.where(seen, arrays["scene"], -1)
    ds["clear_count"].values[part] = np.where(seen, arrays["clear_count"], 0)
    return ds, inside


def fill_task(
    store: StoreLike,
    cell: Cell,
    job: FillJob,
    overviews: bool,
    lease: str | None = None,
    donors: xr.DataArray | None = None,
) -> dict[str, Any]:
    """Runs on a worker once every cell of the run is composited: fill the cell's holes
    (:func:`s2cube.fill.fill_window`) from its stored composite with ``job.fill_halo`` px of its
    neighbours' observed pixels and the donors over that window, then write it again (record
    last, without ``fill_pending``) and build its overview levels.

    The cell is filled in blocks of at most ``job.block`` px, each seen with the same halo and
    its own donors (``job.donors`` touching it, read here): only one block's donor cube is in
    memory at a time.  ``donors``: a donor cube over the cell with ``job.fill_halo +
    job.halo`` px all round to use instead of reading ``job.donors`` (numpy-backed, or lazy).

    Race-free: it reads only observed pixels, which no fill ever changes, and
    :func:`fill_waves` never runs two neighbours at once.  Killed partway, the cell has no
    record and the rerun composites it again."""
    from .composite.engine import empty_composite
    from .execute import write_composite
    from .fill import fill_window
    from .fill.kernels import FILL_INPAINTED, FILL_NONE, FILL_OBSERVED
    from .store import read_record

    t0 = time.perf_counter()
    record = read_record(store, cell)
    if record is None:
        raise RuntimeError(f"cell {cell.name} has no record to fill; rerun the mosaic")
    assert job.window is not None
    cell_w = job.window
    out = empty_composite(cell_w, job.spec.bands)
    out["fill"] = (out["date"].dims, np.zeros(cell_w.shape, "uint8"))
    counts: dict[str, Any] = {}
    for rows, cols in _blocks(cell_w.shape, job.block):
        block = cell_w[rows, cols]
        ds, domain = stored_window(store, block.pad(job.fill_halo), job.domain)
        filled = fill_window(
            ds,
            _block_donors(job, block, donors, cell_w),
            spec=job.spec,
            mask_halo=job.halo,
            halo=job.fill_halo,
            domain=domain,
            period=job.period,
            max_periods=job.max_periods,
            inpaint_method=job.inpaint,
            scene_index=job.scene_index,
        )
        for name in out.data_vars:
            out[name].values[rows, cols] = filled[name].values
        out["fill"].attrs = filled["fill"].attrs
        for key, value in filled.attrs["fill_stats"].items():
            counts[key] = counts.get(key, 0) + value if key.startswith("donor_fits") else value
    code = out["fill"].values
    n = code.size
    counts.update(
        holes_before=float((code != FILL_OBSERVED).sum() / n),
        holes_after_donors=float(np.isin(code, [FILL_NONE, FILL_INPAINTED]).sum() / n),
        holes_after=float((code == FILL_NONE).sum() / n),
    )
    record.pop("fill_pending", None)
    record["fill_stats"] = counts
    rec = write_composite(store, cell, out, record, None, lease)
    rec["fill_seconds"] = round(time.perf_counter() - t0, 3)
    if overviews:
        from .overviews import build_cell_overviews

        build_cell_overviews(store, cell)
    return rec


def _blocks(shape: tuple[int, int], block: int) -> list[tuple[slice, slice]]:
    """A window's shape cut into near-equal blocks of at most ``block`` px a side.

    >>> [(r.start, r.stop, c.start, c.stop) for r, c in _blocks((10, 4), 4)]
    [(0, 3, 0, 4), (3, 7, 0, 4), (7, 10, 0, 4)]
    """

    def edges(n: int) -> list[int]:
        k = -(-n // max(block, 1))
        return [round(i * n / k) for i in range(k + 1)]

    ys, xs = edges(shape[0]), edges(shape[1])
    return [
        (slice(y0, y1), slice(x0, x1))
        for y0, y1 in zip(ys, ys[1:], strict=False)
        for x0, x1 in zip(xs, xs[1:], strict=False)
    ]


def _block_donors(
    job: FillJob, block: Any, donors: xr.DataArray | None, cell_w: Any
) -> xr.DataArray | None:
    """The numpy-backed donor cube over ``block`` with the fill's halo and the mask's context:
    a slice of the caller's ``donors`` (over the cell with that much all round), or the
    donor scenes of ``job.donors`` touching it, read now (None: none touches it)."""
    pad = job.fill_halo + job.halo
    window = block.pad(pad)
    if donors is not None:
        r, c = window.offset_in(cell_w.pad(pad))
        h, w = window.shape
        cube = donors.isel({donors.dims[2]: slice(r, r + h), donors.dims[3]: slice(c, c + w)})
        return cube.compute(scheduler="threads")
    from .cube import VRT_ALIGN, items_touching, load_window

    near = items_touching(list(job.donors), window.bounds)
    if not near:
        return None
    cube = load_window(
        near,
        window,
        bands=job.spec.bands,
        resampling=job.spec.resampling,
        strict=job.strict,
        what=f"donors of {window}",
        align=VRT_ALIGN,
    )
    # the block's reads run here, on this worker's threads (a task does not wait on the cluster)
    return cube.compute(scheduler="threads")


def fill_waves(
    store: StoreLike,
    cells: Sequence[Cell],
    fills: Mapping[str, FillJob],
    *,
    overviews: bool,
    lease: str | None = None,
    donors: Mapping[str, xr.DataArray] | None = None,
) -> list[list[tuple[Cell, Any]]]:
    """The delayed :func:`fill_task` of each cell, in four waves by the parity of its row and
    column: no two cells of a wave are neighbours (diagonals included), so no fill reads a
    cell while it is being written.  Run the waves one after the other.  ``donors``: per cell
    name, a donor cube to use instead of reading the job's donor scenes (see
    :func:`fill_task`)."""
    import dask

    waves: list[list[tuple[Cell, Any]]] = [[], [], [], []]
    for cell in cells:
        cube = (donors or {}).get(cell.name)
        task = dask.delayed(fill_task, pure=False, name=f"fill-{cell.name}")(
            store, cell, fills[cell.name], overviews, lease, cube
        )
        waves[2 * (cell.row % 2) + cell.col % 2].append((cell, task))
    return [w for w in waves if w]
