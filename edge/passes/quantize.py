"""Quantization through onnxruntime.quantization: int8 static (QDQ, per-channel int8 weights; activations int8
or uint8 as the target board says: onnxruntime's recommendation is S8S8 on ARM and U8S8 on x86), int8 dynamic
(weights only), and fp16. `--quantize auto` searches the int8 settings (edge/search/quantize.py)."""

from __future__ import annotations

import contextlib
import fnmatch
import io
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, version_converter
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edge import model as M
from edge.errors import QuantizationError, UsageError, one_line
from edge.passes import Context, Option, Outcome, names

CALIBRATION_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
MIN_OPSET = 10  # QuantizeLinear / DequantizeLinear appear in opset 10
PER_CHANNEL_OPSET = 13  # DequantizeLinear's axis attribute (per-channel) appears in opset 13


def _one_of(flag: str, choices):
    def check(value):
        return None if value is None or value in choices() else f"{flag} {value}: choose one of {', '.join(choices())}"
    return check


ACTIVATION_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}

# every mode reads these; --quantize picks the mode (MODES below)
QUANTIZE, CALIBRATION, CALIBRATION_METHOD, EXCLUDE_NODES, ACTIVATIONS = OPTIONS = (
    Option("quantize", "--quantize", "int8 (static QDQ), int8-dynamic, fp16, or auto (int8 with the nodes, "
           "calibration and activation type that keep --max-accuracy-drop, found by measurement)", "lossy",
           metavar="MODE", check=_one_of("--quantize", lambda: (*MODES, "auto"))),  # auto: edge/search/quantize.py
    Option("calibration", "--calibration", ".npz or folder of .npy/.npz (int8)", "lossy", type=Path,
           metavar="DATA"),
    Option("calibration_method", "--calibration-method", "minmax (default), entropy, percentile", "lossy",
           default="minmax", metavar="M", check=_one_of("--calibration-method", lambda: CALIBRATION_METHODS)),
    Option("exclude_nodes", "--exclude-nodes", "nodes to keep in float when quantizing (names or patterns such as "
           "'emb/*')", "lossy", type=names, default=[], metavar="A,B"),
    Option("activations", "--activations", "int8 activation type: int8 (S8S8, fast on ARM) or uint8 (U8S8, fast on "
           "x86); default: the target board's", "lossy", metavar="T", check=_one_of("--activations",
                                                                                  lambda: ACTIVATION_TYPES)),
)


class _Reader(CalibrationDataReader):
    def __init__(self, feeds):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)


def _check_opset(model, mode):
    opset = M.opset(model)
    if opset < MIN_OPSET:
        raise QuantizationError(
            f"--quantize {mode} needs opset >= {MIN_OPSET} (QuantizeLinear), the model has opset {opset}: re-export "
            f"it with opset >= {PER_CHANNEL_OPSET}, or convert it: onnx.version_converter.convert_version(model, "
            f"{PER_CHANNEL_OPSET})"
        )


def preflight(model, mode: str, has_calibration: bool) -> None:
    """Refuse before any work is done when the quantization cannot run."""
    if mode in ("int8", "int8-dynamic", "auto"):
        _check_opset(model, mode)
    if mode in ("int8", "auto") and not has_calibration:
        raise UsageError(f"--quantize {mode} needs calibration data: add --calibration DATA (.npz or folder)")


def _per_channel_ready(model, outcome: Outcome):
    """Per-channel QDQ needs opset 13; convert older models, or fall back to per-tensor scales."""
    opset = M.opset(model)
    if opset >= PER_CHANNEL_OPSET:
        return model, True
    try:
        converted = version_converter.convert_version(model, PER_CHANNEL_OPSET)
        onnx.checker.check_model(converted)
        outcome.note(f"converted opset {opset} → {PER_CHANNEL_OPSET} for per-channel scales")
        return converted, True
    except Exception as e:
        outcome.note(f"opset {opset} has no per-channel DequantizeLinear and conversion to {PER_CHANNEL_OPSET} "
                     f"failed ({one_line(e)}): used per-tensor scales; re-export at opset >= 13 for per-channel")
        return model, False


