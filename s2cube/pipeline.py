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

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import xarray as xr

from .cellgraph import CompositeSpec, cell_composite
from .composite import priority_order
from .cube import DEFAULT_BANDS, _check_bands, items_touching
from .errors import InputError
from .grid import DEFAULT_GRID, Cell, GlobalGrid, validate_bbox
from .search import parse_dates, search
from .store import (
    store_metadata,
    update_scene_params,
    write_empty_cell,
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
    """How cells are composited (hashable, so it can travel into task keys).

    Attributes
    ----------
    bands
        Reflectance bands to composite.
    priority
        ``"recent"``, ``"cloud"`` or ``"target:YYYY-MM-DD"``.
    cloud_dilation, shadow_dilation
        Pixels to grow SCL clouds and shadows by.
    plan
        Read only the scenes each block needs (coarse look first); ``False`` reads every
        candidate (same result, more reads).
    plan_factor
        Decimation of the coarse look (grid pixels per coarse pixel; a divisor of the cell).
    block
        Processing block edge in pixels (default: a quarter of the cell, at most 1024 px).
    harmonize
        ``"linear"`` (robust gain/offset), ``"histogram"`` (quantile matching) or ``"none"``.
    reference
        Reference palette: ``"composite"`` (coarse median of clear observations), ``"best"``
        (the least cloudy scene) or the path of an s2cube store.
    blend, blend_width
        Seam blending (``"feather"``, ``"multiband"``, ``"none"``) over ``blend_width`` px.
    haze_threshold
        Scenes whose median HOT exceeds this are demoted to the end (``None``: off).
    """

    bands: tuple[str, ...] = DEFAULT_BANDS
    priority: str = "recent"
    cloud_dilation: int = 2
    shadow_dilation: int = 2
    resampling: str = "nearest"
    strict: bool = False
    overviews: bool = True
    plan: bool = True
    plan_factor: int = 8
    block: int | None = None
    harmonize: str = "linear"
    reference: str = "composite"
    blend: str = "feather"
    blend_width: int = 8
    haze_threshold: float | None = 0.05
    mask_method: str = "scl"
    model: str = "csmask-l2a-4b"
    #: grid pixels per model pixel (None: from the grid, ~30 m model pixels)
    model_factor: int | None = None
    #: context (grid px) the learned mask gets around each block; None = the model's whole
    #: window (exactly tiling-invariant), smaller is faster but approximate
    model_context: int | None = None

    @property
    def spec(self) -> CompositeSpec:
        factor = self.model_factor or 1
        context = self.model_context if self.model_context is not None else 255 * factor
        return CompositeSpec(
            bands=tuple(self.bands), cloud_dilation=self.cloud_dilation,
            shadow_dilation=self.shadow_dilation, blend=self.blend, blend_width=self.blend_width,
            resampling=self.resampling, strict=self.strict, mask_method=self.mask_method,
            model=self.model, model_context=context if self.mask_method != "scl" else 0,
            model_factor=factor,
        )  # fmt: skip

    def for_grid(self, grid: GlobalGrid) -> MosaicConfig:
        """Resolve grid-dependent defaults (the learned mask's pixel factor)."""
        if self.mask_method == "scl" or self.model_factor is not None:
            return self
        import dataclasses

        pixel_m = float(grid.resolution) * 111_320.0
        return dataclasses.replace(self, model_factor=max(1, round(30.0 / pixel_m)))

    @property
    def halo(self) -> int:
        """Pixels of context around a cell (dilation + blending)."""
        return self.spec.halo

    def validate(self) -> None:
        """Raise :class:`InputError` for a bad option (before any read or write)."""
        _check_bands(self.bands)
        priority_order([], priority=self.priority, cloud_cover=[])
        if self.harmonize not in ("linear", "histogram", "none"):
            raise InputError(f"harmonize={self.harmonize!r}; choose 'linear', 'histogram' or 'none'")
        if self.blend not in ("feather", "multiband", "none"):
            raise InputError(f"blend={self.blend!r}; choose 'feather', 'multiband' or 'none'")
        if self.blend_width < 0 or self.cloud_dilation < 0 or self.shadow_dilation < 0:
            raise InputError("blend_width and dilations must be >= 0 pixels")
        if self.mask_method not in ("scl", "model", "combined"):
            raise InputError(f"mask_method={self.mask_method!r}; choose 'scl', 'model' or 'combined'")
        if self.mask_method != "scl":
            from .errors import require

            require("torch", "ml")
            missing = {"blue", "green", "red", "nir"} - set(self.bands)
            if missing:
                raise InputError(f"mask_method={self.mask_method!r} needs bands {sorted(missing)}")
        if self.plan_factor < 1:
            raise InputError(f"plan_factor={self.plan_factor} must be >= 1")
        if self.reference not in ("composite", "best"):
            from .store import is_store

            if not is_store(self.reference):
                raise InputError(
                    f"reference={self.reference!r} is neither 'composite', 'best' nor an s2cube store"
                )


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


def _factor(grid: GlobalGrid, wanted: int) -> int:
    """Largest divisor of the cell width not above ``wanted`` (coarse pixels tile cells exactly)."""
    n = grid.cell_pixels
    f = max(1, min(wanted, n))
    while n % f:
        f -= 1
    return f


def candidates_for(
    items: Sequence[pystac.Item], cell: Cell, *, grid: GlobalGrid, config: MosaicConfig
) -> list[pystac.Item]:
    """Items touching a cell (with its halo) in priority order (before haze demotion)."""
    touching = items_touching(items, grid.cell_bounds(cell, halo=config.halo + config.plan_factor))
    if not touching:
        return []
    order = priority_order(
        [np.datetime64(it.datetime.replace(tzinfo=None)) for it in touching],
        priority=config.priority,
        cloud_cover=[it.properties.get("eo:cloud_cover", 0.0) for it in touching],
        ids=[it.id for it in touching],
    )
    return [touching[i] for i in order]


def _look_task(item: pystac.Item, cell: Cell, grid: GlobalGrid, config: MosaicConfig) -> Any:
    """One scene's coarse look over one cell (one task per scene, so looks run in parallel)."""
    from .plan import LOOK_BANDS, coarse_window, read_coarse_look

    f = _factor(grid, config.plan_factor)
    bounds, shape = coarse_window(grid, cell, config.halo, f)
    with_bands = config.harmonize != "none" or config.haze_threshold is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_coarse_look(item, bounds, shape, factor=f, cloud_dilation=config.cloud_dilation,
                                shadow_dilation=config.shadow_dilation,
                                # band looks only feed harmonization and the haze score
                                bands=LOOK_BANDS if with_bands else None)  # fmt: skip


def _survey_task(
    candidates: list[pystac.Item], cell: Cell, grid: GlobalGrid, config: MosaicConfig,
    reference_scene: str | None, reference: np.ndarray | None, looks: list[Any],
) -> dict[str, Any]:
    from .plan import survey_cell

    f = _factor(grid, config.plan_factor)
    return survey_cell(candidates, cell, grid=grid, halo=config.halo, factor=f,
                       reference=reference, reference_scene=reference_scene, looks=looks)  # fmt: skip


def _reference_from_store(path: str, grid: GlobalGrid, cell: Cell, config: MosaicConfig) -> np.ndarray | None:
    from .plan import coarse_window
    from .store import open_store

    f = _factor(grid, config.plan_factor)
    bounds, shape = coarse_window(grid, cell, config.halo, f)
    ref = open_store(path, bbox=bounds, chunks=False)
    if ref.sizes["latitude"] == 0 or ref.sizes["longitude"] == 0:
        return None
    lats = np.linspace(bounds[3], bounds[1], shape[0], endpoint=False) - (bounds[3] - bounds[1]) / shape[0] / 2
    lons = np.linspace(bounds[0], bounds[2], shape[1], endpoint=False) + (bounds[2] - bounds[0]) / shape[1] / 2
    sub = ref[["blue", "green", "red", "nir"]].sel(latitude=lats, longitude=lons, method="nearest")
    arr = np.stack([sub[b].values for b in ("blue", "green", "red", "nir")]).astype("float64")
    return np.where(arr > 0, arr, np.nan)


def _fit_scene_params(
    surveys: Mapping[str, dict[str, Any]], config: MosaicConfig, known: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, float], dict[str, list[Any]]]:
    """Per-scene haze scores and per-band transfer knots (stored values win: stable across runs)."""
    from .harmonize.radiometry import IDENTITY, fit_transfer
    from .plan import haze_score

    haze_samples: dict[str, list[np.ndarray]] = {}
    pairs: dict[str, list[np.ndarray]] = {}
    for sv in surveys.values():
        for sid, hot in sv["haze"].items():
            haze_samples.setdefault(sid, []).append(hot)
        for sid, pr in sv["pairs"].items():
            pairs.setdefault(sid, []).append(pr)
    haze: dict[str, float] = {}
    knots: dict[str, list[Any]] = {}
    band_pos = {b: i for i, b in enumerate(("blue", "green", "red", "nir"))}
    for sid in set(haze_samples) | set(known):
        if sid in known and known[sid].get("haze") is not None:
            haze[sid] = float(known[sid]["haze"])
        else:
            haze[sid] = haze_score(haze_samples.get(sid, []))
        if sid in known and known[sid].get("knots") is not None and known[sid].get("harmonize") == config.harmonize:
            knots[sid] = [tuple(map(tuple, k)) for k in known[sid]["knots"]]
            continue
        got = pairs.get(sid, [])
        per_band = []
        for band in config.bands:
            if config.harmonize == "none" or band not in band_pos or not got:
                per_band.append(IDENTITY)
                continue
            i = band_pos[band]
            x = np.concatenate([p[0][i] for p in got])
            y = np.concatenate([p[1][i] for p in got])
            per_band.append(fit_transfer(x, y, config.harmonize))
        knots[sid] = per_band
    return haze, knots


