"""The ``s2cube`` command: search, mosaic, info, demo (and the commands of optional extras).

``options`` generates ``s2cube mosaic``'s flags from the configs; ``lazy`` registers the
optional commands (train, serve, overviews, chips, figures).

Every user error exits with status 2 and a one-line message that names the bad value and the
fix; nothing is written when the arguments are wrong.
"""

from __future__ import annotations

import json
import sys
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import click

from ..config import ExecutionOptions, MosaicConfig
from ..errors import InputError, S2CubeError
from .lazy import OPTIONAL_COMMANDS, LazyCommand
from .options import build_configs, config_options

__all__ = ["OPTIONAL_COMMANDS", "LazyCommand", "build_configs", "config_options", "main"]

#: kept for code that imported the private name
_LazyCommand = LazyCommand


def _fraction(text: str) -> Fraction:
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError) as exc:
        raise click.BadParameter(f"{text!r} is not a number or fraction like 1/12000") from exc


#: exit status of a run stopped by a full disk (2 is a user error, 1 a bug)
DISK_FULL_EXIT = 3


def _disk_full(exc: BaseException) -> OSError | None:
    """The ENOSPC/EDQUOT error in ``exc`` or the errors it was raised from, if any."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return current
        current = current.__cause__ or current.__context__
    return None


class _Main(click.Group):
    """Turn s2cube errors into a clean message and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except S2CubeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            full = _disk_full(exc)
            if full is None:
                raise
            where = f" ({full.filename})" if full.filename else ""
            click.echo(
                f"error: no space left on the device while writing{where}: {full.strerror}. "
                "Cells finished before are intact and recorded; free some space (or choose "
                "another --store) and run the same command again to resume",
                err=True,
            )
            sys.exit(DISK_FULL_EXIT)


@click.group(cls=_Main)
@click.version_option(package_name="s2cube")
def main() -> None:
    """s2cube: cloud-free, colour-consistent Sentinel-2 mosaics on Dask, in one global store."""
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)


_catalog = click.option(
    "--catalog",
    "-c",
    required=True,
    help="STAC API URL, preset (earth-search, planetary-computer), or a local catalog.json / "
    "ItemCollection file.",
)
_bbox = click.option(
    "--bbox", nargs=4, type=float, metavar="W S E N", help="Lon/lat bounding box (EPSG:4326)."
)
_start = click.option("--start", help="First date, e.g. 2023-08-01.")
_end = click.option("--end", help="Last date (inclusive), e.g. 2023-08-31.")
_cloud = click.option("--max-cloud", type=float, help="Maximum eo:cloud_cover in percent.")
_storage_option = click.option(
    "--storage-option",
    "storage_option",
    multiple=True,
    metavar="KEY=VALUE",
    help="fsspec option for a store URL (repeat; JSON values, dotted keys nest), e.g. "
    "anon=true or client_kwargs.endpoint_url=http://127.0.0.1:9000. Also from "
    "S2CUBE_STORAGE_OPTIONS (a JSON object) and the backend's own variables (AWS_*...).",
)


