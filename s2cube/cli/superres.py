"""``s2cube superres``: a store's finished cells, ``scale``× finer, into its SR product.

The product is ``STORE/superres/x<scale>``.  Registered in :mod:`s2cube.cli.lazy` (needs
torch, extra ``ml``);
:func:`s2cube.superres.run.superres_store` does the work.  The product is a complete s2cube
store: ``s2cube info STORE/superres/x4``, ``s2cube export``, ``s2cube serve`` read it as any
store.  Bad input (no such store, a bbox without finished cells, a scale without shipped
weights) exits with status 2 and a message naming the value and the fix.
"""

from __future__ import annotations

import json
from typing import Any

import click

from . import _storage_option

__all__ = ["superres"]


@click.command("superres")
@click.argument("store", type=str)
@click.option(
    "--bbox",
    nargs=4,
    type=float,
    required=True,
    metavar="W S E N",
    help="Lon/lat bounding box; every finished cell of STORE it touches is super-resolved.",
)
@click.option("--scale", type=int, default=4, show_default=True, help="Upscaling factor.")
@click.option(
    "--weights",
    type=click.Path(exists=True, dir_okay=False),
    help="Your generator instead of the shipped weights: NAME.pt (state_dict) with its card "
    "NAME.json beside it, or a whole module saved with torch.save.",
)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Default: CUDA if present.")
@click.option("--tile", type=int, default=128, show_default=True, help="Tile edge (input px).")
@click.option("--halo", type=int, help="Context px per tile and cell (default: the model's).")
@click.option("--batch-size", type=int, default=4, show_default=True, help="Tiles per pass.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32")
@click.option("--no-overviews", is_flag=True, help="Skip the product's overview levels.")
@click.option("--overwrite", is_flag=True, help="Recompute finished product cells.")
@click.option("--scheduler", help="Address of a dask scheduler (default: local threads).")
@click.option("--break-lease", is_flag=True, help="Take the leases of a dead run.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_storage_option
def superres(
    store: str,
    bbox: tuple[float, float, float, float],
    scale: int,
    weights: str | None,
    device: str | None,
    tile: int,
    halo: int | None,
    batch_size: int,
    precision: str,
    no_overviews: bool,
    overwrite: bool,
    scheduler: str | None,
    break_lease: bool,
    as_json: bool,
    storage_option: tuple[str, ...] = (),
) -> None:
    """Super-resolve the finished cells of STORE in --bbox into STORE/superres/x<scale>.

    The generator was trained on Sentinel-2 itself (Wald protocol: degrade, restore); it
    sharpens, it does not reveal real sub-10 m detail.  See docs/superres.md.
    """
    from ..store import parse_storage_options, store_location
    from ..superres.run import SuperresOptions, generator_from_file, superres_store

    loc = store_location(store, parse_storage_options(storage_option))
    generator, card = generator_from_file(weights) if weights else (None, None)
    options = SuperresOptions(
        scale=scale, halo=halo, tile=tile, batch_size=batch_size, precision=precision
    )
    report = superres_store(
        loc,
        bbox=bbox,
        scale=scale,
        generator=generator,
        card=card,
        options=options,
        device=device,
        overviews=not no_overviews,
        overwrite=overwrite,
        scheduler=scheduler,
        progress=not as_json,
        break_lease=break_lease,
    )
    out: dict[str, Any] = report.to_dict()
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    click.echo(
        f"{len(report.written)} cell(s) written, {len(report.skipped)} already done, "
        f"{len(report.empty)} empty in the parent; {report.seconds:.1f} s → {report.store}"
    )
