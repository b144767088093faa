"""Tiles from a store: layers, tile matrix sets, level choice, sampling, rendering.

No web framework here: :class:`TileSource` turns ``(layer, tile matrix set, z, x, y)`` into an
RGBA array, and the ASGI app only parses requests and encodes images.

Sampling is nearest-neighbour and exact.  EPSG:4326 → EPSG:3857 is separable (longitude depends
only on x, latitude only on y), so each output column maps to one source column and each output
row to one source row: a tile is one window read per variable plus a fancy index, with no
warping library in the loop.  The level read is the coarsest overview whose pixels are still no
larger than the tile's pixels, so a tile reads at most a few chunks at any zoom.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from .. import render
from ..errors import InputError
from ..grid import Cell, GlobalGrid, Window
from ..overviews import Level, has_overviews, overview_status, pyramid
from ..store import DATE_EPOCH, _require_store, read_manifest, scene_indices, store_metadata
from ..store.location import StoreLike

__all__ = ["LAYERS", "TMS_IDS", "LayerSpec", "TileRequestError", "TileSource"]

EARTH_RADIUS = 6378137.0


class TileRequestError(InputError):
    """A tile request that cannot be served; carries the HTTP status and the OGC exception code."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        code: str = "InvalidParameterValue",
        locator: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.locator = locator


@dataclass(frozen=True)
class LayerSpec:
    """A served layer: which variables, and how they become colour."""

    id: str
    title: str
    variables: tuple[str, ...]
    rendering: str  # "tone" | "tci" | "date" | "classes"
    abstract: str


LAYERS: dict[str, LayerSpec] = {
    spec.id: spec
    for spec in (
        LayerSpec(
            "true-color",
            "True colour",
            ("red", "green", "blue"),
            "tone",
            "Red, green, blue through the fixed global s2cube tone curve (the store's version)",
        ),
        LayerSpec(
            "false-color",
            "False colour (NIR, red, green)",
            ("nir", "red", "green"),
            "tone",
            "Near-infrared, red, green through the global tone curve; vegetation is red",
        ),
        LayerSpec(
            "true-color-tci",
            "True colour (ESA TCI rule)",
            ("red", "green", "blue"),
            "tci",
            "Red, green, blue with the ESA TCI rule: reflectance 0-0.2 linearly to 0-255",
        ),
        LayerSpec(
            "provenance",
            "Provenance (acquisition date)",
            ("date",),
            "date",
            "Acquisition date of every pixel, viridis from the store's first to last date",
        ),
        LayerSpec(
            "landcover",
            "Land cover",
            ("landcover",),
            "classes",
            "Land-cover class (s2cube landcover): water, tree, grass, barren, built (not split "
            "into residential/industrial), in the store's palette; transparent: no clear date",
        ),
    )
}

TMS_IDS = ("WebMercatorQuad", "WorldCRS84Quad")


def _stored_days(iso_date: str) -> int:
    """A date as the store encodes it: days since :data:`~s2cube.store.DATE_EPOCH`."""
    day = np.datetime64(iso_date, "D").astype("int64")
    return int(day - np.datetime64(DATE_EPOCH, "D").astype("int64"))


def get_tms(tms_id: str) -> Any:
    import morecantile

    if tms_id not in TMS_IDS:
        raise TileRequestError(
            f"unknown tile matrix set {tms_id!r}; use one of {list(TMS_IDS)}",
            locator="TileMatrixSet",
        )
    return morecantile.tms.get(tms_id)


#: the tone curve of each recorded version (``render.rendering_attrs()["tone_curve_version"]``)
TONE_CURVES = {1: render.tone_curve_v1, 2: render.tone_curve}


def tone_curve_for(rendering: dict[str, Any] | None) -> Any:
    """The tone curve a store is served with: the version recorded in its root metadata.

    A store without the record was created before the rendering was recorded, when stores
    were served with version 1 (the log curve): it keeps version 1, so its tiles do not change.

    >>> tone_curve_for({"tone_curve_version": 2}) is render.tone_curve
    True
    >>> tone_curve_for(None) is render.tone_curve_v1
    True
    """
    version = int((rendering or {}).get("tone_curve_version", 1))
    if version not in TONE_CURVES:
        raise ValueError(
            f"the store is rendered with tone curve version {version}, which this s2cube does "
            f"not know (it has {sorted(TONE_CURVES)}); upgrade s2cube to serve it"
        )
    return TONE_CURVES[version]


