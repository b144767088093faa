#!/usr/bin/env bash
# Prepare the GPU check (run here, on the CPU machine): the wheels and fixtures that travel
# in .device/, their size against the 64 MiB limit, and a rehearsal of the install in a fresh
# Python 3.12 virtual environment.
#
#   bash scripts/device/prepare.sh            # then, on the GPU machine (device tool):
#   bash scripts/device/check.sh "$OUT"       # with carry: [".device"]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
DEV=.device
PY312=${PY312:-$(PYENV_VERSION=3.12.1 pyenv which python3.12 2>/dev/null || command -v python3.12)}
LIMIT_MIB=64

rm -rf "$DEV"
mkdir -p "$DEV/wheels" "$DEV/fixtures" "$DEV/site"
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude

echo "== wheels (cp312, manylinux x86_64, --no-deps)"
PLATFORMS=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS="$PLATFORMS --platform $p"
done
# shellcheck disable=SC2086
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp $PLATFORMS -d "$DEV/wheels" -r scripts/device/wheels.txt 2>&1 \
  | grep -v "is ignored: it is neither" || true
n_req=$(grep -cE '^[A-Za-z]' scripts/device/wheels.txt)
n_got=$(ls "$DEV"/wheels/*.whl | wc -l)
[ "$n_req" -eq "$n_got" ] || { echo "expected $n_req wheels, got $n_got"; exit 1; }

echo "== fixtures and the cloud model's weights"
python scripts/device/fixtures.py --fixtures "$DEV/fixtures" --site "$DEV/site"

echo "== size of what travels (tracked + untracked-not-ignored files + .device)"
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
dev_bytes=$(du -sb "$DEV" | cut -f1)
total=$((tree_bytes + dev_bytes))
printf '  working tree %6.1f MiB\n  .device      %6.1f MiB\n  total        %6.1f MiB of %d MiB\n' \
  "$(echo "$tree_bytes/1048576" | bc -l)" "$(echo "$dev_bytes/1048576" | bc -l)" \
  "$(echo "$total/1048576" | bc -l)" "$LIMIT_MIB"
du -sh "$DEV"/wheels "$DEV"/fixtures "$DEV"/site
if [ "$total" -gt $((LIMIT_MIB * 1048576 - 2 * 1048576)) ]; then
  echo "too large: keep 2 MiB of room under $LIMIT_MIB MiB"; exit 1
fi

echo "== rehearsal: a fresh Python 3.12 venv with the device's own packages, then the wheels"
[ -n "$PY312" ] || { echo "python3.12 not found (set PY312)"; exit 1; }
VENV=${REHEARSAL_VENV:-/tmp/s2cube-device-rehearsal}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY312" -m venv "$VENV"
  # what the GPU machine already has (KINDS.md's list), without torch: PyPI's cp312 torch is
  # a multi-GB CUDA build; the torch paths are tested here on Python 3.11 and there on CUDA
  "$VENV/bin/python" -m pip install -q numpy pandas xarray scipy scikit-image pillow \
    matplotlib click tqdm pytest pytest-timeout hypothesis pyyaml cloudpickle toolz fsspec \
    msgpack psutil sortedcontainers jinja2 packaging onnx onnxruntime requests \
    python-dateutil typing-extensions urllib3 numba nvidia-ml-py cuda-core 2>&1 | tail -2
fi
SITE=$(mktemp -d)
"$VENV/bin/python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --upgrade --target "$SITE" "$DEV"/wheels/*.whl 2>&1 | grep -v "^WARNING: Target" || true
cp -r "$DEV"/site/. "$SITE"/
PYTHONPATH="$SITE:$REPO:$REPO/tests" S2CUBE_DEVICE_FIXTURES="$REPO/$DEV/fixtures" \
  "$VENV/bin/python" - <<'PY'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("s2cube", "dask", "dask.array", "distributed", "pystac", "ukis_csmask",
             "s2cube.models", "s2cube.cluster", "s2cube.composite", "s2cube.mask",
             "dask_cuda", "rapids_dask_dependency"):
    try:
        mod = importlib.import_module(name)
        print(f"  ok   {name} {getattr(mod, '__version__', '')}")
    except Exception as exc:  # dask_cuda needs a GPU machine (cuda bindings at import)
        print(f"  FAIL {name}: {exc.__class__.__name__}: {exc}")
        if name not in ("dask_cuda", "s2cube.models"):
            sys.exit(1)
from support.cubes import load_cube
import os
cube = load_cube(os.path.join(os.environ["S2CUBE_DEVICE_FIXTURES"], "cell_cube.npz"))
import s2cube
codes = s2cube.mask(cube.chunk({"time": 1}), method="scl", dilation=1)
ds = s2cube.composite(cube.chunk({"time": 1}), codes).compute()
print(f"  ok   SCL-masked composite of the carried cell {dict(cube.sizes)} with the carried "
      f"dask: {float((ds.scene >= 0).mean()):.3f} of pixels filled")
PY
rm -rf "$SITE"
echo "prepared: run  bash scripts/device/check.sh \"\$OUT\"  there with carry [\".device\"]"
