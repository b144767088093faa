"""Reliability of ``s2cube serve`` (issue 15): cells finished while the server runs are served
(and tiles of unfinished cells are never cached for long), ETag + conditional GET, HEAD on every
route, capabilities cached and never built from an arbitrary Host header."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image
from serve_stores import CELL_A, CELL_B, read_cell

CAPS = "/wmts?SERVICE=WMTS&REQUEST=GetCapabilities"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rgba(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGBA"))


def _centre_tile(cell: str, z: int) -> str:
    """The WorldCRS84Quad XYZ path of the tile at a cell's centre (inside the cell at z10)."""
    import morecantile

    from s2cube.grid import Cell, GlobalGrid

    w, s, e, n = GlobalGrid(resolution=1 / 1000, cell_size=0.5).cell_bounds(Cell.from_name(cell))
    t = morecantile.tms.get("WorldCRS84Quad").tile((w + e) / 2, (s + n) / 2, z)
    return f"/tiles/true-color/{z}/{t.x}/{t.y}.png?tms=WorldCRS84Quad"


def _serve(store: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    """``s2cube serve`` as its own process (the CLI, as a user starts it)."""
    cmd = [sys.executable, "-m", "s2cube.cli", "serve", str(store), "--port", str(port)]
    return subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"s2cube serve exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise RuntimeError("s2cube serve did not start in 60 s")


def test_cells_finished_while_serving_are_served(real_store: Path, tmp_path: Path) -> None:
    """Defect 6: a store written in two steps while ``s2cube serve`` runs.  Before the fix the
    manifest was read once at start: cell B, finished later, stayed a transparent tile with
    ``max-age=3600`` while ``/api/point`` already returned its pixels."""
    from s2cube.grid import Cell
    from s2cube.overviews import build_overviews
    from s2cube.store import create_store, store_grid, write_cell

    store = tmp_path / "m.zarr"
    create_store(store, grid=store_grid(real_store))
    write_cell(store, Cell.from_name(CELL_A), read_cell(real_store, CELL_A))
    build_overviews(store)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(store, port, S2CUBE_RELOAD_INTERVAL="0.2", S2CUBE_PENDING_MAX_AGE="5")
    try:
        _wait_up(url, proc)
        tile_a, tile_b = _centre_tile(CELL_A, 10), _centre_tile(CELL_B, 10)
        low = "/tiles/true-color/7/69/45.png"  # Web Mercator z7: both cells, an overview level
        a = requests.get(url + tile_a, timeout=30)
        assert a.headers["cache-control"] == "public, max-age=3600"  # finished: cache long
        assert _rgba(a.content)[..., 3].mean() > 250  # real data: a few nodata pixels
        b = requests.get(url + tile_b, timeout=30)
        assert _rgba(b.content)[..., 3].max() == 0  # not written yet
        assert b.headers["cache-control"] == "public, max-age=5"  # unfinished: short
        etag_b = b.headers["etag"]
        assert requests.get(url + tile_b, headers={"If-None-Match": etag_b}).status_code == 304
        low_before = _rgba(requests.get(url + low, timeout=30).content)

        # step 2, while the server runs: cell B and its overviews
        write_cell(store, Cell.from_name(CELL_B), read_cell(real_store, CELL_B))
        build_overviews(store)

        deadline = time.time() + 20
        while True:
            b2 = requests.get(url + tile_b, headers={"If-None-Match": etag_b}, timeout=30)
            if b2.status_code == 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert b2.status_code == 200, "the server never noticed the finished cell"
        assert b2.headers["etag"] != etag_b
        assert b2.headers["cache-control"] == "public, max-age=3600"
        img = _rgba(b2.content)
        assert img[..., 3].mean() > 250 and img[..., :3].std() > 5
        # the tile and the point query agree: both serve cell B now
        p = requests.get(f"{url}/api/point?lon=16.25&lat=46.25", timeout=30).json()
        assert p["cell"] == CELL_B and p["red"] > 0 and p["date"] is not None
        # the overview level shows B too, and more of the low-zoom tile has data
        low_after = _rgba(requests.get(url + low, timeout=30).content)
        assert (low_after[..., 3] == 255).sum() > (low_before[..., 3] == 255).sum() + 100
        info = requests.get(url + "/api/info", timeout=30).json()
        assert info["cells"] == 2 and info["bounds"] == [15.5, 46.0, 16.5, 46.5]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_cache_control_follows_the_manifest(live) -> None:
    """Inside the mosaicked bbox every cell has a record (empty ones too): long max-age; the
    Pacific has no record and may be mosaicked later: short max-age, at every zoom."""
    import morecantile

    crs84 = morecantile.tms.get("WorldCRS84Quad")
    for z in (8, 10):  # an overview level and level 0, inside the recorded cells
        t = crs84.tile(16.0, 46.25, z)
        path = f"/tiles/provenance/{z}/{t.x}/{t.y}.png?tms=WorldCRS84Quad"
        r = requests.get(live.url + path, timeout=30)
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=3600"
    # the Pacific, the whole globe, and a tile straddling the bbox's southern edge (45.5°)
    for path in (
        "/tiles/true-color/5/1/15.png",
        "/tiles/true-color/0/0/0.png",
        "/tiles/true-color/8/139/90.png",
    ):
        r = requests.get(live.url + path, timeout=30)
        assert r.headers["cache-control"] == "public, max-age=10", path


def test_etag_and_conditional_get(live) -> None:
    tile = f"{live.url}/tiles/true-color/8/139/90.png"
    r = requests.get(tile, timeout=30)
    etag = r.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{24}"', etag)
    assert requests.get(tile, timeout=30).headers["etag"] == etag  # stable
    for header in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        r304 = requests.get(tile, headers={"If-None-Match": header}, timeout=30)
        assert r304.status_code == 304 and r304.content == b"", header
        assert r304.headers["etag"] == etag
    assert requests.get(tile, headers={"If-None-Match": '"other"'}).status_code == 200
    # other format, zoom or layer: other ETags
    tags = {
        requests.get(f"{live.url}{p}", timeout=30).headers["etag"]
        for p in (
            "/tiles/true-color/8/139/90.png",
            "/tiles/true-color/8/139/90.webp",
            "/tiles/false-color/8/139/90.png",
            "/wmts/1.0.0/true-color/default/WebMercatorQuad/8/90/139.png",
        )
    }
    assert len(tags) == 3  # XYZ and REST name the same tile in the same format
    caps = requests.get(live.url + CAPS, timeout=30)
    assert caps.headers["cache-control"] == "no-cache"
    again = requests.get(live.url + CAPS, headers={"If-None-Match": caps.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_head_on_every_get_route(live) -> None:
    from fastapi.routing import APIRoute

    app = live.server.config.app
    routes = [r for r in app.routes if isinstance(r, APIRoute)]
    assert routes and all("HEAD" in r.methods for r in routes if "GET" in r.methods)
    for path in (
        "/",
        "/healthz",
        "/api/info",
        "/api/point?lon=15.95&lat=46.42",
        CAPS,
        "/wmts/1.0.0/WMTSCapabilities.xml",
        "/tiles/true-color/8/139/90.png",
        "/wmts/1.0.0/true-color/default/WebMercatorQuad/8/90/139.jpeg",
        "/static/map.js",
    ):
        get = requests.get(live.url + path, timeout=30)
        head = requests.head(live.url + path, timeout=30)
        assert (get.status_code, head.status_code) == (200, 200), path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]
        assert int(head.headers["content-length"]) == len(get.content), path
    bad = requests.head(live.url + "/tiles/nope/8/139/90.png", timeout=30)
    assert bad.status_code == 400 and bad.content == b""


def test_capabilities_never_echo_the_host_header(real_store: Path) -> None:
    from fastapi.testclient import TestClient

    from s2cube.serve import create_app
    from s2cube.serve.settings import ServeSettings

    evil = {"Host": "evil.example:666"}
    plain = TestClient(create_app(real_store))
    xml = plain.get(CAPS, headers=evil).text
    assert "evil.example" not in xml
    assert 'template="http://testserver/wmts/1.0.0/true-color/' in xml  # the server's own name

    public = TestClient(
        create_app(real_store, ServeSettings(public_url="https://maps.example.org/s2/"))
    )
    xml = public.get(CAPS, headers=evil).text
    assert "evil.example" not in xml and "testserver" not in xml
    assert 'xlink:href="https://maps.example.org/s2/wmts?"' in xml

    listed = TestClient(create_app(real_store, ServeSettings(allowed_hosts=["Maps.Example.org"])))
    ok = listed.get(CAPS, headers={"Host": "maps.example.org"})
    assert "http://maps.example.org/wmts/1.0.0/" in ok.text
    assert "evil.example" not in listed.get(CAPS, headers=evil).text
    # one document per (base URL, store version): ETags differ per base URL
    assert ok.headers["etag"] != listed.get(CAPS, headers=evil).headers["etag"]


def test_bad_public_url_is_a_usage_error(real_store: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "s2cube.cli", "serve", str(real_store)],
        env={**os.environ, "S2CUBE_PUBLIC_URL": "ftp://x?y=1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "S2CUBE_PUBLIC_URL" in proc.stderr and "ftp://x?y=1" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_refresh_swaps_a_consistent_state(real_store: Path, tmp_path: Path) -> None:
    """A reload happens only when a record folder changed, and it swaps one state object."""
    from s2cube.grid import Cell
    from s2cube.serve.tiles import TileSource
    from s2cube.store import create_store, store_grid, write_cell

    store = tmp_path / "m.zarr"
    create_store(store, grid=store_grid(real_store))
    src = TileSource(store, reload_interval=0)
    empty = src.state
    assert empty.cells == () and src.data_window is None
    write_cell(store, Cell.from_name(CELL_A), read_cell(real_store, CELL_A))
    assert src.maybe_refresh() is True
    one = src.state
    assert one is not empty and one.cells == (CELL_A,) and one.version != empty.version
    for key in ("zarr.json", "s2cube_manifest"):  # settled: nothing changed for long
        os.utime(store / key, ns=(1, 1))
    src.refresh()
    assert src.maybe_refresh() is False and src.state.version == one.version


def test_reload_on_object_storage(real_store: Path, s3_bucket: str) -> None:
    """On S3 (moto's server on 127.0.0.1) a check is one listing per record folder: a cell
    written after the source opened is found, and an unchanged store is not re-read."""
    from s2cube.grid import Cell
    from s2cube.serve.tiles import TileSource
    from s2cube.store import create_store, store_grid, write_cell

    url = f"{s3_bucket}/m.zarr"
    create_store(url, grid=store_grid(real_store))
    write_cell(url, Cell.from_name(CELL_A), read_cell(real_store, CELL_A))
    src = TileSource(url, reload_interval=0)
    assert src.cells == [CELL_A] and src.maybe_refresh() is False
    tile = _centre_tile(CELL_B, 10).split("?")[0].split("/")[-3:]
    z, x, y = int(tile[0]), int(tile[1]), int(tile[2].removesuffix(".png"))
    assert not src.tile_complete("true-color", "WorldCRS84Quad", z, x, y)
    write_cell(url, Cell.from_name(CELL_B), read_cell(real_store, CELL_B))
    assert src.maybe_refresh() is True and src.cells == [CELL_A, CELL_B]
    assert src.tile_complete("true-color", "WorldCRS84Quad", z, x, y)
    assert src.tile("true-color", "WorldCRS84Quad", z, x, y)[..., 3].mean() > 250
