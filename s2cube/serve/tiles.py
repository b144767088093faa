"""Tiles from a store: store state, level choice, sampling, rendering.

The layer catalogue, tile matrix sets, tone curves and class colours are in
:mod:`s2cube.serve.layers`.

No web framework here: :class:`TileSource` turns ``(layer, tile matrix set, z, x, y)`` into an
RGBA array, and the ASGI app only parses requests and encodes images.

Sampling is nearest-neighbour and exact.  EPSG:4326 → EPSG:3857 is separable (longitude depends
only on x, latitude only on y), so each output column maps to one source column and each output
row to one source row: a tile is one window read per variable plus a fancy index, with no
warping library in the loop.  The level read is the coarsest overview whose pixels are still no
larger than the tile's pixels, so a tile reads at most a few chunks at any zoom.

The store may still be written while it is served: :class:`TileSource` holds the manifest's
content as one immutable :class:`StoreState` and swaps it when the record folders change
(:meth:`TileSource.maybe_refresh`), and tells whether a tile's cells are all finished
(:meth:`TileSource.tile_complete`, for its cache lifetime).  A super-resolution product nested in
the store (``STORE/superres/x<scale>``, itself a complete store with the root attribute
``s2cube_superres``) is served as the layer ``superres-x<scale>`` through the mosaic's tone curve.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
import time
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from .. import render
from ..errors import InputError
from ..grid import Cell, GlobalGrid, Window
from ..overviews import Level, has_overviews, overview_status, pyramid
from ..overviews.build import BUILT_DIR
from ..overviews.levels import OVERVIEW_GROUP
from ..store import (
    DATE_EPOCH,
    FORMAT,
    MANIFEST_DIR,
    _require_store,
    read_manifest,
    scene_indices,
    store_metadata,
)
from ..store.location import StoreLike, StoreLocation, store_location
from .layers import (
    EARTH_RADIUS,
    LAYERS,
    SUPERRES_ATTR,
    TMS_IDS,
    LayerSpec,
    TileRequestError,
    class_colors,
    get_tms,
    superres_layer_id,
    superres_spec,
    tone_curve_for,
)

__all__ = ["StoreState", "TileSource"]

#: where a store keeps its nested super-resolution products (``superres/x<scale>``)
_SUPERRES_DIR = "superres"
_SUPERRES_NAME = re.compile(r"^x(\d+)$")


def _stored_days(iso_date: str) -> int:
    """A date as the store encodes it: days since :data:`~s2cube.store.DATE_EPOCH`."""
    day = np.datetime64(iso_date, "D").astype("int64")
    return int(day - np.datetime64(DATE_EPOCH, "D").astype("int64"))


@dataclass(frozen=True)
class StoreState:
    """What the manifest says at one moment: swapped whole on a reload, so a request that took
    a state sees one consistent version of it."""

    #: content hash of the records this state was built from (tiles' ETags derive from it)
    version: str
    cells: tuple[str, ...]
    #: (row, col) of the finished mosaic cells, of the land-cover cells, and of the cells
    #: whose per-cell and coarse overview levels are current
    cell_rc: np.ndarray
    landcover_rc: np.ndarray
    percell_ok_rc: np.ndarray
    coarse_ok_rc: np.ndarray
    data_window: Window | None
    bounds: tuple[float, float, float, float]
    date_range: tuple[int, int]
    overviews: bool
    levels: tuple[Level, ...]
    overview_state: dict[str, str]
    scene_ids: dict[int, str]
    has_fill: bool
    has_landcover: bool
    landcover: dict[str, Any] | None


def _rc(names: Any) -> np.ndarray:
    cells = [Cell.from_name(n) for n in names]
    return np.array([(c.row, c.col) for c in cells], dtype="int64").reshape(-1, 2)


def _digest(*parts: Any) -> str:
    h = hashlib.blake2b(digest_size=12)
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


class TileSource:
    """Read-only view of a store for tile rendering (thread-safe; open once per process).

    The manifest is re-read while the server runs (:meth:`maybe_refresh`, at most every
    ``reload_interval`` seconds and only when the store's record folders changed), so cells
    finished after the start are served; nested super-resolution products
    (``STORE/superres/x<scale>``) are found the same way and served as ``superres-x<scale>``.

    Parameters
    ----------
    store
        An s2cube store: a local path or an fsspec URL (options from the environment, e.g.
        ``AWS_*`` and ``S2CUBE_STORAGE_OPTIONS``).
    use_overviews
        Read overview levels when the store has them (``False``: always the full resolution).
    tile_size
        Tile edge in pixels.
    max_read_pixels
        Refuse (HTTP 400) a tile that would read more source pixels than this.
    reload_interval
        Seconds between two checks of the store's record folders (0: on every request).
    superres
        Serve the nested super-resolution products (``False`` for a nested product itself).
    """

    def __init__(
        self,
        store: StoreLike,
        *,
        use_overviews: bool = True,
        tile_size: int = 256,
        max_read_pixels: int = 64_000_000,
        reload_interval: float = 1.0,
        superres: bool = True,
    ) -> None:
        self.path = _require_store(store)
        meta = store_metadata(self.path)
        self.meta = meta
        self.grid = GlobalGrid.from_dict(meta["grid"])
        self.bands = list(meta["bands"])
        self.tile_size = int(tile_size)
        self.max_read_pixels = int(max_read_pixels)
        self.use_overviews = bool(use_overviews)
        self.reload_interval = float(reload_interval)
        self.all_levels = pyramid(self.grid)
        self._arrays: dict[tuple[int, str], Any] = {}
        self._zarr_store = self.path.zarr_store(read_only=True)
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        #: the store's recorded rendering; tiles use its tone curve version
        self.rendering = meta.get("rendering")
        self.tone_curve = tone_curve_for(self.rendering)
        self._with_superres = superres
        #: the store a nested product belongs to (its zoom range is the parent's)
        self._parent: TileSource | None = None
        #: layer id → (scale, the nested product's source, its ``s2cube_superres`` attribute)
        self.superres: dict[str, tuple[int, TileSource, dict[str, Any]]] = {}
        self._signature: Any = None
        self._checked = 0.0
        self.state = self._load_state()
        self._signature = self._store_signature()
        self._discover_superres()

    # ------------------------------------------------------------------ store state
    def _record_folders(self) -> list[str]:
        from ..store.landcover import LANDCOVER_MANIFEST

        return [
            MANIFEST_DIR,
            LANDCOVER_MANIFEST,
            f"{OVERVIEW_GROUP}/{BUILT_DIR}",
            *([_SUPERRES_DIR] if self._with_superres else []),
        ]

    def _store_signature(self) -> Any:
        """A cheap token that changes whenever a record folder (or the root metadata) does.

        Local disk: the folders' mtimes (every record write is a rename into its folder).  A
        folder changed within the last 2 s may change again within the file system's clock
        tick, so its token is never equal to the next one (the next check reloads).
        Object storage: one listing per folder (names, sizes, modification times).
        """
        keys = ["zarr.json", *self._record_folders()]
        if self.path.is_local:
            out: list[Any] = []
            now = time.time_ns()
            for key in keys:
                try:
                    st = os.stat(self.path.path / key)
                except OSError:
                    out.append(None)
                    continue
                if now - st.st_mtime_ns < 2_000_000_000:
                    out.append(object())  # unsettled: compare unequal
                else:
                    out.append((st.st_mtime_ns, st.st_size))
            return out
        fs = self.path.fs
        listing: list[Any] = []
        for key in keys:
            path = self.path._key(key)
            fs.invalidate_cache(path)
            try:
                entries = fs.ls(path, detail=True) if key != "zarr.json" else [fs.info(path)]
            except FileNotFoundError:
                listing.append(None)
                continue
            listing.append(
                sorted(
                    (
                        str(e.get("name")),
                        e.get("size"),
                        str(e.get("LastModified") or e.get("mtime") or e.get("ETag") or ""),
                    )
                    for e in entries
                )
            )
        return listing

    def maybe_refresh(self) -> bool:
        """Reload the state if ``reload_interval`` passed and the store's records changed.

        Returns True if a reload happened.  Cheap: one ``stat`` per record folder on local
        disk.  Concurrent callers never wait: while one thread reloads, the others keep
        serving the previous state.
        """
        now = time.monotonic()
        if now - self._checked < self.reload_interval:
            return False
        if not self._refresh_lock.acquire(blocking=False):
            return False
        try:
            self._checked = now
            sig = self._store_signature()
            changed = sig != self._signature
            if changed:
                self._signature = sig
                self.state = self._load_state()
                with self._lock:
                    self._arrays.clear()
                self._discover_superres()
            for _, nested, _ in list(self.superres.values()):
                changed = nested.maybe_refresh() or changed
            return changed
        finally:
            self._refresh_lock.release()

    def refresh(self) -> None:
        """Re-read the manifest (finished cells, data bounds, date range) now."""
        with self._refresh_lock:
            self._signature = self._store_signature()
            self._checked = time.monotonic()
            self.state = self._load_state()
            with self._lock:
                self._arrays.clear()
            self._discover_superres()
            for _, nested, _ in list(self.superres.values()):
                nested.refresh()

    def _load_state(self) -> StoreState:
        from ..store.landcover import has_landcover, landcover_attrs, read_landcover_manifest

        manifest = read_manifest(self.path)
        cells = tuple(sorted(manifest))
        names = set(cells)
        landcover = has_landcover(self.path)
        lc_manifest = read_landcover_manifest(self.path) if landcover else {}
        names |= set(lc_manifest)  # land cover may cover cells the mosaic does not
        windows = [self.grid.cell_window(Cell.from_name(name)) for name in sorted(names)]
        # the level-0 window of the finished cells (None: empty store); no pixel outside it
        # holds data, so reads clip to it
        data_window: Window | None = reduce(Window.union, windows) if windows else None
        bounds = data_window.bounds if data_window else (-180.0, -90.0, 180.0, 90.0)
        dmin = [r["date_min"] for r in manifest.values() if r.get("date_min")]
        dmax = [r["date_max"] for r in manifest.values() if r.get("date_max")]
        # stored date encoding (days since DATE_EPOCH); (1, 2) keeps the colour ramp defined
        date_range = (_stored_days(min(dmin)), _stored_days(max(dmax))) if dmin else (1, 2)
        overviews = bool(self.use_overviews and has_overviews(self.path))
        ov_state = overview_status(self.path) if overviews else {}
        scene_ids = {i: sid for sid, i in scene_indices(self.path).items()}
        root = self.path.get("zarr.json") or b""
        version = _digest(
            manifest, lc_manifest, ov_state, len(scene_ids), hashlib.sha1(root).hexdigest()
        )
        return StoreState(
            version=version,
            cells=cells,
            cell_rc=_rc(cells),
            landcover_rc=_rc(lc_manifest),
            percell_ok_rc=_rc(n for n, s in ov_state.items() if s in ("ok", "no-coarse")),
            coarse_ok_rc=_rc(n for n, s in ov_state.items() if s == "ok"),
            data_window=data_window,
            bounds=bounds,
            date_range=date_range,
            overviews=overviews,
            levels=tuple(self.all_levels if overviews else self.all_levels[:1]),
            overview_state=ov_state,
            scene_ids=scene_ids,
            has_fill=self.path.exists("fill/zarr.json"),
            has_landcover=landcover,
            landcover=landcover_attrs(self.path) if landcover else None,
        )

    def _discover_superres(self) -> None:
        """Find the nested super-resolution products (``STORE/superres/x<scale>``)."""
        if not self._with_superres:
            return
        found: dict[str, tuple[int, TileSource, dict[str, Any]]] = {}
        for name in self.path.folders(_SUPERRES_DIR):
            m = _SUPERRES_NAME.match(name)
            if m is None:
                continue
            layer_id = superres_layer_id(int(m.group(1)))
            known = self.superres.get(layer_id)
            if known is not None:
                found[layer_id] = known
                continue
            child = store_location(
                f"{self.path.url.rstrip('/')}/{_SUPERRES_DIR}/{name}", self.path.storage_options
            )
            attrs = _superres_attrs(child)
            if attrs is None or int(attrs.get("scale", -1)) != int(m.group(1)):
                continue  # not (yet) a complete product: its template is written first
            try:
                nested = TileSource(
                    child,
                    use_overviews=self.use_overviews,
                    tile_size=self.tile_size,
                    max_read_pixels=self.max_read_pixels,
                    reload_interval=self.reload_interval,
                    superres=False,
                )
            except (InputError, OSError, ValueError, KeyError):
                continue
            # the same colours as the mosaic's true colour layer, whatever the product records
            nested.tone_curve = self.tone_curve
            nested._parent = self
            found[layer_id] = (int(m.group(1)), nested, attrs)
        self.superres = dict(sorted(found.items(), key=lambda kv: kv[1][0]))

    # the state's fields, read through the current state (kept for callers of older versions)
    @property
    def cells(self) -> list[str]:
        return list(self.state.cells)

    @property
    def data_window(self) -> Window | None:
        return self.state.data_window

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return self.state.bounds

    @property
    def date_range(self) -> tuple[int, int]:
        return self.state.date_range

    @property
    def overviews(self) -> bool:
        return self.state.overviews

    @property
    def levels(self) -> list[Level]:
        return list(self.state.levels)

    @property
    def overview_state(self) -> dict[str, str]:
        return self.state.overview_state

    @property
    def scene_ids(self) -> dict[int, str]:
        return self.state.scene_ids

    @property
    def has_fill(self) -> bool:
        return self.state.has_fill

    @property
    def has_landcover(self) -> bool:
        return self.state.has_landcover

    @property
    def landcover(self) -> dict[str, Any] | None:
        return self.state.landcover

    def date_range_iso(self) -> tuple[str, str]:
        epoch = np.datetime64(DATE_EPOCH, "D")
        return (str(epoch + self.date_range[0]), str(epoch + self.date_range[1]))

    def _array(self, level: int, name: str) -> Any:
        key = (level, name)
        arr = self._arrays.get(key)
        if arr is None:
            import zarr

            with self._lock:
                path = self.all_levels[level].path
                arr = zarr.open_array(
                    self._zarr_store,
                    path=f"{path}/{name}" if path else name,
                    mode="r",
                    zarr_format=3,
                )
                self._arrays[key] = arr
        return arr

    # ------------------------------------------------------------------ layers
    def route(self, layer: str) -> tuple[TileSource, LayerSpec]:
        """The source that holds a layer's pixels and the layer's spec."""
        nested = self.superres.get(layer)
        if nested is not None:
            scale, src, attrs = nested
            return src, superres_spec(scale, attrs)
        return self, self.layer(layer)

    def version(self, layer: str | None = None) -> str:
        """Content version of what a layer (or, with None, the whole service) shows."""
        if layer is not None and layer in self.superres:
            return _digest(self.state.version, self.superres[layer][1].state.version)
        if layer is not None:
            return self.state.version
        return _digest(
            self.state.version,
            {k: v[1].state.version for k, v in self.superres.items()},
        )

    # ------------------------------------------------------------------ tile geometry
    def maxzoom(self, tms_id: str, layer: str | None = None) -> int:
        """Native zoom: the first whose tiles are as fine as the store's (or layer's) pixels."""
        if layer is not None and layer in self.superres:
            return self.superres[layer][1].maxzoom(tms_id)
        tms = get_tms(tms_id)
        res = float(self.grid.resolution)
        if tms_id == "WebMercatorQuad":
            res = math.radians(res) * EARTH_RADIUS
        for z in range(tms.minzoom, tms.maxzoom + 1):
            if tms.matrix(z).cellSize <= res * 1.0000001:
                return z
        return tms.maxzoom

    def service_maxzoom(self, tms_id: str) -> int:
        """The finest zoom any served layer has (the tile matrix sets go down to it)."""
        return max([self.maxzoom(tms_id), *(self.maxzoom(tms_id, k) for k in self.superres)])

    def check_tile(self, tms_id: str, z: int, x: int, y: int, layer: str | None = None) -> Any:
        """The tile matrix set, if (z, x, y) is a tile the service serves.

        Every layer is served at every zoom of the service's tile matrix sets (down to the
        finest layer's native zoom; a coarser layer is sampled nearest beyond its own), since
        WMTS clients such as GDAL read a layer at the finest matrix of its set.
        """
        tms = get_tms(tms_id)
        maxz = (self._parent or self).service_maxzoom(tms_id)
        if not 0 <= z <= maxz:
            raise TileRequestError(
                f"TileMatrix {z} is outside 0..{maxz} of {tms_id} for this store",
                locator="TileMatrix",
            )
        m = tms.matrix(z)
        if not 0 <= y < m.matrixHeight:
            raise TileRequestError(
                f"TileRow {y} is outside 0..{m.matrixHeight - 1} of {tms_id} matrix {z}",
                code="TileOutOfRange",
                locator="TileRow",
            )
        if not 0 <= x < m.matrixWidth:
            raise TileRequestError(
                f"TileCol {x} is outside 0..{m.matrixWidth - 1} of {tms_id} matrix {z}",
                code="TileOutOfRange",
                locator="TileCol",
            )
        return tms

    def pixel_lonlat(
        self, tms_id: str, z: int, x: int, y: int, layer: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Lon of each tile column and lat of each tile row (pixel centres)."""
        import morecantile

        tms = self.check_tile(tms_id, z, x, y, layer)
        b = tms.xy_bounds(morecantile.Tile(x, y, z))
        n = self.tile_size
        xs = b.left + (np.arange(n) + 0.5) * ((b.right - b.left) / n)
        ys = b.top - (np.arange(n) + 0.5) * ((b.top - b.bottom) / n)
        if tms_id == "WebMercatorQuad":
            lon = np.degrees(xs / EARTH_RADIUS)
            lat = np.degrees(np.arctan(np.sinh(ys / EARTH_RADIUS)))
        else:
            lon, lat = xs, ys
        return lon, lat

    def level_for(self, pixel_deg: float, state: StoreState | None = None) -> Level:
        """Coarsest available level whose pixels are no larger than ``pixel_deg``."""
        levels = (state or self.state).levels
        best = levels[0]
        for lv in levels:
            if float(lv.resolution) <= pixel_deg * (1 + 1e-9):
                best = lv
        return best

    def tile_complete(self, layer: str, tms_id: str, z: int, x: int, y: int) -> bool:
        """True if every cell under the tile is finished (with current overviews at the level
        the tile reads): its pixels can only change when a cell is rewritten.  False for a
        tile touching a cell that has no record yet (unfinished, or never planned), whose
        transparent pixels may fill in later; those get a short max-age."""
        import morecantile

        src, spec = self.route(layer)
        tms = src.check_tile(tms_id, z, x, y)
        st = src.state
        b = tms.bounds(morecantile.Tile(x, y, z))
        west, east = max(b.left, -180.0), min(b.right, 180.0)
        south, north = max(b.bottom, -90.0), min(b.top, 90.0)
        cs = float(src.grid.cell_size)
        eps = 1e-9
        r0, r1 = math.floor((90 - north) / cs + eps), math.ceil((90 - south) / cs - eps) - 1
        c0, c1 = math.floor((west + 180) / cs + eps), math.ceil((east + 180) / cs - eps) - 1
        total = max(r1 - r0 + 1, 0) * max(c1 - c0 + 1, 0)
        pixel_deg = (east - west) / self.tile_size
        lv = src.level_for(pixel_deg, st)
        if spec.rendering == "classes":
            rc = st.landcover_rc
        elif lv.index == 0:
            rc = st.cell_rc
        else:
            rc = st.percell_ok_rc if lv.cell_pixels is not None else st.coarse_ok_rc
        inside = (rc[:, 0] >= r0) & (rc[:, 0] <= r1) & (rc[:, 1] >= c0) & (rc[:, 1] <= c1)
        return int(inside.sum()) == total

    # ------------------------------------------------------------------ reading
    def read(self, layer: str, tms_id: str, z: int, x: int, y: int) -> dict[str, np.ndarray]:
        """Sample the layer's variables onto a tile (stored encoding; fill values outside data)."""
        src, spec = self.route(layer)
        return src._read(spec, tms_id, z, x, y)

    def _read(self, spec: LayerSpec, tms_id: str, z: int, x: int, y: int) -> dict[str, np.ndarray]:
        st = self.state
        lon, lat = self.pixel_lonlat(tms_id, z, x, y)
        n = self.tile_size
        pixel_deg = abs(float(lon[-1] - lon[0])) / max(n - 1, 1)
        lv = self.level_for(pixel_deg, st)
        out = {v: np.full((n, n), self._fill(v), dtype=self._dtype(v)) for v in spec.variables}
        if st.data_window is None:
            return out
        # only the finished cells' window can hold data: clip to it before reading
        data = st.data_window.zoom_out(lv.factor).clip()
        rows, cols = data.index_of(lon, lat)
        ok_r = (rows >= 0) & (rows < data.height)
        ok_c = (cols >= 0) & (cols < data.width)
        if not ok_r.any() or not ok_c.any():
            return out
        rmin, rmax = int(rows[ok_r].min()), int(rows[ok_r].max())
        cmin, cmax = int(cols[ok_c].min()), int(cols[ok_c].max())
        read = data[rmin : rmax + 1, cmin : cmax + 1]
        n_read = read.height * read.width
        if n_read > self.max_read_pixels:
            raise TileRequestError(
                f"tile {tms_id}/{z}/{x}/{y} would read {n_read} source pixels at level {lv.index} "
                f"(limit {self.max_read_pixels}); zoom in, or build overviews with "
                "`s2cube overviews STORE`",
                status=400,
                code="InvalidParameterValue",
                locator="TileMatrix",
            )
        ri = np.flatnonzero(ok_r)
        ci = np.flatnonzero(ok_c)
        sel = np.ix_(rows[ri] - rmin, cols[ci] - cmin)
        for v in spec.variables:
            block = np.asarray(self._array(lv.index, v)[read.rows, read.cols])
            out[v][np.ix_(ri, ci)] = block[sel]
        return out

    def tile(self, layer: str, tms_id: str, z: int, x: int, y: int) -> np.ndarray:
        """The RGBA (uint8) tile of a layer; nodata is transparent."""
        src, spec = self.route(layer)
        data = src._read(spec, tms_id, z, x, y)
        if spec.rendering == "date":
            return render.date_colors(data["date"], *src.date_range)
        if spec.rendering == "classes":
            return class_colors(data["landcover"], src.landcover_palette())
        a, b, c = (data[v] for v in spec.variables)
        valid = (a > 0) | (b > 0) | (c > 0)
        # the mosaic's curve for every tone layer, super-resolution included
        curve = self.tone_curve if spec.rendering == "tone" else render.tci
        return render.stack_rgba(curve(a), curve(b), curve(c), valid)

    def point(self, lon: float, lat: float, layer: str | None = None) -> dict[str, Any]:
        """Full-resolution values and provenance of the pixel containing (lon, lat)
        (of the layer's store: a super-resolution layer answers from its own product)."""
        if layer is not None and layer in self.superres:
            return self.superres[layer][1].point(lon, lat)
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise TileRequestError(
                f"lon={lon}, lat={lat} is outside -180..180, -90..90", locator="lon/lat"
            )
        st = self.state
        i, j = self.grid.window().index_of(lon, lat)
        # the south pole and the antimeridian at +180° lie on the last pixel's outer edge
        row = min(int(i), self.grid.shape[0] - 1)
        col = min(int(j), self.grid.shape[1] - 1)
        vals = {
            v: self._array(0, v)[row, col].item()
            for v in [*self.bands, "date", "scene", "clear_count", *(["fill"] * st.has_fill)]
        }
        days = int(vals.pop("date"))
        scene = int(vals["scene"])
        if st.has_fill:
            from ..fill import FILL_CODES

            vals["fill_meaning"] = FILL_CODES.get(int(vals["fill"]), "unknown")
        return {
            "lon": lon,
            "lat": lat,
            "row": row,
            "col": col,
            "cell": self.grid.cell_of(lon, lat).name,
            "date": str(np.datetime64(DATE_EPOCH, "D") + days) if days > 0 else None,
            "scene_id": st.scene_ids.get(scene) if scene >= 0 else None,
            **{k: v if isinstance(v, str) else int(v) for k, v in vals.items()},
        }

    # ------------------------------------------------------------------ helpers
    def layer_ids(self) -> list[str]:
        """The layers this store can serve (land cover only when it has the product, one
        super-resolution layer per nested product)."""
        base = [k for k in LAYERS if k != "landcover" or self.has_landcover]
        return [*base, *self.superres]

    def landcover_palette(self) -> dict[int, tuple[str, str]]:
        """``{code: (class name, "#rrggbb")}`` of the store's land cover (empty: none)."""
        if not self.landcover:
            return {}
        names = self.landcover.get("classes", {})
        colors = self.landcover.get("colors", {})
        return {int(k): (str(v), str(colors.get(k, "#ff00ff"))) for k, v in names.items()}

    def layer(self, layer: str) -> LayerSpec:
        if layer in self.superres:
            return self.route(layer)[1]
        spec = LAYERS.get(layer) if layer in self.layer_ids() else None
        if spec is None:
            raise TileRequestError(
                f"unknown layer {layer[:64]!r}; available layers: {self.layer_ids()}",
                status=400,
                locator="Layer",
            )
        return spec

    def layer_bounds(self, layer: str) -> tuple[float, float, float, float]:
        """WGS84 bounds of the finished cells of the layer's store."""
        return self.route(layer)[0].bounds

    @staticmethod
    def _fill(v: str) -> int:
        return -1 if v == "scene" else 0

    @staticmethod
    def _dtype(v: str) -> str:
        return {"scene": "int32", "fill": "uint8", "landcover": "uint8"}.get(v, "uint16")

    def info(self) -> dict[str, Any]:
        layers: dict[str, Any] = {}
        for k in self.layer_ids():
            spec = self.layer(k)
            layers[k] = {
                "title": spec.title,
                "abstract": spec.abstract,
                "maxzoom": {t: self.maxzoom(t, k) for t in TMS_IDS},
            }
        return {
            "store": self.path.name,
            "bounds": list(self.bounds),
            "cells": len(self.cells),
            "overviews": self.overviews,
            "levels": len(self.levels),
            "date_range": list(self.date_range_iso()),
            "layers": layers,
            "superres": {
                k: {
                    "scale": scale,
                    "model": attrs.get("model"),
                    "parent_resolution": attrs.get("parent_resolution"),
                    "resolution_deg": str(src.grid.resolution),
                    "bounds": list(src.bounds),
                    "cells": len(src.cells),
                    "overviews": src.overviews,
                }
                for k, (scale, src, attrs) in self.superres.items()
            },
            "landcover": {
                str(code): {"name": name, "color": color}
                for code, (name, color) in self.landcover_palette().items()
            }
            or None,
            "tile_matrix_sets": {t: {"minzoom": 0, "maxzoom": self.maxzoom(t)} for t in TMS_IDS},
            "resolution_deg": str(self.grid.resolution),
            "rendering": self.rendering or {"tone_curve_version": 1, "recorded": False},
            "attribution": self.meta.get(
                "attribution", "Contains modified Copernicus Sentinel data"
            ),
            "version": self.version(),
        }


def _superres_attrs(loc: StoreLocation) -> dict[str, Any] | None:
    """The nested product's ``s2cube_superres`` root attribute, or None if it is not one."""
    try:
        data = loc.get("zarr.json")
    except OSError:
        return None
    if data is None:
        return None
    try:
        attrs = json.loads(data).get("attributes", {})
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    sr = attrs.get(SUPERRES_ATTR) if isinstance(attrs, dict) else None
    if not isinstance(sr, dict) or attrs.get("s2cube", {}).get("format") != FORMAT:
        return None
    return sr
