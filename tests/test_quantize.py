"""Quantization through onnxruntime.quantization, measured against the float model."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.conftest import edge, run_onnx


def _report(out):
    return json.loads(out.with_name(out.stem + ".report.json").read_text())


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_int8_static_keeps_top1_on_a_trained_model(models, tmp_path, method):
    src = models("trained-cnn")
    out = tmp_path / f"{method}.onnx"
    edge("optimize", src, "-o", out, "--quantize", "int8", "--calibration", src.parent / "calibration.npz",
         "--calibration-method", method, "--eval", src.parent / "eval.npz", "--max-accuracy-drop", "1",
         "--activations", "int8")
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 5 and ops.count("DequantizeLinear") >= 10
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # signed int8 activations as asked (each board's default: tests/test_auto.py) and weights; per-channel weight
    # scales on the first Conv
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert all(z.dtype == np.int8 for z in zero_points)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    w_dq = next(n for n in model.graph.node if n.output[0] == conv.input[1])
    assert inits[w_dq.input[0]].dtype == np.int8 and inits[w_dq.input[1]].shape == (16,)
    # independent check of top-1 agreement on held-out data
    data = np.load(src.parent / "eval.npz")
    ref, q = run_onnx(src, {"x": data["x"]})[0], run_onnx(out, {"x": data["x"]})[0]
    assert np.mean(ref.argmax(1) == q.argmax(1)) >= 0.99
    r = _report(out)
    assert r["evaluation"]["comparison"]["top1_agreement"] >= 0.99
    assert r["evaluation"]["optimized"]["size_bytes"] < 0.45 * r["evaluation"]["original"]["size_bytes"]
    assert r["evaluation"]["gate"]["passed"]


def test_int8_dynamic_on_an_lstm(models, tmp_path):
    src = models("lstm")
    out = tmp_path / "dyn.onnx"
    data = tmp_path / "frames.npz"
    x = np.random.default_rng(3).standard_normal((32, 1, 12, 20)).astype(np.float32)
    np.savez(data, frames=x)
    edge("optimize", src, "-o", out, "--quantize", "int8-dynamic", "--eval", data)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "DynamicQuantizeLSTM" in ops
    ref = np.concatenate([run_onnx(src, {"frames": s})[0] for s in x])
    q = np.concatenate([run_onnx(out, {"frames": s})[0] for s in x])
    cos = np.sum(ref * q) / (np.linalg.norm(ref) * np.linalg.norm(q))
    assert cos > 0.98  # dynamic int8 of a random-weight LSTM: measured 0.989
    assert _report(out)["evaluation"]["optimized"]["size_bytes"] < 0.4 * src.stat().st_size


def test_fp16_halves_weights_and_keeps_float32_io(models, tmp_path):
    src = models("mlp")
    out = tmp_path / "half.onnx"
    edge("optimize", src, "-o", out, "--quantize", "fp16")
    model = onnx.load(str(out))
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer if i.dims and np.prod(i.dims) > 16]
    assert weights and all(w.dtype == np.float16 for w in weights)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = np.random.default_rng(0).standard_normal((5, 32)).astype(np.float32)
    ref, half = run_onnx(src, {"features": x})[0], run_onnx(out, {"features": x})[0]
    assert half.dtype == np.float32 and np.max(np.abs(ref - half)) < 1e-2 * max(1, np.abs(ref).max())
    assert out.stat().st_size < 0.6 * src.stat().st_size


def test_calibration_from_a_folder_of_npy_files(models, tmp_path):
    src = models("trained-cnn")
    folder = tmp_path / "cal"
    folder.mkdir()
    x = np.load(src.parent / "calibration.npz")["x"]
    for i in range(4):
        np.save(folder / f"part{i}.npy", x[i * 25:(i + 1) * 25])
    out = tmp_path / "q.onnx"
    edge("optimize", src, "-o", out, "--quantize", "int8", "--calibration", folder)
    assert _report(out)["passes"][-1]["calibration_samples"] == 100


def test_old_opset_is_converted_for_per_channel_scales(models, tmp_path):
    src = models("paddle-like")  # opset 11: DequantizeLinear has no per-channel axis before opset 13
    cal = tmp_path / "cal.npz"
    np.savez(cal, **{"input:0": np.random.default_rng(1).standard_normal((20, 16, 16, 3)).astype(np.float32)})
    out = tmp_path / "q.onnx"
    edge("optimize", src, "-o", out, "--quantize", "int8", "--calibration", cal)
    q = _report(out)["passes"][-1]
    assert q["per_channel"] is True and any("opset 11 → 13" in n for n in q["notes"])
    assert onnx.load(str(out)).opset_import[0].version >= 13
    x = np.random.default_rng(2).standard_normal((4, 16, 16, 3)).astype(np.float32)
    ref, got = run_onnx(src, {"input:0": x})[0], run_onnx(out, {"input:0": x})[0]
    assert np.mean(ref.argmax(1) == got.argmax(1)) >= 0.75


def test_accuracy_gate_refuses_to_write(models, tmp_path):
    src = models("trained-cnn")
    out = tmp_path / "gated.onnx"
    r = edge("optimize", src, "-o", out, "--prune-channels", "0.9", "--eval", src.parent / "eval.npz",
             "--max-accuracy-drop", "0.5", check=False)
    assert r.returncode == 7, r.stderr
    assert "accuracy dropped by" in r.stderr and "not written" in r.stderr
    assert not out.exists() and not (tmp_path / "gated.report.json").exists()
    assert list(tmp_path.iterdir()) == []


def test_exclude_nodes_takes_names_and_patterns(models, tmp_path):
    src = models("trained-cnn")
    convs = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "Conv"]
    assert len(convs) >= 2 and all(convs)
    out = tmp_path / "q.onnx"
    pattern = convs[0][:-1] + "*"  # a shell pattern matching the first Conv (and maybe more)
    edge("optimize", src, "-o", out, "--quantize", "int8", "--calibration", src.parent / "calibration.npz",
         "--exclude-nodes", pattern)
    q = onnx.load(str(out))
    produced_by = {o: n for n in q.graph.node for o in n.output}
    for conv in (n for n in q.graph.node if n.op_type == "Conv"):
        float_weight = conv.input[1] in {i.name for i in q.graph.initializer}
        matched = conv.name.startswith(pattern[:-1])
        assert float_weight == matched, conv.name  # excluded: float weights; others: DequantizeLinear
        assert float_weight or produced_by[conv.input[1]].op_type == "DequantizeLinear"
    r = edge("optimize", src, "-o", tmp_path / "r.onnx", "--quantize", "int8", "--calibration",
             src.parent / "calibration.npz", "--exclude-nodes", "nothing/*", check=False)
    assert r.returncode != 0 and "no node named nothing/*" in r.stderr and not (tmp_path / "r.onnx").exists()
