"""``s2cube train cloud|haze``: train a model from a STAC catalog's L2A items.

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
) -> Any:
    """A ``(time, band, y, x)`` uint16 cube from a static STAC catalog.

    ``bbox`` is in the items' projected CRS. Items are normalised on a copy
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
    cube = stack_projected(
        [i.to_dict() for i in items], assets=assets, epsg=epsg, resolution=resolution, bounds=bbox
    )
    return cube.drop_vars([c for c in cube.coords if c not in ("time", "band", "y", "x")])


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
            help="minx miny maxx maxy in the items' CRS.",
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
