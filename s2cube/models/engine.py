"""Inference inside the dask graph: one task per output chunk, a halo, windows, batching.

Layers: :mod:`s2cube.models.tiling` holds the numpy kernel; this module wires it to numpy,
dask and xarray inputs, places the model on a device once per worker process, and runs
batches at the requested precision.

* Each output chunk is one task. Its input is the chunk plus ``halo`` pixels on every side,
  cut from the neighbouring chunks by small getitem tasks (only the strips travel).
* The model travels through the graph once (as one key), and a worker keeps one instance per
  device in a process-wide cache (:func:`get_module`); :class:`ModelPlugin` warms that cache
  when a worker starts.
* The device is chosen on the worker at run time (``device=None``: CUDA when the worker sees
  a GPU, CPU otherwise). With ``device="cuda"`` the tasks carry the ``{"GPU": 1}`` resource
  annotation that :func:`s2cube.cluster.make_cluster` gives GPU workers.
"""

from __future__ import annotations

import hashlib
import io
import operator
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from s2cube.errors import InputError, S2CubeError, require
from s2cube.models.tiling import TileLayout, predict_region

__all__ = ["ModelPlugin", "ModelRef", "get_module", "predict", "register_model", "resolve_device"]

PRECISIONS = ("fp32", "bf16", "fp16")


# -- devices and precision -----------------------------------------------------------------
def resolve_device(device: str | None = None) -> Any:
    """The torch device to run on: ``device``, else ``s2cube.models.device`` in dask config,
    else CUDA when this process sees a GPU, else CPU."""
    torch: Any = require("torch", "ml")
    import dask

    device = device or dask.config.get("s2cube.models.device", None)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise S2CubeError(
            f"device={device!r} was requested but this worker sees no CUDA GPU; run on a GPU "
            "worker (s2cube.cluster.make_cluster(gpu=True)) or pass device=None/'cpu'"
        )
    return dev


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r}; expected one of {PRECISIONS}")


def make_runner(module: Any, device: Any, precision: str = "fp32") -> Any:
    """A function: torch batch on ``device`` → float32 probabilities on ``device``."""
    torch: Any = require("torch", "ml")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def run(batch: Any) -> Any:
        with (
            torch.inference_mode(),
            torch.autocast(
                device.type,
                dtype=dtype or torch.float32,
                enabled=dtype is not None,
            ),
        ):
            return module(batch).float()

    return run


# -- the model as it travels through the graph ------------------------------------------------
@dataclass(frozen=True)
class ModelRef:
    """What a task needs to get the model: a registry name (each worker loads its own copy
    from its install) or the pickled inference module (``payload``)."""

    token: str
    source: str | None = None
    payload: bytes | None = None

    def materialise(self) -> Any:
        torch: Any = require("torch", "ml")
        if self.source is not None:
            from s2cube.models.registry import load_model

            return load_model(self.source).module
        assert self.payload is not None
        # Our own payload, made by ModelRef.of in this session: full unpickling is intended.
        return torch.load(io.BytesIO(self.payload), map_location="cpu", weights_only=False)

    @classmethod
    def of(cls, model: Any) -> ModelRef:
        """Make the reference for a :class:`LoadedModel` or a torch module."""
        torch: Any = require("torch", "ml")
        from s2cube.models.registry import REGISTRY, LoadedModel

        if isinstance(model, LoadedModel):
            if model.source in REGISTRY:
                return cls(token=model.source, source=model.source)
            model = model.module
        buf = io.BytesIO()
        torch.save(model, buf)
        payload = buf.getvalue()
        return cls(token=hashlib.sha1(payload).hexdigest()[:16], payload=payload)


