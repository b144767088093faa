"""Tests of the synthetic Sentinel-2 L2A sample catalog (s2cube.testing.sample)."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import pathlib
import re
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from pyproj import Transformer
from shapely import contains_xy
from shapely.geometry import box, shape

from s2cube.errors import InputError
from s2cube.testing import (
    BANDS,
    PARAMS_FILENAME,
    SAMPLE_BBOX,
    SAMPLE_DATES,
    make_sample_catalog,
    sample_truth,
)

FILES = {
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "nir": "B08",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}
ID_RE = re.compile(r"^S2[AB]_(\d{2})([C-X])([A-Z]{2})_(\d{8})_0_L2A$")
REQUIRED_PROPS = [
    "datetime",
    "platform",
    "constellation",
    "instruments",
    "eo:cloud_cover",
    "proj:code",
    "mgrs:utm_zone",
    "mgrs:latitude_band",
    "mgrs:grid_square",
    "grid:code",
    "view:sun_azimuth",
    "view:sun_elevation",
    "s2:mean_solar_azimuth",
    "s2:mean_solar_zenith",
    "s2:processing_baseline",
    "s2:product_type",
    "s2:product_uri",
    "s2:nodata_pixel_percentage",
    "s2:cloud_shadow_percentage",
    "s2:vegetation_percentage",
    "s2:water_percentage",
    "s2:medium_proba_clouds_percentage",
    "s2:high_proba_clouds_percentage",
    "s2:thin_cirrus_percentage",
    "s2:snow_ice_percentage",
    "s2:granule_id",
    "s2:datatake_id",
]


@dataclass
class Sample:
    catalog_json: pathlib.Path
    seconds: float
    meta: dict[str, Any]
    items: dict[tuple[int, str], pystac.Item]  # (date index, MGRS tile) -> item
    raw: dict[str, dict[str, Any]]  # item id -> item JSON as written

    def read(self, date_index: int, tile: str, asset: str) -> np.ndarray:
        return read_asset(self.items[(date_index, tile)], asset)

    def date(self, **match: Any) -> dict[str, Any]:
        """The first date record whose fields equal ``match``."""
        for d in self.meta["dates"]:
            if all(d[k] == v for k, v in match.items()):
                return d
        raise AssertionError(f"no date with {match}")

    @property
    def tiles(self) -> list[dict[str, Any]]:
        return self.meta["tiles"]


def read_asset(item: pystac.Item, asset: str) -> np.ndarray:
    with rasterio.open(item.assets[asset].get_absolute_href()) as ds:
        return ds.read(1)


def pixel_hashes(catalog_json: pathlib.Path) -> dict[str, str]:
    out = {}
    for item in pystac.Catalog.from_file(str(catalog_json)).get_items(recursive=True):
        for key in FILES:
            a = read_asset(item, key)
            digest = hashlib.sha256(a.tobytes() + str(a.dtype).encode()).hexdigest()
            out[f"{item.id}/{key}"] = digest
    return out


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    root = tmp_path_factory.mktemp("sample") / "catalog"
    t0 = time.perf_counter()
    catalog_json = make_sample_catalog(root)
    seconds = time.perf_counter() - t0
    meta = json.loads((root / PARAMS_FILENAME).read_text())
    catalog = pystac.Catalog.from_file(str(catalog_json))
    by_date = {d["date"]: d["index"] for d in meta["dates"]}
    items, raw = {}, {}
    for item in catalog.get_items(recursive=True):
        m = ID_RE.match(item.id)
        assert m, item.id
        day = f"{m[4][:4]}-{m[4][4:6]}-{m[4][6:]}"
        items[(by_date[day], f"{m[1]}{m[2]}{m[3]}")] = item
        raw[item.id] = json.loads(self_path(item).read_text())
    return Sample(catalog_json, seconds, meta, items, raw)


def self_path(obj: pystac.STACObject) -> pathlib.Path:
    """The file a STAC object was read from."""
    href = obj.get_self_href()
    assert href is not None, f"{obj.id} has no self href"
    return pathlib.Path(href)


def acquired(item: pystac.Item) -> dt.datetime:
    """The acquisition time of an item (every sample item has one)."""
    assert item.datetime is not None, f"{item.id} has no datetime"
    return item.datetime


def lonlat_of_pixels(
    tile: dict[str, Any], rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    a, _, c, _, e, f = tile["transform"]
    x = c + (cols + 0.5) * a
    y = f + (rows + 0.5) * e
    return Transformer.from_crs(tile["epsg"], 4326, always_xy=True).transform(x, y)


def pixel_of_lonlat(
    tile: dict[str, Any], lon: np.ndarray, lat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    a, _, c, _, e, f = tile["transform"]
    x, y = Transformer.from_crs(4326, tile["epsg"], always_xy=True).transform(lon, lat)
    return np.floor((np.asarray(y) - f) / e).astype(int), np.floor((np.asarray(x) - c) / a).astype(
        int
    )


def expected_dn(date: dict[str, Any], band: str, truth: np.ndarray) -> np.ndarray:
    value = np.rint(date["gain"][band] * truth + date["offset"][band])
    return np.clip(value, 1, None) + date["boa_add"]


# ------------------------------------------------------------------------------------------
def test_generation_is_fast_small_and_idempotent(sample: Sample) -> None:
    assert sample.catalog_json.name == "catalog.json"
    assert sample.seconds < 10.0, f"generation took {sample.seconds:.1f} s"
    root = sample.catalog_json.parent
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 12e6, f"catalog is {size / 1e6:.1f} MB"
    stamp = sample.catalog_json.stat().st_mtime_ns
    t0 = time.perf_counter()
    assert make_sample_catalog(root) == sample.catalog_json
    assert time.perf_counter() - t0 < 0.5
    assert sample.catalog_json.stat().st_mtime_ns == stamp
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no temp dirs


def test_overwrite_and_refusals(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "small"
    first = make_sample_catalog(root, size=48, n_dates=1)
    with pytest.raises(InputError, match="overwrite=True"):
        make_sample_catalog(root, size=48, n_dates=1, seed=3)
    assert make_sample_catalog(root, size=48, n_dates=1, seed=3, overwrite=True) == first
    assert json.loads((root / PARAMS_FILENAME).read_text())["params"]["seed"] == 3
    assert len(list((root / "sentinel-2-l2a").glob("*/*.json"))) == 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        make_sample_catalog(foreign, size=48, n_dates=1)
    assert (foreign / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert make_sample_catalog(empty, size=48, n_dates=1).is_file()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_dates": 0},
        {"size": 8},
        {"pixel_size": -10.0},
        {"seed": -1},
        {"seed": 1.5},
        {"size": 4096, "pixel_size": 100.0},
    ],
)
def test_bad_arguments(tmp_path: pathlib.Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        make_sample_catalog(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_deterministic_per_seed(tmp_path: pathlib.Path) -> None:
    kw: dict[str, Any] = {"size": 96, "n_dates": 4}
    a = pixel_hashes(make_sample_catalog(tmp_path / "a", seed=7, **kw))
    b = pixel_hashes(make_sample_catalog(tmp_path / "b", seed=7, **kw))
    c = pixel_hashes(make_sample_catalog(tmp_path / "c", seed=8, **kw))
    assert len(a) == 2 * 4 * 7
    assert a == b
    assert a.keys() == c.keys()
    assert sum(a[k] != c[k] for k in a) >= 0.9 * len(a)


# ------------------------------------------------------------------------------------------
def test_catalog_structure(sample: Sample) -> None:
    catalog = pystac.Catalog.from_file(str(sample.catalog_json))
    (collection,) = list(catalog.get_children())
    assert isinstance(collection, pystac.Collection)
    assert collection.id == "sentinel-2-l2a"
    assert "synthetic data generated by s2cube.testing; not copernicus data" in (
        collection.description.lower()
    )
    coll_path = self_path(collection)
    assert coll_path == sample.catalog_json.parent / "sentinel-2-l2a" / "collection.json"
    items = list(collection.get_items())
    assert len(items) == 2 * 6 == len(sample.items)
    times = [acquired(it) for it in items]
    interval = collection.extent.temporal.intervals[0]
    assert interval[0] == min(times) and interval[1] == max(times)
    start, end = SAMPLE_DATES
    assert all(start <= t.date().isoformat() <= end for t in times)
    cbox = box(*collection.extent.spatial.bboxes[0])
    for item in items:
        path = self_path(item)
        assert path == coll_path.parent / item.id / f"{item.id}.json"
        assert cbox.contains(shape(item.geometry))
        assert item.bbox == pytest.approx(list(shape(item.geometry).bounds))
        missing = [k for k in REQUIRED_PROPS if k not in item.properties]
        assert not missing, (item.id, missing)
        assert item.properties["constellation"] == "sentinel-2"
        assert item.properties["platform"] in ("sentinel-2a", "sentinel-2b")
        assert item.properties["platform"][-1].upper() == item.id[2]
        m = ID_RE.match(item.id)
        assert m and item.properties["grid:code"] == f"MGRS-{m[1]}{m[2]}{m[3]}"
        assert item.properties["mgrs:utm_zone"] == int(m[1])
        assert item.properties["mgrs:latitude_band"] == m[2] == "T"
        assert item.properties["mgrs:grid_square"] == m[3]
        assert item.properties["proj:code"] == f"EPSG:{32600 + int(m[1])}"
        assert item.datetime is not None and item.datetime.strftime("%Y%m%d") == m[4]
        assert set(item.assets) == set(FILES)
        raw_assets = sample.raw[item.id]["assets"]
        for key, asset in item.assets.items():
            assert raw_assets[key]["href"] == f"./{FILES[key]}.tif"  # relative
            assert asset.media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
            assert asset.roles == ["data", "reflectance"]
            (rb,) = asset.extra_fields["raster:bands"]
            assert rb["nodata"] == 0
            if key == "scl":
                assert rb["data_type"] == "uint8" and "eo:bands" not in asset.extra_fields
            else:
                assert rb["data_type"] == "uint16"
                assert (rb["scale"], rb["offset"]) == (0.0001, -0.1)  # as Earth Search says
                assert asset.extra_fields["eo:bands"][0]["name"] == key
            assert asset.extra_fields["proj:shape"] == [300, 300]
            assert len(asset.extra_fields["proj:transform"]) == 6


def test_projection_keys_as_written(sample: Sample) -> None:
    """One tile has proj:epsg and proj:code in its JSON, the other only proj:code."""
    by_zone: dict[int, set[tuple[bool, bool]]] = {}
    for doc in sample.raw.values():
        p = doc["properties"]
        by_zone.setdefault(p["mgrs:utm_zone"], set()).add(("proj:epsg" in p, "proj:code" in p))
        if "proj:epsg" in p:
            assert p["proj:code"] == f"EPSG:{p['proj:epsg']}"
    assert by_zone == {32: {(True, True)}, 33: {(False, True)}}


def test_boa_offset_metadata(sample: Sample) -> None:
    kinds = set()
    for (i, _), item in sample.items.items():
        p = item.properties
        date = sample.meta["dates"][i]
        assert p["s2:processing_baseline"] == date["processing_baseline"]
        assert p["s2:product_uri"].split("_")[3] == "N" + date["processing_baseline"].replace(
            ".", ""
        )
        if p["s2:processing_baseline"] < "04.00":
            assert "earthsearch:boa_offset_applied" not in p
            assert date["boa_add"] == 0
        else:
            applied = p["earthsearch:boa_offset_applied"]
            assert date["boa_add"] == (0 if applied else 1000)
        kinds.add((p["s2:processing_baseline"], p.get("earthsearch:boa_offset_applied")))
    assert kinds == {("05.09", True), ("05.10", False), ("03.01", None)}


def test_rasters_match_metadata(sample: Sample) -> None:
    for item in sample.items.values():
        for asset in item.assets.values():
            with rasterio.open(asset.get_absolute_href()) as ds:
                assert ds.crs.to_epsg() == int(item.properties["proj:code"].split(":")[1])
                assert list(ds.transform)[:6] == asset.extra_fields["proj:transform"]
                assert [ds.height, ds.width] == asset.extra_fields["proj:shape"]
                assert ds.count == 1 and ds.nodata == 0
                assert ds.dtypes[0] == asset.extra_fields["raster:bands"][0]["data_type"]
                assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
                assert ds.compression.name.lower() == "deflate"
                assert ds.block_shapes[0] == (256, 256)
                assert ds.overviews(1) == [2]
                a, _, x0, _, e, y0 = ds.transform[:6]
                assert a == 60.0 and e == -60.0 and x0 % 60 == 0 and y0 % 60 == 0


def test_two_tiles_across_the_utm_zone_boundary(sample: Sample) -> None:
    t32, t33 = sample.tiles
    assert (t32["epsg"], t33["epsg"]) == (32632, 32633)
    full = {}
    for (i, tile), item in sample.items.items():
        if not sample.meta["dates"][i]["wedge"]:
            full[tile] = shape(item.geometry)
    a, b = full[t32["mgrs"]], full[t33["mgrs"]]
    assert a.bounds[0] < 12.0 < a.bounds[2] and b.bounds[0] < 12.0 < b.bounds[2]
    assert a.centroid.x < 12.0 < b.centroid.x
    # overlap: 20-30 % of a tile (25 % by design; the grids are rotated against each other)
    overlap_area = a.intersection(b).area / a.area
    assert 0.18 < overlap_area < 0.32
    # SAMPLE_BBOX: straddles 12°E, inside the union, touches both tiles
    bbox = box(*SAMPLE_BBOX)
    assert SAMPLE_BBOX[0] < 12.0 < SAMPLE_BBOX[2]
    assert a.union(b).contains(bbox)
    assert bbox.intersection(a).area > 0.3 * bbox.area and bbox.intersection(b).area > (
        0.3 * bbox.area
    )
    assert bbox.buffer(1e-9).contains(a.intersection(b).intersection(box(-180, 46.0, 180, 46.1)))


# ------------------------------------------------------------------------------------------
def test_scl_classes_and_cloud_cover(sample: Sample) -> None:
    cover = {}
    for (i, tile), item in sample.items.items():
        scl = sample.read(i, tile, "scl")
        assert set(np.unique(scl)) <= set(range(13))
        assert 1 <= int((scl == 12).sum()) <= 3  # invalid values, as real data has
        valid = scl != 0
        cc = 100.0 * np.isin(scl, (8, 9, 10)).sum() / valid.sum()
        assert item.properties["eo:cloud_cover"] == pytest.approx(cc, abs=1e-4)
        assert item.properties["s2:nodata_pixel_percentage"] == pytest.approx(
            100.0 * (~valid).mean(), abs=1e-4
        )
        assert item.properties["s2:cloud_shadow_percentage"] == pytest.approx(
            100.0 * (scl == 3).sum() / valid.sum(), abs=1e-4
        )
        assert 0 < (scl == 7).sum() < 0.005 * valid.sum()  # unclassified: rare
        assert (scl == 4).any() and (scl[valid] != 4).any()
        cover[(i, tile)] = cc
    clear = sample.date(clear=True)["index"]
    cloudy = max(range(6), key=lambda i: sample.meta["dates"][i]["cloud_fraction_target"])
    for tile in (t["mgrs"] for t in sample.tiles):
        assert cover[(clear, tile)] == 0.0
        assert cover[(cloudy, tile)] > 60.0
        partial = [cover[(i, tile)] for i in range(6) if i not in (clear, cloudy)]
        assert all(0.5 < c < 60.0 for c in partial)
    all_scl = np.concatenate([sample.read(i, t, "scl").ravel() for (i, t) in sample.items])
    assert set(np.unique(all_scl)) == set(range(13)) - {1}


def test_clouds_are_bright_and_shadows_dark(sample: Sample) -> None:
    clear = sample.date(clear=True)
    tile = sample.tiles[0]["mgrs"]
    base = {
        b: sample.read(clear["index"], tile, b).astype(float) - clear["boa_add"]
        for b in ("red", "nir")
    }
    n_shadow = 0
    for date in sample.meta["dates"]:
        if date["cloud_fraction_target"] == 0:
            continue
        scl = sample.read(date["index"], tile, "scl")
        red = sample.read(date["index"], tile, "red").astype(float) - date["boa_add"]
        nir = sample.read(date["index"], tile, "nir").astype(float) - date["boa_add"]
        high = scl == 9
        if high.any():
            assert np.median(red[high]) > 4000 and np.median(nir[high]) > 4000
        if (scl == 8).any():
            assert np.median(red[scl == 8]) > 3 * np.median(base["red"])
        shadow = (scl == 3) & (base["red"] > 0)
        n_shadow += int(shadow.sum())
        if shadow.sum() > 50:
            assert np.median(nir[shadow] / base["nir"][shadow]) < 0.75
            assert np.median(red[shadow] / base["red"][shadow]) < 0.8
    assert n_shadow > 1000


def test_shadows_are_clouds_displaced_away_from_the_sun(sample: Sample) -> None:
    tile = sample.tiles[1]
    for date in sample.meta["dates"]:
        if date["cloud_fraction_target"] < 0.2:
            continue
        de, dn = date["shadow_offset_m"]
        az = date["sun_azimuth"]
        # displacement points away from the sun: azimuth + 180°
        assert np.degrees(np.arctan2(de, dn)) % 360 == pytest.approx((az + 180) % 360, abs=1e-6)
        assert 1000 < np.hypot(de, dn) < 4000
        scl = sample.read(date["index"], tile["mgrs"], "scl")
        r, c = np.nonzero(scl == 3)
        # a shadow pixel's cloud sits at -displacement (grid rotation is < 3°: ±1 px)
        rs, cs = np.rint(r + dn / 60.0).astype(int), np.rint(c - de / 60.0).astype(int)
        inside = (rs >= 0) & (rs < 300) & (cs >= 0) & (cs < 300)
        src = scl[rs[inside], cs[inside]]
        assert inside.sum() > 100
        assert np.isin(src, (8, 9, 0)).mean() > 0.85


def test_clear_date_matches_truth_and_tiles_agree(sample: Sample) -> None:
    clear = sample.date(clear=True)
    rng = np.random.default_rng(1)
    rows, cols = rng.integers(0, 300, 2000), rng.integers(0, 300, 2000)
    for tile in sample.tiles:
        lon, lat = lonlat_of_pixels(tile, rows, cols)
        truth = sample_truth(lon, lat, date_index=clear["index"])
        for band in BANDS:
            got = sample.read(clear["index"], tile["mgrs"], band)[rows, cols].astype(float)
            assert np.abs(got - expected_dn(clear, band, truth[band])).max() <= 1
        scl = sample.read(clear["index"], tile["mgrs"], "scl")[rows, cols]
        assert (np.isin(scl, (7, 12)) | (scl == truth["scl"])).all()

    # the same lon/lat in both tiles: a point grid over the overlap of the two tiles
    t32, t33 = sample.tiles
    a = shape(sample.items[(clear["index"], t32["mgrs"])].geometry)
    b = shape(sample.items[(clear["index"], t33["mgrs"])].geometry)
    w, s, e, n = a.intersection(b).buffer(-0.003).bounds
    lon, lat = np.meshgrid(np.linspace(w, e, 40), np.linspace(s, n, 60))
    lon, lat = lon.ravel(), lat.ravel()
    keep = contains_xy(a.intersection(b).buffer(-0.002), lon, lat)
    lon, lat = lon[keep], lat[keep]
    assert lon.size > 1000
    values = {}
    for tile in (t32, t33):
        r, c = pixel_of_lonlat(tile, lon, lat)
        values[tile["mgrs"]] = {
            b: sample.read(clear["index"], tile["mgrs"], b)[r, c].astype(float)
            for b in ("red", "nir", "scl")
        }
    va, vb = values[t32["mgrs"]], values[t33["mgrs"]]
    # pixel centres of the two grids differ by < 1 pixel: most samples fall on the same parcel
    same_class = va["scl"] == vb["scl"]
    assert same_class.mean() > 0.85
    for band in ("red", "nir"):
        rel = np.abs(va[band] - vb[band]) / np.maximum(va[band], vb[band])
        assert np.median(rel) < 0.03
        assert np.corrcoef(va[band], vb[band])[0, 1] > 0.9


def test_boa_offset_in_pixels(sample: Sample) -> None:
    rng = np.random.default_rng(2)
    rows, cols = rng.integers(0, 300, 3000), rng.integers(0, 300, 3000)
    tile = sample.tiles[0]
    lon, lat = lonlat_of_pixels(tile, rows, cols)
    seen = set()
    for date in sample.meta["dates"]:
        truth = sample_truth(lon, lat, date_index=date["index"])
        red = sample.read(date["index"], tile["mgrs"], "red")
        scl = sample.read(date["index"], tile["mgrs"], "scl")[rows, cols]
        clear = np.isin(scl, (2, 4, 5, 6, 11))
        got = red[rows, cols][clear].astype(float)
        match = np.abs(got - expected_dn(date, "red", truth["red"][clear])) <= 1
        assert match.mean() > 0.8, date  # cloud edges / thin cirrus / haze are not flagged
        if date["boa_add"]:
            assert red[red > 0].min() >= 1001  # value = truth + 1000
            without = expected_dn(date, "red", truth["red"][clear]) - date["boa_add"]
            assert (np.abs(got - without) <= 1).mean() < 0.01
        seen.add(date["boa_add"])
    assert seen == {0, 1000}


def test_swath_wedges_on_alternate_dates(sample: Sample) -> None:
    wedge_tile = sample.meta["wedge_tile"]
    assert wedge_tile == sample.tiles[1]["mgrs"]
    full_area = shape(sample.items[(0, wedge_tile)].geometry).area
    for (i, tile), item in sample.items.items():
        scl = sample.read(i, tile, "scl")
        nodata = scl == 0
        wedge = sample.meta["dates"][i]["wedge"] and tile == wedge_tile
        assert wedge == (i % 2 == 1 and tile == wedge_tile)
        if wedge:
            assert 0.08 < nodata.mean() < 0.16
            assert nodata[:, -1].any() and not nodata[:, 0].any()  # the east side is cut
            ratio = shape(item.geometry).area / full_area
            assert ratio == pytest.approx(1 - nodata.mean(), abs=0.01)
        else:
            assert not nodata.any()
        assert item.properties["s2:nodata_pixel_percentage"] == pytest.approx(
            100 * nodata.mean(), abs=1e-4
        )
        for band in BANDS:
            data = sample.read(i, tile, band)
            assert ((data == 0) == nodata).all()


def test_surface_truth_is_realistic() -> None:
    lon, lat = np.meshgrid(
        np.linspace(SAMPLE_BBOX[0], SAMPLE_BBOX[2], 300),
        np.linspace(SAMPLE_BBOX[1], SAMPLE_BBOX[3], 100),
    )
    t = sample_truth(lon, lat)
    cls = t["scl"]
    for c in (2, 4, 5, 6):
        assert (cls == c).any(), c
    veg, water = cls == 4, cls == 6
    assert 200 < np.median(t["red"][veg]) < 600 and 2500 < np.median(t["nir"][veg]) < 4200
    assert np.median(t["nir"][water]) < 200
    for band in BANDS:
        assert t[band].min() >= 1 and t[band].max() <= 10000
    # deterministic and dependent on the seed
    assert np.array_equal(sample_truth(lon, lat)["red"], t["red"])
    assert not np.array_equal(sample_truth(lon, lat, seed=1)["red"], t["red"])
    snow_dates = [i for i in range(6) if (sample_truth(lon, lat, date_index=i)["scl"] == 11).any()]
    assert snow_dates and len(snow_dates) < 6


def test_stackstac_reads_the_catalog(sample: Sample) -> None:
    stackstac = pytest.importorskip("stackstac")
    items = []
    for item in sample.items.values():
        item = copy.deepcopy(item)
        item.properties["proj:epsg"] = int(item.properties["proj:code"].split(":")[1])
        item.make_asset_hrefs_absolute()  # stackstac does not resolve relative hrefs
        items.append(item)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = stackstac.stack(
            items,
            assets=["red", "scl"],
            epsg=4326,
            resolution=0.001,
            bounds_latlon=SAMPLE_BBOX,
            rescale=False,
            fill_value=np.uint16(0),
        ).compute()
    assert data.shape == (12, 2, 100, 300)
    red = data.sel(band="red").values
    scl = data.sel(band="scl").values
    assert (red > 0).mean() > 0.4
    assert np.isin(scl, (8, 9)).any() and np.isin(scl, (4,)).any()
    # the two tiles of the clear date cover the whole bbox together
    clear_times = np.flatnonzero(data["eo:cloud_cover"].values == 0.0)
    assert len(clear_times) == 2
    assert (red[clear_times].max(axis=0) > 0).all()
