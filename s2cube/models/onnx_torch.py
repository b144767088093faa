"""Run an ONNX graph with torch ops: the bridge that brings ukis-csmask's weights into the engine.

torchvision-based converters (onnx2torch) do not import on CPU-only torch here, so this module
builds a plain :class:`torch.nn.Module` from the graph itself.  Everything that depends only on
constants (the shape arithmetic that ``Conv2dStaticSamePadding`` leaves in the graph, resize
scales) is folded once with numpy at load time; the remaining nodes become a flat program of
torch calls.  Float weights become buffers in the module's dtype, so ``.to(device)``,
``.to(torch.float32)`` and ``torch.autocast`` behave as for any other torch module, and the graph's
own float16 casts are dropped (the module computes in the dtype it is given).

Only the operators the shipped cloud models use are supported; an unknown operator raises at
load time with its name, never at inference time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2cube.errors import InputError, require

__all__ = ["OnnxGraphModule", "onnx_to_torch"]

# ONNX TensorProto element types that are floating point (the ones a Cast may be dropped for).
_FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16
_NP_TYPES = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64}


def _attrs(node: Any) -> dict[str, Any]:
    onnx: Any = require("onnx", "ml")
    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        out[a.name] = v
    return out


def _fold(op: str, inputs: list[Any], attrs: dict[str, Any]) -> list[np.ndarray]:
    """Evaluate one node whose inputs are all constants (numpy reference semantics)."""
    onnx: Any = require("onnx", "ml")
    if op == "Constant":
        return [onnx.numpy_helper.to_array(attrs["value"])]
    x = inputs[0]
    assert x is not None
    if op == "Shape":
        return [np.asarray(x.shape, dtype=np.int64)]
    if op == "Gather":
        return [np.take(x, inputs[1], axis=attrs.get("axis", 0))]
    if op in ("Add", "Sub", "Mul", "Div"):
        fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        return [np.asarray(fn(x, inputs[1])).astype(np.result_type(x, inputs[1]))]
    if op == "ConstantOfShape":
        value = attrs.get("value")
        fill = onnx.numpy_helper.to_array(value) if value is not None else np.zeros(1, np.float32)
        return [np.full(tuple(int(v) for v in x), fill.reshape(-1)[0], dtype=fill.dtype)]
    if op == "Concat":
        return [np.concatenate([np.atleast_1d(i) for i in inputs], axis=attrs["axis"])]
    if op == "Reshape":
        shape = [int(s) for s in inputs[1]]
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Slice":
        starts, ends = inputs[1], inputs[2]
        axes = inputs[3] if len(inputs) > 3 and inputs[3] is not None else range(len(starts))
        steps = inputs[4] if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
        index = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps, strict=True):
            big = np.iinfo(np.int64).max // 2
            e = None if (st < 0 and e < -big) else int(min(max(e, -big), big))
            index[int(a)] = slice(int(s), e, int(st))
        return [x[tuple(index)]]
    if op == "Transpose":
        return [np.transpose(x, attrs.get("perm"))]
    if op == "Cast":
        return [x.astype(_NP_TYPES[attrs["to"]])]
    if op == "Unsqueeze":
        return [np.expand_dims(x, tuple(int(a) for a in inputs[1]))]
    raise InputError(
        f"ONNX operator {op!r} cannot be constant-folded; s2cube's converter only "
        "folds shape arithmetic. Use onnxruntime for this model."
    )


class OnnxGraphModule(nn.Module):
    """A torch module that executes a (constant-folded) ONNX graph with torch operators.

    Parameters
    ----------
    model:
        An ``onnx.ModelProto`` with one input and one output.

    Examples
    --------
    >>> net = onnx_to_torch("model_4b_l2a.onnx")  # doctest: +SKIP
    >>> logits = net(torch.zeros(1, 4, 256, 256))  # doctest: +SKIP
    """

    def __init__(self, model: Any) -> None:
        super().__init__()
        onnx: Any = require("onnx", "ml")
        graph = model.graph
        init_names = {t.name for t in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in init_names]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise InputError(
                f"expected an ONNX graph with one input and one output, got inputs {inputs} and "
                f"{len(graph.output)} outputs"
            )
        self.input_name = inputs[0]
        self.output_name = graph.output[0].name
        consts: dict[str, np.ndarray] = {
            t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer
        }
        self._buffer_of: dict[str, str] = {}
        self._program: list[tuple[Callable[..., Any], list[str], list[str]]] = []
        uses: dict[str, int] = {}
        for node in graph.node:
            for i in node.input:
                uses[i] = uses.get(i, 0) + 1
        producer: dict[str, tuple[str, list[str]]] = {}  # runtime output -> (op, inputs)
        for node in graph.node:
            attrs = _attrs(node)
            ins = list(node.input)
            if all(i == "" or i in consts for i in ins):
                values = _fold(node.op_type, [consts[i] if i else None for i in ins], attrs)
                consts.update(zip(node.output, values, strict=False))
                continue
            if self._fuse(node.op_type, ins, attrs, consts, uses, producer, node.output[0]):
                continue
            fn, runtime_inputs = self._compile(node.op_type, ins, attrs, consts)
            self._program.append((fn, runtime_inputs, list(node.output)))
            producer[node.output[0]] = (node.op_type, ins)
        self._last_use: dict[str, int] = {}
        for step, (_, ins, _) in enumerate(self._program):
            for i in ins:
                self._last_use[i] = step

    # -- fusion ----------------------------------------------------------------------------
    def _fuse(
        self,
        op: str,
        ins: list[str],
        attrs: dict[str, Any],
        consts: dict[str, np.ndarray],
        uses: dict[str, int],
        producer: dict[str, tuple[str, list[str]]],
        out: str,
    ) -> bool:
        """Rewrite the last program step instead of adding one (inference-time identities):

        * ``Conv → BatchNormalization`` (the conv's only consumer): the batch norm's scale and
          shift fold into the conv's weights and bias (computed in float64 once);
        * ``Sigmoid(a) → Mul(a, ·)`` (the sigmoid's only consumer): ``silu(a)``, one kernel.

        Both remove a full pass over an activation per layer (EfficientNet has ~100 of each);
        the results equal the unfused graph to float32 round-off.
        """
        if not self._program:
            return False
        fn_prev, prev_ins, prev_outs = self._program[-1]
        if (
            op == "BatchNormalization"
            and ins[0] == prev_outs[0]
            and uses.get(ins[0]) == 1
            and producer.get(ins[0], ("",))[0] == "Conv"
            and all(i in consts for i in ins[1:5])
        ):
            conv_ins = producer[ins[0]][1]
            if conv_ins[1] not in consts or (len(conv_ins) > 2 and conv_ins[2] not in consts):
                return False
            gamma, beta, mean, var = (np.asarray(consts[i], np.float64) for i in ins[1:5])
            scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
            w = np.asarray(consts[conv_ins[1]], np.float64)
            b = (
                np.asarray(consts[conv_ins[2]], np.float64)
                if len(conv_ins) > 2 and conv_ins[2]
                else np.zeros(w.shape[0])
            )
            w_name, b_name = f"{out}::fused_w", f"{out}::fused_b"
            consts[w_name] = (w * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
            consts[b_name] = ((b - mean) * scale + beta).astype(np.float32)
            self._program[-1] = (
                fn_prev,
                [prev_ins[0], self._tensor(w_name, consts), self._tensor(b_name, consts)],
                [out],
            )
            producer[out] = ("Conv", [conv_ins[0], w_name, b_name])
            return True
        if (
            op == "Mul"
            and producer.get(prev_outs[0], ("",))[0] == "Sigmoid"
            and uses.get(prev_outs[0]) == 1
            and sorted(ins) == sorted([prev_ins[0], prev_outs[0]])
        ):
            self._program[-1] = (F.silu, [prev_ins[0]], [out])
            producer[out] = ("Silu", [prev_ins[0]])
            return True
        return False

    # -- compilation -----------------------------------------------------------------------
    def _tensor(self, name: str, consts: dict[str, np.ndarray]) -> str:
        """Register a float constant as a buffer and return the key it is looked up by."""
        if name not in self._buffer_of:
            key = f"w{len(self._buffer_of)}"
            array = np.asarray(consts[name])
            tensor = torch.from_numpy(
                array.astype(np.float32 if array.dtype.kind == "f" else array.dtype)
            )
            self.register_buffer(key, tensor.clone())
            self._buffer_of[name] = key
        return "#" + self._buffer_of[name]

    def _compile(
        self, op: str, ins: list[str], attrs: dict[str, Any], consts: dict[str, np.ndarray]
    ) -> tuple[Callable[..., Any], list[str]]:
        def arg(name: str) -> str:
            return self._tensor(name, consts) if name in consts else name

        if op == "Conv":
            pads = list(attrs.get("pads", [0, 0, 0, 0]))
            n = len(pads) // 2
            stride, dil, groups = (
                attrs.get("strides", 1),
                attrs.get("dilations", 1),
                attrs.get("group", 1),
            )
            if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
                raise InputError(f"Conv auto_pad={attrs['auto_pad']!r} is not supported")
            symmetric = pads[:n] == pads[n:]
            torch_pad = [p for i in reversed(range(n)) for p in (pads[i], pads[i + n])]

            def conv(
                x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None
            ) -> torch.Tensor:
                if not symmetric:
                    x = F.pad(x, torch_pad)
                return F.conv2d(x, w, b, stride, pads[:n] if symmetric else 0, dil, groups)

            return conv, [arg(i) for i in ins if i]
        if op == "BatchNormalization":
            eps = float(attrs.get("epsilon", 1e-5))

            def bn(
                x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, m: torch.Tensor, v: torch.Tensor
            ) -> torch.Tensor:
                return F.batch_norm(x, m, v, w, b, False, 0.0, eps)

            return bn, [arg(i) for i in ins]
        if op in ("Add", "Sub", "Mul", "Div"):
            binary: dict[str, Any] = {
                "Add": torch.add,
                "Sub": torch.sub,
                "Mul": torch.mul,
                "Div": torch.div,
            }
            return binary[op], [arg(i) for i in ins]
        if op == "Sigmoid":
            return torch.sigmoid, ins
        if op == "Relu":
            return F.relu, ins
        if op == "GlobalAveragePool":
            return (lambda x: x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)), ins
        if op == "Concat":
            axis = attrs["axis"]
            return (lambda *xs: torch.cat(xs, dim=axis)), [arg(i) for i in ins]
        if op == "Cast":
            if attrs["to"] not in _FLOAT_TYPES:
                raise InputError(f"runtime Cast to ONNX type {attrs['to']} is not supported")
            return (lambda x: x), ins
        if op == "Pad":
            if attrs.get("mode", "constant") != "constant" or ins[1] not in consts:
                raise InputError("only constant Pad with constant pads is supported")
            pads = [int(p) for p in consts[ins[1]]]
            value = float(consts[ins[2]]) if len(ins) > 2 and ins[2] in consts else 0.0
            n = len(pads) // 2
            torch_pad = [p for i in reversed(range(n)) for p in (pads[i], pads[i + n])]
            return (lambda x: F.pad(x, torch_pad, value=value)), ins[:1]
        if op == "Resize":
            mode = attrs.get("mode", "nearest")
            ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
            scales_name = ins[2] if len(ins) > 2 else ""
            if (
                mode != "nearest"
                or ctm != "asymmetric"
                or attrs.get("nearest_mode") != "floor"
                or scales_name not in consts
            ):
                raise InputError(f"Resize mode={mode} ctm={ctm} is not supported")
            scales = [float(s) for s in consts[scales_name]]
            if scales[:2] != [1.0, 1.0]:
                raise InputError("Resize over batch or channel axes is not supported")
            sf = tuple(scales[2:])
            return (lambda x: F.interpolate(x, scale_factor=sf, mode="nearest")), ins[:1]
        raise InputError(
            f"ONNX operator {op!r} is not supported by s2cube's torch converter; supported: Conv, "
            "BatchNormalization, Add, Sub, Mul, Div, Sigmoid, Relu, GlobalAveragePool, Concat, "
            "Cast, Pad, Resize (plus constant shape arithmetic)"
        )

    # -- execution -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, Any] = {self.input_name: x}
        buffers = self._buffers
        for step, (fn, ins, outs) in enumerate(self._program):
            args = [buffers[i[1:]] if i.startswith("#") else values[i] for i in ins]
            result = fn(*args)
            values[outs[0]] = result
            for i in ins:  # free activations early: the graph is long and activations are large
                if (
                    not i.startswith("#")
                    and self._last_use.get(i) == step
                    and i != self.output_name
                ):
                    values.pop(i, None)
        return values[self.output_name]


def onnx_to_torch(
    source: str | Path | bytes | Any, *, input_shape: Sequence[int] | None = None
) -> OnnxGraphModule:
    """Build an :class:`OnnxGraphModule` from an ONNX file, bytes or ``ModelProto``.

    Examples
    --------
    >>> net = onnx_to_torch(path).eval()  # doctest: +SKIP
    """
    onnx: Any = require("onnx", "ml")
    if isinstance(source, (str, Path)):
        model = onnx.load(str(source))
    elif isinstance(source, bytes):
        model = onnx.load_from_string(source)
    else:
        model = source
    return OnnxGraphModule(model).eval()
