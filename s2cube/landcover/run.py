"""The land-cover driver: land cover of every cell of a bbox into the global store.

:func:`landcover_store` is to land cover what :func:`s2cube.mosaic` is to the mosaic, and uses
its machinery: the store's writer lease, one write task per cell (shards, per-cell overview
levels, manifest record last, :mod:`s2cube.store.landcover`), finished cells skipped on a rerun
(its own manifest, so it resumes independently of the mosaic), coarse overviews once at the end.

Two sources, chosen by the model:

* **scenes** (Dynamic World, any model whose bands the store's mosaic lacks): the candidate
  scenes of each cell from the catalog (searched with the model's bands), a *look* at their SCL
  first (:func:`plan_looks`: one small array per cell and date says which dask blocks have a
  clear pixel), then per date the model only on blocks with a clear pixel and the bands read
  only for blocks within the model's reach of one (``window - 1`` px), then the clear-masked
  Dirichlet fusion (:func:`~s2cube.landcover.kernels.fuse`).  Pruning is exact: a skipped
  block has no clear pixel within reach, so no fused pixel can change (tested).
* **mosaic** (``model="unets"``: the seed's U-nets on the 4-band mosaic,
  :mod:`s2cube.landcover.unets`, the shipped weights): the store's own red/green/blue/nir of
  the cell plus ``cell_halo`` px of its neighbours (read as the super-resolution driver reads
  a parent cell, :func:`~s2cube.store.superres.read_parent_window`), then
  :func:`~s2cube.landcover.wrapper.landcover_unets`, one "date": ``landcover_dates`` is 1
  where the mosaic has data.  Only cells the mosaic has finished are classified; a cell the
  mosaic recorded as empty is recorded empty, one without a mosaic record (not run yet, or no
  scene reaches it: the mosaic records no such cell) is skipped, not recorded (a later run
  does it) and listed in the report's ``mosaic_unfinished``.

Model inference runs through :func:`s2cube.models.predict` (``device="cuda"`` annotates the
tasks with the ``GPU`` resource; ``None`` picks CUDA per worker when there is one).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pystac

from ..errors import InputError
from ..execute import MosaicReport
from ..grid import DEFAULT_GRID, Cell, GlobalGrid, validate_bbox
from .kernels import LANDCOVER_CLASSES, LANDCOVER_COLORS, fuse

__all__ = [
    "LandcoverOptions",
    "LandcoverReport",
    "MOSAIC_MODELS",
    "cell_landcover",
    "landcover_store",
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


# --------------------------------------------------------------------------- scenes source
def _clear_block(scl: np.ndarray, dilation: int) -> np.ndarray:
    from ..mask import CLEAR, dilate_mask, scl_to_mask

    codes = scl_to_mask(np.asarray(scl))
    if dilation:
        codes = dilate_mask(codes, cloud=dilation, shadow=dilation)
    return codes == CLEAR


def clear_of(cube: Any, dilation: int) -> Any:
    """``(time, y, x)`` bool dask array: SCL says clear (clouds/shadows dilated) and has data."""
    import dask.array as da

    scl = cube.sel(band="scl").data
    if not isinstance(scl, da.Array):
        return _clear_block(scl, dilation)
    depth = {0: 0, 1: dilation, 2: dilation}
    return da.map_overlap(
        _clear_block,
        scl,
        depth=depth,
        boundary="none",
        dtype=bool,
        meta=np.empty((0, 0, 0), bool),
        dilation=dilation,
    )


def _any_block(b: np.ndarray) -> np.ndarray:
    return np.asarray(np.asarray(b).any(axis=(1, 2)))[:, None, None]


def plan_looks(clear: Any) -> Any:
    """Per date and dask block: does the block hold a clear pixel?  ``(time, nby, nbx)``."""
    import dask.array as da

    chunks = (clear.chunks[0], (1,) * clear.numblocks[1], (1,) * clear.numblocks[2])
    return da.map_blocks(_any_block, clear, chunks=chunks, dtype=bool)


def _ring(flags: np.ndarray, r: int) -> np.ndarray:
    """``flags`` (nby, nbx) dilated by ``r`` blocks (a square).

    >>> _ring(np.array([[True, False, False]]), 1).tolist()
    [[True, True, False]]
    """
    h, w = flags.shape
    padded = np.pad(flags, r, constant_values=False)
    out = np.zeros_like(flags)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def _select_blocks(arr: Any, keep: np.ndarray, leading: tuple[int, ...]) -> Any:
    """``arr`` (lead..., y, x), its leading axes one chunk each, with the (y, x) blocks where
    ``keep`` is False replaced by zeros: their tasks, and the reads under them, drop out of the
    graph when it is computed."""
    import dask.array as da

    if keep.all():
        return arr
    ych, xch = arr.chunks[-2:]
    head = (0,) * len(leading)
    rows = []
    for i, h in enumerate(ych):
        row = []
        for j, w in enumerate(xch):
            if keep[i, j]:
                row.append(arr.blocks[(*head, i, j)])
            else:
                row.append(da.zeros((*leading, h, w), dtype=arr.dtype, chunks=(*leading, h, w)))
        rows.append(da.concatenate(row, axis=-1))
    return da.concatenate(rows, axis=-2)


def cell_landcover(
    cube: Any,
    clear: Any,
    looks: np.ndarray | None,
    loaded: Any,
    options: LandcoverOptions,
    device: str | None = None,
    batch_size: int = 8,
) -> Any:
    """Lazy ``(3, y, x)`` float32 (class, confidence, dates) of a cube, per date only on the
    blocks that need it (``looks``: ``(time, nby, nbx)`` from :func:`plan_looks`, computed;
    None = every block)."""
    import dask.array as da

    from ..models import predict

    if isinstance(loaded, MosaicUNets):
        return _cell_unets_series(cube, clear, looks, loaded, options, device, batch_size)
    bands = list(loaded.card.input_bands)
    data = cube.sel(band=bands).data
    ych, xch = clear.chunks[1:]
    reach = math.ceil(options.halo / max(1, min(min(ych), min(xch))))
    n_t = data.shape[0]
    per_date = []
    for t in range(n_t):
        keep_out = np.ones((len(ych), len(xch)), bool) if looks is None else looks[t]
        if not keep_out.any():
            shape = (len(loaded.card.classes), data.shape[2], data.shape[3])
            per_date.append(da.zeros(shape, np.float32, chunks=((shape[0],), ych, xch)))
            continue
        x = data[t].rechunk({0: -1})
        x = _select_blocks(x, _ring(keep_out, reach), (len(bands),))
        x = x.astype(np.float32) / np.float32(10000)
        probs = predict(
            loaded,
            x,
            window=options.window,
            overlap=options.overlap,
            halo=options.halo,
            batch_size=batch_size,
            precision=options.precision,
            device=device,
        )
        per_date.append(_select_blocks(probs, keep_out, (probs.shape[0],)))
    stack = da.stack(per_date).rechunk({0: -1, 1: -1})
    clear = clear.rechunk((-1, stack.chunks[2], stack.chunks[3]))
    return da.blockwise(
        _fuse_block,
        "kyx",
        stack,
        "tcyx",
        clear,
        "tyx",
        new_axes={"k": 3},
        concatenate=True,
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
        method=options.method,
        alpha=options.alpha,
        snow=options.snow_threshold,
    )


def _cell_unets_series(
    cube: Any,
    clear: Any,
    looks: np.ndarray | None,
    unets: MosaicUNets,
    options: LandcoverOptions,
    device: str | None,
    batch_size: int,
) -> Any:
    """:func:`cell_landcover` for the U-net set: per date, each U-net only on the blocks that
    need it (as for a scene model), then each model's probabilities fused over the clear dates
    and the combination rule (:func:`~s2cube.landcover.series.fuse_series`)."""
    import dask.array as da

    from .series import fuse_series
    from .unets import UNET_MODELS
    from .wrapper import unets_probabilities, unets_reflectance

    bands = list(unets.card.input_bands)
    data = cube.sel(band=bands).data
    ych, xch = clear.chunks[1:]
    reach = math.ceil(options.halo / max(1, min(min(ych), min(xch))))
    loaded = unets.members()
    kw: dict[str, Any] = {"window": options.window, "overlap": options.overlap}
    kw |= {"halo": options.halo, "batch_size": batch_size, "precision": options.precision}
    kw["device"] = device
    per_model: dict[str, list[Any]] = {k: [] for k in loaded}
    for t in range(data.shape[0]):
        keep_out = np.ones((len(ych), len(xch)), bool) if looks is None else looks[t]
        if not keep_out.any():
            for key in loaded:
                k = len(UNET_MODELS[key].classes)
                per_model[key].append(
                    da.zeros((k, *data.shape[2:]), np.float32, chunks=((k,), ych, xch))
                )
            continue
        x = _select_blocks(data[t].rechunk({0: -1}), _ring(keep_out, reach), (len(bands),))
        refl, _ = unets_reflectance(x)
        for key, p in unets_probabilities(loaded, refl, bands, kw).items():
            per_model[key].append(_select_blocks(p, keep_out, (p.shape[0],)))
    packed, n_dates = fuse_series(per_model, clear, alpha=options.alpha, threshold=0.5)
    return da.concatenate([packed, n_dates[None]], axis=0)


def _fuse_block(
    probs: np.ndarray, clear: np.ndarray, *, method: str, alpha: float, snow: float
) -> np.ndarray:
    classes, conf, n = fuse(probs, clear, method=method, alpha=alpha, snow_threshold=snow)
    return np.stack([classes.astype(np.float32), conf, n.astype(np.float32)])


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
            tasks = _scene_tasks(
                loc, todo, items, grid, loaded, options, run_record, overviews, lease.owner,
                device, batch_size, client,
            )  # fmt: skip
        else:
            mosaic_done = zs.read_manifest(loc)
            report.mosaic_unfinished = [c.name for c in todo if c.name not in mosaic_done]
            todo = [c for c in todo if c.name in mosaic_done]
            tasks = _mosaic_tasks(
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


@dataclass(frozen=True)
class UNetsCard:
    """What the run record and the store's land-cover attributes need of the U-net set."""

    name: str
    classes: tuple[str, ...]
    product_level: str
    resolution_m: str
    #: what a scene source searches and loads for the set (``unets-series``)
    input_bands: tuple[str, ...] = ("red", "green", "blue", "nir")


