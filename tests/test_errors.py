"""Every user mistake: one clear line naming the file and the problem, a non-zero exit, nothing written."""

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import edge


def _fails(tmp_path, *args, code, words):
    out = tmp_path / "out" / "result.onnx"
    r = edge("optimize", *args, "-o", out, check=False) if args and args[0] != "inspect" else edge(*args, check=False)
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = [x for x in r.stderr.strip().splitlines() if not re.match(r"^\[\s*[\d.]+s\] ", x)]  # progress
    assert len(lines) == 1 and lines[0].startswith("edge: error: "), r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert "Traceback" not in r.stderr
    assert not out.exists() and not out.with_name("result.report.json").exists()
    return lines[0]


def _tiny(opset=13, **kw):
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, kw.get("shape", [1, 4]))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, kw.get("shape", [1, 4]))], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model\n")
    _fails(tmp_path, bad, code=3, words=[str(bad), "not an ONNX model"])
    _fails(tmp_path, "inspect", bad, code=3, words=[str(bad)])


def test_truncated_file(models, tmp_path):
    data = models("trained-cnn").read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: len(data) // 3])
    _fails(tmp_path, bad, code=3, words=[str(bad), "truncated"])


def test_missing_file(tmp_path):
    _fails(tmp_path, tmp_path / "nope.onnx", code=3, words=["nope.onnx", "no such file"])


def test_checker_failure(tmp_path):
    model = _tiny()
    model.graph.node[0].input[1] = "does_not_exist"
    bad = tmp_path / "broken.onnx"
    onnx.save(model, str(bad))
    _fails(tmp_path, bad, code=3, words=[str(bad), "checker"])


def test_missing_external_data(tmp_path):
    model = _tiny()
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.weights", size_threshold=0)
    assert (tmp_path / "ext.weights").exists()
    (tmp_path / "ext.weights").unlink()
    _fails(tmp_path, path, code=3, words=[str(path), "ext.weights", "missing"])


def test_external_data_that_is_present_loads(tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save(_tiny(), str(path), save_as_external_data=True, location="ext.weights", size_threshold=0)
    out = tmp_path / "o.onnx"
    edge("optimize", path, "-o", out)
    assert out.exists()


def test_opset_too_old_for_quantization(tmp_path):
    path = tmp_path / "old.onnx"
    onnx.save(_tiny(opset=9), str(path))
    cal = tmp_path / "cal.npz"
    np.savez(cal, x=np.ones((4, 1, 4), np.float32))
    _fails(tmp_path, path, "--quantize", "int8", "--calibration", cal, code=6, words=["opset", "9", ">= 10"])
    _fails(tmp_path, path, "--quantize", "int8-dynamic", code=6, words=["opset 9"])


@pytest.mark.parametrize("arrays, words", [
    ({"image": np.ones((4, 3, 16, 16), np.float32)}, ["missing array(s) ['x']", "unknown array(s) ['image']"]),
    ({"x": np.ones((4, 3, 8, 8), np.float32)}, ["shape [4, 3, 8, 8]", "[batch, 3, 16, 16]"]),
    ({"x": np.ones((4, 3, 16, 16), np.int32)}, ["int32", "float32"]),
    ({"x": np.ones((4, 3, 16, 16), np.float32), "labels": np.ones(3, np.int64)}, ["labels"]),
])
def test_calibration_data_that_does_not_match(models, tmp_path, arrays, words):
    cal = tmp_path / "cal.npz"
    np.savez(cal, **arrays)
    _fails(tmp_path, models("trained-cnn"), "--quantize", "int8", "--calibration", cal, code=4,
           words=[str(cal), *words])


def test_int8_without_calibration(models, tmp_path):
    _fails(tmp_path, models("trained-cnn"), "--quantize", "int8", code=2, words=["--calibration"])


def test_unknown_output_name(models, tmp_path):
    _fails(tmp_path, models("two-io"), "--outputs", "nope", code=2, words=["--outputs", "'nope'"])


@pytest.mark.parametrize("flag, value", [("--prune-weights", "1.0"), ("--prune-channels", "-0.1"),
                                         ("--prune-weights", "abc")])
def test_prune_ratio_outside_range(models, tmp_path, flag, value):
    _fails(tmp_path, models("mlp"), flag, value, code=2, words=[flag])


def test_dynamic_dimension_without_a_size(tmp_path):
    path = tmp_path / "dyn.onnx"
    model = _tiny(shape=["batch", "width"])
    model.graph.node[0].op_type = "Relu"
    del model.graph.node[0].input[1:]
    del model.graph.initializer[:]
    onnx.save(model, str(path))
    line = _fails(tmp_path, path, code=5,
                  words=["input 'x'", "dimension 1", "'width'", "--input-shape x=1,D1 (D1: the sizes you use)"])
    assert "--eval" in line


def test_output_path_not_writable(models, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = edge("optimize", models("mlp"), "-o", blocker / "out.onnx", check=False)
    assert r.returncode == 8 and "cannot create folder" in r.stderr and "Traceback" not in r.stderr


def test_unknown_quantization_mode(models, tmp_path):
    _fails(tmp_path, models("mlp"), "--quantize", "int4", code=2, words=["int4", "int8-dynamic"])
