"""Fixed-size georeferenced GeoTIFF chips (for deep learning) and their index.

A source is either a region of an s2cube store (``cell=`` or ``bbox=``; the four reflectance
bands) or any georeferenced raster rasterio opens (e.g. one Sentinel-2 tile image in its own UTM
grid).  Chips are cut on the source's own pixel grid, never resampled, and named
``tile_{y}_{x}.tif`` where ``y``/``x`` are the pixel offsets of the chip's top-left corner from the
source's origin (row, column), stepping by ``size`` (seed 000: ``Tile_7936_8448.tif``).  For a
store region the origin is the region's top-left pixel.

Edge rule (``edge=``), for a source whose size is not a multiple of ``size``:

``"pad"`` (default)
    Chips start at 0, size, 2·size, …; the last row and column of chips extend past the source
    and the part outside is filled with nodata (the source's nodata, else 0).  Every chip is
    ``size``×``size`` and keeps the source's grid; count = ceil(H/size)·ceil(W/size): a
    10980×10980 Sentinel-2 image at 256 px gives 43×43 = **1849** chips (seed 000).
``"drop"``
    Only whole chips: floor(H/size)·floor(W/size) (42×42 = 1764 for 10980 px).
``"shift"``
    The last chip of a row/column is moved back to end exactly at the edge (it overlaps its
    neighbour), so every chip is whole and holds only real pixels; its name carries its real
    offset (e.g. ``tile_10724_0.tif``).  Same count as ``"pad"``.
``"partial"``
    The last chips are smaller (the remainder), not padded.  Same count as ``"pad"``.

The index (``chips.csv`` or GeoParquet ``chips.parquet``) has one row per chip: name, path,
label path, row/col offset, width, height, bounds in the chip CRS, the CRS, and the valid
fraction (share of the chip's pixels that lie inside the source and are not nodata in every band).
Optional label chips (``labels=`` a raster) are cut on exactly the same grid, reprojected with
nearest-neighbour only if the label raster is on another grid, into ``DIR/labels/``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np

from .errors import InputError
from .grid import Cell, GlobalGrid, validate_bbox

__all__ = ["EDGE_RULES", "ChipWindow", "chip_windows", "make_chips", "chips_command"]

EDGE_RULES = ("pad", "drop", "shift", "partial")


@dataclass(frozen=True)
class ChipWindow:
    """One chip: pixel offset in the source, the chip shape, and how much of it is inside."""

    row_off: int
    col_off: int
    height: int
    width: int
    inside_height: int
    inside_width: int

    @property
    def name(self) -> str:
        return f"tile_{self.row_off}_{self.col_off}"


def _starts(n: int, size: int, edge: str) -> list[tuple[int, int, int]]:
    """(offset, chip length, length inside the source) along one axis."""
    full = n // size
    out = [(i * size, size, size) for i in range(full)]
    rest = n - full * size
    if rest:
        if edge == "pad":
            out.append((full * size, size, rest))
        elif edge == "partial":
            out.append((full * size, rest, rest))
        elif edge == "shift":
            if n >= size:
                out.append((n - size, size, size))
            else:  # a source smaller than one chip: nothing to shift onto, pad it
                out.append((0, size, n))
    return out


def chip_windows(
    height: int, width: int, size: int = 256, *, edge: str = "pad"
) -> list[ChipWindow]:
    """The chips of an ``height``×``width`` source under an edge rule (pure; no I/O).

    >>> len(chip_windows(10980, 10980, 256, edge="pad"))
    1849
    >>> len(chip_windows(10980, 10980, 256, edge="drop"))
    1764
    """
    if edge not in EDGE_RULES:
        raise InputError(f"edge={edge!r} is not an edge rule; use one of {list(EDGE_RULES)}")
    if int(size) != size or size < 1:
        raise InputError(f"size={size!r} must be a positive number of pixels")
    if height < 1 or width < 1:
        raise InputError(f"source of {height}×{width} px has no pixels to cut")
    return [
        ChipWindow(r, c, h, w, ih, iw)
        for r, h, ih in _starts(int(height), int(size), edge)
        for c, w, iw in _starts(int(width), int(size), edge)
    ]


# --------------------------------------------------------------------------- sources
@dataclass
class _Source:
    height: int
    width: int
    count: int
    dtype: str
    crs: Any
    transform: Any
    nodata: float | None
    descriptions: Sequence[str | None]

    def read_rows(self, row_off: int, n_rows: int) -> np.ndarray:  # (bands, rows, width)
        raise NotImplementedError

    def close(self) -> None:
        pass


class _RasterSource(_Source):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        import rasterio

        try:
            self.ds = rasterio.open(path)
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(
                f"cannot open {str(path)!r} as a raster or an s2cube store: {exc}; pass a "
                "GeoTIFF (or any GDAL raster), or a store with --cell/--bbox"
            ) from exc
        ds = self.ds
        if ds.crs is None or ds.transform.is_identity:
            raise InputError(f"{str(path)!r} is not georeferenced (no CRS or geotransform)")
        super().__init__(ds.height, ds.width, ds.count, ds.dtypes[0], ds.crs, ds.transform,
                         ds.nodata, ds.descriptions)  # fmt: skip

    def read_rows(self, row_off: int, n_rows: int) -> np.ndarray:
        from rasterio.windows import Window

        n = min(n_rows, self.height - row_off)
        return self.ds.read(window=Window(0, row_off, self.width, n))

    def close(self) -> None:
        self.ds.close()


class _StoreSource(_Source):
    def __init__(self, path: str | os.PathLike[str], cell: str | Cell | None,
                 bbox: Sequence[float] | None) -> None:  # fmt: skip
        import zarr
        from affine import Affine
        from rasterio.crs import CRS

        from .store import _require_store, store_metadata

        p = _require_store(path)
        meta = store_metadata(p)
        grid = GlobalGrid.from_dict(meta["grid"])
        if (cell is None) == (bbox is None):
            raise InputError("a store source needs exactly one of cell= (e.g. 'r0087c0391') or "
                             "bbox= (west, south, east, north)")  # fmt: skip
        if cell is not None:
            rows, cols = grid.cell_region(Cell.from_name(cell) if isinstance(cell, str) else cell)
        else:
            west, south, east, north = validate_bbox(bbox)  # type: ignore[arg-type]
            res = grid.resolution
            r0 = math.floor((90 - _frac(north)) / res)
            r1 = math.ceil((90 - _frac(south)) / res)
            c0 = math.floor((_frac(west) + 180) / res)
            c1 = math.ceil((_frac(east) + 180) / res)
            rows, cols = (
                slice(max(r0, 0), min(r1, grid.shape[0])),
                slice(max(c0, 0), min(c1, grid.shape[1])),
            )
        self.rows, self.cols = rows, cols
        self.bands = list(meta["bands"])
        group = zarr.open_group(str(p), mode="r", zarr_format=3)
        self.arrays = [group[b] for b in self.bands]
        res = float(grid.resolution)
        transform = Affine(res, 0.0, -180.0 + cols.start * res, 0.0, -res, 90.0 - rows.start * res)
        super().__init__(rows.stop - rows.start, cols.stop - cols.start, len(self.bands), "uint16",
                         CRS.from_epsg(4326), transform, 0, self.bands)  # fmt: skip

    def read_rows(self, row_off: int, n_rows: int) -> np.ndarray:
        r0 = self.rows.start + row_off
        r1 = min(r0 + n_rows, self.rows.stop)
        return np.stack([np.asarray(a[r0:r1, self.cols]) for a in self.arrays])


def _frac(v: float) -> Any:
    from fractions import Fraction

    return Fraction(v).limit_denominator(10**9)


def _open_source(source: str | os.PathLike[str], cell: Any, bbox: Any) -> _Source:
    from .store import is_store

    if is_store(source):
        return _StoreSource(source, cell, bbox)
    if cell is not None or bbox is not None:
        raise InputError(f"cell=/bbox= select a region of an s2cube store, but {str(source)!r} "
                         "is not one; drop them to chip a raster file whole")  # fmt: skip
    if not Path(source).exists():
        raise InputError(f"source {str(source)!r} does not exist")
    return _RasterSource(source)


# --------------------------------------------------------------------------- writing
def _strips(
    src: _Source, windows: list[ChipWindow]
) -> Iterator[tuple[int, np.ndarray, list[ChipWindow]]]:
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
    inside = np.zeros(chip.shape[1:], dtype=bool)
    inside[: w.inside_height, : w.inside_width] = True
    if nodata is not None and not (isinstance(nodata, float) and math.isnan(nodata)):
        inside &= np.any(chip != nodata, axis=0)
    elif nodata is not None:
        inside &= np.any(~np.isnan(chip), axis=0)
    return float(inside.mean())


def _write_tif(path: Path, arr: np.ndarray, *, crs: Any, transform: Any, nodata: float | None,
               descriptions: Sequence[str | None] = ()) -> None:  # fmt: skip
    import rasterio

    h, w = arr.shape[1:]
    profile = {"driver": "GTiff", "height": h, "width": w, "count": arr.shape[0],
               "dtype": arr.dtype.name, "crs": crs, "transform": transform,
               "compress": "deflate", "nodata": nodata}  # fmt: skip
    if h % 16 == 0 and w % 16 == 0:
        profile.update(tiled=True, blockxsize=min(w, 256), blockysize=min(h, 256))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        for i, d in enumerate(descriptions[: arr.shape[0]], start=1):
            if d:
                dst.set_band_description(i, d)


def _label_chip(labels_ds: Any, crs: Any, transform: Any, h: int, w: int) -> np.ndarray:
    from rasterio.enums import Resampling
    from rasterio.transform import array_bounds
    from rasterio.vrt import WarpedVRT
    from rasterio.windows import Window, from_bounds

    if labels_ds.crs == crs and _aligned(labels_ds.transform, transform):
        win = from_bounds(*array_bounds(h, w, transform), transform=labels_ds.transform)
        win = Window(round(win.col_off), round(win.row_off), w, h)
        return labels_ds.read(window=win, boundless=True, fill_value=labels_ds.nodata or 0)
    with WarpedVRT(labels_ds, crs=crs, transform=transform, width=w, height=h,
                   resampling=Resampling.nearest) as vrt:  # fmt: skip
        return vrt.read()


def _aligned(a: Any, b: Any) -> bool:
    """Same pixel size and pixel edges (offsets a whole number of pixels apart)."""
    if not (math.isclose(a.a, b.a, rel_tol=1e-9) and math.isclose(a.e, b.e, rel_tol=1e-9)
            and a.b == 0 and a.d == 0 and b.b == 0 and b.d == 0):  # fmt: skip
        return False
    dx, dy = (b.c - a.c) / a.a, (b.f - a.f) / a.e
    return abs(dx - round(dx)) < 1e-6 and abs(dy - round(dy)) < 1e-6


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

    if index not in ("csv", "parquet"):
        raise InputError(f"index={index!r} must be 'csv' or 'parquet'")
    src = _open_source(source, cell, bbox)
    windows = chip_windows(src.height, src.width, size, edge=edge)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels_ds = None
    if labels is not None:
        import rasterio

        labels_ds = rasterio.open(labels)
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
                _write_tif(path, chip, crs=src.crs, transform=transform, nodata=src.nodata,
                           descriptions=src.descriptions)  # fmt: skip
                label_path = None
                if labels_ds is not None:
                    lab = _label_chip(labels_ds, src.crs, transform, w.height, w.width)
                    label_path = out_dir / "labels" / f"{w.name}.tif"
                    _write_tif(label_path, lab, crs=src.crs, transform=transform,
                               nodata=labels_ds.nodata)  # fmt: skip
                minx, maxy = transform * (0, 0)
                maxx, miny = transform * (w.width, w.height)
                rows.append({
                    "name": w.name, "path": path.name,
                    "label_path": f"labels/{label_path.name}" if label_path else None,
                    "row_off": w.row_off, "col_off": w.col_off, "height": w.height,
                    "width": w.width, "minx": min(minx, maxx), "miny": min(miny, maxy),
                    "maxx": max(minx, maxx), "maxy": max(miny, maxy), "crs": crs_text,
                    "valid_fraction": valid,
                })  # fmt: skip
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

    geoms = shapely.box(df["minx"], df["miny"], df["maxx"], df["maxy"]) if len(df) else []
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.append_column("geometry", pa.array(shapely.to_wkb(geoms) if len(df) else [],
                                                     type=pa.binary()))  # fmt: skip
    from pyproj import CRS as PCRS

    geo = {
        "version": "1.1.0",
        "primary_column": "geometry",
        "columns": {"geometry": {
            "encoding": "WKB", "geometry_types": ["Polygon"],
            "crs": json.loads(PCRS.from_user_input(crs.to_wkt()).to_json()),
            "bbox": [float(df["minx"].min()), float(df["miny"].min()),
                     float(df["maxx"].max()), float(df["maxy"].max())] if len(df) else [],
        }},
    }  # fmt: skip
    meta = dict(table.schema.metadata or {})
    meta[b"geo"] = json.dumps(geo).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)


# --------------------------------------------------------------------------- CLI
@click.command("chips")
@click.argument("source", type=click.Path(exists=True))
@click.option("--size", default=256, show_default=True, type=int, help="chip edge in pixels")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="output dir")
@click.option("--cell", default=None, help="store cell, e.g. r0087c0391")
@click.option("--bbox", nargs=4, type=float, default=None, help="store region: W S E N (degrees)")
@click.option(
    "--labels",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="label raster to cut on the same grid",
)
@click.option(
    "--edge",
    type=click.Choice(EDGE_RULES),
    default="pad",
    show_default=True,
    help="what to do at the right/bottom edge (see docs/serve.md)",
)
@click.option("--index", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
@click.option("--skip-empty", is_flag=True, help="do not write chips without valid pixels")
def chips_command(source: str, size: int, out: str, cell: str | None,
                  bbox: tuple[float, ...] | None, labels: str | None, edge: str, index: str,
                  skip_empty: bool) -> None:  # fmt: skip
    """Cut SOURCE (a store region or a georeferenced raster) into GeoTIFF chips tile_{y}_{x}.tif."""
    try:
        df = make_chips(source, size=size, out=out, cell=cell, bbox=bbox or None, labels=labels,
                        edge=edge, index=index, skip_empty=skip_empty)  # fmt: skip
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"{len(df)} chips in {out} (index {df.attrs['path']})")