@dataclass(frozen=True)
class MosaicUNets:
    """The shipped land-cover U-nets, loaded (``buildings`` is None: no weights ship)."""

    card: UNetsCard
    water: Any
    vegetation: Any
    buildings: Any = None

    def members(self) -> dict[str, Any]:
        """``{"water": model, "vegetation": model[, "buildings": model]}``."""
        out = {"water": self.water, "vegetation": self.vegetation}
        return out | ({"buildings": self.buildings} if self.buildings is not None else {})


def _unets_label(
    loaded: Mapping[str, Any], paths: Mapping[str, Any], user: frozenset[str] = frozenset()
) -> str:
    """``s2cube-unets[water=unet-water@<version>, ...]``: which weights made the map (the
    card's version for shipped weights that have one, else the first 12 hex digits of the
    weights file's sha256: a user's model.pt is always named by its content)."""
    import hashlib

    def one(key: str, m: Any) -> str:
        version = str(getattr(m.card, "version", "") or "")
        if key in user or not version:
            digest = hashlib.sha256(Path(paths[key]).read_bytes()).hexdigest()
            version = f"sha256:{digest[:12]}"
        return f"{key}={m.card.name}@{version}"

    return "s2cube-unets[" + ", ".join(one(k, m) for k, m in loaded.items()) + "]"


