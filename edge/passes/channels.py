"""Structured channel pruning: drop the least important output channels of Conv / Gemm / MatMul layers
and shrink every consumer, so tensors, the file and the MACs really get smaller.

For each prunable layer the pass traces its output through channel-preserving ops (activations,
BatchNorm, pooling, per-channel constants, Flatten/Reshape/Transpose, depthwise Conv) to the layers
that absorb the channels (Conv, Gemm, MatMul input side). A layer whose channels reach a graph output,
a residual Add/Concat with another branch, or an op this pass does not know is left alone and
reported with the reason. Importance = L1 norm of each output channel's weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

from edge import stats
from edge.passes import Context, Option, Outcome, in_range, ratio

UNARY = {
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu",
    "Softplus", "Softsign", "Gelu", "Mish", "Erf", "Abs", "Neg", "Exp", "Sqrt", "Identity", "Dropout",
    "Clip", "Cast", "Floor", "Ceil", "Round", "Reciprocal", "ThresholdedRelu", "Sin", "Cos",
}
BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"}
POOL = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool"}
REDUCE = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL2", "ReduceL1", "ReduceProd"}


class Blocked(Exception):
    pass


@dataclass(frozen=True)
class Channels:
    """Where a pruned layer's channels sit in a tensor: axis, rank, kept indices out of `full`."""

    axis: int
    rank: int
    keep: tuple[int, ...]
    full: int


@dataclass
class Plan:
    slices: dict[str, tuple[int, tuple[int, ...], int]] = field(default_factory=dict)  # init → (axis, keep, full)
    groups: dict[int, int] = field(default_factory=dict)  # node index → new group
    reshapes: dict[int, str] = field(default_factory=dict)  # node index → shape initializer to make [-1 last]
    touched: set[int] = field(default_factory=set)


class Graph:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.nodes = list(model.graph.node)
        self.inits = {i.name: i for i in model.graph.initializer}
        self.arrays: dict[str, np.ndarray] = {}
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            for name in node.input:
                self.consumers.setdefault(name, []).append(i)
        self.outputs = {o.name for o in model.graph.output}
        self.shapes: dict[str, list] = {}
        try:
            fresh = onnx.ModelProto()
            fresh.CopyFrom(model)
            fresh.graph.ClearField("value_info")  # stale after earlier slicing
            inferred = shape_inference.infer_shapes(fresh, data_prop=True)
            for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
                if vi.type.tensor_type.HasField("shape"):
                    self.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None
                                            for d in vi.type.tensor_type.shape.dim]
        except Exception:
            pass

    def array(self, name):
        if name not in self.arrays:
            self.arrays[name] = numpy_helper.to_array(self.inits[name])
        return self.arrays[name]

    def rank(self, name):
        s = self.shapes.get(name)
        return len(s) if s is not None else None


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def producer_channels(g: Graph, index: int):
    """(weight init, channel axis in the weight, bias init or None, output Channels rank/axis) or None."""
    node = g.nodes[index]
    a = _attrs(node)
    if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in g.inits and a.get("group", 1) == 1:
        w = g.array(node.input[1])
        bias = node.input[2] if len(node.input) > 2 and node.input[2] in g.inits else None
        return node.input[1], 0, bias, w.ndim, 1
    if node.op_type == "Gemm" and node.input[1] in g.inits and not a.get("transA", 0):
        bias = node.input[2] if len(node.input) > 2 and node.input[2] in g.inits else None
        return node.input[1], 0 if a.get("transB", 0) else 1, bias, 2, 1
    if node.op_type == "MatMul" and node.input[1] in g.inits and g.array(node.input[1]).ndim == 2:
        rank = g.rank(node.output[0])
        if rank is None:
            return None
        return node.input[1], 1, None, rank, rank - 1
    return None


