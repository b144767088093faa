"""Tests for the test STAC API (:mod:`support.stac_api`): real pgstac, queried over HTTP.

One server (module-scoped) serves the 10 real Earth Search items of
``shared/data/s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m``; every check goes
through ``pystac-client`` exactly as production code talks to Earth Search.
Expected answers are computed from the static catalog itself, not hard-coded.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support.postgres import find_postgres
from support.stac_api import StacApiServer, missing_requirements, serve_catalog

pystac = pytest.importorskip("pystac")
pystac_client = pytest.importorskip("pystac_client")
shapely_geometry = pytest.importorskip("shapely.geometry")

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CATALOG = DATA / "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m" / "catalog.json"
COLLECTION = "sentinel-2-l2a"
LOCAL_ASSETS = ("blue", "green", "red", "nir", "scl")

pytestmark = [
    pytest.mark.skipif(not CATALOG.exists(), reason=f"shared test data not found at {CATALOG}"),
    pytest.mark.timeout(120),
]

# pystac-client 0.9 only recognises v1.0.* conformance URIs; stac-fastapi 7 announces sort as
# v1.1.0.
ignore_sort_conformance = pytest.mark.filterwarnings(
    "ignore::pystac_client.warnings.DoesNotConformTo"
)


def _require_server() -> None:
    problems = missing_requirements()
    if problems:
        msg = "STAC API server requirements missing: " + " | ".join(problems)
        if os.environ.get("CI") or os.environ.get("S2CUBE_REQUIRE_STACAPI"):
            pytest.fail(msg)  # in CI a missing service is a setup bug, not a skip
        pytest.skip(msg)


@pytest.fixture(scope="module")
def static_items() -> list[dict[str, Any]]:
    """The 10 items of the static catalog, as stored on disk."""
    cat = pystac.Catalog.from_file(str(CATALOG))
    items = [
        i.to_dict(include_self_link=False, transform_hrefs=False)
        for i in cat.get_items(recursive=True)
    ]
    assert len(items) == 10
    return items


@pytest.fixture(scope="module")
def api() -> Iterator[StacApiServer]:
    _require_server()
    server = serve_catalog(CATALOG)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(api: StacApiServer) -> Any:
    return pystac_client.Client.open(api.url)


def _ids(items: Any) -> list[str]:
    return [i.id for i in items]


def _dt(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_startup_time_is_reasonable(api: StacApiServer) -> None:
    assert api.startup_seconds is not None
    print(f"StacApiServer start took {api.startup_seconds:.1f} s")
    assert api.startup_seconds < 60
    assert api.url.startswith("http://127.0.0.1:")


def test_all_items(client: Any, static_items: list[dict[str, Any]]) -> None:
    got = _ids(client.search(collections=[COLLECTION], max_items=None).items())
    assert sorted(got) == sorted(i["id"] for i in static_items)
    assert len(got) == len(set(got)) == 10
    assert [c.id for c in client.get_collections()] == [COLLECTION]


def test_bbox_and_datetime(client: Any, static_items: list[dict[str, Any]]) -> None:
    bbox = (15.4, 46.4, 15.6, 46.6)  # inside 33TWM only (33TWL ends at about 46.05 N)
    start, end = "2023-08-12T00:00:00Z", "2023-08-19T00:00:00Z"
    box = shapely_geometry.box(*bbox)
    expected = sorted(
        i["id"]
        for i in static_items
        if shapely_geometry.shape(i["geometry"]).intersects(box)
        and _dt(start) <= _dt(i["properties"]["datetime"]) <= _dt(end)
    )
    assert 0 < len(expected) < 5  # the filter has to narrow
    got = sorted(
        _ids(client.search(collections=[COLLECTION], bbox=bbox, datetime=f"{start}/{end}").items())
    )
    assert got == expected
    # each filter alone narrows too
    only_bbox = _ids(client.search(bbox=bbox).items())
    assert len(only_bbox) == 5 and all("33TWM" in i for i in only_bbox)
    only_dt = _ids(client.search(datetime=f"{start}/{end}").items())
    assert len(only_dt) == 6


def _cloud_lt(static_items: list[dict[str, Any]], limit: float) -> list[str]:
    out = sorted(i["id"] for i in static_items if i["properties"]["eo:cloud_cover"] < limit)
    assert 0 < len(out) < len(static_items)
    return out


def test_query_extension(client: Any, static_items: list[dict[str, Any]]) -> None:
    got = client.search(collections=[COLLECTION], query={"eo:cloud_cover": {"lt": 10}}).items()
    assert sorted(_ids(got)) == _cloud_lt(static_items, 10)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_cql2_text_filter(client: Any, static_items: list[dict[str, Any]], method: str) -> None:
    got = client.search(
        collections=[COLLECTION], filter="eo:cloud_cover < 10", method=method
    ).items()
    assert sorted(_ids(got)) == _cloud_lt(static_items, 10)


def test_cql2_json_filter_and_queryables(
    api: StacApiServer, client: Any, static_items: list[dict[str, Any]]
) -> None:
    flt = {"op": "<", "args": [{"property": "eo:cloud_cover"}, 2]}
    got = client.search(collections=[COLLECTION], filter=flt, filter_lang="cql2-json").items()
    assert sorted(_ids(got)) == _cloud_lt(static_items, 2)
    with urllib.request.urlopen(f"{api.url}/queryables", timeout=10) as r:
        queryables = json.load(r)
    assert queryables["properties"]["eo:cloud_cover"]["type"] == "number"


@ignore_sort_conformance
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_sortby_cloud_cover(
    client: Any, static_items: list[dict[str, Any]], direction: str
) -> None:
    got = list(
        client.search(
            collections=[COLLECTION],
            sortby=[{"field": "properties.eo:cloud_cover", "direction": direction}],
            limit=4,  # sort order must hold across pages too
        ).items()
    )
    values = [i.properties["eo:cloud_cover"] for i in got]
    assert len(values) == 10
    # numeric, not lexicographic (e.g. 8.07 < 43.9)
    assert values == sorted(values, reverse=direction == "desc")
    on_disk = [i["properties"]["eo:cloud_cover"] for i in static_items]
    assert values == sorted(on_disk, reverse=direction == "desc")


def test_paging(client: Any, static_items: list[dict[str, Any]]) -> None:
    search = client.search(collections=[COLLECTION], limit=3)
    pages = [_ids(page) for page in search.pages()]
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    flat = [i for p in pages for i in p]
    assert sorted(flat) == sorted(i["id"] for i in static_items)
    assert len(set(flat)) == 10


def test_asset_hrefs_are_absolute_local_paths(client: Any) -> None:
    items = list(client.search(collections=[COLLECTION]).items())
    assert len(items) == 10
    for item in items:
        for key in LOCAL_ASSETS:
            href = item.assets[key].href
            assert Path(href).is_absolute(), href
            assert Path(href).is_file(), href
            assert Path(href).parent.name == item.id
        for key, asset in item.assets.items():  # nothing relative is left
            assert "://" in asset.href or Path(asset.href).is_absolute(), (key, asset.href)


def test_load_after_start_upserts(
    api: StacApiServer, client: Any, static_items: list[dict[str, Any]]
) -> None:
    other = "s2cube-load-test"
    base = json.loads(json.dumps(static_items[0]))
    base["links"] = []
    items = []
    for n in range(2):
        it = json.loads(json.dumps(base))
        it["id"] = f"copy-{n}"
        it["collection"] = other
        items.append(it)
    coll = {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": other,
        "description": "load() test",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [base["bbox"]]},
            "temporal": {"interval": [[base["properties"]["datetime"], None]]},
        },
        "links": [],
    }
    api.load([coll], items)
    items[0]["properties"]["eo:cloud_cover"] = 99.0
    api.load([coll], items)  # upsert: same ids again, no duplicates
    got = list(client.search(collections=[other]).items())
    assert sorted(_ids(got)) == ["copy-0", "copy-1"]
    assert {i.id: i.properties["eo:cloud_cover"] for i in got}["copy-0"] == 99.0
    # the original collection is untouched
    assert len(list(client.search(collections=[COLLECTION]).items())) == 10


def test_two_servers_and_stop(static_items: list[dict[str, Any]]) -> None:
    _require_server()
    items = [dict(i, links=[]) for i in static_items[:3]]  # dicts without a collection object
    with serve_catalog(items) as a, StacApiServer() as b:
        assert a.url != b.url
        tmp = a.tmpdir
        assert tmp is not None and tmp.exists()
        got = pystac_client.Client.open(a.url).search(collections=[COLLECTION]).items()
        assert sorted(_ids(got)) == sorted(i["id"] for i in items)
        with urllib.request.urlopen(f"{b.url}/collections", timeout=10) as r:
            assert json.load(r)["collections"] == []
    assert not a.running and a.tmpdir is None and not tmp.exists()
    with pytest.raises(RuntimeError, match="not running"):
        _ = a.url


def test_missing_postgres_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("S2CUBE_PG_BINDIR", str(tmp_path / "nowhere"))
    with pytest.raises(RuntimeError, match=r"install_system\.sh"):
        find_postgres()
    assert any("install_system.sh" in p for p in missing_requirements())
