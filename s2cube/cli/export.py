"""``s2cube export``: a bbox of a store as a Cloud-Optimized GeoTIFF (or one per cell).

Registered in :mod:`s2cube.cli.lazy`; :mod:`s2cube.export` does the work.  Every bad argument
(bbox outside the finished cells, unknown level or band, an existing output without
``--overwrite``) exits with status 2 and a message naming the value and the fix, before
anything is written.
"""

from __future__ import annotations

from typing import Any

import click

from . import _storage_option

__all__ = ["export"]


def _bands(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    return tuple(b.strip() for b in text.split(",") if b.strip())


@click.command("export")
@click.argument("store", type=click.Path())
@click.argument("out", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--bbox",
    nargs=4,
    type=float,
    required=True,
    metavar="W S E N",
    help="Lon/lat bounding box (EPSG:4326); pixels whose centres lie inside it.",
)
@click.option(
    "--level",
    type=int,
    default=0,
    show_default=True,
    help="Pyramid level: 0 full resolution, each next level halves it.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cog"]),
    default="cog",
    show_default=True,
    help="Output format (Cloud-Optimized GeoTIFF).",
)
@click.option(
    "--bands",
    help="Comma-separated reflectance bands, in band order (default: red,green,blue,nir).",
)
@click.option(
    "--rendered",
    is_flag=True,
    help="Write the 8-bit true colour (global tone curve, RGBA) instead of reflectance.",
)
@click.option(
    "--per-cell",
    "per_cell",
    type=click.Path(file_okay=False),
    help="Also (or, without OUT, only) write one COG per finished cell into this directory.",
)
@click.option(
    "--compress",
    type=click.Choice(["deflate", "zstd"]),
    default="deflate",
    show_default=True,
    help="COG compression (with the horizontal predictor).",
)
@click.option(
    "--blocksize", type=int, default=512, show_default=True, help="COG tile edge in pixels."
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@_storage_option
def export(
    store: str,
    out: str | None,
    bbox: tuple[float, float, float, float],
    level: int,
    fmt: str,
    bands: str | None,
    rendered: bool,
    per_cell: str | None,
    compress: str,
    blocksize: int,
    overwrite: bool,
    storage_option: tuple[str, ...] = (),
) -> None:
    """Export the pixels of STORE inside --bbox at --level as a COG at OUT (a .tif file).

    Reflectance is uint16 (nodata 0, scale 1e-4); --rendered writes RGBA uint8.  GDAL, QGIS
    and rasterio read the result directly; its transform is the store's grid, exactly.
    """
    from ..errors import InputError
    from ..export import export_cells, export_cog
    from ..store import parse_storage_options, store_location

    # a URL store (s3://...) with its options: one location for every read below
    location = store_location(store, parse_storage_options(storage_option))

    if out is None and per_cell is None:
        raise InputError("name an output: OUT (a .tif file), --per-cell DIR, or both")
    chosen = _bands(bands)
    kwargs: dict[str, Any] = {
        "bbox": bbox,
        "level": level,
        "bands": chosen,
        "rendered": rendered,
        "overwrite": overwrite,
        "compress": compress,
        "blocksize": blocksize,
    }
    # every argument and every output path is checked before the first byte is written
    if out is not None:
        export_cog(location, out, check_only=True, **kwargs)
    if per_cell is not None:
        export_cells(location, per_cell, check_only=True, **kwargs)
    results = []
    if out is not None:
        one = export_cog(location, out, **kwargs)
        assert one is not None
        results.append(one)
    if per_cell is not None:
        results.extend(export_cells(location, per_cell, **kwargs))
    for r in results:
        h, w = r.shape
        click.echo(
            f"{r.path}  {w}x{h} px, {len(r.bands) if not rendered else 4} band(s), "
            f"level {r.level} ({r.window.resolution}°), {r.overviews} overview(s), "
            f"{r.nbytes / 2**20:.2f} MiB, {r.seconds:.1f} s"
        )
