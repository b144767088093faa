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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import xarray as xr

from ..config import CompositeSpec
from ..grid import GlobalGrid, Window
from ..harmonize.radiometry import IDENTITY
from ..mask import CLEAR, window_codes
from ..plan import CellPlan
from .kernels import Knots, composite_window

__all__ = [
    "BlockTask",
    "FallbackRead",
    "block_kernel",
    "cell_composite",
    "empty_composite",
    "read_chunk_sizes",
]

#: blocks per read chunk (per axis)
READ_BLOCKS = 2


# --------------------------------------------------------------------------- kernel
def block_kernel(
    data: np.ndarray, knots: Sequence[Sequence[Knots]], spec: CompositeSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Composite of one window: ``data`` is ``(time, band+scl, y, x)`` uint16, in priority order.

    Masking (:func:`s2cube.mask.window_codes`), then the compositing kernel
    (:func:`composite_window`), the same two steps as :func:`s2cube.mask` +
    :func:`s2cube.composite`.  Returns the composite ``(band, y', x')``, the source index
    ``(y', x')`` (into time, -1 none), the usable count, and ``any_clear`` ``(y'', x'')`` over
    the blending window, where ``'`` is the window shrunk by ``spec.halo`` and ``''`` shrunk by
    ``spec.mask_halo``.
    """
    n_b = len(spec.bands)
    codes = window_codes(data, spec)
    m = spec.mask_halo
    inner = (slice(None), slice(m, data.shape[2] - m), slice(m, data.shape[3] - m))
    codes_i = codes[inner]
    any_clear = (
        (codes_i == CLEAR).any(axis=0) if len(codes_i) else np.zeros(codes_i.shape[1:], bool)
    )
    refl = data[:, :n_b][(slice(None), *inner)]
    out, source, count = composite_window(refl, codes_i, knots or None, spec)
    return out, source, count, any_clear


# --------------------------------------------------------------------------- task values
@dataclass(frozen=True, eq=False)
class FallbackRead:
    """What a block task needs to read the candidates its plan skipped, if it must.

    ``has_data`` is the skipped candidates' coarse, dilated footprint over the cell's coarse
    window; the read reuses the cell-level window and chunking of the planned read, so every
    pixel is warped exactly as there (GDAL's approximate warper depends on the window).
    """

    items: tuple[pystac.Item, ...]
    has_data: np.ndarray
    factor: int
    coarse_origin: tuple[int, int]
    #: global row/col of the first pixel of the block's blending window
    origin: tuple[int, int]
    cell_window: Window
    chunks: tuple[tuple[int, ...], tuple[int, ...]]
    strict: bool
    #: the block window inside the cell window: (row slice, col slice)
    rows: slice
    cols: slice

    def needed(self, holes: np.ndarray) -> bool:
        """Whether a skipped candidate has data under a hole (no clear planned observation)."""
        ys, xs = np.nonzero(holes)
        r0, c0 = self.coarse_origin
        cy = np.clip((ys + self.origin[0]) // self.factor - r0, 0, self.has_data.shape[1] - 1)
        cx = np.clip((xs + self.origin[1]) // self.factor - c0, 0, self.has_data.shape[2] - 1)
        return bool(self.has_data[:, cy, cx].any())

    def read(self, spec: CompositeSpec) -> tuple[np.ndarray, list[str]]:
        """The block window of every candidate with data, and their ids (in priority order)."""
        from ..cube import VRT_ALIGN, load_window
        from ..reader import dropping_reads

        w = self.cell_window
        # a failed asset raises SceneReadError (unless strict): the driver drops the scene
        with dropping_reads(not self.strict):
            cube = load_window(
                list(self.items),
                w.rows,
                w.cols,
                grid=w.grid,
                bands=spec.bands,
                resampling=spec.resampling,
                strict=self.strict,
                chunksize=self.chunks,
                align=VRT_ALIGN,
            )
        full = cube.data[:, :, self.rows, self.cols].compute(scheduler="sync")
        # the cube holds the items whose footprint touches the window, in order
        return full, [str(i) for i in cube.coords["id"].values]


@dataclass(frozen=True, eq=False)
class BlockTask:
    """One processing block of a cell: its planned scenes, their transfers, its fallback."""

    #: where the block's window sits in the mosaic of its read chunks
    y0: int
    x0: int
    height: int
    width: int
    spec: CompositeSpec
    scene_ids: tuple[str, ...]
    knots: Mapping[str, Sequence[Knots]]
    scene_index: Mapping[str, int]
    fallback: FallbackRead | None = None

    def __call__(self, pieces: list[Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """Run on a worker: computed read chunks → packed ``(band+2, y, x)`` int32 + stats."""
        n_b = len(self.spec.bands)
        data = _assemble(pieces, self.y0, self.x0, self.height, self.width)
        ids = list(self.scene_ids)
        stats = {"scenes_read": len(ids), "fallback": False}
        out, source, count, any_clear = block_kernel(data, [self.knots[i] for i in ids], self.spec)
        fb = self.fallback
        if fb is not None and not any_clear.all() and fb.needed(~any_clear):
            full, ids = fb.read(self.spec)
            out, source, count, _ = block_kernel(full, [self.knots[i] for i in ids], self.spec)
            stats = {"scenes_read": len(ids), "fallback": True}
        packed = np.empty((n_b + 2, *source.shape), dtype="int32")
        packed[:n_b] = out
        lut = np.array([self.scene_index[i] for i in ids] + [-1], dtype="int32")
        packed[n_b] = lut[source]  # -1 → the appended -1
        packed[n_b + 1] = count
        return packed, stats


def _window_pieces(
    chunk_keys: list[Any],
    row_edges: np.ndarray,
    col_edges: np.ndarray,
    tsel: Sequence[int],
    ry: int,
    rx: int,
    h: int,
    w: int,
) -> tuple[list[Any], tuple[int, int]]:
    """Keys of the read chunks covering window rows ``ry:ry+h``, cols ``rx:rx+w`` for ``tsel``
    (nested ``[time][band][row][col]``), and where the window sits in their mosaic."""
    i0 = int(np.searchsorted(row_edges, ry, side="right") - 1)
    i1 = int(np.searchsorted(row_edges, ry + h, side="left"))
    j0 = int(np.searchsorted(col_edges, rx, side="right") - 1)
    j1 = int(np.searchsorted(col_edges, rx + w, side="left"))
    pieces = [
        [
            [[chunk_keys[t][b][i][j] for j in range(j0, j1)] for i in range(i0, i1)]
            for b in range(len(chunk_keys[t]))
        ]
        for t in tsel
    ]
    return pieces, (int(ry - row_edges[i0]), int(rx - col_edges[j0]))


def _assemble(pieces: list[Any], y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """Numpy window ``(time, band, y, x)`` from computed read chunks (:func:`_window_pieces`).

    Each chunk's overlap with the window is copied once into the preallocated result (no
    intermediate mosaic of whole chunks)."""
    dtype = np.asarray(pieces[0][0][0][0]).dtype  # a block task has at least one scene
    out = np.empty((len(pieces), len(pieces[0]), h, w), dtype=dtype)
    for t, per_t in enumerate(pieces):
        for b, rows in enumerate(per_t):
            top = 0  # mosaic row of this chunk row's first pixel
            for row in rows:
                left = 0
                ch = np.asarray(row[0]).shape[2]
                r0, r1 = max(top, y0), min(top + ch, y0 + h)
                for c in row:
                    a = np.asarray(c)
                    cw = a.shape[3]
                    c0, c1 = max(left, x0), min(left + cw, x0 + w)
                    if r1 > r0 and c1 > c0:
                        out[t, b, r0 - y0 : r1 - y0, c0 - x0 : c1 - x0] = a[
                            0, 0, r0 - top : r1 - top, c0 - left : c1 - left
                        ]
                    left += cw
                top += ch
    return out


def read_chunk_sizes(
    n_px: int, block: int, halo: int, per: int, *, origin: int = 0, lattice: int = 1
) -> tuple[int, ...]:
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


def _empty_block(n_b: int, ny: int, nx: int) -> np.ndarray:
    empty = np.zeros((n_b + 2, ny, nx), dtype="int32")
    empty[n_b] = -1
    return empty


# --------------------------------------------------------------------------- graph
def cell_composite(
    items: Mapping[str, pystac.Item],
    plan: CellPlan,
    *,
    grid: GlobalGrid,
    spec: CompositeSpec,
    knots: Mapping[str, Sequence[Knots]],
    scene_index: Mapping[str, int],
    scene_dates: Mapping[int, np.datetime64],
    strict: bool = False,
) -> tuple[xr.Dataset, list[Any]]:
    """Lazy composite of one cell (no halo) from its plan, and the blocks' delayed stats."""
    import operator

    import dask.array as da
    from dask.base import tokenize
    from dask.delayed import Delayed
    from dask.highlevelgraph import HighLevelGraph

    from ..cube import READ_CHUNK, VRT_ALIGN, _spatial_ref, load_window

    cell = plan.cell
    n_px = grid.cell_pixels
    B = plan.block
    halo = spec.halo
    core = grid.cell_window(cell)
    window = core.pad(halo)
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
    row_sizes = read_chunk_sizes(n_px, B, halo, per, origin=window.row0, lattice=VRT_ALIGN[0])
    col_sizes = read_chunk_sizes(n_px, B, halo, per, origin=window.col0, lattice=VRT_ALIGN[1])
    if needed:
        from ..reader import dropping_reads

        # a read that fails (after retries) raises SceneReadError naming the asset, unless
        # strict: the driver then drops that scene for this cell and plans the cell again
        # (never nodata pixels of one band under a clear SCL)
        with dropping_reads(not strict):
            cube = load_window(
                [items[plan.candidates[k]] for k in needed],
                window.rows,
                window.cols,
                grid=grid,
                bands=spec.bands,
                resampling=spec.resampling,
                strict=strict,
                chunksize=(row_sizes, col_sizes),
                align=VRT_ALIGN,
            )
        in_cube = {str(i): t for t, i in enumerate(cube.coords["id"].values)}
        # every read chunk is its own task, shared by the blocks that need it (handing dask
        # slices of the array to each block would let dask inline the reads into every block
        # and read the same chunk up to nine times).  Block tasks name the chunk keys directly
        # in one graph layer: wrapping them in dask.delayed made dask walk and tokenize every
        # nested argument (0.5 s of driver time for 16 blocks)
        chunk_keys = cube.data.__dask_keys__()
        row_edges = np.concatenate([[0], np.cumsum(cube.data.chunks[2])])
        col_edges = np.concatenate([[0], np.cumsum(cube.data.chunks[3])])
    token = tokenize(
        cube.data.name if cube is not None else (cell.name, n_px),
        spec,
        plan.block,
        strict,
        [(bp.row, bp.col, bp.scenes, bp.candidates_with_data) for bp in plan.blocks],
        sorted((i, tuple(map(tuple, k))) for i, k in knots.items() if i in plan.candidates),
        sorted((i, scene_index[i]) for i in plan.candidates if i in scene_index),
    )
    raw_name, packed_name, stats_name = (
        f"s2cube-{what}-{token}" for what in ("block", "packed", "stats")
    )
    layer: dict[Any, Any] = {}
    stats_layer: dict[Any, Any] = {}
    read_chunks: set[tuple[Any, ...]] = set()  # (name, t, i, j) of every chunk some block reads
    for bp in plan.blocks:
        ny = min(B, n_px - bp.row * B)
        nx = min(B, n_px - bp.col * B)
        # the block's window (core + halo) inside the halo'd cell window
        block_rows = slice(bp.row * B, bp.row * B + ny + 2 * halo)
        block_cols = slice(bp.col * B, bp.col * B + nx + 2 * halo)
        planned_ids = [plan.candidates[k] for k in bp.scenes]
        tsel = [in_cube[i] for i in planned_ids if cube is not None and i in in_cube]
        out_key = (packed_name, 0, bp.row, bp.col)
        if not tsel:
            layer[out_key] = (_empty_block, n_b, ny, nx)
            continue
        assert cube is not None
        pieces, (y0, x0) = _window_pieces(
            chunk_keys,
            row_edges,
            col_edges,
            tsel,
            block_rows.start,
            block_cols.start,
            ny + 2 * halo,
            nx + 2 * halo,
        )
        read_chunks.update(
            (k[0], k[1], k[3], k[4]) for per_t in pieces for rows_ in per_t[0] for k in rows_
        )
        scene_ids = tuple(str(cube.coords["id"].values[t]) for t in tsel)
        unplanned = [k for k in bp.candidates_with_data if k not in bp.scenes]
        fallback = None
        if unplanned and plan.has_data is not None:
            m = spec.mask_halo
            fallback = FallbackRead(
                items=tuple(items[plan.candidates[k]] for k in bp.candidates_with_data),
                has_data=plan.has_data[unplanned],
                factor=f,
                # global pixel → coarse index of the cell window
                coarse_origin=(core.row0 // f - h_c, core.col0 // f - h_c),
                origin=(window.row0 + block_rows.start + m, window.col0 + block_cols.start + m),
                cell_window=window,
                chunks=(row_sizes, col_sizes),
                strict=strict,
                rows=block_rows,
                cols=block_cols,
            )
        # every scene this block may composite: the planned ones and the fallback candidates
        ids = list(
            dict.fromkeys([*scene_ids, *planned_ids, *(plan.candidates[k] for k in unplanned)])
        )
        task = BlockTask(
            y0=y0,
            x0=x0,
            height=ny + 2 * halo,
            width=nx + 2 * halo,
            spec=spec,
            scene_ids=scene_ids,
            knots={i: knots.get(i, [IDENTITY] * n_b) for i in ids},
            scene_index={i: scene_index[i] for i in ids},
            fallback=fallback,
        )
        raw_key = (raw_name, bp.row, bp.col)
        layer[raw_key] = (task, pieces)
        layer[out_key] = (operator.getitem, raw_key, 0)
        stats_layer[(stats_name, bp.row, bp.col)] = (operator.getitem, raw_key, 1)
    deps = [cube.data] if cube is not None else []
    hlg = HighLevelGraph.from_collections(packed_name, layer, dependencies=deps)
    sizes_px = tuple(min(B, n_px - i * B) for i in range(n_blocks))
    packed_all = da.Array(hlg, packed_name, chunks=((n_b + 2,), sizes_px, sizes_px), dtype="int32")
    stats_graph = HighLevelGraph.merge(
        hlg,
        HighLevelGraph.from_collections(
            stats_name,
            stats_layer,
            dependencies=[packed_all],  # type: ignore[list-item]
        ),
    )
    stats = [Delayed(k, stats_graph, layer=stats_name) for k in stats_layer]
    ds = xr.Dataset(
        coords={
            "latitude": core.latitudes(),
            "longitude": core.longitudes(),
            "spatial_ref": _spatial_ref(),
        }
    )
    unpack_composite(ds, packed_all, spec.bands, scene_dates)
    ds.attrs = {"cell": cell.name, "read_fraction_pixels": 0.0}
    if cube is not None and plan.candidates:
        # warped pixels the plan reads (every band alike) / a full read of every candidate
        area = sum(cube.data.chunks[2][i] * cube.data.chunks[3][j] for _, _, i, j in read_chunks)
        full = len(plan.candidates) * (n_px + 2 * halo) ** 2
        ds.attrs["read_fraction_pixels"] = area / full
    return ds, stats


def empty_composite(window: Window, bands: Sequence[str]) -> xr.Dataset:
    """The composite of a window no scene observed: every band nodata, scene -1, no date,
    ``clear_count`` 0 (numpy-backed; what hole filling starts from in a cell its period
    never reached).

    >>> from s2cube.grid import GlobalGrid, Cell
    >>> w = GlobalGrid(resolution="1/100").cell_window(Cell(43, 195))
    >>> ds = empty_composite(w, ["red"])
    >>> int(ds.red.max()), int(ds.scene.max()), bool(ds.date.isnull().all())
    (0, -1, True)
    """
    from ..cube import _spatial_ref

    packed = np.zeros((len(bands) + 2, *window.shape), dtype="int32")
    packed[len(bands)] = -1
    ds = xr.Dataset(
        coords={
            "latitude": window.latitudes(),
            "longitude": window.longitudes(),
            "spatial_ref": _spatial_ref(),
        }
    )
    unpack_composite(ds, packed, bands, {})
    return ds


def unpack_composite(
    ds: xr.Dataset, packed: Any, bands: Sequence[str], scene_dates: Mapping[int, np.datetime64]
) -> None:
    """Add the variables of a packed ``(band + 2, y, x)`` int32 composite to ``ds``.

    Rows ``0..n_b-1`` are the bands, then the scene index (-1 none), then the usable count;
    ``date`` comes from ``scene_dates`` (scene index → acquisition time).
    """
    dims = ("latitude", "longitude")
    n_b = len(bands)
    for i, band in enumerate(bands):
        ds[band] = (dims, packed[i].astype("uint16"), {"nodata": 0})
    scene = packed[n_b]
    keys = sorted(scene_dates)
    lut_size = (max(keys) + 2) if keys else 1
    lut = np.full(lut_size, np.datetime64("NaT"), dtype="datetime64[ns]")
    for k in keys:
        lut[k] = scene_dates[k]
    ds["scene"] = (dims, scene, {"nodata": -1})
    if isinstance(scene, np.ndarray):
        ds["date"] = (dims, lut[scene])
    else:
        ds["date"] = (dims, scene.map_blocks(lambda s: lut[s], dtype="datetime64[ns]"))
    ds["clear_count"] = (dims, packed[n_b + 1].astype("uint16"))
