"""--backend mxnet: the importer preflight and the graph rewrites that avoid MXNet's silent errors."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.backends import mxnet_ops, mxnet_rewrites
from tests.conftest import ROOT, edge, run_onnx


def _model(nodes, inputs, outputs, inits=(), opset=11):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return onnx.shape_inference.infer_shapes(m)


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def silent_error_model():
    """Both of MXNet's silent errors: Conv auto_pad=SAME_UPPER (stride 2, odd size) and 4-D Softmax at opset 11."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    return _model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv_same", auto_pad="SAME_UPPER",
                                    strides=[2, 2]),
                   helper.make_node("Softmax", ["c"], ["y"], name="softmax_4d", axis=1)],
                  [_vi("x", [1, 3, 11, 9])], [_vi("y", [1, 4, 6, 5])], [w])


def unsupported_model(tmp_path):
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    m = _model([helper.make_node("Erf", ["x"], ["e"], name="the_erf"),
                helper.make_node("Resize", ["e", "", "scales"], ["y"], name="the_resize", mode="nearest")],
               [_vi("x", [1, 2, 4, 4])], [_vi("y", [1, 2, 8, 8])], [scales], opset=13)
    path = tmp_path / "unsupported.onnx"
    onnx.save(m, path)
    return path


def test_preflight_names_every_node_the_importer_cannot_take(models, tmp_path):
    r = edge("inspect", unsupported_model(tmp_path), "--backend", "mxnet", check=False)
    assert r.returncode == 12, r.stderr
    assert "the_erf (Erf)" in r.stdout and "the_resize (Resize)" in r.stdout
    assert "cannot take 2 node(s)" in r.stderr and "Traceback" not in r.stderr
    r = edge("inspect", models("lstm"), "--backend", "mxnet", check=False)
    assert r.returncode == 12 and "(LSTM)" in r.stdout


def test_preflight_passes_the_keyword_model():
    r = edge("inspect", ROOT / "demos/kws/model/kws.onnx", "--backend", "mxnet")
    assert "0 node(s) need attention" in r.stdout


def test_silent_errors_are_found_and_the_exact_rewrites_keep_the_function():
    m = silent_error_model()
    found = {p.node: p.fix for p in mxnet_ops.check(m)}
    assert found == {"conv_same": "rewrite", "softmax_4d": "rewrite"}
    x = np.random.default_rng(1).standard_normal((1, 3, 11, 9)).astype(np.float32)
    before = run_onnx(m, {"x": x})[0]
    fixed = onnx.ModelProto()
    fixed.CopyFrom(m)
    changed = mxnet_rewrites.apply(fixed, mxnet_rewrites.EXACT)
    assert set(changed) == {"explicit-conv-pads", "softmax-as-2d"}
    onnx.checker.check_model(fixed)
    np.testing.assert_allclose(run_onnx(fixed, {"x": x})[0], before, rtol=1e-6, atol=1e-7)
    assert mxnet_ops.check(onnx.shape_inference.infer_shapes(fixed)) == []


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("size,stride,kernel", [(8, 1, 3), (9, 2, 3), (10, 3, 5), (7, 2, 4)])
def test_explicit_pads_match_auto_pad(mode, size, stride, kernel):
    w = numpy_helper.from_array(np.ones((2, 1, kernel, kernel), np.float32), "w")
    out = -(-size // stride)
    m = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="c", auto_pad=mode, strides=[stride, stride])],
               [_vi("x", [1, 1, size, size])], [_vi("y", [1, 2, out, out])], [w])
    x = np.random.default_rng(size).standard_normal((1, 1, size, size)).astype(np.float32)
    before = run_onnx(m, {"x": x})[0]
    mxnet_rewrites.explicit_conv_pads(m)
    np.testing.assert_allclose(run_onnx(m, {"x": x})[0], before, rtol=1e-6, atol=1e-6)