_CACHE: dict[tuple[str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def get_module(ref: ModelRef, device: Any) -> Any:
    """The process-wide instance of ``ref`` on ``device`` (loaded on first use)."""
    key = (ref.token, str(device))
    module = _CACHE.get(key)
    if module is None:
        with _CACHE_LOCK:
            module = _CACHE.get(key)
            if module is None:
                module = ref.materialise().to(device).eval()
                if getattr(device, "type", str(device)) == "cuda":
                    import torch

                    # windows have one fixed shape: let cuDNN pick its fastest kernels once
                    torch.backends.cudnn.benchmark = True
                _CACHE[key] = module
    return module


try:  # distributed is a core dependency, but keep the engine importable without it
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover
    _WorkerPlugin = object  # type: ignore[assignment,misc]


class ModelPlugin(_WorkerPlugin):  # type: ignore[misc,valid-type]
    """Loads a model on every worker when it starts, so the first tasks do not all wait.

    Examples
    --------
    >>> ref = ModelRef.of(load_model("csmask-l2a-4b"))  # doctest: +SKIP
    >>> client.register_plugin(ModelPlugin(ref))  # doctest: +SKIP
    """

    def __init__(self, ref: ModelRef, device: str | None = None) -> None:
        self.ref = ref
        self.device = device
        self.name = f"s2cube-model-{ref.token}"

    def setup(self, worker: Any) -> None:
        get_module(self.ref, resolve_device(self.device))


def register_model(client: Any, model: Any, *, device: str | None = None) -> ModelRef:
    """Register :class:`ModelPlugin` for ``model`` on ``client``'s workers; returns its ref."""
    ref = ModelRef.of(_as_model(model))
    client.register_plugin(ModelPlugin(ref, device))
    return ref


# -- argument handling -------------------------------------------------------------------------
def _as_model(model: Any) -> Any:
    from s2cube.models.registry import LoadedModel, load_model

    if isinstance(model, str):
        return load_model(model)
    if isinstance(model, LoadedModel):
        return model
    torch: Any = require("torch", "ml")
    if isinstance(model, torch.nn.Module):
        return model
    if hasattr(model, "__fspath__"):
        return load_model(model)
    raise InputError(
        f"model of type {type(model).__name__}; expected a registry name, a path, a LoadedModel "
        "(s2cube.models.load_model) or a torch.nn.Module"
    )


def _module_of(model: Any) -> Any:
    from s2cube.models.registry import LoadedModel

    return model.module if isinstance(model, LoadedModel) else model


def _n_out(model: Any, n_band: int, window: int) -> int:
    """Output channels, known before any task runs."""
    from s2cube.models.registry import LoadedModel

    if isinstance(model, LoadedModel):
        return len(model.card.classes)
    for obj in (model, getattr(model, "net", None)):
        n = getattr(obj, "out_channels", None)
        if isinstance(n, int):
            return n
    torch: Any = require("torch", "ml")
    param = next(iter(model.parameters()), None)
    probe = torch.zeros(
        (1, n_band, window, window), device=param.device if param is not None else "cpu"
    )
    with torch.inference_mode():
        return int(model(probe).shape[1])


@dataclass(frozen=True)
class _Options:
    layout: TileLayout
    precision: str
    device: str | None
    n_out: int


def _run_block(
    ref: ModelRef,
    opts: _Options,
    blocks: list[list[np.ndarray]],
    slab_origin: tuple[int, int],
    image_shape: tuple[int, int],
    core: tuple[int, int, int, int],
) -> np.ndarray:
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
    )


def _predict_numpy(module: Any, x: np.ndarray, opts: _Options) -> np.ndarray:
    torch: Any = require("torch", "ml")
    device = resolve_device(opts.device)
    param = next(iter(module.parameters()), None)
    if param is not None and param.device != device:
        import copy

        module = copy.deepcopy(module).to(device)
    module.eval()
    h, w = x.shape[-2:]
    with torch.inference_mode():
        return predict_region(
            make_runner(module, device, opts.precision),
            x,
            slab_origin=(0, 0),
            image_shape=(h, w),
            core=(0, h, 0, w),
            layout=opts.layout,
            n_out=opts.n_out,
            device=device,
        )


def _bounds(chunks: tuple[int, ...]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(chunks)]).astype(np.int64)