def load_mosaic_unets(weights: Mapping[str, Any] | None = None) -> MosaicUNets:
    """The U-net set: the shipped weights (water and vegetation required, buildings when its
    weights ship), each replaced by a user's trained ``model.pt`` given in ``weights``
    (``{"water" | "vegetation" | "buildings": path}``, from ``s2cube train landcover``)."""
    from .unets import UNET_MODELS, load_unet, shipped_unets, unet_weights_path

    weights = {str(k): v for k, v in (weights or {}).items() if v is not None}
    unknown = sorted(set(weights) - set(UNET_MODELS))
    if unknown:
        raise InputError(
            f"U-net weights for {unknown}; the set has {list(UNET_MODELS)} (e.g. "
            "--buildings model.pt)"
        )
    for key, path in weights.items():
        if not Path(path).is_file():
            raise InputError(
                f"--{key} {str(path)!r} is not a file; give the model.pt that "
                f"`s2cube train landcover --model {key}` wrote"
            )
    shipped = shipped_unets()
    missing = [k for k in ("water", "vegetation") if k not in shipped and k not in weights]
    if missing:
        raise InputError(
            f"model 'unets' needs the {missing} U-net weights, and this install ships only "
            f"{list(shipped)} (s2cube/landcover/weights/unet-<name>.pt); pass your own with "
            + " ".join(f"--{k} model.pt" for k in missing)
        )
    paths = {k: weights.get(k, unet_weights_path(k)) for k in UNET_MODELS}
    loaded: dict[str, Any] = {}
    for key in ("water", "vegetation", "buildings"):
        if key in weights:
            model = load_unet(weights[key])
            want = UNET_MODELS[key].classes
            if tuple(model.card.classes) != tuple(want):
                raise InputError(
                    f"--{key} {str(weights[key])!r} is a model of classes "
                    f"{tuple(model.card.classes)}; the {key} U-net has {tuple(want)}"
                )
            loaded[key] = model
        elif key in shipped:
            loaded[key] = load_unet(key)
    card = UNetsCard(
        name=_unets_label(loaded, paths, user=frozenset(weights)),
        classes=tuple(LANDCOVER_CLASSES),
        product_level=", ".join(f"{k}={m.card.product_level}" for k, m in loaded.items()),
        resolution_m=", ".join(f"{k}={m.card.resolution_m:g}" for k, m in loaded.items()),
    )
    return MosaicUNets(card, loaded["water"], loaded["vegetation"], loaded.get("buildings"))


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


