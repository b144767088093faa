"""Opening a global-grid store and reading a small window: the README recipes vs the naive one.

For a store on the global grid (the default 1/12000° pixels and 600 px chunks, so ~26 M
chunks per variable; 0.1° cells so that one written cell stays small), on local disk and on a
real S3 server (moto's server mode on 127.0.0.1), it measures opening the store and loading a
0.2° window of every variable with

* ``open_store``:  ``s2cube.open_store(store, bbox=...)`` (README recipe 1);
* ``xr_no_dask``:  ``xr.open_zarr(store, decode_coords="all", chunks=None)`` then ``.sel`` of
  the window, then load (README recipe 2, plain xarray);
* ``naive``:       ``xr.open_zarr(store, decode_coords="all")`` (dask chunks = store chunks over
  the whole globe) then the same ``.sel`` and load: the baseline.

Every case runs in its own fresh Python process (started by this one), so its wall time
(measured inside it, imports excluded) and its peak resident memory (``wait4`` ru_maxrss) are
its own; ratios are naive / recipe, from the same run.  Usage::

    python tests/benchmarks/bench_store_open.py [--quick] [--no-s3] [--repeat N]
                                                [--timeout S] [--max-gb G]

A case that dies (out of memory) or runs past ``--timeout`` is reported with its time and
peak memory so far, as lower bounds (``>=``).

``--quick`` uses a coarse global grid (1/200°, 100 px chunks: ~260 k chunks per variable) so
the test suite can run it in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from fractions import Fraction
from pathlib import Path

warnings.filterwarnings("ignore")

CASES = ("open_store", "xr_no_dask", "naive")
CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, xarray as xr
import s2cube
case, store, bbox = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
w, s, e, n = bbox
t0 = time.perf_counter()
if case == "open_store":
    ds = s2cube.open_store(store, bbox=bbox)
elif case == "xr_no_dask":
    ds = xr.open_zarr(store, decode_coords="all", chunks=None)
    ds = ds.sel(latitude=slice(n, s), longitude=slice(w, e))
else:
    ds = xr.open_zarr(store, decode_coords="all")
    ds = ds.sel(latitude=slice(n, s), longitude=slice(w, e))
t_open = time.perf_counter() - t0
ds = ds.load()
t_all = time.perf_counter() - t0
valid = int((ds["scene"].values >= 0).sum())
print(json.dumps({"open": t_open, "total": t_all, "shape": list(ds["red"].shape),
                  "valid": valid, "red_sum": int(ds["red"].values.astype("int64").sum())}))
"""


def _run_case(
    case: str, store: str, bbox: tuple[float, ...], timeout: float, max_gb: float
) -> dict[str, float]:
    """One case in a fresh process; a case that dies or times out is reported, not raised.

    The process's address space is capped at ``max_gb`` (the naive recipe on the full global
    grid otherwise takes all the machine's memory: 21.5 GB before the OOM killer, measured).
    """
    import resource

    cap = int(max_gb * 2**30)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, case, store, json.dumps(list(bbox))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        preexec_fn=limit,
    )
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        killer.cancel()
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    peak = usage.ru_maxrss / 1024  # KiB on Linux
    if code != 0:
        why = "timed out" if wall >= timeout else f"exit code {code}"
        print(f"  ({case} failed: {why} after {wall:.0f} s, peak RSS {peak:.0f} MB) {err[-300:]}")
        return {"failed": 1.0, "open": wall, "total": wall, "peak_mb": peak}
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_mb"] = peak
    return res


def build_store(store: str, grid, storage_options=None) -> tuple[float, ...]:
    """A global-grid store with one written cell (synthetic pixels); returns the read bbox."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
    from synthetic import synthetic_cell

    from s2cube.store import create_store, store_location, write_cell

    loc = store_location(store, storage_options)
    create_store(loc, grid=grid)
    cell = grid.cell_of(16.05, 46.05)
    write_cell(loc, cell, synthetic_cell(grid, cell))
    w, s, e, n = grid.cell_bounds(cell)
    pad = float(grid.cell_size) / 2
    return (w - pad, s - pad, e + pad, n + pad)


_AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")


def _stop_s3(server, saved: dict) -> None:
    """Stop the server, put the environment back and forget s3fs's cached filesystems (one
    made from the environment would otherwise point at this dead server for the rest of the
    process: the test suite runs this benchmark in-process)."""
    import s3fs

    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    s3fs.S3FileSystem.clear_instance_cache()


def _start_s3():
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        }
    )
    import s3fs

    s3fs.S3FileSystem().mkdir("bench")
    return server


def main(argv: list[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    from s2cube.grid import GlobalGrid

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="coarse global grid (test suite)")
    ap.add_argument("--no-s3", action="store_true", help="local disk only")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case (best time is kept)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per case run")
    ap.add_argument("--max-gb", type=float, default=8, help="address-space cap per case run")
    args = ap.parse_args(argv)
    if args.quick:
        grid = GlobalGrid(resolution=Fraction(1, 200), cell_size=Fraction(1, 2), chunk_size=100)
    else:
        grid = GlobalGrid(resolution=Fraction(1, 12000), cell_size=Fraction(1, 10), chunk_size=600)
    n_chunks = -(-grid.shape[0] // grid.chunk_size) * -(-grid.shape[1] // grid.chunk_size)
    print(
        f"global grid {grid.resolution}° ({grid.shape[1]}×{grid.shape[0]} px), "
        f"{grid.chunk_size} px chunks: {n_chunks:,} chunks per variable"
    )
    results: dict[str, dict[str, dict[str, float]]] = {}
    server = None
    saved = {k: os.environ.get(k) for k in _AWS_VARS}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {"local": str(Path(tmp) / "global.zarr")}
        if not args.no_s3:
            try:
                server = _start_s3()
                stores["s3"] = "s3://bench/global.zarr"
            except ImportError as exc:
                print(f"(S3 skipped: {exc}; pip install 's2cube[s3]' moto[server])")
        try:
            for where, store in stores.items():
                t = time.perf_counter()
                bbox = build_store(store, grid)
                print(
                    f"\n{where}: {store} (template + one cell in {time.perf_counter() - t:.1f} s)"
                )
                print(f"  window {tuple(round(v, 4) for v in bbox)}")
                rows = {}
                for case in CASES:
                    runs = [
                        _run_case(case, store, bbox, args.timeout, args.max_gb)
                        for _ in range(args.repeat)
                    ]
                    best = min(runs, key=lambda r: r["total"])
                    best["peak_mb"] = max(r["peak_mb"] for r in runs)
                    rows[case] = best
                    mark = ">=" if best.get("failed") else "  "
                    print(
                        f"  {case:11s} open {best['open']:8.3f} s   open+read {mark}"
                        f"{best['total']:8.3f} s   peak RSS {mark}{best['peak_mb']:8.0f} MB   "
                        f"window {best.get('shape', 'failed')}"
                    )
                # all that finished read the same pixels
                done = [r for r in rows.values() if not r.get("failed")]
                assert len({(r["valid"], r["red_sum"]) for r in done}) == 1, rows
                base = rows["naive"]
                for case in ("open_store", "xr_no_dask"):
                    r = rows[case]
                    mark = ">=" if base.get("failed") else ""
                    print(
                        f"  ratio naive/{case}: time {mark}{base['total'] / r['total']:.1f}x, "
                        f"peak memory {mark}{base['peak_mb'] / r['peak_mb']:.1f}x"
                    )
                results[where] = rows
        finally:
            if server is not None:
                _stop_s3(server, saved)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
