"""``s2cube figures``: side-by-side PNGs for a person to look at.

For an area it writes, from the same items and grid:

* ``blend.png``: the plain priority composite (no harmonization, no blending) | harmonized +
  feathered | harmonized + multi-band blending, with the source-scene map underneath;
* ``tone.png``: the ESA TCI rule (linear 0–2000 DN → 0–255) | the Planetary Computer's
  sigmoidal formula | the old log curve (v1) | the s2cube global tone curve (v2);
* ``metrics.json``: the seam metric and colour differences of each variant, and the rendering
  metrics of each tone rule (:mod:`s2cube.render_metrics`) under ``"tone"``.

Every variant is planned over all cells of the area together, as :func:`s2cube.mosaic` plans a
run, so the pictures show what a store would hold.

Example (the real fixture)::

    s2cube figures \\
        --catalog ../shared/data/s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m/catalog.json \\
        --bbox 15.6 45.8 16.2 46.2 --resolution 1/1000 --out figures/
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import click
import numpy as np
import pystac
import xarray as xr

from ..config import MosaicConfig
from ..grid import GlobalGrid, validate_bbox
from ..harmonize.metrics import seam_metric
from ..planner import plan_cells
from ..quicklook import true_colour
from ..render import pc_sigmoidal, tci, tone_curve, tone_curve_v1
from ..render_metrics import luminance, rendering_metrics
from ..search import search

__all__ = ["figures", "make_figures"]

BBox = tuple[float, float, float, float]


def _label(img: np.ndarray, text: str) -> np.ndarray:
    """``img`` with ``text`` in white on a black box in its top-left corner."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(img)
    draw = ImageDraw.Draw(im)
    draw.rectangle((0, 0, 8 + 7 * len(text), 16), fill=(0, 0, 0, 255))
    draw.text((4, 2), text, fill=(255, 255, 255, 255))
    return np.asarray(im)


def _scene_colours(scene: np.ndarray) -> np.ndarray:
    """RGBA map of source-scene indices (fixed seed: a scene has one colour in every panel)."""
    rng = np.random.default_rng(7)
    lut = rng.integers(40, 255, size=(int(scene.max(initial=0)) + 2, 3)).astype("uint8")
    out = np.zeros((*scene.shape, 4), "uint8")
    ok = scene >= 0
    out[ok, :3] = lut[scene[ok]]
    out[..., 3] = np.where(ok, 255, 0)
    return out


def _variants(blend_width: int) -> dict[str, MosaicConfig]:
    return {
        "plain": MosaicConfig(harmonize="none", blend="none"),
        "harmonized+feather": MosaicConfig(blend="feather", blend_width=blend_width),
        "harmonized+multiband": MosaicConfig(blend="multiband", blend_width=blend_width),
    }


def tone_panels(ds: xr.Dataset) -> tuple[dict[str, np.ndarray], dict[str, dict[str, float]]]:
    """RGBA renderings of ``ds`` by every tone rule, and their metrics on the valid pixels."""
    r, g, b = (np.asarray(ds[v].values) for v in ("red", "green", "blue"))
    valid = (r > 0) & (g > 0) & (b > 0)
    rules = {
        "ESA TCI rule (0-2000 linear)": np.stack([tci(r), tci(g), tci(b)], axis=-1),
        "Planetary Computer sigmoidal": pc_sigmoidal(r, g, b),
        "s2cube tone curve v1 (log)": np.stack(
            [tone_curve_v1(r), tone_curve_v1(g), tone_curve_v1(b)], axis=-1
        ),
        "s2cube tone curve v2": np.stack([tone_curve(r), tone_curve(g), tone_curve(b)], axis=-1),
    }
    lum_in = luminance(np.stack([r, g, b], axis=-1))
    panels, metrics = {}, {}
    for name, rgb in rules.items():
        metrics[name] = rendering_metrics(rgb, valid, lum_in)
        rgba = np.zeros((*valid.shape, 4), "uint8")
        rgba[..., :3] = np.where(valid[..., None], rgb, 0)
        rgba[..., 3] = np.where(valid, 255, 0)
        panels[name] = rgba
    return panels, metrics


