"""Issue 15, defects 3, 7, 9 and 10: what a careless user types (real CLI subprocesses on the
real fixture): zero and absurd values, ``--overwrite``, resuming with other options, a huge
bbox, duplicated item ids, malformed catalogs, ``--store ""`` and a full disk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from realdata import REAL_CATALOG
from test_reliability_reads import _items, write_catalog

pytestmark = pytest.mark.skipif(not REAL_CATALOG.exists(), reason=f"{REAL_CATALOG} is absent")

#: one 0.5° cell (r0086c0391, 46.5-47 N) that only 33TWM reaches
ONE = ["--bbox", "15.6", "46.6", "15.9", "46.9", "--start", "2023-08-01", "--end",
       "2023-08-31", "--resolution", "1/800", "--cell-size", "0.5", "--workers", "0",
       "--no-progress"]  # fmt: skip
ENV = {**os.environ, "PYTHONWARNINGS": "ignore::PendingDeprecationWarning,ignore::FutureWarning"}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s2cube.cli", *args],
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


def mosaic(catalog: Path | str, store: Path | str, *args: str, **kw: Any) -> Any:
    return cli("mosaic", "-c", str(catalog), "--store", str(store), *args, **kw)


def reflectance(store: Path) -> dict[str, np.ndarray]:
    import s2cube.store as zs

    ds = zs.open_store(str(store), bbox=(15.5, 46.5, 16.0, 47.0), chunks=False)
    out = {v: ds[v].values for v in ("red", "green", "blue", "nir", "clear_count")}
    out["date"] = ds["date"].values.view("int64")
    return out


@pytest.fixture(scope="module")
def one_cell(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baseline store of one cell (shared by the module)."""
    store = tmp_path_factory.mktemp("one") / "store"
    res = mosaic(REAL_CATALOG, store, *ONE)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "1 cell(s) written" in res.stdout
    return store


# --------------------------------------------------------------------------- defect 7
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--resolution", "0"], "resolution=0 must be > 0 degrees"),
        (["--cell-size", "0"], "cell_size=0 must be > 0 degrees"),
        (["--chunk-size", "0"], "chunk_size=0 must be a positive pixel count"),
        (["--resolution", "-1/800"], "resolution=-1/800 must be > 0"),
        (["--dilation", "2000"], "cloud_dilation=2000 is beyond the sane limit"),
    ],
)
def test_zero_and_absurd_values_exit_2(tmp_path: Path, flags: list[str], message: str) -> None:
    """Defect 7 (and 9's --dilation 2000): refused with the value and the fix; no store."""
    res = mosaic(REAL_CATALOG, tmp_path / "store", *ONE, *flags)
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "store").exists()


def test_the_api_refuses_them_too() -> None:
    from fractions import Fraction

    from s2cube import GlobalGrid, MosaicConfig
    from s2cube.errors import InputError

    for kw in ({"resolution": 0}, {"cell_size": Fraction(0)}, {"chunk_size": 0}):
        with pytest.raises(InputError, match="0 does not mean 'the default'"):
            GlobalGrid(**kw)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="sane limit"):
        MosaicConfig(shadow_dilation=2000)


# --------------------------------------------------------------------------- defects 3 + 10
def test_overwrite_recomputes_and_a_resume_with_other_dates_is_refused(
    tmp_path: Path, one_cell: Path
) -> None:
    """Defect 3: --overwrite reaches the run.  Defect 10: resuming a store with other dates
    (or options) is refused with the fix instead of silently keeping the old cells."""
    import s2cube.store as zs

    store = tmp_path / "store"
    shutil.copytree(one_cell, store)
    other = [*ONE, "--end", "2023-08-16"]  # the last flag wins
    refused = mosaic(REAL_CATALOG, store, *other)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "other options (end='2023-08-31')" in refused.stderr
    assert "--overwrite" in refused.stderr and "Traceback" not in refused.stderr
    redone = mosaic(REAL_CATALOG, store, *other, "--overwrite")
    assert redone.returncode == 0, redone.stderr[-2000:]
    assert "1 cell(s) written, 0 already finished" in redone.stdout
    (rec,) = zs.read_manifest(str(store)).values()
    assert rec["query"]["end"] == "2023-08-16"
    # the pixels are the new period's: no acquisition after the new end date
    dates = reflectance(store)["date"]
    assert dates[dates > 0].max() < np.datetime64("2023-08-17").astype("datetime64[ns]").view(
        "int64"
    )
    assert not np.array_equal(dates, reflectance(one_cell)["date"])


