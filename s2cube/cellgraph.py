"""The dask graph of one cell: planned reads → mask → harmonize → blended priority composite.

A cell is cut into processing blocks.  Each block becomes one task that receives only the
scenes its plan lists (a stackstac read of the block window grown by the blending and dilation
halos, so the dask graph holds exactly those reads) and runs the numpy kernels:

    SCL mask (+dilation) → per-scene transfer (harmonization) → blend_composite → crop

If some pixel of the block window finds no clear observation among the planned scenes while an
unplanned candidate has data there, the task reads the remaining candidates itself (a
*fallback*, counted in the cell's record) and recomputes, so the result always equals the
composite of all candidates.  Every block depends only on global pixel windows, never on the
cell it belongs to: two cells computed apart meet exactly as if computed at once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import xarray as xr

from .grid import GlobalGrid
from .harmonize.blend import blend_composite, blend_halo
from .harmonize.radiometry import IDENTITY, apply_knots
from .mask import CLEAR, NODATA, SCL_TO_MASK, finish_codes, scl_to_mask
from .plan import CellPlan

__all__ = ["CompositeSpec", "block_kernel", "cell_composite"]

Knots = tuple[tuple[float, ...], tuple[float, ...]]
#: blocks per read chunk (per axis)
READ_BLOCKS = 2


@dataclass(frozen=True)
class CompositeSpec:
    """Everything a block task needs besides its data (hashable, travels into task keys)."""

    bands: tuple[str, ...] = ("red", "green", "blue", "nir")
    cloud_dilation: int = 2
    shadow_dilation: int = 2
    blend: str = "feather"
    blend_width: int = 8
    resampling: str = "nearest"
    strict: bool = False
    mask_method: str = "scl"
    model: str = "csmask-l2a-4b"
    #: pixels of context the learned mask needs to be tiling-invariant (0 for SCL)
    model_context: int = 0
    #: grid pixels per model pixel (3 for the 30 m csmask models on the 10 m grid)
    model_factor: int = 1

    @property
    def mask_halo(self) -> int:
        return max(self.cloud_dilation, self.shadow_dilation) + (
            self.model_context if self.mask_method != "scl" else 0
        )

    @property
    def blend_halo(self) -> int:
        return blend_halo(self.blend_width, self.blend)

    @property
    def halo(self) -> int:
        """Total context a block (or a cell) needs around its core."""
        return self.mask_halo + self.blend_halo


# --------------------------------------------------------------------------- kernel
def block_kernel(
    data: np.ndarray,
    knots: Sequence[Sequence[Knots]],
    spec: CompositeSpec,
    *,
    scl_table: np.ndarray = SCL_TO_MASK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Composite of one window: ``data`` is ``(time, band+scl, y, x)`` uint16, time in priority order.

    Returns the composite ``(band, y', x')``, the source index ``(y', x')`` (into time, -1
    none), the usable count, and ``any_clear`` ``(y'', x'')`` over the blending window, where
    ``'`` is the window shrunk by ``spec.halo`` and ``''`` shrunk by ``spec.mask_halo``.
    """
    n_b = len(spec.bands)
    if spec.mask_method == "scl":
        codes = scl_to_mask(data[:, n_b], scl_table)
    else:
        codes = _learned_codes(data, spec)
    codes = finish_codes(codes, data[:, :n_b], cloud=spec.cloud_dilation, shadow=spec.shadow_dilation)
    refl = np.empty_like(data[:, :n_b])
    for t in range(data.shape[0]):
        for b in range(n_b):
            k = knots[t][b] if knots else IDENTITY
            refl[t, b] = data[t, b] if k == IDENTITY else apply_knots(data[t, b], k)
    m = spec.mask_halo
    inner = (slice(None), slice(m, data.shape[2] - m), slice(m, data.shape[3] - m))
    codes_i = codes[inner]
    any_clear = (codes_i == CLEAR).any(axis=0) if len(codes_i) else np.zeros(codes_i.shape[1:], bool)
    out, source, count = blend_composite(
        refl[:, :, m : data.shape[2] - m, m : data.shape[3] - m], codes_i,
        width=spec.blend_width, method=spec.blend,
    )  # fmt: skip
    h = spec.blend_halo
    core = (slice(h, out.shape[-2] - h), slice(h, out.shape[-1] - h))
    return out[(slice(None), *core)], source[core], count[core], any_clear