def plan_layer(g: Graph, index: int, ratio: float) -> tuple[Plan, int, int]:
    found = producer_channels(g, index)
    if found is None:
        raise Blocked("not a prunable layer")
    weight, w_axis, bias, rank, axis = found
    w = g.array(weight)
    full = w.shape[w_axis]
    drop = int(np.floor(ratio * full))
    if drop == 0 or drop >= full:
        raise Blocked(f"{full} channels: nothing to drop at this ratio")
    importance = np.abs(np.moveaxis(w, w_axis, 0)).reshape(full, -1).sum(axis=1)
    keep = tuple(sorted(np.argsort(-importance, kind="stable")[: full - drop].tolist()))
    plan = Plan()
    plan.touched.add(index)
    _slice(g, plan, weight, w_axis, keep, full)
    if bias is not None:
        b = g.array(bias)
        if b.size == full:
            _slice(g, plan, bias, b.ndim - 1, keep, full)
        elif b.size != 1:
            raise Blocked(f"bias {bias} has shape {list(b.shape)}")
    _trace(g, plan, g.nodes[index].output[0], Channels(axis, rank, keep, full))
    return plan, full, len(keep)


def _slice(g, plan, name, axis, keep, full):
    if name in plan.slices:
        raise Blocked(f"tensor {name} would be sliced twice")
    users = g.consumers.get(name, [])
    if len(users) > 1:
        raise Blocked(f"weight {name} is shared by {len(users)} nodes")
    plan.slices[name] = (axis, keep, full)


def _trace(g: Graph, plan: Plan, tensor: str, ch: Channels, traced=None):
    traced = {} if traced is None else traced
    if tensor in traced:
        if traced[tensor] != ch:
            raise Blocked(f"{tensor} is reached twice with different channel layouts")
        return
    traced[tensor] = ch
    if tensor in g.outputs:
        raise Blocked(f"its channels reach the graph output '{tensor}'")
    for i in g.consumers.get(tensor, []):
        _consume(g, plan, i, tensor, ch, traced)


@dataclass
class Use:
    """One node consuming the traced channels: where, through which input, with which attributes."""

    g: Graph
    plan: Plan
    i: int
    node: onnx.NodeProto
    pos: int  # which input of the node carries the channels
    ch: Channels
    traced: dict
    attrs: dict

    def through(self, ch: Channels | None = None):
        """The node passes the channels on (same or a new layout): keep following its output."""
        self.plan.touched.add(self.i)
        return _trace(self.g, self.plan, self.node.output[0], ch or self.ch, self.traced)

    def slice_input(self, index: int, axis: int):
        """The node reads the channels through a constant input (a weight): slice it and stop."""
        self.plan.touched.add(self.i)
        return _slice(self.g, self.plan, self.node.input[index], axis, self.ch.keep, self.ch.full)


NOT_MINE = object()  # a handler's answer when the node does not use the channels the way it handles


def _unary(u: Use):
    if u.pos != 0:
        return NOT_MINE
    if u.node.op_type == "Clip" and any(n and n not in u.g.inits for n in u.node.input[1:]):
        raise Blocked("Clip with non-constant bounds")
    return u.through()


def _binary(u: Use):
    g, ch, node = u.g, u.ch, u.node
    other = node.input[1 - u.pos] if len(node.input) == 2 else None
    if other in g.inits:
        c = g.array(other)
        caxis = ch.axis - (ch.rank - c.ndim)
        if caxis >= 0 and c.shape[caxis] == ch.full:
            _slice(g, u.plan, other, caxis, ch.keep, ch.full)
        elif caxis >= 0 and c.shape[caxis] != 1:
            raise Blocked(f"{node.op_type} constant {other} of shape {list(c.shape)} does not match {ch.full} channels")
        if c.ndim > ch.rank:
            raise Blocked(f"{node.op_type} constant {other} broadcasts to a higher rank")
    elif other is not None and other not in u.traced:
        # e.g. x * sigmoid(x): fine once the other operand is traced with the same layout; a residual
        # branch from another layer never will be.
        if not _derives_from(g, other, set(u.traced)):
            raise Blocked(f"{node.op_type} '{node.name}' joins another branch ({other})")
    return u.through()


