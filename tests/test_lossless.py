"""Lossless graph pruning keeps the function: max |diff| <= 1e-4 relative, on random and given inputs."""

import json

import numpy as np
import onnx
import pytest

from tests.conftest import edge, rel_diff, run_onnx

CASES = {
    "trained-cnn": {"x": (2, 3, 16, 16)},
    "mlp": {"features": (3, 32)},
    "lstm": {"frames": (2, 7, 20)},
    "gru": {"frames": (1, 12, 20)},
    "two-io": {"a": (2, 8), "b": (2, 4)},
    "tf-like": {"input:0": (2, 16, 16, 3)},
    "paddle-like": {"input:0": (1, 16, 16, 3)},
}


def _check_parity(src, out, shapes, seeds=(0, 1, 2)):
    for seed in seeds:
        rng = np.random.default_rng(seed)
        feed = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
        for a, b in zip(run_onnx(src, feed), run_onnx(out, feed)):
            assert a.shape == b.shape
            assert rel_diff(a, b) <= 1e-4


@pytest.mark.parametrize("name", CASES)
def test_lossless_keeps_outputs_and_removes_clutter(models, tmp_path, name):
    src = models(name)
    out = tmp_path / "out.onnx"
    extra = []
    if name in ("lstm", "gru"):  # dynamic time axis: sample data gives it a size and keeps it dynamic
        data = tmp_path / "frames.npz"
        np.savez(data, frames=np.random.default_rng(9).standard_normal((4, 1, 9, 20)).astype(np.float32))
        extra = ["--eval", data]
    edge("optimize", src, "-o", out, *extra)
    before, after = onnx.load(str(src)), onnx.load(str(out))
    ops = [n.op_type for n in after.graph.node]
    for clutter in ("Identity", "Dropout", "Constant", "BatchNormalization"):
        assert clutter not in ops, f"{clutter} left in {name}"
    assert len(after.graph.node) <= len(before.graph.node)
    # dynamic dimensions stay dynamic, so other batch sizes and sequence lengths still run
    _check_parity(src, out, CASES[name])
    report = json.loads(out.with_name("out.report.json").read_text())
    assert report["evaluation"]["parity"]["max_rel_diff"] <= 1e-4
    assert [p["name"] for p in report["passes"]] == ["clean-inputs", "onnxoptimizer", "fold-constants", "infer-shapes"]


def _ends_quick(opsets: list[int]) -> list:
    """The oldest and newest opset in the fast tier; those between in the full suite."""
    return [o if o in (opsets[0], opsets[-1]) else pytest.param(o, marks=pytest.mark.slow) for o in opsets]


@pytest.mark.parametrize("opset", _ends_quick([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]))
def test_converter_style_exports_across_opsets(models, tmp_path, opset):
    src = models("tf-like", opset)
    out = tmp_path / "out.onnx"
    edge("optimize", src, "-o", out)
    after = onnx.load(str(out))
    assert len(onnx.load(str(src)).graph.node) > 270
    assert len(after.graph.node) <= 12  # 200 dead constants, 60 identities and the dead branch are gone
    assert after.opset_import[0].version == opset
    _check_parity(src, out, {"input:0": (3, 16, 16, 3)})


@pytest.mark.parametrize("opset", _ends_quick([11, 13, 17, 18, 20]))
def test_pytorch_exports_across_opsets(models, tmp_path, opset):
    src = models("trained-cnn", opset)
    out = tmp_path / "out.onnx"
    edge("optimize", src, "-o", out)
    _check_parity(src, out, {"x": (4, 3, 16, 16)})


def test_parity_on_given_data(models, tmp_path):
    src = models("trained-cnn")
    out = tmp_path / "out.onnx"
    ev = src.parent / "eval.npz"
    edge("optimize", src, "-o", out, "--eval", ev)
    x = np.load(ev)["x"][:64]
    for a, b in zip(run_onnx(src, {"x": x}), run_onnx(out, {"x": x})):
        assert rel_diff(a, b) <= 1e-4
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["evaluation"]["samples"] == 500 and report["evaluation"]["comparison"]["top1_agreement"] == 1.0