def _composite_area(
    items: Sequence[pystac.Item], bbox: BBox, grid: GlobalGrid, config: MosaicConfig
) -> tuple[xr.Dataset, dict[str, Any]]:
    """The composite of ``bbox`` (all its cells planned together) and its metrics."""
    import dask

    run = plan_cells(items, grid.cells_in_bbox(bbox), grid=grid, config=config)
    (parts,) = dask.compute({n: p.dataset for n, p in run.cells.items()}, scheduler="threads")
    ds = xr.combine_by_coords(list(parts.values()), combine_attrs="drop")
    assert isinstance(ds, xr.Dataset)  # combining datasets gives a dataset
    ds = ds.sel(latitude=slice(bbox[3], bbox[1]), longitude=slice(bbox[0], bbox[2]))
    bands = np.stack([ds[b].values for b in ("red", "green", "blue", "nir")])
    recs = [p.record["metrics"] for p in run.cells.values()]

    def mean_of(key: str) -> float:
        return float(np.nanmean([r.get(key, np.nan) for r in recs]))

    metrics = {
        "seam": seam_metric(bands, ds.scene.values),
        "colour_diff_raw": mean_of("colour_diff_raw"),
        "colour_diff_harmonized": mean_of("colour_diff_harmonized"),
        "read_fraction": float(np.mean([r["read_fraction"] for r in recs])),
    }
    return ds, metrics


def make_figures(
    catalog: str,
    bbox: Sequence[float],
    out: str | Path,
    *,
    resolution: Fraction = Fraction(1, 1000),
    start: str | None = None,
    end: str | None = None,
    blend_width: int = 8,
) -> dict[str, Any]:
    """Composite ``bbox`` three ways and write ``blend.png``, ``tone.png`` and ``metrics.json``.

    Parameters
    ----------
    catalog : str
        Anything :func:`s2cube.search` accepts (STAC API URL, preset, local catalog).
    bbox : sequence of float
        ``(west, south, east, north)`` in degrees.
    out : str or Path
        Output directory (created if missing).
    resolution : Fraction, default 1/1000
        Pixel size in degrees (cells are 1/4 degree).
    start, end : str, optional
        Search dates.
    blend_width : int, default 8
        Blend width (pixels) of the two blended variants.

    Returns
    -------
    dict
        ``{"blend": path, "tone": path, "metrics": {variant: {metric: value}}}``.

    Examples
    --------
    >>> make_figures("catalog.json", (15.6, 45.8, 16.2, 46.2), "figures/")  # doctest: +SKIP
    """
    from PIL import Image

    bbox_t = validate_bbox(bbox)
    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    items = search(catalog, bbox=bbox_t, start=start, end=end)
    grid = GlobalGrid(resolution=resolution, cell_size=Fraction(1, 4))
    mosaics: dict[str, xr.Dataset] = {}
    metrics: dict[str, Any] = {}
    for name, config in _variants(blend_width).items():
        mosaics[name], metrics[name] = _composite_area(items, bbox_t, grid, config)

    top = [_label(true_colour(ds), name) for name, ds in mosaics.items()]
    bottom = [_label(_scene_colours(ds.scene.values), "source scenes") for ds in mosaics.values()]
    sheet = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    Image.fromarray(sheet).save(out_p / "blend.png")
    best = mosaics["harmonized+feather"]
    panels, metrics["tone"] = tone_panels(best)
    tone = np.concatenate([_label(img, name) for name, img in panels.items()], axis=1)
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
def figures(
    catalog: str,
    bbox: BBox,
    out: str,
    resolution: str,
    start: str | None,
    end: str | None,
    blend_width: int,
) -> None:
    """Side-by-side PNGs: no blending vs blending; TCI, PC sigmoidal and the tone curves."""
    result = make_figures(
        catalog,
        bbox,
        out,
        resolution=Fraction(resolution),
        start=start,
        end=end,
        blend_width=blend_width,
    )
    click.echo(f"wrote {result['blend']} and {result['tone']}")
    for name, m in result["metrics"].items():
        for sub, mm in m.items() if name == "tone" else [(name, m)]:
            click.echo(f"{sub:30s} " + "  ".join(f"{k}={v:.4g}" for k, v in mm.items()))
