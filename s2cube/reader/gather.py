"""Warp once per geometry: nearest reads as a gather through GDAL's own pixel mapping.

Scenes of one MGRS tile share a source grid (CRS, transform, shape), so a nearest warp of any
of them onto a given output window picks the same source pixel for every output pixel.  This
module computes that *output → source* mapping once per (source grid, output grid, window)
and serves every (scene, band) of the grid by a window read of the source (GDAL decodes only
the internal tiles under the window and keeps them in its block cache) and a numpy gather.

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

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "GatherMap",
    "SourceGrid",
    "clear_cache",
    "gather",
    "gather_map",
    "checkout",
    "read_window",
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


class _LRU:
    """A byte-bounded LRU of computed maps; one computation per key even across threads."""

    def __init__(self, limit: int, nbytes: Callable[[Any], int] = lambda v: v.index.nbytes) -> None:
        self.limit = limit
        self.nbytes = nbytes
        self.items: OrderedDict[Hashable, Any] = OrderedDict()
        self.size = 0
        self.lock = threading.Lock()
        self.pending: dict[Hashable, threading.Lock] = {}
        self.hits = itertools.count()
        self.misses = itertools.count()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                next(self.hits)
                return self.items[key]
            key_lock = self.pending.setdefault(key, threading.Lock())
        with key_lock:
            with self.lock:
                if key in self.items:
                    next(self.hits)
                    return self.items[key]
            value = make()
            next(self.misses)
            with self.lock:
                self._put(key, value)
                self.pending.pop(key, None)
        return value

    def get_many(
        self, keys: list[Hashable], make: Callable[[list[Hashable]], dict[Hashable, Any]]
    ) -> dict[Hashable, Any]:
        """Values of ``keys``; the missing ones that no other thread is computing are made by
        one call of ``make`` (a list of keys -> their values), the rest are waited for."""
        out: dict[Hashable, Any] = {}
        mine: list[tuple[Hashable, threading.Lock]] = []
        theirs: list[tuple[Hashable, threading.Lock]] = []
        with self.lock:
            for key in keys:
                if key in self.items:
                    self.items.move_to_end(key)
                    next(self.hits)
                    out[key] = self.items[key]
                elif key in self.pending:
                    theirs.append((key, self.pending[key]))
                else:
                    lock = self.pending[key] = threading.Lock()
                    lock.acquire()
                    mine.append((key, lock))
        try:
            if mine:
                made = make([k for k, _ in mine])
                for _ in mine:
                    next(self.misses)
                with self.lock:
                    for key, _ in mine:
                        out[key] = value = made[key]
                        self._put(key, value)
        finally:
            with self.lock:
                for key, lock in mine:
                    self.pending.pop(key, None)
                    lock.release()
        for key, lock in theirs:
            with lock:  # its maker is done (or failed: then it is made here)
                pass

            def single(key: Hashable = key) -> Any:
                return make([key])[key]

            out[key] = self.get(key, single)
        return out

    def _put(self, key: Hashable, value: Any) -> None:
        """Store under ``self.lock``, evicting the least recently used beyond the limit."""
        self.items[key] = value
        self.size += self.nbytes(value)
        while self.size > self.limit and len(self.items) > 1:
            _, old = self.items.popitem(last=False)
            self.size -= self.nbytes(old)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()
            self.size = 0


_MAPS = _LRU(CACHE_BYTES)
#: lattices of :func:`source_lattice` (two float64 arrays per planning window and source grid)
_LATTICES = _LRU(64 * 2**20, nbytes=lambda v: v[0].nbytes + v[1].nbytes)


def clear_cache() -> None:
    """Forget every computed map and decoded tile, and close every open dataset (tests,
    benchmarks: a timed run starts cold, its GDAL block caches empty)."""
    _MAPS.clear()
    _LATTICES.clear()
    _TILES.clear()
    _DATASETS.clear()


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


def _layer(env: Any, *layers: str) -> dict[str, Any]:
    """The GDAL options of ``always`` + ``layers`` of a stackstac ``LayeredEnv``."""
    opts = dict(env._always)
    for name in layers:
        opts.update(getattr(env, f"_{name}"))
    return opts


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


#: open datasets kept for reuse (their GDAL block caches serve the next read of the file)
OPEN_DATASETS = 256


def _file_key(url: str) -> tuple[int, int] | None:
    """Size and mtime of a local file (a rewritten file is opened afresh); None if remote."""
    import os

    try:
        st = os.stat(url)
    except (OSError, ValueError):
        return None
    return (st.st_size, st.st_mtime_ns)


class _DatasetPool:
    """Open datasets shared by every thread of a process, one user at a time.

    A thread checks a dataset out for one read and returns it; another thread may take it
    next (a GDAL dataset may change threads, it must not be used by two at once).  So a file
    is opened about once per process, not once per thread and file: a second dataset is
    opened only while two threads read the same file at the same moment.  A dataset whose
    read raised is closed, not returned (the retry opens afresh).  At most ``limit`` idle
    datasets are kept, least recently returned closed first.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._idle: OrderedDict[Hashable, list[Any]] = OrderedDict()
        self._n_idle = 0
        self._generation = 0
        self.opened = 0  # datasets opened so far (tests)

    def _take(self, key: Hashable) -> tuple[Any, int]:
        with self._lock:
            stack = self._idle.get(key)
            ds = stack.pop() if stack else None
            if ds is not None:
                self._n_idle -= 1
                if not stack:
                    del self._idle[key]
            return ds, self._generation

    def _give(self, key: Hashable, ds: Any, generation: int) -> None:
        close = []
        with self._lock:
            if generation != self._generation or ds.closed:
                close.append(ds)
            else:
                self._idle.setdefault(key, []).append(ds)
                self._idle.move_to_end(key)
                self._n_idle += 1
                while self._n_idle > self.limit:
                    old_key, stack = next(iter(self._idle.items()))
                    close.append(stack.pop(0))
                    self._n_idle -= 1
                    if not stack:
                        del self._idle[old_key]
        for old in close:
            old.close()

    @contextmanager
    def checkout(self, url: str, env: Any, **options: Any) -> Iterator[Any]:
        import rasterio

        key = (url, tuple(sorted(options.items())), _file_key(url))
        ds, generation = self._take(key)
        if ds is None or ds.closed:
            with rasterio.Env(**_layer(env, "open")):
                ds = rasterio.open(url, sharing=False, **options)
            with self._lock:
                self.opened += 1
        try:
            yield ds
        except BaseException:
            ds.close()
            raise
        self._give(key, ds, generation)

    def clear(self) -> None:
        """Close every idle dataset; those checked out now are closed when returned."""
        with self._lock:
            idle = [ds for stack in self._idle.values() for ds in stack]
            self._idle.clear()
            self._n_idle = 0
            self._generation += 1
        for ds in idle:
            ds.close()