class TileSource:
    """Read-only view of a store for tile rendering (thread-safe; open once per process).

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
    """

    def __init__(
        self,
        store: StoreLike,
        *,
        use_overviews: bool = True,
        tile_size: int = 256,
        max_read_pixels: int = 64_000_000,
    ) -> None:
        self.path = _require_store(store)
        meta = store_metadata(self.path)
        self.meta = meta
        self.grid = GlobalGrid.from_dict(meta["grid"])
        self.bands = list(meta["bands"])
        self.tile_size = int(tile_size)
        self.max_read_pixels = int(max_read_pixels)
        all_levels = pyramid(self.grid)
        self.overviews = bool(use_overviews and has_overviews(self.path))
        self.levels: list[Level] = all_levels if self.overviews else all_levels[:1]
        self._arrays: dict[tuple[int, str], Any] = {}
        self._zarr_store = self.path.zarr_store(read_only=True)
        self._lock = threading.Lock()
        self.scene_ids = {i: sid for sid, i in scene_indices(self.path).items()}
        #: the store's recorded rendering; tiles use its tone curve version
        self.rendering = meta.get("rendering")
        self.tone_curve = tone_curve_for(self.rendering)
        self.has_fill = self.path.exists("fill/zarr.json")
        from ..store.landcover import has_landcover, landcover_attrs

        self.has_landcover = has_landcover(self.path)
        self.landcover = landcover_attrs(self.path) if self.has_landcover else None
        self.refresh()

    # ------------------------------------------------------------------ store state
    def refresh(self) -> None:
        """Re-read the manifest (finished cells, data bounds, date range)."""
        manifest = read_manifest(self.path)
        self.cells = sorted(manifest)
        names = set(self.cells)
        if self.has_landcover:  # land cover may cover cells the mosaic does not
            from ..store.landcover import read_landcover_manifest

            names |= set(read_landcover_manifest(self.path))
        windows = [self.grid.cell_window(Cell.from_name(name)) for name in sorted(names)]
        # the level-0 window of the finished cells (None: empty store); no pixel outside it
        # holds data, so reads clip to it
        self.data_window: Window | None = reduce(Window.union, windows) if windows else None
        self.bounds = self.data_window.bounds if self.data_window else (-180.0, -90.0, 180.0, 90.0)
        dmin = [r["date_min"] for r in manifest.values() if r.get("date_min")]
        dmax = [r["date_max"] for r in manifest.values() if r.get("date_max")]
        # stored date encoding (days since DATE_EPOCH); (1, 2) keeps the colour ramp defined
        self.date_range = (_stored_days(min(dmin)), _stored_days(max(dmax))) if dmin else (1, 2)
        self.overview_state = overview_status(self.path) if self.overviews else {}

    def date_range_iso(self) -> tuple[str, str]:
        epoch = np.datetime64(DATE_EPOCH, "D")
        return (str(epoch + self.date_range[0]), str(epoch + self.date_range[1]))

    def _array(self, level: int, name: str) -> Any:
        key = (level, name)
        arr = self._arrays.get(key)
        if arr is None:
            import zarr

            with self._lock:
                path = self.levels[level].path
                arr = zarr.open_array(
                    self._zarr_store,
                    path=f"{path}/{name}" if path else name,
                    mode="r",
                    zarr_format=3,
                )
                self._arrays[key] = arr
        return arr

    # ------------------------------------------------------------------ tile geometry
    def maxzoom(self, tms_id: str) -> int:
        """Finest zoom whose tiles are at least as fine as the store's pixels."""
        tms = get_tms(tms_id)
        res = float(self.grid.resolution)
        if tms_id == "WebMercatorQuad":
            res = math.radians(res) * EARTH_RADIUS
        for z in range(tms.minzoom, tms.maxzoom + 1):
            if tms.matrix(z).cellSize <= res * 1.0000001:
                return z
        return tms.maxzoom

    def check_tile(self, tms_id: str, z: int, x: int, y: int) -> Any:
        tms = get_tms(tms_id)
        maxz = self.maxzoom(tms_id)
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

    def pixel_lonlat(self, tms_id: str, z: int, x: int, y: int) -> tuple[np.ndarray, np.ndarray]:
        """Lon of each tile column and lat of each tile row (pixel centres)."""
        import morecantile

        tms = self.check_tile(tms_id, z, x, y)
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

    def level_for(self, pixel_deg: float) -> Level:
        """Coarsest available level whose pixels are no larger than ``pixel_deg``."""
        best = self.levels[0]
        for lv in self.levels:
            if float(lv.resolution) <= pixel_deg * (1 + 1e-9):
                best = lv
        return best

    # ------------------------------------------------------------------ reading
    def read(self, layer: str, tms_id: str, z: int, x: int, y: int) -> dict[str, np.ndarray]:
        """Sample the layer's variables onto a tile (stored encoding; fill values outside data)."""
        spec = self.layer(layer)
        lon, lat = self.pixel_lonlat(tms_id, z, x, y)
        n = self.tile_size
        pixel_deg = abs(float(lon[-1] - lon[0])) / max(n - 1, 1)
        lv = self.level_for(pixel_deg)
        out = {v: np.full((n, n), self._fill(v), dtype=self._dtype(v)) for v in spec.variables}
        if self.data_window is None:
            return out
        # only the finished cells' window can hold data: clip to it before reading
        data = self.data_window.zoom_out(lv.factor).clip()
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
        spec = self.layer(layer)
        data = self.read(layer, tms_id, z, x, y)
        if spec.rendering == "date":
            return render.date_colors(data["date"], *self.date_range)
        if spec.rendering == "classes":
            return class_colors(data["landcover"], self.landcover_palette())
        a, b, c = (data[v] for v in spec.variables)
        valid = (a > 0) | (b > 0) | (c > 0)
        curve = self.tone_curve if spec.rendering == "tone" else render.tci
        return render.stack_rgba(curve(a), curve(b), curve(c), valid)

    def point(self, lon: float, lat: float) -> dict[str, Any]:
        """Full-resolution values and provenance of the pixel containing (lon, lat)."""
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise TileRequestError(
                f"lon={lon}, lat={lat} is outside -180..180, -90..90", locator="lon/lat"
            )
        i, j = self.grid.window().index_of(lon, lat)
        # the south pole and the antimeridian at +180° lie on the last pixel's outer edge
        row = min(int(i), self.grid.shape[0] - 1)
        col = min(int(j), self.grid.shape[1] - 1)
        vals = {
            v: self._array(0, v)[row, col].item()
            for v in [*self.bands, "date", "scene", "clear_count", *(["fill"] * self.has_fill)]
        }
        days = int(vals.pop("date"))
        scene = int(vals["scene"])
        if self.has_fill:
            from ..fill import FILL_CODES

            vals["fill_meaning"] = FILL_CODES.get(int(vals["fill"]), "unknown")
        return {
            "lon": lon,
            "lat": lat,
            "row": row,
            "col": col,
            "cell": self.grid.cell_of(lon, lat).name,
            "date": str(np.datetime64(DATE_EPOCH, "D") + days) if days > 0 else None,
            "scene_id": self.scene_ids.get(scene) if scene >= 0 else None,
            **{k: v if isinstance(v, str) else int(v) for k, v in vals.items()},
        }

    # ------------------------------------------------------------------ helpers
    def layer_ids(self) -> list[str]:
        """The layers this store can serve (land cover only when it has the product)."""
        return [k for k in LAYERS if k != "landcover" or self.has_landcover]

    def landcover_palette(self) -> dict[int, tuple[str, str]]:
        """``{code: (class name, "#rrggbb")}`` of the store's land cover (empty: none)."""
        if not self.landcover:
            return {}
        names = self.landcover.get("classes", {})
        colors = self.landcover.get("colors", {})
        return {int(k): (str(v), str(colors.get(k, "#ff00ff"))) for k, v in names.items()}

    def layer(self, layer: str) -> LayerSpec:
        spec = LAYERS.get(layer) if layer in self.layer_ids() else None
        if spec is None:
            raise TileRequestError(
                f"unknown layer {layer[:64]!r}; available layers: {self.layer_ids()}",
                status=400,
                locator="Layer",
            )
        return spec

    @staticmethod
    def _fill(v: str) -> int:
        return -1 if v == "scene" else 0

    @staticmethod
    def _dtype(v: str) -> str:
        return {"scene": "int32", "fill": "uint8", "landcover": "uint8"}.get(v, "uint16")

    def info(self) -> dict[str, Any]:
        return {
            "store": self.path.name,
            "bounds": list(self.bounds),
            "cells": len(self.cells),
            "overviews": self.overviews,
            "levels": len(self.levels),
            "date_range": list(self.date_range_iso()),
            "layers": {
                k: {"title": LAYERS[k].title, "abstract": LAYERS[k].abstract}
                for k in self.layer_ids()
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
        }


def class_colors(classes: np.ndarray, palette: dict[int, tuple[str, str]]) -> np.ndarray:
    """RGBA (h, w, 4) uint8 of a class map: each code in its palette colour, 0 transparent.

    >>> class_colors(np.array([[0, 1]], "uint8"), {1: ("water", "#2b6cc4")})[0, 1].tolist()
    [43, 108, 196, 255]
    """
    lut = np.zeros((256, 4), dtype=np.uint8)
    for code, (_, color) in palette.items():
        h = color.lstrip("#")
        lut[int(code)] = (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 255)
    return lut[np.asarray(classes, dtype=np.uint8)]
