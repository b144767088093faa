"""The global grid: EPSG:4326 pixels, cells, and the mapping cell ↔ bounds ↔ store region.

The default grid is the ESA WorldCover grid (1/12000° per pixel, north-up, origin at
(-180°, 90°)), so land-cover labels align pixel for pixel.  The unit of work is a **cell**
(1°×1° = 12000×12000 px by default): one cell is written by exactly one task into its own
Zarr shard.  Both the resolution and the cell size are parameters so tests can use coarse
grids; they must tile the globe exactly (an integer number of pixels per cell and of cells
per 360°/180°).

Geometry travels as one immutable value, :class:`Window`: "these rows/cols of the global grid,
at this zoom".  Every stage that needs pixels ↔ degrees (loading, the planning look, overviews,
chips, tiles, reference stores) asks a window; no other module does that arithmetic.

Everything here is pure arithmetic on integers where possible: pixel indices are exact,
floating point only appears when converting to degrees.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["GlobalGrid", "Cell", "Window", "DEFAULT_GRID", "validate_bbox"]


def _as_fraction(value: float | str | Fraction, name: str) -> Fraction:
    """Degrees as an exact fraction (1/12000 must not become 8.333e-05 ± ulp)."""
    if isinstance(value, Fraction):
        frac = value
    elif isinstance(value, str):
        frac = Fraction(value)
    else:
        # limit_denominator recovers 1/12000 from its float; a float like 0.0001 stays exact
        frac = Fraction(value).limit_denominator(10**7)
        if not math.isclose(float(frac), float(value), rel_tol=1e-12, abs_tol=0):
            raise InputError(f"{name}={value!r} cannot be represented as a grid step")
    if frac <= 0:
        raise InputError(f"{name}={value!r} must be > 0 degrees")
    return frac


def validate_bbox(bbox: tuple[float, float, float, float] | list[float]) -> tuple[float, ...]:
    """Check a lon/lat bbox ``(west, south, east, north)`` and return it as floats.

    Raises
    ------
    InputError
        If it does not have 4 numbers, lies outside ±180/±90, or is empty/reversed.
    """
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"bbox={bbox!r} must be 4 numbers: west south east north (degrees, EPSG:4326)"
        ) from exc
    if not all(map(math.isfinite, (west, south, east, north))):
        raise InputError(f"bbox={bbox!r} contains a non-finite number")
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        raise InputError(
            f"bbox={bbox!r}: longitudes must lie within -180..180 (got west={west}, east={east}); "
            "pass west south east north in degrees"
        )
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        raise InputError(
            f"bbox={bbox!r}: latitudes must lie within -90..90 (got south={south}, north={north}); "
            "is the order west south east north?"
        )
    if west >= east:
        raise InputError(
            f"bbox={bbox!r}: west ({west}) must be smaller than east ({east}); bboxes crossing "
            "the antimeridian are not supported, split them in two"
        )
    if south >= north:
        raise InputError(f"bbox={bbox!r}: south ({south}) must be smaller than north ({north})")
    return (west, south, east, north)


@dataclass(frozen=True, order=True)
class Cell:
    """One cell of a :class:`GlobalGrid`, addressed by row (from the north) and column (from -180°)."""

    row: int
    col: int

    @property
    def name(self) -> str:
        """Stable identifier used in the manifest and in task keys, e.g. ``"r0043c0195"``."""
        return f"r{self.row:04d}c{self.col:04d}"

    @classmethod
    def from_name(cls, name: str) -> Cell:
        """Parse :attr:`name` back."""
        try:
            row, col = name[1:].split("c")
            return cls(int(row), int(col))
        except ValueError as exc:
            raise InputError(f"cell name {name!r} is not of the form 'r0043c0195'") from exc

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class GlobalGrid:
    """A global EPSG:4326 pixel grid divided into square cells.

    Parameters
    ----------
    resolution
        Pixel size in degrees (default 1/12000°, the ESA WorldCover grid).
    cell_size
        Cell edge in degrees (default 1°).  Must be a whole number of pixels and divide 180°.
    chunk_size
        Zarr chunk edge in pixels (the unit a tile server reads).  Adjusted down to a divisor
        of the cell width so chunks tile shards exactly.

    Examples
    --------
    >>> grid = GlobalGrid()
    >>> grid.cell_shape
    (12000, 12000)
    >>> grid.cell_of(15.5, 46.5)
    Cell(row=43, col=195)
    """

    resolution: Fraction = Fraction(1, 12000)
    cell_size: Fraction = Fraction(1)
    chunk_size: int = 600

    def __post_init__(self) -> None:
        res = _as_fraction(self.resolution, "resolution")
        cell = _as_fraction(self.cell_size, "cell_size")
        object.__setattr__(self, "resolution", res)
        object.__setattr__(self, "cell_size", cell)
        px = cell / res
        if px.denominator != 1:
            raise InputError(
                f"cell_size={float(cell)}° is not a whole number of pixels of {float(res)}° "
                f"({float(px):.4f} px); choose a cell size that is a multiple of the resolution"
            )
        if (Fraction(180) / cell).denominator != 1:
            raise InputError(
                f"cell_size={float(cell)}° does not divide 180°; use e.g. 1, 0.5, 0.25 or 2"
            )
        if px > 100_000:
            raise InputError(f"cell_size/resolution = {px} px per cell side is too large")
        n = int(px)
        chunk = int(self.chunk_size)
        if chunk <= 0:
            raise InputError(f"chunk_size={self.chunk_size!r} must be a positive pixel count")
        chunk = min(chunk, n)
        while n % chunk:
            chunk -= 1
        object.__setattr__(self, "chunk_size", chunk)

    # ------------------------------------------------------------------ sizes
    @property
    def cell_pixels(self) -> int:
        """Pixels along one cell edge."""
        return int(self.cell_size / self.resolution)

    @property
    def cell_shape(self) -> tuple[int, int]:
        return (self.cell_pixels, self.cell_pixels)

    @property
    def shape(self) -> tuple[int, int]:
        """Global (latitude, longitude) pixel shape."""
        return (int(Fraction(180) / self.resolution), int(Fraction(360) / self.resolution))

    @property
    def n_cells(self) -> tuple[int, int]:
        return (int(Fraction(180) / self.cell_size), int(Fraction(360) / self.cell_size))

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """Global affine (GDAL order: x0, dx, 0, y0, 0, -dy)."""
        r = float(self.resolution)
        return (-180.0, r, 0.0, 90.0, 0.0, -r)

    def to_dict(self) -> dict[str, object]:
        return {
            "crs": "EPSG:4326",
            "resolution": str(self.resolution),
            "cell_size": str(self.cell_size),
            "chunk_size": self.chunk_size,
            "origin": [-180.0, 90.0],
            "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> GlobalGrid:
        return cls(
            resolution=Fraction(str(d["resolution"])),
            cell_size=Fraction(str(d["cell_size"])),
            chunk_size=int(d.get("chunk_size", 600)),  # type: ignore[arg-type]
        )

    # ------------------------------------------------------------------ coordinates
    def latitudes(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Pixel-centre latitudes of global rows ``start:stop`` (north to south)."""
        stop = self.shape[0] if stop is None else stop
        return 90.0 - (np.arange(start, stop, dtype="float64") + 0.5) * float(self.resolution)

    def longitudes(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Pixel-centre longitudes of global columns ``start:stop`` (west to east)."""
        stop = self.shape[1] if stop is None else stop
        return -180.0 + (np.arange(start, stop, dtype="float64") + 0.5) * float(self.resolution)

    # ------------------------------------------------------------------ cells
    def cell_of(self, lon: float, lat: float) -> Cell:
        """The cell containing a point (points on an edge go to the cell east/south of it)."""
        col = math.floor((Fraction(lon).limit_denominator(10**9) + 180) / self.cell_size)
        row = math.floor((90 - Fraction(lat).limit_denominator(10**9)) / self.cell_size)
        n_rows, n_cols = self.n_cells
        return Cell(min(max(row, 0), n_rows - 1), min(max(col, 0), n_cols - 1))

    def cells_in_bbox(self, bbox: tuple[float, float, float, float]) -> list[Cell]:
        """Every cell that intersects the lon/lat ``bbox`` (west, south, east, north)."""
        west, south, east, north = validate_bbox(bbox)
        cs = self.cell_size
        col0 = math.floor((Fraction(west).limit_denominator(10**9) + 180) / cs)
        col1 = math.ceil((Fraction(east).limit_denominator(10**9) + 180) / cs)
        row0 = math.floor((90 - Fraction(north).limit_denominator(10**9)) / cs)
        row1 = math.ceil((90 - Fraction(south).limit_denominator(10**9)) / cs)
        n_rows, n_cols = self.n_cells
        return [
            Cell(r, c)
            for r in range(max(row0, 0), min(max(row1, row0 + 1), n_rows))
            for c in range(max(col0, 0), min(max(col1, col0 + 1), n_cols))
        ]

    def iter_cells(self, bbox: tuple[float, float, float, float]) -> Iterator[Cell]:
        yield from self.cells_in_bbox(bbox)

    def cell_bounds(self, cell: Cell, halo: int = 0) -> tuple[float, float, float, float]:
        """Lon/lat bounds (west, south, east, north) of a cell, grown by ``halo`` pixels."""
        self._check_cell(cell)
        h = halo * self.resolution
        west = -180 + cell.col * self.cell_size - h
        east = west + self.cell_size + 2 * h
        north = 90 - cell.row * self.cell_size + h
        south = north - self.cell_size - 2 * h
        return (float(west), float(south), float(east), float(north))

    def cell_region(self, cell: Cell, halo: int = 0) -> tuple[slice, slice]:
        """Global (row, col) pixel slices of a cell, grown by ``halo`` pixels (may exceed the globe)."""
        self._check_cell(cell)
        n = self.cell_pixels
        r0, c0 = cell.row * n - halo, cell.col * n - halo
        return (slice(r0, r0 + n + 2 * halo), slice(c0, c0 + n + 2 * halo))

    def cell_window(self, cell: Cell, halo: int = 0) -> Window:
        """The :class:`Window` of a cell grown by ``halo`` pixels (may extend past the globe)."""
        self._check_cell(cell)
        n = self.cell_pixels
        return Window(self, cell.row * n, cell.col * n, n, n).pad(halo)

    def window(self, factor: int = 1) -> Window:
        """The whole globe as a :class:`Window` at zoom-out ``factor`` (1: full resolution)."""
        return Window(self, 0, 0, *self.shape).zoom_out(factor)

    def window_of_bbox(self, bbox: tuple[float, float, float, float] | Sequence[float]) -> Window:
        """The smallest full-resolution window covering a lon/lat ``bbox`` (clipped to the globe)."""
        west, south, east, north = validate_bbox(tuple(bbox))  # type: ignore[arg-type]
        res = self.resolution
        r0 = math.floor((90 - _degrees(north)) / res)
        r1 = math.ceil((90 - _degrees(south)) / res)
        c0 = math.floor((_degrees(west) + 180) / res)
        c1 = math.ceil((_degrees(east) + 180) / res)
        return Window(self, r0, c0, max(r1 - r0, 1), max(c1 - c0, 1)).clip()

    def _check_cell(self, cell: Cell) -> None:
        n_rows, n_cols = self.n_cells
        if not (0 <= cell.row < n_rows and 0 <= cell.col < n_cols):
            raise InputError(f"{cell} lies outside this grid ({n_rows}×{n_cols} cells)")


def _degrees(value: float) -> Fraction:
    """A lon/lat in degrees as a fraction (decimal inputs such as 46.1 stay exact to 1e-9°)."""
    return Fraction(value).limit_denominator(10**9)


@dataclass(frozen=True)
class Window:
    """Rows and columns of a global grid at one zoom level: an immutable geometry value.

    The window covers pixels ``row0 .. row0 + height`` and ``col0 .. col0 + width`` of the
    grid zoomed out by ``factor`` (one pixel = ``factor × factor`` grid pixels; 1 is full
    resolution).  Rows count from the north (90°), columns from the antimeridian (−180°), so
    ``row0``/``col0`` may be negative or run past the globe (a halo at the poles); use
    :meth:`clip` for the part on the globe.  The grid's exact fractions are the source of
    truth: degrees are derived from them, never the other way round.

    Examples
    --------
    >>> grid = GlobalGrid(resolution="1/1200")
    >>> w = grid.cell_window(grid.cell_of(15.5, 46.5))
    >>> w.shape, w.bounds
    ((1200, 1200), (15.0, 46.0, 16.0, 47.0))
    >>> w.pad(2).zoom_out(4).shape
    (301, 301)
    """

    grid: GlobalGrid
    row0: int
    col0: int
    height: int
    width: int
    factor: int = 1

    def __post_init__(self) -> None:
        if self.height < 0 or self.width < 0:
            raise InputError(f"window size {self.height}×{self.width} must be >= 0 pixels")
        if self.factor < 1:
            raise InputError(f"window factor={self.factor} must be >= 1")

    # ------------------------------------------------------------------ sizes
    @property
    def shape(self) -> tuple[int, int]:
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
        return (float(west), float(north - self.height * r), float(west + self.width * r), float(north))

    @property
    def transform(self) -> Any:
        """The window's affine transform (``affine.Affine``, EPSG:4326, north-up)."""
        from affine import Affine

        r = float(self.resolution)
        west, _, _, north = self.bounds
        return Affine(r, 0.0, west, 0.0, -r, north)

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
        """Row and column (in this window, may fall outside it) of the pixels holding points."""
        r = float(self.resolution)
        row = np.floor((90.0 - np.asarray(lat, "float64")) / r).astype("int64") - self.row0
        col = np.floor((np.asarray(lon, "float64") + 180.0) / r).astype("int64") - self.col0
        return row, col

    # ------------------------------------------------------------------ derived windows
    def pad(self, n: int) -> Window:
        """The window grown by ``n`` pixels on every side (shrunk for negative ``n``)."""
        return replace(self, row0=self.row0 - n, col0=self.col0 - n,
                       height=max(self.height + 2 * n, 0), width=max(self.width + 2 * n, 0))

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
            raise InputError(f"zoom_in factor={factor} must divide the window's factor {self.factor}")
        return Window(self.grid, self.row0 * factor, self.col0 * factor,
                      self.height * factor, self.width * factor, self.factor // factor)

    def __getitem__(self, key: tuple[slice, slice]) -> Window:
        """Sub-window by slices relative to this window (``w[10:20, 0:5]``; no steps)."""
        rs, cs = key
        r0, r1, _ = rs.indices(self.height)
        c0, c1, _ = cs.indices(self.width)
        return Window(self.grid, self.row0 + r0, self.col0 + c0, max(r1 - r0, 0), max(c1 - c0, 0),
                      self.factor)

    def offset_in(self, outer: Window) -> tuple[int, int]:
        """Row/column of this window's first pixel inside ``outer`` (same grid and level)."""
        if outer.factor != self.factor:
            raise InputError(f"windows at different levels ({self.factor} vs {outer.factor})")
        return (self.row0 - outer.row0, self.col0 - outer.col0)

    def clip(self) -> Window:
        """The part of the window that lies on the globe (may be empty)."""
        n_lat, n_lon = self.level_shape
        r0, c0 = max(self.row0, 0), max(self.col0, 0)
        r1 = min(self.row0 + self.height, n_lat)
        c1 = min(self.col0 + self.width, n_lon)
        return Window(self.grid, r0, c0, max(r1 - r0, 0), max(c1 - c0, 0), self.factor)

    def align(self, rows: int, cols: int) -> Window:
        """The smallest window containing this one whose edges are multiples of ``rows``/``cols``."""
        r0 = (self.row0 // rows) * rows
        c0 = (self.col0 // cols) * cols
        r1 = -(-(self.row0 + self.height) // rows) * rows
        c1 = -(-(self.col0 + self.width) // cols) * cols
        return Window(self.grid, r0, c0, r1 - r0, c1 - c0, self.factor)


DEFAULT_GRID = GlobalGrid()
