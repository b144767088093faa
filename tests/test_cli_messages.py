"""What the CLI says: lon/lat for ``s2cube train --bbox`` with exit-2 errors that name the
problem, and ``s2cube info`` with units (on a real store made from the fixture)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pyproj import Transformer
from realdata import REAL_CATALOG

pytestmark = pytest.mark.skipif(not REAL_CATALOG.exists(), reason=f"{REAL_CATALOG} is absent")
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
LONLAT = (15.9, 46.0, 16.2, 46.3)


def train(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "s2cube.cli", "train", "haze", str(REAL_CATALOG)]
    cmd += ["--out", str(tmp_path / "model"), "--epochs", "1", *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)


def test_train_bbox_lonlat_reads_the_same_area_as_projected() -> None:
    from s2cube.models.cli import load_catalog_cube

    lonlat = load_catalog_cube(REAL_CATALOG, assets=["red"], resolution=120.0, bbox=LONLAT,
                               bbox_crs="EPSG:4326")  # fmt: skip
    t = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True)
    utm = t.transform_bounds(*LONLAT, densify_pts=21)
    projected = load_catalog_cube(REAL_CATALOG, assets=["red"], resolution=120.0, bbox=utm)
    np.testing.assert_array_equal(lonlat.x.values, projected.x.values)
    np.testing.assert_array_equal(lonlat.y.values, projected.y.values)
    assert 185 < lonlat.sizes["x"] < 210  # 0.3° of longitude at 46° N: 23 km, 120 m pixels


@pytest.mark.parametrize(
    ("bbox", "extra", "message"),
    [
        (("520000", "5040000", "570000", "5090000"), [], "look like projected metres"),
        (("10", "40", "11", "41"), [], "touches none of the 10 items"),
        (("16.2", "46.0", "15.9", "46.3"), [], "bbox="),  # reversed
        (("15.9", "46.0", "16.2", "46.3"), ["--bbox-crs", "utm"], "Invalid value"),
    ],
)
def test_train_bad_bbox_exits_2(bbox, extra, message, tmp_path: Path) -> None:
    res = train("--bbox", *bbox, *extra, tmp_path=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "model").exists()
