"""One Sentinel-2 L2A item model, whatever the provider: normalising STAC items.

This module owns what a usable item is: ``proj:epsg`` always set (stackstac 0.5.1 reads only
that key, pystac ≥ 1.12 writes ``proj:code``), canonical asset keys (``red`` for ``B04``,
``scl`` for ``SCL``...), the MGRS tile, and the DN offset that brings every item to one
reflectance scale across processing baselines (see :func:`boa_offset`).  Items that cannot be
used are skipped with one warning that names them; a bad item never fails the whole search.
Items are deep-copied before they are changed.  :mod:`s2cube.search` finds the items.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import math
import re
import threading
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import pystac

from .dates import parse_date
from .errors import InputError

__all__ = [
    "ASSET_ALIASES",
    "BASELINE_04_START",
    "BOA_OFFSET_DN",
    "REFLECTANCE_BANDS",
    "SkippedItemWarning",
    "boa_offset",
    "normalize_item",
    "normalize_items",
]

#: canonical keys of the reflectance assets, in wavelength order
REFLECTANCE_BANDS = (
    "coastal",
    "blue",
    "green",
    "red",
    "rededge1",
    "rededge2",
    "rededge3",
    "nir",
    "nir08",
    "nir09",
    "cirrus",
    "swir16",
    "swir22",
)

#: canonical asset key → keys used by providers (Earth Search v1, Planetary Computer,
#: Earth Search v0)
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

#: date from which L2A products carry the +1000 DN BOA offset (processing baseline 04.00)
BASELINE_04_START = dt.datetime(2022, 1, 25, tzinfo=dt.UTC)
BOA_OFFSET_DN = 1000


class SkippedItemWarning(UserWarning):
    """Some items could not be used and were left out of the result."""


def _baseline(props: dict[str, Any]) -> float | None:
    # the key depends on the provider: s2: (Earth Search v1, Planetary Computer), the
    # processing extension, sentinel: (Earth Search v0)
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

    Examples
    --------
    >>> boa_offset(normalize_item(planetary_computer_item))  # doctest: +SKIP
    1000
    """
    props = item.properties
    applied = props.get("earthsearch:boa_offset_applied")
    baseline = _baseline(props)
    if baseline is not None:
        has_offset = baseline >= 4.0
    else:
        when = item.datetime or parse_date(props.get("start_datetime"), "datetime", end=False)
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


@functools.cache
def _known_epsg(code: int) -> bool:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_epsg(code)
    except CRSError:
        return False
    return True


def _projected_bounds(item: pystac.Item) -> tuple[float, float, float, float] | None:
    """The item's extent in its own CRS, from ``proj:bbox`` or ``proj:transform`` +
    ``proj:shape`` (of the item, else its first asset that has them); None if unknown."""
    sources = [item.properties, *(a.extra_fields for a in item.assets.values())]
    for src in sources:
        bbox = src.get("proj:bbox")
        if isinstance(bbox, list | tuple) and len(bbox) == 4:
            return (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3]))
        tr, shape = src.get("proj:transform"), src.get("proj:shape")
        if isinstance(tr, list | tuple) and len(tr) >= 6 and isinstance(shape, list | tuple):
            a, _, c, _, e, f = (float(v) for v in tr[:6])
            h, w = (float(v) for v in shape[:2])
            xs, ys = (c, c + a * w), (f, f + e * h)
            return (min(xs), min(ys), max(xs), max(ys))
    return None


_TRANSFORMERS = threading.local()


def _to_lonlat(epsg: int) -> Any:
    """A pyproj transformer from ``epsg`` to lon/lat, made once per thread and CRS (a
    transformer must not be shared between threads; making one costs about as much as
    checking an item)."""
    from pyproj import Transformer

    cache: dict[int, Any] = _TRANSFORMERS.__dict__.setdefault("by_epsg", {})
    if epsg not in cache:
        cache[epsg] = Transformer.from_crs(epsg, 4326, always_xy=True)
    return cache[epsg]


