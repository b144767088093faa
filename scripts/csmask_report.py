"""Accuracy report of the learned cloud masks (csmask) on the real test data.

``python scripts/csmask_report.py [DATA_DIR]`` prints the tables of ``docs/models.md``:

* the 33TWL/33TWM fixture (10 L2A scenes at 120 m) against SCL (weak reference), with the
  model run at 120 m and, on a central crop, at its nominal ~30 m (4× nearest upsampling);
* the eo-learn L1C reference scenes (5 dates, 10 m) against the s2cloudless mask (CLM).

A script, not part of the package: it reads fixtures that only a checkout has.  ``DATA_DIR``
defaults to ``$S2CUBE_SHARED_DATA`` or ``../shared/data`` beside the repository; each fixture
can be pointed at on its own (``--fixture``, ``--eolearn``).  See ``--help``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from s2cube.models.evaluate import Scores, confusion, scl_to_codes, scores

__all__ = ["eolearn_report", "fixture_report", "main"]

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("S2CUBE_SHARED_DATA", REPO.parent / "shared" / "data"))
FIXTURE = "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m"
EOLEARN = "eolearn_testeopatch_slovenia_33N"

_L2A = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08"}
_CLASS = {1: "clear", 2: "cloud", 3: "shadow"}


def _read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read()


def _mask(model: Any, dn: np.ndarray, precision: str) -> np.ndarray:
    import xarray as xr

    from s2cube.models.masks import cloud_mask

    cube = xr.DataArray(
        dn[None], dims=("time", "band", "y", "x"), coords={"band": list(model.card.input_bands)}
    )
    return cloud_mask(cube, model=model, precision=precision).values[0]


def _table(title: str, s: Scores) -> str:
    lines = [
        f"\n{title}",
        f"{'class':<8}{'precision':>10}{'recall':>8}{'F1':>7}{'IoU':>7}{'pixels':>10}",
    ]
    for label, p, r, f, i, n in zip(
        s.labels, s.precision, s.recall, s.f1, s.iou, s.support, strict=True
    ):
        lines.append(
            f"{_CLASS.get(label, label)!s:<8}{p:>10.3f}{r:>8.3f}{f:>7.3f}{i:>7.3f}{n:>10d}"
        )
    lines.append(f"overall accuracy {s.accuracy:.3f}, Cohen's kappa {s.kappa:.3f}")
    return "\n".join(lines)


def fixture_report(
    fixture: Path, *, model_name: str = "csmask-l2a-4b", precision: str = "fp32", crop: int = 229
) -> str:
    """Scores against SCL over the 10 fixture scenes (120 m) and a central crop at 30 m.

    ``fixture`` is the directory of the 33TWL/33TWM fixture (holding ``sentinel-2-l2a/``).
    """
    from s2cube.models.registry import load_model

    model = load_model(model_name)
    root = fixture / "sentinel-2-l2a"
    labels = (1, 2, 3)
    cm120 = np.zeros((3, 3), np.int64)
    cm_crop120 = np.zeros((3, 3), np.int64)
    cm_crop30 = np.zeros((3, 3), np.int64)
    for item in sorted(p for p in root.iterdir() if p.is_dir()):
        dn = np.concatenate([_read(item / f"{b}.tif") for b in _L2A.values()])
        ref = scl_to_codes(_read(item / "SCL.tif")[0])
        pred = _mask(model, dn, precision)
        cm120 += confusion(pred, ref, labels)
        y0 = (dn.shape[1] - crop) // 2
        sl = (slice(y0, y0 + crop), slice(y0, y0 + crop))
        cm_crop120 += confusion(pred[sl], ref[sl], labels)
        dn30 = np.repeat(np.repeat(dn[:, sl[0], sl[1]], 4, axis=1), 4, axis=2)
        pred30 = _mask(model, dn30, precision)
        # back to 120 m by the majority over each 4×4 block
        blocks = pred30.reshape(crop, 4, crop, 4).transpose(0, 2, 1, 3).reshape(crop, crop, 16)
        votes = np.stack([(blocks == c).sum(-1) for c in range(4)], axis=-1)
        cm_crop30 += confusion(votes.argmax(-1).astype(np.uint8), ref[sl], labels)
    return "\n".join(
        [
            f"# {model_name} vs SCL on the 33TWL/33TWM fixture ({precision})",
            _table("all 10 scenes, model at 120 m", scores(cm120, labels)),
            _table(f"central {crop}x{crop} px crop, model at 120 m", scores(cm_crop120, labels)),
            _table(
                "same crop, model at 30 m (4x nearest upsampling, majority back to 120 m)",
                scores(cm_crop30, labels),
            ),
        ]
    )


def eolearn_report(
    root: Path, *, model_name: str = "csmask-l1c-6b", precision: str = "fp32"
) -> str:
    """Cloud vs not-cloud against s2cloudless (CLM) on the 5 eo-learn L1C reference scenes.

    ``root`` is the eo-learn fixture directory (``clm_s2cloudless_mask_68dates.tif`` and
    ``reference_scenes_l1c_13band/``).
    """
    from s2cube.models.registry import load_model

    model = load_model(model_name)
    clm = _read(root / "clm_s2cloudless_mask_68dates.tif")
    scenes = sorted((root / "reference_scenes_l1c_13band").glob("*.tif"))
    bands = [1, 2, 3, 7, 11, 12][: len(model.card.input_bands)]  # B02 B03 B04 B08 B11 B12
    out = [f"# {model_name} vs s2cloudless CLM on the eo-learn L1C scenes ({precision})"]
    for factor in (1, 3):
        cm = np.zeros((2, 2), np.int64)
        per_scene = []
        for k, path in enumerate(scenes):  # the 5 reference scenes are CLM bands 1-5, in order
            toa = _read(path)[bands]
            h, w = toa.shape[1] // factor * factor, toa.shape[2] // factor * factor
            x = (
                toa[:, :h, :w]
                .reshape(len(bands), h // factor, factor, w // factor, factor)
                .mean((2, 4))
            )
            dn = np.clip(np.round(x * 10000), 1, 65535).astype(np.uint16)
            pred = _mask(model, dn, precision)
            pred = np.repeat(np.repeat(pred, factor, 0), factor, 1)
            cloud_pred = np.where(pred == 2, 1, 0).astype(np.uint8)
            ref = clm[k, :h, :w].astype(np.uint8)
            cm += confusion(cloud_pred, ref, (0, 1))
            per_scene.append(
                f"{path.stem[11:19]}: s2cloudless {ref.mean():.2f}, model cloud "
                f"{(pred == 2).mean():.2f} shadow {(pred == 3).mean():.2f}"
            )
        s = scores(cm, (0, 1))
        s = Scores((1, 2), s.precision, s.recall, s.f1, s.iou, s.accuracy, s.kappa, s.support)
        out.append(_table(f"model at {10 * factor} m (cloud vs not cloud)", s))
        out.append("  " + "\n  ".join(per_scene))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the eo-learn report, then the fixture report (the order of ``docs/models.md``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "data", nargs="?", type=Path, default=DATA, help=f"shared test data (default {DATA})"
    )
    ap.add_argument("--fixture", type=Path, help=f"the {FIXTURE} directory (default DATA/...)")
    ap.add_argument("--eolearn", type=Path, help=f"the {EOLEARN} directory (default DATA/...)")
    ap.add_argument("--precision", default="fp32", help="model precision (default fp32)")
    args = ap.parse_args(argv)
    print(eolearn_report(args.eolearn or args.data / EOLEARN, precision=args.precision))
    print()
    print(fixture_report(args.fixture or args.data / FIXTURE, precision=args.precision))


if __name__ == "__main__":  # pragma: no cover
    main()
