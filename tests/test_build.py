"""`edge build`: real PyInstaller executables, run as subprocesses, compared with onnxruntime here."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT, edge, rel_diff, run_onnx

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_io_exe(models, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "twoio"
    edge("build", models("two-io"), "--target", "x86_64", "-o", out)
    return out


@pytest.fixture(scope="module")
def int8_exe(models, two_io_exe, tmp_path_factory):
    # after another build for this target in the same cache (two_io_exe): its report must say the environment was
    # reused, whichever tests were selected
    src = models("trained-cnn")
    out = tmp_path_factory.mktemp("dist") / "cnn-int8"
    edge("build", src, "-o", out, "--quantize", "int8", "--calibration", src.parent / "calibration.npz",
         "--eval", src.parent / "eval.npz", "--max-accuracy-drop", "1")
    return out


def _run(exe, *args):
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.quick  # the fast tier's one real build
def test_two_inputs_two_outputs_match_onnxruntime(models, two_io_exe, tmp_path):
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((1, 8)).astype(np.float32), rng.standard_normal((1, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    r = _run(two_io_exe, "--input", f"a={tmp_path / 'a.npy'}", "--input", f"b={tmp_path / 'b.npy'}",
             "--output", tmp_path / "out.npz")
    assert r.returncode == 0, r.stderr
    ref = run_onnx(models("two-io"), {"a": a, "b": b})
    with np.load(tmp_path / "out.npz") as z:
        assert sorted(z.files) == ["probs", "sum"]
        assert rel_diff(ref[0], z["sum"]) <= 1e-4 and rel_diff(ref[1], z["probs"]) <= 1e-4
    js = json.loads(_run(two_io_exe, "--input", f"a={tmp_path / 'a.npy'}", "--input", f"b={tmp_path / 'b.npy'}",
                         "--json").stdout)
    assert rel_diff(ref[1], np.array(js["probs"]["data"], np.float32)) <= 1e-4
    assert js["probs"]["shape"] == [1, 3]


def test_info_prints_the_manifest(models, two_io_exe):
    info = json.loads(_run(two_io_exe, "--info").stdout)
    assert info["name"] == "twoio" and info["target"]["name"] == "x86_64"
    assert [i["name"] for i in info["inputs"]] == ["a", "b"] and [o["name"] for o in info["outputs"]] == ["sum",
                                                                                                          "probs"]
    assert info["inputs"][0] == {"name": "a", "dtype": "float32", "shape": ["batch", 8]}
    assert info["backend"]["name"] == "onnxruntime" and info["backend"]["version"].count(".") == 2
    assert len(info["model"]["sha256"]) == 64 and info["edgepack"] and info["built"]
    assert "onnxoptimizer" in info["optimization"]["passes"]


def test_report_lists_components_and_nothing_host_side(two_io_exe):
    report = json.loads(two_io_exe.with_name("twoio.report.json").read_text())
    comps = report["components"]
    assert {"python", "numpy", "runtime backend", "model"} <= set(comps)
    assert report["bytes"] == two_io_exe.stat().st_size
    assert sum(comps.values()) <= report["bytes"]
    assert report["verification"]["passed"] and report["verification"]["max_rel_diff"] <= 1e-4
    env_python = os.path.join(report["build_env"]["path"], "bin", "python")
    from edge.bundle import contents
    from edge.bundle.envs import BuildEnv

    inside = contents.inspect(BuildEnv(None, env_python, False, 0, {}), two_io_exe)
    modules = inside["modules"]
    assert "edge.runtime.cli" in modules and "onnxruntime" in modules
    for banned in ("onnx", "onnxruntime.quantization", "PyInstaller", "edge.pipeline", "edge.passes", "rich"):
        assert not any(m == banned or m.startswith(banned + ".") for m in modules), banned
    assert {"optimize", "build environment", "PyInstaller", "verify"} <= set(report["step_seconds"])
    glibc = report["glibc"]
    assert glibc["ok"] and glibc["elf_files"] > 20 and glibc["wrong_arch"] == []
    assert tuple(map(int, glibc["glibc_needed"].split("."))) <= (2, 36)


@pytest.mark.parametrize("args, words", [
    (["--input", "a=A", "--input", "b=B"], ["input 'a' has shape [1, 5]", "a: float32[batch, 8]"]),
    (["--input", "a=C", "--input", "b=B"], ["input 'a' is int64", "b: float32[batch, 4]"]),
    (["--input", "x=A", "--input", "b=B"], ["unknown input 'x'", "missing input 'a'"]),
    (["A"], ["give NAME=FILE.npy"]),
])
def test_wrong_inputs_give_one_line_and_exit_2(two_io_exe, tmp_path, args, words):
    np.save(tmp_path / "A.npy", np.ones((1, 5), np.float32))
    np.save(tmp_path / "B.npy", np.ones((1, 4), np.float32))
    np.save(tmp_path / "C.npy", np.ones((1, 8), np.int64))
    r = _run(two_io_exe, *[a.replace("A", str(tmp_path / "A.npy")).replace("B", str(tmp_path / "B.npy"))
                           .replace("C", str(tmp_path / "C.npy")) for a in args])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0]


def test_int8_executable_matches_the_optimized_model(models, int8_exe, tmp_path):
    src = models("trained-cnn")
    ref_model = tmp_path / "ref.onnx"
    edge("optimize", src, "-o", ref_model, "--quantize", "int8", "--calibration", src.parent / "calibration.npz")
    x = np.load(src.parent / "eval.npz")["x"][:20]
    np.savez(tmp_path / "s.npz", x=x[:, None])
    r = _run(int8_exe, "--samples", tmp_path / "s.npz", "--output", tmp_path / "o.npz")
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "o.npz")["probs"][:, 0]
    assert rel_diff(run_onnx(ref_model, {"x": x})[0], got) <= 1e-4
    assert np.mean(run_onnx(src, {"x": x})[0].argmax(1) == got.argmax(1)) >= 0.95
    one = tmp_path / "one.npy"
    np.save(one, x[:1])
    single = json.loads(_run(int8_exe, one, "--json").stdout)  # bare path: the model has one input
    assert rel_diff(got[0], np.array(single["probs"]["data"][0], np.float32)) <= 1e-4
    report = json.loads(int8_exe.with_name("cnn-int8.report.json").read_text())
    assert report["optimize"]["passes"][-1]["name"] == "quantize-int8"
    assert report["build_env"]["reused"] is True  # the second build for this target in this session


def test_bench_prints_latency_statistics(int8_exe):
    r = _run(int8_exe, "--bench", "20", "--threads", "1")
    stats = json.loads(r.stdout)
    assert stats["runs"] == 20 and stats["threads"] == 1
    assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"]


def test_onedir_build(models, tmp_path):
    out = tmp_path / "dist" / "mlp"
    edge("build", models("mlp"), "-o", out, "--onedir")
    assert (out / "mlp").is_file() and (out / "_internal").is_dir()
    x = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = _run(out / "mlp", tmp_path / "x.npy", "--output", tmp_path / "o.npz")
    assert r.returncode == 0, r.stderr
    assert rel_diff(run_onnx(models("mlp"), {"features": x})[0], np.load(tmp_path / "o.npz")["logits"]) <= 1e-4


def _fails(tmp_path, args, code, words, env=None):
    out = tmp_path / "dist" / "exe"
    r = subprocess.run([sys.executable, "-m", "edge", "build", *map(str, args), "-o", str(out)], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=900)
    assert r.returncode == code, r.stderr
    err = [x for x in r.stderr.splitlines() if x.startswith("edge: error:")]
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    assert not out.exists()
    assert not (tmp_path / "dist").exists() or list((tmp_path / "dist").iterdir()) == []
    return r.stderr


def test_unknown_target(models, tmp_path):
    _fails(tmp_path, [models("mlp"), "--target", "pi9"], 9, ["unknown target 'pi9'", "x86_64"])


def test_model_that_fails_optimize(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("nope")
    _fails(tmp_path, [bad], 3, [str(bad), "not an ONNX model"])


def test_output_not_writable(models, tmp_path):
    (tmp_path / "file").write_text("")
    r = subprocess.run([sys.executable, "-m", "edge", "build", str(models("mlp")), "-o",
                        str(tmp_path / "file" / "exe")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 8 and "cannot create folder" in r.stderr


def _target_dir(tmp_path, own_cache=True, **changes):
    text = (ROOT / "targets" / "x86_64.toml").read_text()
    for old, new in changes.items():
        text = text.replace(old, new)
    d = tmp_path / "targets"
    d.mkdir()
    (d / "x86_64.toml").write_text(text)
    env = {**os.environ, "EDGEPACK_TARGETS": str(d)}
    return {**env, "EDGEPACK_CACHE": str(tmp_path / "cache")} if own_cache else env


def test_target_file_missing_a_field(models, tmp_path):
    env = _target_dir(tmp_path, **{'glibc_floor = "2.36"': ""})
    _fails(tmp_path, [models("mlp")], 9, ["x86_64.toml", "glibc_floor"], env=env)


@pytest.mark.parametrize("old, new, words", [
    ("default_threads = ", "default_thread = ", ["unknown key 'default_thread'", "did you mean 'default_threads'?"]),
    ('onnxruntime = "', 'onnxruntme = "', ["unknown key 'onnxruntme' in [runtime]", "did you mean 'onnxruntime'?"]),
    ("[runtime]", "[runtime]\ncolour = 3", ["unknown key 'colour' in [runtime]", "known keys: debian, onnxruntime"]),
], ids=["misspelt", "misspelt-in-a-table", "unlike-any"])
def test_target_file_with_an_unknown_key(models, tmp_path, old, new, words):
    env = _target_dir(tmp_path, **{old: new})
    _fails(tmp_path, [models("mlp")], 9, [str(tmp_path / "targets" / "x86_64.toml"), *words], env=env)


def test_failing_environment_shows_log_tail_and_path(models, tmp_path):
    env = _target_dir(tmp_path, **{'pyinstaller = "6.22.3"': 'pyinstaller = "0.0.1"', "numpy_without_blas = true":
                                   "numpy_without_blas = false"})
    err = _fails(tmp_path, [models("mlp")], 10, ["installing the runtime packages failed", "full log:",
                                                 "pyinstaller==0.0.1"], env=env)
    assert str(tmp_path / "cache" / "logs") in err


def test_glibc_floor_above_the_bundle_fails_and_names_the_files(models, tmp_path):
    # the same build environment (the floor is not part of its key), a board promising only glibc 2.28
    env = _target_dir(tmp_path, own_cache=False, **{'glibc_floor = "2.36"': 'glibc_floor = "2.28"'})
    err = _fails(tmp_path, [models("mlp")], 10, ["needs glibc 2.36", "guarantees only 2.28", "libstdc++.so.6"],
                 env=env)
    assert "GLIBC_2.3" in err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_build_leaves_nothing_and_ends_its_children(models, tmp_path, sig):
    out = tmp_path / "dist" / "exe"
    proc = subprocess.Popen([sys.executable, "-m", "edge", "build", str(models("mlp")), "-o", str(out)], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "] PyInstaller" in line:
            break
    time.sleep(2)  # PyInstaller and its analysis workers are running
    proc.send_signal(sig)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 128 + sig and "Traceback" not in err, err
    assert not (tmp_path / "dist").exists()  # the folder it created is gone too
    time.sleep(1)
    pattern = f"{tmp_path}/dist/.edge-build-exe-"
    left = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    assert left == [], f"children of the interrupted build still run: {left}"


def test_runtime_wheel_replaces_the_pypi_runtime(models, tmp_path):
    # a "vendor" wheel: here the PyPI file itself, fetched by pip, brought in by path
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(wheels),
                    "onnxruntime==1.32.0"], check=True, capture_output=True)
    wheel = next(wheels.glob("onnxruntime-*.whl"))
    out = tmp_path / "dist" / "mlp"
    edge("build", models("mlp"), "-o", out, "--runtime-wheel", wheel)
    report = json.loads(out.with_name("mlp.report.json").read_text())
    assert report["runtime_wheel"]["path"] == str(wheel) and len(report["runtime_wheel"]["sha256"]) == 64
    assert report["build_env"]["packages"]["onnxruntime_wheel"]["sha256"] == report["runtime_wheel"]["sha256"]
    assert report["manifest"]["backend"]["version"] == "1.32.0" and report["verification"]["passed"]
