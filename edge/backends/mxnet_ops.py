"""Which ONNX nodes Apache MXNet 1.9.1's importer (mxnet.contrib.onnx) can take, checked before any
conversion so a user gets the full list of problems, with node names, instead of the importer's KeyError.

SUPPORTED is the importer's own translation table (`onnx2mx._import_helper._convert_map`, read from the
1.9.1 wheel; tests/test_mxnet.py checks it still matches). Each check below is a case measured to fail
(measured with MXNet 1.9.1); `rewrite` is True where edgepack's rewrites (mxnet_rewrites.py) fix it."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import helper, numpy_helper

from edge import model as M
from edge.errors import BackendError

SUPPORTED = frozenset(
    "Abs Acos Add And ArgMax ArgMin Asin Atan AveragePool BatchNormalization Cast Ceil Clip Concat Constant Conv "
    "ConvTranspose Cos DepthToSpace Div Dropout Elu Equal Exp FC Flatten Floor Gather Gemm GlobalAveragePool "
    "GlobalLpPool GlobalMaxPool Greater HardSigmoid Hardmax Identity InstanceNormalization LRN LeakyRelu Less Log "
    "LogSoftmax LpNormalization LpPool MatMul Max MaxPool MaxRoiPool Mean Min Mul Multinomial Neg Not Or PRelu Pad "
    "Pow RandomNormal RandomNormalLike RandomUniform RandomUniformLike Reciprocal ReduceL1 ReduceL2 ReduceLogSum "
    "ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Selu Shape "
    "Sigmoid Sin Size Slice Softmax Softplus Softsign SpaceToDepth SpatialBN Split Sqrt Squeeze Sub Sum Tan Tanh "
    "TopK Transpose Unsqueeze Xor".split()
)
AXES_AS_INPUT = {"Squeeze", "Unsqueeze", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                 "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}


@dataclass(frozen=True)
class Problem:
    node: str
    op: str
    reason: str
    fix: str | None = None  # "rewrite": mxnet_rewrites.py handles it; "fold": edge optimize's constant folding

    def __str__(self) -> str:
        return f"{self.node} ({self.op}): {self.reason}" + (f" [fixed by: {FIXES[self.fix]}]" if self.fix else "")

    def as_dict(self) -> dict:
        return {"node": self.node, "op": self.op, "reason": self.reason, "fix": self.fix}


FIXES = {"rewrite": "edgepack's graph rewrite", "fold": "constant folding (edge optimize, edge build)"}


def constants(model: onnx.ModelProto) -> dict:
    """Initializers and Constant-node outputs by name."""
    found = M.initializer_arrays(model)
    for n in model.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            found[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return found


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    vis = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    return {v.name: len(v.type.tensor_type.shape.dim) for v in vis if v.type.tensor_type.HasField("shape")}


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


SHAPE_OPS = {"Shape", "Gather", "Slice", "Cast", "Concat", "Unsqueeze", "Squeeze", "Mul", "Div", "Add", "Sub"}


def _shape_computations(model: onnx.ModelProto) -> set[str]:
    """Tensors computed from a Shape node only through shape arithmetic: constant once the input shapes are."""
    found: set[str] = set()
    for n in model.graph.node:
        if n.op_type == "Shape" or (n.op_type in SHAPE_OPS and n.input and n.input[0] in found):
            found.update(n.output)
    return found


@dataclass(frozen=True)
class Graph:
    """What the per-op checks need to know about the whole graph."""

    opset: int
    consts: dict  # name → value of every constant tensor
    ranks: dict  # tensor name → rank, where known
    shape_math: set  # tensors computed from shapes only (constant folding removes them)


Finding = tuple[str, str | None] | None  # (reason, fix: "rewrite", "fold" or None), or None when the node is fine


def _softmax(n, g: Graph) -> Finding:
    if g.opset < 13 and g.ranks.get(n.input[0], 2) > 2:
        return (f"{g.ranks[n.input[0]]}-D Softmax at opset {g.opset}: the importer computes it over one axis only "
                "(wrong numbers, no error)", "rewrite")
    return None


def _conv(n, g: Graph) -> Finding:
    if str(attr(n, "auto_pad", b"NOTSET"), "ascii") in ("SAME_UPPER", "SAME_LOWER"):
        return "auto_pad=SAME_*: the importer ignores it (wrong output shape, no error)", "rewrite"
    return None


def _reshape(n, g: Graph) -> Finding:
    return ("target shape computed at run time (a Shape→…→Concat chain)", "fold") if n.input[1] not in g.consts \
        else None


def _flatten(n, g: Graph) -> Finding:
    axis = attr(n, "axis", 1)
    return (f"Flatten axis={axis}: the importer flattens from axis 1 only", None) if axis != 1 else None


def _matmul(n, g: Graph) -> Finding:
    if g.ranks.get(n.input[0], 2) > 2 or g.ranks.get(n.input[1], 2) > 2:
        return "MatMul with a >2-D operand: the importer handles 2-D × 2-D only", None
    return None


def _slice(n, g: Graph) -> Finding:
    if len(n.input) > 1:
        return ("starts/ends given as int64 inputs (opset >= 10): the importer's slice fails on them",
                "fold" if n.input[0] in g.shape_math else None)
    return None


def _clip(n, g: Graph) -> Finding:
    if len(n.input) == 1 and attr(n, "min") is None and attr(n, "max") is None:
        return "Clip without bounds", None
    if any(x and x not in g.consts for x in n.input[1:]):
        return "min/max computed at run time", None
    return None


def _split(n, g: Graph) -> Finding:
    if len(n.input) > 1 or attr(n, "split") is not None:
        sizes = g.consts.get(n.input[1]) if len(n.input) > 1 else attr(n, "split")
        if sizes is None or len(set(list(sizes))) > 1:
            return "unequal Split", None
    return None


# what the importer gets wrong or refuses in an op it otherwise translates
OP_CHECKS = {"Softmax": _softmax, "Conv": _conv, "Reshape": _reshape, "Flatten": _flatten, "MatMul": _matmul,
             "Slice": _slice, "Clip": _clip, "Split": _split}


def _node_finding(n, g: Graph) -> Finding:
    if n.domain not in ("", "ai.onnx"):
        return f"custom domain {n.domain!r}", None
    if n.op_type in M.QUANTIZED_OPS:
        return "quantized op: MXNet imports float graphs only (build without --quantize, see --backend mxnet)", None
    if n.op_type not in SUPPORTED:
        computed = [x for x in n.input if x]
        foldable = bool(computed) and all(x in g.shape_math or x in g.consts for x in computed)
        return "no MXNet importer translation for this op", "fold" if foldable else None
    if n.op_type in AXES_AS_INPUT and len(n.input) > 1 and n.input[1]:
        return "axes given as an input (opset >= 13)", "rewrite" if n.input[1] in g.consts else "fold"
    check_op = OP_CHECKS.get(n.op_type)
    return check_op(n, g) if check_op else None


def check(model: onnx.ModelProto) -> list[Problem]:
    """Every node the importer would refuse or get wrong; `rewrite` marks the ones edgepack fixes."""
    g = Graph(M.opset(model), constants(model), _ranks(model), _shape_computations(model))
    problems = []
    for i, n in enumerate(model.graph.node):
        found = _node_finding(n, g)
        if found:
            problems.append(Problem(n.name or f"{n.op_type}_{i}", n.op_type, *found))
    return problems


def blocking(problems: list[Problem], folded: bool) -> list[Problem]:
    """What stops a conversion; `folded`: the model already went through constant folding."""
    return [p for p in problems if p.fix is None or (p.fix == "fold" and folded)]


@dataclass
class Preflight:
    """The importer's view of a model file and of the graph the build converts (after the lossless passes)."""

    before: list[Problem]  # in the file as it is
    after: list[Problem]  # in the graph after the lossless passes
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    dynamic_inputs: list[M.TensorSpec] = field(default_factory=list)  # inputs still dynamic after the passes

    def shape_hint(self) -> str:
        folding = any(p.fix == "fold" for p in self.blocking)
        return _shape_hint(self.dynamic_inputs) if folding else ""

    @property
    def removed(self) -> list[Problem]:
        """Problems of the file that the lossless passes take away (matched by node name, else by op)."""
        left = list(self.after)
        gone = []
        for p in self.before:
            same = next((q for q in left if q.node == p.node and q.op == p.op), None) or \
                next((q for q in left if q.op == p.op and q.node not in {b.node for b in self.before}), None)
            if same is None:
                gone.append(p)
            else:
                left.remove(same)
        return gone

    @property
    def blocking(self) -> list[Problem]:
        return blocking(self.after, folded=True)

    def as_dict(self) -> dict:
        removed = {(p.node, p.op) for p in self.removed}
        return {"backend": "mxnet", "input_shapes": self.input_shapes,
                "problems": [{**p.as_dict(), "removed_by_lossless_passes": (p.node, p.op) in removed}
                             for p in self.before],
                "after_lossless_passes": [p.as_dict() for p in self.after],
                "blocking": [p.as_dict() for p in self.blocking], "hint": self.shape_hint()}


