"""The pyramid layout: which levels a grid has, their chunking, and their geometry.

A :class:`Level` is the whole globe zoomed out by ``2**index`` (a :class:`~s2cube.grid.Window`
of the store's grid), plus how it is chunked and whether it is sharded by cell.  Every pixel ↔
degree question (coordinates, transform, where a cell or a chunk lies) is answered by that
window, so the overviews never do their own geometry arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import InputError
from ..grid import Cell, GlobalGrid, Window

__all__ = ["OVERVIEW_GROUP", "Level", "pyramid"]

OVERVIEW_GROUP = "overviews"


@dataclass(frozen=True)
class Level:
    """One level of the pyramid (level 0 is the store itself).

    ``factor = 2**index`` full-resolution pixels make one pixel of this level along each axis.
    ``chunk`` is the chunk edge in pixels; ``cell_pixels`` is a cell's edge at this level on
    per-cell levels (sharded by cell) and ``None`` on coarse levels.

    Examples
    --------
    >>> lv = pyramid(GlobalGrid(resolution="1/400", cell_size="1/2", chunk_size=50))[1]
    >>> lv.factor, lv.shape, lv.chunk, lv.cell_pixels
    (2, (36000, 72000), 50, 100)
    >>> lv.cell_window(Cell(87, 391)).rows
    slice(8700, 8800, None)
    """

    grid: GlobalGrid
    index: int
    chunk: int
    cell_pixels: int | None

    @property
    def factor(self) -> int:
        return int(2**self.index)

    @property
    def per_cell(self) -> bool:
        return self.cell_pixels is not None

    @property
    def path(self) -> str:
        """Group path inside the store ("" for level 0)."""
        return "" if self.index == 0 else f"{OVERVIEW_GROUP}/{self.index}"

    @property
    def window(self) -> Window:
        """The whole globe at this level."""
        return self.grid.window(self.factor)

    @property
    def shape(self) -> tuple[int, int]:
        """Global (latitude, longitude) shape of this level."""
        return self.window.shape

    @property
    def resolution(self) -> Fraction:
        """Pixel size in degrees (exact)."""
        return self.window.resolution

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """Global affine of this level (GDAL order)."""
        return self.window.geotransform

    def latitudes(self) -> np.ndarray:
        """Pixel-centre latitudes of every row of this level."""
        return self.window.latitudes()

    def longitudes(self) -> np.ndarray:
        """Pixel-centre longitudes of every column of this level."""
        return self.window.longitudes()

    def cell_window(self, cell: Cell) -> Window:
        """A cell at this level: its own shard (per-cell levels only)."""
        if self.cell_pixels is None:
            raise InputError(
                f"level {self.index} is a coarse level; cells do not map to its shards "
                "(use chunk_window)"
            )
        # exact: a per-cell level's factor divides the cell's pixels
        return self.grid.cell_window(cell).zoom_out(self.factor)

    def chunk_window(self, i: int, j: int) -> Window:
        """Chunk ``(i, j)`` of this level (the last row/column of chunks may be partial)."""
        c = self.chunk
        return self.window[i * c : (i + 1) * c, j * c : (j + 1) * c]


def _largest_divisor_at_most(n: int, limit: int) -> int:
    best = 1
    for d in range(1, math.isqrt(n) + 1):
        if n % d == 0:
            for c in (d, n // d):
                if best < c <= limit:
                    best = c
    return best


def pyramid(grid: GlobalGrid, *, min_chunk: int = 128, max_levels: int = 24) -> list[Level]:
    """The overview levels of a grid, level 0 (the store) first, down to one chunk for the globe.

    Parameters
    ----------
    grid
        The store's grid.
    min_chunk
        Smallest chunk edge (px) a per-cell level may have; below it, levels become coarse
        (chunks of ``grid.chunk_size`` spanning several cells, built by the driver).
    max_levels
        Safety cap on the number of levels.

    Returns
    -------
    list of Level
        Every level halves the previous one, until the globe fits in one chunk.

    Examples
    --------
    >>> [(lv.index, lv.chunk, lv.per_cell) for lv in pyramid(GlobalGrid())][:7]
    ... # doctest: +NORMALIZE_WHITESPACE
    [(0, 600, True), (1, 600, True), (2, 600, True), (3, 500, True), (4, 375, True),
     (5, 375, True), (6, 600, False)]
    """
    levels = [Level(grid, 0, grid.chunk_size, grid.cell_pixels)]
    min_chunk = min(min_chunk, grid.chunk_size)
    per_cell = True
    while len(levels) < max_levels:
        prev = levels[-1]
        if prev.shape[0] <= prev.chunk and prev.shape[1] <= prev.chunk:
            break
        k = prev.index + 1
        f = 2**k
        cell_px: int | None = None
        chunk = grid.chunk_size
        if per_cell and grid.cell_pixels % f == 0:
            cp = grid.cell_pixels // f
            c = _largest_divisor_at_most(cp, grid.chunk_size)
            if c >= min_chunk:
                cell_px, chunk = cp, c
        per_cell = cell_px is not None
        levels.append(Level(grid, k, chunk, cell_px))
    return levels