@dataclass
class PreparedCells:
    """Lazy composites of many cells, planned together (what :func:`prepare_cells` returns)."""

    datasets: dict[str, xr.Dataset] = field(default_factory=dict)
    stats: dict[str, list[Any]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    plans: dict[str, Any] = field(default_factory=dict)
    haze: dict[str, float] = field(default_factory=dict)
    knots: dict[str, list[Any]] = field(default_factory=dict)

    def scene_params(self, config: MosaicConfig) -> dict[str, dict[str, Any]]:
        return {
            sid: {"haze": None if not np.isfinite(self.haze.get(sid, np.nan)) else self.haze[sid],
                  "knots": [list(map(list, k)) for k in self.knots[sid]],
                  "harmonize": config.harmonize, "bands": list(config.bands)}
            for sid in self.knots
        }  # fmt: skip


def _colour_metrics(sample: dict[str, Any], knots: Mapping[str, list[Any]], bands: Sequence[str]) -> dict[str, float]:
    """Mean |difference| between overlapping scenes on shared clear pixels, before/after harmonization."""
    from .harmonize.radiometry import apply_knots
    from .mask import CLEAR

    ids = sample["ids"]
    codes, vals = sample["codes"], sample["bands"]
    pos = {b: i for i, b in enumerate(("blue", "green", "red", "nir"))}
    use = [(j, pos[b]) for j, b in enumerate(bands) if b in pos]
    raw = np.zeros((len(ids), len(use), codes.shape[1]), "float64")
    har = np.zeros_like(raw)
    for k, sid in enumerate(ids):
        for u, (j, i) in enumerate(use):
            raw[k, u] = vals[k, i]
            har[k, u] = apply_knots(vals[k, i].astype("uint16"), knots[sid][j]) if sid in knots else vals[k, i]
    tot_r = tot_h = 0.0
    n = 0
    mean_refl = []
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            ok = (codes[a] == CLEAR) & (codes[b] == CLEAR)
            if ok.sum() < 30:
                continue
            tot_r += np.abs(raw[a][:, ok] - raw[b][:, ok]).sum()
            tot_h += np.abs(har[a][:, ok] - har[b][:, ok]).sum()
            n += int(ok.sum()) * len(use)
            mean_refl.append(raw[a][:, ok].mean())
    if n == 0:
        return {}
    scale = float(np.mean(mean_refl)) or 1.0
    return {"colour_diff_raw": tot_r / n, "colour_diff_harmonized": tot_h / n,
            "colour_diff_raw_rel": tot_r / n / scale, "colour_diff_harmonized_rel": tot_h / n / scale}  # fmt: skip


def prepare_cells(
    items: Sequence[pystac.Item],
    cells: Sequence[Cell],
    *,
    grid: GlobalGrid,
    config: MosaicConfig,
    scene_index: Mapping[str, int] | None = None,
    known: Mapping[str, dict[str, Any]] | None = None,
    client: Any = None,
) -> PreparedCells:
    """Survey, plan and build the lazy composites of ``cells`` (the driver side of a run).

    1. coarse looks of every cell's candidates (in parallel: one task per cell);
    2. per scene: haze score and transfer knots (``known`` values from a store win);
    3. per cell: final priority order, block plans, lazy composite and its record.
    """
    import dask

    from .plan import demote_hazy, plan_blocks

    known = known or {}
    config = config.for_grid(grid)
    index = dict(scene_index) if scene_index is not None else {it.id: i for i, it in enumerate(items)}
    by_id = {it.id: it for it in items}
    best = None
    if config.reference == "best" and items:
        best = min(items, key=lambda it: (it.properties.get("eo:cloud_cover", 100.0), it.id)).id
    cands = {c.name: candidates_for(items, c, grid=grid, config=config) for c in cells}
    survey_tasks = {}
    for c in cells:
        if not cands[c.name]:
            continue
        ref = None
        if config.reference not in ("composite", "best"):
            ref = _reference_from_store(config.reference, grid, c, config)
        looks = [dask.delayed(_look_task, pure=True)(it, c, grid, config) for it in cands[c.name]]
        survey_tasks[c.name] = dask.delayed(_survey_task, pure=True)(
            cands[c.name], c, grid, config, best, ref, looks
        )
    if client is not None and survey_tasks:
        futures = client.compute(list(survey_tasks.values()))
        surveys = dict(zip(survey_tasks, client.gather(futures), strict=True))
    else:
        (surveys,) = dask.compute(survey_tasks) if survey_tasks else ({},)
    haze, knots = _fit_scene_params(surveys, config, known)
    out = PreparedCells(haze=haze, knots=knots)
    spec = config.spec
    f = _factor(grid, config.plan_factor)
    # blocks small enough that the plan can stop early in most of them, large enough that the
    # halo re-reads stay small: a quarter of a cell, at most 1024 px
    block = config.block or max(min(1024, grid.cell_pixels // 4), min(256, grid.cell_pixels))
    dates = {index[it.id]: np.datetime64(it.datetime.replace(tzinfo=None), "ns") for it in items}
    for c in cells:
        if c.name not in surveys:
            continue
        sv = surveys[c.name]
        ids = [it.id for it in cands[c.name]]
        order = demote_hazy(ids, haze, config.haze_threshold)
        plan = plan_blocks(sv["codes"], grid=grid, cell=c, candidates=ids, order=order, block=block,
                           halo=spec.blend_halo + 1, factor=f, plan=config.plan)  # fmt: skip
        if not any(b.candidates_with_data for b in plan.blocks):
            continue
        ds, stats = cell_composite(by_id, plan, grid=grid, spec=spec, knots=knots,
                                   scene_index=index, scene_dates=dates)  # fmt: skip
        metrics = {"read_fraction": plan.read_fraction,
                   "read_fraction_pixels": ds.attrs["read_fraction_pixels"],
                   **_colour_metrics(sv["sample"], knots, config.bands)}  # fmt: skip
        out.datasets[c.name] = ds
        out.stats[c.name] = stats
        out.plans[c.name] = plan
        out.records[c.name] = {
            "scenes_considered": len(ids),
            "scenes_planned": plan.scenes_used(),
            "hazy_scenes": [i for i in ids if haze.get(i, -1.0) > (config.haze_threshold or np.inf)],
            "metrics": metrics,
        }
    return out


def composite_cell(
    items: Sequence[pystac.Item],
    cell: Cell,
    *,
    grid: GlobalGrid = DEFAULT_GRID,
    config: MosaicConfig = MosaicConfig(),
    scene_index: Mapping[str, int] | None = None,
    store: str | Path | None = None,
) -> xr.Dataset:
    """Lazy planned, harmonized, blended priority composite of one cell (halo removed).

    Scene transfer functions and haze scores are fitted on this cell alone, unless ``store`` is
    given: then the store's scene table (its fitted parameters and scene indices) is used, so
    the result equals what the store holds for this cell.

    Examples
    --------
    >>> ds = s2cube.composite_cell(items, grid.cell_of(15.9, 46.1), grid=grid)  # doctest: +SKIP
    >>> ds.red.plot.imshow()  # doctest: +SKIP
    """
    from .search import normalize_items

    config.validate()
    done = all("s2cube:boa_offset" in it.properties for it in items)
    items = list(items) if done else normalize_items(items, bands=(*config.bands, "scl"))
    known = None
    if store is not None:
        table = store_metadata(store).get("scenes", [])
        known = {s["id"]: s for s in table}
        scene_index = scene_index or {s["id"]: s["index"] for s in table}
    prepared = prepare_cells(items, [cell], grid=grid, config=config, scene_index=scene_index,
                             known=known)  # fmt: skip
    if cell.name not in prepared.datasets:
        raise InputError(f"no item has data in {cell}; nothing to composite")
    ds = prepared.datasets[cell.name]
    ds.attrs.update(prepared.records[cell.name]["metrics"])
    return ds


def _write_task(
    store: str, cell: Cell, ds: xr.Dataset, record: dict[str, Any], overviews: bool,
    stats: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Runs on a worker: ``ds`` and ``stats`` arrive computed (numpy-backed)."""
    from .harmonize.metrics import seam_metric

    t0 = time.perf_counter()
    record = dict(record)
    metrics = dict(record.pop("metrics", {}))
    bands = np.stack([ds[b].values for b in ds.data_vars if ds[b].dtype == np.uint16
                      and b != "clear_count"])  # fmt: skip
    metrics["seam"] = seam_metric(bands, ds["scene"].values)
    if stats:
        metrics["blocks"] = len(stats)
        metrics["fallback_blocks"] = int(sum(st["fallback"] for st in stats))
        metrics["scene_blocks_read"] = int(sum(st["scenes_read"] for st in stats))
    record["metrics"] = metrics
    rec = write_cell(store, cell, ds, record=record)
    rec["write_seconds"] = round(time.perf_counter() - t0, 3)
    if overviews:
        from .overviews import build_cell_overviews

        # the per-cell overview levels live in this cell's own shards: still one writer
        build_cell_overviews(store, cell)
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
    config.validate()
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
    client = _resolve_client(client, scheduler)
    known = {s["id"]: s for s in store_metadata(store_p).get("scenes", [])}
    prepared = prepare_cells(items, todo, grid=grid, config=config, known=known,
                             scene_index=scene_index, client=client)  # fmt: skip
    update_scene_params(store_p, prepared.scene_params(config))
    run_record = {
        "priority": config.priority,
        "cloud_dilation": config.cloud_dilation,
        "shadow_dilation": config.shadow_dilation,
        "resampling": config.resampling,
        "harmonize": config.harmonize,
        "reference": config.reference,
        "blend": f"{config.blend}:{config.blend_width}",
        "query": {"bbox": list(bbox_t), "start": str(start), "end": str(end), "max_cloud": max_cloud},
    }
    tasks = []
    for cell in todo:
        if overwrite:
            forget_cell(store_p, cell)
        if cell.name not in prepared.datasets:
            tasks.append((cell, dask.delayed(write_empty_cell, pure=False)(str(store_p), cell)))
            continue
        ds = prepared.datasets[cell.name]
        record = {**run_record, **prepared.records[cell.name]}
        write = dask.delayed(_write_task, pure=False, name=f"write-{cell.name}")
        tasks.append((cell, write(str(store_p), cell, ds, record, config.overviews,
                                  prepared.stats[cell.name])))  # fmt: skip

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
