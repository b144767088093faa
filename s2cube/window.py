"""The window: one immutable geometry value, "these rows/cols of the global grid, at this zoom".

Every stage that needs pixels ↔ degrees (loading, the planning look, overviews, chips, tiles,
reference stores) asks a :class:`Window`; no other module does that arithmetic.  Windows come
from a :class:`~s2cube.grid.GlobalGrid` (``grid.cell_window(cell)``, ``grid.window(factor)``,
``grid.window_of_bbox(bbox)``) and derive new windows (``pad``, ``zoom_out``, ``w[rows, cols]``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    from fractions import Fraction

    from .grid import GlobalGrid

__all__ = ["Window"]


@dataclass(frozen=True)
class Window:
    """Rows and columns of a global grid at one zoom level: an immutable geometry value.

    The window covers pixels ``row0 .. row0 + height`` and ``col0 .. col0 + width`` of the
    grid zoomed out by ``factor`` (one pixel = ``factor × factor`` grid pixels; 1 is full
    resolution).  Rows count from the north (90°), columns from the antimeridian (−180°), so
    ``row0``/``col0`` may be negative or run past the globe (a halo at the poles); use
    :meth:`clip` for the part on the globe.  The grid's exact fractions are the source of
    truth: degrees are derived from them, never the other way round.  Windows are frozen and
    hash by value, so they can travel in task keys.

    Examples
    --------
    >>> from s2cube.grid import GlobalGrid
    >>> grid = GlobalGrid(resolution="1/1200")
    >>> w = grid.cell_window(grid.cell_of(15.5, 46.5))
    >>> w.shape, w.bounds
    ((1200, 1200), (15.0, 46.0, 16.0, 47.0))
    >>> w.pad(2).zoom_out(4).shape
    (302, 302)
    >>> w[:600, 600:].bounds
    (15.5, 46.5, 16.0, 47.0)
    """

    grid: GlobalGrid
    row0: int
    col0: int
    height: int
    width: int
    factor: int = 1

    def __post_init__(self) -> None:
        if self.height < 0 or self.width < 0:
            raise InputError(
                f"window size {self.height}×{self.width} must be >= 0 pixels; "
                "use clip() or intersection() for the overlap of windows"
            )
        if self.factor < 1:
            raise InputError(f"window factor={self.factor} must be >= 1 (1: full resolution)")

    # ------------------------------------------------------------------ sizes
    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` in pixels of this window's level."""
        return (self.height, self.width)

    @property
    def rows(self) -> slice:
        """Row slice in pixels of this window's level."""
        return slice(self.row0, self.row0 + self.height)

    @property
    def cols(self) -> slice:
        """Column slice in pixels of this window's level."""
        return slice(self.col0, self.col0 + self.width)

    @property
    def resolution(self) -> Fraction:
        """Pixel size in degrees (exact)."""
        return self.grid.resolution * self.factor

    @property
    def level_shape(self) -> tuple[int, int]:
        """Shape of the whole globe at this window's level (partial pixels rounded up)."""
        n_lat, n_lon = self.grid.shape
        return (-(-n_lat // self.factor), -(-n_lon // self.factor))

    # ------------------------------------------------------------------ degrees
    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """Lon/lat bounds ``(west, south, east, north)`` of the pixel edges."""
        r = self.resolution
        west = -180 + self.col0 * r
        north = 90 - self.row0 * r
        south = north - self.height * r
        east = west + self.width * r
        return (float(west), float(south), float(east), float(north))

    @property
    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        """The affine transform in GDAL order ``(west, dx, 0, north, 0, -dy)``."""
        r = float(self.resolution)
        west, _, _, north = self.bounds
        return (west, r, 0.0, north, 0.0, -r)

    @property
    def transform(self) -> Any:
        """The window's affine transform (``affine.Affine``, EPSG:4326, north-up)."""
        from affine import Affine

        return Affine.from_gdal(*self.geotransform)

    @property
    def geobox(self) -> Any:
        """The window as an ``odc.geo.geobox.GeoBox`` (for odc-geo / odc-stac interop)."""
        from odc.geo.geobox import GeoBox

        return GeoBox(self.shape, self.transform, "EPSG:4326")

    def latitudes(self) -> np.ndarray:
        """Pixel-centre latitudes of the window's rows (north to south)."""
        rows = np.arange(self.row0, self.row0 + self.height, dtype="float64")
        return 90.0 - (rows + 0.5) * float(self.resolution)

    def longitudes(self) -> np.ndarray:
        """Pixel-centre longitudes of the window's columns (west to east)."""
        cols = np.arange(self.col0, self.col0 + self.width, dtype="float64")
        return -180.0 + (cols + 0.5) * float(self.resolution)

    def index_of(self, lon: np.ndarray | float, lat: np.ndarray | float) -> tuple[Any, Any]:
        """Row and column (relative to this window; may fall outside it) of the pixels holding
            lon/lat points; a point on a pixel edge belongs to the pixel east/south of it.

            Examples
            --------
            >>> from s2cube.grid import GlobalGrid
        >>> w = GlobalGrid(resolution="1/10").window()
            >>> [int(i) for i in w.index_of(-179.95, 89.95)]
            [0, 0]
        """
        # float division on purpose: tiles sample millions of points per second
        r = float(self.resolution)
        row = np.floor((90.0 - np.asarray(lat, "float64")) / r).astype("int64") - self.row0
        col = np.floor((np.asarray(lon, "float64") + 180.0) / r).astype("int64") - self.col0
        return row, col

    # ------------------------------------------------------------------ derived windows
    def pad(self, n: int) -> Window:
        """The window grown by ``n`` pixels on every side (shrunk for negative ``n``)."""
        return replace(
            self,
            row0=self.row0 - n,
            col0=self.col0 - n,
            height=max(self.height + 2 * n, 0),
            width=max(self.width + 2 * n, 0),
        )

    def zoom_out(self, factor: int) -> Window:
        """The window at a level ``factor`` times coarser, covering at least the same area."""
        if factor < 1:
            raise InputError(f"zoom_out factor={factor} must be >= 1")
        if factor == 1:
            return self
        r0, c0 = self.row0 // factor, self.col0 // factor
        r1 = -(-(self.row0 + self.height) // factor)
        c1 = -(-(self.col0 + self.width) // factor)
        return Window(self.grid, r0, c0, r1 - r0, c1 - c0, self.factor * factor)

    def zoom_in(self, factor: int) -> Window:
        """The same area at a level ``factor`` times finer (exact)."""
        if factor < 1 or self.factor % factor:
            raise InputError(
                f"zoom_in factor={factor} must divide the window's factor {self.factor}"
            )
        return Window(
            self.grid,
            self.row0 * factor,
            self.col0 * factor,
            self.height * factor,
            self.width * factor,
            self.factor // factor,
        )

    def __getitem__(self, key: tuple[slice, slice]) -> Window:
        """Sub-window by slices relative to this window (``w[10:20, 0:5]``), clamped to it."""
        rs, cs = key
        if rs.step not in (None, 1) or cs.step not in (None, 1):
            raise InputError(f"window[{rs}, {cs}]: slices with a step are not windows")
        r0, r1, _ = rs.indices(self.height)
        c0, c1, _ = cs.indices(self.width)
        return Window(
            self.grid,
            self.row0 + r0,
            self.col0 + c0,
            max(r1 - r0, 0),
            max(c1 - c0, 0),
            self.factor,
        )

    def _check_same_level(self, other: Window) -> None:
        if other.grid != self.grid or other.factor != self.factor:
            raise InputError(
                f"windows on different grids or levels (factor {self.factor} vs {other.factor}); "
                "zoom_in/zoom_out one of them first"
            )

    def offset_in(self, outer: Window) -> tuple[int, int]:
        """Row/column of this window's first pixel inside ``outer`` (same grid and level)."""
        self._check_same_level(outer)
        return (self.row0 - outer.row0, self.col0 - outer.col0)

    def intersection(self, other: Window) -> Window:
        """The pixels in both windows, axis by axis (an axis without overlap has size 0)."""
        self._check_same_level(other)
        r0, c0 = max(self.row0, other.row0), max(self.col0, other.col0)
        r1 = min(self.row0 + self.height, other.row0 + other.height)
        c1 = min(self.col0 + self.width, other.col0 + other.width)
        return Window(self.grid, r0, c0, max(r1 - r0, 0), max(c1 - c0, 0), self.factor)

    def union(self, other: Window) -> Window:
        """The smallest window containing both windows."""
        self._check_same_level(other)
        r0, c0 = min(self.row0, other.row0), min(self.col0, other.col0)
        r1 = max(self.row0 + self.height, other.row0 + other.height)
        c1 = max(self.col0 + self.width, other.col0 + other.width)
        return Window(self.grid, r0, c0, r1 - r0, c1 - c0, self.factor)

    def clip(self) -> Window:
        """The part of the window that lies on the globe (may be empty)."""
        n_lat, n_lon = self.level_shape
        return self.intersection(Window(self.grid, 0, 0, n_lat, n_lon, self.factor))

    def align(self, rows: int, cols: int) -> Window:
        """The smallest window holding this one with edges on multiples of ``rows``/``cols``."""
        if rows < 1 or cols < 1:
            raise InputError(f"align({rows}, {cols}): the lattice must be >= 1 pixel")
        r0 = (self.row0 // rows) * rows
        c0 = (self.col0 // cols) * cols
        r1 = -(-(self.row0 + self.height) // rows) * rows
        c1 = -(-(self.col0 + self.width) // cols) * cols
        return Window(self.grid, r0, c0, r1 - r0, c1 - c0, self.factor)
