"""The WMTS/XYZ service against real clients (OWSLib, GDAL's WMTS driver) on a live server,
serving a store made by the real pipeline (with overviews)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from s2cube.render import tone_curve

CAPS = "/wmts?SERVICE=WMTS&REQUEST=GetCapabilities"


def _png(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGBA"))


def _store_rgb(store: Path, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest store pixels (level 0) at pixel centres, through the global tone curve."""
    import zarr

    g = zarr.open_group(str(store), mode="r")
    res = 1 / 1000
    rows = np.floor((90 - lat) / res).astype(int)
    cols = np.floor((lon + 180) / res).astype(int)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    bands = [
        np.asarray(g[b][r0:r1, c0:c1])[np.ix_(rows - r0, cols - c0)]
        for b in ("red", "green", "blue")
    ]
    valid = (bands[0] > 0) | (bands[1] > 0) | (bands[2] > 0)
    return np.stack([tone_curve(b) for b in bands]), valid


def test_owslib_reads_capabilities_and_tiles(live) -> None:
    from owslib.wmts import WebMapTileService

    wmts = WebMapTileService(live.url + CAPS)
    assert {"true-color", "false-color", "provenance"} <= set(wmts.contents)
    assert {"WebMercatorQuad", "WorldCRS84Quad"} <= set(wmts.tilematrixsets)
    layer = wmts["true-color"]
    assert {"image/png", "image/jpeg", "image/webp"} <= set(layer.formats)
    w, s, e, n = layer.boundingBoxWGS84
    assert w <= 15.5 and e >= 16.4 and s <= 46.0 and n >= 46.8
    for tms, fmt in (("WebMercatorQuad", "image/png"), ("WorldCRS84Quad", "image/jpeg")):
        limits = layer.tilematrixsetlinks[tms].tilematrixlimits["8"]
        row = (limits.mintilerow + limits.maxtilerow) // 2
        col = (limits.mintilecol + limits.maxtilecol) // 2
        tile = wmts.gettile(
            layer="true-color", tilematrixset=tms, tilematrix="8", row=row, column=col, format=fmt
        )
        img = np.asarray(Image.open(io.BytesIO(tile.read())))
        assert img.shape[:2] == (256, 256)
        assert img[..., :3].std() > 5, f"{tms} tile is blank"
    # REST: the ResourceURL template from the capabilities works too
    tmpl = next(u for u in layer.resourceURLs if u["format"] == "image/webp")["template"]
    url = (
        tmpl.replace("{Style}", "default")
        .replace("{TileMatrixSet}", "WebMercatorQuad")
        .replace("{TileMatrix}", "8")
        .replace("{TileRow}", str(90))
        .replace("{TileCol}", str(139))
    )
    r = requests.get(url, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    assert _png(r.content)[..., 3].max() == 255


@pytest.mark.parametrize("tms", ["WorldCRS84Quad", "WebMercatorQuad"])
def test_gdal_wmts_driver_pixels_match_store(live, real_store: Path, tms: str) -> None:
    import rasterio
    from rasterio.windows import Window

    url = f"WMTS:{live.url}{CAPS},layer=true-color,tilematrixset={tms}"
    with rasterio.open(url) as ds:
        assert ds.count == 4
        win = Window(ds.width // 2 - 150, ds.height // 2 - 120, 300, 240)
        got = ds.read(window=win)
        t = ds.window_transform(win)
        xs = t.c + (np.arange(300) + 0.5) * t.a
        ys = t.f + (np.arange(240) + 0.5) * t.e
        crs = ds.crs
    if tms == "WebMercatorQuad":
        assert crs.to_epsg() == 3857
        lon = np.degrees(xs / 6378137.0)
        lat = np.degrees(np.arctan(np.sinh(ys / 6378137.0)))
    else:
        lon, lat = xs, ys
    want, valid = _store_rgb(real_store, lon, lat)
    assert valid.mean() > 0.5
    np.testing.assert_array_equal(got[3] == 255, valid)
    same = np.all(got[:3] == want, axis=0)[valid]
    # pixel centres that fall within 1e-9 of a source pixel edge may round either way
    assert same.mean() > 0.995, f"only {same.mean():.4f} of pixels match the store"


def test_gdal_reads_overview_region(live) -> None:
    import rasterio

    with rasterio.open(
        f"WMTS:{live.url}{CAPS},layer=false-color,tilematrixset=WebMercatorQuad"
    ) as ds:
        small = ds.read(out_shape=(4, ds.height // 16, ds.width // 16))
    assert small[3].mean() > 100 and small[:3, small[3] > 0].std() > 5


def test_formats_transparency_and_layers(live) -> None:
    z, x, y = 7, 69, 45
    for layer in ("true-color", "false-color", "true-color-tci", "provenance"):
        r = requests.get(f"{live.url}/tiles/{layer}/{z}/{x}/{y}.png", timeout=30)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        img = _png(r.content)
        assert img[..., 3].max() == 255 and img[..., 3].min() == 0  # data and transparent edge
    r = requests.get(f"{live.url}/tiles/true-color/{z}/{x}/{y}.jpeg", timeout=30)
    assert r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).format == "JPEG"
    # an empty area (Pacific) is fully transparent, in both tile matrix sets
    for url in ("/tiles/true-color/5/1/15.png", "/tiles/true-color/5/1/10.png?tms=WorldCRS84Quad"):
        r = requests.get(live.url + url, timeout=30)
        assert r.status_code == 200 and _png(r.content)[..., 3].max() == 0


def test_provenance_point_and_feature_info(live, real_store: Path) -> None:
    import s2cube

    lon, lat = 15.95, 46.42
    p = requests.get(f"{live.url}/api/point?lon={lon}&lat={lat}", timeout=30).json()
    ds = s2cube.open_store(real_store)
    want = ds["date"].sel(latitude=lat, longitude=lon, method="nearest").values
    assert p["date"] == str(want.astype("datetime64[D]"))
    assert p["scene_id"].startswith("S2") and p["red"] > 0
    # the same through WMTS GetFeatureInfo (pixel I, J of a tile)
    import morecantile

    tms = morecantile.tms.get("WorldCRS84Quad")
    t = tms.tile(lon, lat, 9)
    b = tms.bounds(t)
    i = int((lon - b.left) / (b.right - b.left) * 256)
    j = int((b.top - lat) / (b.top - b.bottom) * 256)
    r = requests.get(
        f"{live.url}/wmts?SERVICE=WMTS&REQUEST=GetFeatureInfo&VERSION=1.0.0&LAYER="
        f"provenance&STYLE=default&TILEMATRIXSET=WorldCRS84Quad&TILEMATRIX=9&TILEROW="
        f"{t.y}&TILECOL={t.x}&FORMAT=image/png&INFOFORMAT=application/json&I={i}&J={j}",
        timeout=30,
    )
    assert r.status_code == 200 and r.json()["date"] == p["date"]


BAD = [
    ("/tiles/nope/8/139/90.png", 400, "unknown layer"),
    ("/tiles/true-color/8/999/89.png", 400, "TileCol 999 is outside"),
    ("/tiles/true-color/30/1/1.png", 400, "TileMatrix 30 is outside"),
    ("/tiles/true-color/8/-1/89.png", 400, "outside"),
    ("/tiles/true-color/x/1/1.png", 400, "not an integer"),
    ("/tiles/true-color/8/139/90.gif", 400, "unknown image format"),
    ("/tiles/true-color/8/139/90.png?tms=Foo", 400, "unknown tms"),
    (
        "/wmts?SERVICE=WMTS&REQUEST=GetTile&LAYER=true-color&TILEMATRIXSET=WebMercatorQuad"
        "&TILEMATRIX=8&TILEROW=90",
        400,
        "TILECOL is missing",
    ),
    (
        "/wmts?SERVICE=WMTS&REQUEST=GetTile&LAYER=../../zarr.json&TILEMATRIXSET=WebMercatorQuad"
        "&TILEMATRIX=8&TILEROW=90&TILECOL=139",
        400,
        "unknown layer",
    ),
    (
        "/wmts?SERVICE=WMTS&REQUEST=GetTile&LAYER=true-color&TILEMATRIXSET=WebMercatorQuad"
        "&TILEMATRIX=8&TILEROW=1e3&TILECOL=139&FORMAT=image/png",
        400,
        "not an integer",
    ),
    (
        "/wmts?SERVICE=WMTS&REQUEST=GetTile&LAYER=true-color&TILEMATRIXSET=WebMercatorQuad"
        "&TILEMATRIX=8&TILEROW=90&TILECOL=139&FORMAT=image/tiff",
        400,
        "is not offered",
    ),
    ("/wmts?SERVICE=WMS&REQUEST=GetCapabilities", 400, "use SERVICE=WMTS"),
    ("/wmts?SERVICE=WMTS&REQUEST=DeleteEverything", 400, "not supported"),
    ("/wmts?SERVICE=WMTS", 400, "REQUEST is missing"),
    ("/wmts/1.0.0/true-color/default/WebMercatorQuad/8/90/139.bmp", 400, "unknown image format"),
    ("/wmts/1.0.0/true-color/fancy/WebMercatorQuad/8/90/139.png", 400, "unknown style"),
    ("/api/point?lon=nan&lat=46", 400, "not finite"),
    ("/api/point?lon=200&lat=46", 400, "outside"),
    ("/static/../zarr.json", 404, "no such resource"),
    ("/static/..%2f..%2fzarr.json", 404, "no such resource"),
    ("/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 404, "no such resource"),
    (
        "/wmts/1.0.0/..%2f..%2fzarr.json/default/WebMercatorQuad/8/90/139.png",
        404,
        "no such resource",
    ),
    (
        "/wmts/1.0.0/..%252f..%252fzarr.json/default/WebMercatorQuad/8/90/139.png",
        400,
        "unknown layer",
    ),
]


@pytest.mark.parametrize(("path", "status", "message"), BAD, ids=[b[0][:60] for b in BAD])
def test_bad_requests_get_4xx_and_server_keeps_serving(
    live, path: str, status: int, message: str
) -> None:
    r = requests.get(live.url + path, timeout=30)
    assert r.status_code == status, r.text
    assert message in r.text
    if path.startswith("/wmts"):
        assert "ExceptionReport" in r.text
    ok = requests.get(f"{live.url}/tiles/true-color/8/139/90.png", timeout=30)
    assert ok.status_code == 200


def test_raw_socket_traversal(live) -> None:
    """Path traversal sent raw (no client-side normalisation) never leaves the static dir."""
    import socket

    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(
            b"GET /static/../../../zarr.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.split(b" ")[1] in (b"400", b"404")
    assert b"s2cube-mosaic" not in data


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, real_store: Path) -> None:
    from fastapi.testclient import TestClient

    from s2cube.serve import create_app
    from s2cube.serve.settings import ServeSettings

    monkeypatch.setenv("S2CUBE_STORE", str(real_store))
    monkeypatch.setenv("S2CUBE_PORT", "9123")
    monkeypatch.setenv("S2CUBE_USE_OVERVIEWS", "false")
    monkeypatch.setenv("S2CUBE_TITLE", "My mosaic")
    s = ServeSettings()
    assert (s.port, s.use_overviews, s.store) == (9123, False, str(real_store))
    client = TestClient(create_app(settings=s))
    info = client.get("/api/info").json()
    assert info["overviews"] is False and info["levels"] == 1
    assert "My mosaic" in client.get(CAPS).text
    assert math.isclose(info["bounds"][0], 15.0)


def test_cli_commands(real_store: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from s2cube.chips import chips_command
    from s2cube.serve.cli import overviews, serve

    runner = CliRunner()
    r = runner.invoke(overviews, [str(real_store)])
    assert r.exit_code == 0, r.output
    assert "up to date: nothing to build" in r.output  # already built, said in words
    r = runner.invoke(overviews, [str(real_store), "--json"])
    assert r.exit_code == 0 and json.loads(r.output) == {"cells": [], "coarse_chunks": {}}
    r = runner.invoke(serve, ["--help"])
    assert r.exit_code == 0 and "S2CUBE_" in r.output
    r = runner.invoke(
        chips_command,
        [str(real_store), "--cell", "r0087c0391", "--size", "128", "--out", str(tmp_path / "c")],
    )
    assert r.exit_code == 0, r.output
    assert "16 chips" in r.output  # 500 px at 128 px, edge=pad: 4 x 4
    r = runner.invoke(chips_command, [str(real_store), "--out", str(tmp_path / "d")])
    assert r.exit_code != 0 and "cell=" in r.output


# --------------------------------------------------------------------------- super-resolution
SR_LAYER = "superres-x4"


def test_superres_layer_in_capabilities_and_tiles(live_sr, sr_store: Path) -> None:
    """The nested ×4 product (``STORE/superres/x4``) is a layer of its own: in the
    capabilities (OWSLib), KVP, REST and XYZ, at its own zooms, with the mosaic's tone curve."""
    import morecantile
    import zarr
    from owslib.wmts import WebMapTileService

    wmts = WebMapTileService(live_sr.url + CAPS)
    assert {"true-color", SR_LAYER} <= set(wmts.contents)
    layer = wmts[SR_LAYER]
    assert "Super-resolution" in layer.title
    assert layer.boundingBoxWGS84 == (15.5, 46.0, 16.5, 46.5)  # the two SR cells only
    assert max(int(z) for z in layer.tilematrixsetlinks["WebMercatorQuad"].tilematrixlimits) == 13
    info = requests.get(live_sr.url + "/api/info", timeout=30).json()
    assert info["layers"][SR_LAYER]["maxzoom"] == {"WebMercatorQuad": 13, "WorldCRS84Quad": 12}
    assert info["layers"]["true-color"]["maxzoom"]["WebMercatorQuad"] == 11
    assert info["superres"][SR_LAYER]["scale"] == 4
    assert info["superres"][SR_LAYER]["resolution_deg"] == "1/4000"

    # the SR layer's pixels at its native zoom == the product's pixels, nearest, through the
    # mosaic's tone curve
    lon0, lat0, z = 16.02, 46.31, 12
    t = morecantile.tms.get("WorldCRS84Quad").tile(lon0, lat0, z)
    tile = wmts.gettile(
        layer=SR_LAYER,
        tilematrixset="WorldCRS84Quad",
        tilematrix=str(z),
        row=t.y,
        column=t.x,
        format="image/png",
    ).read()
    got = _png(tile)
    b = morecantile.tms.get("WorldCRS84Quad").bounds(t)
    lon = b.left + (np.arange(256) + 0.5) * (b.right - b.left) / 256
    lat = b.top - (np.arange(256) + 0.5) * (b.top - b.bottom) / 256
    g = zarr.open_group(str(sr_store / "superres" / "x4"), mode="r")
    rows = np.floor((90 - lat) * 4000).astype(int)
    cols = np.floor((lon + 180) * 4000).astype(int)
    r0, c0 = rows.min(), cols.min()
    want = np.stack(
        [
            tone_curve(np.asarray(g[v][r0 : rows.max() + 1, c0 : cols.max() + 1]))[
                np.ix_(rows - r0, cols - c0)
            ]
            for v in ("red", "green", "blue")
        ],
        axis=-1,
    )
    same = np.all(got[..., :3] == want, axis=-1)
    assert got[..., 3].mean() > 250 and same.mean() > 0.995, same.mean()
    # one output pixel of checkerboard: detail the 10 m layer does not have
    assert np.abs(np.diff(got[..., 0].astype(int), axis=1)).mean() > 5

    # KVP, REST and XYZ name the same tile; the 10 m layer is served (nearest) at z13 too,
    # since WMTS clients read a layer at the finest matrix of the set
    kvp = (
        f"/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER={SR_LAYER}&STYLE=default"
        f"&TILEMATRIXSET=WorldCRS84Quad&TILEMATRIX={z}&TILEROW={t.y}&TILECOL={t.x}"
        "&FORMAT=image/png"
    )
    for path in (
        kvp,
        f"/wmts/1.0.0/{SR_LAYER}/default/WorldCRS84Quad/{z}/{t.y}/{t.x}.png",
        f"/tiles/{SR_LAYER}/{z}/{t.x}/{t.y}.png?tms=WorldCRS84Quad",
    ):
        r = requests.get(live_sr.url + path, timeout=30)
        assert r.status_code == 200 and r.content == tile, path
    base = requests.get(
        f"{live_sr.url}/tiles/true-color/{z}/{t.x}/{t.y}.png?tms=WorldCRS84Quad", timeout=30
    )
    assert base.status_code == 200 and base.content != tile
    assert requests.get(f"{live_sr.url}/tiles/{SR_LAYER}/14/0/0.png").status_code == 400

    # the point query answers from the product when asked for the layer
    p10 = requests.get(f"{live_sr.url}/api/point?lon={lon0}&lat={lat0}", timeout=30).json()
    psr = requests.get(
        f"{live_sr.url}/api/point?lon={lon0}&lat={lat0}&layer={SR_LAYER}", timeout=30
    ).json()
    assert psr["date"] == p10["date"] and psr["scene_id"] == p10["scene_id"]
    assert psr["row"] // 4 == p10["row"] and psr["red"] in (
        int(np.clip(p10["red"] * 1.2, 1, 65535)),
        int(np.clip(p10["red"] * 0.8, 1, 65535)),
    )


def test_gdal_reads_every_layer_of_a_service_with_superres(live_sr) -> None:
    import rasterio
    from rasterio.windows import Window

    for layer in ("true-color", SR_LAYER):
        url = f"WMTS:{live_sr.url}{CAPS},layer={layer},tilematrixset=WebMercatorQuad"
        with rasterio.open(url) as ds:
            img = ds.read(window=Window(ds.width // 2 - 64, ds.height // 2 - 64, 128, 128))
        assert img[3].mean() > 200 and img[:3].std() > 5, layer