def _window_pieces(
    chunk_keys: list[Any], row_edges: np.ndarray, col_edges: np.ndarray, tsel: Sequence[int],
    ry: int, rx: int, h: int, w: int,
) -> tuple[list[Any], dict[str, int]]:
    """Keys of the read chunks covering window rows ``ry:ry+h``, cols ``rx:rx+w`` for ``tsel``
    (nested ``[time][band][row][col]``), and where the window sits in their mosaic."""
    i0 = int(np.searchsorted(row_edges, ry, side="right") - 1)
    i1 = int(np.searchsorted(row_edges, ry + h, side="left"))
    j0 = int(np.searchsorted(col_edges, rx, side="right") - 1)
    j1 = int(np.searchsorted(col_edges, rx + w, side="left"))
    pieces = [
        [[[chunk_keys[t][b][i][j] for j in range(j0, j1)] for i in range(i0, i1)]
         for b in range(len(chunk_keys[t]))]
        for t in tsel
    ]  # fmt: skip
    return pieces, {"y0": int(ry - row_edges[i0]), "x0": int(rx - col_edges[j0]), "h": h, "w": w}


def _assemble(pieces: list[Any], window: Mapping[str, int]) -> np.ndarray:
    """Numpy window ``(time, band, y, x)`` from computed read chunks (see :func:`_window_pieces`)."""
    y0, x0 = window["y0"], window["x0"]
    out = []
    for per_t in pieces:
        bands = []
        for rows in per_t:
            full = np.concatenate([np.concatenate([np.asarray(c)[0, 0] for c in row], axis=1) for row in rows], axis=0)
            bands.append(full[y0 : y0 + window["h"], x0 : x0 + window["w"]])
        out.append(np.stack(bands))
    return np.stack(out)


def read_chunk_sizes(n_px: int, block: int, halo: int, per: int, *, origin: int = 0, lattice: int = 1) -> tuple[int, ...]:
    """Read-chunk sizes along one axis of a cell cube (``n_px`` + ``halo`` on both sides).

    Chunks hold about ``per`` blocks; their inner boundaries are snapped to the nearest
    multiple of ``lattice`` in global pixels (``origin``: global index of the cube's first
    pixel), i.e. onto the edges of GDAL's warped-VRT blocks, so no VRT block is warped twice
    by two neighbouring chunks.  The outer halos join the outer chunks.
    """
    span = per * block
    total = n_px + 2 * halo
    pos = [0]
    for c in range(span, n_px, span):
        g = round((origin + halo + c) / lattice) * lattice - origin
        if pos[-1] < g < total:
            pos.append(g)
    pos.append(total)
    return tuple(b - a for a, b in zip(pos[:-1], pos[1:], strict=True))


def _learned_codes(data: np.ndarray, spec: CompositeSpec) -> np.ndarray:
    """Model (or model + SCL) codes of a window, single pass (numpy/torch path of the engine)."""
    from .models import cloud_mask
    from .models.masks import combine_with_scl

    n_b = len(spec.bands)
    cube = xr.DataArray(data[:, :n_b], dims=("time", "band", "y", "x"),
                        coords={"band": list(spec.bands)})  # fmt: skip
    codes = np.asarray(cloud_mask(cube, model=spec.model, factor=spec.model_factor).values, "uint8")
    scl = data[:, n_b]
    if spec.mask_method == "combined":
        return np.asarray(combine_with_scl(codes, scl), "uint8")
    return np.where((scl == 0) | (scl > 11), NODATA, codes).astype("uint8")


