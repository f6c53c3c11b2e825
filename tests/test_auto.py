"""`--quantize auto` and `--prune-channels auto`: what the searches keep, checked independently with onnxruntime
and with plain `edge optimize` runs of the settings they chose."""

import json
import re

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.conftest import ROOT, edge, run_onnx
from tests.zoo import SENSITIVE_LAYER

DSCNN = ROOT / "demos/kws/model"


def _report(out):
    return json.loads(out.with_name(out.stem + ".report.json").read_text())


def _winner(search: dict) -> dict:
    return next(c for c in search["candidates"] if c["id"] == search["winner"])


def _accuracy(model, data_file, name="x") -> float:
    data = np.load(data_file)
    out = np.concatenate([run_onnx(model, {name: s[None]})[0] for s in data[name]])
    return float(np.mean(out.argmax(1) == data["labels"]))


def _float_weight_nodes(path) -> set[str]:
    """Conv/Gemm nodes whose weight is a float initializer (not read through a DequantizeLinear)."""
    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    return {n.name for n in m.graph.node if n.op_type in ("Conv", "Gemm") and inits.get(n.input[1]) is not None
            and inits[n.input[1]].dtype == np.float32}


def _plain_int8(src, cal, ev, out, settings: dict, limit: float, exclude=()):
    """The chosen settings run as a plain `--quantize int8`: the independent check of a search's claim."""
    args = ["optimize", src, "-o", out, "--quantize", "int8", "--calibration", cal, "--eval", ev,
            "--calibration-method", settings["method"], "--activations", settings["activations"],
            "--max-accuracy-drop", limit]
    return edge(*args, *(["--exclude-nodes", ",".join(exclude)] if exclude else []), check=False)


@pytest.mark.slow
def test_auto_keeps_exactly_the_sensitive_layer_in_float(models, tmp_path):
    src = models("sensitive-cnn")
    cal, ev = src.parent / "calibration.npz", src.parent / "eval.npz"
    out = tmp_path / "auto.onnx"
    edge("optimize", src, "-o", out, "--quantize", "auto", "--calibration", cal, "--eval", ev,
         "--max-accuracy-drop", "1")
    search = _report(out)["searches"][0]
    winner = _winner(search)
    assert winner["settings"]["float_nodes"] == [SENSITIVE_LAYER] and winner["meets"]
    assert search["sensitivity"][0]["node"] == SENSITIVE_LAYER  # the error it adds ranks it first
    assert _float_weight_nodes(out) == {SENSITIVE_LAYER}  # every other Conv/Gemm reads int8 weights
    # it reads a MaxPool of int8 data: guarded, or onnxruntime would quantize its weights when loading it
    guards = [n.name for n in onnx.load(str(out)).graph.node if n.op_type == "Max"]
    assert guards == [f"{SENSITIVE_LAYER}/keep_float"]
    reference = _accuracy(src, ev)
    assert _accuracy(out, ev) >= reference - 0.01
    # quantizing everything with the same settings loses far more than the limit: the float layer is needed
    r = _plain_int8(src, cal, ev, tmp_path / "all.onnx", winner["settings"], 1)
    assert r.returncode == 7 and "accuracy dropped by" in r.stderr
    assert not (tmp_path / "all.onnx").exists()


