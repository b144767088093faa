"""Load on ``s2cube serve``: 50 concurrent clients on 127.0.0.1 against a real server process.

    python tests/benchmarks/bench_serve_load.py [--clients 50] [--seconds 15] [--store PATH]

The server is ``s2cube.serve.run`` (uvicorn) in its own process, serving a synthetic store
(2×2 half-degree cells at 1/2000°, written through ``write_cell``, with overviews; or
``--store``).  Every client is a thread with its own keep-alive session, and draws each request
from one fixed mix:

* 40 % hot tiles: 24 tiles at zooms 7-10 (overview levels), requested again and again;
* 20 % cold tiles: tiles at zooms 11-12 (level 0 and the first overview) taken in turn from a
  list of every tile of the store, so most are read for the first time;
* 10 % revalidations: a hot tile with its ``If-None-Match`` (answer: 304, no read);
* 10 % capabilities (cached per store version), 20 % point queries.

The same mix runs first with 1 client (the baseline), then with N, for a fixed time each; it
prints p50/p99 latency per kind and overall, requests/s, errors (anything but 200/304, and
exceptions) and the server's RSS (psutil) before and after, and the N-vs-1 ratios.  Bounded:
about 45 s in all with the defaults.
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
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "serve"))

BBOX = (15.0, 45.5, 16.0, 46.5)
CAPS = "/wmts?SERVICE=WMTS&REQUEST=GetCapabilities"
MIX = (("hot", 40), ("cold", 20), ("revalidate", 10), ("capabilities", 10), ("point", 20))


def build_store(path: Path) -> Path:
    from synthetic import make_synthetic_store

    from s2cube.grid import GlobalGrid
    from s2cube.overviews import build_overviews

    grid = GlobalGrid(resolution="1/2000", cell_size="1/2", chunk_size=250)
    t = time.perf_counter()
    make_synthetic_store(path, grid, grid.cells_in_bbox(BBOX))
    build_overviews(path)
    print(f"store: {len(grid.cells_in_bbox(BBOX))} cells written + overviews in "
          f"{time.perf_counter() - t:.1f} s")  # fmt: skip
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(store: Path, port: int) -> subprocess.Popen[bytes]:
    import requests

    code = (
        "from s2cube.serve import run; "
        f"run({str(store)!r}, '127.0.0.1', {port}, log_level='warning')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok:
                return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def tiles_of(bbox: tuple[float, float, float, float], zooms: range) -> list[str]:
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    return [
        f"/tiles/true-color/{t.z}/{t.x}/{t.y}.png"
        for z in zooms
        for t in tms.tiles(*bbox, zooms=[z])
    ]


class Workload:
    """The request mix; ``next_cold`` hands every client the next unread tile."""

    def __init__(self, url: str) -> None:
        import requests

        self.url = url
        hot = tiles_of(BBOX, range(7, 11))
        self.hot = hot[:: max(len(hot) // 24, 1)][:24]
        self.cold = tiles_of(BBOX, range(11, 13))
        self._cold_i = 0
        self._lock = threading.Lock()
        self.etags = {p: requests.get(url + p, timeout=60).headers["etag"] for p in self.hot}

    def next_cold(self) -> str:
        with self._lock:
            path = self.cold[self._cold_i % len(self.cold)]
            self._cold_i += 1
        return path

    def request(self, kind: str, rng: object) -> tuple[str, dict[str, str], tuple[int, ...]]:
        import random

        assert isinstance(rng, random.Random)
        if kind == "hot":
            return rng.choice(self.hot), {}, (200,)
        if kind == "cold":
            return self.next_cold(), {}, (200,)
        if kind == "revalidate":
            p = rng.choice(self.hot)
            return p, {"If-None-Match": self.etags[p]}, (304,)
        if kind == "capabilities":
            return CAPS, {}, (200,)
        lon = rng.uniform(BBOX[0], BBOX[2])
        lat = rng.uniform(BBOX[1], BBOX[3])
        return f"/api/point?lon={lon:.5f}&lat={lat:.5f}", {}, (200,)


def run_load(work: Workload, clients: int, seconds: float, seed: int) -> dict[str, object]:
    import random

    import requests

    kinds = [k for k, w in MIX for _ in range(w)]
    lat: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    done = threading.Event()
    lock = threading.Lock()

    def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        s = requests.Session()
        while not done.is_set():
            kind = rng.choice(kinds)
            path, headers, ok = work.request(kind, rng)
            t0 = time.perf_counter()
            try:
                r = s.get(work.url + path, headers=headers, timeout=60)
                status, _ = r.status_code, r.content
            except requests.RequestException as exc:
                with lock:
                    errors.append(f"{kind}: {type(exc).__name__}")
                continue
            dt = time.perf_counter() - t0
            with lock:
                lat[kind].append(dt)
                if status not in ok:
                    errors.append(f"{kind}: HTTP {status}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    done.set()
    for t in threads:
        t.join(timeout=120)
    wall = time.perf_counter() - t0
    return {"lat": lat, "errors": errors, "wall": wall}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


def report(name: str, res: dict[str, object]) -> dict[str, float]:
    lat = res["lat"]
    assert isinstance(lat, dict)
    every = [v for vs in lat.values() for v in vs]
    wall = float(res["wall"])  # type: ignore[arg-type]
    errors = res["errors"]
    assert isinstance(errors, list)
    print(f"\n{name}: {len(every)} requests in {wall:.1f} s = {len(every) / wall:.1f} req/s, "
          f"errors {len(errors)}" + (f" (first: {errors[:3]})" if errors else ""))  # fmt: skip
    print(f"  {'kind':<13}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>8}")
    for kind, _ in MIX:
        vs = lat.get(kind, [])
        print(f"  {kind:<13}{len(vs):>6}{pct(vs, 50) * 1e3:>9.1f}{pct(vs, 99) * 1e3:>9.1f}"
              f"{len(vs) / wall:>8.1f}")  # fmt: skip
    print(f"  {'all':<13}{len(every):>6}{pct(every, 50) * 1e3:>9.1f}{pct(every, 99) * 1e3:>9.1f}"
          f"{len(every) / wall:>8.1f}")  # fmt: skip
    return {"p50": pct(every, 50), "p99": pct(every, 99), "rps": len(every) / wall}


def capabilities_build_ms(store: Path) -> float:
    """What one uncached GetCapabilities costs: the document built in-process, median of 5."""
    from s2cube.serve.tiles import TileSource
    from s2cube.serve.wmts import capabilities_xml

    src = TileSource(store)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        capabilities_xml(src, "http://127.0.0.1")
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--baseline-seconds", type=float, default=8.0)
    ap.add_argument("--store", type=Path, default=None, help="serve this store instead")
    args = ap.parse_args()

    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or build_store(Path(tmp) / "load.zarr")
        port = free_port()
        proc = start_server(store, port)
        try:
            server = psutil.Process(proc.pid)
            url = f"http://127.0.0.1:{port}"
            work = Workload(url)
            print(f"server pid {proc.pid}; {len(work.hot)} hot tiles, {len(work.cold)} cold "
                  f"tiles; {os.cpu_count()} CPUs on this machine")  # fmt: skip
            rss0 = server.memory_info().rss
            base = report("baseline, 1 client", run_load(work, 1, args.baseline_seconds, 1))
            rss1 = server.memory_info().rss
            load = report(
                f"load, {args.clients} clients", run_load(work, args.clients, args.seconds, 2)
            )
            rss2 = server.memory_info().rss
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        caps_ms = capabilities_build_ms(store)
    mib = 1 / 2**20
    grew = (rss2 - rss1) * mib
    print(f"\nserver RSS: {rss0 * mib:.0f} MiB at start, {rss1 * mib:.0f} MiB after the "
          f"baseline, {rss2 * mib:.0f} MiB after the load (+{grew:.0f} MiB)")  # fmt: skip
    p50, p99, rps = (load[k] / base[k] for k in ("p50", "p99", "rps"))
    print(f"ratios {args.clients} clients vs 1: p50 x{p50:.1f}, p99 x{p99:.1f}, "
          f"throughput x{rps:.2f}")  # fmt: skip
    print(
        f"one uncached capabilities document: {caps_ms:.0f} ms to build in-process "
        "(the server builds it once per store version and base URL)"
    )


if __name__ == "__main__":
    main()
