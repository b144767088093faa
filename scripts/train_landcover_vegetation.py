"""Train the shipped vegetation U-net: distilled from the fused Dynamic World map of the Slovenia
patch, scored on a held-out spatial block against the patch's RABA labels.

    python scripts/train_landcover_vegetation.py OUT_DIR [--epochs 30]

Data: ``../shared/data/eolearn_testeopatch_slovenia_33N`` (101×100 px at 10 m, 5 L1C dates,
2 fully cloudy; s2cloudless masks; RABA land use). Dynamic World runs on the nine bands of every
date; the clear dates are fused (:func:`s2cube.landcover.fuse`); its confident classes (fused
probability >= 0.5) label the **western 61 columns** of the clear dates. The **eastern 35
columns** (a 4 px gap between) are held out: no training patch touches them. The U-net sees
NIR, red, green (L1C reflectance) only. Printed and written into the card: the U-net against
RABA on the held-out block (per clear date, pooled), Dynamic World (the teacher) against RABA on
the same block, and the U-net's vegetation/not-vegetated agreement with SCL on the held-out
(southern) block of the 120 m L2A fixture (off its resolution and product level).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import rasterio
import torch

from s2cube.landcover import LANDCOVER_CODES, fuse
from s2cube.landcover.train import (
    LandcoverTrainConfig,
    block_split,
    evaluate_unet,
    labels_from_fused,
    labels_from_scl,
    train_unet,
)
from s2cube.models import load_model, predict
from s2cube.models.evaluate import confusion, scores

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
PATCH = DATA / "eolearn_testeopatch_slovenia_33N"
FIXTURE = DATA / "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m" / "catalog.json"
DATES = ("20150711", "20150731", "20150820", "20150830", "20150909")
DW_INDEX = [1, 2, 3, 4, 5, 6, 7, 11, 12]  # B2 B3 B4 B5 B6 B7 B8 B11 B12 of the 13 bands
NRG_INDEX = [7, 3, 2]  # B8, B4, B3
RABA = {1: "grass", 2: "tree", 3: "grass", 4: "grass", 8: "built"}


def load_patch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    toa = []
    for date in DATES:
        (path,) = sorted((PATCH / "reference_scenes_l1c_13band").glob(f"S2_L1C_TOA_{date}T*.tif"))
        with rasterio.open(path) as src:
            toa.append(src.read())
    with rasterio.open(PATCH / "clm_s2cloudless_mask_68dates.tif") as src:
        clear = src.read(list(range(1, 6))) == 0
    with rasterio.open(PATCH / "lulc_labels.tif") as src:
        raba = src.read(1)
    ref = np.full(raba.shape, 255, np.uint8)
    for k, v in RABA.items():
        ref[raba == k] = LANDCOVER_CODES[v]
    return np.stack(toa).astype(np.float32), clear, ref


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--ship", action="store_true", help="copy into s2cube/landcover/weights")
    args = ap.parse_args()
    torch.set_num_threads(1)
    toa, clear, ref = load_patch()
    probs = predict("dynamicworld", toa[:, DW_INDEX], window=128, overlap=32, device="cpu")
    fused, conf, _ = fuse(probs, clear)
    static = labels_from_fused(fused, conf, min_confidence=0.5)
    labels = np.where(clear, static[None], 255).astype(np.uint8)
    train_area, held = block_split(ref.shape, side="east", fraction=0.35, gap=4)
    images = toa[:, NRG_INDEX]
    # "other" (not vegetated, water) has no label in the patch: SCL of the 120 m fixture's
    # three clearest scenes teaches it (northern 65 %), with vegetation as a partial label
    from s2cube.models.cli import load_catalog_cube

    cube = load_catalog_cube(
        FIXTURE, assets=["nir", "red", "green", "scl"], resolution=120
    ).compute()
    scl = cube.sel(band="scl").values
    tr120, ho120 = block_split(scl.shape[1:], side="south", fraction=0.35, gap=64)
    lab120 = labels_from_scl(scl)
    x120 = cube.sel(band=["nir", "red", "green"]).values.astype(np.float32) / 1e4
    clearest = np.argsort((np.isin(scl, (4, 5, 6))).mean(axis=(1, 2)))[::-1][:3]
    config = LandcoverTrainConfig(
        patch=32, stride=8, epochs=args.epochs, batch_size=8, width=8, max_patches=150
    )
    result = train_unet(
        [images, x120[clearest]],
        [labels, lab120[clearest]],
        "vegetation",
        args.out,
        train_area=[train_area, tr120],
        held_out=[held, ho120],
        config=config,
        training_data=(
            "grass/tree: distilled from the fused Dynamic World map (Dirichlet mean over the 3 "
            "clear of 5 dates, s2cloudless mask; fused probability >= 0.5) of the western 61 "
            "columns of eolearn_testeopatch_slovenia_33N (101x100 px, 10 m, L1C TOA, "
            "July-September 2015); other vs vegetation: SCL weak labels (4 vegetation as a "
            "partial label, 5 and 6 other) of the 3 clearest scenes of the 120 m L2A "
            "33TWL/33TWM fixture (August 2023), northern 65 %; input NIR, red, green"
        ),
        held_out_data=(
            "the eastern 35 columns of the Slovenia patch (4 px gap; no training patch touches "
            "them), 3 clear dates, scored against the RABA land-use labels (forest -> tree; "
            "grassland, cultivated, shrubland -> grass; artificial -> other); and the southern "
            "35 % of the 120 m fixture (64 px gap), all dates, against SCL"
        ),
        not_proven=(
            "one 1 km2 summer patch in Slovenia for grass/tree: nothing about other regions, "
            "seasons or L2A input for that split; the held-out block is 35 px from the "
            "training area, not independent of it; distillation copies Dynamic World's errors; "
            "at 120 m only agreement with Sen2Cor's SCL (vegetated or not) is measured"
        ),
        resolution_m=10.0,
        product_level="l1c",
    )
    model = load_model(result.path)
    ref_t = np.where(clear & held[None], ref[None], 255).astype(np.uint8)
    raba_scores = evaluate_unet(model, images, ref_t, "vegetation", window=32, overlap=8)
    # the teacher on the same block, same classes (built -> other)
    v = {2: 2, 3: 1, 5: 0, 1: 0, 4: 0}
    to_v = np.full(256, 255, np.uint8)
    for k, c in v.items():
        to_v[k] = c
    mask = held & (ref != 255)
    cm_dw = confusion(to_v[fused][mask], to_v[ref][mask], (0, 1, 2))
    s_dw = scores(cm_dw, (0, 1, 2))
    teacher = {
        "confusion": cm_dw.tolist(),
        "overall_accuracy": round(s_dw.accuracy, 4),
        "kappa": round(s_dw.kappa, 4),
    }
    lab_ho = np.where(ho120[None], lab120, 255).astype(np.uint8)
    scl_scores = evaluate_unet(model, x120, lab_ho, "vegetation")
    report = {
        "held_out_raba": raba_scores,
        "teacher_dynamicworld_on_held_out_block": teacher,
        "fixture_120m_l2a_vs_scl_held_out_block": {
            k: scl_scores[k] for k in ("partial_accuracy", "n_partial_pixels", "confusion", "dates")
        },
        "training_history": result.history,
    }
    print(json.dumps(report, indent=1))
    card_path = Path(args.out) / "model.json"
    card = json.loads(card_path.read_text())
    card["metrics"]["held_out_distillation"] = card["metrics"].pop("held_out", None)
    card["metrics"]["held_out"] = raba_scores
    card["metrics"]["teacher_on_held_out"] = teacher
    card["metrics"]["fixture_120m_vs_scl"] = report["fixture_120m_l2a_vs_scl_held_out_block"]
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    blob = torch.load(result.path, weights_only=True)
    blob["card"] = card
    torch.save(blob, result.path)
    if args.ship:
        dest = ROOT / "s2cube" / "landcover" / "weights"
        dest.mkdir(exist_ok=True)
        shutil.copy(result.path, dest / "unet-vegetation.pt")
        shutil.copy(card_path, dest / "unet-vegetation.json")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
