"""Issue 15, defects 1 and 8: one unreadable asset drops its scene for the cells it touches,
never the run (real CLI subprocesses on the real fixture, edited catalog copies, and a local
HTTP server for 404s, responses cut short and transient 503s).

One catalog holds a bad copy of a real scene per failure class: broken SCL assets fail in the
survey (the plan never sees the scene), broken red assets fail in the block reads
(``--harmonize none --haze-threshold none``: the looks read SCL only), so both places where a
read can fail are exercised, and the cell is planned again without the scene.  Every bad copy
duplicates a scene that stays in the catalog, so a run that drops them all must equal the
baseline run pixel for pixel, in the cells they touch and in the one they do not.
"""

from __future__ import annotations

import copy
import functools
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from realdata import REAL_CATALOG

pytestmark = pytest.mark.skipif(not REAL_CATALOG.exists(), reason=f"{REAL_CATALOG} is absent")

FIXTURE = REAL_CATALOG.parent
#: three 0.5° cells of one column: r0087 (46-46.5), r0088 (45.5-46) touch 33TWL, r0086 does not
ARGS = ["--bbox", "15.6", "45.9", "15.9", "46.6", "--start", "2023-08-01", "--end", "2023-08-31",
        "--resolution", "1/800", "--cell-size", "0.5", "--workers", "0", "--no-progress",
        "--harmonize", "none", "--haze-threshold", "none"]  # fmt: skip
TOUCHED = {"r0087c0391", "r0088c0391"}
UNTOUCHED = "r0086c0391"
#: the real scene every bad copy duplicates (33TWL: the two southern cells)
SOURCE = "S2B_33TWL_20230813_0_L2A"
#: short retries for the subprocesses (dask config from the environment)
ENV = {
    **os.environ,
    "PYTHONWARNINGS": "ignore::PendingDeprecationWarning,ignore::FutureWarning",
    "DASK_S2CUBE__READ__BACKOFF": "0.05",
}


