"""``s2cube landcover``: land cover of a bbox into the global store, cell by cell, resumable.

Registered in :mod:`s2cube.cli.lazy` (needs torch, extra ``ml``);
:func:`s2cube.landcover.run.landcover_store` does the work.  Prints the cells written, the
cells skipped (finished, or not yet finished in the mosaic for ``--model unets``) and the class
shares of the finished land-cover cells.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import click

from . import _storage_option

__all__ = ["landcover"]


def _fraction(text: str | None) -> Fraction | None:
    if text is None:
        return None
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise click.BadParameter(f"{text!r} is not a number or fraction like 1/12000") from exc


@click.command("landcover")
@click.argument("store", type=str)
@click.option(
    "--catalog", "-c", help="STAC API, preset or static catalog (dynamicworld; not for unets)."
)
@click.option("--bbox", nargs=4, type=float, required=True, metavar="W S E N")
@click.option("--start", help="First date (YYYY-MM-DD; dynamicworld).")
@click.option("--end", help="Last date (YYYY-MM-DD; dynamicworld).")
@click.option(
    "--max-cloud", type=float, help="Largest eo:cloud_cover of a scene, percent (dynamicworld)."
)
@click.option(
    "--model",
    default="dynamicworld",
    show_default=True,
    help="'dynamicworld' (every clear scene of --catalog, nine bands, fused over the dates), "
    "'unets' (the water and vegetation U-nets on the store's own finished 4-band mosaic; no "
    "--catalog) or 'unets-series' (the U-nets on every clear scene of --catalog, each model "
    "fused over the dates, then combined).",
)
@click.option(
    "--method",
    type=click.Choice(["mean", "product"]),
    default="mean",
    show_default=True,
    help="Fusion of the dates (dynamicworld).",
)
@click.option(
    "--alpha", type=float, default=0.1, show_default=True, help="Dirichlet prior (dynamicworld)."
)
@click.option(
    "--dilation", type=int, default=1, show_default=True, help="Cloud/shadow px (dynamicworld)."
)
@click.option(
    "--window", type=int, help="Model tile edge (px); default 256 (dynamicworld), 128 (unets)."
)
@click.option(
    "--water",
    "water_pt",
    type=click.Path(dir_okay=False),
    help="unets(-series): your water U-net (model.pt of `s2cube train landcover --model water`).",
)
@click.option(
    "--vegetation",
    "vegetation_pt",
    type=click.Path(dir_okay=False),
    help="unets: your vegetation U-net (model.pt) instead of the shipped one.",
)
@click.option(
    "--buildings",
    "buildings_pt",
    type=click.Path(dir_okay=False),
    help="unets: your buildings U-net (model.pt); none ships, so without it built never occurs.",
)
@click.option("--chunk", type=int, default=512, show_default=True, help="Dask block edge (px).")
@click.option("--cell-halo", type=int, default=32, show_default=True, help="Halo per cell (px).")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Default: CUDA if present.")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--no-overviews", is_flag=True, help="Skip the overview levels.")
@click.option("--overwrite", is_flag=True, help="Recompute finished land-cover cells.")
@click.option("--scheduler", help="Address of a dask scheduler.")
@click.option("--break-lease", is_flag=True, help="Take the lease of a dead run.")
@click.option("--resolution", help="New store: pixel size in degrees (default 1/12000).")
@click.option("--cell-size", help="New store: cell edge in degrees (default 1).")
@click.option("--chunk-size", type=int, help="New store: Zarr chunk edge in pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_storage_option
def landcover(
    store: str,
    catalog: str | None,
    bbox: tuple[float, float, float, float],
    start: str | None,
    end: str | None,
    max_cloud: float | None,
    model: str,
    method: str,
    alpha: float,
    dilation: int,
    window: int | None,
    water_pt: str | None,
    vegetation_pt: str | None,
    buildings_pt: str | None,
    chunk: int,
    cell_halo: int,
    precision: str,
    device: str | None,
    batch_size: int,
    no_overviews: bool,
    overwrite: bool,
    scheduler: str | None,
    break_lease: bool,
    resolution: str | None,
    cell_size: str | None,
    chunk_size: int | None,
    as_json: bool,
    storage_option: tuple[str, ...] = (),
) -> None:
    """Write land cover (landcover, landcover_confidence, landcover_dates) for --bbox into STORE.

    Dynamic World classifies every clear scene of the catalog and the dates are fused.  The
    U-nets (--model unets) classify the store's own mosaic, each cell with --cell-halo px of
    its neighbours; cells the mosaic has not finished are skipped (run `s2cube mosaic` over
    them, then this again).  See docs/landcover.md for what each model learned from and what
    was validated.
    """
    from ..grid import GlobalGrid
    from ..landcover.run import LandcoverOptions, landcover_store
    from ..store import is_store, parse_storage_options, store_grid, store_location
    from ..store.landcover import landcover_shares, read_landcover_manifest

    loc = store_location(store, parse_storage_options(storage_option))
    grid = None
    if resolution or cell_size or chunk_size:
        base = store_grid(loc) if is_store(loc) else GlobalGrid()
        grid = GlobalGrid(
            resolution=_fraction(resolution) or base.resolution,
            cell_size=_fraction(cell_size) or base.cell_size,
            chunk_size=chunk_size or base.chunk_size,
        )
    options = LandcoverOptions(
        model=model,
        method=method,
        alpha=alpha,
        dilation=dilation,
        window=window,
        chunk=chunk,
        cell_halo=cell_halo,
        precision=precision,
    )
    report = landcover_store(
        loc,
        catalog,
        bbox=bbox,
        start=start,
        end=end,
        max_cloud=max_cloud,
        grid=grid,
        options=options,
        device=device,
        batch_size=batch_size,
        overviews=not no_overviews,
        overwrite=overwrite,
        scheduler=scheduler,
        break_lease=break_lease,
        unet_weights={"water": water_pt, "vegetation": vegetation_pt, "buildings": buildings_pt},
    )
    records = read_landcover_manifest(loc)
    shares = landcover_shares([records[c] for c in report.cells if c in records])
    out: dict[str, Any] = {**report.to_dict(), "class_shares": shares}
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    if report.source == "mosaic":
        click.echo(
            f"{len(report.written)} cell(s) written, {len(report.skipped)} already finished, "
            f"{len(report.empty)} empty in the mosaic; from the store's mosaic, "
            f"{report.seconds:.1f} s"
        )
    else:
        click.echo(
            f"{len(report.written)} cell(s) written, {len(report.skipped)} already finished, "
            f"{len(report.empty)} without scenes; {report.scenes} scene(s), "
            f"{report.seconds:.1f} s"
        )
    if report.mosaic_unfinished:
        click.echo(
            f"{len(report.mosaic_unfinished)} cell(s) skipped, no finished mosaic cell there "
            "(not run yet, or no scene reaches it; `s2cube mosaic` over them, then this "
            f"again): {', '.join(report.mosaic_unfinished)}"
        )
    for name, share in (shares or {}).items():
        click.echo(f"  {name:<8} {100 * share:6.2f} %")
