"""``s2cube train cloud|haze|sr``: train a model from a STAC catalog's L2A items.

Register into the main command with ``main.add_command(train)``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import click
import numpy as np

__all__ = ["load_catalog_cube", "train"]


def load_catalog_cube(
    catalog: str | Path,
    *,
    assets: list[str],
    resolution: float,
    bbox: tuple[float, float, float, float] | None = None,
    max_items: int | None = None,
    bbox_crs: str = "items",
) -> Any:
    """A ``(time, band, y, x)`` uint16 cube from a static STAC catalog.

    ``bbox`` is in the items' projected CRS (``bbox_crs="items"``) or, with
    ``bbox_crs="EPSG:4326"``, lon/lat degrees (west south east north), checked and projected
    to the items' CRS; a bbox that misses every item is an :class:`InputError`. Items are
    normalised on a copy
    (``proj:code`` → ``proj:epsg``, which stackstac 0.5 reads), then read through
    :func:`s2cube.reader.stack_projected` (a transient read failure: nodata and a warning).
    """
    import pystac

    from s2cube.errors import InputError
    from s2cube.reader import stack_projected

    cat = pystac.Catalog.from_file(str(catalog))
    items = sorted(cat.get_items(recursive=True), key=lambda i: (i.datetime, i.id))
    if max_items:
        items = items[:max_items]
    if not items:
        raise InputError(f"no items in {catalog}")
    items = [copy.deepcopy(i) for i in items]
    for item in items:
        item.make_asset_hrefs_absolute()  # relative hrefs would resolve against the cwd
        code = item.properties.get("proj:code")
        if (
            "proj:epsg" not in item.properties
            and isinstance(code, str)
            and code.startswith("EPSG:")
        ):
            item.properties["proj:epsg"] = int(code.split(":")[1])
    epsg = items[0].properties.get("proj:epsg")
    if bbox is not None and bbox_crs != "items":
        bbox = _project_bbox(bbox, bbox_crs, epsg, items)
    cube = stack_projected(
        [i.to_dict() for i in items], assets=assets, epsg=epsg, resolution=resolution, bounds=bbox
    )
    return cube.drop_vars([c for c in cube.coords if c not in ("time", "band", "y", "x")])


def _project_bbox(
    bbox: tuple[float, float, float, float], crs: str, epsg: int | None, items: list[Any]
) -> tuple[float, float, float, float]:
    """A lon/lat bbox → the items' CRS, after checking it and that it touches an item."""
    from pyproj import Transformer
    from pyproj.exceptions import CRSError

    from s2cube.errors import InputError
    from s2cube.grid import validate_bbox

    if crs.upper() not in ("EPSG:4326", "WGS84", "LONLAT"):
        raise InputError(f"bbox_crs={crs!r}: use 'EPSG:4326' (lon/lat) or 'items'")
    try:
        west, south, east, north = validate_bbox(bbox)
    except InputError as exc:
        if any(abs(v) > 180 for v in bbox):
            raise InputError(
                f"--bbox {' '.join(f'{v:g}' for v in bbox)} is not lon/lat (degrees): these "
                f"look like projected metres; give west south east north in degrees, or add "
                f"--bbox-crs items to use the items' CRS (EPSG:{epsg})"
            ) from exc
        raise
    boxes = [i.bbox for i in items if i.bbox]
    if boxes and not any(
        b[0] < east and b[2] > west and b[1] < north and b[3] > south for b in boxes
    ):
        w, s_, e, n = (min(b[0] for b in boxes), min(b[1] for b in boxes),
                       max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip
        raise InputError(
            f"--bbox {west:g} {south:g} {east:g} {north:g} touches none of the {len(items)} "
            f"items (they cover lon {w:.3f}..{e:.3f}, lat {s_:.3f}..{n:.3f})"
        )
    if epsg is None:
        raise InputError("the items carry no proj:epsg/proj:code: give --bbox-crs items")
    try:
        t = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    except CRSError as exc:
        raise InputError(f"the items' CRS EPSG:{epsg} is unknown to PROJ ({exc})") from exc
    x0, y0, x1, y1 = t.transform_bounds(west, south, east, north, densify_pts=21)
    return (float(x0), float(y0), float(x1), float(y1))


def _common(fn: Any) -> Any:
    options = [
        click.argument("catalog", type=click.Path(exists=True, dir_okay=False)),
        click.option(
            "--out",
            "out_dir",
            required=True,
            type=click.Path(file_okay=False),
            help="Output folder: model.pt, model.json, history.json, checkpoints/.",
        ),
        click.option(
            "--resolution",
            type=float,
            default=120.0,
            show_default=True,
            help="Pixel size (m) to load the items at.",
        ),
        click.option(
            "--bbox",
            type=float,
            nargs=4,
            default=None,
            metavar="W S E N",
            help="Area to train on: lon/lat degrees (west south east north), or in the "
            "items' CRS with --bbox-crs items.",
        ),
        click.option(
            "--bbox-crs",
            type=click.Choice(["EPSG:4326", "items"], case_sensitive=False),
            default="EPSG:4326",
            show_default=True,
            help="CRS of --bbox: lon/lat, or the items' projected CRS (metres).",
        ),
        click.option("--max-items", type=int, default=None),
        click.option(
            "--labels",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            help="A .npy (time, y, x) label stack on the loaded grid (else SCL).",
        ),
        click.option("--epochs", type=int, default=10, show_default=True),
        click.option("--patch", type=int, default=None, help="Patch size in px."),
        click.option("--batch-size", type=int, default=16, show_default=True),
        click.option("--width", type=int, default=16, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--max-patches", type=int, default=None),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run(
    kind: str,
    catalog: str,
    out_dir: str,
    resolution: float,
    bbox: Any,
    bbox_crs: str,
    max_items: Any,
    labels: Any,
    epochs: int,
    patch: int | None,
    batch_size: int,
    width: int,
    seed: int,
    max_patches: int | None,
) -> None:
    from s2cube.models.train import TrainConfig, train_cloud, train_haze

    assets = ["blue", "green", "red", "nir"] + ([] if labels else ["scl"])
    cube = load_catalog_cube(
        catalog,
        assets=assets,
        resolution=resolution,
        bbox=tuple(bbox) if bbox else None,
        max_items=max_items,
        bbox_crs="items" if bbox_crs.lower() == "items" else "EPSG:4326",
    )
    label_array = np.load(labels) if labels else None
    config = TrainConfig(
        patch=patch or (64 if kind == "cloud" else 16),
        epochs=epochs,
        batch_size=batch_size,
        width=width,
        seed=seed,
        max_patches=max_patches,
    )
    fn = train_cloud if kind == "cloud" else train_haze
    result = fn(
        cube.compute(),
        out_dir,
        labels=label_array,
        config=config,
        training_data=f"{catalog} ({cube.sizes['time']} items at {resolution:g} m)",
    )
    last = result.history[result.best_epoch - 1]
    click.echo(
        f"saved {result.path} (best epoch {result.best_epoch}: val_loss "
        f"{last['val_loss']:.4f}, val_accuracy {last['val_accuracy']:.3f})"
    )


@click.group()
def train() -> None:
    """Train cloud/shadow or haze models from a STAC catalog."""


@train.command("cloud")
@_common
def train_cloud_command(**kwargs: Any) -> None:
    """Train the compact cloud/shadow U-net (SCL weak labels unless --labels)."""
    _run("cloud", **kwargs)


@train.command("haze")
@_common
def train_haze_command(**kwargs: Any) -> None:
    """Train the 3-conv-layer haze classifier (SCL 10 = haze unless --labels)."""
    _run("haze", **kwargs)


train.add_command(__import__("s2cube.landcover.train_cli", fromlist=["_"]).landcover_command)


@train.command("sr")
@click.argument("catalog", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for checkpoint.pt, generator.pt, history.json, split.json.",
)
@click.option("--scale", type=click.IntRange(2, 8), default=4, show_default=True)
@click.option(
    "--resolution",
    type=float,
    default=120.0,
    show_default=True,
    help="Read the items at this resolution (m); the model learns resolution×scale → resolution.",
)
@click.option("--epochs", type=click.IntRange(1), default=12, show_default=True)
@click.option(
    "--gan-start",
    type=click.IntRange(1),
    default=9,
    show_default=True,
    help="First epoch of the GAN phase (earlier epochs: SRResNet warm-up).",
)
@click.option("--features", type=click.IntRange(1), default=32, show_default=True)
@click.option("--blocks", type=click.IntRange(0), default=8, show_default=True)
@click.option(
    "--patch",
    type=click.IntRange(8),
    default=64,
    show_default=True,
    help="Truth patch edge (px); the input is patch/scale.",
)
@click.option("--stride", type=click.IntRange(1), default=32, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True)
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None)
@click.option("--adv-weight", type=float, default=1e-3, show_default=True)
@click.option("--lr", type=float, default=2e-4, show_default=True, help="Adam learning rate.")
@click.option(
    "--lr-schedule",
    type=click.Choice(["constant", "cosine"]),
    default="constant",
    show_default=True,
    help="cosine: the rate falls from --lr to --lr-min over all the run's steps.",
)
@click.option("--lr-min", type=float, default=0.0, show_default=True)
@click.option(
    "--pixel-loss",
    type=click.Choice(["l1", "mse"]),
    default="l1",
    show_default=True,
    help="Content loss: l1 (EDSR) or mse (SRResNet; what PSNR measures).",
)
@click.option(
    "--held-out",
    type=click.FloatRange(0.05, 0.5),
    default=0.25,
    show_default=True,
    help="Fraction of columns (the east end) held out for validation and test.",
)
@click.option("--max-items", type=click.IntRange(1), default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None)
@click.option(
    "--threads",
    type=click.IntRange(1),
    default=None,
    help="torch CPU threads (torch.set_num_threads).",
)
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoint.pt.")
@click.option(
    "--init",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Start from this generator.pt (same architecture) instead of a seeded init.",
)
@click.option(
    "--from-npz",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Read the cube from an npz (cube: time×4×y×x uint16, scl, items) instead of CATALOG "
    "(scripts/device/train_sr.sh --prepare writes it for machines without ../shared).",
)
def train_sr_command(
    catalog: str,
    out_dir: str,
    resolution: float,
    held_out: float,
    stride: int,
    max_items: int | None,
    threads: int | None,
    resume: bool,
    from_npz: str | None,
    **kwargs: Any,
) -> None:
    """Train the super-resolution GAN on a static catalog's scenes (Wald protocol)."""
    import json

    from s2cube.superres.train import SRTrainConfig, sr_dataset, train_sr

    if threads:
        import torch

        torch.set_num_threads(threads)
    config = SRTrainConfig(**kwargs)
    if from_npz:
        with np.load(from_npz) as z:
            bands, scl, items = z["cube"], z["scl"], [str(i) for i in z["items"]]
    else:
        if not Path(catalog).is_file():
            raise click.BadParameter(f"{catalog!r} does not exist", param_hint="CATALOG")
        cube = load_catalog_cube(
            catalog, assets=["red", "green", "blue", "nir", "scl"], resolution=resolution,
            max_items=max_items,
        ).compute()  # fmt: skip
        arr = np.asarray(cube.values)
        bands, scl = arr[:, :4].astype("uint16"), arr[:, 4]
        items = [str(t) for t in cube.time.values]
    data = sr_dataset(bands, scl, patch=config.patch, stride=stride, held_out=held_out)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    split = {
        "catalog": str(catalog),
        "items": items,
        "resolution_m": resolution,
        "grid_shape": list(bands.shape),
        "held_out": f"columns >= {data.cut_column} of {bands.shape[-1]} (east {held_out:.0%})",
        "validation": f"held-out rows < {data.cut_row}",
        "test": f"held-out rows >= {data.cut_row}",
        "patches": {"train": len(data.train), "validation": len(data.validation),
                    "test": len(data.test)},
    }  # fmt: skip
    (out / "split.json").write_text(json.dumps(split, indent=1))
    click.echo(
        f"{len(data.train)} training, {len(data.validation)} validation and {len(data.test)} "
        f"test patches of {config.patch} px from {bands.shape[0]} items"
    )
    result = train_sr(
        data.train, data.validation, out, config=config, resume=resume, log=click.echo
    )
    click.echo(f"saved {result.generator_path} (best epoch {result.best_epoch})")
