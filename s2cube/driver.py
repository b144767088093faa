"""The mosaic driver: search → plan → one task per cell → write.  Wiring only.

:func:`mosaic` reads as the data flow; every stage lives in its own module:

====================  ================================================================
stage                 module
====================  ================================================================
options               :mod:`s2cube.config` (validated, frozen, recorded in the store)
search + normalise    :mod:`s2cube.search` (items are normalised once, here)
store template        :mod:`s2cube.store` (scene table written before any task starts)
plan                  :mod:`s2cube.planner` (survey, scene parameters, block plans)
composite             :mod:`s2cube.composite` (the engine every block runs)
execute + write       :mod:`s2cube.execute` (one write task per cell, resumable)
fill (optional)       :mod:`s2cube.fill` via :func:`~s2cube.donors.fill_waves` (after all cells)
overviews             :mod:`s2cube.overviews` (coarse levels once all cells are done)
====================  ================================================================

Scene indices are stable (the driver registers scenes before any task starts), so a rerun
after an interruption recomputes exactly the unfinished cells and gives an identical store.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pystac
import xarray as xr

from .config import PIXEL_NEUTRAL, ExecutionOptions, MosaicConfig
from .donors import check_fill, fill_jobs, fill_waves, find_donors
from .errors import EmptySearchError, InputError, LimitError, SceneReadError
from .execute import MosaicReport, Progress, cell_tasks, run_tasks
from .grid import DEFAULT_GRID, Cell, GlobalGrid, validate_bbox
from .planner import cells_reached, plan_cells
from .search import Catalog, find_items, normalised, parse_dates
from .store import StoreLocation

__all__ = [
    "MAX_CELLS",
    "MAX_SCENES",
    "Catalog",
    "MosaicReport",
    "check_fill",
    "composite_cell",
    "fill_jobs",
    "find_donors",
    "find_items",
    "mosaic",
]

#: a run over more cells, or more candidate scenes, must be confirmed (``--yes``,
#: ``confirm=True``): a whole-globe bbox by mistake is 64,800 cells at the default grid
MAX_CELLS = 1000
MAX_SCENES = 2000


def check_reference(config: MosaicConfig) -> None:
    """What a config names must exist before anything is read or written: the reference
    store, and the learned mask model when the mask uses one."""
    from .store import is_store

    if config.mask_method != "scl":
        from .models.registry import REGISTRY

        if config.model not in REGISTRY and not Path(config.model).exists():
            raise InputError(
                f"model={config.model!r} is neither a registry model "
                f"({', '.join(sorted(REGISTRY))}) nor the path of a saved model"
            )
    ref = config.reference_store
    if ref is not None and not is_store(ref):
        raise InputError(
            f"reference={ref!r} is neither 'composite', 'best' nor an s2cube store; "
            "give the path of an existing store"
        )


def mosaic(
    catalog: Catalog,
    *,
    store: str | os.PathLike[str] | StoreLocation,
    bbox: Sequence[float],
    start: Any = None,
    end: Any = None,
    max_cloud: float | None = None,
    grid: GlobalGrid | None = None,
    config: MosaicConfig | None = None,
    execution: ExecutionOptions | None = None,
    client: Any = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool | Progress = False,
    search_kwargs: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    break_lease: bool = False,
    retry_dropped: bool = False,
    confirm: bool = False,
) -> MosaicReport:
    """Composite every cell touching ``bbox`` and write it into the global store.

    Parameters
    ----------
    catalog
        Anything :func:`s2cube.search` accepts, or a list of STAC items.
    store
        Store path or URL (``s3://bucket/m.zarr``, any fsspec URL); created if missing (with
        ``grid``), resumed if it exists.
    bbox
        Lon/lat area ``(west, south, east, north)``; every cell it touches is processed.
    start, end, max_cloud
        Search filters.
    grid
        Global grid (default: the store's grid, or the WorldCover grid for a new store).
    config
        The result-defining options (:class:`~s2cube.config.MosaicConfig`).
    execution
        How the run executes (:class:`~s2cube.config.ExecutionOptions`).
    client, scheduler
        A ``distributed.Client`` or a scheduler address.  Without either, an active default
        client is used, else dask's local threaded scheduler.
    overwrite
        Recompute cells that are already finished (default: skip them, i.e. resume).
    progress
        True for a tqdm progress bar, or a callback ``f(cell_name, record)``.
    storage_options
        fsspec options for a store URL (credentials, endpoint...), over the environment's.
    break_lease
        Take the store's writer lease even if another run holds it (only when that run is
        known to be dead; a stale lease, expired or of a dead process on this host, is taken
        over without it).
    retry_dropped
        Also redo finished cells whose record lists dropped scenes (an asset that could not
        be read then); other finished cells are skipped as usual.
    confirm
        Go ahead with a run above :data:`MAX_CELLS` cells or :data:`MAX_SCENES` candidate
        scenes (``--yes``); without it such a run is refused with its estimate.

    Examples
    --------
    >>> report = s2cube.mosaic("earth-search", store="mosaic.zarr", bbox=(15.9, 46.0, 16.1, 46.2),
    ...                        start="2023-08-01", end="2023-08-31", max_cloud=60)  # doctest: +SKIP
    """
    from . import store as zs

    t0 = time.perf_counter()
    config = config or MosaicConfig()
    execution = execution or ExecutionOptions()
    # everything is validated before anything is read or written
    bbox_t = validate_bbox(bbox)
    parse_dates(start, end)
    check_reference(config)
    check_fill(config, catalog, start, end)
    if isinstance(store, str | os.PathLike) and not str(store).strip():
        raise InputError(
            "store='' is empty (it would write into the current directory); give the path or "
            "URL of the store, e.g. --store mosaic.zarr"
        )
    store = zs.store_location(store, storage_options)
    if store.is_local and not store.path.is_absolute():
        store = zs.store_location(str(store.path.resolve()))  # workers have their own cwd
    zs.check_store_path(store)
    if grid is None:
        grid = zs.store_grid(store) if zs.is_store(store) else DEFAULT_GRID
    n_cells = grid.count_cells_in_bbox(bbox_t)
    check_limits(grid, n_cells, None, confirm=confirm)

    no_items: EmptySearchError | None = None
    try:
        items = find_items(
            catalog,
            bbox=bbox_t,
            start=start,
            end=end,
            max_cloud=max_cloud,
            bands=config.bands,
            search_kwargs=search_kwargs,
        )
    except EmptySearchError as exc:
        # a period with no scene at all may still be filled from other periods
        if config.fill_periods == 0:
            raise
        items, no_items = [], exc
    donors = find_donors(
        catalog,
        config,
        items,
        bbox=bbox_t,
        start=start,
        end=end,
        max_cloud=max_cloud,
        search_kwargs=search_kwargs,
    )
    if no_items is not None and not donors:
        raise no_items
    check_limits(grid, n_cells, len(items) + len(donors), confirm=confirm)
    cells = grid.cells_in_bbox(bbox_t)
    # one writer at a time: the lease is held (and renewed) from before the template is
    # written until the last overview; every cell write checks it
    lease = zs.Lease(store, break_lease=break_lease).acquire()
    lease.start()
    try:
        report = _run(
            store, lease, items, cells, grid, config, execution, client, scheduler, overwrite,
            progress, bbox_t, start, end, max_cloud, t0, donors, retry_dropped,
        )  # fmt: skip
    finally:
        lease.release()
    if config.landcover != "none":
        # its own stage with its own manifest and lease, exactly `s2cube landcover` after
        from .landcover.run import LandcoverOptions, landcover_store

        scenes = config.landcover != "unets"  # dynamicworld, unets-series: the catalog's scenes
        lc = landcover_store(
            store, catalog if scenes else None, bbox=bbox_t,
            start=start if scenes else None, end=end if scenes else None,
            max_cloud=max_cloud if scenes else None,
            options=LandcoverOptions(model=config.landcover), overviews=execution.overviews,
            overwrite=overwrite, client=client, scheduler=scheduler,
            search_kwargs=search_kwargs if scenes else None,
        )  # fmt: skip
        report.landcover = lc.to_dict()
    return report


def _run(
    store: StoreLocation,
    lease: Any,
    items: Sequence[pystac.Item],
    cells: Sequence[Cell],
    grid: GlobalGrid,
    config: MosaicConfig,
    execution: ExecutionOptions,
    client: Any,
    scheduler: str | None,
    overwrite: bool,
    progress: bool | Progress,
    bbox_t: tuple[float, float, float, float],
    start: Any,
    end: Any,
    max_cloud: float | None,
    t0: float,
    donors: Sequence[pystac.Item] = (),
    retry_dropped: bool = False,
) -> MosaicReport:
    """The writing part of :func:`mosaic`, under the store's lease."""
    from . import store as zs
    from .cluster import get_client

    zs.create_store(store, grid=grid, bands=config.bands)
    if config.fills_holes and not store.exists(f"{zs.FILL_VAR}/zarr.json"):
        raise InputError(
            f"store {store.url!r} was created before the 'fill' variable existed; filling holes "
            "(fill_periods, inpaint) needs a new store"
        )
    # a finished cell is skipped only if its record and shards pass the cheap check
    done = zs.finished_cells(store, cells) if not overwrite else set()
    if retry_dropped:
        # finished cells that dropped a scene are redone (the asset may be readable now)
        done = set(done) - {
            n for n, r in zs.read_manifest(store).items() if r.get("dropped_scenes")
        }
    manifest = zs.read_manifest(store)
    query = {"start": str(start), "end": str(end), "max_cloud": max_cloud}
    check_resume(store.url, {n: manifest[n] for n in done if n in manifest}, config, query)
    # composited but not yet filled (a run killed between the two steps): only the fill left
    pending = {n for n in done if manifest.get(n, {}).get("fill_pending")}
    todo = [c for c in cells if c.name not in done]
    # cells no item reaches, never written before, are empty without a record or a task
    # (a whole-globe bbox costs its few cells with data); a cell with a record is done as
    # usual, so an overwrite still empties it
    reached = cells_reached([*items, *donors], todo, grid=grid, config=config.for_grid(grid))
    untouched = [c.name for c in todo if c.name not in reached and c.name not in manifest]
    todo = [c for c in todo if c.name in reached or c.name in manifest]
    report = MosaicReport(
        store=store.url,
        cells=[c.name for c in cells],
        scenes=len(items),
        skipped=[c.name for c in cells if c.name in done and c.name not in pending],
        empty=untouched,
    )
    # donors after the period's scenes: the period's indices are those of a run without fill
    scene_index = zs.register_scenes(store, [*items, *donors])
    if execution.overviews:
        from .overviews import prepare_overviews

        prepare_overviews(store)
    client = get_client(scheduler, client=client)
    run = plan_cells(
        items,
        todo,
        grid=grid,
        config=config,
        execution=execution,
        scene_index=scene_index,
        known=zs.scene_params(store),
        client=client,
    )
    zs.update_scene_params(store, {k: p.to_record() for k, p in run.scene_params.items()})
    for cell in todo:
        zs.forget_cell(store, cell)
    run_record = {
        "config": config.to_record(),
        "execution": execution.to_record(),
        "query": {
            "bbox": list(bbox_t),
            "start": str(start),
            "end": str(end),
            "max_cloud": max_cloud,
        },
    }
    names = [c.name for c in todo]
    fill_names = [c.name for c in cells if c.name in pending or c.name in names]
    fills = fill_jobs(
        fill_names, donors, grid, config, execution, scene_index, start, end,
        run_cells=[c.name for c in cells],
    )  # fmt: skip
    tasks = cell_tasks(
        store,
        todo,
        run.cells,
        run_record=run_record,
        overviews=execution.overviews,
        lease=lease.owner,
        fills=fills,
        dropped=run.dropped,
    )

    def replan(cell: Cell, error: SceneReadError) -> Any:
        """The cell's task again without the scene whose asset failed (None: fatal)."""
        entry = _drop_for(cell, error, items, run.dropped.get(cell.name, []))
        if entry is None or execution.strict:
            return None
        run.dropped.setdefault(cell.name, []).append(entry)
        gone = {e["id"] for e in run.dropped[cell.name]}
        again = plan_cells(
            [it for it in items if it.id not in gone],
            [cell],
            grid=grid,
            config=config,
            execution=execution,
            scene_index=scene_index,
            known=zs.scene_params(store),
            client=client,
        )
        new = {k: p for k, p in again.scene_params.items() if k not in run.scene_params}
        if new:
            zs.update_scene_params(store, {k: p.to_record() for k, p in new.items()})
        # drops found while planning again join the one that caused it
        dropped = {cell.name: [*run.dropped[cell.name], *again.dropped.get(cell.name, [])]}
        for pc in again.cells.values():
            pc.record["dropped_scenes"] = dropped[cell.name]
        (task,) = cell_tasks(
            store,
            [cell],
            again.cells,
            run_record=run_record,
            overviews=execution.overviews,
            lease=lease.owner,
            fills={k: v for k, v in fills.items() if k == cell.name},
            dropped=dropped,
        )
        return task[1]

    report.dashboard = getattr(client, "dashboard_link", None) if client is not None else None
    run_tasks(tasks, report, client=client, progress=progress, replan=replan)
    if fills:
        # holes are filled once every cell is composited: a hole on a cell edge is filled
        # from both cells' observed pixels, the same way in both
        recorded = zs.read_manifest(store)
        to_fill = [c for c in cells if recorded.get(c.name, {}).get("fill_pending")]
        waves = fill_waves(store, to_fill, fills, overviews=execution.overviews, lease=lease.owner)
        for i, wave in enumerate(waves, start=1):
            run_tasks(wave, report, client=client, progress=progress, desc=f"fill {i}/{len(waves)}")
        report.written = list(dict.fromkeys(report.written))
    if execution.overviews:
        from .overviews import build_overviews

        # coarse levels span many cells: one driver-side step after every cell is finished;
        # it also repairs per-cell levels left stale by an interrupted earlier run
        build_overviews(store, coarse=True)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def check_limits(grid: GlobalGrid, n_cells: int, n_scenes: int | None, *, confirm: bool) -> None:
    """Refuse a run above :data:`MAX_CELLS` cells or :data:`MAX_SCENES` candidate scenes
    unless confirmed, printing the estimate."""
    if confirm or (n_cells <= MAX_CELLS and (n_scenes or 0) <= MAX_SCENES):
        return
    px = grid.cell_pixels
    scenes = f" and {n_scenes:,} candidate scene(s)" if n_scenes is not None else ""
    raise LimitError(
        f"this run covers {n_cells:,} cell(s) of {grid.cell_size}° ({px}×{px} px each, "
        f"{n_cells * px * px / 1e9:,.1f} Gpx per band){scenes}; runs above {MAX_CELLS:,} cells "
        f"or {MAX_SCENES:,} scenes must be confirmed: pass --yes (API: confirm=True), or "
        "narrow --bbox or the dates"
    )


