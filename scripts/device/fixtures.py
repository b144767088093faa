"""Copy what the GPU check needs from ``../shared`` and the installed packages into the
folder that travels (``.device/``): the real cell as arrays and the cloud model's weights.

Run by ``scripts/device/prepare.sh``; reads the real 33TWL/33TWM fixture with rasterio here,
so the device machine needs neither rasterio nor ``../shared``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, required=True)
    parser.add_argument("--site", type=Path, required=True)
    args = parser.parse_args()
    from realdata import REAL_CATALOG
    from support.cubes import save_cube
    from test_gpu_pipeline import device_cell_cube

    if not REAL_CATALOG.exists():
        sys.exit(f"the real fixture {REAL_CATALOG} is missing (expected ../shared/data)")
    args.fixtures.mkdir(parents=True, exist_ok=True)
    cube = device_cell_cube(REAL_CATALOG)
    out = save_cube(cube, args.fixtures / "cell_cube.npz")
    print(f"cell cube {dict(cube.sizes)} -> {out} ({out.stat().st_size / 2**20:.1f} MiB)")

    # the TensorFlow reference outputs of Dynamic World (Apache-2.0; LICENSE and NOTICE go
    # along) for the CUDA port check (S2CUBE_SHARED_MODELS)
    dw_src = REPO.parent / "shared" / "models" / "dynamicworld"
    dw_dst = args.fixtures / "models" / "dynamicworld"
    dw_dst.mkdir(parents=True, exist_ok=True)
    for name in ("reference_outputs.npz", "LICENSE", "NOTICE"):
        shutil.copy2(dw_src / name, dw_dst / name)
    print(f"Dynamic World reference outputs -> {dw_dst}")

    # ukis-csmask 1.0.0 (Apache-2.0) with only the model the checks run: its package code,
    # licence and the 4-band L2A weights and card (the wheel holds four 40 MB models)
    import ukis_csmask

    src = Path(ukis_csmask.__file__).parent
    dst = args.site / "ukis_csmask"
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.suffix == ".py" or f.name in ("model_4b_l2a.onnx", "model_4b_l2a.json"):
            shutil.copy2(f, dst / f.name)
    for info in src.parent.glob("ukis_csmask-*.dist-info"):
        shutil.copytree(info, args.site / info.name, dirs_exist_ok=True)
    print(f"ukis_csmask (4-band L2A model only) -> {dst}")


if __name__ == "__main__":
    main()