_DATASETS = _DatasetPool(OPEN_DATASETS)


def checkout(url: str, env: Any, **options: Any) -> AbstractContextManager[Any]:
    """An open dataset of ``url`` with GDAL open ``options`` (e.g. an overview level), for
    this thread alone until the ``with`` block ends; then it goes back to a process-wide pool
    for the next read of the file, by any thread (:class:`_DatasetPool`).  Opened in ``env``'s
    ``open`` layer.  A local file that changed since (size or modification time) is opened
    again.

    >>> with checkout(href, gdal_env()) as ds:  # doctest: +SKIP
    ...     ds.read(1, window=window)
    """
    return _DATASETS.checkout(url, env, **options)


#: MiB of decoded internal tiles shared by every thread of a process (:func:`read_window`);
#: the environment variable S2CUBE_TILE_CACHE_MIB overrides it, 0 turns the cache off
TILE_CACHE_MIB = 64
#: smallest internal tile side served through the shared cache (strips and tiny tiles are not)
TILE_MIN_SIDE = 64
_TILES = _LRU(TILE_CACHE_MIB * 2**20, nbytes=lambda v: v.nbytes)


def _tile_cache_bytes() -> int:
    import os

    from ..errors import InputError

    raw = os.environ.get("S2CUBE_TILE_CACHE_MIB")
    if raw is None:
        return TILE_CACHE_MIB * 2**20
    try:
        mib = float(raw)
    except ValueError:
        mib = -1.0
    if not mib >= 0:
        raise InputError(
            f"S2CUBE_TILE_CACHE_MIB={raw!r}; set it to a size in MiB >= 0 (0 turns the shared "
            f"tile cache off) or unset it (default {TILE_CACHE_MIB})"
        )
    return int(mib * 2**20)


