"""Chip windows: where the chips of a source lie under an edge rule (pure arithmetic, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

__all__ = ["EDGE_RULES", "ChipWindow", "chip_windows"]

EDGE_RULES = ("pad", "drop", "shift", "partial")


@dataclass(frozen=True)
class ChipWindow:
    """One chip: pixel offset in the source, the chip shape, and how much of it is inside."""

    row_off: int
    col_off: int
    height: int
    width: int
    inside_height: int
    inside_width: int

    @property
    def name(self) -> str:
        """File stem ``tile_{row_off}_{col_off}``."""
        return f"tile_{self.row_off}_{self.col_off}"


def _starts(n: int, size: int, edge: str) -> list[tuple[int, int, int]]:
    """(offset, chip length, length inside the source) along one axis."""
    full = n // size
    out = [(i * size, size, size) for i in range(full)]
    rest = n - full * size
    if rest:
        if edge == "pad":
            out.append((full * size, size, rest))
        elif edge == "partial":
            out.append((full * size, rest, rest))
        elif edge == "shift":
            if n >= size:
                out.append((n - size, size, size))
            else:  # a source smaller than one chip: nothing to shift onto, pad it
                out.append((0, size, n))
    return out


def chip_windows(
    height: int, width: int, size: int = 256, *, edge: str = "pad"
) -> list[ChipWindow]:
    """The chips of an ``height``×``width`` source under an edge rule (pure; no I/O).

    Parameters
    ----------
    height, width
        Source size in pixels.
    size
        Chip edge in pixels.
    edge
        ``"pad"``, ``"drop"``, ``"shift"`` or ``"partial"`` (see :mod:`s2cube.chips`).

    Returns
    -------
    list of ChipWindow
        Row by row, west to east.

    Examples
    --------
    >>> len(chip_windows(10980, 10980, 256, edge="pad"))
    1849
    >>> len(chip_windows(10980, 10980, 256, edge="drop"))
    1764
    """
    if edge not in EDGE_RULES:
        raise InputError(f"edge={edge!r} is not an edge rule; use one of {list(EDGE_RULES)}")
    if int(size) != size or size < 1:
        raise InputError(f"size={size!r} must be a positive number of pixels")
    if height < 1 or width < 1:
        raise InputError(f"source of {height}×{width} px has no pixels to cut")
    return [
        ChipWindow(r, c, h, w, ih, iw)
        for r, h, ih in _starts(int(height), int(size), edge)
        for c, w, iw in _starts(int(width), int(size), edge)
    ]