def check_resume(
    url: str, finished: Mapping[str, Mapping[str, Any]], config: MosaicConfig, query: Any
) -> None:
    """A resume skips finished cells: refuse it when they were made with another config or
    other dates/cloud filter (the store would silently mix two mosaics)."""
    want = config.to_record()
    for name, rec in sorted(finished.items()):
        old_q = {k: rec.get("query", {}).get(k) for k in query}
        old_c = rec.get("config")
        if old_c is None:
            continue  # a record of a version that did not keep the run's options
        keys = (set(want) | set(old_c)) - PIXEL_NEUTRAL
        diff = sorted(k for k in keys if want.get(k) != old_c.get(k))
        diff += sorted(k for k in query if old_q[k] != query[k])
        if diff:
            was = ", ".join(f"{k}={old_q[k] if k in query else old_c.get(k)!r}" for k in diff[:6])
            raise InputError(
                f"store {url!r} already holds cell {name} made with other options ({was}); "
                "resuming would mix two mosaics. Pass --overwrite to recompute the cells with "
                "the new options, or write to another --store"
            )


def _drop_for(
    cell: Cell,
    error: SceneReadError,
    items: Sequence[pystac.Item],
    already: Sequence[Mapping[str, Any]],
) -> dict[str, Any] | None:
    """The dropped-scene entry for a failed read in ``cell`` (with its warning), or None when
    the asset belongs to no item of the run or its scene was dropped already (a loop)."""
    from .planner import dropped_record, warn_dropped

    gone = {e["id"] for e in already}
    for it in items:
        if it.id in gone:
            continue
        if any(a.href == error.href for a in it.assets.values()):
            entry = dropped_record(it, error.href, error.reason)
            warn_dropped(cell, entry)
            return entry
    return None