# --------------------------------------------------------------------------- HTTP server
class _Handler(http.server.SimpleHTTPRequestHandler):
    """The fixture over HTTP with byte ranges: ``/ok/<path>``; ``/flaky/<path>`` answers 503
    to the first request of each path, then serves it; ``/short/<path>`` cuts every pixel
    response short halfway through the file (the connection drops before the announced
    bytes).  A missing path is a 404."""

    requests: Counter[str] = Counter()

    def send_head(self) -> io.BytesIO | None:  # type: ignore[override]
        mode, _, rest = self.path.lstrip("/").partition("/")
        path = Path(self.translate_path("/" + rest))
        type(self).requests[self.path] += 1
        if mode == "flaky" and type(self).requests[self.path] == 1:
            self.send_error(503, "injected transient failure")
            return None
        if mode not in ("ok", "flaky", "short") or not path.is_file():
            self.send_error(404)
            return None
        data = path.read_bytes()
        byte_range = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start = int(byte_range.group(1)) if byte_range else 0
        stop = int(byte_range.group(2) or len(data) - 1) if byte_range else len(data) - 1
        body = data[start : stop + 1]
        self.send_response(206 if byte_range else 200)
        if byte_range:
            self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if mode == "short" and stop >= len(data) // 2:
            # the connection drops halfway through the file, before the announced bytes
            self.close_connection = True
            return io.BytesIO(body[: max(0, len(data) // 2 - start)])
        return io.BytesIO(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    handler = functools.partial(_Handler, directory=str(FIXTURE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join()


# --------------------------------------------------------------------------- catalogs
def _items() -> dict[str, dict[str, Any]]:
    """The fixture's items with absolute asset hrefs (so copies may live anywhere)."""
    col = json.loads((FIXTURE / "sentinel-2-l2a" / "collection.json").read_text())
    out = {}
    for link in col["links"]:
        if link["rel"] != "item":
            continue
        src = (FIXTURE / "sentinel-2-l2a" / link["href"]).resolve()
        item = json.loads(src.read_text())
        for a in item["assets"].values():
            if not a["href"].startswith(("http", "s3:")):
                a["href"] = str(src.parent / a["href"])
        item["links"] = []
        out[item["id"]] = item
    return out


def write_catalog(dest: Path, items: list[dict[str, Any]]) -> Path:
    """A static catalog (catalog.json → collection.json → items) of ``items`` in ``dest``."""
    (dest / "c").mkdir(parents=True, exist_ok=True)
    shutil.copy(REAL_CATALOG, dest / "catalog.json")
    cat = json.loads(REAL_CATALOG.read_text())
    cat["links"] = [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"},
        {"rel": "child", "href": "./c/collection.json", "type": "application/json"},
    ]
    (dest / "catalog.json").write_text(json.dumps(cat))
    col = json.loads((FIXTURE / "sentinel-2-l2a" / "collection.json").read_text())
    col["links"] = [{"rel": "root", "href": "../catalog.json", "type": "application/json"}]
    for i, item in enumerate(items):
        (dest / "c" / f"{i}.json").write_text(json.dumps(item))
        col["links"].append({"rel": "item", "href": f"./{i}.json", "type": "application/json"})
    (dest / "c" / "collection.json").write_text(json.dumps(col))
    return dest / "catalog.json"


def bad_copy(items: dict[str, dict[str, Any]], name: str, **assets: str) -> dict[str, Any]:
    """A copy of :data:`SOURCE` with id ``BAD_<name>`` and some asset hrefs replaced."""
    item = copy.deepcopy(items[SOURCE])
    item["id"] = f"BAD_{name}"
    for key, href in assets.items():
        item["assets"][key]["href"] = href
    return item


def mosaic(catalog: Path, store: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "s2cube.cli", "mosaic", "-c", str(catalog), "--store", str(store)]
    return subprocess.run(
        [*cmd, *ARGS, *extra], env=ENV, capture_output=True, text=True, timeout=600
    )


def pixels(store: Path) -> dict[str, np.ndarray]:
    """Every variable of the three cells, with scene indices as scene ids."""
    import s2cube.store as zs

    ds = zs.open_store(str(store), bbox=(15.5, 45.5, 16.0, 47.0), chunks=False)
    ids = {v: k for k, v in zs.scene_indices(str(store)).items()}
    out = {v: ds[v].values for v in ("red", "green", "blue", "nir", "clear_count")}
    out["date"] = ds["date"].values.view("int64")
    out["scene"] = np.vectorize(lambda v: ids.get(int(v), ""), otypes=[object])(ds["scene"].values)
    return out


def records(store: Path) -> dict[str, dict[str, Any]]:
    import s2cube.store as zs

    return zs.read_manifest(str(store))


# --------------------------------------------------------------------------- runs
@pytest.fixture(scope="module")
def real_items() -> dict[str, dict[str, Any]]:
    return _items()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory, real_items) -> dict[str, np.ndarray]:
    tmp = tmp_path_factory.mktemp("baseline")
    res = mosaic(write_catalog(tmp / "cat", list(real_items.values())), tmp / "store")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "3 cell(s) written" in res.stdout
    return pixels(tmp / "store")


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory, server: str, real_items):
    """One run over a catalog with a bad copy per failure class (and a flaky real asset)."""
    tmp = tmp_path_factory.mktemp("broken")
    files = tmp / "files"
    files.mkdir()
    src = Path(real_items[SOURCE]["assets"]["scl"]["href"]).parent
    red, scl = (src / "B04.tif").read_bytes(), (src / "SCL.tif").read_bytes()
    (files / "scl_cut.tif").write_bytes(scl[: len(scl) // 3])
    (files / "not_a_tiff.tif").write_text("<html>Access denied</html>")
    # a corrupt COG: its directory intact, its pixel tiles overwritten with garbage
    corrupt = bytearray(red)
    corrupt[2048 : len(red) - 2048] = np.random.default_rng(0).bytes(len(red) - 4096)
    (files / "red_corrupt.tif").write_bytes(bytes(corrupt))
    rel_red = (
        Path(real_items[SOURCE]["assets"]["red"]["href"]).resolve().relative_to(FIXTURE.resolve())
    )  # resolved: ../shared may be a symbolic link
    bad = [
        # fail in the survey (SCL is read by every look)
        bad_copy(real_items, "scl_missing", scl=str(files / "nope.tif")),
        bad_copy(real_items, "scl_truncated", scl=str(files / "scl_cut.tif")),
        bad_copy(real_items, "scl_not_tiff", scl=str(files / "not_a_tiff.tif")),
        bad_copy(real_items, "scl_empty_href", scl=""),
        bad_copy(real_items, "scl_http_404", scl=f"{server}/ok/no/such/SCL.tif"),
        # fail in the block reads (red is not looked at with these options)
        bad_copy(real_items, "red_corrupt", red=str(files / "red_corrupt.tif")),
        bad_copy(real_items, "red_http_404", red=f"{server}/ok/no/such/B04.tif"),
        bad_copy(real_items, "red_http_short", red=f"{server}/short/{rel_red}"),
    ]
    unknown = bad_copy(real_items, "epsg_unknown")
    unknown["properties"]["proj:epsg"] = 99999
    wrong = bad_copy(real_items, "epsg_wrong_zone")  # defect 8: valid, but zone 34 for 33T
    wrong["properties"]["proj:epsg"] = 32634
    bad += [unknown, wrong]
    good = copy.deepcopy(list(real_items.values()))
    flaky = next(it for it in good if it["id"] == SOURCE)
    flaky["assets"]["red"]["href"] = f"{server}/flaky/{rel_red}"  # 503 once, then fine
    _Handler.requests.clear()
    res = mosaic(write_catalog(tmp / "cat", [*good, *bad]), tmp / "store")
    return res, tmp, [b["id"] for b in bad], f"/flaky/{rel_red}"


# --------------------------------------------------------------------------- tests
def test_unreadable_assets_drop_their_scene_for_the_cells_they_touch(baseline, broken) -> None:
    """Defect 1: every failure class (missing file, HTTP 404, truncated and corrupt COG,
    non-TIFF, empty href, unknown EPSG, a response cut short) ends in a finished run whose
    pixels equal the run without the bad scenes, in touched and untouched cells alike."""
    res, tmp, bad_ids, _ = broken
    assert res.returncode == 0, res.stderr[-4000:]
    assert "Traceback" not in res.stderr
    assert "3 cell(s) written" in res.stdout
    got = pixels(tmp / "store")
    for name, want in baseline.items():
        np.testing.assert_array_equal(got[name], want, err_msg=name)
    recs = records(tmp / "store")
    assert recs[UNTOUCHED]["dropped_scenes"] == []
    for cell in TOUCHED:
        dropped = {e["id"]: e for e in recs[cell]["dropped_scenes"]}
        assert set(dropped) == set(bad_ids), cell
        for bid, e in dropped.items():
            if bid.startswith("BAD_scl") or bid.startswith("BAD_red"):
                assert e["asset"] == bid.split("_")[1], e
                assert e["href"] and e["error"]
    # one warning per scene and cell, naming item and asset
    warned = re.findall(r"Warning: scene '(BAD_\w+)' dropped for cell (\w+)", res.stderr)
    assert sorted(warned) == sorted((b, c) for b in bad_ids for c in TOUCHED)
    assert "asset 'red'" in res.stderr and "asset 'scl'" in res.stderr
    # s2cube info tells
    info = subprocess.run([sys.executable, "-m", "s2cube.cli", "info", str(tmp / "store")],
                          env=ENV, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert f"{len(bad_ids)} scene(s) in 2 cell(s)" in info.stdout
    assert "BAD_red_http_404" in info.stdout and "--retry-dropped" in info.stdout


def test_a_transient_failure_is_retried_not_dropped(broken) -> None:
    """A 503 on a real scene's red asset is retried with backoff: the scene stays."""
    res, tmp, _, flaky_path = broken
    assert _Handler.requests[flaky_path] >= 2  # the 503, then the retry (and range reads)
    recs = records(tmp / "store")
    assert all(SOURCE not in {e["id"] for e in r["dropped_scenes"]} for r in recs.values())
    assert f"scene '{SOURCE}'" not in res.stderr


def test_wrong_epsg_is_named_and_takes_no_part(broken) -> None:
    """Defect 8: a valid but wrong EPSG (32634 for a 33T tile) is dropped with a warning that
    names the item, before the survey, so it takes no part in colour matching either."""
    res, tmp, _, _ = broken
    assert re.search(r"'BAD_epsg_wrong_zone' dropped .*proj:epsg 32634 does not match", res.stderr)
    for cell in TOUCHED:
        entry = next(
            e for e in records(tmp / "store")[cell]["dropped_scenes"]
            if e["id"] == "BAD_epsg_wrong_zone"
        )  # fmt: skip
        assert entry["asset"] is None and "does not match its geometry" in entry["error"]


def test_strict_makes_a_failure_fatal_and_retry_dropped_redoes_the_cells(
    tmp_path: Path, baseline, real_items
) -> None:
    """--strict: exit 2 naming the asset, nothing written.  --retry-dropped after the asset
    is repaired: only the cells that dropped it are redone, now with the scene."""
    missing = tmp_path / "SCL.tif"
    cat = write_catalog(
        tmp_path / "cat",
        [*real_items.values(), bad_copy(real_items, "late", scl=str(missing))],
    )
    two = ["--bbox", "15.6", "46.01", "15.9", "46.6"]  # r0086 (untouched) and r0087 (touched)
    strict = mosaic(cat, tmp_path / "strict", "--strict", *two)
    assert strict.returncode == 2, strict.stderr[-3000:]
    assert "Traceback" not in strict.stderr and str(missing) in strict.stderr
    assert not (tmp_path / "strict" / "manifest").exists() or not records(tmp_path / "strict")

    first = mosaic(cat, tmp_path / "store", *two)
    assert first.returncode == 0, first.stderr[-3000:]
    dropped = {n for n, r in records(tmp_path / "store").items() if r["dropped_scenes"]}
    assert dropped == {"r0087c0391"}
    shutil.copy(Path(real_items[SOURCE]["assets"]["scl"]["href"]), missing)  # repaired
    again = mosaic(cat, tmp_path / "store", "--retry-dropped", *two)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 cell(s) written, 1 already finished" in again.stdout
    assert all(not r["dropped_scenes"] for r in records(tmp_path / "store").values())
    got = pixels(tmp_path / "store")
    rows = slice(0, 800)  # the two northern cells (north up)
    for name in ("red", "green", "blue", "nir", "date"):
        np.testing.assert_array_equal(got[name][rows], baseline[name][rows], err_msg=name)
    # the repaired duplicate now counts: one more usable observation where it has data
    extra = got["clear_count"][rows].astype(int) - baseline["clear_count"][rows]
    assert extra.min() >= 0 and extra.max() == 1
    assert (extra[:400] == 0).all()  # r0086c0391, which 33TWL does not touch, is unchanged
