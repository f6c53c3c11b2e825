"""aarch64 boards from this x86_64 machine: a real build in an emulated environment made from scratch,
the glibc floor check on its binaries, and `edge run` under qemu."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, edge, rel_diff, run_emulated, run_onnx

pytestmark = pytest.mark.slow


def test_rpi4_executable_is_aarch64_and_was_verified(rpi4_build):
    out, _, log = rpi4_build
    assert out.read_bytes()[:4] == b"\x7fELF" and out.read_bytes()[18] == 183  # e_machine EM_AARCH64
    report = json.loads(out.with_name("cnn-rpi4.report.json").read_text())
    assert report["build_env"]["reused"] is False and report["build_env"]["emulated"] is True
    assert report["verification"]["passed"] and report["verification"]["samples"] == 8
    g = report["glibc"]
    assert g["ok"] and g["wrong_arch"] == [] and g["glibc_needed"] == "2.36" and g["glibc_floor"] == "2.36"
    assert "PyInstaller (emulated)" in report["step_seconds"] and "verify (emulated)" in report["step_seconds"]
    assert "[" in log and "s] build environment: downloading" in log  # progress with elapsed time


def test_edge_run_emulates_and_matches_onnxruntime(models, rpi4_build, tmp_path):
    out, env, _ = rpi4_build
    x = np.load(models("trained-cnn").parent / "eval.npz")["x"][:3]
    got = run_emulated(out, x, tmp_path, env)
    assert rel_diff(run_onnx(models("trained-cnn"), {"x": x})[0], got) <= 1e-4
    info = edge("run", out, "--info", env=env)
    assert json.loads(info.stdout)["target"] == {"name": "rpi4", "arch": "aarch64", "glibc_floor": "2.36"}


def test_glibc_check_names_files_above_a_lower_floor(rpi4_build, tmp_path):
    from edge import targets
    from edge.bundle import builder, contents
    from edge.bundle.envs import BuildEnv
    from edge.errors import BuildError

    out, env, _ = rpi4_build
    report = json.loads(out.with_name("cnn-rpi4.report.json").read_text())
    env_path = Path(report["build_env"]["path"])
    build_env = BuildEnv(env_path, env_path / "bin" / "python", False, 0, {})
    contents.inspect(build_env, out, tmp_path / "bin")
    jetson = targets.get("jetson-xavier")  # promises only glibc 2.31: the bookworm bundle must be refused
    with pytest.raises(BuildError) as e:
        builder.check_elf(out, tmp_path / "bin", jetson)
    assert "needs glibc 2.36" in e.value.message and "libpython3.11" in e.value.message
    assert builder.check_elf(out, tmp_path / "bin", targets.get("rpi5"))["ok"]


def test_runtime_wheel_of_the_wrong_architecture(models, tmp_path):
    wheel = tmp_path / "onnxruntime-1.32.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"PK")
    r = subprocess.run([sys.executable, "-m", "edge", "build", str(models("mlp")), "--target", "rpi4", "-o",
                        str(tmp_path / "dist" / "x"), "--runtime-wheel", str(wheel)], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 9 and "x86_64" in r.stderr and "aarch64" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "dist" / "x").exists()


def test_the_rpi4_executable_serves_under_emulation(models, rpi4_build):
    from tests.served import Served

    out, env, _ = rpi4_build
    x = np.load(models("trained-cnn").parent / "eval.npz")["x"][:2]
    s = Served([sys.executable, "-m", "edge", "run", out], env=env, timeout=180)
    try:
        status, r = s.json("POST", "/v1/classify", {"inputs": {"x": x.tolist()}})
    finally:
        code, err = s.stop()
    assert status == 200, r
    assert rel_diff(run_onnx(models("trained-cnn"), {"x": x})[0], np.array(r["outputs"]["probs"])) <= 1e-4
    assert "stopped: served 1 classification(s), 0 failed" in err, err
