"""``s2cube train landcover``: train one of the three land-cover U-nets from a STAC catalog.

Label sources (one per run): a label raster with a class-mapping table (``--labels-raster``,
``--mapping``), vector polygons with an attribute and a mapping table (``--labels-vector``,
``--attribute``, ``--mapping``; GeoJSON or GeoPackage), distillation from the fused Dynamic
World map of the same catalog (``--distill``; needs its nine bands), or, by default, SCL weak
labels. Static labels apply to every date where SCL sees the surface.

This module also reads the label files (:func:`read_mapping`, :func:`read_polygons`); the
training itself is :func:`s2cube.landcover.train.train_unet`.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import click
import numpy as np

from s2cube.errors import InputError

__all__ = ["landcover_command", "read_mapping", "read_polygons"]

#: SCL classes that see the surface (static labels are used there only)
_SURFACE = (2, 4, 5, 6, 7, 11)


def read_mapping(path: str | Path) -> dict[str, str]:
    """A class-mapping table: JSON ``{"value": "class"}`` or CSV with two columns
    (value, class; a header row is skipped when its second cell is not a class name).

    Examples
    --------
    >>> read_mapping("worldcover.csv")  # doctest: +SKIP
    {'10': 'tree', '30': 'grass', '50': 'built', '80': 'water'}
    """
    from s2cube.landcover.train import LABEL_CODES

    path = Path(path)
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise InputError(f"{path}: expected a JSON object {{value: class name}}")
        table = {str(k): str(v) for k, v in data.items()}
    else:
        with path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
        if rows and rows[0][1].strip().lower() not in LABEL_CODES:
            rows = rows[1:]
        if any(len(r) < 2 for r in rows):
            raise InputError(f"{path}: every row needs two cells, value and class name")
        table = {r[0].strip(): r[1].strip() for r in rows}
    if not table:
        raise InputError(f"{path}: the mapping table is empty")
    return table


def _gpkg_geometry(blob: bytes) -> Any:
    """A GeoPackage geometry blob → shapely (the GPKG header, then standard WKB)."""
    import shapely

    if blob[:2] != b"GP":
        raise InputError("not a GeoPackage geometry blob")
    flags = blob[3]
    envelope = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}.get((flags >> 1) & 7)
    if envelope is None:
        raise InputError(f"GeoPackage geometry with an invalid envelope code in flags {flags}")
    return shapely.from_wkb(blob[8 + envelope :])


def read_polygons(path: str | Path, attribute: str) -> tuple[list[Any], list[Any], str | None]:
    """Polygons and one attribute from a GeoJSON or GeoPackage (its first feature table).

    Returns ``(geometries, values, crs)`` with shapely geometries and the layer's CRS
    (``"EPSG:n"``; GeoJSON: its ``crs`` member or ``EPSG:4326``).
    """
    import shapely

    path = Path(path)
    if path.suffix.lower() == ".gpkg":
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            table, srs = con.execute(
                "select table_name, srs_id from gpkg_contents where data_type = 'features'"
            ).fetchone()
            (geom_col,) = con.execute(
                "select column_name from gpkg_geometry_columns where table_name = ?", (table,)
            ).fetchone()
            cols = [r[1] for r in con.execute(f'pragma table_info("{table}")')]
            if attribute not in cols:
                raise InputError(f"{path}: no attribute {attribute!r}; it has {cols}")
            rows = con.execute(f'select "{geom_col}", "{attribute}" from "{table}"').fetchall()
            org = con.execute(
                "select organization, organization_coordsys_id from gpkg_spatial_ref_sys "
                "where srs_id = ?",
                (srs,),
            ).fetchone()
        except (sqlite3.DatabaseError, TypeError) as exc:
            raise InputError(f"{path} is not a GeoPackage with a feature table ({exc})") from exc
        finally:
            con.close()
        crs = f"{org[0].upper()}:{org[1]}" if org and org[0] else None
        return [_gpkg_geometry(g) for g, _ in rows if g], [v for g, v in rows if g], crs
    data = json.loads(path.read_text())
    feats = data.get("features", [])
    missing = [i for i, f in enumerate(feats) if attribute not in (f.get("properties") or {})]
    if missing or not feats:
        raise InputError(f"{path}: {len(missing)} features lack {attribute!r} (or none exist)")
    crs = (data.get("crs") or {}).get("properties", {}).get("name", "EPSG:4326")
    if "CRS84" in crs:
        crs = "EPSG:4326"
    geoms = [shapely.geometry.shape(f["geometry"]) for f in feats]
    return geoms, [f["properties"][attribute] for f in feats], crs


def _to_crs(geoms: list[Any], src: str | None, dst: Any) -> list[Any]:
    import shapely
    from pyproj import CRS, Transformer

    if src is None or CRS.from_user_input(src) == CRS.from_user_input(dst):
        return geoms
    t = Transformer.from_crs(src, dst, always_xy=True)
    return [shapely.transform(g, lambda xy: np.column_stack(t.transform(*xy.T))) for g in geoms]


@click.command("landcover")
@click.argument("catalog", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--model",
    "model",
    type=click.Choice(["water", "vegetation", "buildings"]),
    required=True,
    help="Which of the three U-nets to train.",
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--labels-raster", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--labels-vector", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--attribute", default=None, help="Polygon attribute that --mapping maps.")
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CSV/JSON table: raster value or attribute value -> class name.",
)
@click.option("--distill", is_flag=True, help="Labels from the fused Dynamic World map.")
@click.option("--min-confidence", type=float, default=0.5, show_default=True)
@click.option("--resolution", type=float, default=120.0, show_default=True)
@click.option("--bbox", type=float, nargs=4, default=None, metavar="W S E N")
@click.option(
    "--bbox-crs",
    type=click.Choice(["EPSG:4326", "items"], case_sensitive=False),
    default="EPSG:4326",
    show_default=True,
)
@click.option("--max-items", type=int, default=None)
@click.option(
    "--holdout-side",
    type=click.Choice(["south", "north", "east", "west"]),
    default="south",
    show_default=True,
    help="Side of the held-out spatial block.",
)
@click.option("--holdout-fraction", type=float, default=0.3, show_default=True)
@click.option(
    "--holdout-dates",
    default=None,
    help="Hold out whole scenes instead: comma-separated dates (YYYY-MM-DD).",
)
@click.option("--epochs", type=int, default=8, show_default=True)
@click.option("--patch", type=int, default=64, show_default=True)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--width", type=int, default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-patches", type=int, default=2000, show_default=True)
@click.option(
    "--class-weights",
    type=click.Choice(["sqrt", "none"]),
    default="sqrt",
    show_default=True,
    help="Loss weights: inverse-sqrt class frequency, or none.",
)
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's).")
@click.option("--resume", is_flag=True, help="Continue from OUT/checkpoints/state.pt.")
def landcover_command(**kw: Any) -> None:
    """Train a land-cover U-net (water, vegetation or buildings) with a held-out score."""
    _run(**kw)


def _run(  # noqa: PLR0913
    catalog: str,
    model: str,
    out_dir: str,
    labels_raster: str | None,
    labels_vector: str | None,
    attribute: str | None,
    mapping: str | None,
    distill: bool,
    min_confidence: float,
    resolution: float,
    bbox: Any,
    bbox_crs: str,
    max_items: int | None,
    holdout_side: str,
    holdout_fraction: float,
    holdout_dates: str | None,
    epochs: int,
    patch: int,
    batch_size: int,
    width: int,
    seed: int,
    max_patches: int,
    class_weights: str,
    threads: int | None,
    resume: bool,
) -> None:
    from s2cube.landcover.train import (
        LandcoverTrainConfig,
        block_split,
        labels_from_fused,
        labels_from_polygons,
        labels_from_scl,
        labels_from_values,
        train_unet,
    )
    from s2cube.landcover.unets import UNET_MODELS
    from s2cube.models.cli import load_catalog_cube

    sources = [s for s in (labels_raster, labels_vector) if s] + (["distill"] if distill else [])
    if len(sources) > 1:
        raise InputError("give one label source: --labels-raster, --labels-vector or --distill")
    if (labels_raster or labels_vector) and not mapping:
        raise InputError("--labels-raster/--labels-vector need --mapping (value -> class name)")
    if labels_vector and not attribute:
        raise InputError("--labels-vector needs --attribute (the polygon field to map)")
    if not sources and model == "buildings":
        raise InputError(
            "SCL cannot tell built-up land from bare soil: the buildings model needs "
            "--labels-raster, --labels-vector or --distill"
        )
    config = LandcoverTrainConfig(
        patch=patch,
        epochs=epochs,
        batch_size=batch_size,
        width=width,
        seed=seed,
        max_patches=max_patches,
        class_weights=class_weights,
    )
    if threads:
        import torch

        torch.set_num_threads(threads)
    spec = UNET_MODELS[model]
    extra = ["rededge1", "rededge2", "rededge3", "swir16", "swir22"] if distill else []
    assets = list(dict.fromkeys(["blue", "green", "red", "nir", *extra, "scl"]))
    cube = load_catalog_cube(
        catalog,
        assets=assets,
        resolution=resolution,
        bbox=tuple(bbox) if bbox else None,
        max_items=max_items,
        bbox_crs="items" if bbox_crs.lower() == "items" else "EPSG:4326",
    ).compute()
    scl = cube.sel(band="scl").values
    surface = np.isin(scl, _SURFACE)
    shape = scl.shape[1:]
    if labels_raster:
        from s2cube.reader import open_raster, warp_like

        with open_raster(labels_raster) as src:
            values = warp_like(
                src, crs=cube.attrs["crs"], transform=cube.attrs["transform"], shape=shape
            )[0]
        static = labels_from_values(values, read_mapping(mapping or ""))
        labels = np.where(surface, static[None], 255).astype(np.uint8)
        what = f"label raster {labels_raster} mapped by {mapping}"
    elif labels_vector:
        geoms, values_, crs = read_polygons(labels_vector, attribute or "")
        geoms = _to_crs(geoms, crs, cube.attrs["crs"])
        static = labels_from_polygons(
            geoms,
            values_,
            read_mapping(mapping or ""),
            transform=cube.attrs["transform"],
            shape=shape,
        )
        labels = np.where(surface, static[None], 255).astype(np.uint8)
        what = f"polygons {labels_vector} ({attribute}) mapped by {mapping}"
    elif distill:
        from s2cube.landcover import landcover
        from s2cube.mask import CLEAR, CLOUD

        codes = cube.sel(band="scl").copy(data=np.where(surface, CLEAR, CLOUD).astype(np.uint8))
        fused = landcover(cube.drop_sel(band="scl"), codes, window=128, device="cpu")
        static = labels_from_fused(
            fused.landcover.values, fused.confidence.values, min_confidence=min_confidence
        )
        labels = np.where(surface, static[None], 255).astype(np.uint8)
        what = f"distilled from the fused Dynamic World map (confidence >= {min_confidence})"
    else:
        labels = labels_from_scl(scl)
        what = "SCL weak labels (6 water, 4 vegetation, 5 not vegetated)"
    times = [str(t)[:10] for t in cube["time"].values]
    if holdout_dates:
        wanted = [d.strip() for d in holdout_dates.split(",") if d.strip()]
        unknown = [d for d in wanted if d not in times]
        if unknown:
            raise InputError(f"--holdout-dates {unknown} are not among the scenes' dates {times}")
        held_t = np.isin(times, wanted)
        held = np.broadcast_to(held_t[:, None, None], labels.shape)
        train_area = ~held
        held_desc = f"whole scenes of {', '.join(wanted)}"
    else:
        tr, ho = block_split(shape, side=holdout_side, fraction=holdout_fraction, gap=patch)
        train_area, held = tr, ho
        held_desc = (
            f"spatial block: the {holdout_side}ern {holdout_fraction:.0%} of the area, "
            f"{patch} px gap, all dates"
        )
    dn = cube.sel(band=list(spec.bands)).values
    images = dn.astype(np.float32) / np.float32(10000)
    result = train_unet(
        images,
        labels,
        model,
        out_dir,
        train_area=train_area,
        held_out=held,
        config=config,
        resume=resume,
        training_data=f"{catalog}: {cube.sizes['time']} scenes at {resolution:g} m; {what}",
        held_out_data=held_desc,
        not_proven=(
            "agreement with the label source on held-out pixels of the same scenes/region; "
            "not accuracy against ground truth, other regions, seasons or resolutions"
        ),
        resolution_m=resolution,
    )
    scored = result.held_out
    click.echo(
        f"saved {result.path} ({len(result.history)} epochs run"
        + (f", resumed after epoch {result.resumed_from}" if result.resumed_from else "")
        + f"); held-out OA {scored.get('overall_accuracy')} kappa {scored.get('kappa')} "
        f"F1 {scored.get('f1')} on {scored.get('n_pixels')} px"
        + (
            f"; partial-label accuracy {scored['partial_accuracy']}"
            if "partial_accuracy" in scored
            else ""
        )
    )