def _preprocess(model, ctx: Context, outcome: Outcome):
    """onnxruntime's quant pre-processing (symbolic shape inference + optimization + onnx shape inference),
    retried with less when a step cannot handle the graph."""
    src, dst = ctx.workdir / "q-in.onnx", ctx.workdir / "q-pre.onnx"
    M.save(model, src)
    attempts = [
        ("full", {}),
        ("without symbolic shape inference", {"skip_symbolic_shape": True}),
        ("shape inference only", {"skip_symbolic_shape": True, "skip_optimization": True}),
    ]
    failures = []
    for label, kwargs in attempts:
        try:
            with M.scratch_cwd():  # its symbolic shape inference leaves files in the cwd on failure
                quant_pre_process(str(src), str(dst), **kwargs)
            outcome["preprocess"] = label
            if failures:
                outcome.note(f"quant pre-processing fell back to '{label}' ({'; '.join(failures)})")
            return dst
        except Exception as e:
            failures.append(f"{label}: {one_line(e)}")
    outcome["preprocess"] = "skipped"
    outcome.note(f"quant pre-processing skipped ({'; '.join(failures)})")
    return src


def _nodes_to_exclude(model, ctx):
    """--exclude-nodes: node names, or shell patterns (`emb/*`) that must each match at least one node."""
    patterns = ctx.value(EXCLUDE_NODES)
    known = [n.name for n in model.graph.node]
    unknown = [n for n in patterns if not fnmatch.filter(known, n)]
    if unknown:
        raise UsageError(f"--exclude-nodes: no node named {', '.join(unknown)} (`edge inspect --tensors` lists nodes)")
    picked = [k for k in known if any(fnmatch.fnmatchcase(k, n) for n in patterns)]
    return picked or None


@dataclass(frozen=True)
class Int8Settings:
    """One way to run int8 static quantization: what `--quantize int8` takes from its flags and what
    `--quantize auto` varies."""

    method: str = "minmax"  # a CALIBRATION_METHODS key
    activations: str = "int8"  # an ACTIVATION_TYPES key
    per_channel: bool = True
    float_nodes: tuple[str, ...] = ()  # kept in float

    def label(self) -> str:
        kept = f"{len(self.float_nodes)} node(s) float" if self.float_nodes else "all int8"
        return f"{self.method}, {self.activations} act., {'per-channel' if self.per_channel else 'per-tensor'}, {kept}"

    def as_dict(self) -> dict:
        return {**asdict(self), "float_nodes": list(self.float_nodes)}

    def with_float(self, nodes) -> Int8Settings:
        return replace(self, float_nodes=tuple(nodes))


def activation_type(ctx: Context) -> str:
    """--activations, else the target board's (targets/*.toml `quantize_activations`)."""
    given = ctx.options.get(ACTIVATIONS.name)
    if given:
        return given
    return ctx.target.quantize_activations if ctx.target is not None else "int8"


@dataclass
class Prepared:
    """A model made ready for int8 static quantization once (opset, pre-processing), quantized many times."""

    path: Path  # the pre-processed float model
    per_channel: bool  # whether its opset allows per-channel scales
    outcome: Outcome

    @classmethod
    def make(cls, model, ctx: Context) -> Prepared:
        _check_opset(model, "int8")
        if ctx.calibration is None:
            raise UsageError(f"--quantize {ctx.value(QUANTIZE)} needs calibration data: add --calibration DATA "
                             "(.npz or folder)")
        outcome = Outcome(format="QDQ", calibration_samples=len(ctx.calibration))
        model, per_channel = _per_channel_ready(model, outcome)
        return cls(_preprocess(model, ctx, outcome), per_channel, outcome)

    def quantize(self, settings: Int8Settings, ctx: Context, dst: Path) -> onnx.ModelProto:
        extra = {"CalibMovingAverage": False}
        if settings.method == "percentile":
            extra["CalibPercentile"] = 99.999
        try:
            with quiet():
                quantize_static(
                    str(self.path), str(dst), _Reader(ctx.calibration.feeds),
                    quant_format=QuantFormat.QDQ, per_channel=settings.per_channel and self.per_channel,
                    activation_type=ACTIVATION_TYPES[settings.activations], weight_type=QuantType.QInt8,
                    calibrate_method=CALIBRATION_METHODS[settings.method],
                    nodes_to_exclude=list(settings.float_nodes) or None, extra_options=extra,
                )
        except Exception as e:
            raise QuantizationError(f"int8 static quantization failed: {one_line(e)}") from None
        return guard_float_nodes(onnx.load(str(dst)), settings.float_nodes)


