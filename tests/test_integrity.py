"""Store integrity (issue 15, defects 4 and 5) on a real run of the real two-tile fixture.

* every chunk carries a crc32c checksum: 40 single-byte flips at random offsets of the shard
  and chunk files (level 0, per-cell and coarse overview levels) all fail to read; none
  changes a number silently (there is no padding in a shard: every byte is chunk data, a
  chunk checksum or the shard index, which has its own checksum);
* a 0-byte shard, a deleted shard, a flipped byte and a record that lies are found by
  ``s2cube verify`` (exit 1 naming cell and variable; 0 on a clean store, 2 on a non-store);
* a resume re-checks finished cells and recomputes a damaged one; ``verify --repair``
  forgets the records only the full check finds, and the rerun restores the reference store;
* ``overwrite=True`` on a cell that became empty clears its old pixels at every level.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import zarr

import s2cube
from s2cube.store import read_manifest, store_info, verify_store
from tests.realdata import REAL_CATALOG

pytestmark = pytest.mark.skipif(not REAL_CATALOG.exists(), reason="real fixture missing")

BBOX = ("15.6", "45.9", "15.9", "46.1")  # two 0.5° cells of 400 px: r0087c0391, r0088c0391
CELL_A, CELL_B = "r0087c0391", "r0088c0391"
VARS = ("red", "green", "blue", "nir", "date", "scene", "clear_count", "fill")
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def mosaic_args(store: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "s2cube.cli",
        "mosaic",
        "--catalog",
        str(REAL_CATALOG),
        "--bbox",
        *BBOX,
        "--start",
        "2023-08-01",
        "--end",
        "2023-08-31",
        "--resolution",
        "1/800",
        "--cell-size",
        "0.5",
        "--store",
        str(store),
        "--workers",
        "0",
        "--no-progress",
        *extra,
    ]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s2cube.cli", *args],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("integrity") / "ref.zarr"
    res = subprocess.run(mosaic_args(store), env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(read_manifest(store)) == [CELL_A, CELL_B]
    return store


@pytest.fixture
def copy(reference: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy.zarr"
    shutil.copytree(reference, out)
    return out


def assert_same_pixels(a: Path, b: Path) -> None:
    da_, db_ = (s2cube.open_store(p, bbox=tuple(map(float, BBOX)), chunks=False) for p in (a, b))
    for v in VARS:
        np.testing.assert_array_equal(da_[v].values, db_[v].values, err_msg=v)


def data_files(store: Path) -> list[tuple[str, tuple[int, ...], Path]]:
    """(array path, chunk-grid index, file) of every written data chunk/shard file."""
    out = []
    for meta_file in sorted(store.rglob("zarr.json")):
        array = meta_file.parent
        name = array.name
        if name not in VARS:
            continue
        meta = json.loads(meta_file.read_text())
        if meta.get("node_type") != "array" or len(meta["shape"]) != 2:
            continue
        for f in sorted((array / "c").rglob("*")):
            if f.is_file():
                idx = tuple(int(p) for p in f.relative_to(array / "c").parts)
                out.append((str(array.relative_to(store)), idx, f))
    return out


def read_block(store: Path, array: str, idx: tuple[int, ...]) -> np.ndarray:
    arr = zarr.open_array(str(store / array), mode="r")
    s0, s1 = arr.shards or arr.chunks
    return np.asarray(arr[idx[0] * s0 : (idx[0] + 1) * s0, idx[1] * s1 : (idx[1] + 1) * s1])


def flip(path: Path, offset: int, bit: int) -> bytes:
    data = bytearray(path.read_bytes())
    original = bytes(data)
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))
    return original


def test_every_chunk_carries_a_checksum(reference: Path) -> None:
    assert store_info(reference)["checksums"] == "all"
    report = verify_store(reference)
    assert report.ok, [f.describe() for f in report.findings]
    assert report.cells == {f"mosaic/{CELL_A}": "ok", f"mosaic/{CELL_B}": "ok"}


def test_forty_single_byte_flips_never_change_data_silently(copy: Path) -> None:
    files = data_files(copy)
    levels = {a.split("/")[1] if a.startswith("overviews/") else "0" for a, _, _ in files}
    assert {"0", "1", "2"} <= levels  # level 0, a per-cell level and a coarse level
    rng = random.Random(15)
    detected, silent = 0, []
    for _ in range(40):
        array, idx, path = rng.choice(files)
        before = read_block(copy, array, idx)
        offset = rng.randrange(path.stat().st_size)
        original = flip(path, offset, rng.randrange(8))
        try:
            after = read_block(copy, array, idx)
        except Exception:  # the checksum (or the shard index's) catches it
            detected += 1
        else:
            # no byte of a shard is padding: an undetected flip is a silent change
            silent.append((array, idx, offset, bool(np.array_equal(before, after))))
        finally:
            path.write_bytes(original)
    assert silent == [] and detected == 40

    # several flips at once: verify names each damaged cell, variable and level
    targets = {
        ("red/c/87/391", CELL_A, "red", 0),
        ("scene/c/88/391", CELL_B, "scene", 0),
        ("overviews/1/nir/c/88/391", CELL_B, "nir", 1),
    }
    for key, *_ in targets:
        f = copy / key
        flip(f, rng.randrange(f.stat().st_size), 0)
    with pytest.raises(Exception, match="checksum"):
        s2cube.open_store(copy, cell=CELL_A).red.values  # noqa: B018
    report = verify_store(copy)
    assert not report.ok
    found = {(f.cell, f.variable, f.level) for f in report.findings}
    for _, cell, var, level in targets:
        assert (cell, var, level) in found, report.findings


def test_verify_cli_exit_codes_and_findings(copy: Path, tmp_path: Path) -> None:
    ok = cli("verify", str(copy))
    assert ok.returncode == 0, ok.stderr
    assert "checksums  all" in ok.stdout and "ok: 2 finished cell(s)" in ok.stdout

    not_a_store = cli("verify", str(tmp_path / "nothing.zarr"))
    assert not_a_store.returncode == 2 and "does not exist" in not_a_store.stderr

    (copy / "red" / "c" / "87" / "391").write_bytes(b"")  # a 0-byte shard
    (copy / "scene" / "c" / "88" / "391").unlink()  # a deleted shard
    assert set(store_info(copy)["damaged"]) == {CELL_A, CELL_B}  # s2cube info notices
    bad = cli("verify", str(copy))
    assert bad.returncode == 1
    assert f"{CELL_A}, variable 'red': its shard red/c/87/391 is empty (0 bytes)" in bad.stderr
    assert f"{CELL_B}, variable 'scene': its shard scene/c/88/391 is missing" in bad.stderr
    assert "--overwrite" in bad.stderr and "--repair" in bad.stderr
    as_json = cli("verify", "--json", "--no-overviews", str(copy))
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["checksums"] == "all"
    assert {(f["cell"], f["variable"]) for f in report["findings"]} >= {
        (CELL_A, "red"),
        (CELL_B, "scene"),
    }


def test_resume_recomputes_a_damaged_cell_and_repair_the_rest(reference: Path, copy: Path) -> None:
    # A: a 0-byte shard (the cheap check of a resume finds it);
    # B: a record that lies (only the full check finds it)
    (copy / "nir" / "c" / "87" / "391").write_bytes(b"")
    rec_path = copy / "s2cube_manifest" / f"{CELL_B}.json"
    rec = json.loads(rec_path.read_text())
    rec["n_composited"] += 1
    rec_path.write_text(json.dumps(rec))

    # warnings on: the resume says which finished cell it recomputes and why
    env = {k: v for k, v in ENV.items() if k != "PYTHONWARNINGS"}
    res = subprocess.run(mosaic_args(copy), env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "1 cell(s) written, 1 already finished" in res.stdout
    assert f"{CELL_A}, variable 'nir': its shard nir/c/87/391 is empty" in res.stderr

    bad = cli("verify", "--repair", str(copy))
    assert bad.returncode == 1
    assert f"{CELL_B}, variable 'n_composited'" in bad.stderr
    assert "forgot the records of 1 cell(s)" in bad.stderr
    assert sorted(read_manifest(copy)) == [CELL_A]

    res = subprocess.run(mosaic_args(copy), env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "1 cell(s) written, 1 already finished" in res.stdout
    assert verify_store(copy).ok
    assert_same_pixels(copy, reference)


def test_overwrite_to_empty_clears_old_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cell covered by tile 33TWM only, recomputed with overwrite from 33TWL items only:
    its record says empty and no pixel of it is left at any level (issue 15, defect 4).

    The store is made as stores were before chunk checksums (zstd only): such a store keeps
    working (written, overwritten, verified) and ``info`` says it has no checksums."""
    from fractions import Fraction

    import zarr.codecs

    def zstd_only() -> list:
        return [zarr.codecs.ZstdCodec(level=3)]

    monkeypatch.setattr("s2cube.store.layout.chunk_compressors", zstd_only)
    monkeypatch.setattr("s2cube.overviews.template.chunk_compressors", zstd_only)
    # both runs inside one second of the clock (the case that once left the old pixels in
    # the coarse levels: records were stamped to the second, so the rewrite looked current)
    import datetime as dt
    import itertools

    from s2cube.store import cells as store_cells

    tick = itertools.count()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    class OneSecond(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
            return start + dt.timedelta(microseconds=next(tick))

    monkeypatch.setattr(store_cells, "dt", type("dt", (), {"datetime": OneSecond, "UTC": dt.UTC}))

    from s2cube.grid import Cell, GlobalGrid
    from s2cube.overviews import open_level

    grid = GlobalGrid(resolution=Fraction(1, 800), cell_size=Fraction(1, 2))
    items = s2cube.search(
        str(REAL_CATALOG), bbox=(15.6, 45.0, 15.9, 46.8), start="2023-08-01", end="2023-08-31"
    )
    south = [it for it in items if "_33TWL_" in it.id]
    store = tmp_path / "m.zarr"
    bbox = (15.6, 46.6, 15.9, 46.8)  # cell r0086c0391: 46.5-47.0 °N, north of 33TWL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = s2cube.mosaic(items, store=store, bbox=bbox, grid=grid)
        assert first.written == ["r0086c0391"]
        view = s2cube.open_store(store, cell="r0086c0391", chunks=False)
        assert int((view.red.values > 0).sum()) > 0
        again = s2cube.mosaic(south, store=store, bbox=bbox, grid=grid, overwrite=True)
    assert again.empty == ["r0086c0391"]
    assert read_manifest(store)["r0086c0391"]["empty"] is True
    window = grid.cell_window(Cell.from_name("r0086c0391"))
    for level, group in ((0, ""), (1, "overviews/1/")):
        w = window.zoom_out(2**level)
        for v in VARS:  # the stored (encoded) values: every one is the fill value
            arr = zarr.open_array(str(store / f"{group}{v}"), mode="r")
            raw = np.asarray(arr[w.rows, w.cols])
            assert raw.size and int((raw != arr.fill_value).sum()) == 0, (level, v)
    for level in (1, 2):
        lv = open_level(store, level)
        lv = lv.sel(latitude=slice(47.0, 46.5), longitude=slice(15.5, 16.0)).load()
        assert int(lv.red.count()) > 0 and int((lv.red.values > 0).sum()) == 0, level
    report = verify_store(store)
    assert report.ok and report.checksums == "none"
    assert store_info(store)["checksums"] == "none"
    assert not any((store / "red" / "c" / "86").glob("*"))


def test_verify_checks_land_cover_and_nested_stores(copy: Path, reference: Path) -> None:
    """Land-cover cells are read back against their records; a nested store (the
    super-resolution product, ``superres/x<scale>``) is verified as a store of its own."""
    from s2cube.grid import Cell
    from s2cube.store import store_grid
    from s2cube.store.landcover import add_landcover, write_landcover_cell

    add_landcover(copy, {"classes": {1: "water", 2: "trees"}, "colors": {1: "#0000ff"}})
    window = store_grid(copy).cell_window(Cell.from_name(CELL_A))
    rng = np.random.default_rng(15)
    classes = rng.integers(0, 3, window.shape, dtype="uint8")
    write_landcover_cell(
        copy,
        Cell.from_name(CELL_A),
        {
            "landcover": classes,
            "landcover_confidence": np.where(classes > 0, 80, 0).astype("uint8"),
            "landcover_dates": np.where(classes > 0, 3, 0).astype("uint8"),
        },
    )
    nested = copy / "superres" / "x2"
    shutil.copytree(reference, nested)
    report = verify_store(copy, overviews=False)
    assert report.ok, [f.describe() for f in report.findings]
    assert report.cells[f"landcover/{CELL_A}"] == "ok"
    assert report.nested["superres/x2"].ok

    lc = copy / "landcover" / "c" / "87" / "391"
    flip(lc, lc.stat().st_size // 3, 2)
    shard = nested / "green" / "c" / "88" / "391"
    flip(shard, shard.stat().st_size // 2, 5)
    report = verify_store(copy, overviews=False)
    assert not report.ok
    assert {(f.product, f.cell, f.variable) for f in report.findings} == {
        ("landcover", CELL_A, "landcover")
    }
    assert {(f.cell, f.variable) for f in report.nested["superres/x2"].findings} == {
        (CELL_B, "green")
    }