def read_window(ds: Any, band: int, r0: int, c0: int, h: int, w: int) -> np.ndarray:
    """Band ``band`` of an open dataset over rows ``r0:r0+h``, columns ``c0:c0+w`` (inside
    the raster): the same array as ``ds.read(band, window=...)``.

    A tiled file is read tile by tile through a cache of decoded internal tiles that every
    thread shares.  A GDAL dataset serves one thread at a time (:func:`checkout`), and its
    block cache is its own: two threads composing neighbouring blocks at once, or a survey
    look and a block read on two datasets of a file (or one opened at another overview
    level), would each fetch and decode the same tile.  Here the first fetches it and the
    others wait for it (one computation per key, :class:`_LRU`).  Keys name the file (path,
    its size and modification time when local), the raster's shape (an overview level has its
    own) and band.
    A remote object rewritten under the same URL during the process's life is not noticed
    (nor is it by GDAL's own ``/vsicurl/`` cache); :func:`clear_cache` forgets every tile.
    """
    from rasterio.windows import Window as RioWindow

    height, width = ds.height, ds.width
    bh, bw = ds.block_shapes[band - 1]
    inside = r0 >= 0 and c0 >= 0 and r0 + h <= height and c0 + w <= width
    _TILES.limit = limit = _tile_cache_bytes()
    in_memory = str(ds.name).startswith("/vsimem/")  # a name that may be reused for other data
    if not inside or min(bh, bw) < TILE_MIN_SIDE or h <= 0 or w <= 0 or limit == 0 or in_memory:
        return np.asarray(ds.read(band, window=RioWindow(c0, r0, w, h)))
    name = (ds.name, _file_key(ds.name), height, width, band)
    tiles = [
        (ty, tx)
        for ty in range(r0 // bh, (r0 + h - 1) // bh + 1)
        for tx in range(c0 // bw, (c0 + w - 1) // bw + 1)
    ]

    def decode(keys: list[Hashable]) -> dict[Hashable, np.ndarray]:
        # one read of the missing tiles' bounding box: GDAL fetches their byte ranges in one
        # request (tile-by-tile requests would each round up to the HTTP chunk size)
        ys = [k[-2] for k in keys]  # type: ignore[index]
        xs = [k[-1] for k in keys]  # type: ignore[index]
        y0, x0 = min(ys) * bh, min(xs) * bw
        y1, x1 = min((max(ys) + 1) * bh, height), min((max(xs) + 1) * bw, width)
        block = np.asarray(ds.read(band, window=RioWindow(x0, y0, x1 - x0, y1 - y0)))
        made = {}
        for key, ty, tx in zip(keys, ys, xs, strict=True):
            tile = block[ty * bh - y0 : (ty + 1) * bh - y0, tx * bw - x0 : (tx + 1) * bw - x0]
            tile = tile.copy()
            tile.flags.writeable = False
            made[key] = tile
        return made

    got = _TILES.get_many([(*name, ty, tx) for ty, tx in tiles], decode)
    out = np.empty((h, w), dtype=ds.dtypes[band - 1])
    for ty, tx in tiles:
        tile = got[(*name, ty, tx)]
        y0, x0 = ty * bh, tx * bw
        a0, a1 = max(r0, y0), min(r0 + h, y0 + tile.shape[0])
        b0, b1 = max(c0, x0), min(c0 + w, x0 + tile.shape[1])
        out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = tile[a0 - y0 : a1 - y0, b0 - x0 : b1 - x0]
    return out


def gather(ds: Any, gmap: GatherMap, *, fill: int = 0, band: int = 1) -> np.ndarray:
    """The output pixels of ``gmap`` from band ``band`` of an open dataset (one window read,
    through the shared tile cache of :func:`read_window`)."""
    if gmap.empty:
        return np.full(gmap.index.shape, fill, dtype=ds.dtypes[band - 1])
    r0, c0, h, w = gmap.window
    return gmap.apply(read_window(ds, band, r0, c0, h, w), fill)


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
