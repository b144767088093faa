"""STAC metadata of the synthetic sample: items and the collection, as Earth Search writes them.

This module owns what the sample's STAC documents say (no file is written here): the asset
keys, titles and ``eo:bands`` of Earth Search v1 ``sentinel-2-l2a``, the item properties of
every extension it uses (``s2:``, ``mgrs:``, ``proj:``, ``view:``, ``earthsearch:``, including
its ``raster:bands`` offset bug), the SCL class percentages, and the collection summaries.
"""

from __future__ import annotations

import datetime as dt
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pystac
from pyproj import Transformer
from shapely.geometry import Polygon, mapping

from s2cube.testing.acquisitions import DateSpec, Tile, earth_sun_factor, sun_position

__all__ = [
    "ASSET_INFO",
    "COLLECTION_ID",
    "FORMAT_VERSION",
    "REDEDGE_ASSET_INFO",
    "make_collection",
    "make_item",
]

#: Version of the generator: a catalog written by another version is rebuilt.
FORMAT_VERSION = 1
COLLECTION_ID = "sentinel-2-l2a"

_COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"

#: Asset key -> (file stem, title, eo:bands entry or None)
ASSET_INFO: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "blue": (
        "B02",
        "Blue (band 2) - 10m",
        {
            "name": "blue",
            "common_name": "blue",
            "description": "Blue (band 2)",
            "center_wavelength": 0.49,
            "full_width_half_max": 0.098,
        },
    ),
    "green": (
        "B03",
        "Green (band 3) - 10m",
        {
            "name": "green",
            "common_name": "green",
            "description": "Green (band 3)",
            "center_wavelength": 0.56,
            "full_width_half_max": 0.045,
        },
    ),
    "red": (
        "B04",
        "Red (band 4) - 10m",
        {
            "name": "red",
            "common_name": "red",
            "description": "Red (band 4)",
            "center_wavelength": 0.665,
            "full_width_half_max": 0.038,
        },
    ),
    "nir": (
        "B08",
        "NIR 1 (band 8) - 10m",
        {
            "name": "nir",
            "common_name": "nir",
            "description": "NIR 1 (band 8)",
            "center_wavelength": 0.842,
            "full_width_half_max": 0.145,
        },
    ),
    "swir16": (
        "B11",
        "SWIR 1 (band 11) - 20m",
        {
            "name": "swir16",
            "common_name": "swir16",
            "description": "SWIR 1 (band 11)",
            "center_wavelength": 1.61,
            "full_width_half_max": 0.143,
        },
    ),
    "swir22": (
        "B12",
        "SWIR 2 (band 12) - 20m",
        {
            "name": "swir22",
            "common_name": "swir22",
            "description": "SWIR 2 (band 12)",
            "center_wavelength": 2.19,
            "full_width_half_max": 0.242,
        },
    ),
    "scl": ("SCL", "Scene classification map (SCL)", None),
}

#: the red-edge assets of a catalog made with ``rededge=True`` (Dynamic World needs B5-B7)
REDEDGE_ASSET_INFO: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    f"rededge{k}": (
        f"B0{k + 4}",
        f"Red edge {k} (band {k + 4}) - 20m",
        {
            "name": f"rededge{k}",
            "common_name": "rededge",
            "description": f"Red edge {k} (band {k + 4})",
            "center_wavelength": wl,
            "full_width_half_max": fw,
        },
    )
    for k, wl, fw in ((1, 0.704, 0.019), (2, 0.74, 0.018), (3, 0.783, 0.028))
}

