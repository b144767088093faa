"""Running a planned mosaic: one write task per cell, on a dask client or locally.

Every cell becomes one task that depends on that cell's block tasks, so block work spreads
over the cluster while each shard has exactly one writer.  Results are accounted as they
complete (progress bar or callback), so a long run reports as it goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from .errors import SceneReadError
from .grid import Cell
from .planner import PlannedCell
from .store import StoreLike, write_cell, write_empty_cell

__all__ = [
    "FillJob",
    "MosaicReport",
    "Spinner",
    "cell_tasks",
    "write_composite",
    "run_tasks",
]

Progress = Callable[[str, dict[str, Any]], None]

#: the spinner shown before the cell bar (at most one per process; run_tasks ends it)
_spinner: Spinner | None = None


class Spinner:
    """A progress line from the first second: the stage and the time spent so far, redrawn by
    a thread until the cell bar takes over (:func:`run_tasks` closes it) or :meth:`close`.

    >>> with Spinner("planning") as sp:  # doctest: +SKIP
    ...     sp.stage("searching")
    """

    def __init__(self, desc: str, *, interval: float | None = None) -> None:
        import sys
        import threading

        from tqdm.auto import tqdm

        if interval is None:  # a terminal ticks twice a second; a log file gets a line per 10 s
            interval = 0.5 if sys.stderr.isatty() else 10.0

        global _spinner
        if _spinner is not None:
            _spinner.close()
        self._bar = tqdm(total=None, desc=desc, bar_format="{desc} … {elapsed}", leave=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, args=(interval,), daemon=True)
        self._thread.start()
        _spinner = self

    def _spin(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._bar.refresh()

    def stage(self, desc: str) -> None:
        """Show a new stage (the clock keeps running)."""
        self._bar.set_description_str(desc)

    def close(self) -> None:
        global _spinner
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self._bar.close()
        if _spinner is self:
            _spinner = None

    def __enter__(self) -> Spinner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class MosaicReport:
    """What a :func:`s2cube.mosaic` run did."""

    store: str
    cells: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    scenes: int = 0
    seconds: float = 0.0
    dashboard: str | None = None
    #: the land-cover stage's report when the config asked for it (``MosaicConfig.landcover``)
    landcover: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FillJob:
    """How a cell's holes are filled after its period (:func:`s2cube.fill.fill_window`, run
    by :func:`s2cube.donors.fill_task` once every cell of the run is composited)."""

    spec: Any  # CompositeSpec: the mosaic's own mask for the donors
    halo: int  # the mask's context around the donors' window
    period: tuple[str, str] | None
    max_periods: int
    inpaint: str | None
    scene_index: dict[str, int]
    #: the cell's window: a cell its period never reached is filled from an empty composite
    window: Any = None
    #: pixels of the neighbouring cells the cell is filled with (:data:`s2cube.fill.FILL_HALO`)
    fill_halo: int = 0
    #: the run's cells among the cell's neighbours (their pixels may be holes; others not)
    domain: tuple[str, ...] = ()
    #: the donor scenes touching the cell with its halos (read block by block by the fill)
    donors: tuple[Any, ...] = ()
    #: the fill reads and fills the cell in blocks of at most this edge (px), each with the
    #: same halo: the donors of one block, not of the whole cell, are in memory at once
    block: int = 4096
    #: read errors raise (``ExecutionOptions.strict``)
    strict: bool = False


def write_task(
    store: StoreLike,
    cell: Cell,
    ds: xr.Dataset | None,
    record: dict[str, Any],
    overviews: bool,
    stats: list[dict[str, Any]] | None = None,
    lease: str | None = None,
    fill: FillJob | None = None,
) -> dict[str, Any]:
    """Runs on a worker: ``ds`` and ``stats`` arrive computed (numpy-backed).

    With ``fill``, the composite is written as it is and its record says ``fill_pending``:
    :func:`s2cube.donors.fill_task` fills it once its neighbours are written (their observed
    pixels are the ring around a hole on the cell edge), and builds its overview levels then.
    ``ds`` None (with ``fill``): the period has no scene in the cell, an empty composite is
    written for the donors to fill."""
    t0 = time.perf_counter()
    record = dict(record)
    if ds is None:  # a cell its period never reached, filled from donors alone
        from .composite.engine import empty_composite

        assert fill is not None and fill.window is not None
        ds = empty_composite(fill.window, fill.spec.bands)
    if fill is not None:
        record["fill_pending"] = True
    rec = write_composite(store, cell, ds, record, stats, lease)
    rec["write_seconds"] = round(time.perf_counter() - t0, 3)
    if overviews and fill is None:
        from .overviews import build_cell_overviews

        # the per-cell overview levels live in this cell's own shards: still one writer
        build_cell_overviews(store, cell)
    return rec


def write_composite(
    store: StoreLike,
    cell: Cell,
    ds: xr.Dataset,
    record: dict[str, Any],
    stats: list[dict[str, Any]] | None,
    lease: str | None,
) -> dict[str, Any]:
    """The cell's shards and record, with its seam metric (and block counts from ``stats``)."""
    from .harmonize.metrics import seam_metric

    metrics = dict(record.pop("metrics", {}))
    bands = np.stack(
        [ds[b].values for b in ds.data_vars if ds[b].dtype == np.uint16 and b != "clear_count"]
    )
    metrics["seam"] = seam_metric(bands, ds["scene"].values)
    if stats:
        metrics["blocks"] = len(stats)
        metrics["fallback_blocks"] = int(sum(st["fallback"] for st in stats))
        metrics["scene_blocks_read"] = int(sum(st["scenes_read"] for st in stats))
    record["metrics"] = metrics
    return write_cell(store, cell, ds, record=record, lease=lease)