@main.command("search")
@_catalog
@_bbox
@_start
@_end
@_cloud
@click.option("--mgrs", "mgrs_tiles", multiple=True, help="Keep only these MGRS tiles (repeat).")
@click.option("--geometry", type=click.Path(exists=True, dir_okay=False), help="GeoJSON area.")
@click.option("--limit", type=int, help="Maximum number of items.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print a FeatureCollection of normalised items."
)
def search_cmd(
    catalog: str,
    bbox: tuple[float, ...] | None,
    start: str | None,
    end: str | None,
    max_cloud: float | None,
    mgrs_tiles: tuple[str, ...],
    geometry: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Search Sentinel-2 L2A items and list them (normalised across providers)."""
    from ..search import search

    geom = None
    if geometry:
        data = json.loads(Path(geometry).read_text())
        geom = data.get("geometry", data) if data.get("type") == "Feature" else data
        if data.get("type") == "FeatureCollection":
            geom = data["features"][0]["geometry"]
    items = search(
        catalog,
        bbox=bbox or None,
        geometry=geom,
        mgrs_tiles=mgrs_tiles or None,
        start=start,
        end=end,
        max_cloud=max_cloud,
        limit=limit,
    )
    if as_json:
        click.echo(
            json.dumps({"type": "FeatureCollection", "features": [i.to_dict() for i in items]})
        )
        return
    click.echo(f"{len(items)} item(s)")
    for it in items:
        p = it.properties
        click.echo(
            f"{it.id:45s} {it.datetime:%Y-%m-%d %H:%M} tile={p.get('s2cube:mgrs_tile')} "
            f"cloud={p['eo:cloud_cover']:5.1f}% epsg={p['s2cube:epsg']} "
            f"baseline={p.get('s2:processing_baseline', '?')} "
            f"boa_offset_to_remove={p['s2cube:boa_offset']}"
        )


#: an option given as ``none`` on the command line (a flag left out is ``None``: not given)
@main.command("mosaic")
@_catalog
@click.option(
    "--bbox",
    nargs=4,
    type=float,
    metavar="W S E N",
    required=True,
    help="Lon/lat bounding box; every cell it touches is processed.",
)
@_start
@_end
@_cloud
@click.option(
    "--store",
    required=True,
    help="Global Zarr store (created if missing): a path or a URL such as s3://bucket/m.zarr.",
)
@_storage_option
@click.option(
    "--break-lease",
    is_flag=True,
    help="Take the store's writer lease even if another run holds it (only if that run is "
    "dead; an expired lease, or one of a dead process on this host, is taken over anyway).",
)
@click.option("--resolution", type=_fraction, help="Pixel size in degrees (default 1/12000).")
@click.option("--cell-size", type=_fraction, help="Cell edge in degrees (default 1).")
@click.option(
    "--chunk-size", type=int, default=None, help="Zarr chunk edge in pixels (default 600)."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML file of MosaicConfig/ExecutionOptions options (flags win).",
)
@click.option(
    "--dilation",
    type=int,
    default=None,
    help="Shorthand: --cloud-dilation and --shadow-dilation at once.",
)
@config_options(MosaicConfig, ExecutionOptions)
@click.option(
    "--scheduler", help="Address of an existing dask scheduler (default: a LocalCluster)."
)
@click.option(
    "--workers",
    type=int,
    help="Local cluster: worker processes (0: no cluster, dask's threads in this process).",
)
@click.option("--threads", type=int, help="Local cluster: threads per worker.")
@click.option("--gpu", is_flag=True, help="Use a LocalCUDACluster (needs dask-cuda and a GPU).")
@click.option(
    "--overwrite", is_flag=True, help="Recompute cells already finished (default: resume)."
)
@click.option(
    "--retry-dropped",
    is_flag=True,
    help="Also redo finished cells whose record lists dropped scenes (assets that could not "
    "be read then); see `s2cube info`.",
)
@click.option(
    "--yes",
    "confirm",
    is_flag=True,
    help="Go ahead with a run above the size limits (1,000 cells or 2,000 candidate scenes); "
    "without it such a run stops and prints its estimate.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def mosaic_cmd(
    catalog: str,
    bbox: tuple[float, float, float, float],
    start: str | None,
    end: str | None,
    max_cloud: float | None,
    store: str,
    resolution: Fraction | None,
    cell_size: Fraction | None,
    chunk_size: int | None,
    config_file: str | None,
    dilation: int | None,
    scheduler: str | None,
    workers: int | None,
    threads: int | None,
    gpu: bool,
    overwrite: bool,
    retry_dropped: bool,
    confirm: bool,
    no_progress: bool,
    storage_option: tuple[str, ...],
    break_lease: bool,
    **flags: Any,
) -> None:
    """Composite every cell touching BBOX in parallel and write it into STORE."""
    from ..cluster import get_client
    from ..driver import check_limits, check_reference, mosaic
    from ..grid import GlobalGrid, validate_bbox
    from ..search import parse_dates
    from ..store import (
        check_store_path,
        is_store,
        parse_storage_options,
        store_grid,
        store_location,
    )

    if dilation is not None:
        for name in ("cloud_dilation", "shadow_dilation"):
            flags[name] = dilation if flags[name] is None else flags[name]
    # validate everything once, before a cluster starts
    config, execution = build_configs(config_file, flags)
    validate_bbox(bbox)
    if not store.strip():
        raise InputError(
            "--store '' is empty (it would write into the current directory); give the path "
            "or URL of the store, e.g. --store mosaic.zarr"
        )
    parse_dates(start, end)
    check_reference(config)
    location = store_location(store, parse_storage_options(storage_option))
    if location.is_local and not location.path.is_absolute():
        # workers have their own working directory: they get the absolute path
        location = store_location(str(location.path.resolve()))
    check_store_path(location)
    grid = None
    if resolution is not None or cell_size is not None or chunk_size is not None:
        base = store_grid(location) if is_store(location) else GlobalGrid()
        # a given 0 reaches the grid, which refuses it (never "0 means the default")
        grid = GlobalGrid(
            resolution=base.resolution if resolution is None else resolution,
            cell_size=base.cell_size if cell_size is None else cell_size,
            chunk_size=base.chunk_size if chunk_size is None else chunk_size,
        )
    # the size limits before a cluster starts (the scene count is checked after the search)
    run_grid = grid or (store_grid(location) if is_store(location) else GlobalGrid())
    check_limits(run_grid, run_grid.count_cells_in_bbox(bbox), None, confirm=confirm)
    local = not scheduler and workers != 0
    spinner = None
    if not no_progress:
        from ..execute import Spinner

        what = f"connecting to {scheduler}" if scheduler else "starting a local dask cluster"
        spinner = Spinner(what if scheduler or local else "searching and planning")
    try:
        client = get_client(
            scheduler, local=local, gpu=gpu or None, n_workers=workers, threads_per_worker=threads
        )
    except BaseException:
        if spinner is not None:
            spinner.close()
        raise
    if client is not None:
        click.echo(f"dask dashboard: {client.dashboard_link}", err=True)
    if spinner is not None:
        spinner.stage("searching and planning (the cells' bar follows)")
    try:
        if scheduler and location.is_local:
            _check_workers_see(client, location.path)
        report = mosaic(
            catalog,
            store=location,
            bbox=bbox,
            start=start,
            end=end,
            max_cloud=max_cloud,
            grid=grid,
            config=config,
            execution=execution,
            client=client,
            progress=not no_progress,
            break_lease=break_lease,
            overwrite=overwrite,
            retry_dropped=retry_dropped,
            confirm=confirm,
        )
    finally:
        if spinner is not None:
            spinner.close()
        if client is not None:
            cluster = client.cluster if local else None
            client.close()
            if cluster is not None:
                cluster.close()
    click.echo(
        f"{len(report.written)} cell(s) written, {len(report.skipped)} already finished, "
        f"{len(report.empty)} without data, from {report.scenes} scene(s) "
        f"in {report.seconds:.1f} s "
        f"→ {store}"
    )
    if report.landcover is not None:
        lc = report.landcover
        click.echo(
            f"land cover ({config.landcover}): {len(lc['written'])} cell(s) written, "
            f"{len(lc['skipped'])} already finished, {len(lc.get('mosaic_unfinished', []))} "
            f"without a finished mosaic cell, in {lc['seconds']:.1f} s"
        )


def _check_workers_see(client: Any, store: Path) -> None:
    """Workers of a remote scheduler must reach a local store's folder (a shared file system):
    checked before anything is written, so the error names the real problem."""
    import os

    folder = store if store.exists() else store.parent
    seen = client.run(os.path.isdir, str(folder))
    if not seen:
        raise S2CubeError(
            "the scheduler has no workers; start some with "
            f"`dask worker {client.scheduler.address}`"
        )
    blind = sorted(w for w, ok in seen.items() if not ok)
    if blind:
        raise S2CubeError(
            f"--store {store}: {len(blind)} of {len(seen)} dask worker(s) cannot see {folder} "
            f"(e.g. {blind[0]}); workers of a remote scheduler write the store themselves, so "
            "put it on a file system every worker mounts at the same path, or use object "
            "storage (--store s3://bucket/mosaic.zarr)"
        )


@main.command("info")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_storage_option
def info_cmd(store: str, as_json: bool, storage_option: tuple[str, ...]) -> None:
    """Summarise a store (a path or a URL): cells done, coverage, dates, scenes, metrics."""
    import numpy as np

    from ..store import parse_storage_options, store_info

    info = store_info(store, parse_storage_options(storage_option))
    if as_json:
        info["dropped_scenes"] = _dropped(store, storage_option)
        click.echo(json.dumps(info, indent=1, default=str))
        return
    g = info["grid"]
    res = Fraction(g["resolution"])
    metres = float(res) * 111_320  # one degree of latitude ≈ 111.32 km
    click.echo(f"store        {info['path']}")
    click.echo(
        f"grid         EPSG:4326, {g['resolution']}° per pixel (≈{metres:,.0f} m at the equator), "
        f"cells of {g['cell_size']}°, chunks of {g['chunk_size']} px"
    )
    click.echo(f"bands        {', '.join(info['bands'])} (uint16 reflectance × 10000, 0 = nodata)")
    click.echo(f"cells done   {info['cells_done']} (finished cells, each with a manifest record)")
    click.echo(
        f"coverage     {100 * info['composited_fraction']:.2f} % of pixels in finished cells "
        "have a clear observation"
    )
    if info["date_min"]:
        click.echo(f"dates        {info['date_min']} .. {info['date_max']} (acquisitions used)")
    else:
        click.echo("dates        none yet (no finished cell has a clear pixel)")
    click.echo(f"scenes       {info['scenes']} in the scene table")
    _echo_dropped(store, storage_option)
    if info.get("fill"):
        f = info["fill"]
        click.echo(
            f"fill         {100 * f.get('observed_in_period', 0):.2f} % observed, "
            f"{100 * f.get('donor_from_other_period', 0):.2f} % donor, "
            f"{100 * f.get('inpainted', 0):.2f} % inpainted, {100 * f.get('none', 0):.2f} % none "
            "(per cell: s2cube info --json)"
        )
    metrics: dict[str, dict[str, Any]] = info.get("metrics", {})
    if metrics:
        click.echo(
            f"metrics      median (min .. max) over {len(metrics)} cell(s); "
            "per cell: s2cube info --json"
        )
        names = sorted({k for m in metrics.values() for k in m})
        for name in names:
            values = [
                float(m[name])
                for m in metrics.values()
                if isinstance(m.get(name), int | float) and m[name] == m[name]  # not NaN
            ]
            unit, fmt, what = METRIC_DOCS.get(name, ("", ".4g", ""))
            if not values:
                click.echo(f"  {name:28s} n/a  {what}")
                continue
            med, lo, hi = (float(f(values)) for f in (np.median, np.min, np.max))
            scale = 100.0 if unit == "%" else 1.0
            text = f"{med * scale:{fmt}}{unit} ({lo * scale:{fmt}} .. {hi * scale:{fmt}}{unit})"
            click.echo(f"  {name:28s} {text:28s} {what}")


def _dropped(store: str, storage_option: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    """Per cell that dropped scenes (unreadable assets): its ``dropped_scenes`` entries."""
    from ..store import parse_storage_options, read_manifest

    manifest = read_manifest(store, parse_storage_options(storage_option))
    return {n: r["dropped_scenes"] for n, r in sorted(manifest.items()) if r.get("dropped_scenes")}


def _echo_dropped(store: str, storage_option: tuple[str, ...]) -> None:
    """The cells that dropped scenes, each scene with asset and error."""
    hit = _dropped(store, storage_option)
    if not hit:
        click.echo("dropped      no scene was dropped (every planned asset was read)")
        return
    n = len({e["id"] for v in hit.values() for e in v})
    click.echo(
        f"dropped      {n} scene(s) in {len(hit)} cell(s), left out because an asset could not "
        "be read; redo them with `s2cube mosaic ... --retry-dropped`"
    )
    for name, entries in hit.items():
        for e in entries:
            what = f"asset {e.get('asset')!r}" if e.get("href") else "metadata"
            click.echo(f"  {name}  {e['id']}  {what}: {str(e.get('error'))[:160]}")


#: units and one-line explanations of the per-cell metrics (``s2cube info``)
METRIC_DOCS: dict[str, tuple[str, str, str]] = {
    "read_fraction": ("%", ".1f", "scene-blocks read / scene-blocks with data (plan savings)"),
    "read_fraction_pixels": ("%", ".1f", "warped pixels read / a full read of every candidate"),
    "seam": (
        "",
        ".3f",
        "gradient across scene transitions / inside scenes (1 = invisible seams)",
    ),
    "colour_diff_raw": (" DN", ".1f", "mean |difference| of overlapping scenes, before"),
    "colour_diff_harmonized": (" DN", ".1f", "the same after harmonization (lower is better)"),
    "colour_diff_raw_rel": ("%", ".2f", "colour_diff_raw / mean reflectance"),
    "colour_diff_harmonized_rel": ("%", ".2f", "colour_diff_harmonized / mean reflectance"),
    "blocks": ("", ".0f", "processing blocks in the cell"),
    "fallback_blocks": ("", ".0f", "blocks that read beyond the plan (finer cloud edges)"),
    "scene_blocks_read": ("", ".0f", "scene × block reads done"),
}


@main.command("demo")
@click.option(
    "--out",
    default="s2cube-demo",
    type=click.Path(),
    show_default=True,
    help="Directory for the sample catalog, the store and the quick-look PNG.",
)
@click.option("--workers", type=int, default=2, show_default=True, help="Local dask workers.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sample catalog seed.")
def demo_cmd(out: str, workers: int, seed: int) -> None:
    """Generate the built-in sample catalog and run the whole mosaic offline."""
    from ..demo import run_demo

    result = run_demo(out, workers=workers, seed=seed)
    for key, value in result.items():
        click.echo(f"{key:12s} {value}")


#: commands of optional extras, registered explicitly and imported when used: a command whose
#: dependency is missing says which extra to install; any other import error surfaces as is
for _name, (_module, _attr, _extra, _summary) in OPTIONAL_COMMANDS.items():
    main.add_command(LazyCommand(_name, _module, _attr, _extra, _summary))
