"""The planning driver: which scenes every cell and block reads, and the lazy cell composites.

For a set of cells (driver side, before any full-resolution read):

1. **candidates**: the items touching each cell (with its halo), in priority order;
2. **survey**: a coarse look of every candidate (one task per scene and cell, in parallel)
   reduced to a :class:`~s2cube.plan.Survey` per cell;
3. **scene parameters**: haze scores and transfer knots pooled over all cells
   (:func:`~s2cube.harmonize.fit.fit_scene_params`; a store's values win);
4. **plan**: per cell, the final order (hazy scenes last) and per-block priority prefixes
   (:func:`~s2cube.plan.plan_blocks`), then the lazy composite from the compositing engine
   (:func:`~s2cube.composite.engine.cell_composite`).

Everything returned is a typed value (:class:`PlannedCell`, :class:`RunPlan`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pystac
import xarray as xr

from .composite.engine import cell_composite
from .composite.order import demote_hazy, priority_order
from .config import ExecutionOptions, MosaicConfig
from .cube import items_touching
from .grid import Cell, GlobalGrid
from .harmonize.fit import SceneParams, colour_metrics, fit_scene_params
from .plan import LOOK_BANDS, CellPlan, CoarseLook, Survey, coarse_window, plan_blocks

__all__ = [
    "PlannedCell",
    "RunPlan",
    "SceneDroppedWarning",
    "candidates_for",
    "cells_reached",
    "dropped_record",
    "plan_cells",
]


class SceneDroppedWarning(UserWarning):
    """A scene was left out of one cell because an asset could not be read (or its CRS cannot
    be placed on the grid); the cell is composited from the other scenes and its manifest
    record lists the drop under ``dropped_scenes``."""


def dropped_record(item: pystac.Item, href: str | None, error: str) -> dict[str, Any]:
    """The manifest entry of a dropped scene: item id, asset key, href and error."""
    asset = None
    if href is not None:
        for key, a in item.assets.items():
            if a.href == href:
                asset = key
                break
    return {"id": item.id, "asset": asset, "href": href, "error": error}


def warn_dropped(cell: Cell, entry: Mapping[str, Any]) -> None:
    """One warning per dropped scene and cell, naming item, asset and error."""
    what = f"asset {entry['asset']!r} ({entry['href']})" if entry.get("href") else "its metadata"
    warnings.warn(
        f"scene {entry['id']!r} dropped for cell {cell.name}: {what}: {entry['error']}. The cell "
        "is composited from the other scenes and its record lists the drop; rerun such cells "
        "with `s2cube mosaic --retry-dropped`, or pass --strict to make this fatal",
        SceneDroppedWarning,
        stacklevel=3,
    )


@dataclass(frozen=True, eq=False)
class PlannedCell:
    """One cell ready to compute: its lazy composite, block stats and manifest record."""

    cell: Cell
    plan: CellPlan
    dataset: xr.Dataset
    stats: list[Any]
    record: dict[str, Any]


@dataclass(frozen=True, eq=False)
class RunPlan:
    """The planned cells of a run and the scene parameters they were planned with."""

    cells: dict[str, PlannedCell] = field(default_factory=dict)
    scene_params: dict[str, SceneParams] = field(default_factory=dict)
    #: per cell name: the scenes dropped for it (:func:`dropped_record` entries), also for
    #: cells left without data
    dropped: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def plan_factor(grid: GlobalGrid, wanted: int) -> int:
    """Largest divisor of the cell width not above ``wanted`` (coarse pixels tile cells exactly)."""
    n = grid.cell_pixels
    f = max(1, min(wanted, n))
    while n % f:
        f -= 1
    return f


def candidates_for(
    items: Sequence[pystac.Item], cell: Cell, *, grid: GlobalGrid, config: MosaicConfig
) -> list[pystac.Item]:
    """Items touching a cell (with its halo) in priority order (before haze demotion)."""
    window = grid.cell_window(cell).pad(config.halo + config.plan_factor)
    touching = items_touching(items, window.bounds)
    if not touching:
        return []
    order = priority_order(
        [np.datetime64(it.datetime.replace(tzinfo=None)) for it in touching],  # type: ignore[union-attr]
        priority=config.priority,
        cloud_cover=[it.properties.get("eo:cloud_cover", 0.0) for it in touching],
        ids=[it.id for it in touching],
    )
    return [touching[i] for i in order]


def cells_reached(
    items: Sequence[pystac.Item], cells: Sequence[Cell], *, grid: GlobalGrid, config: MosaicConfig
) -> set[str]:
    """Names of the cells whose window (with halo) some item's bbox overlaps: a superset of
    the cells with candidates (:func:`candidates_for`), found in one vectorised pass, so the
    empty cells of a huge bbox cost nothing."""
    boxes = np.array([it.bbox[:4] for it in items if it.bbox], dtype="float64").reshape(-1, 4)
    if not len(cells) or not len(boxes):
        return set()
    pad = float((config.halo + config.plan_factor + 1) * grid.resolution)
    cs = float(grid.cell_size)
    rows = np.array([c.row for c in cells])
    cols = np.array([c.col for c in cells])
    west, east = cols * cs - 180 - pad, (cols + 1) * cs - 180 + pad
    north, south = 90 - rows * cs + pad, 90 - (rows + 1) * cs - pad
    hit = np.zeros(len(cells), bool)
    for w, s_, e, n in boxes:
        hit |= (west <= e) & (east >= w) & (south <= n) & (north >= s_)
    return {c.name for c, h in zip(cells, hit, strict=True) if h}


def _look_task(
    item: pystac.Item, cell: Cell, grid: GlobalGrid, config: MosaicConfig, strict: bool
) -> CoarseLook:
    """One scene's coarse look over one cell (one task per scene, so looks run in parallel).

    Unless ``strict``, an asset that cannot be read (after retries) gives a look with its
    ``failure`` set: the survey drops the scene for this cell before anything is planned."""
    from dataclasses import replace

    from .errors import SceneReadError
    from .plan import read_coarse_look
    from .reader import read_policy

    f = plan_factor(grid, config.plan_factor)
    window = coarse_window(grid, cell, config.halo, f)
    # band looks only feed harmonization and the haze score
    with_bands = config.harmonize != "none" or config.haze_threshold is not None
    policy = replace(read_policy(strict), drop=not strict)
    try:
        return read_coarse_look(
            item,
            window,
            factor=f,
            cloud_dilation=config.cloud_dilation,
            shadow_dilation=config.shadow_dilation,
            bands=LOOK_BANDS if with_bands else None,
            strict=strict,
            policy=policy,
        )
    except SceneReadError as exc:
        empty = np.zeros((0, 0), "uint8")
        return CoarseLook(item.id, empty, empty, failure=(exc.href, exc.reason))


def _survey_task(
    candidates: list[pystac.Item],
    cell: Cell,
    grid: GlobalGrid,
    config: MosaicConfig,
    reference_scene: str | None,
    reference: np.ndarray | None,
    looks: list[CoarseLook],
    surveyed: frozenset[str] | None = None,
) -> Survey:
    from .plan import survey_cell

    f = plan_factor(grid, config.plan_factor)
    return survey_cell(
        candidates,
        cell,
        grid=grid,
        halo=config.halo,
        factor=f,
        reference=reference,
        reference_scene=reference_scene,
        looks=looks,
        surveyed=surveyed,
    )


def _reference_from_store(
    path: str, grid: GlobalGrid, cell: Cell, config: MosaicConfig
) -> np.ndarray | None:
    """A reference store's bands sampled at the pixel centres of the cell's coarse look."""
    from .store import open_store

    look = coarse_window(grid, cell, config.halo, plan_factor(grid, config.plan_factor))
    ref = open_store(path, bbox=look.bounds, chunks=False)
    if ref.sizes["latitude"] == 0 or ref.sizes["longitude"] == 0:
        return None
    sub = ref[list(LOOK_BANDS)].sel(
        latitude=look.latitudes(), longitude=look.longitudes(), method="nearest"
    )
    arr = np.stack([sub[b].values for b in LOOK_BANDS]).astype("float64")
    return np.where(arr > 0, arr, np.nan)


#: candidates surveyed per round and cell (a round's looks run in parallel)
SURVEY_BATCH = 8


def _survey(
    items: Sequence[pystac.Item],
    cells: Sequence[Cell],
    candidates: Mapping[str, list[pystac.Item]],
    *,
    grid: GlobalGrid,
    config: MosaicConfig,
    strict: bool,
    client: Any,
    dropped: dict[str, list[dict[str, Any]]] | None = None,
) -> dict[str, Survey]:
    """Survey every cell with candidates (looks in parallel on ``client`` or dask).

    A candidate whose look failed (:func:`_look_task`) is dropped for its cell: removed from
    ``candidates[name]`` (in place) and listed in ``dropped[name]`` with a warning, before
    the survey, so the plan stays exact.

    Candidates are looked at in priority order, in rounds of :data:`SURVEY_BATCH` that run
    every open cell's looks in parallel.  A cell stops once the candidates not yet
    looked at cannot shorten any of its block plans (:func:`~s2cube.plan.survey_complete`,
    from their footprints alone); they get a conservative
    :func:`~s2cube.plan.footprint_look` and no fitted parameters.
    """
    import dask

    from .plan import footprint_look, footprint_masks, survey_complete

    def compute(tasks: dict[str, Any]) -> dict[str, Any]:
        if not tasks:
            return {}
        if client is not None:
            futures = client.compute(list(tasks.values()))
            return dict(zip(tasks, client.gather(futures), strict=True))
        (done,) = dask.compute(tasks)
        return dict(done)

    best = None
    if config.reference == "best" and items:
        best = min(items, key=lambda it: (it.properties.get("eo:cloud_cover", 100.0), it.id)).id
    f = plan_factor(grid, config.plan_factor)
    looks: dict[str, dict[int, CoarseLook]] = {c.name: {} for c in cells if candidates[c.name]}
    by_name = {c.name: c for c in cells}
    open_cells = list(looks)
    # each candidate's footprint over its cell's coarse window, by scene id, rasterized once
    # (on demand)
    footprints: dict[str, dict[str, np.ndarray]] = {}

    def footprints_of(name: str) -> dict[str, np.ndarray]:
        if name not in footprints:
            window = coarse_window(grid, by_name[name], config.halo, f)
            masks = footprint_masks(candidates[name], window)
            footprints[name] = {it.id: m for it, m in zip(candidates[name], masks, strict=True)}
        return footprints[name]

    start, size = 0, SURVEY_BATCH
    while open_cells:
        wanted: dict[str, list[int]] = {}
        for name in open_cells:
            cands = candidates[name]
            idx = list(range(start, min(start + size, len(cands))))
            if start == 0 and best is not None:
                # the harmonization reference is looked at whatever its rank
                idx += [k for k, it in enumerate(cands) if it.id == best and k >= size]
            wanted[name] = [k for k in idx if k not in looks[name]]
        got = compute(
            {
                f"{name}/{k}": dask.delayed(_look_task, pure=False)(
                    candidates[name][k], by_name[name], grid, config, strict
                )
                for name, ks in wanted.items()
                for k in ks
            }
        )
        for key, look in got.items():
            cell_name, _, pos = key.rpartition("/")
            looks[cell_name][int(pos)] = look
            if look.failure is not None:
                item = candidates[cell_name][int(pos)]
                entry = dropped_record(item, *look.failure)
                warn_dropped(by_name[cell_name], entry)
                if dropped is not None:
                    dropped.setdefault(cell_name, []).append(entry)
        start += size
        still = []
        for name in open_cells:
            cands = candidates[name]
            rest = [j for j in range(len(cands)) if j not in looks[name]]
            if not rest:
                continue
            fps = footprints_of(name)
            remaining = np.zeros(fps[cands[0].id].shape, bool)
            for j in rest:
                remaining |= fps[cands[j].id]
            good = [lk for lk in looks[name].values() if lk.failure is None]
            if not survey_complete(good, remaining, haze_threshold=config.haze_threshold):
                still.append(name)
        open_cells = still
    tasks = {}
    for name, got_looks in looks.items():
        c = by_name[name]
        failed = {k for k, lk in got_looks.items() if lk.failure is not None}
        if failed:
            # the failed scenes leave the cell's candidates before anything is planned
            kept = [k for k in range(len(candidates[name])) if k not in failed]
            got_looks = {i: got_looks[k] for i, k in enumerate(kept) if k in got_looks}
            candidates[name][:] = [candidates[name][k] for k in kept]
        cands = candidates[name]
        if not cands:
            continue
        ref = None
        if config.reference_store is not None:
            ref = _reference_from_store(config.reference_store, grid, c, config)
        window = coarse_window(grid, c, config.halo, f)
        known_fp = footprints.get(name, {})  # footprints the rounds rasterized, by scene id
        all_looks = [
            got_looks[k] if k in got_looks else footprint_look(it, window, mask=known_fp.get(it.id))
            for k, it in enumerate(cands)
        ]
        surveyed = frozenset(cands[k].id for k in got_looks)
        tasks[name] = dask.delayed(_survey_task, pure=False)(
            cands, c, grid, config, best, ref, all_looks, surveyed
        )
    return compute(tasks)


def _drop_unplaceable(
    cells: Sequence[Cell],
    cands: dict[str, list[pystac.Item]],
    dropped: dict[str, list[dict[str, Any]]],
    *,
    strict: bool,
) -> None:
    """Drop candidates whose CRS cannot put them on the grid (:func:`~s2cube.items.crs_problem`)
    from every cell, before any look, so they take no part in colour matching either."""
    from .errors import InputError
    from .items import crs_problem

    problems: dict[str, str | None] = {}
    for c in cells:
        keep = []
        for it in cands[c.name]:
            if it.id not in problems:
                problems[it.id] = crs_problem(it)
            problem = problems[it.id]
            if problem is None:
                keep.append(it)
                continue
            if strict:
                raise InputError(f"item {it.id!r}: {problem} (strict: no scene is dropped)")
            entry = dropped_record(it, None, problem)
            warn_dropped(c, entry)
            dropped.setdefault(c.name, []).append(entry)
        cands[c.name] = keep


def plan_cells(
    items: Sequence[pystac.Item],
    cells: Sequence[Cell],
    *,
    grid: GlobalGrid,
    config: MosaicConfig,
    execution: ExecutionOptions | None = None,
    scene_index: Mapping[str, int] | None = None,
    known: Mapping[str, SceneParams] | None = None,
    client: Any = None,
) -> RunPlan:
    """Survey, fit, plan and build the lazy composites of ``cells`` (normalised items).

    ``known`` scene parameters (a store's) win over new fits, so a rerun and every cell of a
    run use the same transfers.  Cells where no candidate has data are left out.
    """
    execution = execution or ExecutionOptions()
    config = config.for_grid(grid)
    index = (
        dict(scene_index) if scene_index is not None else {it.id: i for i, it in enumerate(items)}
    )
    by_id = {it.id: it for it in items}
    cands = {c.name: candidates_for(items, c, grid=grid, config=config) for c in cells}
    dropped: dict[str, list[dict[str, Any]]] = {}
    _drop_unplaceable(cells, cands, dropped, strict=execution.strict)
    surveys = _survey(
        items,
        cells,
        cands,
        grid=grid,
        config=config,
        strict=execution.strict,
        client=client,
        dropped=dropped,
    )
    params = fit_scene_params(surveys, config, known)
    haze = {sid: p.haze for sid, p in params.items() if p.haze is not None}
    knots = {sid: p.knots_for(config.bands) for sid, p in params.items()}
    spec = config.spec
    f = plan_factor(grid, config.plan_factor)
    block = execution.block_for(grid)
    dates = {index[it.id]: np.datetime64(it.datetime.replace(tzinfo=None), "ns") for it in items}  # type: ignore[union-attr]
    out = RunPlan(scene_params=params, dropped=dropped)
    for c in cells:
        if c.name not in surveys:
            continue
        sv = surveys[c.name]
        ids = [it.id for it in cands[c.name]]
        order = demote_hazy(ids, haze, config.haze_threshold)
        plan = plan_blocks(
            sv.codes,
            grid=grid,
            cell=c,
            candidates=ids,
            order=order,
            block=block,
            halo=spec.blend_halo + 1,
            factor=f,
            plan=execution.plan,
        )
        if not any(b.candidates_with_data for b in plan.blocks):
            continue
        ds, stats = cell_composite(
            by_id,
            plan,
            grid=grid,
            spec=spec,
            knots=knots,
            scene_index=index,
            scene_dates=dates,
            strict=execution.strict,
        )
        threshold = config.haze_threshold if config.haze_threshold is not None else np.inf
        record = {
            "scenes_considered": len(ids),
            "scenes_planned": plan.scenes_used(),
            "hazy_scenes": [i for i in ids if haze.get(i, -1.0) > threshold],
            "dropped_scenes": dropped.get(c.name, []),
            "metrics": {
                "read_fraction": plan.read_fraction,
                "read_fraction_pixels": ds.attrs["read_fraction_pixels"],
                **colour_metrics(sv.sample, params, config.bands),
            },
        }
        out.cells[c.name] = PlannedCell(c, plan, ds, stats, record)
    return out