_ITEM_EXTENSIONS = [
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
    # v2.0.0 (proj:code): with v1.1.0, pystac would migrate proj:epsg away on reading.
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
]


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _scl_percentages(scl: np.ndarray) -> dict[str, float]:
    # as Earth Search: classes over valid (non-zero) pixels, nodata over all pixels
    counts = np.bincount(scl.ravel(), minlength=256)
    valid = max(int(counts[1:].sum()), 1)

    def pct(*classes: int) -> float:
        return round(100.0 * float(sum(counts[c] for c in classes)) / valid, 6)

    return {
        "eo:cloud_cover": pct(8, 9, 10),
        "s2:nodata_pixel_percentage": round(100.0 * float(counts[0]) / scl.size, 6),
        "s2:dark_features_percentage": pct(2),
        "s2:cloud_shadow_percentage": pct(3),
        "s2:vegetation_percentage": pct(4),
        "s2:not_vegetated_percentage": pct(5),
        "s2:water_percentage": pct(6),
        "s2:unclassified_percentage": pct(7),
        "s2:medium_proba_clouds_percentage": pct(8),
        "s2:high_proba_clouds_percentage": pct(9),
        "s2:thin_cirrus_percentage": pct(10),
        "s2:snow_ice_percentage": pct(11),
    }


def make_item(
    item_id: str,
    item_dir: pathlib.Path,
    tile: Tile,
    spec: DateSpec,
    scl: np.ndarray,
    footprint: Polygon,
    rededge: bool = False,
) -> pystac.Item:
    """The STAC item of one tile on one date, its assets in ``item_dir``.

    ``scl`` is the item's SCL (its class percentages become properties) and ``footprint`` its
    lon/lat footprint (the swath-cut polygon on wedge dates); ``rededge`` adds the red-edge
    assets (:data:`REDEDGE_ASSET_INFO`).
    """
    when = spec.datetime(tile.index)
    lon_c, lat_c = Transformer.from_crs(tile.epsg, 4326, always_xy=True).transform(
        tile.x0 + tile.size * tile.pixel_size / 2, tile.y0 - tile.size * tile.pixel_size / 2
    )
    az, zen = sun_position(when, lon_c, lat_c)
    sat, bl = spec.platform, spec.baseline
    start = spec.datatake_start
    generated = when + dt.timedelta(hours=3, minutes=2, seconds=17)
    abs_orbit = spec.absolute_orbit
    gen, sense = f"{generated:%Y%m%dT%H%M%S}", f"{start:%Y%m%dT%H%M%S}"
    created = _iso(when + dt.timedelta(hours=6, minutes=21, seconds=46))
    perc = _scl_percentages(scl)
    orbit, tile_id = f"R{spec.relative_orbit:03d}", f"T{tile.mgrs}"
    product_uri = f"{sat}_MSIL2A_{sense}_N{bl.replace('.', '')}_{orbit}_{tile_id}_{gen}.SAFE"
    granule_id = f"{sat}_OPER_MSI_L2A_TL_2APS_{gen}_A{abs_orbit:06d}_{tile_id}_N{bl}"

    props: dict[str, Any] = {
        "created": created,
        "platform": "sentinel-2a" if sat == "S2A" else "sentinel-2b",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": perc.pop("eo:cloud_cover"),
        "proj:code": f"EPSG:{tile.epsg}",
    }
    if tile.both_proj_keys:
        props["proj:epsg"] = tile.epsg
    props.update(
        {
            "mgrs:utm_zone": tile.zone,
            "mgrs:latitude_band": tile.lat_band,
            "mgrs:grid_square": tile.square,
            "grid:code": f"MGRS-{tile.mgrs}",
            "view:sun_azimuth": az,
            "view:sun_elevation": 90.0 - zen,
            "s2:mean_solar_azimuth": az,
            "s2:mean_solar_zenith": zen,
            "s2:degraded_msi_data_percentage": 0,
            "s2:nodata_pixel_percentage": perc.pop("s2:nodata_pixel_percentage"),
            "s2:saturated_defective_pixel_percentage": 0,
            **perc,
            "s2:product_type": "S2MSI2A",
            "s2:processing_baseline": bl,
            "s2:product_uri": product_uri,
            "s2:generation_time": f"{generated:%Y-%m-%dT%H:%M:%S}.000000Z",
            "s2:datatake_id": f"G{sat}_{sense}_{abs_orbit:06d}_N{bl}",
            "s2:datatake_type": "INS-NOBS",
            "s2:datastrip_id": f"{sat}_OPER_MSI_L2A_DS_2APS_{gen}_S{sense}_N{bl}",
            "s2:granule_id": granule_id,
            "s2:reflectance_conversion_factor": earth_sun_factor(spec.day),
            "s2:sequence": "0",
        }
    )
    if spec.boa_offset_applied is not None:
        props["earthsearch:boa_offset_applied"] = spec.boa_offset_applied
    # the generator's name since the first version: changing it would change every item
    props["processing:software"] = {"s2cube.testing.sample": str(FORMAT_VERSION)}
    props["updated"] = created

    item = pystac.Item(
        id=item_id,
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=when,
        properties=props,
        stac_extensions=list(_ITEM_EXTENSIONS),
    )
    item.add_link(
        pystac.Link(
            "license",
            "https://www.apache.org/licenses/LICENSE-2.0",
            title="synthetic data generated by s2cube (not Copernicus data)",
        )
    )
    transform = list(tile.transform)[:6]
    assets = {**ASSET_INFO, **(REDEDGE_ASSET_INFO if rededge else {})}
    for key, (stem, title, eo_band) in assets.items():
        extra: dict[str, Any] = {}
        if eo_band is not None:
            extra["eo:bands"] = [dict(eo_band)]
            extra["gsd"] = tile.pixel_size
        extra["proj:shape"] = [tile.size, tile.size]
        extra["proj:transform"] = transform
        if key == "scl":
            extra["raster:bands"] = [
                {"nodata": 0, "data_type": "uint8", "spatial_resolution": tile.pixel_size}
            ]
        else:
            extra["raster:bands"] = [
                {
                    "nodata": 0,
                    "data_type": "uint16",
                    "bits_per_sample": 15,
                    "spatial_resolution": tile.pixel_size,
                    "scale": 0.0001,
                    "offset": -0.1,
                }
            ]
        item.add_asset(
            key,
            pystac.Asset(
                href=str(item_dir / f"{stem}.tif"),
                media_type=_COG_MEDIA_TYPE,
                title=title,
                roles=["data", "reflectance"],
                extra_fields=extra,
            ),
        )
    return item