def test_cut_to_an_intermediate_output(models, tmp_path):
    src = models("two-io")
    out = tmp_path / "cut.onnx"
    edge("optimize", src, "-o", out, "--outputs", "s")
    cut = onnx.load(str(out))
    assert [o.name for o in cut.graph.output] == ["s"]
    assert {i.name for i in cut.graph.input} == {"a", "b"}
    assert "Softmax" not in {n.op_type for n in cut.graph.node}
    # reference: the same tensor taken from the full model
    full = onnx.load(str(src))
    full.graph.output.append(onnx.helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, None))
    rng = np.random.default_rng(0)
    feed = {"a": rng.standard_normal((1, 8)).astype(np.float32), "b": rng.standard_normal((1, 4)).astype(np.float32)}
    assert rel_diff(run_onnx(full, feed)[-1], run_onnx(out, feed)[0]) <= 1e-6


def test_cut_from_an_intermediate_input(models, tmp_path):
    out = tmp_path / "tail.onnx"
    edge("optimize", models("two-io"), "-o", out, "--inputs", "s", "--outputs", "probs")
    tail = onnx.load(str(out))
    assert [i.name for i in tail.graph.input] == ["s"]
    assert {n.op_type for n in tail.graph.node} == {"MatMul", "Softmax"}


def test_input_shape_fixes_dynamic_dimensions(models, tmp_path):
    out = tmp_path / "fixed.onnx"
    edge("optimize", models("lstm"), "-o", out, "--input-shape", "frames=1,30,20")
    dims = [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 30, 20]
    _check_parity(models("lstm"), out, {"frames": (1, 30, 20)})


def test_unused_and_initializer_inputs_are_removed(models, tmp_path):
    src = models("paddle-like")  # BatchNorm parameters listed as graph inputs, as old exporters do
    assert len(onnx.load(str(src)).graph.input) == 5
    out = tmp_path / "out.onnx"
    edge("optimize", src, "-o", out)
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["input:0"]
    report = json.loads((tmp_path / "out.report.json").read_text())
    clean = report["passes"][0]
    assert clean["name"] == "clean-inputs" and clean["initializers_no_longer_inputs"] == 4


def test_stale_shapes_left_by_an_exporter_are_recomputed(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["r"]), helper.make_node("Relu", ["r"], ["y"])],
                          "stale", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.graph.value_info.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 5]))  # wrong
    src, out = tmp_path / "stale.onnx", tmp_path / "out.onnx"
    onnx.save(model, str(src))
    edge("optimize", src, "-o", out)
    shapes = {vi.name: [d.dim_value or d.dim_param for d in vi.type.tensor_type.shape.dim]
              for vi in onnx.load(str(out)).graph.value_info}
    assert shapes.get("r", ["N", 4]) == ["N", 4]
    onnx.shape_inference.infer_shapes(onnx.load(str(out)), strict_mode=True)  # consistent now


def test_no_stray_files_in_the_working_folder(models, tmp_path):
    # onnxruntime's symbolic shape inference gives up on DynamicQuantizeLSTM and then writes
    # sym_shape_infer_temp.onnx + a .data file into the current folder; edge runs it in a scratch folder
    import subprocess
    import sys

    np.savez(tmp_path / "frames.npz", frames=np.ones((2, 1, 12, 20), np.float32))
    subprocess.run([sys.executable, "-m", "edge", "optimize", str(models("lstm")), "-o", "out.onnx", "--quantize",
                    "int8-dynamic", "--eval", "frames.npz"], cwd=tmp_path, check=True, capture_output=True)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["frames.npz", "out.onnx", "out.report.html", "out.report.json"]
