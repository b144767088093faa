"""The GPU path end to end: a masked composite cell on a dask cluster whose worker holds the
GPU, equal to the CPU path.

The cell is real (the 33TWL/33TWM fixture, 10 scenes).  Here it is read with ``s2cube.load``;
on the GPU machine, which has no rasterio and no ``../shared``, it is the same cube as
``scripts/device/prepare.sh`` saved it (``S2CUBE_DEVICE_FIXTURES``): the reads are CPU I/O,
identical on both machines, and the 64 MiB that travel cannot hold rasterio and the cloud
model's weights together.

Tolerances: the learned mask on CUDA (fp32, cuDNN may use TF32 convolutions) may flip a
class where two probabilities tie within ~1e-3; at most 0.1 % of the mask codes may differ
from the CPU (numpy) oracle.  Both composites use the scene parameters fitted on the oracle's
codes (a fit over the whole cell moves by a few DN everywhere when 47 of 1.9 M codes flip, as
the first H200 run showed), and the composite is equal pixel for pixel wherever no code
differs within the pixels a composite pixel depends on (dilation + blend context).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu

#: halo of the carried cube: the model mask's context is not needed to compare two devices
HALO = 16


@pytest.fixture(scope="module")
def cell_cube():
    from support.cubes import load_cube

    carried = os.environ.get("S2CUBE_DEVICE_FIXTURES")
    if carried:
        return load_cube(Path(carried) / "cell_cube.npz")
    from realdata import REAL_CATALOG

    if not REAL_CATALOG.exists():
        pytest.skip(f"{REAL_CATALOG} is missing and S2CUBE_DEVICE_FIXTURES is not set")
    return device_cell_cube(REAL_CATALOG)


def device_cell_cube(catalog):
    """The real cell the GPU check composites (what prepare.sh saves)."""
    from fractions import Fraction

    import s2cube
    from s2cube.grid import GlobalGrid

    grid = GlobalGrid(resolution=Fraction(1, 800), cell_size=Fraction(1, 2), chunk_size=100)
    cell = grid.cell_of(15.9, 46.1)
    items = s2cube.search(catalog, bbox=grid.cell_bounds(cell))
    return s2cube.load(items, cell, grid=grid, halo=HALO).compute()


def _gpu_cluster():
    """dask-cuda's LocalCUDACluster when it imports, else a LocalCluster whose one worker
    carries the ``GPU`` resource (what the annotated inference tasks ask for)."""
    from distributed import LocalCluster

    from s2cube.cluster import make_cluster
    from s2cube.errors import MissingDependencyError

    try:
        return make_cluster(gpu=True, n_workers=1, dashboard_address=None), "LocalCUDACluster"
    except MissingDependencyError as exc:
        print(f"dask-cuda unavailable ({exc}); LocalCluster with resources={{'GPU': 1}}")
        cluster = LocalCluster(
            n_workers=1, threads_per_worker=2, resources={"GPU": 1}, dashboard_address=None
        )
        return cluster, "LocalCluster+GPU resource"


def test_masked_composite_cell_on_a_gpu_worker(cell_cube) -> None:
    result = masked_composite_on_cluster(cell_cube, "cuda")
    assert all(v > 0 for v in result["cuda_peak_bytes"].values()), "inference missed the GPU"
    assert result["codes_differing_fraction"] <= 1e-3
    assert result["independent_fraction"] >= 0.9
    for v, equal in result["equal_fraction"].items():
        assert equal == 1.0, v
    assert result["valid_fraction"] > 0.5  # a real composite, not an empty one


def masked_composite_on_cluster(cube, device: str) -> dict:
    """The learned-mask composite of ``cube`` on a cluster's worker (``device``) against the
    numpy oracle on this process's CPU; returns the comparison (``scripts/device/check.sh
    --cpu`` runs it with ``device="cpu"`` as a dry run)."""
    import time

    import dask
    from distributed import Client
    from scipy.ndimage import binary_dilation

    import s2cube
    from s2cube.config import blend_halo
    from s2cube.harmonize.fit import fit_cube_params

    dilation = {"cloud": 2, "shadow": 1}
    config = s2cube.MosaicConfig(mask_method="model", cloud_dilation=2, shadow_dilation=1)
    t0 = time.perf_counter()
    with dask.config.set({"s2cube.models.device": "cpu"}):
        codes_cpu = s2cube.mask(cube, method="model", dilation=dilation).values
        oracle = codes_cpu_da(cube, codes_cpu)
        params = fit_cube_params(cube, oracle, config)
        ref = s2cube.composite(cube, oracle, config=config, scene_params=params)
    t_cpu = time.perf_counter() - t0
    cluster, kind = _gpu_cluster() if device == "cuda" else _cpu_cluster_with_gpu_resource()
    with cluster, Client(cluster) as client:
        # one chunk per scene: the cell is small, and a window-deep halo around smaller
        # chunks would recompute most of it (chunk invariance is tested on the CPU)
        chunked = cube.chunk({"time": 1, "band": -1, "latitude": -1, "longitude": -1})
        codes = s2cube.mask(
            chunked, method="model", dilation=dilation, model_kwargs={"device": device}
        )
        annotations = [
            layer.annotations for layer in codes.data.dask.layers.values() if layer.annotations
        ]
        if device == "cuda":
            assert {"resources": {"GPU": 1}} in annotations, annotations
        t0 = time.perf_counter()
        codes = codes.persist()
        codes_dev = codes.values
        out = s2cube.composite(chunked, codes, config=config, scene_params=params).compute()
        t_dev = time.perf_counter() - t0
        peak = client.run(_cuda_bytes_peak)
    differ = codes_dev != codes_cpu
    context = max(dilation.values()) + blend_halo(config.blend_width, config.blend) + 1
    stable = ~binary_dilation(differ.any(axis=0), iterations=context)
    bands = [str(b) for b in cube.band.values if b != "scl"]
    equal = {
        v: float((out[v].values[stable] == ref[v].values[stable]).mean())
        for v in (*bands, "scene", "clear_count")
    }
    result = {
        "cluster": kind,
        "device": device,
        "shape": list(cube.shape),
        "cuda_peak_bytes": {str(k): v for k, v in peak.items()},
        "codes_differing": int(differ.sum()),
        "codes_differing_fraction": float(differ.mean()),
        "independent_fraction": float(stable.mean()),
        "equal_fraction": equal,
        "valid_fraction": float((out["scene"].values >= 0).mean()),
        "seconds_cpu_oracle": round(t_cpu, 2),
        "seconds_cluster": round(t_dev, 2),
    }
    print(result)
    return result


def _cpu_cluster_with_gpu_resource():
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=1, threads_per_worker=2, resources={"GPU": 1}, dashboard_address=None
    )
    return cluster, "LocalCluster+GPU resource (CPU dry run)"


def codes_cpu_da(cube, codes):
    import xarray as xr

    dims = [d for d in cube.dims if d != "band"]
    return xr.DataArray(codes, dims=dims, coords={d: cube[d] for d in dims})


def _cuda_bytes_peak() -> int:
    import torch

    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else 0


if __name__ == "__main__":  # scripts/device/check.sh --cpu: the same check on the CPU
    import argparse
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    parser = argparse.ArgumentParser(description="the masked composite cell on a cluster")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from realdata import REAL_CATALOG

    result = masked_composite_on_cluster(device_cell_cube(REAL_CATALOG), args.device)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if result["codes_differing"] or min(result["equal_fraction"].values()) < 1.0:
        sys.exit(f"the cluster's composite differs from the numpy oracle: {result}")
