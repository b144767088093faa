"""Store integrity: finished cells checked against their shards, checksums and records.

Two depths, one vocabulary (:class:`Finding`: product, cell, variable, level, problem):

* :func:`cell_problems`, the **cheap check** a resume runs before it skips a finished cell
  (:func:`finished_cells`): the record parses and belongs to this cell of this grid, and every
  shard the record says holds data exists and is not empty (a 0-byte or deleted shard reads
  as all nodata without an error).  A cell recorded empty must have no shard left (an
  overwrite that emptied it clears them first).  Object listing/size only, no pixel is read.
* :func:`verify_store`, the **full check** behind ``s2cube verify``: every finished cell is
  read back (each chunk's crc32c checksum is checked by Zarr on the way, for stores written
  with it) and its record recomputed from the pixels by the code that wrote it
  (:func:`~s2cube.store.cells.cell_summary`); overview levels are read and recomputed from the
  level below; the land-cover cells are read and counted; a nested store (the
  super-resolution product, ``superres/x<scale>``) is verified as a store of its own.

:func:`forget_cells` removes the records of damaged cells (under the writer lease), so the
next run recomputes them.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..grid import Cell, GlobalGrid
from .cells import (
    FILL_VALUES,
    cell_shard_keys,
    cell_summary,
    mosaic_variables,
    read_manifest,
)
from .layout import MANIFEST_DIR, _require_store, array_checksummed, is_store, store_metadata
from .location import StoreLike, StoreLocation, store_location

__all__ = [
    "Finding",
    "VerifyReport",
    "cell_problems",
    "checksum_state",
    "damaged_cells",
    "finished_cells",
    "forget_cells",
    "verify_store",
]

#: where nested stores of derived products live (each a complete store with its own manifest)
NESTED_GROUPS = ("superres",)
#: record fields recomputed from the pixels (floats compared with a tolerance)
_EXACT_FIELDS = (
    "n_pixels",
    "n_composited",
    "n_nodata",
    "n_without_clear",
    "scenes_used",
    "date_min",
    "date_max",
    "fill",
)


@dataclass(frozen=True)
class Finding:
    """One thing wrong with one cell: where (product, cell, variable, level) and what."""

    cell: str
    variable: str
    problem: str
    level: int = 0
    product: str = "mosaic"

    def describe(self) -> str:
        where = f"{self.product} cell {self.cell}, variable {self.variable!r}"
        if self.level:
            where += f" at overview level {self.level}"
        return f"{where}: {self.problem}"


@dataclass
class VerifyReport:
    """What :func:`verify_store` checked and found."""

    store: str
    checksums: str  # "all", "none" or "partial" (arrays whose chunks carry a crc32c)
    cells: dict[str, str] = field(default_factory=dict)  # "product/cell" -> "ok" | "bad"
    findings: list[Finding] = field(default_factory=list)
    nested: dict[str, VerifyReport] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and all(r.ok for r in self.nested.values())

    def bad_cells(self) -> dict[str, list[str]]:
        """``{product: [cell, ...]}`` of the cells with findings (this store only)."""
        out: dict[str, list[str]] = {}
        for f in self.findings:
            if f.cell not in out.setdefault(f.product, []):
                out[f.product].append(f.cell)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "ok": self.ok,
            "checksums": self.checksums,
            "cells": self.cells,
            "findings": [asdict(f) for f in self.findings],
            "nested": {k: r.to_dict() for k, r in self.nested.items()},
            "skipped": self.skipped,
        }


# --------------------------------------------------------------------------- cheap check
def _grid(loc: StoreLocation) -> tuple[GlobalGrid, dict[str, Any]]:
    meta = store_metadata(loc)
    return GlobalGrid.from_dict(meta["grid"]), meta


def _record_problem(name: str, record: Mapping[str, Any], grid: GlobalGrid) -> str | None:
    """What is wrong with a record as a record of cell ``name`` on ``grid`` (None: nothing)."""
    try:
        cell = Cell.from_name(name)
        window = grid.cell_window(cell)
    except Exception as exc:  # a record whose name is no cell of this grid
        return f"the record names no cell of the store's grid ({exc})"
    if record.get("cell") != name or (record.get("row"), record.get("col")) != (
        cell.row,
        cell.col,
    ):
        return f"the record is for cell {record.get('cell')!r}, not {name}"
    bounds = record.get("bounds")
    if not isinstance(bounds, list) or not np.allclose(bounds, window.bounds):
        return f"the record's bounds {bounds} are not the cell's {list(window.bounds)}"
    for key in ("n_pixels", "n_composited", "scenes_used"):
        if key not in record:
            return f"the record lacks {key!r}"
    n = window.height * window.width
    if record["n_pixels"] != n:
        return f"the record counts {record['n_pixels']} pixels, the cell has {n}"
    return None


def _expected_nonfill(record: Mapping[str, Any], name: str) -> int | None:
    """How many non-fill pixels the record says ``name`` holds (None: the record cannot say)."""
    if record.get("empty"):
        return 0
    content = record.get("content")
    if isinstance(content, Mapping) and name in content:
        return int(content[name]["nonfill"])
    if name in ("date", "scene"):  # records from before ``content``: provenance of composites
        return int(record.get("n_composited", 0))
    return None


def cell_problems(
    store: StoreLike,
    name: str,
    record: Mapping[str, Any],
    *,
    grid: GlobalGrid | None = None,
    variables: Sequence[str] | None = None,
    sizes: Mapping[str, int] | None = None,
) -> list[Finding]:
    """The cheap check of one finished mosaic cell: its record, and its shards' presence and
    size at level 0 (no pixel read).  Empty list: the cell may be skipped by a resume.

    ``sizes`` (:func:`shard_sizes`) saves a request per shard when checking many cells."""
    loc = store_location(store)
    if grid is None or variables is None:
        g, meta = _grid(loc)
        grid = grid or g
        variables = variables or mosaic_variables(meta)
    problem = _record_problem(name, record, grid)
    if problem is not None:
        return [Finding(name, "(record)", problem)]
    out: list[Finding] = []
    keys = cell_shard_keys(loc, Cell.from_name(name), grid, variables)
    for (path, var), key in keys.items():
        if path:
            continue  # overview levels: the full check recomputes them
        size = sizes.get(key) if sizes is not None else loc.size(key)
        expected = _expected_nonfill(record, var)
        if size == 0:
            out.append(Finding(name, var, f"its shard {key} is empty (0 bytes)"))
        elif size is None and expected:
            out.append(
                Finding(name, var, f"its shard {key} is missing; the record says {expected} px")
            )
        elif size is not None and expected == 0:
            what = "recorded empty" if record.get("empty") else "recorded without data here"
            out.append(Finding(name, var, f"the cell is {what} but its shard {key} has pixels"))
    return out


def shard_sizes(loc: StoreLocation, variables: Sequence[str]) -> dict[str, int]:
    """``{key: bytes}`` of every level-0 shard of ``variables`` (one listing per variable)."""
    out: dict[str, int] = {}
    for var in variables:
        out.update(loc.sizes(var))
    return out


def damaged_cells(store: StoreLike) -> dict[str, str]:
    """``{cell: problem}`` of the finished cells failing the cheap check (``s2cube info``)."""
    loc = store_location(store)
    grid, meta = _grid(loc)
    variables = mosaic_variables(meta)
    sizes = shard_sizes(loc, variables)
    out: dict[str, str] = {}
    for name, rec in read_manifest(loc).items():
        found = cell_problems(loc, name, rec, grid=grid, variables=variables, sizes=sizes)
        if found:
            out[name] = found[0].describe()
    return out


def finished_cells(
    store: StoreLike, cells: Iterable[Cell | str] | None = None, *, warn: bool = True
) -> set[str]:
    """Names of the finished cells (among ``cells``; default all) that pass the cheap check.

    A resume skips these.  A recorded cell failing it (a torn or foreign record, a missing or
    0-byte shard, a cleared cell with pixels left) is left out with a warning naming the cell
    and the problem, so the run recomputes it.
    """
    loc = store_location(store)
    grid, meta = _grid(loc)
    variables = mosaic_variables(meta)
    manifest = read_manifest(loc)
    names = None if cells is None else {c if isinstance(c, str) else c.name for c in cells}
    sizes = shard_sizes(loc, variables)
    out: set[str] = set()
    for name, rec in manifest.items():
        if names is not None and name not in names:
            continue
        found = cell_problems(loc, name, rec, grid=grid, variables=variables, sizes=sizes)
        if not found:
            out.add(name)
        elif warn:
            warnings.warn(
                f"finished {found[0].describe()}; recomputing the cell",
                RuntimeWarning,
                stacklevel=2,
            )
    return out


# --------------------------------------------------------------------------- full check
def checksum_state(store: StoreLike) -> str:
    """``"all"``, ``"none"`` or ``"partial"``: whether the store's sharded data arrays (and
    overview levels) checksum their chunks (stores created before crc32c have none)."""
    loc = store_location(store)
    flags = [array_checksummed(m) for m in _array_metas(loc).values()]
    if flags and all(flags):
        return "all"
    return "partial" if any(flags) else "none"


def _array_metas(loc: StoreLocation) -> dict[str, dict[str, Any]]:
    """``zarr.json`` of every 2-D data array (level 0 and overview levels)."""
    from ..overviews.levels import pyramid

    grid, meta = _grid(loc)
    from .landcover import LANDCOVER_VARS

    names = [*mosaic_variables(meta), *LANDCOVER_VARS]
    out: dict[str, dict[str, Any]] = {}
    for lv in pyramid(grid):
        prefix = f"{lv.path}/" if lv.path else ""
        for name in names:
            raw = loc.get(f"{prefix}{name}/zarr.json")
            if raw is not None:
                out[f"{prefix}{name}"] = json.loads(raw)
    return out


def _read_checked(
    group: Any, names: Sequence[str], window: Any, cell: str, level: int, product: str
) -> tuple[dict[str, np.ndarray], list[Finding]]:
    """Read ``names`` over ``window`` one by one; a variable that fails to decode (checksum
    mismatch, corrupt compressed data or shard index) becomes a finding."""
    out: dict[str, np.ndarray] = {}
    found: list[Finding] = []
    for n in names:
        try:
            out[n] = np.asarray(group[n][window.rows, window.cols])
        except Exception as exc:  # zarr raises ValueError/RuntimeError/zstd errors alike
            found.append(
                Finding(cell, n, f"unreadable: {type(exc).__name__}: {exc}", level, product)
            )
    return out, found


def _compare_record(
    name: str, record: Mapping[str, Any], summary: Mapping[str, Any]
) -> list[Finding]:
    out: list[Finding] = []
    for key in _EXACT_FIELDS:
        if key in record and key in summary and record[key] != summary[key]:
            out.append(
                Finding(name, key, f"the record says {record[key]!r}, the pixels {summary[key]!r}")
            )
    if "valid_fraction" in record and not math.isclose(
        float(record["valid_fraction"]), float(summary["valid_fraction"]), abs_tol=1e-12
    ):
        out.append(
            Finding(
                name,
                "valid_fraction",
                f"the record says {record['valid_fraction']}, the pixels "
                f"{summary['valid_fraction']}",
            )
        )
    content = record.get("content")
    if isinstance(content, Mapping):
        for var, want in content.items():
            got = summary["content"].get(var)
            if got is not None and dict(want) != got:
                out.append(
                    Finding(name, var, f"content {got} differs from the record's {dict(want)}")
                )
    return out


def _verify_mosaic_cell(
    loc: StoreLocation,
    root: Any,
    name: str,
    record: Mapping[str, Any],
    grid: GlobalGrid,
    bands: Sequence[str],
    variables: Sequence[str],
    n_scenes: int,
) -> list[Finding]:
    found = cell_problems(loc, name, record, grid=grid, variables=variables)
    if any(f.variable == "(record)" for f in found):
        return found
    window = grid.cell_window(Cell.from_name(name))
    arrays, unreadable = _read_checked(root, variables, window, name, 0, "mosaic")
    found += unreadable
    if unreadable:
        return found
    if record.get("empty"):
        for var, arr in arrays.items():
            n = int((arr != FILL_VALUES.get(var, 0)).sum())
            if n:
                found.append(Finding(name, var, f"recorded empty but {n} px hold data"))
        return found
    summary = cell_summary(arrays, bands)
    found += _compare_record(name, record, summary)
    bad = [s for s in summary["scenes_used"] if not 0 <= s < n_scenes]
    if bad:
        found.append(
            Finding(name, "scene", f"indices {bad[:5]} are outside the scene table ({n_scenes})")
        )
    return found


def _verify_overviews(
    loc: StoreLocation, root: Any, cells: Sequence[str], bands: Sequence[str]
) -> list[Finding]:
    """Read every overview level over ``cells`` and recompute it from the level below (only
    where the cell's overviews are up to date; stale or missing ones are reported)."""
    from ..overviews import has_overviews, overview_status
    from ..overviews.build import _coarse_chunks
    from ..overviews.kernels import downsample_cell
    from ..overviews.levels import pyramid

    if not has_overviews(loc) or not cells:
        return []
    grid, meta = _grid(loc)
    status = overview_status(loc)
    found: list[Finding] = []
    for name in cells:
        if status.get(name, "ok") != "ok":
            found.append(
                Finding(
                    name,
                    "(overviews)",
                    f"overviews are {status[name]}; build them with `s2cube overviews STORE`",
                )
            )
    current = [c for c in cells if status.get(c) == "ok"]
    levels = pyramid(grid)
    names = [n for n in mosaic_variables(meta) if n in root]

    def step(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return downsample_cell(arrays, bands)

    for lv in levels[1:]:
        src: Any = root[levels[lv.index - 1].path] if lv.index > 1 else root
        dst: Any = root[lv.path]
        if lv.per_cell:
            targets = [(c, lv.cell_window(Cell.from_name(c))) for c in current]
        else:
            # a coarse chunk mixes cells: recomputed only when every finished cell is current
            whole = all(s == "ok" for s in status.values())
            chunks = sorted(_coarse_chunks(grid, lv, [Cell.from_name(c) for c in current]))
            targets = [(f"chunk {i},{j}", lv.chunk_window(i, j)) for i, j in chunks]
            if not whole:
                for label, window in targets:
                    found += _read_checked(dst, names, window, label, lv.index, "mosaic")[1]
                continue
        for label, window in targets:
            stored, bad = _read_checked(dst, names, window, label, lv.index, "mosaic")
            found += bad
            if bad:
                continue
            below, bad = _read_checked(
                src, names, window.zoom_in(2).clip(), label, lv.index - 1, "mosaic"
            )
            found += bad
            if bad:
                continue
            want = step(below)
            for n in names:
                w = want[n][: window.height, : window.width]
                if not np.array_equal(stored[n], w):
                    k = int((stored[n] != w).sum())
                    found.append(
                        Finding(
                            label,
                            n,
                            f"{k} px differ from the level below, downsampled",
                            lv.index,
                            "mosaic",
                        )
                    )
    return found


def _verify_landcover(loc: StoreLocation, root: Any, grid: GlobalGrid) -> list[Finding]:
    from .landcover import (
        LANDCOVER_VARS,
        class_shares,
        has_landcover,
        landcover_attrs,
        read_landcover_manifest,
    )

    if not has_landcover(loc):
        return []
    info = landcover_attrs(loc) or {"classes": {}}
    classes = {int(k): str(v) for k, v in dict(info["classes"]).items()}
    found: list[Finding] = []
    for name, rec in sorted(read_landcover_manifest(loc).items()):
        window = grid.cell_window(Cell.from_name(name))
        arrays, bad = _read_checked(root, LANDCOVER_VARS, window, name, 0, "landcover")
        found += bad
        if bad:
            continue
        cls = arrays["landcover"]
        if rec.get("empty"):
            n = int(sum((a != 0).sum() for a in arrays.values()))
            if n:
                found.append(
                    Finding(
                        name, "landcover", f"recorded empty but {n} px hold data", 0, "landcover"
                    )
                )
            continue
        got = {
            "n_pixels": int(cls.size),
            "n_classified": int((cls > 0).sum()),
            "classes": class_shares(cls, classes),
        }
        for key, value in got.items():
            if key in rec and rec[key] != value:
                found.append(
                    Finding(
                        name,
                        key,
                        f"the record says {rec[key]!r}, the pixels {value!r}",
                        0,
                        "landcover",
                    )
                )
        mean = float(np.asarray(arrays["landcover_dates"], dtype=float).mean())
        if "mean_dates" in rec and not math.isclose(rec["mean_dates"], mean, abs_tol=1e-9):
            found.append(
                Finding(
                    name,
                    "landcover_dates",
                    f"the record's mean {rec['mean_dates']} is not the pixels' {mean}",
                    0,
                    "landcover",
                )
            )
    return found


def verify_store(
    store: StoreLike,
    *,
    cells: Iterable[Cell | str] | None = None,
    overviews: bool = True,
    nested: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> VerifyReport:
    """Re-read every finished cell against its checksums and its manifest record.

    Parameters
    ----------
    store
        The store (path or URL).
    cells
        Only these mosaic cells (default: every finished cell; land cover is checked whole).
    overviews
        Also read the overview levels over the cells and recompute them from the level below.
    nested
        Also verify nested stores (``superres/x<scale>``), each as a store of its own.

    Returns
    -------
    VerifyReport
        ``report.ok`` is False when anything differs; ``report.findings`` say what and where.

    Examples
    --------
    >>> report = verify_store("mosaic.zarr")  # doctest: +SKIP
    >>> report.ok, report.checksums  # doctest: +SKIP
    (True, 'all')
    """
    import zarr

    from .scenes import scene_count

    loc = _require_store(store, storage_options)
    grid, meta = _grid(loc)
    bands = list(meta["bands"])
    root = zarr.open_group(loc.zarr_store(read_only=True), mode="r", use_consolidated=False)
    variables = [n for n in mosaic_variables(meta) if n in root]
    manifest = read_manifest(loc)
    if cells is not None:
        wanted = {c if isinstance(c, str) else c.name for c in cells}
        manifest = {k: v for k, v in manifest.items() if k in wanted}
    report = VerifyReport(store=loc.url, checksums=checksum_state(loc))
    n_scenes = scene_count(loc)
    for name, rec in sorted(manifest.items()):
        found = _verify_mosaic_cell(loc, root, name, rec, grid, bands, variables, n_scenes)
        report.findings += found
        report.cells[f"mosaic/{name}"] = "bad" if found else "ok"
    if overviews:
        for f in _verify_overviews(loc, root, sorted(manifest), bands):
            report.findings.append(f)
            if f"mosaic/{f.cell}" in report.cells:
                report.cells[f"mosaic/{f.cell}"] = "bad"
    if cells is None:
        for f in _verify_landcover(loc, root, grid):
            report.findings.append(f)
        from .landcover import read_landcover_manifest

        bad_lc = {f.cell for f in report.findings if f.product == "landcover"}
        for name in read_landcover_manifest(loc):
            report.cells[f"landcover/{name}"] = "bad" if name in bad_lc else "ok"
    if nested:
        for group in NESTED_GROUPS:
            for sub in loc.folders(group):
                path = f"{group}/{sub}"
                child = store_location(f"{loc.url.rstrip('/')}/{path}", loc.storage_options or None)
                if not is_store(child):
                    report.skipped.append(f"{path} (not an s2cube store)")
                    continue
                report.nested[path] = verify_store(child, overviews=overviews, nested=False)
    return report


def forget_cells(
    store: StoreLike, report: VerifyReport, *, break_lease: bool = False
) -> dict[str, list[str]]:
    """Remove the records of the cells ``report`` found damaged (nested stores too), under
    the writer lease, so the next run recomputes them; returns ``{store/product: [cells]}``.

    Coarse-level chunk findings name no cell; a cell's own findings are enough to recompute it
    (its overviews and the coarse chunks over it are rebuilt by the run).
    """
    from .landcover import LANDCOVER_MANIFEST
    from .lease import Lease

    loc = _require_store(store)
    out: dict[str, list[str]] = {}
    with Lease(loc, break_lease=break_lease):
        for product, names in report.bad_cells().items():
            folder = LANDCOVER_MANIFEST if product == "landcover" else MANIFEST_DIR
            done = [n for n in names if loc.exists(f"{folder}/{n}.json")]
            for n in done:
                loc.delete(f"{folder}/{n}.json")
            if done:
                out[f"{loc.url}:{product}"] = done
    for path, sub in report.nested.items():
        if not sub.ok:
            child = store_location(f"{loc.url.rstrip('/')}/{path}", loc.storage_options or None)
            out.update(forget_cells(child, sub, break_lease=break_lease))
    return out
