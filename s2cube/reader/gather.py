"""Warp once per geometry: nearest reads as a gather through GDAL's own pixel mapping.

Scenes of one MGRS tile share a source grid (CRS, transform, shape), so a nearest warp of any
of them onto a given output window picks the same source pixel for every output pixel.  This
module computes that *output → source* mapping once per (source grid, output grid, window)
and serves every (scene, band) of the grid by a window read of the source (only the internal
tiles under the window are decoded, once per process: :func:`s2cube.reader.cache.read_window`)
and a numpy gather.

The mapping is not re-derived: it **is** GDAL's.  Two uint16 index rasters of the source grid
(row + 1 and column + 1, 0 = nodata, only the part under the window written, in a sparse
in-memory GeoTIFF) are warped with exactly the warped-VRT parameters, GDAL environment and read
window the real read would use, so every output pixel gets the index of the source pixel GDAL's
nearest kernel would have copied (its approximate transformer, VRT block lattice and all), and 0
where GDAL writes nodata.  A source pixel that is nodata gives nodata either way.  Same data
type (uint16) and same nodata as the bands, so GDAL takes the same warp path and chunking
(block-wise maps warp all index digits as the bands of one raster: each VRT block is warped
on its own, whatever the band count).
``tests/test_reader_gather.py`` checks the result against GDAL's own reads pixel for pixel.

Where the shortcut does not apply (resampling other than nearest, a source without a nodata
value, more than one band, a source over 65534 px), the callers fall back to GDAL's warp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import cache
from .cache import _LRU, _layer

__all__ = [
    "GatherMap",
    "SourceGrid",
    "clear_cache",
    "gather",
    "gather_map",
    "source_grid",
    "source_lattice",
]

#: largest source side the uint16 index rasters can number (0 is nodata)
MAX_SIDE = 65534
#: source pixels added around the mapped window (GDAL's approximate transformer errs by < 1 px)
MARGIN = 8
#: bytes of mappings kept (int32 per output pixel): a few cells' read chunks
CACHE_BYTES = 192 * 2**20


@dataclass(frozen=True)
class SourceGrid:
    """The pixel grid of a source raster: CRS (WKT), affine coefficients and shape."""

    crs: str
    transform: tuple[float, ...]
    height: int
    width: int


def source_grid(ds: Any) -> SourceGrid:
    """The :class:`SourceGrid` of an open rasterio dataset."""
    return SourceGrid(ds.crs.to_wkt(), tuple(ds.transform)[:6], int(ds.height), int(ds.width))


@dataclass(frozen=True, eq=False)
class GatherMap:
    """Where each output pixel of a window comes from in one source grid.

    ``window`` ``(row0, col0, height, width)`` of the source holds every mapped pixel; ``index``
    ``(h, w)`` int32 is the flat index into that window (``height * width`` = nodata).
    """

    window: tuple[int, int, int, int]
    index: np.ndarray

    @property
    def empty(self) -> bool:
        return self.window[2] == 0 or self.window[3] == 0

    def apply(self, source: np.ndarray, fill: int = 0) -> np.ndarray:
        """Output pixels from ``source``, the source's ``window`` (as read)."""
        flat = np.empty(source.size + 1, dtype=source.dtype)
        flat[:-1] = source.ravel()
        flat[-1] = fill
        return np.take(flat, self.index)  # same values as flat[index], ~1.6x faster


_MAPS = _LRU(CACHE_BYTES, nbytes=lambda v: v.index.nbytes)
#: lattices of :func:`source_lattice` (two float64 arrays per planning window and source grid)
_LATTICES = _LRU(64 * 2**20, nbytes=lambda v: v[0].nbytes + v[1].nbytes)


def clear_cache() -> None:
    """Forget every computed map and decoded tile, and close every open dataset (tests,
    benchmarks: a timed run starts cold, its GDAL block caches empty)."""
    _MAPS.clear()
    _LATTICES.clear()
    cache.clear()


#: lattice points transformed exactly per axis at most; the rest are interpolated
LATTICE_NODES = 129


