"""What a model costs: parameters, zero weights, op histogram and multiply-accumulates."""

from __future__ import annotations

import zlib
from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from edge import model as M

WEIGHT_KINDS = "fiu"  # float, signed and unsigned ints (quantized weights)
_QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


def constant_tensors(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """Initializers and Constant-node values: the model's stored numbers."""
    tensors = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    tensors[node.output[0]] = attr.t
    return tensors


def _bookkeeping(model: onnx.ModelProto) -> set[str]:
    """Tensors that are shapes, axes, scales or zero points rather than learned weights."""
    names = set()
    for node in model.graph.node:
        if node.op_type in _QDQ:
            names.update(node.input[1:])
        elif node.op_type in ("Reshape", "Expand", "Tile", "Slice", "Squeeze", "Unsqueeze", "Pad",
                              "ReduceMean", "ReduceSum", "ReduceMax", "Resize", "ConstantOfShape", "Gather"):
            names.update(node.input[1:])
    return names


def parameters(model: onnx.ModelProto) -> tuple[int, int]:
    """(parameter count, zero parameters) over weight tensors."""
    skip = _bookkeeping(model)
    total = zeros = 0
    for name, t in constant_tensors(model).items():
        if name in skip:
            continue
        a = numpy_helper.to_array(t)
        if a.dtype.kind not in WEIGHT_KINDS or a.dtype == np.int64 or a.size <= 1:
            continue
        total += a.size
        zeros += int(np.count_nonzero(a == 0))
    return total, zeros


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    return dict(Counter(n.op_type for n in model.graph.node).most_common())


def compressed_size(model: onnx.ModelProto) -> int:
    """Bytes after zlib: what a model costs inside a compressed bundle (zeroed weights pay off here)."""
    return len(zlib.compress(model.SerializeToString(), 6))


def macs(model: onnx.ModelProto, feed_shapes: dict[str, tuple[int, ...]] | None = None) -> int | None:
    """Multiply-accumulates of Conv/ConvTranspose/Gemm/MatMul/RNN nodes for one run at the given shapes.

    onnx's shape inference first; where it leaves a counted node's shapes unknown (shape chains such as
    Shape→Gather→Concat→Reshape), onnxruntime's symbolic inference, which evaluates such chains.
    Returns None when no shapes can be inferred."""
    if feed_shapes:
        model = M.fix_input_shapes(model, {k: list(v) for k, v in feed_shapes.items()})
    best = None
    for infer in (_onnx_shapes, _symbolic_shapes):
        try:
            inferred = infer(model)
        except Exception:
            continue
        total, unknown = _count_macs(inferred)
        if best is None or unknown < best[1]:
            best = (total, unknown)
        if unknown == 0:
            break
    return None if best is None else best[0]


def _onnx_shapes(model):
    return shape_inference.infer_shapes(model, data_prop=True)


def _symbolic_shapes(model):
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    with M.scratch_cwd():
        return SymbolicShapeInference.infer_shapes(model, auto_merge=True)


def _count_macs(inferred: onnx.ModelProto) -> tuple[int, int]:
    """(MACs, number of counted node kinds whose shapes were unknown)."""
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        if not vi.type.tensor_type.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    for name, t in constant_tensors(inferred).items():
        shapes[name] = list(t.dims)

    def shape(name):
        s = shapes.get(name)
        return s if s and all(isinstance(d, int) and d > 0 for d in s) else None

    attrs = lambda node: {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}  # noqa: E731
    total = unknown = 0
    for node in inferred.graph.node:
        op = node.op_type
        out = shape(node.output[0]) if node.output else None
        if op in ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose"):
            w_index = 3 if op == "QLinearConv" else 1
            w = shape(node.input[w_index])
            if out is None or w is None:
                unknown += 1
                continue
            if op == "ConvTranspose":
                x = shape(node.input[0])
                if x is None:
                    unknown += 1
                    continue
                total += int(np.prod(x)) * int(np.prod(w[1:]))
            else:
                total += int(np.prod(out)) * int(np.prod(w[1:]))
        elif op in ("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"):
            a = shape(node.input[0])
            if out is None or a is None:
                unknown += 1
                continue
            k = a[0] if (op == "Gemm" and attrs(node).get("transA", 0)) else a[-1]
            total += int(np.prod(out)) * k
        elif op in ("LSTM", "GRU", "RNN", "DynamicQuantizeLSTM"):
            x, w, r = shape(node.input[0]), shape(node.input[1]), shape(node.input[2])
            if x is None or w is None or r is None:
                unknown += 1
                continue
            seq, batch = x[0], x[1]
            total += seq * batch * (int(np.prod(w)) + int(np.prod(r)))
    return total, unknown
