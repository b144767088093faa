"""The mosaic pipeline: search → per-cell lazy composite → one write task per cell.

This module only wires the stages together (no raster logic of its own):

    items ──▶ cells touching the area ──▶ for each cell not yet finished:
        load (stackstac, halo) ──▶ mask (SCL, dilation) ──▶ composite (priority)
        ──▶ crop the halo ──▶ write_cell (the cell's shards, then its manifest record)

Every cell becomes one ``write_cell`` task that depends on that cell's chunk tasks, so chunk
work spreads over the cluster while each shard has exactly one writer.  The scene table is
written by the driver before any task starts, so scene indices are stable, and a rerun after
an interruption recomputes exactly the unfinished cells and gives an identical store.
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pystac
import xarray as xr

from .composite import composite
from .composite import priority_order
from .cube import DEFAULT_BANDS, _check_bands, items_touching, load
from .errors import InputError
from .grid import DEFAULT_GRID, Cell, GlobalGrid, validate_bbox
from .mask import mask
from .search import parse_dates, search
from .store import (
    check_store_path,
    create_store,
    forget_cell,
    read_manifest,
    register_scenes,
    store_grid,
    write_cell,
)

__all__ = ["MosaicConfig", "MosaicReport", "composite_cell", "mosaic"]


@dataclass(frozen=True)
class MosaicConfig:
    """How a cell is composited (hashable, so it can travel into task keys)."""

    bands: tuple[str, ...] = DEFAULT_BANDS
    priority: str = "recent"
    cloud_dilation: int = 2
    shadow_dilation: int = 2
    resampling: str = "nearest"
    chunksize: int | None = None
    strict: bool = False
    overviews: bool = True

    @property
    def halo(self) -> int:
        """Pixels read around a cell so dilation near its edge sees clouds in the neighbour."""
        return max(self.cloud_dilation, self.shadow_dilation)


@dataclass
class MosaicReport:
    """What a :func:`mosaic` run did."""

    store: str
    cells: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    scenes: int = 0
    seconds: float = 0.0
    dashboard: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def composite_cell(
    items: Sequence[pystac.Item],
    cell: Cell,
    *,
    grid: GlobalGrid = DEFAULT_GRID,
    config: MosaicConfig = MosaicConfig(),
    scene_index: Mapping[str, int] | None = None,
) -> xr.Dataset:
    """Lazy priority composite of one cell, cropped to the cell (halo removed).

    Examples
    --------
    >>> ds = s2cube.composite_cell(items, grid.cell_of(15.9, 46.1), grid=grid)  # doctest: +SKIP
    >>> ds.red.plot.imshow()  # doctest: +SKIP
    """
    cube = load(
        items,
        cell,
        grid=grid,
        bands=config.bands,
        halo=config.halo,
        chunksize=config.chunksize,
        resampling=config.resampling,
        strict=config.strict,
    )
    codes = mask(cube, dilation={"cloud": config.cloud_dilation, "shadow": config.shadow_dilation})
    ids = cube.coords["id"].values.tolist()
    index = [scene_index[i] for i in ids] if scene_index is not None else None
    ds = composite(cube, codes, priority=config.priority, scene_index=index)
    h = config.halo
    if h:
        ds = ds.isel(latitude=slice(h, -h), longitude=slice(h, -h))
    ds.attrs["halo"] = 0
    ds.attrs["scenes_considered"] = len(ids)
    return ds


def _write_task(
    store: str, cell: Cell, ds: xr.Dataset, record: dict[str, Any], overviews: bool
) -> dict[str, Any]:
    """Runs on a worker: ``ds`` arrives computed (numpy-backed)."""
    t0 = time.perf_counter()
    rec = write_cell(store, cell, ds, record=record)
    rec["write_seconds"] = round(time.perf_counter() - t0, 3)
    if overviews:
        from .overviews import build_cell_overviews

        # the per-cell overview levels live in this cell's own shards: still one writer
        build_cell_overviews(store, cell)
    return rec


def _empty_task(store: str, cell: Cell, grid_dict: dict[str, Any]) -> dict[str, Any]:
    from .store import _atomic_write_json, _manifest_dir

    grid = GlobalGrid.from_dict(grid_dict)
    rec = {
        "cell": cell.name,
        "row": cell.row,
        "col": cell.col,
        "bounds": list(grid.cell_bounds(cell)),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "empty": True,
        "n_pixels": grid.cell_pixels**2,
        "n_composited": 0,
        "n_nodata": grid.cell_pixels**2,
        "n_without_clear": grid.cell_pixels**2,
        "scenes_used": [],
    }
    _atomic_write_json(_manifest_dir(Path(store)) / f"{cell.name}.json", rec)
    return rec


def _resolve_client(client: Any, scheduler: str | None) -> Any:
    if client is not None:
        return client
    if scheduler:
        from distributed import Client

        try:
            return Client(scheduler, timeout="10s")
        except OSError as exc:
            raise InputError(
                f"cannot connect to the dask scheduler at {scheduler!r}: {exc}; start one with "
                "`dask scheduler` or leave --scheduler out to use a local cluster"
            ) from exc
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def mosaic(
    catalog: str | Path | Sequence[pystac.Item],
    *,
    store: str | Path,
    bbox: Sequence[float],
    start: Any = None,
    end: Any = None,
    max_cloud: float | None = None,
    grid: GlobalGrid | None = None,
    config: MosaicConfig | None = None,
    client: Any = None,
    scheduler: str | None = None,
    overwrite: bool = False,
    progress: bool | Callable[[str, dict[str, Any]], None] = False,
    search_kwargs: Mapping[str, Any] | None = None,
) -> MosaicReport:
    """Composite every cell touching ``bbox`` and write it into the global store.

    Parameters
    ----------
    catalog
        Anything :func:`s2cube.search` accepts, or a list of STAC items.
    store
        Store path; created if missing (with ``grid``), resumed if it exists.
    bbox
        Lon/lat area ``(west, south, east, north)``; every cell it touches is processed.
    start, end, max_cloud
        Search filters.
    grid
        Global grid (default: the store's grid, or the WorldCover grid for a new store).
    config
        Compositing options (:class:`MosaicConfig`).
    client, scheduler
        A ``distributed.Client`` or a scheduler address.  Without either, an active default
        client is used, else dask's local threaded scheduler.
    overwrite
        Recompute cells that are already finished (default: skip them, i.e. resume).
    progress
        True for a tqdm progress bar, or a callback ``f(cell_name, record)``.

    Returns
    -------
    MosaicReport

    Examples
    --------
    >>> report = s2cube.mosaic("earth-search", store="mosaic.zarr", bbox=(15.9, 46.0, 16.1, 46.2),
    ...                        start="2023-08-01", end="2023-08-31", max_cloud=60)  # doctest: +SKIP
    """
    import dask

    t0 = time.perf_counter()
    config = config or MosaicConfig()
    bbox_t = validate_bbox(bbox)
    # validate everything before anything is read or written
    parse_dates(start, end)
    _check_bands(config.bands)
    priority_order([], priority=config.priority, cloud_cover=[])
    store_p = Path(store)
    check_store_path(store_p)
    if grid is None:
        from .store import is_store

        grid = store_grid(store_p) if is_store(store_p) else DEFAULT_GRID

    if isinstance(catalog, (str, Path)):
        items = search(
            catalog,
            bbox=bbox_t,
            start=start,
            end=end,
            max_cloud=max_cloud,
            bands=config.bands,
            **dict(search_kwargs or {}),
        )
    else:
        from .search import normalize_items

        items = normalize_items(catalog, bands=(*config.bands, "scl"))
        if not items:
            from .errors import EmptySearchError

            raise EmptySearchError("no usable item was given; nothing to composite")

    cells = grid.cells_in_bbox(bbox_t)
    create_store(store_p, grid=grid, bands=config.bands)
    done = set(read_manifest(store_p))
    report = MosaicReport(store=str(store_p), cells=[c.name for c in cells])
    todo: list[Cell] = []
    for cell in cells:
        if cell.name in done and not overwrite:
            report.skipped.append(cell.name)
        else:
            todo.append(cell)

    scene_index = register_scenes(store_p, items)
    if config.overviews:
        from .overviews import prepare_overviews

        prepare_overviews(store_p)
    report.scenes = len(items)
    tasks = []
    run_record = {
        "priority": config.priority,
        "cloud_dilation": config.cloud_dilation,
        "shadow_dilation": config.shadow_dilation,
        "resampling": config.resampling,
        "query": {"bbox": list(bbox_t), "start": str(start), "end": str(end), "max_cloud": max_cloud},
    }
    for cell in todo:
        if overwrite:
            forget_cell(store_p, cell)
        cell_items = items_touching(items, grid.cell_bounds(cell, halo=config.halo))
        if not cell_items:
            tasks.append((cell, dask.delayed(_empty_task, pure=False)(str(store_p), cell, grid.to_dict())))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            ds = composite_cell(cell_items, cell, grid=grid, config=config, scene_index=scene_index)
        record = {**run_record, "scenes_considered": len(cell_items)}
        tasks.append(
            (cell, dask.delayed(_write_task, pure=False, name=f"write-{cell.name}")(str(store_p), cell, ds, record, config.overviews))
        )

    client = _resolve_client(client, scheduler)
    report.dashboard = getattr(client, "dashboard_link", None) if client is not None else None
    callback = progress if callable(progress) else None
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc="cells", unit="cell")
    try:
        if client is not None and tasks:
            from distributed import as_completed

            futures = client.compute([t for _, t in tasks])
            names = {f.key: c for (c, _), f in zip(tasks, futures, strict=True)}
            for fut in as_completed(futures):
                rec = fut.result()
                _account(report, names[fut.key], rec, bar, callback)
        else:
            for cell, task in tasks:
                (rec,) = dask.compute(task)
                _account(report, cell, rec, bar, callback)
    finally:
        if bar is not None:
            bar.close()
    if config.overviews:
        from .overviews import build_overviews

        # coarse levels span many cells: one driver-side step after every cell is finished;
        # it also repairs per-cell levels left stale by an interrupted earlier run
        build_overviews(store_p, coarse=True)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _account(
    report: MosaicReport,
    cell: Cell,
    rec: dict[str, Any],
    bar: Any,
    callback: Callable[[str, dict[str, Any]], None] | None,
) -> None:
    (report.empty if rec.get("empty") else report.written).append(cell.name)
    if bar is not None:
        bar.update(1)
    if callback is not None:
        callback(cell.name, rec)
