"""STAC search: from a catalog and an area/date window to a list of normalised items.

This module owns where to look and what to keep:

* where: a STAC API URL, a preset (``earth-search``, ``planetary-computer``), a local static
  catalog, or an ItemCollection / FeatureCollection file;
* what: bbox or GeoJSON geometry, MGRS tiles, dates, maximum cloud cover.

Every item found is normalised once, here, by :mod:`s2cube.items` (one item model whatever the
provider); date ranges are parsed by :mod:`s2cube.dates`.  The item and date names are
re-exported, so ``from s2cube.search import normalize_items, parse_dates`` keeps working.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac

from .dates import parse_dates, stac_datetime
from .errors import CatalogError, EmptySearchError, InputError
from .grid import validate_bbox
from .items import (
    ASSET_ALIASES,
    REFLECTANCE_BANDS,
    SkippedItemWarning,
    boa_offset,
    normalize_item,
    normalize_items,
)

__all__ = [
    "Catalog",
    "find_items",
    "normalised",
    "PRESETS",
    "ASSET_ALIASES",
    "REFLECTANCE_BANDS",
    "search",
    "normalize_item",
    "normalize_items",
    "boa_offset",
    "parse_dates",
    "SkippedItemWarning",
]


@dataclass(frozen=True)
class Preset:
    """A known STAC API and the collection holding Sentinel-2 L2A."""

    url: str
    collection: str
    sign: bool = False


PRESETS: dict[str, Preset] = {
    "earth-search": Preset("https://earth-search.aws.element84.com/v1", "sentinel-2-l2a"),
    "planetary-computer": Preset(
        "https://planetarycomputer.microsoft.com/api/stac/v1", "sentinel-2-l2a", sign=True
    ),
}


def _is_url(text: str) -> bool:
    return bool(re.match(r"^https?://", text, flags=re.I))


def _load_local(path: Path) -> list[pystac.Item]:
    """The items of a local STAC file; a malformed file or link is a :class:`CatalogError`
    that names it (never a traceback from pystac)."""
    try:
        return _read_local(path)
    except (pystac.STACError, pystac.STACTypeError, KeyError, ValueError, TypeError) as exc:
        detail = str(exc).replace("\n", " ")[:300]
        raise CatalogError(
            f"catalog {str(path)!r} is malformed: {detail} (a {type(exc).__name__}); fix or "
            "remove the broken file or link, or give another catalog"
        ) from exc


def _read_local(path: Path) -> list[pystac.Item]:
    if not path.exists():
        raise CatalogError(
            f"catalog {str(path)!r} does not exist; give a STAC API URL, a preset "
            f"({', '.join(PRESETS)}), a catalog.json/collection.json or an ItemCollection file"
        )
    if path.is_dir():
        for name in ("catalog.json", "collection.json"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise CatalogError(f"directory {str(path)!r} holds no catalog.json or collection.json")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"cannot read STAC JSON {str(path)!r}: {exc}") from exc
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "FeatureCollection":
        collection = pystac.ItemCollection.from_dict(data, preserve_dict=False)
        out = []
        for it in collection:
            it.set_self_href(None)
            for asset in it.assets.values():
                if not _is_url(asset.href) and not Path(asset.href).is_absolute():
                    asset.href = str((path.parent / asset.href).resolve())
            out.append(it)
        return out
    if kind == "Feature":
        item = pystac.Item.from_file(str(path))
        item.make_asset_hrefs_absolute()
        return [item]
    if kind in ("Catalog", "Collection"):
        cat = pystac.read_file(str(path))
        assert isinstance(cat, pystac.Catalog)
        items = list(cat.get_items(recursive=True))
        for it in items:
            it.make_asset_hrefs_absolute()
        return items
    raise CatalogError(f"{str(path)!r} is not a STAC catalog, collection, item or item collection")


def _api_search(
    url: str,
    *,
    collection: str,
    bbox: tuple[float, ...] | None,
    intersects: dict[str, Any] | None,
    datetime: str | None,
    max_cloud: float | None,
    limit: int | None,
    sign: bool,
) -> list[pystac.Item]:
    import pystac_client
    from pystac_client.exceptions import APIError

    modifier = None
    if sign:
        try:
            import planetary_computer

            modifier = planetary_computer.sign_inplace
        except ImportError:
            warnings.warn(
                "planetary-computer is not installed: asset URLs are not signed and reads may be "
                "refused; pip install planetary-computer",
                stacklevel=3,
            )
    try:
        client = pystac_client.Client.open(url, modifier=modifier)
        kwargs: dict[str, Any] = {"collections": [collection], "datetime": datetime}
        if bbox is not None:
            kwargs["bbox"] = list(bbox)
        if intersects is not None:
            kwargs["intersects"] = intersects
        if max_cloud is not None:
            kwargs["query"] = {"eo:cloud_cover": {"lte": max_cloud}}
        if limit is not None:
            kwargs["max_items"] = limit
        kwargs["limit"] = 100
        found = list(client.search(**kwargs).items())
    except APIError as exc:
        text = str(exc)
        unreachable = ("Max retries", "Failed to establish", "Name or service", "timed out")
        if any(k in text for k in unreachable):
            raise CatalogError(
                f"cannot reach STAC API {url!r} ({text.splitlines()[0][:200]}); check the URL "
                "and the network"
            ) from exc
        raise CatalogError(f"STAC API {url!r} refused the search: {text[:500]}") from exc
    except (OSError, ConnectionError) as exc:
        raise CatalogError(
            f"cannot reach STAC API {url!r}: {exc}; check the URL and the network"
        ) from exc
    except Exception as exc:  # requests' errors do not all derive from OSError
        if type(exc).__module__.startswith(("requests", "urllib3")):
            raise CatalogError(
                f"cannot reach STAC API {url!r}: {exc}; check the URL and the network"
            ) from exc
        raise
    # API items carry absolute hrefs already (URLs or, for a local server, file paths);
    # pystac would resolve a file path against the item's HTTP self link, so leave them
    return found


def _item_filter(
    item: pystac.Item,
    *,
    geom: Any,
    start: dt.datetime | None,
    end: dt.datetime | None,
    max_cloud: float | None,
    tiles: set[str] | None,
) -> bool:
    from shapely.geometry import shape

    if tiles is not None and item.properties.get("s2cube:mgrs_tile") not in tiles:
        return False
    when = item.datetime
    if when is not None:
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        if start is not None and when < start:
            return False
        if end is not None and when > end:
            return False
    if max_cloud is not None and float(item.properties.get("eo:cloud_cover", 0)) > max_cloud:
        return False
    if geom is not None and item.geometry is not None:
        if not shape(item.geometry).intersects(geom):
            return False
    return True


def search(
    catalog: str | os.PathLike[str],
    *,
    bbox: Sequence[float] | None = None,
    geometry: dict[str, Any] | None = None,
    mgrs_tiles: Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    max_cloud: float | None = None,
    collection: str | None = None,
    bands: Sequence[str] = ("red", "green", "blue", "nir"),
    limit: int | None = None,
    sign: bool | None = None,
    allow_empty: bool = False,
) -> list[pystac.Item]:
    """Search Sentinel-2 L2A items and return them normalised, newest first.

    Parameters
    ----------
    catalog
        A STAC API URL, a preset name (``"earth-search"``, ``"planetary-computer"``), or a local
        static catalog / collection / ItemCollection / FeatureCollection JSON file.
    bbox, geometry
        Area of interest: lon/lat bbox ``(west, south, east, north)`` or a GeoJSON geometry.
    mgrs_tiles
        Keep only these MGRS tiles (e.g. ``["33TWL"]``).
    start, end
        Date range (ISO strings or dates); a day-only ``end`` is inclusive.
    max_cloud
        Maximum ``eo:cloud_cover`` in percent.
    collection
        Collection id for STAC APIs (default ``sentinel-2-l2a``).
    bands
        Canonical asset keys each item must have; items without them are skipped.
    limit
        Maximum number of items to fetch from an API.
    sign
        Sign Planetary Computer asset URLs (default: on for that preset).
    allow_empty
        Return an empty list instead of raising :class:`EmptySearchError`.

    Examples
    --------
    >>> items = s2cube.search("earth-search", bbox=(15.9, 46.0, 16.1, 46.1),
    ...                       start="2023-08-01", end="2023-08-31", max_cloud=50)  # doctest: +SKIP
    """
    from shapely.geometry import box, shape

    bbox_t = validate_bbox(bbox) if bbox is not None else None
    start_d, end_d = parse_dates(start, end)
    if max_cloud is not None and not (0 <= float(max_cloud) <= 100):
        raise InputError(f"max_cloud={max_cloud!r} must be a percentage between 0 and 100")
    unknown = [b for b in bands if b not in ASSET_ALIASES]
    if unknown:
        raise InputError(
            f"unknown band(s) {unknown}; known bands: {', '.join(k for k in ASSET_ALIASES)}"
        )
    geom = None
    if geometry is not None:
        try:
            geom = shape(geometry)
        except Exception as exc:
            raise InputError(f"geometry is not valid GeoJSON: {exc}") from exc
        if geom.is_empty:
            raise InputError("geometry is empty")
        validate_bbox(geom.bounds)
    elif bbox_t is not None:
        geom = box(*bbox_t)
    tiles = {t.upper().lstrip("T") if len(t) == 6 else t.upper() for t in mgrs_tiles or ()} or None

    source = str(catalog)
    if source in PRESETS or _is_url(source):
        preset = PRESETS.get(source)
        url = preset.url if preset else source
        coll = collection or (preset.collection if preset else "sentinel-2-l2a")
        do_sign = sign if sign is not None else bool(preset and preset.sign)
        raw = _api_search(
            url,
            collection=coll,
            bbox=bbox_t if geometry is None else None,
            intersects=geometry,
            datetime=stac_datetime(start_d, end_d),
            max_cloud=None if max_cloud is None else float(max_cloud),
            limit=limit,
            sign=do_sign,
        )
    else:
        raw = _load_local(Path(source).expanduser())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedItemWarning)
        items = normalize_items(raw, bands=tuple(bands) + ("scl",))
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=2)
    items = [
        it
        for it in items
        if _item_filter(
            it,
            geom=geom,
            start=start_d,
            end=end_d,
            max_cloud=None if max_cloud is None else float(max_cloud),
            tiles=tiles,
        )
    ]
    if limit is not None:
        items = items[:limit]
    items.sort(key=lambda it: (it.datetime, it.id), reverse=True)
    if not items and not allow_empty:
        raise EmptySearchError(
            f"no usable Sentinel-2 item in {source!r} for bbox={bbox_t}, dates "
            f"{start or '..'}/{end or '..'}, max_cloud={max_cloud}, mgrs_tiles={mgrs_tiles}; "
            "widen the area, the dates or the cloud limit"
        )
    return items


#: a catalog (anything :func:`search` accepts) or a list of STAC items
Catalog = str | os.PathLike[str] | Sequence[pystac.Item]


def find_items(
    catalog: Catalog,
    *,
    bbox: Sequence[float],
    start: Any,
    end: Any,
    max_cloud: float | None,
    bands: Sequence[str],
    search_kwargs: Mapping[str, Any] | None = None,
) -> list[pystac.Item]:
    """Normalised items of a catalog (searched) or of a list of items (normalised)."""
    if isinstance(catalog, str | os.PathLike):
        return search(
            catalog,
            bbox=bbox,
            start=start,
            end=end,
            max_cloud=max_cloud,
            bands=bands,
            **dict(search_kwargs or {}),
        )
    items = normalised(catalog, bands)
    if not items:
        raise EmptySearchError("no usable item was given; nothing to composite")
    return items


def normalised(items: Sequence[pystac.Item], bands: Sequence[str]) -> list[pystac.Item]:
    """Items as :func:`s2cube.search` returns them (normalised on a copy unless they are)."""
    if all(isinstance(it, pystac.Item) and "s2cube:boa_offset" in it.properties for it in items):
        return list(items)
    return normalize_items(items, bands=(*bands, "scl"))