def _batch_norm(u: Use):
    if u.pos != 0 or u.ch.axis != 1:
        return NOT_MINE
    for name in u.node.input[1:5]:
        if name not in u.g.inits:
            raise Blocked("BatchNormalization with non-constant parameters")
        _slice(u.g, u.plan, name, 0, u.ch.keep, u.ch.full)
    return u.through()


def _pool(u: Use):
    return u.through() if u.ch.axis == 1 else NOT_MINE


def _reduce(u: Use):
    ch, op = u.ch, u.node.op_type
    axes = u.attrs.get("axes")
    if axes is None and len(u.node.input) > 1 and u.node.input[1] in u.g.inits:
        axes = u.g.array(u.node.input[1]).tolist()
    if axes is None or u.attrs.get("noop_with_empty_axes", 0):
        raise Blocked(f"{op} over all axes")
    axes = [x % ch.rank for x in axes]
    if ch.axis in axes:
        raise Blocked(f"{op} reduces over the channel axis")
    keepdims = u.attrs.get("keepdims", 1)
    new_axis = ch.axis if keepdims else ch.axis - sum(x < ch.axis for x in axes)
    new_rank = ch.rank if keepdims else ch.rank - len(axes)
    return u.through(Channels(new_axis, new_rank, ch.keep, ch.full))


def _transpose(u: Use):
    perm = u.attrs.get("perm", list(reversed(range(u.ch.rank))))
    return u.through(Channels(perm.index(u.ch.axis), u.ch.rank, u.ch.keep, u.ch.full))


def _reshape(u: Use):
    return _flatten(u.g, u.plan, u.i, u.ch, u.traced) if u.pos == 0 else NOT_MINE


def _shape(u: Use):
    if not _only_other_dims_used(u.g, u.node, u.ch):
        return NOT_MINE
    u.plan.touched.add(u.i)
    return None


def _conv(u: Use):
    if u.pos != 0 or u.ch.axis != 1:
        return NOT_MINE
    g, ch, node = u.g, u.ch, u.node
    w = g.array(node.input[1]) if node.input[1] in g.inits else None
    if w is None:
        raise Blocked("Conv with non-constant weights")
    group = u.attrs.get("group", 1)
    if group == 1 and w.shape[1] == ch.full:
        return u.slice_input(1, 1)
    if group == ch.full and w.shape[0] == ch.full and w.shape[1] == 1:  # depthwise: channels pass through
        _slice(g, u.plan, node.input[1], 0, ch.keep, ch.full)
        if len(node.input) > 2 and node.input[2]:
            _slice(g, u.plan, node.input[2], 0, ch.keep, ch.full)
        u.plan.groups[u.i] = len(ch.keep)
        return u.through()
    raise Blocked(f"grouped Conv '{node.name}' (group {group})")


def _conv_transpose(u: Use):
    if u.pos == 0 and u.ch.axis == 1 and u.attrs.get("group", 1) == 1 and u.node.input[1] in u.g.inits:
        return u.slice_input(1, 0)
    return NOT_MINE


def _gemm(u: Use):
    if u.pos != 0 or u.ch.rank != 2 or u.ch.axis != 1 or u.attrs.get("transA", 0):
        return NOT_MINE
    if u.node.input[1] not in u.g.inits:
        raise Blocked("Gemm with non-constant B")
    return u.slice_input(1, 1 if u.attrs.get("transB", 0) else 0)


def _matmul(u: Use):
    if u.pos != 0 or u.ch.axis != u.ch.rank - 1 or u.node.input[1] not in u.g.inits:
        return NOT_MINE
    if u.g.array(u.node.input[1]).ndim != 2:
        raise Blocked("MatMul with a batched constant")
    return u.slice_input(1, 0)


