"""Overviews: pyramid layout, kernels against a numpy loop, per-cell + coarse builds, reruns."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

sys.path.insert(0, str(Path(__file__).parent / "serve"))
from synthetic import make_synthetic_store, synthetic_cell  # noqa: E402

from s2cube.errors import InputError, StoreError  # noqa: E402
from s2cube.grid import Cell, GlobalGrid  # noqa: E402
from s2cube.overviews import (  # noqa: E402
    build_cell_overviews,
    build_coarse_overviews,
    build_overviews,
    downsample_cell,
    downsample_reflectance,
    first_valid_child,
    open_level,
    overview_status,
    pyramid,
)
from s2cube.store import write_cell  # noqa: E402

GRID = GlobalGrid(resolution=1 / 400, cell_size=0.5, chunk_size=50)
CELLS = [Cell(87, 391), Cell(87, 392)]


def _naive_mean(a: np.ndarray) -> np.ndarray:
    h, w = -(-a.shape[0] // 2), -(-a.shape[1] // 2)
    out = np.zeros((h, w), dtype="uint16")
    for i in range(h):
        for j in range(w):
            vals = [int(v) for v in a[2 * i : 2 * i + 2, 2 * j : 2 * j + 2].ravel() if v > 0]
            if vals:
                out[i, j] = (sum(vals) + len(vals) // 2) // len(vals)
    return out


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        "uint16",
        st.tuples(st.integers(1, 9), st.integers(1, 9)),
        elements=st.sampled_from([0, 0, 1, 7, 1000, 65535]),
    )
)
def test_downsample_reflectance_matches_loop(a: np.ndarray) -> None:
    np.testing.assert_array_equal(downsample_reflectance(a), _naive_mean(a))


def test_provenance_takes_one_consistent_child() -> None:
    scene = np.array([[-1, 4], [5, -1]], dtype="int32")
    arrays = {
        "red": np.array([[0, 10], [20, 0]], "uint16"),
        "green": np.ones((2, 2), "uint16"),
        "scene": scene,
        "date": np.array([[0, 40], [50, 0]], "uint16"),
        "clear_count": np.array([[0, 2], [3, 0]], "uint16"),
    }
    out = downsample_cell(arrays, ["red", "green"])
    assert first_valid_child(scene >= 0)[0, 0] == 1  # NE is the first valid child
    assert (out["scene"][0, 0], out["date"][0, 0], out["clear_count"][0, 0]) == (4, 40, 2)
    assert out["red"][0, 0] == 15


def test_pyramid_default_grid() -> None:
    levels = pyramid(GlobalGrid())
    assert [lv.per_cell for lv in levels[:6]] == [True] * 6
    assert not any(lv.per_cell for lv in levels[6:])
    for lv in levels:
        if lv.per_cell:  # chunks tile the cell's shard exactly
            assert lv.cell_pixels % lv.chunk == 0
    last = levels[-1]
    assert max(last.shape) <= last.chunk  # the whole globe in one chunk at the top
    # any 256-px tile at any zoom finds a level with at most 2 level-pixels per tile pixel
    res = [float(lv.resolution) for lv in levels]
    assert all(b / a == 2 for a, b in zip(res, res[1:], strict=False))


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return make_synthetic_store(tmp_path / "s.zarr", GRID, CELLS)


def _window(n: int) -> tuple[slice, slice]:
    """Level-0 window around both cells, aligned to 2**n so every level tiles it exactly."""
    f = 2**n
    rows, cols = GRID.cell_region(CELLS[0])
    r0, r1 = rows.start // f * f, -(-rows.stop // f) * f
    c0, c1 = cols.start // f * f, -(-(cols.stop + GRID.cell_pixels) // f) * f
    return slice(r0, r1), slice(c0, c1)


def _expected_levels(store: Path, n: int) -> list[dict[str, np.ndarray]]:
    import zarr

    g = zarr.open_group(str(store), mode="r")
    names = ["red", "green", "blue", "nir", "date", "scene", "clear_count"]
    # the aligned region at level 0, then the pyramid computed in memory
    rows, cols = _window(n)
    region = {k: np.asarray(g[k][rows, cols]) for k in names}
    out = [region]
    for _ in range(n):
        out.append(downsample_cell(out[-1], ["red", "green", "blue", "nir"]))
    return out


def test_build_matches_in_memory_pyramid(store: Path) -> None:
    import zarr

    res = build_overviews(store)
    assert sorted(res["cells"]) == sorted(c.name for c in CELLS)
    levels = pyramid(GRID)
    g = zarr.open_group(str(store), mode="r")
    expect = _expected_levels(store, 4)
    rows, cols = _window(4)
    for lv in levels[1:5]:  # levels 1-2 per cell, 3-4 coarse (chunks span cells)
        f = lv.factor
        r = slice(rows.start // f, rows.stop // f)
        c = slice(cols.start // f, cols.stop // f)
        for name in ("red", "nir", "date", "scene", "clear_count"):
            got = np.asarray(g[f"{lv.path}/{name}"][r, c])
            np.testing.assert_array_equal(got, expect[lv.index][name], err_msg=f"{lv.path}/{name}")
    assert {lv.per_cell for lv in levels[1:5]} == {True, False}
    assert set(overview_status(store).values()) == {"ok"}
    # the multiscales convention on the root group
    attrs = json.loads((store / "zarr.json").read_text())["attributes"]
    layout = attrs["multiscales"]["layout"]
    assert layout[0]["asset"] == "." and layout[1]["asset"] == "overviews/1"
    assert layout[2]["derived_from"] == "overviews/1"
    assert any(c["name"] == "multiscales" for c in attrs["zarr_conventions"])


def test_rerun_refreshes_only_the_rewritten_cell(store: Path) -> None:
    build_overviews(store)
    write_cell(store, CELLS[1], synthetic_cell(GRID, CELLS[1], seed=5))
    status = overview_status(store)
    assert status == {CELLS[0].name: "ok", CELLS[1].name: "stale"}
    res = build_overviews(store)
    assert res["cells"] == [CELLS[1].name]
    assert set(overview_status(store).values()) == {"ok"}
    # level 4 (coarse) reflects the new data of the rewritten cell
    expect = _expected_levels(store, 4)
    lv = pyramid(GRID)[4]
    ds = open_level(store, 4)
    rows, cols = _window(4)
    sub = (
        ds["scene"]
        .isel(
            latitude=slice(rows.start // 16, rows.stop // 16),
            longitude=slice(cols.start // 16, cols.stop // 16),
        )
        .values
    )
    np.testing.assert_array_equal(sub, expect[lv.index]["scene"])
    assert int(sub.max()) >= 15  # seed 5 scenes are 15..17


def test_worker_then_driver_split(store: Path) -> None:
    from s2cube.overviews import prepare_overviews

    with pytest.raises(StoreError, match="prepare_overviews"):
        build_cell_overviews(store, CELLS[0])
    prepare_overviews(store)
    for c in CELLS:  # what each cell task does on a worker
        assert build_cell_overviews(store, c) == [1, 2]
    assert set(overview_status(store).values()) == {"no-coarse"}
    done = build_coarse_overviews(store, CELLS)  # once, in the driver
    assert min(done) == 3 and all(n >= 1 for n in done.values())
    assert set(overview_status(store).values()) == {"ok"}


def test_open_level_coords_and_crs(store: Path) -> None:
    build_overviews(store)
    ds = open_level(store, 2)
    assert ds.rio.crs.to_epsg() == 4326
    step = float(ds.longitude[1] - ds.longitude[0])
    assert step == pytest.approx(4 / 400)
    assert float(ds.latitude[0]) == pytest.approx(90 - 2 / 400)
    assert ds["date"].dtype.kind == "M"
    with pytest.raises(InputError, match="level"):
        open_level(store, 99)
    with pytest.raises(InputError, match="not finished"):
        build_overviews(store, ["r0001c0001"])
