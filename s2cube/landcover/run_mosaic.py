"""The land-cover driver's **mosaic** source (``--model unets``): the U-net set (shipped or the
user's weights, :func:`load_mosaic_unets`) on the store's own red/green/blue/nir of each
finished cell plus ``cell_halo`` px of its neighbours (read as the super-resolution driver reads
a parent cell, :func:`~s2cube.store.superres.read_parent_window`), through
:func:`~s2cube.landcover.wrapper.landcover_unets`; one "date": ``landcover_dates`` is 1 where
the mosaic has data.  :class:`MosaicUNets` is the loaded set, also what the scenes source runs
for ``unets-series``.

:func:`s2cube.landcover.run.landcover_store` drives it (:func:`mosaic_tasks`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..grid import Cell, GlobalGrid
from .kernels import LANDCOVER_CLASSES

if TYPE_CHECKING:
    from .run import LandcoverOptions

__all__ = ["MosaicUNets", "UNetsCard", "load_mosaic_unets", "mosaic_tasks", "read_mosaic_window"]


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


def mosaic_tasks(
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
    from .run import write_task

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
