"""What the crc32c chunk checksum costs: store writes and reads with and without it.

The store's arrays are sharded by cell with chunks inside; since issue 15 every chunk's codec
chain ends with a crc32c checksum (``s2cube.store.layout.chunk_compressors``: zstd, then
crc32c).  This writes and reads one sharded cell-shaped array per variable dtype the way the
store does (same chunk and shard layout, the real fixture's red band tiled to the cell, so
the data compress like reflectance), with the old chain (zstd only) and the new one, in the
same process, alternating, and prints the medians and the ratio checksum / no checksum.
Usage::

    python tests/benchmarks/bench_checksum.py [--quick] [--repeat 5] [--cell 4800 --chunk 600]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
B04 = Path(os.environ.get("S2CUBE_SHARED_DATA", REPO.parent / "shared" / "data")) / (
    "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m/sentinel-2-l2a/S2B_33TWL_20230820_0_L2A/B04.tif"
)


def cell_data(size: int) -> dict[str, np.ndarray]:
    """Reflectance-like arrays of one cell: the real red band tiled, and provenance-like ones."""
    import rasterio

    with rasterio.open(B04) as src:
        red = src.read(1)
    reps = -(-size // red.shape[0]), -(-size // red.shape[1])
    band = np.tile(red, reps)[:size, :size].astype("uint16")
    scene = (np.arange(size)[:, None] // 97 + np.arange(size)[None, :] // 131) % 7
    return {
        "red": band,
        "scene": np.where(band > 0, scene, -1).astype("int32"),
        "fill": (band > 0).astype("uint8"),
    }


def one(
    folder: Path, data: dict[str, np.ndarray], chunk: int, checksum: bool
) -> tuple[float, float, int]:
    """Write then read every array once; (write s, read s, bytes on disk)."""
    import zarr
    import zarr.codecs

    comp: list[Any] = [zarr.codecs.ZstdCodec(level=3)]
    if checksum:
        comp.append(zarr.codecs.Crc32cCodec())
    if folder.exists():
        shutil.rmtree(folder)
    arrays = {}
    for name, a in data.items():
        arrays[name] = zarr.create_array(
            str(folder / name),
            shape=a.shape,
            chunks=(chunk, chunk),
            shards=a.shape,
            dtype=a.dtype,
            fill_value=-1 if name == "scene" else 0,
            compressors=comp,
            zarr_format=3,
        )
    t0 = time.perf_counter()
    for name, a in data.items():
        arrays[name][:, :] = a
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    for name, a in data.items():
        got = zarr.open_array(str(folder / name), mode="r")[:, :]
        assert np.array_equal(got, a)
    t_read = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return t_write, t_read, size


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 1200 px cell, 2 repeats")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cell", type=int, default=4800)
    ap.add_argument("--chunk", type=int, default=600)
    args = ap.parse_args(argv)
    cell, repeat = (1200, 2) if args.quick else (args.cell, args.repeat)
    data = cell_data(cell)
    mb = sum(a.nbytes for a in data.values()) / 2**20
    times: dict[str, dict[str, list[float]]] = {
        k: {"write": [], "read": [], "bytes": []} for k in ("zstd", "zstd+crc32c")
    }
    with tempfile.TemporaryDirectory(prefix="s2cube-bench-crc-") as tmp:
        for i in range(repeat + 1):  # the first round warms up (imports, page cache)
            for key, checksum in (("zstd", False), ("zstd+crc32c", True)):
                w, r, b = one(Path(tmp) / key, data, args.chunk, checksum)
                if i:
                    times[key]["write"].append(w)
                    times[key]["read"].append(r)
                    times[key]["bytes"].append(b)
    out = {k: {m: statistics.median(v[m]) for m in v} for k, v in times.items()}
    best = {k: {m: min(v[m]) for m in v} for k, v in times.items()}  # least disturbed by load
    print(
        f"one {cell}x{cell} cell, {args.chunk} px chunks, red (uint16) + scene (int32) + fill "
        f"(uint8) = {mb:.0f} MiB decoded; median of {repeat}"
    )
    for key, r in out.items():
        print(
            f"{key:<12} write {r['write']:.3f} s ({mb / r['write']:.0f} MiB/s)  "
            f"read {r['read']:.3f} s ({mb / r['read']:.0f} MiB/s)  "
            f"on disk {r['bytes'] / 2**20:.2f} MiB"
        )
    base, new = out["zstd"], out["zstd+crc32c"]
    print(
        f"ratio crc32c/none (medians): write {new['write'] / base['write']:.3f}, "
        f"read {new['read'] / base['read']:.3f}, bytes {new['bytes'] / base['bytes']:.5f}"
    )
    b0, b1 = best["zstd"], best["zstd+crc32c"]
    print(
        f"ratio crc32c/none (fastest of {repeat}): write {b1['write'] / b0['write']:.3f}, "
        f"read {b1['read'] / b0['read']:.3f}  (best: zstd write {b0['write']:.3f} s read "
        f"{b0['read']:.3f} s; +crc32c write {b1['write']:.3f} s read {b1['read']:.3f} s)"
    )
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
