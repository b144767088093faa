"""Filling holes, wired into a mosaic run: donor scenes from adjacent periods and the fill job
of every planned cell (:func:`s2cube.fill.fill_cell` runs them in the cell's write task).

:func:`check_fill` validates before anything is read; :func:`find_donors` searches the
catalog over the ``config.fill_periods`` periods around the run's; :func:`fill_jobs` gives each
planned cell its :class:`~s2cube.execute.FillJob` and lazy donor cube.  See ``docs/fill.md``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pystac

from .config import ExecutionOptions, MosaicConfig
from .errors import InputError
from .grid import Cell, GlobalGrid
from .search import Catalog, find_items, parse_dates

__all__ = ["check_fill", "fill_jobs", "find_donors"]


def check_fill(config: MosaicConfig, catalog: Catalog, start: Any, end: Any) -> None:
    """Donors need a period (start and end) and a catalog to search for other periods."""
    if config.fill_periods == 0:
        return
    if start is None or end is None:
        raise InputError(
            f"fill_periods={config.fill_periods} needs the period's start and end: donors come "
            "from the periods of the same length before and after it"
        )
    if not isinstance(catalog, str | os.PathLike):
        raise InputError(
            f"fill_periods={config.fill_periods} needs a catalog to search for donor scenes "
            "(a STAC API, preset or static catalog); a list of items has no other periods"
        )


def find_donors(
    catalog: Catalog,
    config: MosaicConfig,
    items: Sequence[pystac.Item],
    *,
    bbox: tuple[float, float, float, float],
    start: Any,
    end: Any,
    max_cloud: float | None,
    search_kwargs: Mapping[str, Any] | None = None,
) -> list[pystac.Item]:
    """Donor scenes for filling holes: the catalog searched over the ``config.fill_periods``
    adjacent periods (:func:`s2cube.fill.donor_periods`, in ``config.fill_direction``), with the
    run's own filters; scenes of the period itself are left out.  Sorted by date, then id."""
    if config.fill_periods == 0:
        return []
    from .errors import EmptySearchError
    from .fill import donor_periods

    check_fill(config, catalog, start, end)
    s, e = parse_dates(start, end)
    assert s is not None and e is not None
    seen = {it.id for it in items}
    out: dict[str, pystac.Item] = {}
    for _, a, b in donor_periods(s.date(), e.date(), config.fill_periods):
        back = b < s.date()
        if config.fill_direction == ("forward" if back else "back"):
            continue
        try:
            found = find_items(
                catalog,
                bbox=bbox,
                start=a.isoformat(),
                end=b.isoformat(),
                max_cloud=max_cloud,
                bands=config.bands,
                search_kwargs=search_kwargs,
            )
        except EmptySearchError:
            continue
        out.update({it.id: it for it in found if it.id not in seen})
    return sorted(out.values(), key=lambda it: (str(it.datetime), it.id))


def fill_jobs(
    cells: Sequence[str],
    donors: Sequence[pystac.Item],
    grid: GlobalGrid,
    config: MosaicConfig,
    execution: ExecutionOptions,
    scene_index: Mapping[str, int],
    start: Any,
    end: Any,
    run_cells: Sequence[str] = (),
) -> dict[str, tuple[Any, Any]]:
    """Per cell (by name; planned or not: a cell its period never reached is filled from
    donors alone): its :class:`~s2cube.execute.FillJob` and lazy donor cube over the cell with
    :data:`~s2cube.fill.FILL_HALO` px of its neighbours and the mask's context (None: no donor
    touches it).  ``run_cells``: every cell of the run (the pixels that may be holes; default
    ``cells``).  Empty when the config fills no holes."""
    if not config.fills_holes:
        return {}
    from .cube import items_touching, load
    from .execute import FillJob
    from .fill import FILL_HALO

    spec = config.for_grid(grid).spec
    # at most one cell of neighbours all round (fill_waves keeps neighbours apart)
    fill_halo = min(FILL_HALO, grid.cell_pixels)
    halo = spec.mask_halo + fill_halo
    in_run = set(run_cells or cells)
    s, e = parse_dates(start, end)
    period = (str(s.date()), str(e.date())) if s is not None and e is not None else None
    out: dict[str, tuple[Any, Any]] = {}
    for name in cells:
        cell = Cell.from_name(name)
        near = items_touching(donors, grid.cell_window(cell).pad(halo).bounds) if donors else []
        cube = None
        if near:
            cube = load(
                near,
                cell,
                grid=grid,
                bands=config.bands,
                halo=halo,
                resampling=config.resampling,
                strict=execution.strict,
            )
        near_cells = (Cell(cell.row + i, cell.col + j) for i in (-1, 0, 1) for j in (-1, 0, 1))
        job = FillJob(
            spec=spec,
            halo=spec.mask_halo,
            period=period,
            max_periods=config.fill_periods,
            inpaint=None if config.inpaint == "none" else config.inpaint,
            scene_index={it.id: scene_index[it.id] for it in near},
            window=grid.cell_window(cell),
            fill_halo=fill_halo,
            domain=tuple(c.name for c in near_cells if c.name in in_run),
        )
        out[name] = (job, cube)
    return out
