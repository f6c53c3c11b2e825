import json

import numpy as np

from tests.conftest import edge


def test_inspect_json_describes_a_pytorch_export(models):
    info = json.loads(edge("inspect", models("trained-cnn"), "--json").stdout)
    assert info["opsets"] == {"ai.onnx": 13}
    assert info["ir_version"] >= 7
    assert info["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 3, 16, 16]}]
    assert info["outputs"][0]["name"] == "probs"
    assert info["ops"]["Conv"] == 4 and info["ops"]["BatchNormalization"] == 3 and info["ops"]["Gemm"] == 2
    assert info["nodes"] == sum(info["ops"].values())
    # MACs by hand: conv1 16*16*16*27, dw 16*16*16*9, pw 32*16*16*16, conv 32*8*8*288, fc 512*64 + 64*4
    expected = 16 * 256 * 27 + 16 * 256 * 9 + 32 * 256 * 16 + 32 * 64 * 288 + 512 * 64 + 64 * 4
    assert info["macs"] == expected
    assert info["file_bytes"] == models("trained-cnn").stat().st_size


def test_inspect_counts_parameters_and_zero_share(models, tmp_path):
    # two_io: w1 8x16, b1 16, w2 4x16, w3 16x3, plus an unused 100-element initializer
    info = json.loads(edge("inspect", models("two-io"), "--json").stdout)
    assert info["parameters"] == 8 * 16 + 16 + 4 * 16 + 16 * 3 + 100
    assert info["zero_share"] == 0.0
    assert [i["shape"] for i in info["inputs"]] == [["batch", 8], ["batch", 4]]

    out = tmp_path / "pruned.onnx"
    edge("optimize", models("mlp"), "-o", out, "--prune-weights", "0.5")
    pruned = json.loads(edge("inspect", out, "--json").stdout)
    weights = 32 * 128 + 128 * 64 + 64 * 10
    assert abs(pruned["zero_weights"] - weights * 0.5) <= 3  # biases are not pruned
    assert np.isclose(pruned["zero_share"], pruned["zero_weights"] / pruned["parameters"], atol=1e-4)


def test_inspect_table_shows_shapes_and_ops(models):
    out = edge("inspect", models("two-io")).stdout
    assert "a: float32 [batch, 8]" in out
    assert "MatMul 2" in out and "Gemm 1" in out
