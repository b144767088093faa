"""Writing the synthetic sample catalog: COGs, STAC JSON and the ground truth, atomically.

This module owns the I/O of :mod:`s2cube.testing`: :func:`make_sample_catalog` renders every
item of the scene (:mod:`s2cube.testing.scenes`), writes its Cloud-Optimized GeoTIFFs on a few
threads, saves the STAC catalog (:mod:`s2cube.testing.stac_items`) and the parameters /
ground-truth file, all in a temporary sibling directory that is then moved into place, so that
concurrent callers never see a half-written catalog.  What the catalog holds is described in
:mod:`s2cube.testing`.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pystac
import rasterio
from shapely.geometry.polygon import orient

from s2cube.errors import InputError
from s2cube.testing.acquisitions import BOA_ADD_OFFSET, DateSpec, Tile, check_params, to_local
from s2cube.testing.scenes import BANDS, REDEDGE_BANDS, cached_scene, rededge_dn
from s2cube.testing.stac_items import (
    ASSET_INFO,
    COLLECTION_ID,
    FORMAT_VERSION,
    REDEDGE_ASSET_INFO,
    make_collection,
    make_item,
)

__all__ = ["PARAMS_FILENAME", "make_sample_catalog"]

#: Name of the parameters / ground-truth file written next to ``catalog.json``.
PARAMS_FILENAME = "s2cube-sample.json"


def make_sample_catalog(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    n_dates: int = 6,
    size: int = 300,
    pixel_size: float = 60.0,
    overwrite: bool = False,
    cloud_scale: float = 1.0,
    rededge: bool = False,
) -> pathlib.Path:
    """Write the synthetic Sentinel-2 L2A sample catalog under ``path``.

    Writes ``path/catalog.json`` → ``path/sentinel-2-l2a/collection.json`` → one item per tile
    and date in ``path/sentinel-2-l2a/<id>/<id>.json`` with its COGs (``B02.tif`` ... ``B12.tif``,
    ``SCL.tif``) beside it, and ``path/s2cube-sample.json`` with the parameters and the ground
    truth of every date (gains, offsets, BOA offset, cloud fractions, shadow displacement,
    wedge).  See :mod:`s2cube.testing` for what the catalog holds.

    The call is idempotent: if ``path`` already holds a catalog made with the same parameters
    (by this generator version), it is returned without writing anything.  The catalog is built
    in a temporary sibling directory and moved into place, so a half-written catalog is never
    seen under ``path`` (concurrent callers are safe).

    Parameters
    ----------
    path : str or os.PathLike
        Directory to write into; created if needed.  It must be empty, absent, or hold a sample
        catalog.
    seed : int, default 0
        Seed of every random choice (surface layout, clouds, radiometry).
    n_dates : int, default 6
        Number of acquisition dates (1-60); the first six have fixed roles (clear, mostly
        cloudy, BOA offset not applied, baseline 03.01, ...), see :mod:`s2cube.testing`.
    size : int, default 300
        Tile width and height in pixels (32-4096).
    pixel_size : float, default 60.0
        Pixel size in metres (the tile is ``size * pixel_size`` metres wide, at most 250 km).
    overwrite : bool, default False
        Replace a sample catalog made with other parameters (only the files this function
        writes are removed).
    cloud_scale : float, default 1.0
        Multiplies every date's cloud and cirrus fractions (capped at 0.95); recorded in the
        parameters file only when it is not 1.
    rededge : bool, default False
        Also write the red-edge bands ``rededge1-3`` (``B05``-``B07``), derived from each item's
        red and nir (:func:`s2cube.testing.scenes.rededge_dn`), so that the catalog has all nine
        bands Dynamic World reads (with ``swir16``/``swir22``).  Recorded in the parameters
        file only when true; the other assets are the same either way.

    Returns
    -------
    pathlib.Path
        The path of ``catalog.json``.

    Raises
    ------
    s2cube.errors.InputError
        Bad parameters, or ``path`` holds something else (or a sample catalog with other
        parameters and ``overwrite`` is false).

    Notes
    -----
    Asset hrefs are relative (``./B04.tif``), as in a copied static catalog: call
    ``item.make_asset_hrefs_absolute()`` before handing items to stackstac.  The zone-32 items
    carry both ``proj:epsg`` and ``proj:code`` in their JSON, the zone-33 items only
    ``proj:code``; note that pystac (>= 1.12) drops ``proj:epsg`` when it reads an item, while
    stackstac 0.5.1 reads only ``proj:epsg``.

    Examples
    --------
    >>> import pystac
    >>> from s2cube.testing import SAMPLE_BBOX, make_sample_catalog
    >>> catalog = pystac.Catalog.from_file(str(make_sample_catalog(tmp_path)))  # doctest: +SKIP
    >>> len(list(catalog.get_items(recursive=True)))  # doctest: +SKIP
    12
    """
    check_params(seed, n_dates, size, pixel_size)
    root = pathlib.Path(path).expanduser().resolve()  # relative hrefs need an absolute root
    params: dict[str, Any] = {
        "seed": int(seed),
        "n_dates": int(n_dates),
        "size": int(size),
        "pixel_size": float(pixel_size),
    }
    if not (math.isfinite(cloud_scale) and cloud_scale >= 0):
        raise InputError(f"cloud_scale must be a finite number >= 0, got {cloud_scale!r}")
    if cloud_scale != 1.0:
        params["cloud_scale"] = float(cloud_scale)
    if rededge:
        params["rededge"] = True
    catalog_json = root / "catalog.json"
    existing = _read_params(root)
    if existing == params and not overwrite:
        return catalog_json
    if root.exists() and not root.is_dir():
        raise InputError(
            f"sample catalog path {str(root)!r} exists and is not a directory; "
            "pass a directory path"
        )
    ours = {"catalog.json", COLLECTION_ID, PARAMS_FILENAME}
    if root.is_dir():
        entries = {p.name for p in root.iterdir()}
        if entries - ours and not (existing is not None and overwrite):
            raise InputError(
                f"{str(root)!r} is not empty and does not hold only an s2cube sample catalog "
                f"(found {sorted(entries)[:5]}); pass an empty or new directory"
            )
        if existing is not None and existing != params and not overwrite:
            raise InputError(
                f"{str(root)!r} holds a sample catalog made with {existing}, not {params}; "
                "pass overwrite=True to replace it, or use another directory"
            )
        if entries & ours and existing is None and not overwrite:
            raise InputError(
                f"{str(root)!r} holds an incomplete sample catalog; pass "
                "overwrite=True to replace it"
            )

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the catalog directory should not be
    try:
        truth = _build(tmp, **params)
        _write_json(
            tmp / PARAMS_FILENAME,
            {
                # the generator's name since the first version: it is part of the files
                "generator": "s2cube.testing.sample",
                "format_version": FORMAT_VERSION,
                "params": params,
                **truth,
            },
        )
        _install(tmp, root, ours, params)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return catalog_json


def _read_params(root: pathlib.Path) -> dict[str, Any] | None:
    """The parameters of the sample catalog under ``root``, or None."""
    try:
        meta = json.loads((root / PARAMS_FILENAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        return None
    if not (root / "catalog.json").is_file():
        return None
    params = meta.get("params")
    return params if isinstance(params, dict) else None


def _install(tmp: pathlib.Path, root: pathlib.Path, ours: set[str], params: dict[str, Any]) -> None:
    """Move the finished catalog from ``tmp`` to ``root``."""
    try:
        os.rename(tmp, root)  # atomic; replaces an absent or empty directory
        return
    except OSError:
        pass
    if _read_params(root) == params:  # another process won the race with the same catalog
        return
    # ``root`` holds an older sample catalog that we replace (overwrite=True)
    (root / PARAMS_FILENAME).unlink(missing_ok=True)
    for name in sorted(ours - {PARAMS_FILENAME}):
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(tmp / name, target)
    os.replace(tmp / PARAMS_FILENAME, root / PARAMS_FILENAME)


def _write_json(path: pathlib.Path, obj: Any) -> None:
    # indented, with a final newline: the file is meant to be read by people too
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _write_cog(path: pathlib.Path, array: np.ndarray, tile: Tile, resampling: str) -> None:
    # 256 px tiles (128 below 256 px); GDAL adds overviews down to one block (one level at
    # the default 300 px).
    blocksize = 256 if tile.size >= 256 else 128
    with rasterio.open(
        path,
        "w",
        driver="COG",
        width=tile.size,
        height=tile.size,
        count=1,
        dtype=array.dtype.name,
        crs=f"EPSG:{tile.epsg}",
        transform=tile.transform,
        nodata=0,
        compress="deflate",
        predictor=2,
        blocksize=blocksize,
        overview_resampling=resampling,
    ) as dst:
        dst.write(array, 1)


def _build(
    tmp: pathlib.Path,
    *,
    seed: int,
    n_dates: int,
    size: int,
    pixel_size: float,
    cloud_scale: float = 1.0,
    rededge: bool = False,
) -> dict[str, Any]:
    """Write rasters and STAC under ``tmp``; return the ground-truth record."""
    scene = cached_scene(seed, size, pixel_size, cloud_scale)
    coll_dir = tmp / COLLECTION_ID
    lonlat = [tile.pixel_lonlat() for tile in scene.tiles]
    surfaces = [scene.surface(*to_local(*ll)) for ll in lonlat]
    swath = scene.wedge_polygon()
    items: list[pystac.Item] = []
    dates: list[dict[str, Any]] = []
    # GDAL compresses with the GIL released: write the COGs on a few threads.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        writes = []
        for i in range(n_dates):
            spec = scene.date(i)
            for tile in scene.tiles:
                dn, scl = scene.render(tile, i, lonlat[tile.index], surfaces[tile.index])
                item_id = f"{spec.platform}_{tile.mgrs}_{spec.day:%Y%m%d}_0_L2A"
                item_dir = coll_dir / item_id
                item_dir.mkdir(parents=True)
                for b, band in enumerate(BANDS):
                    writes.append(
                        pool.submit(
                            _write_cog,
                            item_dir / f"{ASSET_INFO[band][0]}.tif",
                            dn[b],
                            tile,
                            "average",
                        )
                    )
                writes.append(pool.submit(_write_cog, item_dir / "SCL.tif", scl, tile, "nearest"))
                if rededge:
                    for band, arr in zip(REDEDGE_BANDS, rededge_dn(dn), strict=True):
                        stem = REDEDGE_ASSET_INFO[band][0]
                        writes.append(
                            pool.submit(_write_cog, item_dir / f"{stem}.tif", arr, tile, "average")
                        )
                footprint = tile.footprint()
                if spec.wedge:
                    footprint = orient(footprint.intersection(swath), 1.0)
                items.append(
                    make_item(item_id, item_dir, tile, spec, scl, footprint, rededge=rededge)
                )
            dates.append(_date_record(spec))
        for future in writes:
            future.result()  # re-raise any write error

    catalog = pystac.Catalog(
        id="s2cube-sample",
        description="Synthetic Sentinel-2 L2A sample catalog generated by s2cube.testing; "
        "not Copernicus data.",
        title="s2cube synthetic sample",
    )
    collection = make_collection(items, pixel_size)
    catalog.add_child(collection, title="Sentinel-2 Level 2A")
    for item in items:
        collection.add_item(item)
    # a file href: pystac would take a directory name with a dot for a file
    catalog.normalize_hrefs(str(tmp / "catalog.json"))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return {
        "note": "synthetic data generated by s2cube.testing; not Copernicus data",
        "bands": list(BANDS) + (list(REDEDGE_BANDS) if rededge else []),
        "boa_add_offset": BOA_ADD_OFFSET,
        "tiles": [
            {
                "mgrs": t.mgrs,
                "epsg": t.epsg,
                "shape": [t.size, t.size],
                "transform": list(t.transform)[:6],
            }
            for t in scene.tiles
        ],
        "wedge_tile": scene.tiles[1].mgrs,
        "dates": dates,
    }


def _date_record(spec: DateSpec) -> dict[str, Any]:
    """The ground truth of one date, as recorded in the parameters file."""
    az, zen = spec.sun()
    return {
        "index": spec.index,
        "date": spec.day.isoformat(),
        "platform": spec.platform,
        "relative_orbit": spec.relative_orbit,
        "processing_baseline": spec.baseline,
        "boa_offset_applied": spec.boa_offset_applied,
        "boa_add": spec.boa_add,
        "gain": dict(zip(BANDS, spec.gains, strict=True)),
        "offset": dict(zip(BANDS, spec.offsets, strict=True)),
        "cloud_fraction_target": spec.cloud_fraction,
        "cirrus_fraction_target": spec.cirrus_fraction,
        "clear": spec.cloud_fraction == 0 and spec.cirrus_fraction == 0,
        "snow": spec.snow,
        "wedge": spec.wedge,
        "sun_azimuth": az,
        "sun_zenith": zen,
        "cloud_height_m": spec.cloud_height,
        "shadow_offset_m": list(spec.shadow_offset()),
    }
