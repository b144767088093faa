"""The land-cover driver's **scenes** source (Dynamic World, the U-net set over time, any model
whose bands the store's mosaic lacks): the candidate scenes of each cell from the catalog, a
*look* at their SCL first (:func:`plan_looks`: one small array per cell and date says which
dask blocks have a clear pixel), then per date the model only on blocks with a clear pixel and
the bands read only for blocks within the model's reach of one (``window - 1`` px), then the
clear-masked fusion (Dynamic World: :func:`~s2cube.landcover.kernels.fuse`; the U-nets: each
model's probabilities, :func:`~s2cube.landcover.series.fuse_series`).  Pruning is exact: a
skipped block has no clear pixel within reach, so no fused pixel can change (tested).

:func:`s2cube.landcover.run.landcover_store` drives it (:func:`scene_tasks`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pystac

from ..grid import Cell, GlobalGrid
from .run_mosaic import MosaicUNets
from .wrapper import fuse_block

if TYPE_CHECKING:
    from .run import LandcoverOptions

__all__ = ["cell_landcover", "clear_of", "plan_looks", "scene_tasks"]


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
        fuse_block,
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


def scene_tasks(
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
    from .run import write_task

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