# how each op consumes a tensor whose channels are pruned: pass them on, slice its weights, or refuse
CONSUMERS = {
    **{op: _unary for op in UNARY - BINARY}, **{op: _binary for op in BINARY}, **{op: _pool for op in POOL},
    **{op: _reduce for op in REDUCE}, "BatchNormalization": _batch_norm, "Transpose": _transpose,
    "Flatten": _reshape, "Reshape": _reshape, "Shape": _shape, "Conv": _conv, "ConvTranspose": _conv_transpose,
    "Gemm": _gemm, "MatMul": _matmul,
}


def _consume(g: Graph, plan: Plan, i: int, tensor: str, ch: Channels, traced):
    node = g.nodes[i]
    handler = CONSUMERS.get(node.op_type)
    use = Use(g, plan, i, node, list(node.input).index(tensor), ch, traced, _attrs(node))
    result = handler(use) if handler else NOT_MINE
    if result is NOT_MINE:
        raise Blocked(f"{node.op_type} '{node.name}' consumes its channels")
    return result


def _flatten(g, plan, i, ch, traced):
    """Flatten/Reshape to 2-D at the channel axis: channel c becomes features c*inner ... (c+1)*inner-1."""
    node = g.nodes[i]
    in_shape = g.shapes.get(node.input[0])
    if not in_shape or any(d is None for d in in_shape[ch.axis + 1:]):
        raise Blocked(f"{node.op_type} '{node.name}' of a tensor with unknown shape")
    if node.op_type == "Flatten" and (_attrs(node).get("axis", 1) % ch.rank) != ch.axis:
        raise Blocked("Flatten at another axis than the channels")
    if node.op_type == "Reshape":
        target = _reshape_target(g, node.input[1])
        if target is None:
            raise Blocked("Reshape to a computed shape")
        lead = in_shape[0]
        if ch.axis != 1 or len(target) != 2 or not (target[0] == 0 or (lead is not None and target[0] == lead)):
            raise Blocked("Reshape that does not flatten at the channel axis")
        if target[1] != -1:
            plan.reshapes[i] = node.input[1]
    inner = int(np.prod(in_shape[ch.axis + 1:])) if ch.axis + 1 < len(in_shape) else 1
    keep = tuple((np.asarray(ch.keep)[:, None] * inner + np.arange(inner)).ravel().tolist())
    plan.touched.add(i)
    return _trace(g, plan, node.output[0], Channels(1, 2, keep, ch.full * inner), traced)


def _only_other_dims_used(g, shape_node, ch) -> bool:
    """Shape(x) read only through Gathers of other dimensions (converters' `x.view(x.size(0), -1)`)."""
    users = [g.nodes[j] for j in g.consumers.get(shape_node.output[0], [])]
    for user in users:
        if user.op_type != "Gather" or user.input[1] not in g.inits:
            return False
        if ch.axis in np.atleast_1d(g.array(user.input[1])).tolist():
            return False
    return bool(users)


def _reshape_target(g, name):
    """A Reshape's target as a list: a constant, or Concat(computed dims..., constant [-1])."""
    if name in g.inits:
        return g.array(name).tolist()
    producer = next((n for n in g.nodes if name in n.output), None)
    if producer is not None and producer.op_type == "Concat" and producer.input[-1] in g.inits:
        tail = np.atleast_1d(g.array(producer.input[-1])).tolist()
        if tail == [-1] and len(producer.input) == 2:
            return [0, -1]  # first entry computed (kept as is), last inferred
    return None


