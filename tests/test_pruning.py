"""Lossy pruning: unstructured zeros per layer, and structured channel removal that shrinks real shapes."""

import json

import numpy as np
import onnx
from onnx import numpy_helper

from tests.conftest import edge, run_onnx


def _weights(path):
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def test_prune_weights_zeroes_the_ratio_in_every_layer(models, tmp_path):
    out = tmp_path / "pw.onnx"
    edge("optimize", models("trained-cnn"), "-o", out, "--prune-weights", "0.6")
    model = onnx.load(str(out))
    layer_weights = {n.input[1] for n in model.graph.node if n.op_type in ("Conv", "Gemm")}
    arrays = _weights(out)
    assert len(layer_weights) == 6
    for name in layer_weights:
        w = arrays[name]
        assert abs(np.mean(w == 0) - 0.6) <= 1 / w.size + 1e-9, name
    report = json.loads((tmp_path / "pw.report.json").read_text())
    ev = report["evaluation"]
    assert ev["optimized"]["zero_share"] > 0.5
    assert ev["optimized"]["compressed_bytes"] < 0.8 * ev["original"]["compressed_bytes"]
    x = np.load(models("trained-cnn").parent / "eval.npz")["x"][:8]
    assert run_onnx(out, {"x": x})[0].shape == (8, 4)


def test_prune_channels_shrinks_layers_macs_and_file(models, tmp_path):
    src = models("trained-cnn")
    out = tmp_path / "pc.onnx"
    edge("optimize", src, "-o", out, "--prune-channels", "0.5", "--eval", src.parent / "eval.npz")
    model = onnx.load(str(out))
    w = _weights(out)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    shapes = [list(w[c.input[1]].shape) for c in convs]
    # conv1 16→8 out; depthwise follows its input (8 groups); pointwise 32→16 out; conv4 32→16 out
    assert shapes == [[8, 3, 3, 3], [8, 1, 3, 3], [16, 8, 1, 1], [16, 16, 3, 3]]
    group = {a.name: a.i for a in convs[1].attribute}["group"]
    assert group == 8
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    assert [list(w[g.input[1]].shape) for g in gemms] == [[32, 16 * 4 * 4], [4, 32]]  # last layer keeps 4 classes
    report = json.loads((tmp_path / "pc.report.json").read_text())
    p = next(p for p in report["passes"] if p["name"] == "prune-channels")
    assert len(p["pruned"]) == 4 and p["macs_after"] < 0.5 * p["macs_before"]
    assert [s["layer"] for s in p["skipped"]] == [gemms[-1].name]
    ev = report["evaluation"]
    assert ev["optimized"]["size_bytes"] < 0.5 * ev["original"]["size_bytes"]
    assert ev["optimized"]["macs"] == p["macs_after"]
    x = np.load(src.parent / "eval.npz")["x"][:16]
    assert run_onnx(out, {"x": x})[0].shape == (16, 4)


def test_prune_channels_through_gelu_and_a_converter_shape_chain(models, tmp_path):
    out = tmp_path / "mlp.onnx"
    edge("optimize", models("mlp"), "-o", out, "--prune-channels", "0.25")
    assert [list(a.shape) for a in _weights(out).values() if a.ndim == 2] == [[96, 32], [48, 96], [10, 48]]

    out = tmp_path / "tf.onnx"
    edge("optimize", models("tf-like"), "-o", out, "--prune-channels", "0.5")
    arrays = _weights(out)
    conv_w = next(a for a in arrays.values() if a.ndim == 4)
    fc_w = next(a for a in arrays.values() if a.ndim == 2)
    assert conv_w.shape == (4, 3, 3, 3) and fc_w.shape == (4 * 8 * 8, 10)
    rng = np.random.default_rng(0)
    assert run_onnx(out, {"input:0": rng.standard_normal((3, 16, 16, 3)).astype(np.float32)})[0].shape == (3, 10)


def test_prune_channels_leaves_joined_branches_alone_and_says_why(models, tmp_path):
    out = tmp_path / "two.onnx"
    edge("optimize", models("two-io"), "-o", out, "--prune-channels", "0.5")
    report = json.loads((tmp_path / "two.report.json").read_text())
    p = next(p for p in report["passes"] if p["name"] == "prune-channels")
    assert p["pruned"] == []
    reasons = " | ".join(s["reason"] for s in p["skipped"])
    assert "joins another branch" in reasons and "Softmax" in reasons
    assert report["evaluation"]["parity"]["max_rel_diff"] <= 1e-4