def cell_tasks(
    store: StoreLike,
    cells: Sequence[Cell],
    planned: dict[str, PlannedCell],
    *,
    run_record: dict[str, Any],
    overviews: bool,
    lease: str | None = None,
    fills: Mapping[str, FillJob] | None = None,
    dropped: Mapping[str, list[dict[str, Any]]] | None = None,
) -> list[tuple[Cell, Any]]:
    """One delayed task per cell: its write (shards, overview levels, manifest record last).

    ``lease`` is the owner id of the run's writer lease; every write checks it.  ``fills``:
    per cell name, its :class:`FillJob` (the cell is written with ``fill_pending``;
    :func:`s2cube.donors.fill_waves` fills it after).
    ``dropped``: per cell name, the scenes dropped for it (recorded also for a cell left
    without data, so ``--retry-dropped`` finds it)."""
    import dask

    tasks = []
    for cell in cells:
        pc = planned.get(cell.name)
        job = (fills or {}).get(cell.name)
        write = dask.delayed(write_task, pure=False, name=f"write-{cell.name}")
        if pc is None:
            record = {**run_record, "dropped_scenes": list((dropped or {}).get(cell.name, []))}
            if job is not None and job.donors:
                # the period never reached the cell: donors from other periods fill it all
                task = write(store, cell, None, record, overviews, None, lease, job)
            else:
                task = dask.delayed(write_empty_cell, pure=False)(
                    store, cell, record=record, lease=lease
                )
        else:
            task = write(
                store,
                cell,
                pc.dataset,
                {**run_record, **pc.record},
                overviews,
                pc.stats,
                lease,
                job,
            )
        tasks.append((cell, task))
    return tasks


def run_tasks(
    tasks: Sequence[tuple[Cell, Any]],
    report: MosaicReport,
    *,
    client: Any = None,
    progress: bool | Progress = False,
    replan: Callable[[Cell, SceneReadError], Any] | None = None,
    desc: str = "cells",
) -> None:
    """Compute the cell tasks (on ``client`` as they complete, else one by one).

    ``desc`` names the progress bar (``progress=True``).

    When a cell's task fails with :class:`~s2cube.errors.SceneReadError` (an asset of one of
    its scenes could not be read), ``replan(cell, error)`` gives the cell's task without that
    scene, which runs in its place; ``None`` (or no ``replan``) lets the error propagate.
    """
    import dask

    callback = progress if callable(progress) else None
    bar = None
    if _spinner is not None:
        _spinner.close()  # the cells' bar takes over from the planning spinner
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks), desc=desc, unit="cell")

    def account(cell: Cell, rec: dict[str, Any]) -> None:
        (report.empty if rec.get("empty") else report.written).append(cell.name)
        if bar is not None:
            bar.update(1)
        if callback is not None:
            callback(cell.name, rec)

    try:
        if client is not None and tasks:
            from distributed import as_completed

            futures = client.compute([t for _, t in tasks])
            names = {f.key: c for (c, _), f in zip(tasks, futures, strict=True)}
            pending = as_completed(futures)
            for fut in pending:
                cell = names[fut.key]
                try:
                    rec = fut.result()
                except SceneReadError as exc:
                    again = replan(cell, exc) if replan is not None else None
                    if again is None:
                        raise
                    new = client.compute(again)
                    names[new.key] = cell
                    pending.add(new)
                    continue
                account(cell, rec)
        else:
            for cell, task in tasks:
                while True:
                    try:
                        (rec,) = dask.compute(task)
                        break
                    except SceneReadError as exc:
                        task = replan(cell, exc) if replan is not None else None
                        if task is None:
                            raise
                account(cell, rec)
    finally:
        if bar is not None:
            bar.close()
