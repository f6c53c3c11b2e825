"""`edge inspect`: what is in a model file."""

from __future__ import annotations

from pathlib import Path

import onnx

from edge import model as M
from edge import stats
from edge.errors import ShapeError


def describe(model: onnx.ModelProto, path: Path, tensors: bool = False,
             input_shapes: dict[str, list[int]] | None = None) -> dict:
    params, zeros = stats.parameters(model)
    shapes = None
    try:
        sized = M.fix_input_shapes(model, input_shapes) if input_shapes else model
        shapes = {s.name: M.concrete_shape(s) for s in M.inputs(sized)}
    except ShapeError:
        pass  # dynamic dimensions: MACs need --input-shape
    info = {
        "path": str(path),
        "file_bytes": path.stat().st_size,
        "ir_version": model.ir_version,
        "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "producer": " ".join(x for x in (model.producer_name, model.producer_version) if x) or None,
        "inputs": [s.as_dict() for s in M.inputs(model)],
        "outputs": [s.as_dict() for s in M.outputs(model)],
        "nodes": len(model.graph.node),
        "ops": stats.op_histogram(model),
        "parameters": params,
        "zero_weights": zeros,
        "zero_share": round(zeros / params, 4) if params else 0.0,
        "macs": stats.macs(model, shapes) if shapes is not None else None,
        "initializers": len(model.graph.initializer),
    }
    if tensors:
        info["node_names"] = [{"name": n.name, "op": n.op_type, "inputs": list(n.input), "outputs": list(n.output)}
                              for n in model.graph.node]
    return info