def _block_task(
    pieces: list[Any],
    *,
    window: Mapping[str, int],
    spec: CompositeSpec,
    scene_ids: tuple[str, ...],
    knots: Mapping[str, Sequence[Knots]],
    scene_index: Mapping[str, int],
    fallback: Mapping[str, Any],
) -> tuple[np.ndarray, dict[str, Any]]:
    """One block (runs on a worker): returns packed ``(band+2, y, x)`` int32 and its stats."""
    n_b = len(spec.bands)
    data = _assemble(pieces, window)
    stats = {"scenes_read": len(scene_ids), "fallback": False}
    ids = list(scene_ids)
    out, source, count, any_clear = block_kernel(data, [knots[i] for i in ids], spec)
    extra = fallback.get("items", [])
    if extra and not any_clear.all():
        # holes: does an unplanned candidate have data there? (coarse, dilated footprint)
        holes = ~any_clear
        f = fallback["factor"]
        r0, c0 = fallback["coarse_origin"]
        ys, xs = np.nonzero(holes)
        cy = np.clip((ys + fallback["row0"]) // f - r0, 0, fallback["has_data"].shape[1] - 1)
        cx = np.clip((xs + fallback["col0"]) // f - c0, 0, fallback["has_data"].shape[2] - 1)
        if fallback["has_data"][:, cy, cx].any():
            from .cube import VRT_ALIGN, load_window

            all_items = fallback["all_items"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # the same cell-level window and chunking as the planned read, so that every
                # pixel is warped exactly as in the planned read (GDAL's approximate warper
                # depends on the output window)
                cube = load_window(
                    all_items, fallback["cell_rows"], fallback["cell_cols"], grid=fallback["grid"],
                    bands=spec.bands, resampling=spec.resampling, strict=spec.strict,
                    chunksize=fallback["chunks"], align=VRT_ALIGN,
                )  # fmt: skip
                full = cube.data[fallback["slice"]].compute(scheduler="sync")
            # the cube holds the items whose footprint touches the window, in order
            ids = [str(i) for i in cube.coords["id"].values]
            out, source, count, _ = block_kernel(full, [knots[i] for i in ids], spec)
            stats = {"scenes_read": len(ids), "fallback": True}
    packed = np.empty((n_b + 2, *source.shape), dtype="int32")
    packed[:n_b] = out
    lut = np.array([scene_index[i] for i in ids] + [-1], dtype="int32")
    packed[n_b] = lut[source]  # -1 → the appended -1
    packed[n_b + 1] = count
    return packed, stats


def _empty_block(n_b: int, ny: int, nx: int) -> np.ndarray:
    empty = np.zeros((n_b + 2, ny, nx), dtype="int32")
    empty[n_b] = -1
    return empty


# --------------------------------------------------------------------------- wrapper
def cell_composite(
    items: Mapping[str, pystac.Item],
    plan: CellPlan,
    *,
    grid: GlobalGrid,
    spec: CompositeSpec,
    knots: Mapping[str, Sequence[Knots]],
    scene_index: Mapping[str, int],
    scene_dates: Mapping[int, np.datetime64],
) -> tuple[xr.Dataset, list[Any]]:
    """Lazy composite of one cell (no halo) from its plan, and the blocks' delayed stats."""
    import operator
    from functools import partial

    import dask.array as da
    from dask.base import tokenize
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    from .cube import READ_CHUNK, VRT_ALIGN, _spatial_ref, load_window

    cell = plan.cell
    n_px = grid.cell_pixels
    B = plan.block
    halo = spec.halo
    rows0, cols0 = grid.cell_region(cell)
    n_blocks = math.ceil(n_px / B)
    f = plan.coarse_factor
    h_c = (plan.has_data.shape[1] - n_px // f) // 2 if plan.has_data is not None else 0
    # one read of the cell (+halo) for every scene some block plans, cut into read chunks of
    # about 2×2 blocks (at most ~READ_CHUNK px) whose edges lie on GDAL's warped-VRT block
    # lattice.  A block's window is assembled from the chunks it overlaps; every chunk is read
    # once and shared, and a scene no block of a chunk plans is never read there.  Warping,
    # not decoding, dominates a read (~9 vs ~4 ns/px), so the source tiles that neighbouring
    # chunks decode again (stackstac keeps no decoded-tile cache) cost less than larger chunks
    # would warp in vain.
    needed = sorted({k for bp in plan.blocks for k in bp.scenes})
    n_b = len(spec.bands)
    cube = None
    per = max(1, min(READ_BLOCKS, READ_CHUNK // B))
    row_sizes = read_chunk_sizes(n_px, B, halo, per, origin=rows0.start - halo, lattice=VRT_ALIGN[0])
    col_sizes = read_chunk_sizes(n_px, B, halo, per, origin=cols0.start - halo, lattice=VRT_ALIGN[1])
    if needed:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cube = load_window([items[plan.candidates[k]] for k in needed],
                               slice(rows0.start - halo, rows0.stop + halo),
                               slice(cols0.start - halo, cols0.stop + halo), grid=grid,
                               bands=spec.bands, resampling=spec.resampling, strict=spec.strict,
                               chunksize=(row_sizes, col_sizes), align=VRT_ALIGN)  # fmt: skip
        in_cube = {str(i): t for t, i in enumerate(cube.coords["id"].values)}
        # every read chunk is its own task, shared by the blocks that need it (handing dask
        # slices of the array to each block would let dask inline the reads into every block
        # and read the same chunk up to nine times).  Block tasks name the chunk keys directly
        # in one graph layer: wrapping them in dask.delayed made dask walk and tokenize every
        # nested argument (0.5 s of driver time for 16 blocks)
        chunk_keys = cube.data.__dask_keys__()
        row_edges = np.concatenate([[0], np.cumsum(cube.data.chunks[2])])
        col_edges = np.concatenate([[0], np.cumsum(cube.data.chunks[3])])
    token = tokenize(cube.data.name if cube is not None else (cell.name, n_px), spec, plan.block,
                     [(bp.row, bp.col, bp.scenes, bp.candidates_with_data) for bp in plan.blocks],
                     sorted((i, tuple(map(tuple, k))) for i, k in knots.items() if i in plan.candidates),
                     sorted((i, scene_index[i]) for i in plan.candidates if i in scene_index))  # fmt: skip
    raw_name, packed_name, stats_name = (f"s2cube-{what}-{token}" for what in ("block", "packed", "stats"))
    layer: dict[Any, Any] = {}
    stats_layer: dict[Any, Any] = {}
    read_chunks: set[tuple[Any, ...]] = set()  # (name, t, i, j) of every chunk some block reads
    for bp in plan.blocks:
        y0 = rows0.start + bp.row * B
        x0 = cols0.start + bp.col * B
        ny = min(B, n_px - bp.row * B)
        nx = min(B, n_px - bp.col * B)
        rows = slice(y0 - halo, y0 + ny + halo)
        cols = slice(x0 - halo, x0 + nx + halo)
        planned_ids = [plan.candidates[k] for k in bp.scenes]
        tsel = [in_cube[i] for i in planned_ids if cube is not None and i in in_cube]
        out_key = (packed_name, 0, bp.row, bp.col)
        if not tsel:
            layer[out_key] = (_empty_block, n_b, ny, nx)
            continue
        ry, rx = bp.row * B, bp.col * B  # window origin inside the halo'd cell cube
        pieces, window = _window_pieces(chunk_keys, row_edges, col_edges, tsel, ry, rx, ny + 2 * halo, nx + 2 * halo)
        read_chunks.update((k[0], k[1], k[3], k[4]) for per_t in pieces for rows_ in per_t[0] for k in rows_)
        scene_ids = tuple(str(cube.coords["id"].values[t]) for t in tsel)
        unplanned = [k for k in bp.candidates_with_data if k not in bp.scenes]
        fallback: dict[str, Any] = {}
        if unplanned and plan.has_data is not None:
            m = spec.mask_halo
            fallback = {
                "items": [plan.candidates[k] for k in unplanned],
                "all_items": [items[plan.candidates[k]] for k in bp.candidates_with_data],
                "has_data": plan.has_data[unplanned],
                "factor": f,
                # global pixel → coarse index of the cell window
                "coarse_origin": (rows0.start // f - h_c, cols0.start // f - h_c),
                "row0": rows.start + m,
                "col0": cols.start + m,
                "cell_rows": slice(rows0.start - halo, rows0.stop + halo),
                "cell_cols": slice(cols0.start - halo, cols0.stop + halo),
                "chunks": (row_sizes, col_sizes),
                "slice": (slice(None), slice(None), slice(ry, ry + ny + 2 * halo),
                          slice(rx, rx + nx + 2 * halo)),
                "grid": grid,
            }  # fmt: skip
        # every scene this block may composite: the planned ones and the fallback candidates
        ids = list(dict.fromkeys([*scene_ids, *planned_ids, *(plan.candidates[k] for k in unplanned)]))
        task = partial(
            _block_task,
            window=window,
            spec=spec,
            scene_ids=scene_ids,
            knots={i: knots.get(i, [IDENTITY] * n_b) for i in ids},
            scene_index={i: scene_index[i] for i in ids},
            fallback=fallback,
        )  # fmt: skip
        raw_key = (raw_name, bp.row, bp.col)
        layer[raw_key] = (task, pieces)
        layer[out_key] = (operator.getitem, raw_key, 0)
        stats_layer[(stats_name, bp.row, bp.col)] = (operator.getitem, raw_key, 1)
    deps = [cube.data] if cube is not None else []
    hlg = HighLevelGraph.from_collections(packed_name, layer, dependencies=deps)
    sizes_px = tuple(min(B, n_px - i * B) for i in range(n_blocks))
    packed_all = da.Array(hlg, packed_name, chunks=((n_b + 2,), sizes_px, sizes_px), dtype="int32")
    stats_graph = HighLevelGraph.merge(
        hlg, HighLevelGraph.from_collections(stats_name, stats_layer, dependencies=[packed_all])
    )
    stats = [Delayed(k, stats_graph, layer=stats_name) for k in stats_layer]
    dims = ("latitude", "longitude")
    ds = xr.Dataset(coords={
        "latitude": grid.latitudes(rows0.start, rows0.stop),
        "longitude": grid.longitudes(cols0.start, cols0.stop),
        "spatial_ref": _spatial_ref(),
    })  # fmt: skip
    for i, band in enumerate(spec.bands):
        ds[band] = (dims, packed_all[i].astype("uint16"), {"nodata": 0})
    scene = packed_all[n_b]
    keys = sorted(scene_dates)
    lut_size = (max(keys) + 2) if keys else 1
    lut = np.full(lut_size, np.datetime64("NaT"), dtype="datetime64[ns]")
    for k in keys:
        lut[k] = scene_dates[k]
    ds["scene"] = (dims, scene, {"nodata": -1})
    ds["date"] = (dims, scene.map_blocks(lambda s: lut[s], dtype="datetime64[ns]"))
    ds["clear_count"] = (dims, packed_all[n_b + 1].astype("uint16"))
    ds.attrs = {"cell": cell.name, "read_fraction_pixels": 0.0}
    if cube is not None and plan.candidates:
        # warped pixels the plan reads (every band alike) / a full read of every candidate
        area = sum(cube.data.chunks[2][i] * cube.data.chunks[3][j] for _, _, i, j in read_chunks)
        full = len(plan.candidates) * (n_px + 2 * halo) ** 2
        ds.attrs["read_fraction_pixels"] = area / full
    return ds, stats
