"""STAC search and item normalisation.

This module owns everything between a STAC source and a list of *normalised* items:

* where to look: a STAC API URL, a preset (``earth-search``, ``planetary-computer``), a local
  static catalog, or an ItemCollection / FeatureCollection file;
* what to keep: bbox or GeoJSON geometry, MGRS tiles, dates, maximum cloud cover;
* one item model whatever the provider: ``proj:epsg`` always set (stackstac 0.5.1 reads only
  that key, pystac ≥ 1.12 writes ``proj:code``), canonical asset keys (``red`` for ``B04``,
  ``scl`` for ``SCL``...), the MGRS tile, and the DN offset that brings every item to one
  reflectance scale across processing baselines (see :func:`boa_offset`).

Items that cannot be used are skipped with one warning that names them; a bad item never
fails the whole search.  Items are deep-copied before they are changed.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac

from .errors import CatalogError, EmptySearchError, InputError
from .grid import validate_bbox

__all__ = [
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

REFLECTANCE_BANDS = (
    "coastal", "blue", "green", "red", "rededge1", "rededge2", "rededge3",
    "nir", "nir08", "nir09", "cirrus", "swir16", "swir22",
)  # fmt: skip

#: canonical asset key → keys used by providers (Earth Search v1, Planetary Computer, Earth Search v0)
ASSET_ALIASES: dict[str, tuple[str, ...]] = {
    "coastal": ("coastal", "B01"),
    "blue": ("blue", "B02"),
    "green": ("green", "B03"),
    "red": ("red", "B04"),
    "rededge1": ("rededge1", "B05"),
    "rededge2": ("rededge2", "B06"),
    "rededge3": ("rededge3", "B07"),
    "nir": ("nir", "B08"),
    "nir08": ("nir08", "B8A"),
    "nir09": ("nir09", "B09"),
    "cirrus": ("cirrus", "B10"),
    "swir16": ("swir16", "B11"),
    "swir22": ("swir22", "B12"),
    "scl": ("scl", "SCL"),
    "aot": ("aot", "AOT"),
    "wvp": ("wvp", "WVP"),
    "visual": ("visual", "TCI", "visual_10m"),
}


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

#: date from which L2A products carry the +1000 DN BOA offset (processing baseline 04.00)
BASELINE_04_START = dt.datetime(2022, 1, 25, tzinfo=dt.UTC)
BOA_OFFSET_DN = 1000


class SkippedItemWarning(UserWarning):
    """Some items could not be used and were left out of the result."""


# --------------------------------------------------------------------------- dates
def _parse_date(value: str | dt.date | dt.datetime | None, name: str, end: bool) -> dt.datetime | None:
    if value is None or value == "" or value == "..":
        return None
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, dt.date):
        d = dt.datetime(value.year, value.month, value.day)
        if end:
            d = d + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    else:
        text = str(value).strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                d = dt.datetime.fromisoformat(text)
                if end:
                    d = d + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
            else:
                d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InputError(
                f"{name}={value!r} is not a date; use ISO format, e.g. 2023-08-01 or "
                "2023-08-01T10:00:00Z"
            ) from exc
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return d


def parse_dates(start: Any = None, end: Any = None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Parse a date range; ``end`` given as a day is inclusive.

    Raises
    ------
    InputError
        If a value is not a date or ``start`` is after ``end``.
    """
    s = _parse_date(start, "start", end=False)
    e = _parse_date(end, "end", end=True)
    if s is not None and e is not None and s > e:
        raise InputError(
            f"start={start!r} is after end={end!r}; the date range is reversed, swap the two dates"
        )
    return s, e


def _stac_datetime(start: dt.datetime | None, end: dt.datetime | None) -> str | None:
    if start is None and end is None:
        return None

    def fmt(d: dt.datetime | None) -> str:
        return ".." if d is None else d.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return f"{fmt(start)}/{fmt(end)}"


# --------------------------------------------------------------------------- normalisation
def _baseline(props: dict[str, Any]) -> float | None:
    for key in ("s2:processing_baseline", "processing:version", "sentinel:processing_baseline"):
        value = props.get(key)
        if value not in (None, ""):
            try:
                return float(str(value))
            except ValueError:
                continue
    return None


def boa_offset(item: pystac.Item) -> int:
    """DN to subtract from this item's reflectance so that DN/10000 is BOA reflectance.

    Processing baseline ≥ 04.00 (from 2022-01-25) adds +1000 DN.  Earth Search v1 removes it
    and says so with ``earthsearch:boa_offset_applied: true`` (while ``raster:bands`` still lists
    an offset, which is why that field is not used).  Planetary Computer keeps it.  Without a
    baseline the acquisition date decides.
    """
    props = item.properties
    applied = props.get("earthsearch:boa_offset_applied")
    baseline = _baseline(props)
    if baseline is not None:
        has_offset = baseline >= 4.0
    else:
        when = item.datetime or _parse_date(props.get("start_datetime"), "datetime", end=False)
        has_offset = bool(when and when >= BASELINE_04_START)
    if not has_offset:
        return 0
    if applied is True or str(applied).lower() == "true":
        return 0
    return BOA_OFFSET_DN