def make_collection(items: Sequence[pystac.Item], pixel_size: float) -> pystac.Collection:
    """The ``sentinel-2-l2a`` collection of ``items`` (extent, summaries, ``item_assets``)."""
    bboxes = np.array([item.bbox for item in items])
    times = sorted(item.datetime for item in items if item.datetime is not None)
    item_assets: dict[str, Any] = {}
    for key, asset in items[0].assets.items():
        d = asset.to_dict()
        d.pop("href")
        item_assets[key] = d
    eo_bands = [dict(info[2]) for info in ASSET_INFO.values() if info[2] is not None]
    collection = pystac.Collection(
        id=COLLECTION_ID,
        title="Sentinel-2 Level 2A (synthetic sample)",
        description=(
            "Synthetic data generated by s2cube.testing; not Copernicus data. A small, "
            "deterministic imitation of the Earth Search v1 sentinel-2-l2a collection (two "
            "scaled-down MGRS tiles across the UTM zone 32/33 boundary) for tests and demos."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent(
                [
                    [
                        float(bboxes[:, 0].min()),
                        float(bboxes[:, 1].min()),
                        float(bboxes[:, 2].max()),
                        float(bboxes[:, 3].max()),
                    ]
                ]
            ),
            pystac.TemporalExtent([[times[0], times[-1]]]),
        ),
        license="Apache-2.0",
        keywords=["sentinel", "earth observation", "synthetic", "s2cube"],
        providers=[
            pystac.Provider(
                name="s2cube",
                roles=[
                    pystac.ProviderRole.PRODUCER,
                    pystac.ProviderRole.PROCESSOR,
                    pystac.ProviderRole.HOST,
                ],
                description="synthetic data generated by s2cube.testing; not Copernicus data",
            )
        ],
        summaries=pystac.Summaries(
            {
                "platform": sorted({item.properties["platform"] for item in items}),
                "constellation": ["sentinel-2"],
                "instruments": ["msi"],
                "gsd": [pixel_size],
                "eo:bands": eo_bands,
            }
        ),
        stac_extensions=[
            "https://stac-extensions.github.io/item-assets/v1.0.0/schema.json",
            "https://stac-extensions.github.io/view/v1.0.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
        ],
    )
    collection.extra_fields["item_assets"] = item_assets
    return collection