GUARDED_OPS = ("Conv", "ConvTranspose", "Gemm")  # what onnxruntime's WeightBiasQuantization rewrites
# what onnxruntime's QDQ propagation moves a DequantizeLinear through (qdq_propagation.cc, CanNodePropagate)
PROPAGATED_THROUGH = ("MaxPool", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Slice")


def guard_float_nodes(model: onnx.ModelProto, float_nodes) -> onnx.ModelProto:
    """Make a node kept in float stay float in any onnxruntime. Its WeightBiasQuantization (1.20+, basic level)
    quantizes, at load time, the float weights of a Conv/ConvTranspose/Gemm whose first input comes from a
    DequantizeLinear — as it does for a float node after an int8 neighbour, directly or once its QDQ propagation
    has moved the DequantizeLinear past a MaxPool or Reshape — which undoes the choice (measured: tests.zoo's
    sensitive-cnn with its fragile Conv kept float still lost 72 points). A Max with the lowest float32, an exact
    no-op that nothing folds or looks through, stands between; only where it is needed, as it costs a pass over
    the tensor (12 % of the demo stream model's emulated aarch64 latency with all 20 of its float Convs guarded)."""
    keep = set(float_nodes)
    producer = {o: n for n in model.graph.node for o in n.output}
    targets = [n for n in model.graph.node if n.name in keep and n.op_type in GUARDED_OPS
               and _reads_dequantized(n.input[0], producer)]
    if not targets:
        return model
    lowest = "edge_keep_float_lowest"
    model.graph.initializer.append(numpy_helper.from_array(np.array(np.finfo(np.float32).min, np.float32), lowest))
    for node in targets:
        guarded = f"{node.input[0]}_keep_float_{node.name}"
        guard = helper.make_node("Max", [node.input[0], lowest], [guarded], name=f"{node.name}/keep_float")
        node.input[0] = guarded
        model.graph.node.insert(list(model.graph.node).index(node), guard)
    return model


def _reads_dequantized(tensor: str, producer: dict) -> bool:
    node = producer.get(tensor)
    while node is not None and node.op_type in PROPAGATED_THROUGH:
        node = producer.get(node.input[0])
    return node is not None and node.op_type == "DequantizeLinear"


@contextlib.contextmanager
def quiet():
    """onnxruntime's calibrators print progress to stdout (which `edge optimize --json` keeps for the report) and
    log a warning per 1-D weight that has no per-channel axis; what matters is in the report."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def quantized_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that int8 QDQ quantized: those reading a DequantizeLinear output (weights or
    activations), in graph order."""
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return [n.name for n in model.graph.node
            if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and n.name
            and any(i in dequantized for i in n.input)]


class Int8Static:
    name = "quantize-int8"
    mode = "int8"  # the --quantize value
    options = OPTIONS
    reference = False

    def wanted(self, settings):
        return settings["quantize"] == self.mode

    lossless = False

    def run(self, model, ctx: Context):
        prepared = Prepared.make(model, ctx)
        settings = Int8Settings(method=ctx.value(CALIBRATION_METHOD), activations=activation_type(ctx),
                                per_channel=prepared.per_channel,
                                float_nodes=tuple(_nodes_to_exclude(model, ctx) or ()))
        outcome = prepared.outcome
        outcome.update(activations=settings.activations, weights="int8", calibration_method=settings.method,
                       per_channel=settings.per_channel, float_nodes=list(settings.float_nodes))
        return prepared.quantize(settings, ctx, ctx.workdir / "q-int8.onnx"), outcome


class Int8Dynamic:
    name = "quantize-int8-dynamic"
    mode = "int8-dynamic"  # the --quantize value
    options = OPTIONS
    reference = False

    def wanted(self, settings):
        return settings["quantize"] == self.mode

    lossless = False

    def run(self, model, ctx: Context):
        _check_opset(model, "int8-dynamic")
        outcome = Outcome(weights="int8", activations="float, quantized at run time")
        src = _preprocess(model, ctx, outcome)
        dst = ctx.workdir / "q-dyn.onnx"
        try:
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                             nodes_to_exclude=_nodes_to_exclude(model, ctx))
        except Exception as e:
            raise QuantizationError(f"int8 dynamic quantization failed: {one_line(e)}") from None
        quantized = onnx.load(str(dst))
        ops = {n.op_type for n in quantized.graph.node}
        if "ConvInteger" in ops:
            outcome.note("Conv became ConvInteger, which onnxruntime runs slowly on CPU: "
                         "prefer --quantize int8 for CNNs")
        return quantized, outcome


class Float16:
    name = "quantize-fp16"
    mode = "fp16"  # the --quantize value
    options = OPTIONS
    reference = False

    def wanted(self, settings):
        return settings["quantize"] == self.mode

    lossless = False

    def run(self, model, ctx: Context):
        from onnxruntime.transformers.float16 import convert_float_to_float16

        try:
            # inputs and outputs stay float32 so callers feed the same arrays as to the float model
            out = convert_float_to_float16(model, keep_io_types=True)
        except Exception as e:
            raise QuantizationError(f"fp16 conversion failed: {one_line(e)}") from None
        M.toposort(out)  # the converter appends its input Casts at the end
        return out, Outcome(weights="float16", io="float32")


MODES = {p.mode: p for p in (Int8Static(), Int8Dynamic(), Float16())}
