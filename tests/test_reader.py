"""The raster edge: failed-read policy over real GDAL HTTP reads, and warped reads vs rasterio.

A local HTTP server (``http.server`` in a thread, on 127.0.0.1, with byte ranges as GDAL's
/vsicurl/ needs) serves COGs under three prefixes: ``/ok/`` (the file), ``/fail/`` (HTTP 500 for
every request) and ``/flaky/`` (the header, then HTTP 500 for every later range: the failure
arrives in the middle of a pixel read).
"""

from __future__ import annotations

import functools
import http.server
import io
import pickle
import re
import threading
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT

from s2cube.cube import load
from s2cube.grid import GlobalGrid
from s2cube.reader import (
    PolicyRioReader,
    RasterReadError,
    ReadFailureWarning,
    ReadPolicy,
    lonlat_geobox,
    read_warped,
)
from s2cube.search import search

GRID = GlobalGrid(resolution=Fraction(1, 1000), cell_size=Fraction(1, 2), chunk_size=125)
#: GDAL's /vsicurl/ reads the first 16 KiB of a file to open it
HEADER_BYTES = 16384


@pytest.fixture(autouse=True)
def _short_backoff() -> Iterator[None]:
    """The read policy's retries with a 10 ms first backoff (default 0.25 s): the retry
    paths run the same, the suite waits less."""
    import dask

    from s2cube.reader.policy import BACKOFF_KEY

    with dask.config.set({BACKOFF_KEY: 0.01}):
        yield


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Files with byte ranges; ``/fail/...`` → 500, ``/flaky/...`` → 500 after the header."""

    def send_head(self) -> io.BytesIO | None:  # type: ignore[override]
        mode, _, rest = self.path.lstrip("/").partition("/")
        path = Path(self.translate_path("/" + rest))
        byte_range = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start = int(byte_range.group(1)) if byte_range else 0
        if mode == "fail" or (mode == "flaky" and start >= HEADER_BYTES):
            self.send_error(500, "injected failure")
            return None
        if mode not in ("ok", "flaky") or not path.is_file():
            self.send_error(404)
            return None
        data = path.read_bytes()
        if byte_range:
            stop = int(byte_range.group(2) or len(data) - 1)
            body = data[start : stop + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(body)

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``(base URL, served directory)``."""
    root = tmp_path_factory.mktemp("served")
    handler = functools.partial(_Handler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        thread.join()


@pytest.fixture(scope="module")
def cog(server: tuple[str, Path]) -> str:
    """A 10 m UTM COG (incompressible pixels, so its tiles lie past the header) with overviews."""
    _, root = server
    path = root / "B04.tif"
    rng = np.random.default_rng(0)
    data = rng.integers(1, 10_000, (1, 1024, 1024), dtype="uint16")
    data[:, :, :40] = 0  # a nodata edge
    profile = dict(
        driver="COG",
        width=1024,
        height=1024,
        count=1,
        dtype="uint16",
        nodata=0,
        crs="EPSG:32633",
        transform=from_origin(499980, 5100000, 10, 10),
        overview_resampling="nearest",
        blocksize=256,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    assert path.stat().st_size > 4 * HEADER_BYTES
    return path.name


def _url(server: tuple[str, Path], mode: str, name: str, token: str) -> str:
    # a token per test keeps GDAL's per-URL caches from carrying state between tests
    return f"{server[0]}/{mode}/{name}?t={token}"


def _lonlat_target(href: str, step: int) -> object:
    """An EPSG:4326 look over the middle of ``href`` at about ``step`` source pixels each."""
    with rasterio.open(href) as src:
        from rasterio.warp import transform_bounds

        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    pad = (east - west) / 8
    bounds = (west + pad, south + pad, east - pad, north - pad)
    n = max(1, int(1024 * 0.75 / step))
    return lonlat_geobox(bounds, (n, n))


# --------------------------------------------------------------------------- read_warped
def test_read_warped_equals_a_direct_rasterio_read(server, cog):
    """On the asset's own grid nearest is the pixels themselves; elsewhere, rasterio's warp."""
    from odc.geo.geobox import GeoBox

    _, root = server
    local = str(root / cog)
    with rasterio.open(local) as src:
        window = rasterio.windows.Window(100, 200, 300, 250)
        direct = src.read(1, window=window)
        own = GeoBox((250, 300), src.window_transform(window), src.crs)
    np.testing.assert_array_equal(read_warped(local, own), direct)
    # the same over HTTP
    url = _url(server, "ok", cog, "own")
    np.testing.assert_array_equal(read_warped(url, own), direct)

    # onto a lon/lat window: the same pixels as a WarpedVRT of the same target
    target = _lonlat_target(local, step=1)
    want = _vrt_read(local, target, "NONE")
    got = read_warped(local, target)
    assert got.shape == want.shape and (got > 0).mean() > 0.5
    np.testing.assert_array_equal(got, want)


def test_read_warped_on_a_grid_window(server, cog):
    """A :class:`~s2cube.grid.Window` is a target as it stands (EPSG:4326, its transform)."""
    _, root = server
    local = str(root / cog)
    grid = GlobalGrid(resolution=Fraction(1, 12000), cell_size=Fraction(1, 4))
    with rasterio.open(local) as src:
        from rasterio.warp import transform_bounds

        west, south, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    window = grid.window_of_bbox((west, south, east, north)).pad(-20)
    with (
        rasterio.open(local, OVERVIEW_LEVEL="NONE") as src,
        WarpedVRT(
            src,
            crs="EPSG:4326",
            transform=window.transform,
            width=window.width,
            height=window.height,
            resampling=Resampling.nearest,
            src_nodata=0,
            nodata=0,
        ) as vrt,
    ):
        want = vrt.read(1)
    np.testing.assert_array_equal(read_warped(local, window), want)


def test_overview_auto_picks_the_coarsest_overview_still_fine_enough(server, cog):
    _, root = server
    local = str(root / cog)
    with rasterio.open(local) as src:
        assert src.overviews(1)[:2] == [2, 4]
    # look pixels of ~45 m over 10 m pixels: overview ×4 (level 1) is the coarsest ≤ 45 m
    target = _lonlat_target(local, step=4.5)
    want = _vrt_read(local, target, 1)
    np.testing.assert_array_equal(read_warped(local, target, overview="auto"), want)
    assert not np.array_equal(read_warped(local, target), want)  # full resolution differs


@pytest.mark.parametrize("mode", ["fail", "flaky"])
def test_read_warped_turns_a_transient_http_failure_into_nodata(server, cog, mode):
    """HTTP 500 on open (``fail``) or in the middle of the pixel read (``flaky``)."""
    url = _url(server, mode, cog, f"warped-{mode}")
    target = _lonlat_target(str(server[1] / cog), step=2)
    with pytest.warns(ReadFailureWarning) as record:
        got = read_warped(url, target, dtype="uint16")
    assert got.shape == tuple(target.shape) and got.dtype == np.uint16
    assert (got == 0).all()
    (warning,) = [w.message for w in record if isinstance(w.message, ReadFailureWarning)]
    assert isinstance(warning, ReadFailureWarning)
    assert warning.href == url and url in str(warning) and "strict=True" in str(warning)

    with pytest.raises(RasterReadError, match=re.escape(url)):
        read_warped(url, target, strict=True)


def test_a_missing_asset_is_not_transient(server, cog):
    """Only known transient failures become nodata: a 404 is an error even when not strict."""
    url = _url(server, "ok", "missing.tif", "404")
    target = _lonlat_target(str(server[1] / cog), step=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        with pytest.raises(RasterReadError, match="missing.tif") as info:
            read_warped(url, target)
    assert not [w for w in record if issubclass(w.category, ReadFailureWarning)]
    assert isinstance(info.value, OSError)  # S2CubeError with the builtin mix-in


def test_policy_classifies_errors():
    policy = ReadPolicy()
    assert policy.is_transient(OSError("HTTP response code: 503"), "https://h/a.tif")
    assert policy.is_transient(OSError("Operation timed out after 30000 ms"), "/vsis3/b/a.tif")
    assert not policy.is_transient(OSError("HTTP response code: 404"), "https://h/a.tif")
    short = OSError("TIFFFillTile:Read error at row 0, col 0, tile 3; got 0 bytes, expected 716932")
    assert policy.is_transient(short, "https://h/a.tif")
    assert not policy.is_transient(short, "/data/a.tif")  # a truncated local file is broken
    # the GDAL message may be a cause of rasterio's error
    wrapped = OSError("Read failed. See previous exception for details.")
    wrapped.__cause__ = OSError("HTTP response code: 502")
    assert policy.is_transient(wrapped, "https://h/a.tif")
    with pytest.raises(RasterReadError, match="retry later"):
        ReadPolicy(strict=True).handle("https://h/a.tif", OSError("HTTP response code: 503"))


# --------------------------------------------------------------------------- lazy stacks
@pytest.fixture(scope="module")
def real_items(real_catalog: Path) -> list:
    return search(real_catalog)


def _with_broken_red(items: list, url: str) -> list:
    """The items with the first one's red asset pointing at ``url``."""
    broken = [it.clone() for it in items]
    broken[0].assets["red"].href = url
    return broken


@pytest.mark.parametrize("mode", ["fail", "flaky"])
def test_a_transient_failure_in_a_cube_warns_and_gives_nodata(real_items, server, mode):
    """A real GDAL HTTP read of one asset fails: that asset is nodata, named in the warning."""
    _, root = server
    cell = GRID.cell_of(15.9, 46.1)
    items = real_items[:3]
    red = Path(items[0].assets["red"].href)
    (root / red.name).write_bytes(red.read_bytes())
    url = _url(server, mode, red.name, f"cube-{mode}")
    good = load(items, cell, grid=GRID, halo=2).compute(scheduler="sync")
    cube = load(_with_broken_red(items, url), cell, grid=GRID, halo=2)
    with pytest.warns(ReadFailureWarning) as record:
        got = cube.compute(scheduler="sync")
    hrefs = {w.message.href for w in record if isinstance(w.message, ReadFailureWarning)}
    assert hrefs == {url}
    assert (good.isel(time=0).sel(band="red") > 0).any()
    assert (got.isel(time=0).sel(band="red") == 0).all()
    # nothing else changed: the scene's other bands, and the other scenes
    np.testing.assert_array_equal(
        got.isel(time=0).drop_sel(band="red").values, good.isel(time=0).drop_sel(band="red").values
    )
    np.testing.assert_array_equal(
        got.isel(time=slice(1, None)).values, good.isel(time=slice(1, None)).values
    )

    strict = load(_with_broken_red(items, url), cell, grid=GRID, halo=2, strict=True)
    with pytest.raises(RasterReadError, match=re.escape(url)):
        strict.compute(scheduler="sync")


def test_the_reader_travels_to_workers(real_items):
    """Readers pickle (distributed workers) with their policy; graphs hash stably."""
    cell = GRID.cell_of(15.9, 46.1)
    a = load(real_items[:2], cell, grid=GRID)
    b = load(real_items[:2], cell, grid=GRID)
    assert a.data.name == b.data.name
    assert a.data.name != load(real_items[:2], cell, grid=GRID, strict=True).data.name

    href = real_items[0].assets["red"].href
    with rasterio.open(href) as src:
        spec_window = rasterio.windows.Window(0, 0, 64, 32)
        want = src.read(1, window=spec_window)
    from stackstac.raster_spec import RasterSpec

    with rasterio.open(href) as src:
        spec = RasterSpec(
            epsg=src.crs.to_epsg(),
            bounds=tuple(src.bounds),
            resolutions_xy=(src.res[0], src.res[1]),
        )
    reader = PolicyRioReader(
        url=href,
        spec=spec,
        resampling=Resampling.nearest,
        dtype=np.dtype("uint16"),
        fill_value=np.uint16(0),
        scale_offset=(1, 0),
        policy=ReadPolicy(strict=True),
    )
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.policy == ReadPolicy(strict=True)
    np.testing.assert_array_equal(clone.read(spec_window), want)
    reader.close()
    clone.close()


def _vrt_read(path, target, overview_level):
    """The reference: a nearest WarpedVRT of ``path`` (at an overview level) onto ``target``."""
    with (
        rasterio.open(path, OVERVIEW_LEVEL=overview_level) as src,
        WarpedVRT(
            src,
            crs="EPSG:4326",
            transform=target.transform,
            width=target.shape[1],
            height=target.shape[0],
            resampling=Resampling.nearest,
            src_nodata=0,
            nodata=0,
        ) as vrt,
    ):
        return vrt.read(1)