def composite_cell(
    items: Sequence[pystac.Item],
    cell: Cell,
    *,
    grid: GlobalGrid = DEFAULT_GRID,
    config: MosaicConfig | None = None,
    execution: ExecutionOptions | None = None,
    scene_index: Mapping[str, int] | None = None,
    store: str | os.PathLike[str] | None = None,
) -> xr.Dataset:
    """Lazy planned, harmonized, blended composite of one cell (halo removed), as the store
    computes it.

    Scene transfer functions and haze scores are fitted on this cell alone, unless ``store`` is
    given: then the store's scene table (its fitted parameters and scene indices) is used, so
    the result equals what the store holds for this cell.

    Examples
    --------
    >>> ds = s2cube.composite_cell(items, grid.cell_of(15.9, 46.1), grid=grid)  # doctest: +SKIP
    >>> ds.red.plot.imshow()  # doctest: +SKIP
    """
    from . import store as zs

    config = config or MosaicConfig()
    check_reference(config)
    items = normalised(items, config.bands)
    known = None
    if store is not None:
        known = zs.scene_params(store)
        scene_index = scene_index or zs.scene_indices(store)
    run = plan_cells(
        items,
        [cell],
        grid=grid,
        config=config,
        execution=execution,
        scene_index=scene_index,
        known=known,
    )
    if cell.name not in run.cells:
        raise InputError(f"no item has data in {cell}; nothing to composite")
    planned = run.cells[cell.name]
    ds = planned.dataset
    ds.attrs.update(planned.record["metrics"])
    return ds
