"""Two writers on one store (issue 15, defect 2): trials of two real ``s2cube mosaic`` runs.

Each trial starts two CLI runs on one fresh store, with different dates (so their pixels
differ: run A 2023-08-01..31, run B 2023-08-01..12) and a varied start offset between them,
on the real two-tile fixture (two 0.25° cells at 1/800°).  A run either writes or is refused
(exit 2 with a message: the writer lease is held, or the store was made by another query);
never both at once.  Every finished cell must then equal, pixel for pixel and scene id for
scene id, a single-writer reference run of the run its manifest record names, and
``verify_store`` must find every record matching its pixels.  A cell that does not is a
**mixed cell**; the count must be zero.  Usage::

    python tests/benchmarks/bench_two_writers.py [--trials 20] [--parallel 2]

It prints per trial the exit codes and which run each cell came from, then the totals
(``mixed cells: 0 of N``) and the seconds per trial.  ``tests/test_two_writers.py`` runs the
first trials of the same schedule.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
CATALOG = Path(os.environ.get("S2CUBE_SHARED_DATA", REPO.parent / "shared" / "data")) / (
    "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m/catalog.json"
)
BBOX = ("15.8", "45.95", "15.95", "46.2")  # cells r0175c0783, r0176c0783 (200 px each)
RUNS = {"A": ("2023-08-01", "2023-08-31"), "B": ("2023-08-01", "2023-08-12")}
PIXEL_VARS = ("red", "green", "blue", "nir", "date", "clear_count", "fill")
#: seconds B starts after A (negative: A after B); varied so the runs overlap at every stage
OFFSETS = (0.0, 1.5, -1.5, 4.0, 0.3, -0.3, 0.8, -0.8, 2.5, -2.5, 0.0, 6.0, -6.0, 1.0, -1.0, 3.2,
           -3.2, 0.5, -0.5, 0.0)  # fmt: skip
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def mosaic_args(store: Path, run: str) -> list[str]:
    start, end = RUNS[run]
    return [
        sys.executable,
        "-m",
        "s2cube.cli",
        "mosaic",
        "--catalog",
        str(CATALOG),
        "--bbox",
        *BBOX,
        "--start",
        start,
        "--end",
        end,
        "--resolution",
        "1/800",
        "--cell-size",
        "0.25",
        "--store",
        str(store),
        "--workers",
        "0",
        "--no-progress",
    ]


def run_one(store: Path, run: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mosaic_args(store, run), env=ENV, capture_output=True, text=True, timeout=600
    )


def cell_pixels(store: Path) -> dict[str, dict[str, np.ndarray]]:
    """Per finished cell: the stored arrays, with ``scene`` as scene ids (not indices)."""
    import zarr

    import s2cube
    from s2cube.grid import Cell, GlobalGrid
    from s2cube.store import read_manifest, store_metadata

    grid = GlobalGrid.from_dict(store_metadata(store)["grid"])
    ids = np.asarray(s2cube.scene_table(store)["id"].astype(str).tolist() + [""], dtype=object)
    out: dict[str, dict[str, np.ndarray]] = {}
    root = zarr.open_group(str(store), mode="r")
    for name in read_manifest(store):
        w = grid.cell_window(Cell.from_name(name))
        arrays = {v: np.asarray(root[v][w.rows, w.cols]) for v in PIXEL_VARS}
        scene = np.asarray(root["scene"][w.rows, w.cols])
        arrays["scene_id"] = ids[scene]  # -1 → "" (the appended empty id)
        out[name] = arrays
    return out


def reference_stores(workdir: Path) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Single-writer runs A and B (in parallel, separate stores): their cells' pixels."""
    stores = {run: workdir / f"ref-{run}.zarr" for run in RUNS}
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(stores, pool.map(lambda r: run_one(stores[r], r), stores), strict=True))
    for run, res in results.items():
        if res.returncode != 0:
            raise RuntimeError(f"reference run {run} failed: {res.stderr[-2000:]}")
    refs = {run: cell_pixels(store) for run, store in stores.items()}
    for name in refs["A"]:  # the two runs must differ, or a mixed cell could not show
        if all(np.array_equal(refs["A"][name][v], refs["B"][name][v]) for v in PIXEL_VARS):
            raise RuntimeError(f"runs A and B give identical pixels in {name}: no test")
    return refs