@pytest.mark.slow
def test_auto_on_the_demo_dscnn_keeps_only_what_the_limit_needs(tmp_path):
    """The demo's DS-CNN on its held-out speakers (demos/kws/model: 72 labelled clips). Whatever the search keeps in
    float must be needed: each kept node, quantized too, crosses the limit; with nothing kept, all-int8 meets it."""
    src, cal, ev = DSCNN / "kws.onnx", DSCNN / "calib.npz", DSCNN / "heldout.npz"
    out = tmp_path / "kws.auto.onnx"
    edge("optimize", src, "-o", out, "--quantize", "auto", "--calibration", cal, "--eval", ev,
         "--max-accuracy-drop", "1", "--search-budget", "30")
    report = _report(out)
    winner = _winner(report["searches"][0])
    kept = winner["settings"]["float_nodes"]
    assert report["evaluation"]["drop_pp"] <= 1 and winner["meets"]
    assert _accuracy(out, ev, "logmel") >= _accuracy(src, ev, "logmel") - 0.01
    if not kept:
        r = _plain_int8(src, cal, ev, tmp_path / "all.onnx", winner["settings"], 1)
        assert r.returncode == 0, r.stderr
    for node in kept:
        r = _plain_int8(src, cal, ev, tmp_path / "less.onnx", winner["settings"], 1, [n for n in kept if n != node])
        assert r.returncode == 7, f"{node} was kept in float but is not needed"


def test_an_impossible_limit_is_refused_with_the_best_candidate_named(models, tmp_path):
    src = models("fragile-mlp")  # every Gemm breaks in int8 on its own: no int8 model keeps the limit
    data = src.parent / "data.npz"  # no labels: top-1 agreement with the float model
    r = edge("optimize", src, "-o", tmp_path / "q.onnx", "--quantize", "auto", "--calibration", data, "--eval", data,
             "--max-accuracy-drop", "5", check=False)
    assert r.returncode == 7, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "no candidate keeps top-1 agreement within --max-accuracy-drop 5" in line
    assert re.search(r"the best of \d+ candidates, #\d+ \(.+\), lost [\d.]+ points", line) and "nothing written" in line
    assert list(tmp_path.iterdir()) == []


def test_search_budget_in_candidates_stops_the_search(models, tmp_path):
    src = models("sensitive-cnn")
    r = edge("optimize", src, "-o", tmp_path / "q.onnx", "--quantize", "auto", "--calibration",
             src.parent / "calibration.npz", "--eval", src.parent / "eval.npz", "--max-accuracy-drop", "1",
             "--search-budget", "3", check=False)
    assert r.returncode == 7 and "budget of 3 candidates used" in r.stderr
    assert r.stderr.count("quantize search: candidate") == 3 and "candidate 3 of ≤3" in r.stderr


@pytest.mark.parametrize("args, words", [
    (["--quantize", "auto", "--calibration", "{cal}"], "--quantize auto needs --eval DATA"),
    (["--quantize", "auto", "--calibration", "{cal}", "--eval", "{ev}", "--max-accuracy-drop", "1",
      "--search-budget", "soon"], "--search-budget: 'soon'"),
    (["--prune-channels", "most", "--eval", "{ev}"], "'most' is not a number"),
])
def test_auto_usage_errors_are_one_line(models, tmp_path, args, words):
    src = models("trained-cnn")
    args = [a.format(cal=src.parent / "calibration.npz", ev=src.parent / "eval.npz") for a in args]
    r = edge("optimize", src, "-o", tmp_path / "q.onnx", *args, check=False)
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_prune_channels_auto_then_quantize_auto(models, tmp_path):
    src = models("trained-cnn")
    ev = src.parent / "eval.npz"
    pruned = tmp_path / "pruned.onnx"
    edge("optimize", src, "-o", pruned, "--prune-channels", "auto", "--eval", ev, "--max-accuracy-drop", "2")
    report = _report(pruned)
    search = report["searches"][0]
    winner = _winner(search)
    assert search["kind"] == "prune-channels" and winner["meets"] and winner["settings"]["ratio"] >= 0.1
    prune = next(p for p in report["passes"] if p["name"] == "prune-channels")
    assert prune["macs_after"] < prune["macs_before"]
    assert _accuracy(pruned, ev) >= _accuracy(src, ev) - 0.02
    # both: pruning gets half the limit, quantization the rest, both measured against the original
    both = tmp_path / "both.onnx"
    edge("optimize", src, "-o", both, "--prune-channels", "auto", "--quantize", "auto", "--calibration",
         src.parent / "calibration.npz", "--eval", ev, "--max-accuracy-drop", "2")
    report = _report(both)
    assert [s["kind"] for s in report["searches"]] == ["prune-channels", "quantize"]
    assert report["searches"][0]["max_drop_pp"] == 1 and report["searches"][1]["max_drop_pp"] == 2
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(str(both)).graph.node}
    assert report["evaluation"]["drop_pp"] <= 2
    assert _accuracy(both, ev) >= _accuracy(src, ev) - 0.02


