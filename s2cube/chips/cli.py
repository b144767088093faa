"""``s2cube chips``: the command line of :func:`s2cube.chips.make_chips`."""

from __future__ import annotations

import click

from ..errors import InputError
from .make import make_chips
from .windows import EDGE_RULES

__all__ = ["chips_command"]


@click.command("chips")
@click.argument("source")
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
def chips_command(
    source: str,
    size: int,
    out: str,
    cell: str | None,
    bbox: tuple[float, ...] | None,
    labels: str | None,
    edge: str,
    index: str,
    skip_empty: bool,
) -> None:
    """Cut SOURCE (a store region or a georeferenced raster) into GeoTIFF chips tile_{y}_{x}.tif.

    SOURCE may be a store URL (s3://bucket/m.zarr); its options come from the environment
    (AWS_*, S2CUBE_STORAGE_OPTIONS as JSON).
    """
    try:
        df = make_chips(
            source,
            size=size,
            out=out,
            cell=cell,
            bbox=bbox or None,
            labels=labels,
            edge=edge,
            index=index,
            skip_empty=skip_empty,
        )
    except InputError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"{len(df)} chips in {out} (index {df.attrs['path']})")