def crs_problem(item: pystac.Item) -> str | None:
    """Why a normalised item cannot be placed on the grid, or None.

    Its ``proj:epsg`` must be a CRS pyproj knows, and its projected extent (``proj:bbox``, or
    ``proj:transform`` + ``proj:shape``) taken to lon/lat in that CRS must overlap the item's
    own ``bbox`` by at least half: a valid but wrong EPSG (32634 for a 33T tile) puts every
    pixel a zone away, so the scene would silently add nothing while still taking part in
    colour matching.  Items without a projected extent pass the second check.

    >>> crs_problem(normalize_item(item))  # doctest: +SKIP
    """
    epsg = int(item.properties["s2cube:epsg"])
    if not _known_epsg(epsg):
        return f"proj:epsg {epsg} is not a CRS pyproj knows (unknown EPSG code)"
    bounds = _projected_bounds(item)
    if bounds is None or not item.bbox or len(item.bbox) < 4:
        return None
    try:
        to_lonlat = _to_lonlat(epsg)
        w, s, e, n = to_lonlat.transform_bounds(*bounds, densify_pts=5)
    except Exception as exc:  # pyproj raises several types for impossible transforms
        return f"its extent cannot be taken from EPSG:{epsg} to lon/lat ({exc})"
    bw, bs, be, bn = (float(v) for v in item.bbox[:4])
    overlap = max(0.0, min(e, be) - max(w, bw)) * max(0.0, min(n, bn) - max(s, bs))
    area = max((be - bw) * (bn - bs), 1e-12)
    if not all(map(math.isfinite, (w, s, e, n))) or overlap / area < 0.5:
        return (
            f"proj:epsg {epsg} does not match its geometry: its extent in EPSG:{epsg} lies at "
            f"lon/lat ({w:.2f}, {s:.2f}, {e:.2f}, {n:.2f}) but its bbox is "
            f"({bw:.2f}, {bs:.2f}, {be:.2f}, {bn:.2f}); fix the item's proj:epsg/proj:code"
        )
    return None


def normalize_item(item: pystac.Item | dict[str, Any]) -> pystac.Item:
    """Return a normalised deep copy of one Sentinel-2 L2A item.

    The copy has ``proj:epsg`` set, asset keys renamed to canonical names (``red``, ``scl``...;
    provider keys such as ``B04`` are kept too when they differ), and three s2cube properties:
    ``s2cube:boa_offset`` (DN to subtract), ``s2cube:mgrs_tile`` and ``s2cube:epsg``.

    Raises
    ------
    InputError
        If the item has no usable CRS, no SCL or no reflectance asset, or a missing/NaN cloud
        cover.

    Examples
    --------
    >>> item = normalize_item(pystac.Item.from_file("item.json"))  # doctest: +SKIP
    >>> item.properties["s2cube:mgrs_tile"], item.properties["s2cube:epsg"]  # doctest: +SKIP
    ('32TQS', 32632)
    """
    if isinstance(item, dict):
        item = pystac.Item.from_dict(copy.deepcopy(item), preserve_dict=False)
    else:
        item = item.clone()
    epsg = _epsg(item)
    if epsg is None:
        raise InputError(f"item {item.id!r} has no CRS (neither proj:code nor proj:epsg)")
    cloud: Any = item.properties.get("eo:cloud_cover")  # any JSON value: checked below
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
    """Normalise many items, skipping those that cannot be used with one warning.

    ``bands`` lists canonical asset keys every kept item must have (``scl`` is always required).
    The skipped items are named in one :class:`SkippedItemWarning`.

    Examples
    --------
    >>> items = normalize_items(pystac.ItemCollection.from_file("items.json"))  # doctest: +SKIP
    """
    kept: list[pystac.Item] = []
    skipped: list[str] = []
    seen: dict[str, int] = {}
    for raw in items:
        ident = raw.get("id", "?") if isinstance(raw, dict) else raw.id
        if ident in seen:
            # one scene listed twice would take two priority ranks and two scene indices
            seen[ident] += 1
            continue
        seen[ident] = 1
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
    twice = {k: n for k, n in seen.items() if n > 1}
    if twice:
        warnings.warn(
            f"{len(twice)} item id(s) appear more than once; each is kept once (the first): "
            + ", ".join(f"{k!r} ×{n}" for k, n in sorted(twice.items())),
            SkippedItemWarning,
            stacklevel=2,
        )
    return kept