def preflight(model: onnx.ModelProto, optimize: dict) -> Preflight:
    """Check the file, then the graph that `edge optimize`'s lossless passes make of it with the same options
    (`--input-shape`, `--inputs/--outputs`, `--no-lossless`): only what survives them can stop a build."""
    from edge import pipeline

    before = check(model)
    fields = {k: v for k, v in optimize.items() if k in ("inputs", "outputs", "input_shapes", "lossless")}
    after_model = pipeline.lossless_graph(model, fields) if before else model
    dynamic = [s for s in M.inputs(after_model) if not s.is_static]
    return Preflight(before, check(after_model) if before else [], fields.get("input_shapes") or {}, dynamic)


def refuse(model_path, check: dict) -> None:
    """Raise BackendError naming every node the importer cannot take; nothing when all are fixable.
    `check`: Preflight.as_dict() (edge.inspect's `backend_check`)."""
    _refuse(model_path, [Problem(**p) for p in check["blocking"]], check["hint"])


def refuse_converted(model_path, model: onnx.ModelProto) -> None:
    """The last guard, on the graph about to be converted (the optimized model)."""
    stop = blocking(check(model), folded=True)
    dynamic = [s for s in M.inputs(model) if not s.is_static]
    _refuse(model_path, stop, _shape_hint(dynamic) if any(p.fix == "fold" for p in stop) else "")


def _shape_hint(dynamic: list[M.TensorSpec]) -> str:
    if not dynamic:
        return ""
    examples = "; ".join(M.shape_example(s) for s in dynamic)
    return (f"input(s) {', '.join(s.name for s in dynamic)} have dynamic dimensions, and shape computations "
            f"(Shape→Slice/Gather→Concat) fold away only at fixed shapes: give them, e.g. {examples}")


def _refuse(model_path, stop: list[Problem], hint: str) -> None:
    if not stop:
        return
    by_op: dict[str, list[str]] = {}
    for p in stop:
        by_op.setdefault(p.op, []).append(p.node)
    names = "; ".join(f"{op} ×{len(nodes)} ({', '.join(nodes[:2])}{', …' if len(nodes) > 2 else ''})"
                      for op, nodes in by_op.items())
    hint = f"; {hint}" if hint else ""
    raise BackendError(f"{model_path}: MXNet 1.9.1's importer cannot take {len(stop)} node(s) that remain after "
                       f"the lossless passes: {names}{hint}; `edge inspect MODEL --backend mxnet` lists why. Use "
                       "--backend onnxruntime, or replace those ops before export")
