"""--backend mxnet: the importer preflight and the graph rewrites that avoid MXNet's silent errors."""

import json
import os
import re
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.backends import mxnet_ops, mxnet_rewrites
from tests.conftest import ROOT, edge, rel_diff, run_onnx


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
    assert "cannot take 2 node(s) that remain after the lossless passes: Erf ×1 (the_erf); Resize ×1 (the_resize)" \
        in r.stderr
    assert "Traceback" not in r.stderr
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
    assert set(changed) == {"conv-kernel-shape", "explicit-conv-pads", "softmax-as-2d"}
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


# --- real builds through MXNet 1.9.1 (its own build environment, created on first use) -------------------

HELDOUT = ROOT / "demos/kws/model/heldout.npz"


def _exe_matches_onnxruntime(exe, model_path, feeds: dict, tmp_path, tol=1e-4):
    np.savez(tmp_path / "in.npz", **feeds)
    r = subprocess.run([str(exe), "--samples", str(tmp_path / "in.npz"), "--output", str(tmp_path / "out.npz")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "out.npz")
    name = next(iter(feeds))
    for i in range(len(feeds[name])):
        ref = run_onnx(model_path, {k: v[i] for k, v in feeds.items()})
        for out, want in zip(got.files, ref, strict=True):
            assert rel_diff(want, got[out][i]) <= tol


@pytest.mark.slow
def test_keyword_model_runs_in_mxnet_like_in_onnxruntime(tmp_path):
    exe = tmp_path / "kws-mx"
    edge("build", ROOT / "demos/kws/model/kws.onnx", "--backend", "mxnet", "-o", exe, "--eval", HELDOUT)
    info = json.loads(subprocess.run([str(exe), "--info"], capture_output=True, text=True).stdout)
    assert info["backend"]["name"] == "mxnet" and info["backend"]["version"] == "1.9.1"
    x = np.load(HELDOUT)["logmel"][:12][:, None]
    _exe_matches_onnxruntime(exe, ROOT / "demos/kws/model/kws.onnx", {"logmel": x}, tmp_path)
    bench = subprocess.run([str(exe), "--bench", "20", "--json"], capture_output=True, text=True)
    assert json.loads(bench.stdout)["runs"] == 20
    report = json.loads((tmp_path / "kws-mx.report.json").read_text())
    assert report["backend"]["parity"]["max_rel_diff"] <= 1e-4
    assert "onnx" not in " ".join(m for m in report.get("modules", []))


@pytest.mark.slow
def test_silent_error_model_is_rewritten_and_proven(tmp_path):
    path = tmp_path / "silent.onnx"
    onnx.save(silent_error_model(), path)
    exe = tmp_path / "silent-mx"
    edge("build", path, "--backend", "mxnet", "-o", exe)
    report = json.loads((tmp_path / "silent-mx.report.json").read_text())
    assert {"explicit-conv-pads", "softmax-as-2d"} <= set(report["backend"]["rewrites"])
    x = np.random.default_rng(3).standard_normal((4, 1, 3, 11, 9)).astype(np.float32)
    _exe_matches_onnxruntime(exe, path, {"x": x}, tmp_path)


@pytest.mark.slow
def test_cnn_runs_in_mxnet(models, tmp_path):
    src = models("trained-cnn")
    exe = tmp_path / "cnn-mx"
    edge("build", src, "--backend", "mxnet", "-o", exe)
    spec = onnx.load(src).graph.input[0]
    shape = [d.dim_value or 1 for d in spec.type.tensor_type.shape.dim]
    x = np.random.default_rng(4).standard_normal((6, *shape)).astype(np.float32)
    _exe_matches_onnxruntime(exe, src, {spec.name: x}, tmp_path)


@pytest.mark.slow
def test_parity_gate_names_the_first_diverging_node(tmp_path):
    """Without edgepack's rewrites, MXNet gets the 4-D Softmax wrong silently: the gate must say where."""
    from edge import targets
    from edge.backends.mxnet import BACKEND
    from edge.bundle import envs
    from edge.errors import BackendError

    env = envs.ensure(targets.get("x86_64"), lambda s: None, backend=BACKEND)
    m = silent_error_model()
    mxnet_rewrites.conv_kernel_shape(m)
    mxnet_rewrites.explicit_conv_pads(m)  # only the Softmax stays as the importer would get it wrong
    raw = onnx.ModelProto()
    raw.CopyFrom(m)
    mxnet_rewrites.apply(raw, mxnet_rewrites.IMPORTER_ONLY)
    onnx.save(raw, tmp_path / "raw.onnx")
    BACKEND._converter(env, ["convert", tmp_path / "raw.onnx", tmp_path / "raw"], "converting")
    feeds = [{"x": np.random.default_rng(i).standard_normal((1, 3, 11, 9)).astype(np.float32)} for i in range(3)]
    with pytest.raises(BackendError, match="first diverging node: softmax_4d"):
        BACKEND._parity(env, m, tmp_path / "raw", feeds, tmp_path)


@pytest.mark.slow
def test_importer_table_is_mxnets_own():
    from edge import targets
    from edge.backends.mxnet import BACKEND
    from edge.bundle import envs

    env = envs.ensure(targets.get("x86_64"), lambda s: None, backend=BACKEND)
    code = ("import numpy, json; from mxnet.contrib.onnx.onnx2mx._import_helper import _convert_map; "
            "print(json.dumps(sorted(_convert_map)))")
    r = subprocess.run([str(env.python), "-c", code], capture_output=True, text=True, check=True)
    assert set(json.loads(r.stdout.splitlines()[-1])) == set(mxnet_ops.SUPPORTED)


@pytest.mark.parametrize("args,code,words", [
    (["--quantize", "int8", "--calibration", str(ROOT / "demos/kws/model/calib.npz")], 12, "float ONNX graphs only"),
    (["--target", "rpi5", "--quantize", "int8", "--calibration", str(ROOT / "demos/kws/model/calib.npz")], 12,
     "float ONNX graphs only"),
])
def test_mxnet_refusals_come_before_any_work(tmp_path, args, code, words):
    r = edge("build", ROOT / "demos/kws/model/kws.onnx", "--backend", "mxnet", "-o", tmp_path / "x", *args,
             check=False)
    assert r.returncode == code and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("target", ["x86_64", "rpi4", "jetson-xavier"])
def test_unsupported_model_is_refused_by_the_build(models, tmp_path, target):
    r = edge("build", models("lstm"), "--backend", "mxnet", "--target", target, "-o", tmp_path / "x", check=False)
    # the LSTM's initial-state ConstantOfShape folds away; the LSTM itself remains
    assert r.returncode == 12 and "cannot take 1 node(s) that remain after the lossless passes: LSTM ×1 (" in r.stderr
    assert "--input-shape" not in r.stderr  # fixing shapes would not help: no hint
    assert not list(tmp_path.iterdir())


def test_a_board_file_naming_an_unknown_blas_is_refused_before_any_work(tmp_path):
    boards = tmp_path / "targets"
    boards.mkdir()
    text = (ROOT / "targets/rpi4.toml").read_text()
    (boards / "rpi4.toml").write_text(re.sub(r'^blas = ".*"$', 'blas = "mkl"', text, flags=re.M))
    out = tmp_path / "dist"
    out.mkdir()
    r = edge("build", ROOT / "demos/kws/model/kws.onnx", "--backend", "mxnet", "--target", "rpi4", "-o", out / "x",
             check=False, env={**os.environ, "EDGEPACK_TARGETS": str(boards)})
    assert r.returncode == 9 and "Traceback" not in r.stderr, r.stderr
    assert f"{boards / 'rpi4.toml'}: [mxnet] blas = 'mkl': choose one of reference, openblas" in r.stderr
    assert not list(out.iterdir())
