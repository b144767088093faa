"""Where and how a model runs: device, precision, and one instance per worker process.

This module owns the model's life on a worker: the torch device (:func:`resolve_device`), the
precision of a forward pass (:func:`make_runner`), what travels through the dask graph in
place of the model (:class:`ModelRef`: a registry name or the pickled module, as one key), the
process-wide cache that keeps one instance per device (:func:`get_module`), and the worker
plugin that fills that cache when a worker starts (:class:`ModelPlugin`).  The inference
itself is :mod:`s2cube.models.engine` (numpy/xarray) and :mod:`s2cube.models.chunked` (dask).
"""

from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass
from typing import Any

from s2cube.errors import InputError, S2CubeError, require
from s2cube.models.tiling import TileLayout

__all__ = [
    "PRECISIONS",
    "ModelPlugin",
    "ModelRef",
    "RunOptions",
    "as_model",
    "check_precision",
    "get_module",
    "GraphedRunner",
    "make_runner",
    "module_of",
    "register_model",
    "resolve_device",
]

PRECISIONS = ("fp32", "bf16", "fp16")


# -- devices and precision ----------------------------------------------------------------------
def resolve_device(device: str | None = None) -> Any:
    """The torch device to run on.

    ``device``, else ``s2cube.models.device`` in dask config, else CUDA when this process sees
    a GPU, else CPU.

    Raises
    ------
    S2CubeError
        If CUDA is asked for and this process sees no GPU.

    Examples
    --------
    >>> resolve_device("cpu")  # doctest: +SKIP
    device(type='cpu')
    """
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


