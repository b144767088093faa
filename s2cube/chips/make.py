"""Cutting chips: strips of a source → chip arrays → GeoTIFFs (and label chips) → the index."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..grid import Cell
from .sources import ChipSource, open_source
from .windows import ChipWindow, chip_windows

__all__ = ["make_chips"]


def _strips(
    src: ChipSource, windows: list[ChipWindow]
) -> Iterator[tuple[int, np.ndarray, list[ChipWindow]]]:
    """One read per row of chips (the tallest inside part), with the chips it feeds."""
    by_row: dict[int, list[ChipWindow]] = {}
    for w in windows:
        by_row.setdefault(w.row_off, []).append(w)
    for row_off, ws in sorted(by_row.items()):
        n = max(w.inside_height for w in ws)
        yield row_off, src.read_rows(row_off, n), ws


def _chip_array(strip: np.ndarray, w: ChipWindow, fill: float) -> np.ndarray:
    out = np.full((strip.shape[0], w.height, w.width), fill, dtype=strip.dtype)
    out[:, : w.inside_height, : w.inside_width] = strip[
        :, : w.inside_height, w.col_off : w.col_off + w.inside_width
    ]
    return out


def _valid_fraction(chip: np.ndarray, w: ChipWindow, nodata: float | None) -> float:
    """Share of the chip inside the source and not nodata in every band."""
    inside = np.zeros(chip.shape[1:], dtype=bool)
    inside[: w.inside_height, : w.inside_width] = True
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        inside &= np.any(chip != nodata, axis=0)
    elif nodata is not None:
        inside &= np.any(~np.isnan(chip), axis=0)
    return float(inside.mean())


def make_chips(
    source: str | os.PathLike[str],
    *,
    size: int = 256,
    out: str | os.PathLike[str],
    cell: str | Cell | None = None,
    bbox: Sequence[float] | None = None,
    labels: str | os.PathLike[str] | None = None,
    edge: str = "pad",
    index: str = "csv",
    skip_empty: bool = False,
) -> Any:
    """Cut ``source`` into ``size``×``size`` GeoTIFF chips ``out/tile_{y}_{x}.tif`` plus an index.

    Parameters
    ----------
    source
        An s2cube store (with ``cell`` or ``bbox``) or any georeferenced raster file.
    size
        Chip edge in pixels.
    out
        Output directory (created).
    cell, bbox
        The store region (one of them) when ``source`` is a store.
    labels
        Optional label raster; label chips on the same grid go to ``out/labels/``.
    edge
        Edge rule: ``"pad"`` (default), ``"drop"``, ``"shift"`` or ``"partial"`` (module docs).
    index
        ``"csv"`` (``out/chips.csv``) or ``"parquet"`` (GeoParquet ``out/chips.parquet``).
    skip_empty
        Do not write chips whose valid fraction is 0 (they still appear in no index row).

    Returns
    -------
    pandas.DataFrame
        The index; ``df.attrs["path"]`` is the index file.

    Examples
    --------
    >>> df = make_chips("T33TWM_TCI_10m.tif", size=256, out="chips/")  # doctest: +SKIP
    >>> len(df)  # 10980 px at 256 px, edge="pad"  # doctest: +SKIP
    1849
    """
    import pandas as pd

    from ..reader import open_raster, warp_like, write_geotiff

    if index not in ("csv", "parquet"):
        raise InputError(f"index={index!r} must be 'csv' or 'parquet'")
    src = open_source(source, cell, bbox)
    windows = chip_windows(src.height, src.width, size, edge=edge)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels_ds = None
    if labels is not None:
        labels_ds = open_raster(labels)
        (out_dir / "labels").mkdir(exist_ok=True)
    fill = src.nodata if src.nodata is not None else 0
    crs_text = src.crs.to_string()
    rows: list[dict[str, Any]] = []
    try:
        for _, strip, ws in _strips(src, windows):
            for w in ws:
                chip = _chip_array(strip, w, fill)
                valid = _valid_fraction(chip, w, src.nodata)
                if skip_empty and valid == 0:
                    continue
                transform = src.transform * src.transform.translation(w.col_off, w.row_off)
                path = out_dir / f"{w.name}.tif"
                write_geotiff(
                    path,
                    chip,
                    crs=src.crs,
                    transform=transform,
                    nodata=src.nodata,
                    descriptions=src.descriptions,
                )
                label_path = None
                if labels_ds is not None:
                    lab = warp_like(
                        labels_ds, crs=src.crs, transform=transform, shape=(w.height, w.width)
                    )
                    label_path = out_dir / "labels" / f"{w.name}.tif"
                    write_geotiff(
                        label_path, lab, crs=src.crs, transform=transform, nodata=labels_ds.nodata
                    )
                minx, maxy = transform * (0, 0)
                maxx, miny = transform * (w.width, w.height)
                rows.append(
                    {
                        "name": w.name,
                        "path": path.name,
                        "label_path": f"labels/{label_path.name}" if label_path else None,
                        "row_off": w.row_off,
                        "col_off": w.col_off,
                        "height": w.height,
                        "width": w.width,
                        "minx": min(minx, maxx),
                        "miny": min(miny, maxy),
                        "maxx": max(minx, maxx),
                        "maxy": max(miny, maxy),
                        "crs": crs_text,
                        "valid_fraction": valid,
                    }
                )
    finally:
        src.close()
        if labels_ds is not None:
            labels_ds.close()
    df = pd.DataFrame(rows)
    if index == "csv":
        path = out_dir / "chips.csv"
        df.to_csv(path, index=False)
    else:
        path = out_dir / "chips.parquet"
        _write_geoparquet(df, path, src.crs)
    df.attrs["path"] = str(path)
    return df


def _write_geoparquet(df: Any, path: Path, crs: Any) -> None:
    """GeoParquet 1.1 with a WKB ``geometry`` column (chip footprints in the chip CRS)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely
    from pyproj import CRS as PCRS

    geoms = shapely.box(df["minx"], df["miny"], df["maxx"], df["maxy"]) if len(df) else []
    table = pa.Table.from_pandas(df, preserve_index=False)
    wkb = shapely.to_wkb(geoms) if len(df) else []
    table = table.append_column("geometry", pa.array(wkb, type=pa.binary()))
    bbox = (
        [
            float(df["minx"].min()),
            float(df["miny"].min()),
            float(df["maxx"].max()),
            float(df["maxy"].max()),
        ]
        if len(df)
        else []
    )
    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon"],
                "crs": json.loads(PCRS.from_user_input(crs.to_wkt()).to_json()),
                "bbox": bbox,
            }
        },
    }
    meta = dict(table.schema.metadata or {})
    meta[b"geo"] = json.dumps(geo).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
