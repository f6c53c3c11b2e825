"""Graph rewrites that let MXNet 1.9.1's importer take a model it would refuse or silently get wrong.

`exact` rewrites are plain ONNX with the same function (onnxruntime checks them before conversion);
`importer_only` rewrites produce the older form the importer reads (the result is not valid ONNX for
the model's opset any more, so only the parity gate on MXNet's output can judge them)."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edge import model as M
from edge.backends.mxnet_ops import AXES_AS_INPUT, attr, constants


def _static_shapes(model: onnx.ModelProto) -> dict[str, list]:
    vis = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    return {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
            for v in vis if v.type.tensor_type.HasField("shape")}


def _setattr(node, name, value) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    if value is not None:
        node.attribute.append(helper.make_attribute(name, value))


def explicit_conv_pads(model: onnx.ModelProto) -> list[str]:
    """auto_pad=SAME_UPPER/SAME_LOWER → the same pads written out (needs the input's spatial shape)."""
    shapes, consts, done = _static_shapes(model), constants(model), []
    for n in model.graph.node:
        mode = str(attr(n, "auto_pad", b"NOTSET"), "ascii")
        if n.op_type != "Conv" or mode not in ("SAME_UPPER", "SAME_LOWER"):
            continue
        shape, weight = shapes.get(n.input[0]), consts.get(n.input[1])
        if not shape or weight is None or any(d is None for d in shape[2:]):
            continue
        kernel = list(weight.shape[2:])
        strides = attr(n, "strides") or [1] * len(kernel)
        dil = attr(n, "dilations") or [1] * len(kernel)
        begin, end = [], []
        for size, k, s, d in zip(shape[2:], kernel, strides, dil, strict=True):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            begin.append(small if mode == "SAME_UPPER" else big)
            end.append(big if mode == "SAME_UPPER" else small)
        _setattr(n, "auto_pad", None)
        _setattr(n, "pads", begin + end)
        done.append(n.name)
    return done


def conv_kernel_shape(model: onnx.ModelProto) -> list[str]:
    """kernel_shape is optional in ONNX (it follows from the weights) but the importer reads it."""
    consts, done = constants(model), []
    for n in model.graph.node:
        if n.op_type in ("Conv", "ConvTranspose") and attr(n, "kernel_shape") is None and n.input[1] in consts:
            _setattr(n, "kernel_shape", [int(d) for d in consts[n.input[1]].shape[2:]])
            done.append(n.name)
    return done


def softmax_as_2d(model: onnx.ModelProto) -> list[str]:
    """Opset < 13 Softmax on N-D input means: flatten to 2-D from `axis`, softmax, shape back. Written out
    as Flatten → Softmax → Reshape, which the importer translates correctly."""
    if M.opset(model) >= 13:
        return []
    shapes, done, nodes = _static_shapes(model), [], []
    for n in model.graph.node:
        shape = shapes.get(n.input[0]) if n.op_type == "Softmax" else None
        if not shape or len(shape) <= 2 or attr(n, "axis", 1) != 1 or any(d is None for d in shape[1:]):
            nodes.append(n)
            continue
        flat, soft, target = f"{n.output[0]}__2d", f"{n.output[0]}__2d_softmax", f"{n.output[0]}__shape"
        model.graph.initializer.append(numpy_helper.from_array(
            np.array([0, *shape[1:]], dtype=np.int64), target))  # 0: keep the batch size
        nodes += [helper.make_node("Flatten", [n.input[0]], [flat], name=f"{n.name}__flatten", axis=1),
                  helper.make_node("Softmax", [flat], [soft], name=n.name, axis=1),
                  helper.make_node("Reshape", [soft, target], [n.output[0]], name=f"{n.name}__reshape")]
        done.append(n.name)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return done


def constant_nodes_to_initializers(model: onnx.ModelProto) -> list[str]:
    keep, done = [], []
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            t = onnx.TensorProto()
            t.CopyFrom(n.attribute[0].t)
            t.name = n.output[0]
            model.graph.initializer.append(t)
            done.append(n.output[0])
        else:
            keep.append(n)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return done


def axes_to_attribute(model: onnx.ModelProto) -> list[str]:
    """Squeeze/Unsqueeze/Reduce* with constant axes as an input (opset >= 13/18) → the `axes` attribute
    the importer reads; without it Squeeze and Reduce* would silently act on every axis."""
    consts, done = constants(model), []
    for n in model.graph.node:
        if n.op_type in AXES_AS_INPUT and len(n.input) > 1 and n.input[1] in consts:
            _setattr(n, "axes", [int(a) for a in consts[n.input[1]].ravel()])
            del n.input[1:]
            done.append(n.name)
    return done


def initializers_as_inputs(model: onnx.ModelProto) -> list[str]:
    """The importer finds parameters only among graph inputs."""
    listed = {i.name for i in model.graph.input}
    added = []
    for t in model.graph.initializer:
        if t.name not in listed:
            model.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
            added.append(t.name)
    return added


EXACT = [("conv-kernel-shape", conv_kernel_shape), ("explicit-conv-pads", explicit_conv_pads),
         ("softmax-as-2d", softmax_as_2d)]
IMPORTER_ONLY = [("constants-to-initializers", constant_nodes_to_initializers),
                 ("axes-to-attribute", axes_to_attribute), ("initializers-as-inputs", initializers_as_inputs)]


def apply(model: onnx.ModelProto, rewrites) -> dict[str, list[str]]:
    """Apply rewrites in place; {rewrite: what it changed} for the ones that changed something."""
    return {name: changed for name, fn in rewrites if (changed := fn(model))}