def _derives_from(g, tensor, sources, depth=8):
    """True if `tensor` is computed from one of `sources` through channel-wise ops: single-input ones, or
    binary ones with a constant (e.g. sigmoid(x), or 1 + erf(x / c) inside an exported GELU)."""
    producer = {o: n for n in g.nodes for o in n.output}
    for _ in range(depth):
        if tensor in sources:
            return True
        node = producer.get(tensor)
        if node is None:
            return False
        if node.op_type in UNARY:
            tensor = node.input[0]
        elif node.op_type in BINARY and len(node.input) == 2 and sum(i in g.inits for i in node.input) == 1:
            tensor = next(i for i in node.input if i not in g.inits)
        else:
            return False
    return False


def apply(model: onnx.ModelProto, g: Graph, plan: Plan) -> None:
    for name, (axis, keep, full) in plan.slices.items():
        arr = g.array(name)
        if arr.shape[axis] != full:
            raise Blocked(f"{name} changed under the plan")
        sliced = np.take(arr, np.asarray(keep), axis=axis)
        g.inits[name].CopyFrom(numpy_helper.from_array(sliced, name))
        g.arrays[name] = sliced
    for i, group in plan.groups.items():
        for attr in g.nodes[i].attribute:
            if attr.name == "group":
                attr.i = group
    for i, shape_name in plan.reshapes.items():
        node = g.nodes[i]
        target = g.array(shape_name).copy()
        target[1] = -1
        new_name = f"{shape_name}__pruned_{i}"
        model.graph.initializer.append(numpy_helper.from_array(target.astype(np.int64), new_name))
        node.input[1] = new_name


def ratio_or_auto(text: str):
    return "auto" if text.strip() == "auto" else ratio(text)


def _ratio_check(value):
    if value == "auto":
        return None
    return in_range("--prune-channels", 0, 1, "the ratio must be in [0, 1), e.g. 0.5 for half, or auto")(value)


def prune(model: onnx.ModelProto, ratio_of, shapes: dict) -> Outcome:
    """Prune every layer that can be, in graph order, by ratio_of(layer name) (0: left alone); changes `model`."""
    macs_before = stats.macs(model, shapes)
    layers, skipped = [], []
    g = Graph(model)
    for index, node in enumerate(g.nodes):
        if producer_channels(g, index) is None:
            continue
        label = node.name or node.output[0]
        if not ratio_of(label):
            continue
        try:
            plan, before, after = plan_layer(g, index, ratio_of(label))
            apply(model, g, plan)
            g = Graph(model)  # weights and shapes changed
            layers.append({"layer": label, "op": node.op_type, "channels": [before, after]})
        except Blocked as why:
            skipped.append({"layer": label, "op": node.op_type, "reason": str(why)})
    # shapes recorded before pruning would now be wrong
    model.graph.ClearField("value_info")
    return Outcome(pruned=layers, skipped=skipped, macs_before=macs_before, macs_after=stats.macs(model, shapes))


def feed_shapes(ctx: Context) -> dict:
    return {k: v.shape for k, v in (ctx.parity_feeds[0] if ctx.parity_feeds else {}).items()}


# the flag both channel-pruning passes answer: a ratio here, auto in edge/search/prune.py
RATIO = Option("prune_channels", "--prune-channels", "remove the ratio R of least important output channels per "
               "layer; auto: the most, per layer, that keeps --max-accuracy-drop", "lossy", type=ratio_or_auto,
               metavar="R|auto", check=_ratio_check)


class PruneChannels:
    name = "prune-channels"
    options = (RATIO,)
    reference = False
    lossless = False

    def wanted(self, settings):
        return bool(settings["prune_channels"]) and settings["prune_channels"] != "auto"

    def run(self, model, ctx: Context):
        value = ctx.value(RATIO)
        outcome = prune(model, lambda layer: value, feed_shapes(ctx))
        outcome["ratio"] = value
        if not outcome["pruned"]:
            outcome.note("no layer could be pruned: " + "; ".join(f"{s['layer']}: {s['reason']}"
                                                                  for s in outcome["skipped"][:5]))
        return model, outcome


PRUNE_CHANNELS = PruneChannels()
