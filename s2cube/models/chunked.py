"""The dask path of inference: one task per output chunk, with a halo cut from its neighbours.

This module owns the graph :func:`s2cube.models.predict` builds for a dask input.  Each output
chunk is one task; its input is the chunk plus ``halo`` pixels on every side, cut from the
neighbouring chunks by small getitem tasks (only the strips travel).  The model travels as one
key (a :class:`~s2cube.models.runtime.ModelRef`) and every task runs the numpy/torch kernel of
:mod:`s2cube.models.tiling` on its slab.  With ``device="cuda"`` the tasks carry the
``{"GPU": 1}`` resource annotation that :func:`s2cube.cluster.make_cluster` gives GPU workers.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from s2cube.models.runtime import ModelRef, RunOptions, get_module, make_runner, resolve_device
from s2cube.models.tiling import predict_region

__all__ = ["predict_dask", "run_block"]


def run_block(
    ref: ModelRef,
    opts: RunOptions,
    blocks: list[list[np.ndarray]],
    slab_origin: tuple[int, int],
    image_shape: tuple[int, int],
    core: tuple[int, int, int, int],
) -> np.ndarray:
    """The task of one output chunk: the model over its slab, the ``core`` rows/cols kept.

    ``blocks`` are the pieces of the slab (the chunk and its halo strips) in row-major order;
    ``slab_origin`` is the slab's first row and column in the image of ``image_shape`` and
    ``core`` the chunk's ``(y0, y1, x0, x1)`` in the image.
    """
    slab = np.block(blocks) if len(blocks) > 1 or len(blocks[0]) > 1 else blocks[0][0]
    device = resolve_device(opts.device)
    run = make_runner(get_module(ref, device), device, opts.precision)
    return predict_region(
        run,
        slab,
        slab_origin=slab_origin,
        image_shape=image_shape,
        core=core,
        layout=opts.layout,
        n_out=opts.n_out,
        device=device,
        input_scale=opts.input_scale,
        reduce=opts.reduce,
    )


def _bounds(chunks: tuple[int, ...]) -> np.ndarray:
    # chunk sizes -> the first index of every chunk, then the length of the axis
    return np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)


def predict_dask(ref: ModelRef, x: Any, opts: RunOptions, halo: int) -> Any:
    """The lazy ``(time, channel, y, x)`` float32 prediction of a ``(time, band, y, x)`` dask
    array, chunked along y/x as ``x`` (its bands are gathered into one chunk).

    Every window that touches a chunk is computed whole when ``halo`` is ``window - 1``, so the
    result then equals the numpy single pass whatever the chunking.
    """
    import dask
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    if len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})  # bands whole: every task needs all input bands
    t_chunks, _, y_chunks, x_chunks = x.chunks
    h, w = x.shape[2], x.shape[3]
    yb, xb = _bounds(y_chunks), _bounds(x_chunks)
    name = "s2cube-predict-" + tokenize(ref.token, x.name, opts, halo)
    halo_name = name + "-halo"
    ref_key = "s2cube-model-" + ref.token
    dsk: dict[Any, Any] = {ref_key: ref}

    def pieces(bounds: np.ndarray, lo: int, hi: int) -> list[tuple[int, slice]]:
        out = []
        for k in range(len(bounds) - 1):
            a, b = max(lo, bounds[k]), min(hi, bounds[k + 1])
            if a < b:
                out.append((k, slice(int(a - bounds[k]), int(b - bounds[k]))))
        return out

    for it in range(len(t_chunks)):
        for i in range(len(y_chunks)):
            for j in range(len(x_chunks)):
                y0, y1, x0, x1 = int(yb[i]), int(yb[i + 1]), int(xb[j]), int(xb[j + 1])
                sy0, sy1 = max(0, y0 - halo), min(h, y1 + halo)
                sx0, sx1 = max(0, x0 - halo), min(w, x1 + halo)
                rows = []
                for iy, sly in pieces(yb, sy0, sy1):
                    row: list[tuple[Any, ...]] = []
                    for ix, slx in pieces(xb, sx0, sx1):
                        src = (x.name, it, 0, iy, ix)
                        if (iy, ix) == (i, j):
                            row.append(src)
                        else:
                            key = (halo_name, it, i, j, iy, ix)
                            dsk[key] = (operator.getitem, src, (slice(None), slice(None), sly, slx))
                            row.append(key)
                    rows.append(row)
                # with reduce="argmax" a task returns (time, y, x): no channel axis
                out_key = (name, it, i, j) if opts.reduce else (name, it, 0, i, j)
                dsk[out_key] = (
                    run_block,
                    ref_key,
                    opts,
                    rows,
                    (sy0, sx0),
                    (h, w),
                    (y0, y1, x0, x1),
                )

    annotations = {}
    if opts.device is not None and opts.device.startswith("cuda"):
        annotations = {"resources": {"GPU": 1}}
    with dask.annotate(**annotations):
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
    if opts.reduce == "argmax":
        meta = np.empty((0, 0, 0), dtype=np.uint8)
        return da.Array(graph, name, chunks=(t_chunks, y_chunks, x_chunks), meta=meta)
    chunks = (t_chunks, (opts.n_out,), y_chunks, x_chunks)
    return da.Array(graph, name, chunks=chunks, meta=np.empty((0, 0, 0, 0), dtype=np.float32))