def check_precision(precision: str) -> None:
    """Raise :class:`~s2cube.errors.InputError` unless ``precision`` is one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r}; expected one of {PRECISIONS}")


def make_runner(
    module: Any, device: Any, precision: str = "fp32", *, graphs: bool | None = None
) -> Any:
    """A function: torch batch on ``device`` → float32 probabilities on ``device``.

    ``precision`` is ``"fp32"``, or ``"bf16"`` / ``"fp16"`` run under torch autocast.  On CUDA
    the forward pass is replayed from a captured CUDA graph (:class:`GraphedRunner`) unless
    ``graphs=False`` or ``s2cube.models.cuda_graphs`` is false in dask config: a network of
    hundreds of small kernels is otherwise bound by their launches, not by the GPU.

    Examples
    --------
    >>> run = make_runner(module, resolve_device("cpu"), "bf16")  # doctest: +SKIP
    >>> probs = run(torch.zeros((8, 4, 256, 256)))  # doctest: +SKIP
    """
    torch: Any = require("torch", "ml")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if graphs is None:
        import dask

        graphs = bool(dask.config.get("s2cube.models.cuda_graphs", True))
    if device.type == "cuda" and graphs:
        return GraphedRunner.for_module(module, device, precision)

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


class GraphedRunner:
    """The forward pass of one module on one GPU at one precision, replayed from CUDA graphs.

    One graph per input shape; a smaller batch of the same window shape is padded into the
    smallest graph that holds it (a chunk's last batch), so a run captures one or two graphs.
    Replays are serialised by a lock (the worker's threads share the module and the graphs;
    their CPU work still overlaps).  Capture runs with ``capture_error_mode="thread_local"``
    so other threads' CUDA work does not break it; if capture fails the runner falls back to
    eager execution and says why in :attr:`mode`.  The result equals the eager forward pass
    (same kernels, same order); the GPU tests check it.
    """

    _instances: dict[tuple[int, str, str], GraphedRunner] = {}
    _instances_lock = threading.Lock()

    def __init__(self, module: Any, device: Any, precision: str) -> None:
        import torch

        self.module, self.device = module, device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.mode = "cuda-graph"
        self._graphs: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_module(cls, module: Any, device: Any, precision: str) -> GraphedRunner:
        """The process-wide runner of ``module`` (graphs are captured once per process)."""
        key = (id(module), str(device), precision)
        with cls._instances_lock:
            runner = cls._instances.get(key)
            if runner is None or runner.module is not module:
                runner = cls._instances[key] = cls(module, device, precision)
        return runner

    def _forward(self, x: Any) -> Any:
        import torch

        with torch.autocast(
            "cuda",
            dtype=self.dtype or torch.float32,
            enabled=self.dtype is not None,
            cache_enabled=False,  # autocast's weight cast cache cannot live in a graph
        ):
            return self.module(x).float()

    def _capture(self, shape: tuple[int, ...]) -> tuple[Any, Any, Any]:
        import torch

        static_in = torch.empty(shape, device=self.device, dtype=torch.float32)
        if len(shape) == 4 and _channels_last():
            static_in = static_in.contiguous(memory_format=torch.channels_last)
        static_in.uniform_()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: cuDNN picks its kernels outside the capture
                self._forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            static_out = self._forward(static_in)
        return graph, static_in, static_out

    def _slot(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        fits = [k for k in self._graphs if k[1:] == shape[1:] and k[0] >= shape[0]]
        return min(fits) if fits else shape

    def __call__(self, batch: Any) -> Any:
        import torch

        with self._lock, torch.inference_mode():
            if self.mode != "cuda-graph":
                return self._forward(batch)
            shape = tuple(batch.shape)
            key = self._slot(shape)
            if key not in self._graphs:
                try:
                    self._graphs[key] = self._capture(key)
                except Exception as exc:  # noqa: BLE001 - any capture failure: run eagerly
                    why = f"{exc.__class__.__name__}: {exc}"
                    self.mode = f"eager (CUDA graph capture failed: {why})"
                    self._graphs.clear()
                    return self._forward(batch)
            graph, static_in, static_out = self._graphs[key]
            static_in[: shape[0]].copy_(batch)
            graph.replay()
            return static_out[: shape[0]].clone()


@dataclass(frozen=True)
class RunOptions:
    """How every window of one prediction runs (fixed before any task starts)."""

    layout: TileLayout
    precision: str
    device: str | None
    n_out: int
    #: integer input is multiplied by this on the device (DN travel as uint16, not float32)
    input_scale: float | None = None
    #: ``"argmax"``: the class index (uint8) leaves the device, not the probabilities
    reduce: str | None = None


# -- the model as it travels through the graph ------------------------------------------------
@dataclass(frozen=True)
class ModelRef:
    """What a task needs to get the model: a registry name (each worker loads its own copy
    from its install) or the pickled inference module (``payload``)."""

    token: str
    source: str | None = None
    payload: bytes | None = None

    def materialise(self) -> Any:
        """A fresh instance of the model on the CPU."""
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


def _channels_last() -> bool:
    """Whether CUDA modules run in channels-last layout (``s2cube.models.channels_last``)."""
    import dask

    return bool(dask.config.get("s2cube.models.channels_last", True))


_CACHE: dict[tuple[str, str], Any] = {}
_CACHE_LOCK = threading.Lock()


def get_module(ref: ModelRef, device: Any) -> Any:
    """The process-wide instance of ``ref`` on ``device`` (loaded on first use).

    Examples
    --------
    >>> module = get_module(ModelRef.of(net), resolve_device())  # doctest: +SKIP
    """
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
                    if _channels_last():  # NHWC: the layout of the GPU's tensor-core kernels
                        module = module.to(memory_format=torch.channels_last)
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
    """Register :class:`ModelPlugin` for ``model`` on ``client``'s workers; returns its ref.

    ``model`` is anything :func:`s2cube.models.predict` accepts.

    Examples
    --------
    >>> ref = register_model(client, "csmask-l2a-4b", device="cuda")  # doctest: +SKIP
    """
    ref = ModelRef.of(as_model(model))
    client.register_plugin(ModelPlugin(ref, device))
    return ref


# -- the model argument ------------------------------------------------------------------------
def as_model(model: Any) -> Any:
    """The model argument as a ``LoadedModel`` (names and paths are loaded) or a torch module.

    Raises
    ------
    InputError
        If ``model`` is none of a registry name, a path, a ``LoadedModel`` or a torch module.
    """
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


def module_of(model: Any) -> Any:
    """The torch module of a ``LoadedModel``, or the module itself."""
    from s2cube.models.registry import LoadedModel

    return model.module if isinstance(model, LoadedModel) else model