def test_search_eval_keeps_the_choice_off_the_evaluation_data(models, tmp_path):
    src = models("trained-cnn")
    out = tmp_path / "q.onnx"
    cal = src.parent / "calibration.npz"  # no labels: the search judges top-1 agreement there
    edge("optimize", src, "-o", out, "--quantize", "auto", "--calibration", cal, "--search-eval", cal,
         "--eval", src.parent / "eval.npz", "--max-accuracy-drop", "1", "--search-budget", "4")
    report = _report(out)
    search = report["searches"][0]
    assert search["data"] == str(cal) and search["basis"] == "top-1 agreement" and search["samples"] == 200
    assert report["evaluation"]["data"] == str(src.parent / "eval.npz") and report["evaluation"]["drop_basis"] == \
        "accuracy"


def test_int8_activations_follow_the_target_board(models, tmp_path):
    """U8S8 on x86_64 (fast there), S8S8 for the ARM boards: the zero points' type says which."""
    src = models("trained-cnn")
    for target, dtype in (("x86_64", np.uint8), ("rpi4", np.int8)):
        out = tmp_path / f"{target}.onnx"
        edge("optimize", src, "-o", out, "--quantize", "int8", "--calibration", src.parent / "calibration.npz",
             "--target", target)
        m = onnx.load(str(out))
        inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
        zero_points = [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear"]
        assert zero_points and all(z.dtype == dtype for z in zero_points), target
        assert _report(out)["passes"][-1]["activations"] == np.dtype(dtype).name


def test_auto_for_an_arm_board_measures_its_activation_type_and_chooses_by_size(models, tmp_path):
    """Built on x86_64 for rpi4: latency here is not the board's, so S8S8 only (the board's) and the smallest
    candidate within the limit wins; the report says why."""
    src = models("sensitive-cnn")
    out = tmp_path / "rpi4.onnx"
    edge("optimize", src, "-o", out, "--target", "rpi4", "--quantize", "auto", "--calibration",
         src.parent / "calibration.npz", "--eval", src.parent / "eval.npz", "--max-accuracy-drop", "1")
    search = _report(out)["searches"][0]
    assert not search["by_latency"] and "not on the rpi4 board" in search["latency_note"]
    assert {c["settings"]["activations"] for c in search["candidates"]} == {"int8"}
    within = [c for c in search["candidates"] if c["meets"]]
    assert _winner(search)["size_bytes"] == min(c["size_bytes"] for c in within)
    assert "the smallest of the" in search["why"]


@pytest.mark.slow
def test_build_with_quantize_auto_ships_the_chosen_model(models, tmp_path):
    src = models("sensitive-cnn")
    exe = tmp_path / "sens"
    edge("build", src, "-o", exe, "--quantize", "auto", "--calibration", src.parent / "calibration.npz",
         "--eval", src.parent / "eval.npz", "--max-accuracy-drop", "1")
    report = json.loads((tmp_path / "sens.report.json").read_text())
    search = report["optimize"]["searches"][0]
    assert _winner(search)["settings"]["float_nodes"] == [SENSITIVE_LAYER]
    assert report["verification"]["passed"] and "Search 1: quantize" in (tmp_path / "sens.report.html").read_text()
    data = np.load(src.parent / "eval.npz")
    np.save(tmp_path / "x.npy", data["x"][:50])
    edge("run", exe, "--input", f"x={tmp_path / 'x.npy'}", "--output", tmp_path / "y.npz")
    assert np.mean(np.load(tmp_path / "y.npz")["logits"].argmax(1) == data["labels"][:50]) >= 0.98
