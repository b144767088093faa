#!/usr/bin/env bash
# Train the larger super-resolution generator on a GPU (issue 13): one prepared call.
#
#   bash scripts/device/train_sr.sh --prepare      # here (CPU): the 120 m fixture -> .device/sr/
#   bash scripts/device/train_sr.sh "$OUT"         # there (device tool, carry [".device"]),
#                                                  # after scripts/device/prepare.sh
#   python scripts/superres_report.py OUT/run-x4 --ship   # back here: score, ship if it passes
#
# The GPU machine has no ../shared/data, so --prepare packs the four reflectance bands and SCL
# of the 6 clear fixture scenes on the training grid (uint16/uint8, compressed npz, about 30 MB)
# into .device/sr/.  With .device/site and .device/wheels that is near the 64 MiB carry limit:
# carry [".device/sr", ".device/wheels", ".device/site"] (not the check fixtures).
# On the GPU: SRResNet at full size (64 features, 16 residual blocks), 96 px patches at stride
# 16, batch 64, 30 epochs of 200 steps (SRResNet warm-up, GAN from epoch 25), x4 then x2;
# every epoch's seconds are in OUT/run-x<scale>/history.json.  Budget: about 4 min per scale
# on an H200 (measure with the first epoch's seconds; lower --epochs if it is slower).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
CATALOG=${CATALOG:-$REPO/../shared/data/s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m/catalog.json}
NPZ=.device/sr/fixture_120m.npz

if [[ "${1:-}" == "--prepare" ]]; then
  mkdir -p .device/sr
  grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
  python - "$CATALOG" "$NPZ" <<'PY'
import sys, warnings
import numpy as np
from s2cube.models.cli import load_catalog_cube
warnings.simplefilter("ignore")
cube = load_catalog_cube(sys.argv[1], assets=["red", "green", "blue", "nir", "scl"],
                         resolution=120.0).compute()
arr = np.asarray(cube.values)
# the clear scenes only (cloud/shadow under 10 % of their data): half the bytes, and the
# cloudy ones give almost no clear patch; the grid (and so the held-out block) is unchanged
valid = (arr[:, :4] > 0).all(axis=1)
cloudy = np.isin(arr[:, 4], (3, 8, 9, 10)) & valid
keep = [t for t in range(len(arr)) if cloudy[t].sum() < 0.1 * valid[t].sum()]
print("scenes kept:", keep)
np.savez_compressed(sys.argv[2], cube=arr[keep, :4].astype("uint16"),
                    scl=arr[keep, 4].astype("uint8"),
                    items=np.array([str(t) for t in cube.time.values[keep]]))
PY
  du -sh "$NPZ"
  exit 0
fi

OUT=${1:?usage: train_sr.sh OUT | --prepare}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/train_sr.log") 2>&1
PY=${PY:-python3}
if [[ -d .device/site ]]; then  # the wheels scripts/device/check.sh installs, same layout
  SITE=/tmp/s2cube-site
  mkdir -p "$SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .device/wheels/*.whl 2>/dev/null || true
  cp -r .device/site/. "$SITE"/
  export PYTHONPATH="$SITE:$REPO"
else
  export PYTHONPATH="$REPO"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
[[ -f "$NPZ" ]] || { echo "missing $NPZ: run train_sr.sh --prepare here first"; exit 2; }

for SCALE in 4 2; do
  echo "== x$SCALE ($(date +%T))"
  timeout 280 "$PY" -m s2cube.cli train sr "$CATALOG" --from-npz "$NPZ" \
    --out "$OUT/run-x$SCALE" --scale "$SCALE" --features 64 --blocks 16 --patch 96 \
    --stride 16 --batch-size 64 --epochs 30 --steps-per-epoch 200 --gan-start 25 \
    --lr 2e-4 --device cuda --seed 0 || echo "x$SCALE stopped (timeout or error): the last"\
    " finished epoch's checkpoint is in $OUT/run-x$SCALE"
  rm -f "$OUT/run-x$SCALE/checkpoint.pt.tmp"
done
ls -la "$OUT"/run-x*
