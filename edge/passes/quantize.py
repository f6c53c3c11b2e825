"""Quantization through onnxruntime.quantization: int8 static (QDQ, per-channel, signed activations and
weights: onnxruntime's recommendation for ARM), int8 dynamic (weights only), and fp16."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import onnx
from onnx import version_converter
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


# every mode reads these; --quantize picks the mode (MODES below)
QUANTIZE, CALIBRATION, CALIBRATION_METHOD, EXCLUDE_NODES = OPTIONS = (
    Option("quantize", "--quantize", "int8 (static QDQ), int8-dynamic or fp16", "lossy", metavar="MODE",
           check=_one_of("--quantize", lambda: MODES)),
    Option("calibration", "--calibration", ".npz or folder of .npy/.npz (int8)", "lossy", type=Path,
           metavar="DATA"),
    Option("calibration_method", "--calibration-method", "minmax (default), entropy, percentile", "lossy",
           default="minmax", metavar="M", check=_one_of("--calibration-method", lambda: CALIBRATION_METHODS)),
    Option("exclude_nodes", "--exclude-nodes", "nodes to keep in float when quantizing (names or patterns such as "
           "'emb/*')", "lossy", type=names, default=[], metavar="A,B"),
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
    if mode in ("int8", "int8-dynamic"):
        _check_opset(model, mode)
    if mode == "int8" and not has_calibration:
        raise UsageError("--quantize int8 needs calibration data: add --calibration DATA (.npz or folder)")


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


class Int8Static:
    name = "quantize-int8"
    mode = "int8"  # the --quantize value
    options = OPTIONS
    reference = False

    def wanted(self, settings):
        return settings["quantize"] == self.mode

    lossless = False

    def run(self, model, ctx: Context):
        _check_opset(model, "int8")
        if ctx.calibration is None:
            raise UsageError("--quantize int8 needs calibration data: add --calibration DATA (.npz or folder)")
        method_name = ctx.value(CALIBRATION_METHOD)
        outcome = Outcome(format="QDQ", activations="int8", weights="int8",
                          calibration_method=method_name, calibration_samples=len(ctx.calibration))
        model, per_channel = _per_channel_ready(model, outcome)
        outcome["per_channel"] = per_channel
        src = _preprocess(model, ctx, outcome)
        dst = ctx.workdir / "q-int8.onnx"
        extra = {"CalibMovingAverage": False}
        if method_name == "percentile":
            extra["CalibPercentile"] = 99.999
        try:
            quantize_static(
                str(src), str(dst), _Reader(ctx.calibration.feeds),
                quant_format=QuantFormat.QDQ, per_channel=per_channel,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                calibrate_method=CALIBRATION_METHODS[method_name],
                nodes_to_exclude=_nodes_to_exclude(model, ctx), extra_options=extra,
            )
        except Exception as e:
            raise QuantizationError(f"int8 static quantization failed: {one_line(e)}") from None
        return onnx.load(str(dst)), outcome


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
