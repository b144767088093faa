"""Throughput of the ukis-csmask cloud model through s2cube's engine (Mpix/s), with ratios.

Baselines measured in the same run on the same pixels:

* ``plain torch``: a single-pass loop over non-overlapping 256 px tiles (no blending, no dask);
* ``onnxruntime``: the same tiles through the ONNX graph that ships with ukis-csmask (CPU).

The engine runs end to end through dask (chunks of 512 px, default halo, 32 px overlap) and its
Mpix/s counts output pixels, so overlap and halo work is charged to it. On CUDA (when present)
the same is measured on the GPU with larger batches. Run::

    python tests/benchmarks/bench_cloud_model.py          # or
    pytest -s tests/benchmarks/bench_cloud_model.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SCENE = (
    DATA
    / "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m"
    / "sentinel-2-l2a"
    / "S2A_33TWL_20230818_0_L2A"
)


def _scene(size: int) -> np.ndarray:
    """(4, size, size) reflectance from the real fixture, mirrored when size > 915."""
    import rasterio

    bands = []
    for name in ("B02", "B03", "B04", "B08"):
        with rasterio.open(SCENE / f"{name}.tif") as src:
            bands.append(src.read(1))
    x = np.stack(bands).astype(np.float32) / 10000
    reps = -(-size // x.shape[1])
    x = np.tile(np.concatenate([x, x[:, ::-1]], axis=1) if reps > 1 else x, (1, reps, reps))
    return np.ascontiguousarray(x[:, :size, :size])


def _tiles(x: np.ndarray, window: int = 256) -> np.ndarray:
    c, h, w = x.shape
    return np.stack(
        [
            x[:, i : i + window, j : j + window]
            for i in range(0, h, window)
            for j in range(0, w, window)
        ]
    )


def _windows(n: int, chunk: int, window: int = 256, overlap: int = 32) -> int:
    """Windows the engine evaluates along one axis (each chunk computes all windows touching it)."""
    from s2cube.models.tiling import window_starts

    starts = window_starts(n, window, overlap)
    return sum(
        int(((starts < min(c + chunk, n)) & (starts + window > c)).sum())
        for c in range(0, n, chunk)
    )


def run(
    device: str = "cpu",
    size: int = 768,
    batch_sizes=(1, 4, 8),
    chunk: int = 512,
    repeat: int = 3,
    precisions=("fp32", "bf16"),
) -> dict:
    """Interleaved best-of-``repeat`` timings (robust to a shared, busy machine)."""
    import dask
    import dask.array as da
    import torch

    from s2cube.models import load_model, predict
    from s2cube.models.engine import make_runner

    model = load_model("csmask-l2a-4b")
    x = _scene(size)
    mpix = size * size / 1e6
    tiles = _tiles(x)
    dev = torch.device(device)
    module = model.module.to(dev)
    n_engine = _windows(size, chunk) ** 2
    print(
        f"\n== csmask-l2a-4b on {device} ({torch.get_num_threads()} torch threads), "
        f"{size}x{size} px of real 120 m L2A; engine: chunks {chunk}, overlap 32, exact halo "
        f"({n_engine} windows) vs plain: {len(tiles)} non-overlapping tiles =="
    )

    session = None
    if device == "cpu":
        from importlib.resources import files

        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        session = ort.InferenceSession(
            str(files("ukis_csmask") / "model_4b_l2a.onnx"),
            opts,
            providers=["CPUExecutionProvider"],
        )
        card = model.card
        mean = np.asarray(card.normalisation["mean"], np.float32)[None, :, None, None]
        std = np.asarray(card.normalisation["std"], np.float32)[None, :, None, None]

    arr = da.from_array(x, chunks=(4, chunk, chunk))
    from s2cube.models.engine import ModelRef, get_module

    get_module(ModelRef.of(model), dev)  # the per-worker model cache, loaded before timing
    results: dict = {}
    print(
        f"{'path':<30}{'precision':>10}{'batch':>6}{'Mpix/s':>9}{'win/s':>8}"
        f"{'engine/plain':>13}{'engine/ORT':>11}"
    )
    for precision in precisions:
        for b in batch_sizes:
            runner = make_runner(module, dev, precision)
            tiles_dev = torch.from_numpy(tiles).to(dev)

            def plain(b: int = b, runner=runner, tiles_dev=tiles_dev) -> None:
                for i in range(0, len(tiles), b):
                    runner(tiles_dev[i : i + b]).cpu()
                if dev.type == "cuda":
                    torch.cuda.synchronize()

            def engine(b: int = b, precision: str = precision) -> None:
                with dask.config.set({"s2cube.models.device": device}):
                    predict(model, arr, batch_size=b, precision=precision).compute(
                        scheduler="threads", num_workers=1 if dev.type == "cpu" else 2
                    )

            def onnx(b: int = b) -> None:
                for i in range(0, len(tiles), b):
                    session.run(None, {"input": (tiles[i : i + b] - mean) / std})

            paths = {"plain": plain, "engine": engine}
            if session is not None and precision == "fp32":
                paths["onnxruntime"] = onnx
            plain()  # warm-up: allocator, oneDNN/cuDNN kernel choice
            best = {k: float("inf") for k in paths}
            for _ in range(repeat):
                for k, fn in paths.items():
                    t = time.perf_counter()
                    fn()
                    best[k] = min(best[k], time.perf_counter() - t)
            rate = {k: mpix / v for k, v in best.items()}
            if "onnxruntime" in rate:
                results["onnxruntime", b] = rate["onnxruntime"]
            ort_rate = results.get(("onnxruntime", b))
            results[precision, b] = rate
            for k in paths:
                n_win = n_engine if k == "engine" else len(tiles)
                line = (
                    f"{k:<30}{('fp16 graph' if k == 'onnxruntime' else precision):>10}{b:>6}"
                    f"{rate[k]:>9.3f}{n_win / best[k]:>8.1f}"
                )
                if k == "engine":
                    line += f"{rate['engine'] / rate['plain']:>13.2f}"
                    line += f"{rate['engine'] / ort_rate:>11.2f}" if ort_rate else ""
                print(line, flush=True)
    return results


@pytest.mark.benchmark
def test_bench_cloud_model_cpu() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ukis_csmask")
    if not SCENE.exists():
        pytest.skip(f"real data not found at {SCENE}")
    results = run("cpu", size=512, batch_sizes=(4,), chunk=256, repeat=1)
    assert results["fp32", 4]["engine"] > 0


@pytest.mark.benchmark
@pytest.mark.gpu
def test_bench_cloud_model_cuda() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    run(
        "cuda",
        size=8192,
        batch_sizes=(8, 32, 64),
        chunk=2048,
        repeat=2,
        precisions=("fp32", "bf16", "fp16"),
    )


def main(argv: list[str] | None = None) -> dict:
    """Command line: ``--quick`` (512 px, one batch size, one repeat), ``--repeat N``."""
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for smoke tests")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    args = parser.parse_args(argv)
    results: dict = {}
    if args.device in ("cpu", "all"):
        if args.quick:
            results["cpu"] = run("cpu", size=512, batch_sizes=(4,), chunk=512, repeat=args.repeat)
        else:
            results["cpu"] = run(
                "cpu", size=768, batch_sizes=(1, 4, 8), chunk=768, repeat=args.repeat
            )
            results["cpu-384"] = run(
                "cpu", size=768, batch_sizes=(4,), chunk=384, repeat=args.repeat
            )
    if args.device in ("cuda", "all"):
        if torch.cuda.is_available():
            size, batches = (2048, (32,)) if args.quick else (8192, (8, 32, 64))
            results["cuda"] = run(
                "cuda",
                size=size,
                batch_sizes=batches,
                chunk=2048,
                repeat=args.repeat,
                precisions=("fp32", "bf16", "fp16"),
            )
        else:
            print("\nno CUDA GPU: GPU numbers not measured")
    return results


if __name__ == "__main__":
    main()
