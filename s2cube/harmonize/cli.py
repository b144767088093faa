"""``s2cube figures``: side-by-side PNGs for a person to look at.

For an area it writes, from the same items and grid:

* ``blend.png``: the plain priority composite (no harmonization, no blending) | harmonized +
  feathered | harmonized + multi-band blending, with the source-scene map underneath;
* ``tone.png``: the ESA TCI rule (linear 0–2000 DN → 0–255) | the s2cube global tone curve;
* ``metrics.json``: the seam metric and colour differences of each variant.

Example (the real fixture)::

    s2cube figures --catalog ../shared/data/s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m/catalog.json \\
        --bbox 15.6 45.8 16.2 46.2 --resolution 1/1000 --out figures/
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
import numpy as np

__all__ = ["figures", "make_figures"]


def _label(img: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    im = Image.fromarray(img)
    draw = ImageDraw.Draw(im)
    draw.rectangle([0, 0, 8 + 7 * len(text), 16], fill=(0, 0, 0, 255))
    draw.text((4, 2), text, fill=(255, 255, 255, 255))
    return np.asarray(im)


def _scene_colours(scene: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(7)
    lut = rng.integers(40, 255, size=(int(scene.max(initial=0)) + 2, 3)).astype("uint8")
    out = np.zeros((*scene.shape, 4), "uint8")
    ok = scene >= 0
    out[ok, :3] = lut[scene[ok]]
    out[..., 3] = np.where(ok, 255, 0)
    return out


def make_figures(
    catalog: str,
    bbox: tuple[float, float, float, float],
    out: str | Path,
    *,
    resolution: Fraction = Fraction(1, 1000),
    start: str | None = None,
    end: str | None = None,
    blend_width: int = 8,
) -> dict[str, Any]:
    """Composite ``bbox`` three ways and write ``blend.png``, ``tone.png`` and ``metrics.json``."""
    import dask
    from PIL import Image

    from ..grid import GlobalGrid, validate_bbox
    from ..pipeline import MosaicConfig, prepare_cells
    from ..quicklook import true_colour
    from ..search import search
    from .metrics import seam_metric

    bbox = validate_bbox(bbox)
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    items = search(catalog, bbox=bbox, start=start, end=end)
    grid = GlobalGrid(resolution=resolution, cell_size=Fraction(1, 4))
    cells = grid.cells_in_bbox(bbox)
    variants = {
        "plain": MosaicConfig(overviews=False, harmonize="none", blend="none"),
        "harmonized+feather": MosaicConfig(overviews=False, blend="feather", blend_width=blend_width),
        "harmonized+multiband": MosaicConfig(overviews=False, blend="multiband", blend_width=blend_width),
    }
    mosaics: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for name, cfg in variants.items():
        prepared = prepare_cells(items, cells, grid=grid, config=cfg)
        parts = dask.compute(prepared.datasets, scheduler="threads")[0]
        import xarray as xr

        ds = xr.combine_by_coords(list(parts.values()), combine_attrs="drop")
        ds = ds.sel(latitude=slice(bbox[3], bbox[1]), longitude=slice(bbox[0], bbox[2]))
        mosaics[name] = ds
        bands = np.stack([ds[b].values for b in ("red", "green", "blue", "nir")])
        recs = [r["metrics"] for r in prepared.records.values()]
        metrics[name] = {
            "seam": seam_metric(bands, ds.scene.values),
            "colour_diff_raw": float(np.nanmean([r.get("colour_diff_raw", np.nan) for r in recs])),
            "colour_diff_harmonized": float(np.nanmean([r.get("colour_diff_harmonized", np.nan) for r in recs])),
            "read_fraction": float(np.mean([r["read_fraction"] for r in recs])),
        }

    top = [_label(true_colour(ds), name) for name, ds in mosaics.items()]
    bottom = [_label(_scene_colours(ds.scene.values), "source scenes") for ds in mosaics.values()]
    sheet = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    Image.fromarray(sheet).save(out_p / "blend.png")
    best = mosaics["harmonized+feather"]
    tone = np.concatenate([_label(true_colour(best, rule="tci"), "ESA TCI rule (0-2000 linear)"),
                           _label(true_colour(best), "s2cube global tone curve")], axis=1)  # fmt: skip
    Image.fromarray(tone).save(out_p / "tone.png")
    (out_p / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return {"blend": str(out_p / "blend.png"), "tone": str(out_p / "tone.png"), "metrics": metrics}


@click.command("figures")
@click.option("--catalog", "-c", required=True, help="STAC API URL, preset or local catalog.")
@click.option("--bbox", nargs=4, type=float, required=True, metavar="W S E N")
@click.option("--out", required=True, type=click.Path(), help="Output directory.")
@click.option("--resolution", default="1/1000", show_default=True, help="Pixel size in degrees.")
@click.option("--start")
@click.option("--end")
@click.option("--blend-width", type=int, default=8, show_default=True)
def figures(catalog: str, bbox: tuple[float, float, float, float], out: str, resolution: str,
            start: str | None, end: str | None, blend_width: int) -> None:  # fmt: skip
    """Side-by-side PNGs: no blending vs blending, ESA TCI rule vs the global tone curve."""
    result = make_figures(catalog, bbox, out, resolution=Fraction(resolution), start=start, end=end,
                          blend_width=blend_width)  # fmt: skip
    click.echo(f"wrote {result['blend']} and {result['tone']}")
    for name, m in result["metrics"].items():
        click.echo(f"{name:22s} " + "  ".join(f"{k}={v:.4g}" for k, v in m.items()))