def test_duplicated_item_ids_are_kept_once(tmp_path: Path, one_cell: Path) -> None:
    """Defect 10: a catalog listing one scene twice gives the same mosaic, with a warning."""
    items = list(_items().values())
    twice = next(it for it in items if it["id"] == "S2B_33TWM_20230820_0_L2A")
    cat = write_catalog(tmp_path / "cat", [*items, json.loads(json.dumps(twice))])
    res = mosaic(cat, tmp_path / "store", *ONE)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "'S2B_33TWM_20230820_0_L2A' ×2" in res.stderr
    got, want = reflectance(tmp_path / "store"), reflectance(one_cell)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)


def test_malformed_catalog_and_empty_store_exit_2(tmp_path: Path) -> None:
    """Defect 10: a broken item link is named (exit 2, no traceback); --store '' refused."""
    items = list(_items().values())
    cat = write_catalog(tmp_path / "cat", items)
    (cat.parent / "c" / "0.json").write_text("[1, 2]")
    res = mosaic(cat, tmp_path / "store", *ONE)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "is malformed" in res.stderr and "0.json" in res.stderr
    assert "Traceback" not in res.stderr
    empty = mosaic(REAL_CATALOG, "", *ONE)
    assert empty.returncode == 2 and "--store '' is empty" in empty.stderr


# --------------------------------------------------------------------------- defect 9
def test_a_huge_bbox_needs_yes_and_its_empty_cells_cost_nothing(tmp_path: Path) -> None:
    """Refused above 1,000 cells with the estimate; with --yes only the cells items reach
    get a task and a record (a resume skips them and writes nothing)."""
    import s2cube.store as zs

    globe = mosaic(REAL_CATALOG, tmp_path / "globe", "--bbox", "-180", "-90", "180", "90")
    assert globe.returncode == 2, globe.stderr[-2000:]
    assert "64,800 cell(s)" in globe.stderr and "--yes" in globe.stderr
    assert not (tmp_path / "globe").exists()

    # a whole-globe bbox confirmed: 64,800 cells, of which the items reach a dozen
    big = ["--bbox", "-180", "-90", "180", "90", "--resolution", "1/100", "--cell-size", "1",
           "--start", "2023-08-01", "--end", "2023-08-31", "--workers", "0", "--no-progress",
           "--no-overviews", "--yes"]  # fmt: skip
    res = mosaic(REAL_CATALOG, tmp_path / "big", *big)
    assert res.returncode == 0, res.stderr[-2000:]
    records = zs.read_manifest(str(tmp_path / "big"))
    # 33TWL/33TWM (15-16.5 E, 45-47 N) and the cells their halo reaches
    assert 4 <= len(records) <= 16, len(records)
    assert f"{len(records)} cell(s) written, 0 already finished" in res.stdout
    assert f"{64800 - len(records)} without data" in res.stdout
    again = mosaic(REAL_CATALOG, tmp_path / "big", *big)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"0 cell(s) written, {len(records)} already finished" in again.stdout


# --------------------------------------------------------------------------- defect 10: disk full
SHIM = """
import errno
import zarr.storage

_set = zarr.storage.LocalStore.set


async def set(self, key, value):  # the disk fills up at the first shard of a cell
    if key.split("/")[0] in ("red", "green", "blue", "nir") and "/c/" in key:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.root / key))
    return await _set(self, key, value)


zarr.storage.LocalStore.set = set
"""


def test_a_full_disk_is_a_clear_error_and_the_store_resumes(tmp_path: Path, one_cell: Path) -> None:
    """ENOSPC on the first shard write (a real CLI run whose zarr writes raise it, through a
    ``sitecustomize`` shim): exit 3 with a message, no traceback; the store has no record of
    the cell and a rerun with space again gives the baseline pixels."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(SHIM)
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(shim), ENV.get("PYTHONPATH", "")])}
    store = tmp_path / "store"
    full = mosaic(REAL_CATALOG, store, *ONE, env=env)
    assert full.returncode == 3, full.stderr[-3000:]
    assert "no space left on the device" in full.stderr and "Traceback" not in full.stderr
    import s2cube.store as zs

    assert zs.read_manifest(str(store)) == {}  # no record claims the unwritten cell
    again = mosaic(REAL_CATALOG, store, *ONE)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "1 cell(s) written" in again.stdout
    got, want = reflectance(store), reflectance(one_cell)
    for name, value in want.items():
        np.testing.assert_array_equal(got[name], value, err_msg=name)
