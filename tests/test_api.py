"""The Python API (edge.inspect / edge.optimize / edge.build): the same work as the CLI, typed options,
reports as results, one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

import edge
from edge.errors import UsageError
from tests.conftest import ROOT, rel_diff, run_onnx


def test_import_edge_stays_light():
    code = "import sys, edge; print(sorted(m for m in ('onnx', 'onnxruntime', 'numpy') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert r.stdout.strip() == "[]"


def test_inspect_matches_the_cli(models):
    path = models("paddle-dynamic")
    info = edge.inspect(path, input_shapes={"x": [1, 3, 16, 16]}, backend="mxnet")
    cli = json.loads(subprocess.run([sys.executable, "-m", "edge", "inspect", path, "--json", "--input-shape",
                                     "x=1,3,16,16", "--backend", "mxnet"], capture_output=True, text=True,
                                    cwd=ROOT, check=True).stdout)
    assert info == cli
    assert info["macs"] > 0 and info["backend_check"]["blocking"] == []


def test_optimize_returns_the_report_it_writes(models, tmp_path):
    src = models("trained-cnn")
    out = tmp_path / "m.int8.onnx"
    report = edge.optimize(src, out, quantize="int8", calibration=str(src.parent / "calibration.npz"),
                           eval=src.parent / "eval.npz", max_accuracy_drop=2)
    assert report == json.loads(out.with_name("m.int8.report.json").read_text())
    assert report["evaluation"]["drop_pp"] <= 2 and report["passes"][-1]["name"] == "quantize-int8"
    x = np.load(src.parent / "eval.npz")["x"][:8]
    assert rel_diff(run_onnx(src, {"x": x})[0], run_onnx(out, {"x": x})[0]) < 0.1


def test_an_unknown_option_is_named_with_the_known_ones(models, tmp_path):
    with pytest.raises(UsageError, match="unknown option\\(s\\) quantise; known: .*quantize"):
        edge.optimize(models("mlp"), tmp_path / "o.onnx", quantise="int8")
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_build_returns_the_report_and_the_executable_runs(models, tmp_path):
    exe = tmp_path / "dist" / "mlp"
    lines = []
    report = edge.build(models("mlp"), exe, "x86_64", optimize={"prune_weights": 0.25}, progress=lines.append)
    assert report["verification"]["passed"] and exe.is_file()
    assert any("verified" in ln for ln in lines)
    assert report["optimize"]["passes"][-1]["name"] == "prune-weights"
    x = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([exe, tmp_path / "x.npy", "--json"], capture_output=True, text=True, check=True)
    got = np.array(json.loads(r.stdout)["logits"]["data"], np.float32)
    ref = run_onnx(models("mlp"), {"features": x})[0]
    assert np.argmax(got) == np.argmax(ref)
