#!/usr/bin/env bash
# The GPU check: one call on the device machine, well inside 10 minutes.
#
#   bash scripts/device/check.sh "$OUT"          # there (device tool, carry [".device"])
#   bash scripts/device/check.sh /tmp/out --cpu  # here: a dry run on the CPU
#
# Installs the carried wheels into a target folder, prints the GPU and library versions, runs
# every GPU test (pytest -m gpu), then the CUDA benchmarks (cloud mask; land cover), and
# writes JSON and logs into OUT; a summary table comes last.  Prepare with prepare.sh first.
set -uo pipefail
OUT=${1:?usage: check.sh OUT_DIR [--cpu]}
MODE=${2:-gpu}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
exec > >(tee -a "$OUT/check.log") 2>&1
PY=${PY:-python3}
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }
status=0

step "facts"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem,temperature.gpu \
  --format=csv 2>/dev/null || echo "nvidia-smi: not available"
"$PY" - "$OUT/facts.json" <<'PY'
import importlib, json, os, sys
facts = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
for name in ("torch", "numpy", "pandas", "xarray", "scipy", "skimage", "onnx", "onnxruntime",
             "numba", "cuda.bindings", "pynvml"):
    try:
        facts[name] = getattr(importlib.import_module(name), "__version__", "present")
    except Exception as exc:
        facts[name] = f"missing ({exc.__class__.__name__})"
import torch
facts["cuda"] = torch.version.cuda
facts["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
if facts["gpu"]:
    p = torch.cuda.get_device_properties(0)
    facts["gpu_memory_gib"] = round(p.total_memory / 2**30, 1)
    facts["sms"] = p.multi_processor_count
for k, v in facts.items():
    print(f"  {k:<14} {v}")
json.dump(facts, open(sys.argv[1], "w"), indent=1)
PY

step "install the carried wheels"
if [ "$MODE" = "--cpu" ]; then
  echo "CPU dry run: this Python's own packages (the wheels are cp312 for the GPU machine)"
  export PYTHONPATH="$REPO:$REPO/tests"
  BENCH_DEVICE=cpu
else
  [ -d .device/wheels ] || { echo "no .device/wheels: run scripts/device/prepare.sh here first"; exit 2; }
  SITE=/tmp/s2cube-site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .device/wheels/*.whl 2>&1 | grep -v "^WARNING: Target" || true
  cp -r .device/site/. "$SITE"/
  export PYTHONPATH="$SITE:$REPO:$REPO/tests"
  export S2CUBE_DEVICE_FIXTURES="$REPO/.device/fixtures"
  export S2CUBE_SHARED_MODELS="$REPO/.device/fixtures/models"
  BENCH_DEVICE=cuda
fi
"$PY" - <<'PY' || status=1
import importlib
for name in ("s2cube", "dask", "distributed", "pystac", "ukis_csmask", "dask_cuda"):
    try:
        mod = importlib.import_module(name)
        print(f"  ok   {name:<12} {getattr(mod, '__version__', '')}")
    except Exception as exc:
        print(f"  FAIL {name:<12} {exc.__class__.__name__}: {exc}")
        if name != "dask_cuda":
            raise SystemExit(1)
PY

step "pytest -m gpu"
# every test file with a gpu mark (the benchmarks run below, from their own command line)
mapfile -t FILES < <(grep -rlE "mark\.gpu|pytestmark = pytest\.mark\.gpu" tests --include='test_*.py' | sort)
echo "files: ${FILES[*]}"
if [ "$MODE" = "--cpu" ]; then
  "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -m gpu --collect-only "${FILES[@]}" \
    | tail -3 || status=1
  echo "-- the end-to-end check with device=cpu (LocalCluster whose worker carries GPU=1)"
  timeout 300 "$PY" tests/test_gpu_pipeline.py --device cpu --json "$OUT/pipeline.json" \
    || status=1
else
  timeout 200 "$PY" -m pytest -p no:cacheprovider -o addopts="" -m gpu -rA -s \
    --timeout 150 --continue-on-collection-errors --junitxml "$OUT/pytest-gpu.xml" \
    "${FILES[@]}" || status=1
fi

if [ -f tests/benchmarks/bench_landcover.py ]; then
  step "benchmark: land cover (Dynamic World)"
  quick=""; [ "$MODE" = "--cpu" ] && quick="--quick"
  timeout 120 "$PY" tests/benchmarks/bench_landcover.py --device "$BENCH_DEVICE" $quick \
    --json "$OUT/bench_landcover.json" || status=1
fi

step "benchmark: cloud mask (csmask-l2a-4b)"
if [ "$MODE" = "--cpu" ]; then
  timeout 600 "$PY" tests/benchmarks/bench_cloud_model.py --device cpu --quick --repeat 1 \
    --json "$OUT/bench_cloud_model.json" || status=1
else
  timeout 240 "$PY" tests/benchmarks/bench_cloud_model.py --device cuda --repeat 2 \
    --json "$OUT/bench_cloud_model.json" || status=1
fi

step "summary"
"$PY" - "$OUT" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
facts = json.loads((out / "facts.json").read_text())
print(f"GPU: {facts.get('gpu')}  torch {facts.get('torch')} (CUDA {facts.get('cuda')})")
junit = out / "pytest-gpu.xml"
if junit.exists():
    suite = ET.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    print("pytest -m gpu: " + ", ".join(f"{k} {suite.get(k)}" for k in
          ("tests", "failures", "errors", "skipped")))
bench = out / "bench_cloud_model.json"
if bench.exists():
    b = json.loads(bench.read_text())
    for key, rows in b.items():
        if key.endswith("cluster"):
            for name, r in rows.items():
                if isinstance(r, dict):
                    print(f"cloud mask through dask ({rows.get('cluster')}) {name:<24}"
                          f"{r['mpix_per_s']:8.1f} Mpix/s")
        elif key in ("cuda", "cpu") and isinstance(rows, dict):
            for name, r in rows.items():
                if isinstance(r, dict):
                    print(f"cloud mask {key} {name:<10}" + "  ".join(
                        f"{path} {v:.1f}" for path, v in r.items()) + "  Mpix/s")
    for key, kept in b.get("cuda-kept", {}).items():
        print(f"  dask path keeps {kept:.0%} of the bare model ({key})")
lc = out / "bench_landcover.json"
if lc.exists():
    for dev, res in json.loads(lc.read_text()).items():
        rows = res.get("rows", []) if isinstance(res, dict) else []
        for r in rows:
            print(f"land cover ({dev}) {r['path']:<7}{r['precision']:>6} batch {r['batch']:>3}: "
                  f"{r['mpix_s']:.2f} Mpix/s")
PY
echo "check.sh finished with status $status"
exit $status
