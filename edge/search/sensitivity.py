"""Per-node sensitivity of int8 quantization: the error each quantized node adds, read from the intermediate
outputs of the quantized model against the float model on the eval data (onnxruntime.quantization.qdq_loss_debug).

At every tensor both models share, qdq_loss_debug gives the signal-to-quantization-noise ratio of the quantized
model's value (the error accumulated up to there, the tensor's own rounding included). A node's own share is the
relative noise power at its output minus the largest at its inputs: what its weights, its int8 kernel and the
rounding of its output added. A graph input counts as exact, so its rounding is its first reader's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization.qdq_loss_debug import (
    collect_activations,
    compute_activation_error,
    create_activation_matching,
    modify_model_output_intermediate_tensors,
)

from edge.passes.quantize import _Reader, quantized_nodes

MAX_SAMPLES = 16  # every intermediate tensor of every sample is held in memory
NO_NOISE_DB = 200.0  # what qdq_loss_debug's SQNR of an exact copy is taken as
PASS_THROUGH = {"Relu", "Clip"}  # fused into the int8 kernel before it: their output is the node's output


def _relative_noise(sqnr_db: float) -> float:
    return 10 ** (-min(float(sqnr_db), NO_NOISE_DB) / 10)


def _intermediates(model_path: Path, feeds, work: Path, tag: str) -> dict[str, list[np.ndarray]]:
    augmented = work / f"sens-{tag}.onnx"
    modify_model_output_intermediate_tensors(str(model_path), str(augmented))
    return collect_activations(str(augmented), _Reader(feeds[:MAX_SAMPLES]))


class _Graph:
    """The float graph's wiring, indexed once: its nodes by name, each tensor's producer and readers."""

    def __init__(self, graph: onnx.GraphProto):
        self.nodes = {n.name: n for n in graph.node}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for n in graph.node:
            for t in n.input:
                self.readers.setdefault(t, []).append(n)
        self.inputs = {i.name for i in graph.input}

    def measured_output(self, node: onnx.NodeProto, known: dict) -> str | None:
        """The tensor standing for a node's output: its own, or past a fused activation."""
        tensor = node.output[0]
        for _ in range(3):
            if tensor in known:
                return tensor
            users = self.readers.get(tensor, [])
            if len(users) != 1 or users[0].op_type not in PASS_THROUGH:
                return None
            tensor = users[0].output[0]
        return tensor if tensor in known else None

    def input_noise(self, node: onnx.NodeProto, noise: dict) -> float:
        """Largest relative noise among the node's activation inputs (walking back over ops both graphs renamed)."""
        worst = 0.0
        for tensor in node.input:
            if tensor in self.inputs:
                continue
            for _ in range(4):
                if tensor in noise or tensor not in self.producer:
                    break
                tensor = self.producer[tensor].input[0] if self.producer[tensor].input else ""
            worst = max(worst, noise.get(tensor, 0.0))
        return worst


def _noise(float_acts, qdq_acts) -> dict[str, float]:
    """Relative noise power of the quantized model's value (after its QuantizeLinear pair: a fused Relu acts
    there) against the float model's, at every tensor both have."""
    errors = compute_activation_error(create_activation_matching(qdq_acts, float_acts))
    return {t: _relative_noise(e["xmodel_err"]) for t, e in errors.items() if "xmodel_err" in e}


def rank(float_path: Path, qdq_path: Path, feeds, work: Path) -> list[dict]:
    """Quantized nodes, most sensitive first: {node, op, added_db, sqnr_db}; `added_db` is 10·log10 of the relative
    noise power the node adds (higher: worse), `sqnr_db` the signal-to-noise ratio at its output."""
    noise = _noise(_intermediates(float_path, feeds, work, "float"), _intermediates(qdq_path, feeds, work, "qdq"))
    graph = _Graph(onnx.load(str(float_path)).graph)
    ranked = []
    for name in quantized_nodes(onnx.load(str(qdq_path))):
        node = graph.nodes.get(name)
        if node is None:
            continue
        out = graph.measured_output(node, noise)
        if out is None:
            ranked.append({"node": name, "op": node.op_type, "added_db": None, "sqnr_db": None})
            continue
        added = max(noise[out] - graph.input_noise(node, noise), 1e-20)
        ranked.append({"node": name, "op": node.op_type, "added_db": round(float(10 * np.log10(added)), 2),
                       "sqnr_db": round(float(-10 * np.log10(noise[out])), 2)})
    # unmeasured nodes last: they are tried only after every measured one
    return sorted(ranked, key=lambda r: -(r["added_db"] if r["added_db"] is not None else -1e9))
