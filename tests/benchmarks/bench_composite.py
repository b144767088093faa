"""s2cube's composites vs a stackstac + xarray masked-median composite, same cube, one process.

For each case it prints wall time (untraced), peak traced memory (tracemalloc: numpy buffers and
GDAL read buffers) and bytes read from files (``rchar`` of /proc/self/io: every byte the process
read) of

* ``priority``: s2cube.load → s2cube.mask → s2cube.composite (reads every scene)
* ``planned``:  the production engine (s2cube.composite_cell: coarse SCL look, then only the
  scenes each block needs; harmonization and feathered blending on), survey included
* ``median``:   the same stackstac cube → ``where(SCL clear).median("time")``

and the ratios median/ours.  Usage::

    python tests/benchmarks/bench_composite.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
import warnings
from fractions import Fraction
from pathlib import Path

import dask

warnings.filterwarnings("ignore")

REPO = Path(__file__).resolve().parents[2]
REAL = (
    REPO.parent / "shared" / "data" / "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m" / "catalog.json"
)


def _rchar() -> int:
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _measure(fn, repeat: int) -> tuple[float, float, float, object]:
    """Best wall time of ``repeat`` untraced runs, then one traced run for peak memory and bytes.

    tracemalloc slows every Python-level allocation down (by up to ×2 here), so it never runs
    while the clock does.
    """
    best_t = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best_t = min(best_t, time.perf_counter() - t0)
    gc.collect()
    tracemalloc.start()
    r0 = _rchar()
    out = fn()
    read = (_rchar() - r0) / 2**20
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best_t, peak / 2**20, read, out


class _RangeServer:
    """A local HTTP server with byte-range support that counts the bytes it serves.

    Reading the COGs over HTTP (GDAL's /vsicurl/, as from object storage) measures what each
    method really fetches from the rasters; ``rchar`` also counts PROJ's database and Python's
    own files, which grow with the number of dataset opens, not with the raster bytes.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, head: bool) -> None:
                # /<run tag>/<absolute path>: a fresh tag per run defeats GDAL's process-wide
                # /vsicurl/ cache between runs (within a run it helps every method alike)
                path = Path("/" + self.path.split("?")[0].lstrip("/").partition("/")[2])
                if not path.is_file():
                    self.send_error(404)
                    return
                size = path.stat().st_size
                rng = self.headers.get("Range")
                start, end = 0, size - 1
                if rng and rng.startswith("bytes="):
                    a, _, b = rng[6:].split(",")[0].partition("-")
                    start, end = int(a or 0), min(int(b) if b else size - 1, size - 1)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                if not head:
                    with open(path, "rb") as f:
                        f.seek(start)
                        data = f.read(end - start + 1)
                    self.wfile.write(data)
                    with server.lock:
                        server.bytes += len(data)
                        server.ranges.append((str(path), start, len(data)))

            def do_GET(self):
                self._send(False)

            def do_HEAD(self):
                self._send(True)

        self.lock = threading.Lock()
        self.bytes = 0
        #: every range served: (path, start, length)
        self.ranges: list[tuple[str, int, int]] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def items(self, items, tag: str):
        """Copies of ``items`` whose raster assets point at this server, under ``/tag``."""
        out = []
        for it in items:
            it = it.clone()
            for a in it.assets.values():
                if a.href.startswith("/"):
                    a.href = f"{self.url}/{tag}{a.href}"
            out.append(it)
        return out

    def close(self) -> None:
        self.httpd.shutdown()


def _http_bytes(fn, server: _RangeServer, items, tag: str) -> float:
    b0 = server.bytes
    fn(server.items(items, tag))
    return (server.bytes - b0) / 2**20


