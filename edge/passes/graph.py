"""Lossless graph pruning: the same function with fewer nodes. Library passes do the work
(onnx's extractor, onnxoptimizer, onnxsim, onnxruntime's offline basic optimizations); each pass
here only chooses, configures and reports."""

from __future__ import annotations

import onnx
import onnxoptimizer
import onnxruntime as ort
from onnx import shape_inference

from edge import model as M
from edge.errors import UsageError, one_line
from edge.passes import Context, Option, Outcome
from edge.passes import names as comma_names

# onnxoptimizer passes that are exact rewrites (no numerical change beyond float rounding of BN folding).
LOSSLESS_OPTIMIZER_PASSES = [
    "eliminate_deadend",
    "eliminate_identity",
    "eliminate_nop_dropout",
    "eliminate_nop_cast",
    "eliminate_nop_flatten",
    "eliminate_nop_pad",
    "eliminate_nop_transpose",
    "eliminate_nop_reshape",
    "eliminate_nop_concat",
    "eliminate_nop_split",
    "eliminate_nop_expand",
    "eliminate_unused_initializer",
    "eliminate_duplicate_initializer",
    "eliminate_common_subexpression",
    "extract_constant_to_initializer",
    "fuse_bn_into_conv",
    "fuse_add_bias_into_conv",
    "fuse_pad_into_conv",
    "fuse_consecutive_transposes",
    "fuse_consecutive_squeezes",
    "fuse_consecutive_unsqueezes",
]


class CutSubgraph:
    """`--inputs` / `--outputs`: keep only what lies between the chosen tensors."""

    name = "cut-subgraph"
    lossless = True  # judged against the cut reference, not the full model
    options = (Option("inputs", "--inputs", "cut the graph: start from these tensors (comma-separated)", "graph",
                      type=comma_names),
               Option("outputs", "--outputs", "cut the graph: end at these tensors (comma-separated)", "graph",
                      type=comma_names))
    reference = True

    def wanted(self, settings):
        return bool(settings["inputs"] or settings["outputs"])

    def run(self, model, ctx: Context):
        known = _tensor_names(model)
        inputs, outputs = self.options
        wanted_in = ctx.value(inputs) or [s.name for s in M.inputs(model)]
        wanted_out = ctx.value(outputs) or [o.name for o in model.graph.output]
        for flag, names in (("--inputs", wanted_in), ("--outputs", wanted_out)):
            unknown = [n for n in names if n not in known]
            if unknown:
                sample = ", ".join(sorted(known)[:12])
                raise UsageError(
                    f"{flag}: no tensor named {', '.join(repr(u) for u in unknown)} in the model "
                    f"(`edge inspect MODEL --tensors` lists them; e.g. {sample}, ...)"
                )
        passthrough = sorted(set(wanted_out) & set(wanted_in))
        if passthrough:
            raise UsageError(f"--outputs: {', '.join(repr(n) for n in passthrough)} is an input of the cut graph, "
                             "not something it computes; name tensors that nodes produce")
        produced = {o for n in model.graph.node for o in n.output}
        constant = [n for n in wanted_out if n not in produced]
        if constant:
            raise UsageError(f"--outputs: {', '.join(repr(n) for n in constant)} is not computed by any node (an "
                             "initializer or graph input); name tensors that nodes produce")
        inferred = _infer_or_same(model)
        cut = onnx.utils.Extractor(inferred).extract_model(wanted_in, wanted_out)
        for attr in ("ir_version", "producer_name", "producer_version"):
            setattr(cut, attr, getattr(model, attr))
        del cut.opset_import[:]
        cut.opset_import.extend(model.opset_import)
        return cut, Outcome(inputs=wanted_in, outputs=wanted_out)


class FixInputShapes:
    """`--input-shape name=d1,d2,...`: make dynamic dimensions fixed for the whole pipeline."""

    name = "fix-input-shapes"
    lossless = True
    options = (Option("input_shapes", "--input-shape", "fix an input's dynamic dimensions (repeatable)", "graph",
                      metavar="NAME=D1,D2,...", action="append", default={}, parse=M.parse_input_shapes),)
    reference = True

    def wanted(self, settings):
        return bool(settings["input_shapes"])

    def run(self, model, ctx: Context):
        fixed = M.fix_input_shapes(model, ctx.input_shapes)
        return fixed, Outcome(shapes=ctx.input_shapes)


