"""Throughput of the Dynamic World land-cover model (Mpix/s): bare network and s2cube's dask engine.

Two paths over the same synthetic 9-band scene (smooth random reflectance; throughput does not
depend on the values):

* ``bare``: the network alone on non-overlapping ``window`` tiles, already on the device, in
  batches (no blending, no dask, no host transfer of the input);
* ``engine``: the dask path of :func:`s2cube.models.predict` end to end (host numpy chunks →
  device → blended probabilities back on the host), ``chunk`` px chunks, exact halo
  (``window - 1``), ``overlap`` px blending. Its Mpix/s counts scene pixels, so overlap and
  halo work is charged to it.

fp32 and bf16 (autocast), batch sizes 8/32/64 on CUDA. Needs only torch, numpy, dask and
distributed: the s2cube sub-packages are imported without ``s2cube/__init__`` (which pulls the
I/O stack) when that is not importable. Run::

    python tests/benchmarks/bench_landcover.py --device cpu|cuda|all [--quick] [--json OUT]
    pytest -s tests/benchmarks/bench_landcover.py
"""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _import_s2cube_models() -> None:
    """Make ``s2cube.models`` importable even where s2cube's I/O dependencies are missing."""
    try:
        import s2cube  # noqa: F401
    except ImportError:
        for name in [m for m in sys.modules if m == "s2cube" or m.startswith("s2cube.")]:
            del sys.modules[name]
        pkg = types.ModuleType("s2cube")
        pkg.__path__ = [str(REPO / "s2cube")]
        sys.modules["s2cube"] = pkg


def synthetic_scene(size: int, seed: int = 0) -> np.ndarray:
    """``(9, size, size)`` float32 reflectance: 32 px patches of random spectra plus noise."""
    rng = np.random.default_rng(seed)
    n = -(-size // 32)
    coarse = rng.uniform(0.01, 0.45, (9, n, n)).astype(np.float32)
    x = np.repeat(np.repeat(coarse, 32, axis=1), 32, axis=2)[:, :size, :size]
    x = x + rng.normal(0, 0.01, x.shape).astype(np.float32)
    return np.ascontiguousarray(np.clip(x, 0, 1))


def _tiles(x: np.ndarray, window: int) -> np.ndarray:
    _, h, w = x.shape
    return np.stack(
        [
            x[:, i : i + window, j : j + window]
            for i in range(0, h, window)
            for j in range(0, w, window)
        ]
    )


def run(
    device: str = "cpu",
    size: int = 512,
    batch_sizes: tuple[int, ...] = (4,),
    chunk: int = 512,
    window: int = 256,
    overlap: int = 32,
    repeat: int = 2,
    precisions: tuple[str, ...] = ("fp32", "bf16"),
) -> dict[str, Any]:
    """Best-of-``repeat`` Mpix/s of ``bare`` and ``engine`` per precision and batch size."""
    _import_s2cube_models()
    import dask
    import dask.array as da
    import torch

    from s2cube.models.chunked import predict_dask
    from s2cube.models.dynamicworld import load_dynamicworld
    from s2cube.models.runtime import ModelRef, RunOptions, get_module, make_runner
    from s2cube.models.tiling import TileLayout

    if size % window:
        raise ValueError(f"size={size} must be a multiple of window={window}")
    model = load_dynamicworld()
    dev = torch.device(device)
    ref = ModelRef.of(model)
    module = get_module(ref, dev)  # the per-worker cache the engine uses, loaded before timing
    x = synthetic_scene(size)
    tiles = torch.from_numpy(_tiles(x, window)).to(dev)
    arr = da.from_array(x[None], chunks=(1, 9, chunk, chunk))
    mpix = size * size / 1e6
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(
        f"\n== dynamicworld on {name} ({torch.get_num_threads()} torch threads), {size}x{size} px "
        f"synthetic scene; bare: {len(tiles)} tiles of {window}; engine: chunks {chunk}, "
        f"window {window}, overlap {overlap}, exact halo =="
    )
    print(f"{'path':<10}{'precision':>10}{'batch':>7}{'Mpix/s':>10}{'seconds':>9}")
    rows: list[dict[str, Any]] = []
    for precision in precisions:
        for b in batch_sizes:
            runner = make_runner(module, dev, precision)
            opts = RunOptions(TileLayout(window, overlap, b), precision, device, 9)

            def bare(b: int = b, runner: Any = runner) -> None:
                for i in range(0, len(tiles), b):
                    runner(tiles[i : i + b])
                sync()

            def engine(opts: Any = opts) -> None:
                with dask.config.set({"s2cube.models.device": device}):
                    predict_dask(ref, arr, opts, window - 1).compute(
                        scheduler="threads", num_workers=1 if dev.type == "cpu" else 2
                    )
                sync()

            bare()  # warm-up: allocator, oneDNN/cuDNN kernel choice
            best = {"bare": float("inf"), "engine": float("inf")}
            for _ in range(repeat):
                for k, fn in (("bare", bare), ("engine", engine)):
                    t = time.perf_counter()
                    fn()
                    best[k] = min(best[k], time.perf_counter() - t)
            for k, sec in best.items():
                row = {
                    "path": k,
                    "precision": precision,
                    "batch": b,
                    "mpix_s": mpix / sec,
                    "seconds": sec,
                    "runner": getattr(runner, "mode", "eager"),
                }
                rows.append(row)
                print(f"{k:<10}{precision:>10}{b:>7}{mpix / sec:>10.3f}{sec:>9.3f}", flush=True)
    return {
        "device": name,
        "torch": torch.__version__,
        "size": size,
        "chunk": chunk,
        "window": window,
        "overlap": overlap,
        "repeat": repeat,
        "rows": rows,
    }


@pytest.mark.benchmark
def test_bench_landcover_cpu() -> None:
    pytest.importorskip("torch")
    result = run("cpu", size=256, batch_sizes=(4,), chunk=128, window=128, repeat=1)
    assert {r["path"] for r in result["rows"]} == {"bare", "engine"}
    assert all(r["mpix_s"] > 0 for r in result["rows"])


@pytest.mark.benchmark
@pytest.mark.gpu
def test_bench_landcover_cuda() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    result = run("cuda", size=2048, batch_sizes=(32,), chunk=1024, repeat=1)
    assert all(r["mpix_s"] > 0 for r in result["rows"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Command line: ``--device cpu|cuda|all``, ``--quick``, ``--repeat N``, ``--json OUT``."""
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    if args.device in ("cpu", "all"):
        if args.quick:
            results["cpu"] = run(
                "cpu", size=256, batch_sizes=(4,), chunk=128, window=128, repeat=args.repeat
            )
        else:
            results["cpu"] = run("cpu", size=512, batch_sizes=(4,), chunk=512, repeat=args.repeat)
    if args.device in ("cuda", "all"):
        if torch.cuda.is_available():
            size, batches = (2048, (32,)) if args.quick else (4096, (8, 32, 64))
            t = time.perf_counter()
            results["cuda"] = run(
                "cuda", size=size, batch_sizes=batches, chunk=2048, repeat=args.repeat
            )
            results["cuda"]["wall_s"] = time.perf_counter() - t
        else:
            print("\nno CUDA GPU: GPU numbers not measured")
            results["cuda"] = None
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