def run_case(name: str, items, grid, cell, repeat: int) -> dict[str, float]:
    import s2cube

    cfg = s2cube.MosaicConfig()
    local = items

    def priority(items=local):
        cube = s2cube.load(items, cell, grid=grid, halo=2)
        codes = s2cube.mask(cube, dilation=2)
        plain = {"harmonize": "none", "blend": "none", "haze_threshold": None}
        return (
            s2cube.composite(cube, codes, **plain)
            .isel(latitude=slice(2, -2), longitude=slice(2, -2))
            .compute()
        )

    def planned(items=local):
        return s2cube.composite_cell(items, cell, grid=grid, config=cfg).compute()

    def median(items=local):
        cube = s2cube.load(items, cell, grid=grid)
        clear = cube.sel(band="scl").isin([2, 4, 5, 6, 7, 11])
        refl = cube.sel(band=["red", "green", "blue", "nir"])
        return refl.where(clear & (refl > 0)).median("time").compute()

    res = {}
    http: dict[str, float] = {}
    server = _RangeServer()
    with dask.config.set(scheduler="threads"):
        priority(), planned(), median()  # warm GDAL's caches for all three, untimed
        for key, fn in (("priority", priority), ("planned", planned), ("median", median)):
            res[key] = _measure(fn, repeat)
            http[key] = _http_bytes(fn, server, local, f"{name.split()[0]}-{key}")
    server.close()
    ds = res["planned"][3]
    px = ds.sizes["latitude"] * ds.sizes["longitude"]
    n = len(items)
    print(
        f"\n[{name}] {n} scenes, {ds.sizes['latitude']}×{ds.sizes['longitude']} px "
        f"({px / 1e6:.2f} Mpx), best of {repeat}"
    )
    for key in ("priority", "planned", "median"):
        t, m, b, out = res[key]
        print(
            f"  {key:9s}: {t:7.2f} s  {px * n / t / 1e6:7.1f} Mpx·scene/s  peak {m:8.1f} MiB  "
            f"raster bytes over HTTP {http[key]:7.1f} MiB  (rchar {b:6.1f} MiB)"
        )
    tm, mm, hm = res["median"][0], res["median"][1], http["median"]
    for key in ("priority", "planned"):
        t, m = res[key][:2]
        h = http[key]
        print(
            f"  ratio median/{key:8s}: time ×{tm / t:.2f}   peak memory ×{mm / m:.2f}   "
            f"raster bytes ×{hm / h if h else float('nan'):.2f}"
        )
    print(
        f"  planned: plan needs {ds.attrs.get('read_fraction', float('nan')):.3f} of the candidate "
        f"scene-blocks; its read chunks warp "
        f"{ds.attrs.get('read_fraction_pixels', float('nan')):.3f} "
        "of all candidate pixels (survey included in its time and bytes)"
    )
    out = {
        f"{k}_{q}": v
        for k, r in res.items()
        for q, v in zip(("t", "m", "rchar"), r[:3], strict=True)
    }
    return {**out, **{f"{k}_b": v for k, v in http.items()}}


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    import s2cube
    from s2cube.grid import GlobalGrid

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (used by the test suite)")
    ap.add_argument("--repeat", type=int, default=None)
    args = ap.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    results = {}
    if REAL.exists():
        res = Fraction(1, 400) if args.quick else Fraction(1, 1000)
        grid = GlobalGrid(resolution=res, cell_size=Fraction(1, 2))
        items = s2cube.search(REAL)
        results["real"] = run_case(
            "real 33TWL/33TWM, 10 scenes", items, grid, grid.cell_of(15.9, 46.1), repeat
        )
    else:
        print(f"(real fixture not found at {REAL}; skipped)")
    from s2cube.testing import make_sample_catalog

    with tempfile.TemporaryDirectory() as tmp:
        # full size: two 1200 px × 10 m tiles, 16 dates, composited at 1/12000° (the default grid)
        n_dates = 6 if args.quick else 16
        size = 300 if args.quick else 1200
        pixel = 60.0 if args.quick else 10.0
        cat = make_sample_catalog(
            Path(tmp) / "cat", seed=1, n_dates=n_dates, size=size, pixel_size=pixel
        )
        items = s2cube.search(cat)
        res = Fraction(1, 2000) if args.quick else Fraction(1, 12000)
        grid = GlobalGrid(resolution=res, cell_size=Fraction(1, 10))
        cell = grid.cell_of(12.0, 46.05)
        results["synthetic"] = run_case(
            f"synthetic, {len(items)} scenes", items, grid, cell, repeat
        )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
