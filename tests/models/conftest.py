"""Fixtures for the model tests: real data from ../shared/data, small random-weight nets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FIXTURE = DATA / "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m"
EOLEARN = DATA / "eolearn_testeopatch_slovenia_33N"
BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}


@pytest.fixture(scope="session")
def fixture_root() -> Path:
    if not FIXTURE.exists():
        pytest.skip(f"real data not found at {FIXTURE}")
    return FIXTURE / "sentinel-2-l2a"


def _read_item(
    root: Path, item: str, window: tuple[slice, slice] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(band, y, x) uint16 DN (blue, green, red, nir) and (y, x) SCL of one fixture item."""
    rasterio = pytest.importorskip("rasterio")
    win = None
    if window is not None:
        from rasterio.windows import Window

        ys, xs = window
        win = Window(xs.start, ys.start, xs.stop - xs.start, ys.stop - ys.start)
    bands = []
    for name in BANDS.values():
        with rasterio.open(root / item / f"{name}.tif") as src:
            bands.append(src.read(1, window=win))
    with rasterio.open(root / item / "SCL.tif") as src:
        scl = src.read(1, window=win)
    return np.stack(bands), scl


@pytest.fixture
def small_net():
    """A small random-weight U-net wrapped to give probabilities (seeded)."""
    from s2cube.models.nets import CloudUNet, InferenceModel

    torch.manual_seed(0)
    net = CloudUNet(3, 2, width=4, depth=2)
    # random BN statistics so that eval-mode BN is not the identity
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return InferenceModel(net).eval()


@pytest.fixture(scope="session")
def read_item():
    """``read_item(root, item_id, (rows, cols)) -> (dn (band, y, x), scl (y, x))``."""
    return _read_item


@pytest.fixture(scope="session")
def eolearn_dir() -> Path:
    if not EOLEARN.exists():
        pytest.skip(f"real data not found at {EOLEARN}")
    return EOLEARN