def _predict_dask(ref: ModelRef, x: Any, opts: _Options, halo: int) -> Any:
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
                dsk[(name, it, 0, i, j)] = (
                    _run_block,
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
    chunks = (t_chunks, (opts.n_out,), y_chunks, x_chunks)
    return da.Array(graph, name, chunks=chunks, meta=np.empty((0, 0, 0, 0), dtype=np.float32))


def predict(
    model: Any,
    data: Any,
    *,
    window: int = 256,
    overlap: int = 32,
    halo: int | None = None,
    batch_size: int = 8,
    precision: str = "fp32",
    device: str | None = None,
) -> Any:
    """Run a model over an image by overlapping windows, per chunk for dask inputs.

    Parameters
    ----------
    model:
        A registry name or path (see :func:`s2cube.models.load_model`), a ``LoadedModel``
        (its card's normalisation and activation are applied: reflectance in, probabilities
        out), or any torch module mapping ``(batch, band, y, x)`` to ``(batch, channel, y, x)``.
    data:
        ``(band, y, x)`` or ``(time, band, y, x)`` float reflectance, as numpy, dask or
        xarray (dims ``band, y, x`` with optional ``time``). Dask inputs are chunked along
        y/x; bands are gathered into one chunk.
    window, overlap:
        Tile size fed to the network and the overlap of neighbouring tiles (blended with a
        linear ramp).
    halo:
        Pixels each chunk reads from its neighbours. ``None`` (default) is ``window - 1``:
        every window that touches a chunk is computed whole, so the result equals the
        single-pass (numpy) result whatever the chunking. Smaller halos shift windows inside
        the chunk (cheaper reads; exact only up to the network's receptive field).
    batch_size:
        Windows per forward pass.
    precision:
        ``"fp32"``, ``"bf16"`` or ``"fp16"`` (torch autocast).
    device:
        ``None`` chooses per worker (CUDA if present, else CPU); ``"cpu"``/``"cuda"`` force one
        (``"cuda"`` also annotates the tasks with the ``GPU`` resource).

    Returns
    -------
    The same kind as ``data``: ``(channel, y, x)`` or ``(time, channel, y, x)`` float32. An
    xarray result has a ``class`` dimension named after the card's classes (``channel`` for a
    plain module).

    Examples
    --------
    >>> rgbn = cube.sel(band=["blue", "green", "red", "nir"]) / 1e4  # doctest: +SKIP
    >>> probs = predict("csmask-l2a-4b", rgbn)  # doctest: +SKIP
    """
    import dask.array as da

    _check_precision(precision)
    layout = TileLayout(window=window, overlap=overlap, batch_size=batch_size)
    if halo is not None and halo < 0:
        raise InputError(f"halo={halo}; expected None or a non-negative number of pixels")
    if device is not None:
        torch: Any = require("torch", "ml")
        try:
            torch.device(device)
        except RuntimeError as exc:
            raise InputError(
                f"device={device!r} is not a torch device; use 'cpu' or 'cuda'"
            ) from exc
    model = _as_model(model)
    module = _module_of(model)
    multiple = getattr(module, "size_multiple", 1)
    if window % multiple:
        raise InputError(
            f"window={window} is not a multiple of {multiple}, which this network needs "
            f"(it downsamples by {multiple}); use e.g. "
            f"window={window - window % multiple or multiple}"
        )

    import xarray as xr

    if isinstance(data, xr.DataArray):
        return _predict_xarray(
            model,
            data,
            window=window,
            overlap=overlap,
            halo=halo,
            batch_size=batch_size,
            precision=precision,
            device=device,
        )

    if data.ndim not in (3, 4):
        raise InputError(
            f"data has shape {data.shape}; expected (band, y, x) or (time, band, y, x)"
        )
    if np.dtype(data.dtype).kind not in "f":
        raise InputError(
            f"data has dtype {data.dtype}; expected float reflectance (0-1). Convert DN first, "
            "e.g. data.astype('float32') / 10000"
        )
    n_band = data.shape[-3]
    expected = _expected_bands(model)
    if expected is not None and n_band != len(expected):
        raise InputError(f"data has {n_band} bands; the model expects {len(expected)}: {expected}")
    opts = _Options(layout, precision, device, _n_out(model, n_band, window))
    squeeze = data.ndim == 3
    x = data[None] if squeeze else data
    if isinstance(x, da.Array):
        out = _predict_dask(ModelRef.of(model), x, opts, window - 1 if halo is None else halo)
    else:
        out = _predict_numpy(module, np.asarray(x), opts)
    return out[0] if squeeze else out


def _expected_bands(model: Any) -> tuple[str, ...] | None:
    card = getattr(model, "card", None)
    return card.input_bands if card is not None else None


def _predict_xarray(model: Any, data: Any, **kw: Any) -> Any:
    import xarray as xr

    dims = data.dims
    if dims not in (("band", "y", "x"), ("time", "band", "y", "x")):
        raise InputError(
            f"data has dims {dims}; expected ('band', 'y', 'x') or ('time', 'band', 'y', 'x'). "
            "Transpose it first, e.g. data.transpose('time', 'band', 'y', 'x')"
        )
    expected = _expected_bands(model)
    if expected is not None and "band" in data.coords:
        names = [str(b) for b in data["band"].values]
        missing = [b for b in expected if b not in names]
        if missing:
            raise InputError(
                f"bands {missing} are missing from the data (it has {names}); the model "
                f"{model.card.name!r} reads {list(expected)}"
            )
        data = data.sel(band=list(expected))
    result = predict(model, data.data, **kw)
    card = getattr(model, "card", None)
    out_dim = "class" if card is not None else "channel"
    coords = {k: v for k, v in data.coords.items() if "band" not in v.dims}
    labels = list(card.classes) if card is not None else list(range(result.shape[-3]))
    coords[out_dim] = labels
    new_dims = tuple(out_dim if d == "band" else d for d in dims)
    attrs = dict(data.attrs)
    if card is not None:
        attrs["model"] = card.name
    return xr.DataArray(
        result,
        dims=new_dims,
        coords=coords,
        attrs=attrs,
        name=f"{card.name}_probability" if card is not None else data.name,
    )
