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

    total = unknown = 0
    for node in inferred.graph.node:
        count = MACS.get(node.op_type)
        macs = count(node, shape) if count else 0
        if macs is None:
            unknown += 1
        else:
            total += macs
    return total, unknown


# multiply-accumulates of one node from its tensors' shapes (None: a shape it needs is unknown), per op type
def _conv(node, shape) -> int | None:
    out, w = shape(node.output[0]), shape(node.input[3 if node.op_type == "QLinearConv" else 1])
    return None if out is None or w is None else int(np.prod(out)) * int(np.prod(w[1:]))


def _conv_transpose(node, shape) -> int | None:  # every input pixel meets the whole kernel
    out, x, w = shape(node.output[0]), shape(node.input[0]), shape(node.input[1])
    return None if out is None or x is None or w is None else int(np.prod(x)) * int(np.prod(w[1:]))


def _matmul(node, shape) -> int | None:
    out, a = shape(node.output[0]), shape(node.input[0])
    if out is None or a is None:
        return None
    trans_a = any(at.name == "transA" and at.i for at in node.attribute) and node.op_type == "Gemm"
    return int(np.prod(out)) * (a[0] if trans_a else a[-1])


def _recurrent(node, shape) -> int | None:
    x, w, r = shape(node.input[0]), shape(node.input[1]), shape(node.input[2])
    return None if x is None or w is None or r is None else x[0] * x[1] * (int(np.prod(w)) + int(np.prod(r)))


MACS = {**dict.fromkeys(("Conv", "ConvInteger", "QLinearConv"), _conv), "ConvTranspose": _conv_transpose,
        **dict.fromkeys(("Gemm", "MatMul", "MatMulInteger", "QLinearMatMul"), _matmul),
        **dict.fromkeys(("LSTM", "GRU", "RNN", "DynamicQuantizeLSTM"), _recurrent)}
