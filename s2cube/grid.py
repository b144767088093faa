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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from .errors import InputError
from .window import Window

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
        example = "1/12000 (the 10 m WorldCover grid)" if name == "resolution" else "1 or 0.5"
        shown = str(value) if isinstance(value, Fraction) else repr(value)
        raise InputError(
            f"{name}={shown} must be > 0 degrees (0 does not mean 'the default'); give e.g. "
            f"{example}, or leave it out for the default"
        )
    return frac


def validate_bbox(bbox: Sequence[float]) -> tuple[float, float, float, float]:
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
    """One cell of a :class:`GlobalGrid`: row (counted from the north), column (from -180°)."""

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
        if chunk <= 0 or isinstance(self.chunk_size, bool):
            raise InputError(
                f"chunk_size={self.chunk_size!r} must be a positive pixel count (0 does not mean "
                "'the default'); give e.g. 600, or leave it out for the default"
            )
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
        return self.window().geotransform

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
    def from_dict(cls, d: Mapping[str, Any]) -> GlobalGrid:
        return cls(
            resolution=Fraction(str(d["resolution"])),
            cell_size=Fraction(str(d["cell_size"])),
            chunk_size=int(d.get("chunk_size", 600)),
        )

    # ------------------------------------------------------------------ coordinates
    def latitudes(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Pixel-centre latitudes of global rows ``start:stop`` (north to south)."""
        stop = self.shape[0] if stop is None else stop
        return Window(self, start, 0, max(stop - start, 0), 0).latitudes()

    def longitudes(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Pixel-centre longitudes of global columns ``start:stop`` (west to east)."""
        stop = self.shape[1] if stop is None else stop
        return Window(self, 0, start, 0, max(stop - start, 0)).longitudes()

    # ------------------------------------------------------------------ cells
    def cell_of(self, lon: float, lat: float) -> Cell:
        """The cell containing a point (points on an edge go to the cell east/south of it)."""
        col = math.floor((Fraction(lon).limit_denominator(10**9) + 180) / self.cell_size)
        row = math.floor((90 - Fraction(lat).limit_denominator(10**9)) / self.cell_size)
        n_rows, n_cols = self.n_cells
        return Cell(min(max(row, 0), n_rows - 1), min(max(col, 0), n_cols - 1))

    def count_cells_in_bbox(self, bbox: Sequence[float]) -> int:
        """How many cells :meth:`cells_in_bbox` gives, without listing them."""
        rows, cols = self._cell_ranges(bbox)
        return len(rows) * len(cols)

    def _cell_ranges(self, bbox: Sequence[float]) -> tuple[range, range]:
        west, south, east, north = validate_bbox(bbox)
        cs = self.cell_size
        col0 = math.floor((Fraction(west).limit_denominator(10**9) + 180) / cs)
        col1 = math.ceil((Fraction(east).limit_denominator(10**9) + 180) / cs)
        row0 = math.floor((90 - Fraction(north).limit_denominator(10**9)) / cs)
        row1 = math.ceil((90 - Fraction(south).limit_denominator(10**9)) / cs)
        n_rows, n_cols = self.n_cells
        return (
            range(max(row0, 0), min(max(row1, row0 + 1), n_rows)),
            range(max(col0, 0), min(max(col1, col0 + 1), n_cols)),
        )

    def cells_in_bbox(self, bbox: Sequence[float]) -> list[Cell]:
        """Every cell that intersects the lon/lat ``bbox`` (west, south, east, north)."""
        rows, cols = self._cell_ranges(bbox)
        return [Cell(r, c) for r in rows for c in cols]

    def iter_cells(self, bbox: Sequence[float]) -> Iterator[Cell]:
        yield from self.cells_in_bbox(bbox)

    def cell_bounds(self, cell: Cell, halo: int = 0) -> tuple[float, float, float, float]:
        """Lon/lat bounds (west, south, east, north) of a cell, grown by ``halo`` pixels."""
        return self.cell_window(cell, halo).bounds

    def cell_region(self, cell: Cell, halo: int = 0) -> tuple[slice, slice]:
        """Global (row, col) pixel slices of a cell grown by ``halo`` px (may exceed the globe)."""
        w = self.cell_window(cell, halo)
        return (w.rows, w.cols)

    def cell_window(self, cell: Cell, halo: int = 0) -> Window:
        """The :class:`Window` of a cell grown by ``halo`` pixels (may extend past the globe).

        Examples
        --------
        >>> GlobalGrid(resolution="1/100").cell_window(Cell(43, 195), halo=2).rows
        slice(4298, 4402, None)
        """
        self._check_cell(cell)
        n = self.cell_pixels
        return Window(self, cell.row * n, cell.col * n, n, n).pad(halo)

    def window(self, factor: int = 1) -> Window:
        """The whole globe as a :class:`Window` at zoom-out ``factor`` (1: full resolution)."""
        return Window(self, 0, 0, *self.shape).zoom_out(factor)

    def window_of_bbox(
        self,
        bbox: Sequence[float],
        *,
        pixels: Literal["cover", "centres"] = "cover",
    ) -> Window:
        """The full-resolution window of a lon/lat ``bbox`` (west, south, east, north) on the globe.

        Parameters
        ----------
        bbox
            Lon/lat bounds in degrees (checked with :func:`validate_bbox`).
        pixels
            ``"cover"``: the smallest window covering the bbox (every pixel that overlaps it,
            at least one).  ``"centres"``: the pixels whose centres lie inside the bbox, edges
            included, i.e. what label selection on the pixel-centre coordinates returns
            (``ds.sel(latitude=slice(north, south), longitude=slice(west, east))``); it may be
            empty.

        Examples
        --------
        >>> grid = GlobalGrid(resolution="1/1000", cell_size="1/2")
        >>> grid.window_of_bbox((15.5, 46.0, 16.0, 46.5)).shape
        (500, 500)
        >>> grid.window_of_bbox((15.5007, 46.0, 16.0, 46.5), pixels="centres").cols
        slice(195501, 196000, None)
        """
        west, south, east, north = validate_bbox(bbox)
        res = self.resolution
        top, bottom = (90 - _degrees(north)) / res, (90 - _degrees(south)) / res
        left, right = (_degrees(west) + 180) / res, (_degrees(east) + 180) / res
        if pixels == "cover":
            r0, r1 = math.floor(top), max(math.ceil(bottom), math.floor(top) + 1)
            c0, c1 = math.floor(left), max(math.ceil(right), math.floor(left) + 1)
        elif pixels == "centres":
            # pixel i has its centre at i + 1/2 in these (exact) pixel units
            half = Fraction(1, 2)
            r0, r1 = math.ceil(top - half), math.floor(bottom - half) + 1
            c0, c1 = math.ceil(left - half), math.floor(right - half) + 1
        else:
            raise InputError(f"pixels={pixels!r} must be 'cover' or 'centres'")
        return Window(self, r0, c0, max(r1 - r0, 0), max(c1 - c0, 0)).clip()

    def _check_cell(self, cell: Cell) -> None:
        n_rows, n_cols = self.n_cells
        if not (0 <= cell.row < n_rows and 0 <= cell.col < n_cols):
            raise InputError(f"{cell} lies outside this grid ({n_rows}×{n_cols} cells)")


def _degrees(value: float) -> Fraction:
    """A lon/lat in degrees as a fraction (decimal inputs such as 46.1 stay exact to 1e-9°)."""
    return Fraction(value).limit_denominator(10**9)


DEFAULT_GRID = GlobalGrid()
