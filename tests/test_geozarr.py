"""GeoZarr conventions: every georeferenced node of a real store validates against the published
``proj`` v0.1, ``spatial`` v0.1 and ``multiscales`` v0.1 JSON schemas (vendored in
``tests/schemas``, see its README), and says the same as CF/rioxarray.

The store is made by ``s2cube.mosaic`` from the real two-tile fixture (one cell at 1/800°, with
its overview pyramid), so the documents checked are the ``zarr.json`` files the package writes.
"""

from __future__ import annotations

import copy
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import s2cube
from s2cube.grid import GlobalGrid
from s2cube.overviews import pyramid
from s2cube.store import store_metadata
from s2cube.store.geozarr import (
    PROJ_CONVENTION,
    SPATIAL_CONVENTION,
    merge_conventions,
    node_attrs,
    spatial_transform,
)

jsonschema = pytest.importorskip("jsonschema")

SCHEMAS = Path(__file__).parent / "schemas"
GRID = GlobalGrid(resolution=Fraction(1, 800), cell_size=Fraction(1, 2), chunk_size=100)
CELL = GRID.cell_of(15.9, 46.1)


def _validator(name: str) -> list:
    """The schema under both readings: draft-07 as it declares (where keywords beside a
    ``$ref`` are ignored) and 2020-12, which applies them as Ajv 8 does, the validator the
    convention repositories test their schemas with; so the ``zarr_conventions`` registration
    next to the ``$ref`` is checked too."""
    schema = json.loads((SCHEMAS / f"{name}-v0.1.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return [jsonschema.Draft7Validator(schema), jsonschema.Draft202012Validator(schema)]


def _errors(validators: list, doc: dict) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for v in validators
        for e in v.iter_errors(doc)
    ]


@pytest.fixture(scope="module")
def real_store(real_catalog, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("geozarr") / "m.zarr"
    s2cube.mosaic(
        real_catalog,
        store=store,
        bbox=GRID.cell_bounds(CELL),
        grid=GRID,
    )
    return store


def _doc(store: Path, path: str) -> dict:
    return json.loads((store / path / "zarr.json").read_text())


def _nodes(store: Path) -> dict[str, dict]:
    """Every group of the pyramid (root = level 0, overviews/k) and its data arrays."""
    meta = store_metadata(store)
    data_vars = [*meta["bands"], "date", "scene", "clear_count"]
    out = {}
    for lv in pyramid(GRID):
        out[lv.path or "."] = _doc(store, lv.path)
        for v in data_vars:
            key = f"{lv.path}/{v}" if lv.path else v
            out[key] = _doc(store, key)
    return out


def test_every_level_and_array_validates_against_proj_and_spatial(real_store):
    proj, spatial = _validator("proj"), _validator("spatial")
    nodes = _nodes(real_store)
    levels = pyramid(GRID)
    groups = [k for k, d in nodes.items() if d["node_type"] == "group"]
    assert len(groups) == len(levels) == 13  # root + 12 overview levels, nothing skipped
    assert len(nodes) == len(levels) * 8
    for key, doc in nodes.items():
        assert not _errors(proj, doc), (key, _errors(proj, doc))
        assert not _errors(spatial, doc), (key, _errors(spatial, doc))
        attrs = doc["attributes"]
        assert attrs["proj:code"] == "EPSG:4326"
        names = [c["name"] for c in attrs["zarr_conventions"]]
        assert "proj" in names and "spatial" in names
        assert attrs["grid_mapping" if doc["node_type"] == "array" else "proj:code"]


def test_spatial_attributes_say_what_the_arrays_are(real_store):
    """What the schemas cannot check: names match dimension_names, shapes match, and the
    transform puts pixel centres exactly on the latitude/longitude coordinates."""
    for lv in pyramid(GRID):
        group = _doc(real_store, lv.path)["attributes"]
        assert group["spatial:shape"] == list(lv.shape)
        assert group["spatial:transform"] == spatial_transform(lv.window)
        assert group["spatial:bbox"] == list(lv.window.bounds)
        red = _doc(real_store, f"{lv.path}/red" if lv.path else "red")
        assert red["attributes"]["spatial:dimensions"] == red["dimension_names"]
        assert red["attributes"]["spatial:shape"] == red["shape"]
        a, b, c, d, e, f = group["spatial:transform"]
        assert (b, d) == (0.0, 0.0) and a == -e == float(GRID.resolution * lv.factor)
        ds = xr.open_zarr(real_store, group=lv.path or None, chunks=None)
        lat, lon = ds["latitude"].values[:3], ds["longitude"].values[:3]
        rows = np.arange(3) + 0.5
        np.testing.assert_allclose(e * rows + f, lat, rtol=0, atol=1e-9)
        np.testing.assert_allclose(a * rows + c, lon, rtol=0, atol=1e-9)


def test_root_validates_against_multiscales_with_spatial_per_level(real_store):
    root = _doc(real_store, "")
    assert not _errors(_validator("multiscales"), root), _errors(_validator("multiscales"), root)
    layout = root["attributes"]["multiscales"]["layout"]
    for lv, entry in zip(pyramid(GRID), layout, strict=True):
        group = _doc(real_store, lv.path)["attributes"]
        assert entry["spatial:transform"] == group["spatial:transform"]
        assert entry["spatial:shape"] == group["spatial:shape"]
    names = [c["name"] for c in root["attributes"]["zarr_conventions"]]
    assert sorted(names) == ["multiscales", "proj", "spatial"]


@pytest.mark.parametrize("level", [0, 1, 3])
def test_cf_crs_still_reaches_xarray_and_rioxarray(real_store, level):
    """No s2cube code on the read path: plain xr.open_zarr(decode_coords="all") + rioxarray."""
    import rioxarray  # noqa: F401

    path = pyramid(GRID)[level].path or None
    ds = xr.open_zarr(real_store, group=path, decode_coords="all", chunks=None)
    assert "spatial_ref" in ds.coords
    assert ds["red"].rio.crs.to_epsg() == 4326
    sub = ds["red"].isel(latitude=slice(10, 20), longitude=slice(30, 40))
    gz = _doc(real_store, path or "")["attributes"]["spatial:transform"]
    want = [gz[0], 0.0, gz[2] + 30 * gz[0], 0.0, gz[4], gz[5] + 10 * gz[4]]
    np.testing.assert_allclose(list(sub.rio.transform(recalc=True))[:6], want, atol=1e-9)


def test_the_schemas_reject_broken_attributes(real_store):
    """The validation above can fail: the schemas catch a missing CRS, a bad transform, a
    wrong registration or a convention entry that is not the published one."""
    proj, spatial = _validator("proj"), _validator("spatial")
    good = _doc(real_store, "overviews/2/red")
    no_crs = copy.deepcopy(good)
    del no_crs["attributes"]["proj:code"]
    assert _errors(proj, no_crs)
    bad_code = copy.deepcopy(good)
    bad_code["attributes"]["proj:code"] = "4326"
    assert _errors(proj, bad_code)
    bad_transform = copy.deepcopy(good)
    bad_transform["attributes"]["spatial:transform"] = [1.0, 0.0, 0.0, 0.0, -1.0]
    assert _errors(spatial, bad_transform)
    no_dims = copy.deepcopy(good)
    del no_dims["attributes"]["spatial:dimensions"]
    assert _errors(spatial, no_dims)  # required on arrays
    bad_reg = copy.deepcopy(good)
    bad_reg["attributes"]["spatial:registration"] = "centre"
    assert _errors(spatial, bad_reg)
    wrong_url = copy.deepcopy(good)
    for c in wrong_url["attributes"]["zarr_conventions"]:
        c["spec_url"] = c["spec_url"].replace("v0.1", "v9")
    assert _errors(proj, wrong_url) and _errors(spatial, wrong_url)


def test_attrs_are_pure_and_merge_conventions_once():
    w = GRID.window(4)
    attrs = node_attrs(w, [{"name": "multiscales", "uuid": "x"}, dict(PROJ_CONVENTION)])
    assert [c["name"] for c in attrs["zarr_conventions"]] == ["multiscales", "proj", "spatial"]
    assert attrs["spatial:transform"] == [0.005, 0.0, -180.0, 0.0, -0.005, 90.0]
    assert attrs["spatial:shape"] == [36000, 72000]
    assert node_attrs(w) == node_attrs(w)
    assert merge_conventions([SPATIAL_CONVENTION, SPATIAL_CONVENTION]) == [
        PROJ_CONVENTION,
        SPATIAL_CONVENTION,
    ]
