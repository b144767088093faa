"""Search and normalisation against the real STAC items of both providers."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pystac
import pytest

from s2cube.errors import CatalogError, EmptySearchError, InputError
from s2cube.search import (
    SkippedItemWarning,
    boa_offset,
    normalize_item,
    normalize_items,
    parse_dates,
    search,
)

# one real item of each provider, and an Earth Search v1 FeatureCollection (under shared_data)
PC_2019 = (
    "stac_items/planetary_computer/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json"
)
ES_V1 = "stac_items/earth_search_v1/S2A_13TDE_20231008_0_L2A.json"
ES_V0 = "stac_items/earth_search_v0_legacy/S2A_28QCH_20200714_0_L2A.json"
ES_V1_COLLECTION = "stac_items/earth_search_v1/es_v1_items_2025-07-31_6tiles_20EPT_24M.geojson"


def _real_item_files(shared_data: Path) -> list[Path]:
    root = shared_data / "stac_items"
    return sorted(p for p in root.rglob("*") if p.suffix in (".json", ".geojson"))


def _items_from(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    if data["type"] == "FeatureCollection":
        return data["features"]
    if data["type"] == "Feature":
        return [data]
    return []


def test_all_real_items_normalise_to_one_model(shared_data):
    files = _real_item_files(shared_data)
    assert len(files) >= 6
    seen_providers = set()
    n = 0
    for f in files:
        for raw in _items_from(f):
            item = normalize_item(raw)
            n += 1
            p = item.properties
            assert isinstance(p["proj:epsg"], int) and 32601 <= p["proj:epsg"] <= 32760
            assert p["s2cube:epsg"] == p["proj:epsg"]
            assert len(p["s2cube:mgrs_tile"]) == 5, item.id
            assert p["s2cube:mgrs_tile"][:2] == str(p["proj:epsg"])[-2:], item.id
            assert p["s2cube:boa_offset"] in (0, 1000)
            for band in ("blue", "green", "red", "nir", "scl"):
                assert band in item.assets, (item.id, band)
            assert math.isfinite(p["eo:cloud_cover"])
            seen_providers.add(f.parent.name)
            # the raw input is not modified
            assert "s2cube:boa_offset" not in raw["properties"]
    assert n >= 30
    assert seen_providers == {"earth_search_v1", "earth_search_v0_legacy", "planetary_computer"}


def test_asset_hrefs_map_to_the_same_band_across_providers(shared_data):
    pc = normalize_item(_items_from(shared_data / PC_2019)[0])
    es = normalize_item(_items_from(shared_data / ES_V1)[0])
    v0 = normalize_item(_items_from(shared_data / ES_V0)[0])
    assert "B04" in pc.assets["red"].href and "B04" in v0.assets["red"].href
    assert es.assets["red"].href.endswith("B04.tif")
    assert "SCL" in pc.assets["scl"].href and es.assets["scl"].href.endswith("SCL.tif")
    assert pc.properties["s2cube:mgrs_tile"] == "06VVN"
    assert v0.properties["s2cube:mgrs_tile"] == "28QCH"
    assert es.properties["s2cube:mgrs_tile"] == "13TDE"


def test_boa_offset_rules(shared_data):
    es = _items_from(shared_data / ES_V1)[0]
    # Earth Search v1: baseline 05.09 with boa_offset_applied=true: already removed
    assert es["properties"]["earthsearch:boa_offset_applied"] is True
    assert normalize_item(es).properties["s2cube:boa_offset"] == 0
    # the same item without the flag (as Planetary Computer serves baseline >= 04.00): +1000 kept
    pc_like = copy.deepcopy(es)
    del pc_like["properties"]["earthsearch:boa_offset_applied"]
    assert normalize_item(pc_like).properties["s2cube:boa_offset"] == 1000
    # flag false: offset present
    flag_false = copy.deepcopy(es)
    flag_false["properties"]["earthsearch:boa_offset_applied"] = False
    assert normalize_item(flag_false).properties["s2cube:boa_offset"] == 1000
    # baseline 02.12 (Planetary Computer 2019): no offset whatever the flag
    pc = _items_from(shared_data / PC_2019)[0]
    assert normalize_item(pc).properties["s2cube:boa_offset"] == 0
    # no baseline at all: the date decides (2022-01-25)
    nob = copy.deepcopy(pc_like)
    del nob["properties"]["s2:processing_baseline"]
    assert boa_offset(pystac.Item.from_dict(nob)) == 1000
    nob["properties"]["datetime"] = "2021-06-01T10:00:00Z"
    assert boa_offset(pystac.Item.from_dict(nob)) == 0
    # raster:bands offset is NOT used to decide (it is wrong on Earth Search v1)
    assert any("offset" in b for a in es["assets"].values() for b in a.get("raster:bands", []))


def test_unusable_items_are_skipped_with_a_named_warning(shared_data):
    raws = _items_from(shared_data / ES_V1_COLLECTION)
    bad_scl = copy.deepcopy(raws[0])
    bad_scl["id"] = "NO-SCL"
    del bad_scl["assets"]["scl"]
    bad_cc = copy.deepcopy(raws[1])
    bad_cc["id"] = "NAN-CLOUD"
    bad_cc["properties"]["eo:cloud_cover"] = float("nan")
    bad_crs = copy.deepcopy(raws[2])
    bad_crs["id"] = "NO-CRS"
    for key in ("proj:epsg", "proj:code"):
        bad_crs["properties"].pop(key, None)
        for a in bad_crs["assets"].values():
            a.pop(key, None)
    with pytest.warns(SkippedItemWarning) as rec:
        kept = normalize_items([bad_scl, bad_cc, bad_crs, *raws[3:]])
    assert len(kept) == len(raws) - 3
    msg = str(rec[0].message)
    for ident in ("NO-SCL", "NAN-CLOUD", "NO-CRS"):
        assert ident in msg


def test_local_catalog_filters(real_catalog):
    all_items = search(real_catalog)
    assert len(all_items) == 10
    assert [i.datetime for i in all_items] == sorted((i.datetime for i in all_items), reverse=True)
    clear = search(real_catalog, max_cloud=5)
    assert {i.id for i in clear} == {i.id for i in all_items if i.properties["eo:cloud_cover"] <= 5}
    dated = search(real_catalog, start="2023-08-13", end="2023-08-15")
    assert len(dated) == 4 and all(i.datetime.day in (13, 15) for i in dated)
    one_tile = search(real_catalog, mgrs_tiles=["T33TWM"])
    assert len(one_tile) == 5 and {i.properties["s2cube:mgrs_tile"] for i in one_tile} == {"33TWM"}
    # 33TWL alone covers the south: a bbox south of 33TWM keeps only 33TWL
    south = search(real_catalog, bbox=(15.5, 45.2, 15.8, 45.3))
    assert {i.properties["s2cube:mgrs_tile"] for i in south} == {"33TWL"}
    # asset hrefs are absolute and exist
    assert all(Path(i.assets["red"].href).exists() for i in all_items)


def test_search_errors(real_catalog, tmp_path):
    with pytest.raises(InputError, match="reversed"):
        search(real_catalog, start="2023-08-20", end="2023-08-01")
    with pytest.raises(InputError, match="within -180..180"):
        search(real_catalog, bbox=(15, 45, 190, 46))
    with pytest.raises(InputError, match="unknown band"):
        search(real_catalog, bands=("red", "ultraviolet"))
    with pytest.raises(EmptySearchError, match="widen"):
        search(real_catalog, start="2020-01-01", end="2020-01-02")
    assert search(real_catalog, start="2020-01-01", end="2020-01-02", allow_empty=True) == []
    with pytest.raises(CatalogError, match="cannot reach"):
        search("http://127.0.0.1:9/stac", bbox=(15, 45, 16, 46))
    with pytest.raises(CatalogError, match="does not exist"):
        search(tmp_path / "nothing.json")
    with pytest.raises(InputError, match="not a date"):
        parse_dates("yesterday", None)
