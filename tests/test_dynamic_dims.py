"""Models written the way PaddlePaddle writes them: dynamic dimensions as `dim_value: -1` (inputs, outputs) and
`dim_value: 0` (value_info), weights as Constant nodes, a Shape→Slice→Concat→Reshape flatten at opset 11.
The reference is the same trained network exported by PyTorch with named dynamic dimensions."""

import json
import subprocess

import numpy as np
import onnx
import pytest

from tests.conftest import edge, rel_diff, run_onnx

SHAPE = "x=1,3,16,16"
TOLERANCE = 1e-4  # relative to max(1, max |reference|), as the pipeline's parity gate


@pytest.fixture(scope="module")
def paddle(models):
    return models("paddle-dynamic")


def _eval(paddle):
    with np.load(paddle.parent / "eval.npz") as z:
        return z["x"], z["labels"]


def _reference(paddle, x):
    return run_onnx(paddle.parent / "torch" / "model.onnx", {"x": x})[0]


def _dims(model: onnx.ModelProto) -> list[tuple[str, list]]:
    g = model.graph
    return [(v.name, [d.dim_value if d.HasField("dim_value") else d.dim_param for d in v.type.tensor_type.shape.dim])
            for v in [*g.input, *g.output, *g.value_info]]


def test_the_model_is_written_like_paddle(paddle):
    m = onnx.load(paddle)
    dims = dict(_dims(m))
    assert dims["x"] == [-1, 3, -1, -1] and dims["probs"] == [-1, 4]
    assert any(0 in d for name, d in dims.items() if name not in ("x", "probs"))
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("Constant") >= 100 and {"Shape", "Slice", "Concat", "Reshape"} <= set(ops)
    assert m.opset_import[0].version == 11 and not m.graph.initializer


def test_inspect_shows_minus_one_and_zero_as_dynamic(paddle):
    info = json.loads(edge("inspect", paddle, "--json").stdout)
    assert info["inputs"][0]["shape"] == ["x_d0", 3, "x_d2", "x_d3"]
    assert info["outputs"][0]["shape"] == ["probs_d0", 4]
    assert info["macs"] is None
    sized = json.loads(edge("inspect", paddle, "--json", "--input-shape", SHAPE).stdout)
    assert sized["macs"] > 0


def test_lossless_optimize_at_a_fixed_shape_folds_the_shape_chain(paddle, tmp_path):
    out = tmp_path / "opt.onnx"
    edge("optimize", paddle, "-o", out, "--input-shape", SHAPE)
    report = json.loads(out.with_name("opt.report.json").read_text())
    passes = {p["name"]: p for p in report["passes"]}
    assert passes["fold-constants"]["status"] == "applied" and passes["fold-constants"]["tool"] == "onnxsim"
    m = onnx.load(out)
    assert not {"Constant", "Shape", "Slice", "Concat"} & {n.op_type for n in m.graph.node}
    for name, dims in _dims(m):
        assert all(isinstance(d, int) and d > 0 for d in dims), (name, dims)  # fixed everywhere
    x, _ = _eval(paddle)
    assert rel_diff(_reference(paddle, x[:1]), run_onnx(out, {"x": x[:1]})[0]) <= TOLERANCE


def test_dynamic_sizes_come_from_the_eval_data(paddle, tmp_path):
    out = tmp_path / "opt.onnx"
    edge("optimize", paddle, "-o", out, "--eval", paddle.parent / "eval.npz")
    report = json.loads(out.with_name("opt.report.json").read_text())
    assert report["evaluation"]["samples"] == 500 and report["evaluation"]["original"]["accuracy"] >= 0.9
    m = onnx.load(out)
    for name, dims in _dims(m):  # dynamic dimensions stay dynamic, by name: no -1 or 0 left
        assert all((isinstance(d, int) and d > 0) or (isinstance(d, str) and d) for d in dims), (name, dims)
    x, _ = _eval(paddle)
    assert rel_diff(_reference(paddle, x[:7]), run_onnx(out, {"x": x[:7]})[0]) <= TOLERANCE  # any batch