class CleanInputs:
    """Old exporters list every initializer as a graph input (which blocks constant folding);
    some models have inputs nothing reads. Both go."""

    name = "clean-inputs"
    lossless = True
    reference = False
    options = ()

    def wanted(self, settings):
        return settings["lossless"]

    def run(self, model, ctx):
        inits = {i.name for i in model.graph.initializer}
        used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        used |= _subgraph_inputs(model.graph)
        keep, as_init, unused = [], [], []
        for vi in model.graph.input:
            if vi.name in inits:
                as_init.append(vi.name)
            elif vi.name not in used:
                unused.append(vi.name)
            else:
                keep.append(vi)
        if not as_init and not unused:
            return model, Outcome().note("nothing to clean")
        out = _copy(model)
        del out.graph.input[:]
        out.graph.input.extend(keep)
        outcome = Outcome(initializers_no_longer_inputs=len(as_init), unused_inputs_removed=unused)
        return out, outcome


class Optimizer:
    """onnxoptimizer's elimination and fusion passes (Identity, Dropout, dead ends, BN into Conv, ...)."""

    name = "onnxoptimizer"
    lossless = True
    reference = False
    options = ()

    def wanted(self, settings):
        return settings["lossless"]

    def run(self, model, ctx):
        available = set(onnxoptimizer.get_available_passes())
        passes = [p for p in LOSSLESS_OPTIMIZER_PASSES if p in available]
        return onnxoptimizer.optimize(model, passes, fixed_point=True), Outcome(passes=passes)


class Simplify:
    """onnxsim: constant folding and shape-chain folding to a fixed point. If onnxsim cannot handle the
    model, onnxruntime's offline basic optimizations (also constant folding) are the fallback."""

    name = "fold-constants"
    lossless = True
    reference = False
    options = ()

    def wanted(self, settings):
        return settings["lossless"]

    def run(self, model, ctx):
        import onnxsim

        try:
            simplified, ok = onnxsim.simplify(model, check_n=0, skip_fuse_bn=False, mutable_initializer=False)
            if not ok:
                raise RuntimeError("onnxsim's own check failed")
            return simplified, Outcome(tool="onnxsim")
        except Exception as e:  # onnxsim raises many types on unusual graphs
            reason = one_line(e)
        optimized = ort_basic(model, ctx)
        return optimized, Outcome(tool="onnxruntime-basic", fallback=True).note(
            f"onnxsim failed ({reason}); used onnxruntime's offline basic optimizations instead"
        )


class InferShapes:
    """Record every intermediate shape (needed by MAC counting, pruning and quantization).
    onnx's inference first; onnxruntime's symbolic inference if onnx's fails."""

    name = "infer-shapes"
    lossless = True
    reference = False
    options = ()

    def wanted(self, settings):
        return settings["lossless"]

    def run(self, model, ctx):
        stale = len(model.graph.value_info)
        model.graph.ClearField("value_info")  # exporters leave stale shapes; recompute them all
        try:
            inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
            return inferred, Outcome(tool="onnx", replaced_value_info=stale)
        except Exception as e:
            reason = one_line(e)
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            with M.scratch_cwd():
                out = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=True)
            return out, Outcome(tool="onnxruntime-symbolic", fallback=True).note(
                f"onnx shape inference failed ({reason}); used onnxruntime's symbolic shape inference")
        except Exception as e2:
            return model, Outcome(tool=None, fallback=True).note(
                f"shape inference failed (onnx: {reason}; symbolic: {one_line(e2)}); shapes left as they were")


def ort_basic(model: onnx.ModelProto, ctx: Context) -> onnx.ModelProto:
    """onnxruntime's offline basic level: constant folding and redundant-node elimination, in plain ONNX ops."""
    path = ctx.workdir / "ort-basic.onnx"
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.log_severity_level = 3  # warnings about initializers folding left unused are expected here
    so.optimized_model_filepath = str(path)
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return onnx.load(str(path))


def _infer_or_same(model):
    try:
        return shape_inference.infer_shapes(model, data_prop=True)
    except Exception:
        return model


def _tensor_names(model) -> set[str]:
    g = model.graph
    names = {vi.name for vi in g.input} | {i.name for i in g.initializer}
    for n in g.node:
        names.update(n.input)
        names.update(n.output)
    names.discard("")
    return names


def _subgraph_inputs(graph) -> set[str]:
    """Names read from inside If/Loop/Scan bodies (they are used even if no top-level node reads them)."""
    names = set()
    for node in graph.node:
        for attr in node.attribute:
            for sub in list(attr.g.node if attr.HasField("g") else []) + [n for g in attr.graphs for n in g.node]:
                names.update(sub.input)
    return names


def _copy(model):
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


CUT = CutSubgraph()
FIX_SHAPES = FixInputShapes()
CLEAN_INPUTS = CleanInputs()
OPTIMIZER = Optimizer()
SIMPLIFY = Simplify()
INFER_SHAPES = InferShapes()