def _scene_tasks(
    loc: Any,
    cells: Sequence[Cell],
    items: Sequence[pystac.Item],
    grid: GlobalGrid,
    loaded: Any,
    options: LandcoverOptions,
    run_record: dict[str, Any],
    overviews: bool,
    lease: str | None,
    device: str | None,
    batch_size: int,
    client: Any,
) -> list[tuple[Cell, Any]]:
    """Per cell: the look at the candidates' SCL (computed now, for all cells at once), then
    the lazy write task over the pruned per-date inference and the fusion."""
    import dask

    from ..cube import items_touching, load
    from ..store.landcover import write_empty_landcover_cell

    bands = tuple(loaded.card.input_bands)
    halo = options.cell_halo
    cubes: dict[str, Any] = {}
    for cell in cells:
        near = items_touching(items, grid.cell_window(cell).pad(halo).bounds)
        if near:
            cube = load(near, cell, grid=grid, bands=bands, halo=halo, chunksize=options.chunk)
            cubes[cell.name] = (cube, clear_of(cube, options.dilation), near)
    looks: dict[str, np.ndarray] = {}
    if cubes:
        names = list(cubes)
        graphs = [plan_looks(cubes[n][1]) for n in names]
        got = client.compute(graphs, sync=True) if client is not None else dask.compute(*graphs)
        looks = dict(zip(names, (np.asarray(g) for g in got), strict=True))
    tasks: list[tuple[Cell, Any]] = []
    for cell in cells:
        if cell.name not in cubes or not looks[cell.name].any():
            rec = {**run_record, "scenes": len(cubes.get(cell.name, (None, None, []))[2])}
            task = dask.delayed(write_empty_landcover_cell, pure=False)(
                loc, cell, record=rec, lease=lease
            )
            tasks.append((cell, task))
            continue
        cube, clear, near = cubes[cell.name]
        look = looks[cell.name]
        packed = cell_landcover(cube, clear, look, loaded, options, device, batch_size)
        crop = (slice(halo, halo + grid.cell_pixels), slice(halo, halo + grid.cell_pixels))
        rec = {
            **run_record,
            "scenes": len(near),
            "dates_with_clear_blocks": int(look.any(axis=(1, 2)).sum()),
            "date_blocks_run": int(look.sum()),
            "date_blocks_total": int(look.size),
        }
        write = dask.delayed(write_task, pure=False, name=f"landcover-{cell.name}")
        tasks.append((cell, write(loc, cell, packed, crop, rec, overviews, lease)))
    return tasks


# --------------------------------------------------------------------------- mosaic source
MOSAIC_BANDS = ("red", "green", "blue", "nir")


