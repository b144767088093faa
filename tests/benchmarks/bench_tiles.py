"""Tile latency of ``s2cube serve``: p50/p99 per zoom under N concurrent clients on loopback,
with overviews vs without (level 0 only), and vs titiler.xarray reading the same Zarr store.

    python tests/benchmarks/bench_tiles.py [--clients 4] [--requests 24] [--keep DIR]

It builds a synthetic store (2×2 one-degree cells at 1/4000°, i.e. 8000×8000 px, written through
``write_cell``; ~1 min), builds its overviews, starts each server in its own process on a free
127.0.0.1 port and fires a bounded number of requests per zoom.  Every number comes from this
one run; ratios compare servers on the same tiles.

Also measured in-process (no HTTP): the render of one true-colour tile by our separable
nearest-neighbour sampler vs rio-tiler's ``XarrayReader.tile`` (reprojection through rioxarray)
on the same overview level.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "serve"))

ZOOMS = (7, 9, 11, 13)
BBOX = (15.0, 45.0, 17.0, 47.0)


def build_store(path: Path) -> Path:
    from synthetic import make_synthetic_store

    from s2cube.grid import GlobalGrid
    from s2cube.overviews import build_overviews

    grid = GlobalGrid(resolution=1 / 4000, cell_size=1, chunk_size=500)
    if not (path / "zarr.json").is_file():
        t = time.perf_counter()
        make_synthetic_store(path, grid, grid.cells_in_bbox(BBOX))
        print(f"store written in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        build_overviews(path)
        print(f"overviews built in {time.perf_counter() - t:.1f} s")
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, argv: list[str], env: dict[str, str], probe: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.proc = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.probe = probe

    def __enter__(self) -> Server:
        import requests

        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode()[-2000:])  # type: ignore[union-attr]
            try:
                if requests.get(self.url + self.probe, timeout=2).status_code < 500:
                    return self
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def ours(store: Path, overviews: bool) -> Server:
    code = (
        f"from s2cube.serve import run; "
        f"run({str(store)!r}, '127.0.0.1', {{port}}, log_level='warning')"
    )
    return Server(
        [sys.executable, "-c", code],
        {
            "S2CUBE_USE_OVERVIEWS": "true" if overviews else "false",
            "S2CUBE_MAX_READ_PIXELS": str(10**9),
        },
        "/healthz",
    )


def titiler() -> Server:
    return Server(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "titiler.xarray.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
            "--log-level",
            "warning",
        ],
        {},
        "/healthz",
    )


def tiles_for(z: int, limit: int) -> list[tuple[int, int, int]]:
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    w, s, e, n = BBOX
    tiles = [(t.z, t.x, t.y) for t in tms.tiles(w + 1e-6, s + 1e-6, e - 1e-6, n - 1e-6, [z])]
    rng = np.random.default_rng(z)
    rng.shuffle(tiles)
    return tiles[:limit]


def run_load(
    url_of, tiles: list[tuple[int, int, int]], clients: int, n_requests: int
) -> list[float]:
    import requests

    local = threading.local()
    jobs = [tiles[i % len(tiles)] for i in range(n_requests)]

    def one(t: tuple[int, int, int]) -> float:
        sess = getattr(local, "s", None) or requests.Session()
        local.s = sess
        t0 = time.perf_counter()
        r = sess.get(url_of(*t), timeout=600)
        dt = time.perf_counter() - t0
        if r.status_code != 200:
            raise RuntimeError(f"{url_of(*t)} -> {r.status_code} {r.text[:200]}")
        return dt

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, jobs))


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


def in_process(store: Path, reps: int = 20) -> None:
    """Our sampler vs rio-tiler XarrayReader on the same level, one thread, no HTTP."""
    import morecantile
    import xarray as xr
    from rio_tiler.io import XarrayReader

    from s2cube.overviews import open_level
    from s2cube.render import stack_rgba, tone_curve
    from s2cube.serve.tiles import TileSource

    src = TileSource(store)
    tms = morecantile.tms.get("WebMercatorQuad")
    print("\nin-process render of one true-colour 256 px tile (ms, median of", reps, "tiles)")
    print(f"{'zoom':>5} {'level':>5} {'s2cube':>9} {'rio-tiler':>10} {'ratio':>7}")
    for z in (9, 11):
        tiles = tiles_for(z, reps)
        lon, _ = src.pixel_lonlat("WebMercatorQuad", *[tiles[0][0], tiles[0][1], tiles[0][2]])
        lv = src.level_for(abs(float(lon[-1] - lon[0])) / 255)
        ds = open_level(store, lv.index)
        da = xr.concat([ds[b] for b in ("red", "green", "blue")], dim="band")
        da = da.assign_coords(band=[1, 2, 3]).rio.write_nodata(0)
        a, b = [], []
        for t in tiles:
            t0 = time.perf_counter()
            src.tile("true-color", "WebMercatorQuad", *t)
            a.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            with XarrayReader(da, tms=tms) as r:
                img = r.tile(t[1], t[2], t[0], tilesize=256)
            d = img.data.astype("uint16")
            stack_rgba(tone_curve(d[0]), tone_curve(d[1]), tone_curve(d[2]), d[0] > 0)
            b.append(time.perf_counter() - t0)
        ma, mb = statistics.median(a) * 1000, statistics.median(b) * 1000
        print(f"{z:>5} {lv.index:>5} {ma:>9.1f} {mb:>10.1f} {mb / ma:>6.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=24, help="requests per zoom and server")
    ap.add_argument("--keep", type=Path, default=None, help="reuse/keep the store in this dir")
    ap.add_argument("--no-titiler", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory() if args.keep is None else None
    root = Path(tmp.name) if tmp else args.keep
    root.mkdir(parents=True, exist_ok=True)
    store = build_store(root / "bench.zarr")

    results: dict[str, dict[int, list[float]]] = {}
    plans = [("overviews", lambda: ours(store, True)), ("no-overviews", lambda: ours(store, False))]
    if not args.no_titiler:
        plans.append(("titiler.xarray", titiler))
    for name, make in plans:
        with make() as srv:
            if name == "titiler.xarray":
                q = f"url={store}&variable=red&rescale=0,3000&return_mask=true"
                path = "tiles/WebMercatorQuad/{z}/{x}/{y}.png?" + q
            else:
                path = "tiles/true-color/{z}/{x}/{y}.png"

            def url_of(z: int, x: int, y: int, u: str = srv.url, path: str = path) -> str:
                return f"{u}/" + path.format(z=z, x=x, y=y)

            results[name] = {}
            for z in ZOOMS:
                tiles = tiles_for(z, 16)
                run_load(url_of, tiles[:1], 1, 1)  # warm-up (opens the store)
                t0 = time.perf_counter()
                lat = run_load(url_of, tiles, args.clients, args.requests)
                wall = time.perf_counter() - t0
                results[name][z] = lat
                print(
                    f"{name:>15} z{z:<2} p50 {pct(lat, 50):8.1f} ms  p99 {pct(lat, 99):8.1f} ms"
                    f"  {len(lat) / wall:6.1f} tiles/s",
                    flush=True,
                )

    print(
        f"\nWebMercatorQuad 256 px PNG tiles, {args.clients} concurrent clients, "
        f"{args.requests} requests per zoom, loopback"
    )
    head = (
        f"{'zoom':>5} | {'overviews p50/p99 ms':>21} | {'no overviews p50/p99':>21} | "
        f"{'speed-up p50/p99':>17}"
    )
    if "titiler.xarray" in results:
        head += f" | {'titiler.xarray p50/p99 (1 band)':>32} | {'vs ours p50':>11}"
    print(head)
    for z in ZOOMS:
        o, n = results["overviews"][z], results["no-overviews"][z]
        line = (
            f"{z:>5} | {pct(o, 50):9.1f} / {pct(o, 99):9.1f} | "
            f"{pct(n, 50):9.1f} / {pct(n, 99):9.1f}"
            f" | {pct(n, 50) / pct(o, 50):7.1f}x / {pct(n, 99) / pct(o, 99):6.1f}x"
        )
        if "titiler.xarray" in results:
            t = results["titiler.xarray"][z]
            line += f" | {pct(t, 50):14.1f} / {pct(t, 99):14.1f} | {pct(t, 50) / pct(o, 50):10.1f}x"
        print(line)
    in_process(store)
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
