"""Priority composite: kernel semantics, priorities, and dask == numpy."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from s2cube.composite import composite, priority_composite, priority_order
from s2cube.errors import InputError
from s2cube.mask import CLEAR, CLOUD, NODATA, SHADOW, SNOW

#: the plain priority composite (no harmonization, no blending, no haze demotion)
PLAIN = {"harmonize": "none", "blend": "none", "haze_threshold": None}


def test_kernel_takes_first_clear_then_snow_else_nodata():
    refl = np.arange(1, 1 + 3 * 1 * 1 * 4, dtype="uint16").reshape(3, 1, 1, 4)
    codes = np.array(
        [
            [[CLOUD, CLOUD, SNOW, NODATA]],
            [[CLEAR, SHADOW, CLOUD, CLOUD]],
            [[CLEAR, SNOW, CLEAR, SHADOW]],
        ],
        dtype="uint8",
    )
    out, source, count = priority_composite(refl, codes)
    assert source.tolist() == [[1, 2, 2, -1]]
    assert out[0].tolist() == [[refl[1, 0, 0, 0], refl[2, 0, 0, 1], refl[2, 0, 0, 2], 0]]
    assert count.tolist() == [[2, 1, 2, 0]]


def test_priority_orders():
    times = pd.to_datetime(["2023-08-10", "2023-08-20", "2023-08-15"]).values
    assert priority_order(times).tolist() == [1, 2, 0]
    assert priority_order(times, priority="cloud", cloud_cover=[5.0, 50.0, 1.0]).tolist() == [
        2,
        0,
        1,
    ]
    assert priority_order(times, priority="target:2023-08-14").tolist() == [2, 0, 1]
    with pytest.raises(InputError, match="choose 'recent'"):
        priority_order(times, priority="median")
    with pytest.raises(InputError, match="not a date"):
        priority_order(times, priority="target:soon")


def _cube_and_mask(refl, codes, chunks):
    t = refl.shape[0]
    times = pd.date_range("2023-08-01", periods=t, freq="2D").values
    cube = xr.DataArray(
        da.from_array(
            np.concatenate([refl, np.zeros_like(refl[:, :1])], axis=1), chunks=(1, 1, *chunks)
        ),
        dims=("time", "band", "latitude", "longitude"),
        coords={
            "time": times,
            "band": ["red", "green", "scl"][: refl.shape[1]] + ["scl"],
            "id": ("time", [f"S{i}" for i in range(t)]),
        },
    )
    m = xr.DataArray(
        da.from_array(codes, chunks=(1, *chunks)), dims=("time", "latitude", "longitude")
    )
    return cube, m


@settings(max_examples=30, deadline=None)
@given(
    t=st.integers(1, 5),
    ny=st.integers(1, 30),
    nx=st.integers(1, 30),
    cy=st.integers(1, 12),
    cx=st.integers(1, 12),
    seed=st.integers(0, 2**16),
    priority=st.sampled_from(["recent", "target:2023-08-04"]),
)
def test_dask_composite_equals_numpy_kernel(t, ny, nx, cy, cx, seed, priority):
    rng = np.random.default_rng(seed)
    refl = rng.integers(1, 10000, size=(t, 2, ny, nx)).astype("uint16")
    codes = rng.choice([NODATA, CLEAR, CLOUD, SHADOW, SNOW], size=(t, ny, nx)).astype("uint8")
    cube, m = _cube_and_mask(refl, codes, (cy, cx))
    ds = composite(cube, m, priority=priority, scene_index=np.arange(t) + 100, **PLAIN)
    assert isinstance(ds.red.data, da.Array)
    order = priority_order(cube.time.values, priority=priority, ids=cube.id.values)
    out, source, count = priority_composite(refl[order], codes[order])
    got = ds.compute()
    np.testing.assert_array_equal(got.red.values, out[0])
    np.testing.assert_array_equal(got.green.values, out[1])
    np.testing.assert_array_equal(got.clear_count.values, count)
    exp_scene = np.where(source >= 0, (np.arange(t) + 100)[order][np.clip(source, 0, None)], -1)
    np.testing.assert_array_equal(got.scene.values, exp_scene)
    exp_date = np.where(
        source >= 0, cube.time.values[order][np.clip(source, 0, None)], np.datetime64("NaT")
    )
    np.testing.assert_array_equal(got.date.values, exp_date.astype("datetime64[ns]"))
    # numpy-backed inputs give the same
    npds = composite(
        cube.compute(), m.compute(), priority=priority, scene_index=np.arange(t) + 100, **PLAIN
    )
    xr.testing.assert_identical(npds.drop_attrs(), got.drop_attrs())


def test_composite_argument_errors():
    refl = np.ones((2, 2, 3, 3), "uint16")
    cube, m = _cube_and_mask(refl, np.ones((2, 3, 3), "uint8"), (3, 3))
    with pytest.raises(InputError, match="not in the cube"):
        composite(cube, m, bands=["nir"], **PLAIN)
    with pytest.raises(InputError, match="observations"):
        composite(cube, m.isel(time=[0]), **PLAIN)


@settings(max_examples=25, deadline=None)
@given(
    t=st.integers(2, 4),
    ny=st.integers(8, 40),
    nx=st.integers(8, 40),
    cy=st.integers(4, 20),
    cx=st.integers(4, 20),
    seed=st.integers(0, 2**16),
    blend=st.sampled_from(["feather", "multiband"]),
    width=st.integers(1, 8),
)
def test_blended_harmonized_dask_equals_the_whole_array_kernel(
    t, ny, nx, cy, cx, seed, blend, width
):
    """The chunked composite (overlap = the blend halo, cropped per chunk) equals the numpy
    kernel run on the whole array, at every chunk edge."""
    from s2cube.composite import composite_window
    from s2cube.config import MosaicConfig
    from s2cube.harmonize.fit import SceneParams

    rng = np.random.default_rng(seed)
    refl = rng.integers(1, 10000, size=(t, 2, ny, nx)).astype("uint16")
    # blocky sources, so that blending has transitions to work on
    codes = rng.choice([CLEAR, CLOUD, SNOW], size=(t, ny // 4 + 1, nx // 4 + 1), p=[0.6, 0.3, 0.1])
    codes = np.repeat(np.repeat(codes, 4, axis=1), 4, axis=2)[:, :ny, :nx].astype("uint8")
    cube, m = _cube_and_mask(refl, codes, (cy, cx))
    gains = rng.uniform(0.8, 1.2, size=(t, 2))
    params = {
        f"S{i}": SceneParams(
            haze=None,
            knots=tuple(((0.0, 10000.0), (0.0, 10000.0 * float(g))) for g in gains[i]),
            bands=("red", "green"),
            harmonize="linear",
        )
        for i in range(t)
    }
    cfg = MosaicConfig(bands=("red", "green"), blend=blend, blend_width=width)
    ds = composite(cube, m, config=cfg, scene_params=params).compute()
    order = priority_order(cube.time.values, priority="recent", ids=cube.id.values)
    knots = [params[f"S{i}"].knots for i in order]
    out, source, count = composite_window(
        refl[order], codes[order], knots, cfg.spec, crop=(0, 0, 0, 0)
    )
    np.testing.assert_array_equal(ds.red.values, out[0])
    np.testing.assert_array_equal(ds.green.values, out[1])
    np.testing.assert_array_equal(ds.clear_count.values, count)
    np.testing.assert_array_equal(ds.scene.values, np.where(source >= 0, order[source], -1))
