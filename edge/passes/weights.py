"""Unstructured magnitude pruning: in every Conv / Gemm / MatMul weight, the given share of smallest
|w| becomes zero (per layer, so no layer is emptied). The file keeps its size; the compressed bundle
shrinks, and sparse-aware kernels may run faster."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from edge.passes import Context, Option, Outcome, in_range, ratio

WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


def weight_initializers(model) -> dict[str, str]:
    """initializer name → op type, for the learned weight of each Conv/Gemm/MatMul."""
    inits = {i.name for i in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        index = WEIGHT_INPUT.get(node.op_type)
        if index is None or len(node.input) <= index:
            continue
        name = node.input[index]
        if node.op_type == "MatMul" and name not in inits:
            name = node.input[0]  # constant on the left: x = W @ y
        if name in inits:
            found[name] = node.op_type
    return found


class PruneWeights:
    name = "prune-weights"
    options = (Option("prune_weights", "--prune-weights", "zero the ratio R of smallest weights per layer", "lossy",
                      type=ratio, metavar="R",
                      check=in_range("--prune-weights", 0, 1, "the ratio must be in [0, 1), e.g. 0.5 for half")),)
    reference = False

    def wanted(self, settings):
        return bool(settings["prune_weights"])
    lossless = False

    def run(self, model, ctx: Context):
        ratio = ctx.value(self.options[0])
        targets = weight_initializers(model)
        layers = []
        total = zeroed = 0
        for init in model.graph.initializer:
            if init.name not in targets:
                continue
            w = numpy_helper.to_array(init)
            if w.dtype.kind != "f" or w.size < 2:
                continue
            k = int(round(ratio * w.size))
            if k:
                threshold = np.partition(np.abs(w).ravel(), k - 1)[k - 1]
                mask = np.abs(w) <= threshold
                # ties at the threshold could exceed k; keep exactly k zeros, smallest first
                if mask.sum() > k:
                    order = np.argsort(np.abs(w).ravel(), kind="stable")
                    mask = np.zeros(w.size, bool)
                    mask[order[:k]] = True
                    mask = mask.reshape(w.shape)
                w = np.where(mask, np.zeros((), w.dtype), w)
                init.CopyFrom(numpy_helper.from_array(w, init.name))
            z = int(np.count_nonzero(w == 0))
            layers.append({"tensor": init.name, "op": targets[init.name], "size": int(w.size), "zeros": z})
            total += w.size
            zeroed += z
        outcome = Outcome(ratio=ratio, layers=len(layers), weights=total, zeros=zeroed,
                          zero_share=round(zeroed / total, 4) if total else 0.0, per_layer=layers)
        if not layers:
            outcome.note("no Conv/Gemm/MatMul weights found")
        return model, outcome


PRUNE_WEIGHTS = PruneWeights()