@dataclass
class Trial:
    offset: float
    codes: dict[str, int] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    cells: dict[str, str] = field(default_factory=dict)  # cell -> run it equals, or "MIXED"
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mixed(self) -> int:
        return sum(v == "MIXED" for v in self.cells.values())


def trial(workdir: Path, index: int, refs: dict[str, Any]) -> Trial:
    """Two overlapping runs on one fresh store; then every cell checked."""
    from s2cube.store import is_store, read_manifest, verify_store

    store = workdir / f"trial-{index}.zarr"
    t = Trial(offset=OFFSETS[index % len(OFFSETS)])
    t0 = time.perf_counter()
    first, second = ("A", "B") if t.offset >= 0 else ("B", "A")
    procs: dict[str, subprocess.Popen[str]] = {}
    procs[first] = subprocess.Popen(
        mosaic_args(store, first), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(abs(t.offset))
    procs[second] = subprocess.Popen(
        mosaic_args(store, second), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    for run, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        t.codes[run] = proc.returncode
        if proc.returncode == 2 and "error:" in err and "Traceback" not in err:
            t.refused[run] = err.strip().splitlines()[-1][:160]
        elif proc.returncode != 0:
            t.problems.append(f"run {run} exit {proc.returncode}: {err[-600:]}")
    t.seconds = time.perf_counter() - t0
    if all(c != 0 for c in t.codes.values()):
        t.problems.append("both runs were refused: nothing was written")
    if not is_store(store):
        t.problems.append("no store was made")
        return t
    manifest = read_manifest(store)
    pixels = cell_pixels(store)
    for name, rec in manifest.items():
        run = next((r for r, (_, end) in RUNS.items() if rec["query"]["end"] == end), None)
        same = run is not None and all(
            np.array_equal(pixels[name][v], refs[run][name][v]) for v in (*PIXEL_VARS, "scene_id")
        )
        t.cells[name] = run if same and run else "MIXED"
    if sorted(manifest) != sorted(refs["A"]):
        t.problems.append(f"finished cells {sorted(manifest)}, expected {sorted(refs['A'])}")
    report = verify_store(store)
    t.problems += [f.describe() for f in report.findings]
    return t


def run_trials(
    n: int, workdir: Path, *, parallel: int = 2, echo: bool = True
) -> tuple[list[Trial], float]:
    """``n`` trials, ``parallel`` at a time; returns them and the references' seconds."""
    t0 = time.perf_counter()
    refs = reference_stores(workdir)
    ref_s = time.perf_counter() - t0
    with ThreadPoolExecutor(parallel) as pool:
        trials = list(pool.map(lambda i: trial(workdir, i, refs), range(n)))
    if echo:
        for i, t in enumerate(trials):
            print(
                f"trial {i:2d} offset {t.offset:+5.1f} s  exit A={t.codes.get('A')} "
                f"B={t.codes.get('B')}  cells {t.cells}  {t.seconds:5.1f} s"
                + (f"  refused: {next(iter(t.refused.values()))}" if t.refused else "")
            )
            for p in t.problems:
                print(f"   problem: {p}")
    return trials, ref_s


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--parallel", type=int, default=2)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s2cube-two-writers-") as tmp:
        t0 = time.perf_counter()
        trials, ref_s = run_trials(args.trials, Path(tmp), parallel=args.parallel)
        total = time.perf_counter() - t0
    cells = sum(len(t.cells) for t in trials)
    mixed = sum(t.mixed for t in trials)
    refused = sum(len(t.refused) for t in trials)
    problems = sum(len(t.problems) for t in trials)
    print(
        f"mixed cells: {mixed} of {cells} in {len(trials)} trials; runs refused: {refused} "
        f"of {2 * len(trials)}; other problems: {problems}"
    )
    print(
        f"time: {total:.1f} s ({ref_s:.1f} s for the two reference runs, "
        f"{(total - ref_s) / max(1, len(trials)) * args.parallel:.1f} s per trial, "
        f"{args.parallel} at a time)"
    )
    return {"trials": len(trials), "cells": cells, "mixed": mixed, "problems": problems}


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