def source_lattice(
    grid: SourceGrid, bounds: tuple[float, float, float, float], shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Source pixel coordinates (fractional ``row``, ``col``, each ``(h + 1, w + 1)``) of the
    pixel corners of a lon/lat window of ``shape`` pixels over ``bounds``; cached per source
    grid, so the scenes of one tile share it.

    At most :data:`LATTICE_NODES` lines per axis are transformed (GDAL/PROJ); the lines between
    are interpolated linearly.  Over a 1° window that spacing is < 1 km, where a UTM projection
    departs from linear by millimetres (< 10⁻³ source pixel), far inside the margin its users add.
    """
    key = (grid, tuple(float(b) for b in bounds), tuple(int(n) for n in shape))

    def make() -> tuple[np.ndarray, np.ndarray]:
        from affine import Affine
        from rasterio.crs import CRS
        from rasterio.warp import transform as warp_points

        west, south, east, north = bounds
        h, w = shape
        ri = np.unique(np.linspace(0, h, min(h + 1, LATTICE_NODES)).round().astype(int))
        ci = np.unique(np.linspace(0, w, min(w + 1, LATTICE_NODES)).round().astype(int))
        lon = west + ci * ((east - west) / w)
        lat = north - ri * ((north - south) / h)
        glon, glat = np.meshgrid(lon, lat)
        sx, sy = warp_points(
            CRS.from_epsg(4326), CRS.from_wkt(grid.crs), glon.ravel(), glat.ravel()
        )
        sc, sr = ~Affine(*grid.transform) * (np.asarray(sx), np.asarray(sy))
        sc, sr = np.asarray(sc).reshape(glon.shape), np.asarray(sr).reshape(glon.shape)
        out = []
        for a in (sr, sc):
            # along columns, then along rows (bilinear on the rectilinear node lattice)
            cols = np.stack([np.interp(np.arange(w + 1), ci, row) for row in a])
            full = np.stack([np.interp(np.arange(h + 1), ri, col) for col in cols.T], axis=1)
            full.flags.writeable = False
            out.append(full)
        return out[0], out[1]

    result: tuple[np.ndarray, np.ndarray] = _LATTICES.get(key, make)
    return result


def _source_window(
    grid: SourceGrid, crs: Any, transform: Any, window: tuple[int, int, int, int]
) -> tuple[int, int, int, int] | None:
    """Source rows/cols (``row0, col0, h, w``) covering an output window, with a margin."""
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp_points

    r0, c0, h, w = window
    n = 33
    rows = np.concatenate(
        [np.full(n, r0), np.full(n, r0 + h), np.linspace(r0, r0 + h, n), np.linspace(r0, r0 + h, n)]
    )
    cols = np.concatenate(
        [np.linspace(c0, c0 + w, n), np.linspace(c0, c0 + w, n), np.full(n, c0), np.full(n, c0 + w)]
    )
    # an interior lattice too: a window may bulge past its edges' image in another projection
    gy, gx = np.meshgrid(np.linspace(r0, r0 + h, 9), np.linspace(c0, c0 + w, 9), indexing="ij")
    rows = np.concatenate([rows, gy.ravel()])
    cols = np.concatenate([cols, gx.ravel()])
    xs, ys = Affine(*transform[:6]) * (cols, rows)  # type: ignore[operator]
    sx, sy = warp_points(CRS.from_user_input(crs), CRS.from_wkt(grid.crs), xs, ys)
    sc, sr = ~Affine(*grid.transform) * (np.asarray(sx), np.asarray(sy))
    if not (np.isfinite(sc).all() and np.isfinite(sr).all()):
        return (0, 0, grid.height, grid.width)
    row0 = max(int(np.floor(np.min(sr))) - MARGIN, 0)
    row1 = min(int(np.ceil(np.max(sr))) + MARGIN, grid.height)
    col0 = max(int(np.floor(np.min(sc))) - MARGIN, 0)
    col1 = min(int(np.ceil(np.max(sc))) + MARGIN, grid.width)
    if row1 <= row0 or col1 <= col0:
        return None
    return (row0, col0, row1 - row0, col1 - col0)


#: index digits per source data type: (numpy type, base); a digit is stored + 1 (0 is nodata)
_DIGITS = {"uint8": ("uint8", 255), "uint16": ("uint16", 65535)}


def _warp_index(
    grid: SourceGrid,
    dtype: str,
    region: tuple[int, int, int, int],
    warp: Callable[[Any], np.ndarray],
    *,
    together: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp index rasters of ``grid`` (only ``region`` written) with ``warp``; return the
    source row + 1 and column + 1 of every output pixel (0: none).

    The rasters have the source's data type and nodata (0), so GDAL takes the same kernel and
    splits a large warp into the same chunks: a row or column number is written in base 255
    (uint8, two digits) or 65535 (uint16, one), each digit + 1.  With ``together`` every digit
    raster is a band of one dataset warped once (``warp`` returns ``(band, y, x)``): for
    block-wise warps, where each 512×128 VRT block is warped on its own and never split, the
    band count changes nothing but the cost; a whole-target warp is split by memory, so it
    keeps one band per warp.
    """
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.io import MemoryFile
    from rasterio.windows import Window as RioWindow

    np_type, base = _DIGITS[dtype]
    r0, c0, h, w = region
    n_digits = 1 if base > max(grid.height, grid.width) else 2
    rasters = []  # (axis, digit, full raster)
    for axis, (start, n) in enumerate(((r0, h), (c0, w))):
        numbers = np.arange(start, start + n, dtype="int32")
        for d in range(n_digits):
            digit = ((numbers // base**d) % base + 1).astype(np_type)
            rasters.append((axis, d, digit[:, None] if axis == 0 else digit[None, :]))

    def warped(group: list[tuple[int, int, np.ndarray]]) -> np.ndarray:
        profile = dict(
            driver="GTiff",
            width=grid.width,
            height=grid.height,
            count=len(group),
            dtype=np_type,
            nodata=0,
            crs=CRS.from_wkt(grid.crs),
            transform=Affine(*grid.transform),
            tiled=True,
            blockxsize=256,
            blockysize=256,
            sparse_ok=True,
        )
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                for b, (_, _, full) in enumerate(group, start=1):
                    dst.write(
                        np.ascontiguousarray(np.broadcast_to(full, (h, w))),
                        b,
                        window=RioWindow(c0, r0, w, h),
                    )
            with mem.open() as src:
                got = warp(src)
        return got if got.ndim == 3 else got[None]

    if together:
        bands = list(warped(rasters))
    else:
        bands = [warped([r])[0] for r in rasters]
    found = []
    for axis in (0, 1):
        value: np.ndarray | None = None
        for (ax, d, _), got in zip(rasters, bands, strict=True):
            if ax != axis:
                continue
            # in place, int32 (index + 1 < 2**31), temporaries by strips of rows: the maps
            # of a large look stay small
            if value is None:
                value = got.astype("int32")  # digit + 1, 0 where nothing maps
            else:
                for s in _strips(value.shape[0]):
                    part = got[s].astype("int32")
                    none = (value[s] == 0) | (part == 0)
                    part -= 1
                    part *= base**d
                    value[s] += part
                    value[s][none] = 0
        assert value is not None
        found.append(value)
    return found[0], found[1]


#: rows per strip of the in-place index arithmetic (bounds its temporaries)
_STRIP = 512


def _strips(n: int) -> list[slice]:
    return [slice(i, min(i + _STRIP, n)) for i in range(0, n, _STRIP)]


def _to_map(rows1: np.ndarray, cols1: np.ndarray) -> GatherMap:
    """Row/col + 1 index arrays (0 none) → a :class:`GatherMap` over their bounding window.

    Consumes ``rows1`` (int32): the flat index is computed into its buffer strip by strip, so a
    look's map costs its two index arrays and nothing of their size more."""
    big = np.iinfo("int32").max
    r0 = c0 = big
    r1 = c1 = 0
    for s in _strips(rows1.shape[0]):
        valid = (rows1[s] > 0) & (cols1[s] > 0)
        if valid.any():
            r0 = min(r0, int(rows1[s].min(where=valid, initial=big)))
            r1 = max(r1, int(rows1[s].max(where=valid, initial=0)))
            c0 = min(c0, int(cols1[s].min(where=valid, initial=big)))
            c1 = max(c1, int(cols1[s].max(where=valid, initial=0)))
    if r1 == 0:
        return GatherMap((0, 0, 0, 0), np.zeros(rows1.shape, dtype="int32"))
    r0, c0 = r0 - 1, c0 - 1  # the + 1 of the index rasters; r1, c1 are exclusive as they are
    h, w = r1 - r0, c1 - c0
    index = rows1
    for s in _strips(rows1.shape[0]):
        valid = (rows1[s] > 0) & (cols1[s] > 0)
        flat = (rows1[s] - (1 + r0)) * w + (cols1[s] - (1 + c0))
        flat[~valid] = h * w
        index[s] = flat
    return GatherMap((r0, c0, h, w), index)


def gather_map(
    grid: SourceGrid,
    *,
    crs: Any,
    transform: Any,
    width: int,
    height: int,
    window: tuple[int, int, int, int],
    env: Any,
    dtype: str = "uint16",
    whole_target: bool = False,
) -> GatherMap:
    """GDAL's nearest mapping of an output ``window`` (``row0, col0, h, w``) of the warped grid
    ``(crs, transform, width, height)`` onto ``grid``, computed once and cached.

    ``env`` is the reading :func:`~s2cube.reader.policy.gdal_env`; ``whole_target`` warps the
    window in one operation (:data:`~s2cube.reader.warp._WHOLE_TARGET_WARP`, the planning
    looks) instead of block-wise (the lazy stacks).
    """
    key = (
        grid,
        str(crs),
        tuple(transform)[:6],
        int(width),
        int(height),
        tuple(int(v) for v in window),
        dtype,
        whole_target,
    )

    def make() -> GatherMap:
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT
        from rasterio.windows import Window as RioWindow

        from .warp import _WHOLE_TARGET_WARP

        region = _source_window(grid, crs, transform, window)
        if region is None:
            return GatherMap((0, 0, 0, 0), np.zeros(window[2:], dtype="int32"))
        r0, c0, h, w = window

        def warp(src: Any) -> np.ndarray:
            # fresh Envs of the layers' options: stackstac's LayeredEnv hands out the *same*
            # Env object for ``open`` and ``open_vrt``, and re-entering it inside a read that
            # is already in ``open`` (read_warped) leaves its options set process-wide
            with rasterio.Env(**_layer(env, "open", "open_vrt")):
                vrt = WarpedVRT(
                    src,
                    sharing=False,
                    resampling=Resampling.nearest,
                    crs=crs,
                    transform=transform,
                    width=width,
                    height=height,
                    **({"src_nodata": 0, "nodata": 0} if whole_target else {"add_alpha": False}),
                )
            read_opts = _layer(env, "read")
            if whole_target:
                read_opts.update(_WHOLE_TARGET_WARP)
            with vrt, rasterio.Env(**read_opts):
                return vrt.read(window=RioWindow(c0, r0, w, h))

        rows1, cols1 = _warp_index(grid, dtype, region, warp, together=not whole_target)
        return _to_map(rows1, cols1)

    return _MAPS.get(key, make)


def gather(ds: Any, gmap: GatherMap, *, fill: int = 0, band: int = 1) -> np.ndarray:
    """The output pixels of ``gmap`` from band ``band`` of an open dataset (one window read,
    through the shared tile cache of :func:`s2cube.reader.cache.read_window`)."""
    if gmap.empty:
        return np.full(gmap.index.shape, fill, dtype=ds.dtypes[band - 1])
    r0, c0, h, w = gmap.window
    return gmap.apply(cache.read_window(ds, band, r0, c0, h, w), fill)


def eligible(ds: Any, resampling: str) -> bool:
    """Whether a nearest gather reproduces GDAL's warp for this dataset."""
    return bool(
        resampling == "nearest"
        and ds.dtypes[0] in _DIGITS
        and ds.count == 1
        and ds.nodata == 0
        and ds.crs is not None
        and ds.height <= MAX_SIDE
        and ds.width <= MAX_SIDE
        and ds.transform.b == 0
        and ds.transform.d == 0
    )