def test_without_the_lossless_passes_no_minus_one_is_left_either(paddle, tmp_path):
    out = tmp_path / "plain.onnx"
    edge("optimize", paddle, "-o", out, "--no-lossless", "--eval", paddle.parent / "eval.npz")
    dims = dict(_dims(onnx.load(out)))
    assert dims["x"] == ["x_d0", 3, "x_d2", "x_d3"] and dims["probs"] == ["probs_d0", 4]
    assert all((isinstance(d, int) and d > 0) or d for v in dims.values() for d in v), dims
    x, _ = _eval(paddle)
    assert rel_diff(_reference(paddle, x[:3]), run_onnx(out, {"x": x[:3]})[0]) <= TOLERANCE


def test_a_size_nobody_gave_is_named(paddle, tmp_path):
    r = edge("optimize", paddle, "-o", tmp_path / "o.onnx", check=False)
    assert r.returncode == 5 and "Traceback" not in r.stderr
    assert "input 'x' dimension 2 ('x_d2') is dynamic and needs a value: give it with --input-shape x=1,3,D2,D3" \
        in r.stderr
    assert not list(tmp_path.iterdir())


def test_int8_with_calibration(paddle, tmp_path):
    out = tmp_path / "int8.onnx"
    edge("optimize", paddle, "-o", out, "--input-shape", SHAPE, "--quantize", "int8", "--calibration",
         paddle.parent / "calibration.npz", "--eval", paddle.parent / "eval.npz", "--max-accuracy-drop", "2")
    ev = json.loads(out.with_name("int8.report.json").read_text())["evaluation"]
    assert ev["drop_pp"] <= 2 and ev["optimized"]["accuracy"] >= 0.9
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(out).graph.node}


def _exe_outputs(exe, x, tmp_path):
    np.savez(tmp_path / "s.npz", x=x[:, None])
    r = subprocess.run([str(exe), "--samples", tmp_path / "s.npz", "--output", tmp_path / "o.npz"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return np.load(tmp_path / "o.npz")["probs"][:, 0]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnxruntime", "mxnet"])
def test_build_at_a_fixed_shape(paddle, tmp_path, backend):
    exe = tmp_path / "dist" / "paddle"
    r = edge("build", paddle, "--backend", backend, "--input-shape", SHAPE, "-o", exe, "--eval",
             paddle.parent / "eval.npz")
    assert "verified: 8 samples" in r.stderr
    report = json.loads(exe.with_name("paddle.report.json").read_text())
    assert report["manifest"]["inputs"][0]["shape"] == [1, 3, 16, 16]
    x, _ = _eval(paddle)
    assert rel_diff(_reference(paddle, x[:12]), _exe_outputs(exe, x[:12], tmp_path)) <= TOLERANCE


def test_mxnet_preflight_judges_the_graph_after_the_lossless_passes(paddle, tmp_path):
    # without a fixed shape the Shape→Slice chain cannot fold: refused, with the flag that fixes it
    r = edge("inspect", paddle, "--backend", "mxnet", check=False)
    assert r.returncode == 12
    assert "slice_0 (Slice)" in r.stdout and "2 remain, 2 block the conversion" in r.stdout
    assert "--input-shape x=1,3,D2,D3" in r.stderr
    # with it, both listed nodes are removed by the passes and nothing blocks
    r = edge("inspect", paddle, "--backend", "mxnet", "--input-shape", SHAPE, "--json")
    check = json.loads(r.stdout)["backend_check"]
    assert {p["node"]: p["removed_by_lossless_passes"] for p in check["problems"]} == \
        {"slice_0": True, "reshape_0": True}
    assert check["after_lossless_passes"] == [] and check["blocking"] == []
    # and on the pipeline's output there is nothing left to say
    out = tmp_path / "opt.onnx"
    edge("optimize", paddle, "-o", out, "--input-shape", SHAPE)
    assert "0 node(s) need attention" in edge("inspect", out, "--backend", "mxnet").stdout


def test_mxnet_build_without_a_fixed_shape_is_refused_before_any_work(paddle, tmp_path):
    r = edge("build", paddle, "--backend", "mxnet", "-o", tmp_path / "x", "--eval", paddle.parent / "eval.npz",
             check=False)
    assert r.returncode == 12 and "Traceback" not in r.stderr
    assert "remain after the lossless passes: Slice ×1 (slice_0)" in r.stderr
    assert "--input-shape x=1,3,D2,D3" in r.stderr
    assert "build environment" not in r.stderr and not list(tmp_path.iterdir())
