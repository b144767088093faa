"""The land-cover driver: land cover of every cell of a bbox into the global store.

:func:`landcover_store` is to land cover what :func:`s2cube.mosaic` is to the mosaic, and uses
its machinery: the store's writer lease, one write task per cell (shards, per-cell overview
levels, manifest record last, :mod:`s2cube.store.landcover`), finished cells skipped on a rerun
(its own manifest, so it resumes independently of the mosaic), coarse overviews once at the end.

Two sources, chosen by the model, each in its own module:

* **scenes** (:mod:`s2cube.landcover.run_scenes`: Dynamic World, ``unets-series``, any model
  whose bands the store's mosaic lacks): every clear scene of the catalog, pruned per date to
  the blocks a clear pixel needs, fused over the dates.
* **mosaic** (:mod:`s2cube.landcover.run_mosaic`: ``unets``): the U-net set on the store's own
  finished 4-band mosaic with a halo.  Only cells the mosaic has finished are classified; a
  cell the mosaic recorded as empty is recorded empty, one without a mosaic record (not run
  yet, or no scene reaches it: the mosaic records no such cell) is skipped, not recorded (a
  later run does it) and listed in the report's ``mosaic_unfinished``.

A rerun refuses finished cells made by another model, weights, options or dates
(:func:`check_landcover_resume`).  Model inference runs through :func:`s2cube.models.predict`
(``device="cuda"`` annotates the tasks with the ``GPU`` resource; ``None`` picks CUDA per
worker when there is one).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pystac

from ..errors import InputError
from ..execute import MosaicReport
from ..grid import DEFAULT_GRID, Cell, GlobalGrid, validate_bbox
from .kernels import LANDCOVER_CLASSES, LANDCOVER_COLORS
from .run_mosaic import MosaicUNets, load_mosaic_unets, mosaic_tasks
from .run_scenes import cell_landcover, clear_of, plan_looks, scene_tasks

__all__ = [
    "LandcoverOptions",
    "LandcoverReport",
    "MOSAIC_MODELS",
    "SERIES_MODELS",
    "MosaicUNets",
    "cell_landcover",
    "check_landcover_resume",
    "clear_of",
    "landcover_store",
    "load_mosaic_unets",
    "plan_looks",
]

#: model names that classify the store's own mosaic (source "mosaic") instead of scenes
MOSAIC_MODELS = ("unets",)
#: the U-net set run on every clear scene of the catalog and fused over the dates
#: (:func:`~s2cube.landcover.series.fuse_series`): the seed's multi-temporal step
SERIES_MODELS = ("unets-series",)
#: the model tile edge when none is given: Dynamic World's 256, the U-nets' 128
#: (:func:`~s2cube.landcover.wrapper.landcover_unets`' default)
DEFAULT_WINDOW = {"unets": 128, "unets-series": 128}


class LandcoverOptions:
    """The result-defining options of a land-cover run (recorded in every cell's record).

    ``window=None`` is 256 px for a scene model (Dynamic World) and 128 px for ``"unets"``;
    ``halo=None`` is ``window - 1`` (exact whatever the chunking).  The scene-fusion options
    (``method``, ``alpha``, ``snow_threshold``, ``dilation``) do not act on the mosaic source.
    """

    def __init__(
        self,
        *,
        model: str = "dynamicworld",
        method: str = "mean",
        alpha: float = 0.1,
        snow_threshold: float = 0.5,
        dilation: int = 1,
        window: int | None = None,
        overlap: int = 32,
        halo: int | None = None,
        cell_halo: int = 32,
        chunk: int = 512,
        precision: str = "fp32",
    ) -> None:
        if window is None:
            window = DEFAULT_WINDOW.get(model, 256)
        if method not in ("mean", "product"):
            raise InputError(f"method={method!r}; expected 'mean' or 'product'")
        if window < 16 or chunk < 16 or cell_halo < 0 or dilation < 0:
            raise InputError(
                f"window={window}, chunk={chunk} must be >= 16 px; cell_halo={cell_halo} and "
                f"dilation={dilation} >= 0"
            )
        if model in SERIES_MODELS and method != "mean":
            raise InputError(
                f"method={method!r} with model {model!r}: the U-nets are fused by the Dirichlet "
                "mean only (method='mean')"
            )
        if precision not in ("fp32", "bf16", "fp16"):
            raise InputError(f"precision={precision!r}; expected fp32, bf16 or fp16")
        self.model, self.method, self.alpha = model, method, float(alpha)
        self.snow_threshold, self.dilation = float(snow_threshold), int(dilation)
        self.window, self.overlap = int(window), int(overlap)
        self.halo = int(window - 1 if halo is None else halo)
        self.cell_halo, self.chunk, self.precision = int(cell_halo), int(chunk), precision

    def to_record(self) -> dict[str, Any]:
        return dict(vars(self))


# --------------------------------------------------------------------------- write task
def encode(packed: np.ndarray) -> dict[str, np.ndarray]:
    """``(3, y, x)`` float (class, confidence 0-1, dates) → the stored uint8 arrays.

    Confidence is stored in percent, rounded, at least 1 where a class is set (0 = none)."""
    cls = np.asarray(packed[0]).astype("uint8")
    conf = np.clip(np.rint(np.asarray(packed[1]) * 100), 1, 100).astype("uint8")
    dates = np.clip(np.asarray(packed[2]), 0, 255).astype("uint8")
    return {
        "landcover": cls,
        "landcover_confidence": np.where(cls > 0, conf, 0).astype("uint8"),
        "landcover_dates": dates,
    }


def write_task(
    store: Any,
    cell: Cell,
    packed: np.ndarray,
    crop: tuple[slice, slice],
    record: dict[str, Any],
    overviews: bool,
    lease: str | None,
) -> dict[str, Any]:
    """Runs on a worker: ``packed`` arrives computed; crop the halo, write, build the cell's
    per-cell overview levels."""
    from ..store.landcover import write_landcover_cell

    t0 = time.perf_counter()
    arrays = encode(np.asarray(packed)[:, crop[0], crop[1]])
    rec = write_landcover_cell(store, cell, arrays, record=record, lease=lease)
    if overviews:
        from ..overviews.landcover import build_cell_landcover_overviews

        build_cell_landcover_overviews(store, cell)
    rec["write_seconds"] = round(time.perf_counter() - t0, 3)
    return rec


# --------------------------------------------------------------------------- driver
@dataclass
class LandcoverReport(MosaicReport):
    """What a :func:`landcover_store` run did: a :class:`~s2cube.execute.MosaicReport` plus,
    for the mosaic source, the cells skipped because the mosaic has no record of them (not run
    yet, or no scene reaches them); they are not recorded, so a later run does them."""

    source: str = "scenes"
    mosaic_unfinished: list[str] = field(default_factory=list)


def _info(loaded: Any, options: LandcoverOptions, source: str) -> dict[str, Any]:
    return {
        "classes": {str(i + 1): c for i, c in enumerate(LANDCOVER_CLASSES)},
        "colors": {str(i + 1): LANDCOVER_COLORS[c] for i, c in enumerate(LANDCOVER_CLASSES)},
        "nodata": 0,
        "model": loaded.card.name,
        "model_product_level": getattr(loaded.card, "product_level", None),
        "source": source,
        "fusion": options.method if source == "scenes" else "none (one mosaic)",
        "docs": "docs/landcover.md",
    }


def landcover_store(
    store: str | os.PathLike[str] | Any,
    catalog: str | os.PathLike[str] | Sequence[pystac.Item] | None = None,
    *,
    bbox: Sequence[float],
    start: Any = None,
    end: Any = None,
    max_cloud: float | None = None,
    grid: GlobalGrid | None = None,
    options: LandcoverOptions | None = None,
    device: str | None = None,
    batch_size: int = 8,
    overviews: bool = True,
    overwrite: bool = False,
    client: Any = None,
    scheduler: str | None = None,
    progress: Any = False,
    search_kwargs: Mapping[str, Any] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    break_lease: bool = False,
    unet_weights: Mapping[str, Any] | None = None,
) -> Any:
    """Land cover of every cell touching ``bbox`` into the store (``landcover``,
    ``landcover_confidence``, ``landcover_dates``), resumable, under the store's lease.

    ``catalog`` is needed for a scene model (Dynamic World: its nine bands are searched);
    the mosaic model (``options.model="unets"``: the shipped U-nets) reads the store's own
    finished mosaic cells and takes no catalog, dates or cloud limit; ``unet_weights``
    (``{"water" | "vegetation" | "buildings": model.pt}``, from ``s2cube train landcover``)
    replaces shipped U-nets by the user's (and adds buildings, for which no weights ship).
    A rerun refuses finished cells made by other weights, options or dates
    (:func:`check_landcover_resume`).  The store is created
    (with ``grid``) if missing (a scene model only).  Returns a :class:`LandcoverReport`
    (cells written, skipped as finished, empty; for the mosaic source also the cells the
    mosaic has not finished, which are left for a later run).
    """
    from .. import store as zs
    from ..driver import find_items
    from ..execute import run_tasks
    from ..store.landcover import add_landcover, read_landcover_manifest

    t0 = time.perf_counter()
    options = options or LandcoverOptions()
    bbox_t = validate_bbox(bbox)
    loaded, source = _load_model(options.model, unet_weights)
    loc = zs.store_location(store, storage_options)
    if loc.is_local and not loc.path.is_absolute():
        loc = zs.store_location(str(loc.path.resolve()))
    zs.check_store_path(loc)
    if grid is None:
        grid = zs.store_grid(loc) if zs.is_store(loc) else DEFAULT_GRID
    items: list[pystac.Item] = []
    if source == "scenes":
        if catalog is None:
            raise InputError(
                f"model {loaded.card.name!r} classifies scenes: give a catalog with its bands "
                f"({', '.join(loaded.card.input_bands)})"
            )
        items = find_items(
            catalog,
            bbox=bbox_t,
            start=start,
            end=end,
            max_cloud=max_cloud,
            bands=tuple(loaded.card.input_bands),
            search_kwargs=search_kwargs,
        )
    else:
        given = {"catalog": catalog, "start": start, "end": end, "max_cloud": max_cloud}
        extra = [k for k, v in given.items() if v is not None]
        if extra:
            raise InputError(
                f"model {options.model!r} classifies the store's own mosaic and takes no "
                f"catalog, start, end or max_cloud (given: {', '.join(extra)}); the mosaic's "
                "dates are those of its `s2cube mosaic` run"
            )
        if not zs.is_store(loc):
            raise InputError(
                f"model {loaded.card.name!r} classifies the store's mosaic, and {loc.url!r} is "
                "not a store yet: run `s2cube mosaic` into it first"
            )
    cells = grid.cells_in_bbox(bbox_t)
    lease = zs.Lease(loc, break_lease=break_lease).acquire()
    lease.start()
    try:
        zs.create_store(loc, grid=grid)
        add_landcover(loc, _info(loaded, options, source))
        if overviews:
            from ..overviews.landcover import prepare_landcover_overviews

            prepare_landcover_overviews(loc)
        finished = read_landcover_manifest(loc) if not overwrite else {}
        done = {c.name for c in cells if c.name in finished}
        todo = [c for c in cells if c.name not in done]
        report = LandcoverReport(
            store=loc.url,
            cells=[c.name for c in cells],
            scenes=len(items),
            skipped=[c.name for c in cells if c.name in done],
            source=source,
        )
        query: dict[str, Any] = {"bbox": list(bbox_t)}
        if source == "scenes":
            query |= {"start": str(start), "end": str(end), "max_cloud": max_cloud}
        run_record = {
            "landcover": options.to_record(),
            "model": loaded.card.name,
            "source": source,
            "query": query,
        }
        check_landcover_resume(loc.url, {n: finished[n] for n in done}, run_record)
        from ..cluster import get_client

        client = get_client(scheduler, client=client)
        if source == "scenes":
            tasks = scene_tasks(
                loc, todo, items, grid, loaded, options, run_record, overviews, lease.owner,
                device, batch_size, client,
            )  # fmt: skip
        else:
            mosaic_done = zs.read_manifest(loc)
            report.mosaic_unfinished = [c.name for c in todo if c.name not in mosaic_done]
            todo = [c for c in todo if c.name in mosaic_done]
            tasks = mosaic_tasks(
                loc, todo, mosaic_done, grid, loaded, options, run_record, overviews,
                lease.owner, device, batch_size,
            )  # fmt: skip
        run_tasks(tasks, report, client=client, progress=progress)
        if overviews and todo:
            from ..overviews.landcover import build_coarse_landcover_overviews

            build_coarse_landcover_overviews(loc, [*todo])
    finally:
        lease.release()
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


#: options that do not change a land-cover cell's pixels (the map is the same for any
#: chunking: tested), so a resume may differ in them
_NEUTRAL_OPTIONS = frozenset({"chunk"})


def check_landcover_resume(
    url: str, finished: Mapping[str, Mapping[str, Any]], run_record: Mapping[str, Any]
) -> None:
    """A rerun skips finished land-cover cells: refuse it when they were made by another model
    (other weights), source, options or dates, which would silently mix two maps."""
    want_opts = dict(run_record["landcover"])
    want_q = {k: v for k, v in run_record["query"].items() if k != "bbox"}
    for name, rec in sorted(finished.items()):
        diff: list[str] = []
        for key in ("model", "source"):
            if rec.get(key) != run_record[key]:
                diff.append(f"{key}={rec.get(key)!r} (now {run_record[key]!r})")
        if "landcover" not in rec:
            continue  # a record of a version that did not keep the run's options
        old_opts = dict(rec["landcover"] or {})
        for key in sorted((set(old_opts) | set(want_opts)) - _NEUTRAL_OPTIONS):
            if old_opts.get(key) != want_opts.get(key):
                diff.append(f"{key}={old_opts.get(key)!r} (now {want_opts.get(key)!r})")
        old_q = dict(rec.get("query") or {})
        for key in sorted(want_q):
            if old_q.get(key) != want_q[key]:
                diff.append(f"{key}={old_q.get(key)!r} (now {want_q[key]!r})")
        if diff:
            raise InputError(
                f"store {url!r} already holds land cover of cell {name} made with other options "
                f"({'; '.join(diff[:4])}); resuming would mix two maps. Pass --overwrite to "
                "recompute the cells, or write to another store"
            )


def _load_model(name: str, unet_weights: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The model and its source: ``mosaic`` (``"unets"``: the U-net set classifies the
    store's own 4-band mosaic; ``unet_weights`` replaces shipped members by the user's) or
    ``scenes`` (any other model: it classifies each scene of the catalog).  A single trained
    U-net ``model.pt`` is not a mosaic model: the U-nets run as a set."""
    from ..models import load_model

    unet_weights = {k: v for k, v in (unet_weights or {}).items() if v is not None}
    if name in MOSAIC_MODELS:
        return load_mosaic_unets(unet_weights), "mosaic"
    if name in SERIES_MODELS:
        return load_mosaic_unets(unet_weights), "scenes"
    if unet_weights:
        raise InputError(
            f"U-net weights ({', '.join(sorted(unet_weights))}) are for --model unets or "
            f"unets-series, not {name!r}"
        )
    return load_model(name), "scenes"