def read_mosaic_window(loc: Any, window: Any) -> np.ndarray:
    """``(4, y, x)`` uint16 red, green, blue, nir of the store's mosaic over ``window`` (a cell
    padded by its halo), read by :func:`~s2cube.store.superres.read_parent_window` (the
    super-resolution driver's halo read); pixels past the globe's edge and in cells the mosaic
    has not written are 0 (no data)."""
    from ..store.superres import read_parent_window

    arrays = read_parent_window(loc, window)
    r, c = (int(v) for v in arrays.pop("_offset"))
    out = np.zeros((len(MOSAIC_BANDS), *window.shape), np.uint16)
    for i, band in enumerate(MOSAIC_BANDS):
        a = arrays[band]
        out[i, r : r + a.shape[0], c : c + a.shape[1]] = a
    return out


def _pack_unets(lc: np.ndarray, conf: np.ndarray) -> np.ndarray:
    """(class, confidence, dates = 1 where classified) as the ``(3, y, x)`` float32 of
    :func:`encode`; ``landcover_unets`` sets class 0 exactly where the mosaic has no data."""
    lc = np.asarray(lc)
    return np.stack([lc.astype(np.float32), np.asarray(conf), (lc > 0).astype(np.float32)])


def mosaic_cell_landcover(
    loc: Any,
    cell: Cell,
    grid: GlobalGrid,
    unets: MosaicUNets,
    options: LandcoverOptions,
    device: str | None = None,
    batch_size: int = 8,
) -> Any:
    """Lazy ``(3, y, x)`` float32 (class, confidence, dates) of a cell padded by
    ``options.cell_halo`` px: the halo read, the U-nets and their combination as one dask
    graph (chunks of ``options.chunk`` px)."""
    import dask
    import dask.array as da
    import xarray as xr

    from .wrapper import landcover_unets

    window = grid.cell_window(cell).pad(options.cell_halo)
    raw = da.from_delayed(
        dask.delayed(read_mosaic_window, pure=False)(loc, window),
        shape=(len(MOSAIC_BANDS), *window.shape),
        dtype=np.uint16,
        meta=np.empty((0, 0, 0), np.uint16),
    ).rechunk((-1, options.chunk, options.chunk))
    rgbn = xr.DataArray(raw, dims=("band", "y", "x"), coords={"band": list(MOSAIC_BANDS)})
    out = landcover_unets(
        rgbn,
        water=unets.water,
        vegetation=unets.vegetation,
        buildings=unets.buildings,
        window=options.window,
        overlap=options.overlap,
        halo=options.halo,
        batch_size=batch_size,
        precision=options.precision,
        device=device,
    )
    return da.map_blocks(
        _pack_unets,
        out["landcover"].data,
        out["confidence"].data,
        new_axis=0,
        chunks=((3,), *out["landcover"].data.chunks),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), np.float32),
    )


def _mosaic_tasks(
    loc: Any,
    cells: Sequence[Cell],
    mosaic_done: Mapping[str, Mapping[str, Any]],
    grid: GlobalGrid,
    unets: MosaicUNets,
    options: LandcoverOptions,
    run_record: dict[str, Any],
    overviews: bool,
    lease: str | None,
    device: str | None,
    batch_size: int,
) -> list[tuple[Cell, Any]]:
    """Per cell the mosaic has finished: the lazy write task over the halo read and the
    U-nets; a cell the mosaic recorded as empty is recorded empty (no shard written)."""
    import dask

    from ..store.landcover import write_empty_landcover_cell

    halo = options.cell_halo
    crop = (slice(halo, halo + grid.cell_pixels), slice(halo, halo + grid.cell_pixels))
    tasks: list[tuple[Cell, Any]] = []
    for cell in cells:
        mrec = mosaic_done[cell.name]
        rec = {**run_record, "mosaic_finished": mrec.get("finished")}
        if mrec.get("empty"):
            task = dask.delayed(write_empty_landcover_cell, pure=False)(
                loc, cell, record={**rec, "mosaic_empty": True}, lease=lease
            )
            tasks.append((cell, task))
            continue
        packed = mosaic_cell_landcover(loc, cell, grid, unets, options, device, batch_size)
        write = dask.delayed(write_task, pure=False, name=f"landcover-{cell.name}")
        tasks.append((cell, write(loc, cell, packed, crop, rec, overviews, lease)))
    return tasks