def _epsg(item: pystac.Item) -> int | None:
    candidates: list[Any] = [item.properties.get("proj:epsg"), item.properties.get("proj:code")]
    for asset in item.assets.values():
        candidates += [asset.extra_fields.get("proj:epsg"), asset.extra_fields.get("proj:code")]
    for value in candidates:
        if value in (None, ""):
            continue
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"(?:EPSG:)?(\d{4,5})", str(value).strip(), flags=re.I)
        if match:
            return int(match.group(1))
    return None


def _mgrs_tile(item: pystac.Item) -> str | None:
    p = item.properties
    code = p.get("grid:code")
    if isinstance(code, str) and code.upper().startswith("MGRS-"):
        return code[5:].upper()
    if p.get("s2:mgrs_tile"):
        return str(p["s2:mgrs_tile"]).upper().lstrip("T")
    for prefix in ("mgrs", "sentinel"):
        zone = p.get(f"{prefix}:utm_zone")
        band = p.get(f"{prefix}:latitude_band")
        square = p.get(f"{prefix}:grid_square")
        if zone and band and square:
            return f"{int(zone):02d}{band}{square}".upper()
    match = re.search(r"_T?(\d{2}[C-X][A-Z]{2})_", item.id)
    return match.group(1) if match else None


def normalize_item(item: pystac.Item | dict[str, Any]) -> pystac.Item:
    """Return a normalised deep copy of one Sentinel-2 L2A item.

    The copy has ``proj:epsg`` set, asset keys renamed to canonical names (``red``, ``scl``...;
    provider keys such as ``B04`` are kept too when they differ), and three s2cube properties:
    ``s2cube:boa_offset`` (DN to subtract), ``s2cube:mgrs_tile`` and ``s2cube:epsg``.

    Raises
    ------
    InputError
        If the item has no usable CRS, no SCL or no reflectance asset, or a missing/NaN cloud cover.
    """
    if isinstance(item, dict):
        item = pystac.Item.from_dict(copy.deepcopy(item), preserve_dict=False)
    else:
        item = item.clone()
    epsg = _epsg(item)
    if epsg is None:
        raise InputError(f"item {item.id!r} has no CRS (neither proj:code nor proj:epsg)")
    cloud = item.properties.get("eo:cloud_cover")
    try:
        cloud_f = float(cloud)
    except (TypeError, ValueError):
        cloud_f = math.nan
    if not math.isfinite(cloud_f):
        raise InputError(f"item {item.id!r} has no valid eo:cloud_cover ({cloud!r})")
    renamed: dict[str, pystac.Asset] = {}
    for canonical, aliases in ASSET_ALIASES.items():
        for key in aliases:
            if key in item.assets:
                renamed[canonical] = item.assets[key]
                break
    if "scl" not in renamed:
        raise InputError(f"item {item.id!r} has no SCL asset (looked for {ASSET_ALIASES['scl']})")
    if not any(b in renamed for b in REFLECTANCE_BANDS):
        raise InputError(f"item {item.id!r} has no reflectance asset")
    for key, asset in renamed.items():
        item.assets[key] = asset
    item.properties["proj:epsg"] = epsg
    item.properties["s2cube:epsg"] = epsg
    item.properties["s2cube:boa_offset"] = boa_offset(item)
    item.properties["s2cube:mgrs_tile"] = _mgrs_tile(item)
    item.properties["eo:cloud_cover"] = cloud_f
    if item.datetime is None:
        raise InputError(f"item {item.id!r} has no datetime")
    return item


def normalize_items(
    items: Iterable[pystac.Item | dict[str, Any]], *, bands: Sequence[str] | None = None
) -> list[pystac.Item]:
    """Normalise many items, skipping (with one :class:`SkippedItemWarning`) those that cannot be used.

    ``bands`` lists canonical asset keys every kept item must have (``scl`` is always required).
    """
    kept: list[pystac.Item] = []
    skipped: list[str] = []
    for raw in items:
        ident = raw.get("id", "?") if isinstance(raw, dict) else raw.id
        try:
            item = normalize_item(raw)
        except (InputError, KeyError, ValueError, TypeError) as exc:
            skipped.append(f"{ident} ({exc})")
            continue
        missing = [b for b in (bands or ()) if b not in item.assets]
        if missing:
            skipped.append(f"{ident} (missing assets {missing})")
            continue
        kept.append(item)
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unusable item(s): " + "; ".join(skipped),
            SkippedItemWarning,
            stacklevel=2,
        )
    return kept


# --------------------------------------------------------------------------- sources
def _is_url(text: str) -> bool:
    return bool(re.match(r"^https?://", text, flags=re.I))


def _load_local(path: Path) -> list[pystac.Item]:
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
    kind = data.get("type")
    if kind == "FeatureCollection":
        items = pystac.ItemCollection.from_dict(data, preserve_dict=False)
        out = []
        for it in items:
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
        if any(k in text for k in ("Max retries", "Failed to establish", "Name or service", "timed out")):
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
    catalog: str | Path,
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
            datetime=_stac_datetime(start_d, end_d),
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
