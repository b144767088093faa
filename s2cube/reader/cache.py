"""What every read of a process shares: open datasets and decoded COG tiles.

* :func:`checkout` lends an open dataset of a file (at an overview level if asked) to one
  thread for one read, from a process-wide pool (:class:`_DatasetPool`): a file is opened about
  once per process, not once per thread.
* :func:`read_window` serves a window of a band from a process-wide cache of decoded internal
  tiles: the first thread to need a tile fetches and decodes it, the others wait for that tile.
* :class:`_LRU`, the byte-bounded cache both use (and :mod:`s2cube.reader.gather` for its
  pixel maps), computes each key once even across threads.

:func:`s2cube.reader.gather.clear_cache` empties these too (a benchmark's run starts cold).
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

__all__ = ["OPEN_DATASETS", "TILE_CACHE_MIB", "TILE_MIN_SIDE", "checkout", "clear", "read_window"]


class _LRU:
    """A byte-bounded LRU of computed values (``nbytes`` sizes one); one computation per key
    even across threads."""

    def __init__(self, limit: int, nbytes: Callable[[Any], int]) -> None:
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


def _layer(env: Any, *layers: str) -> dict[str, Any]:
    """The GDAL options of ``always`` + ``layers`` of a stackstac ``LayeredEnv``."""
    opts = dict(env._always)
    for name in layers:
        opts.update(getattr(env, f"_{name}"))
    return opts


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
    (nor is it by GDAL's own ``/vsicurl/`` cache); :func:`clear` forgets every tile.
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


def clear() -> None:
    """Forget every decoded tile and close every idle open dataset (those checked out now are
    closed when returned)."""
    _TILES.clear()
    _DATASETS.clear()
