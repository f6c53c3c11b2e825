"""--backend mxnet for the aarch64 boards: real builds from an empty cache (the wheel's libmxnet.so relinked onto
Debian's BLAS/LAPACK in the build prefix), the MXNet and emulated parity gates, the glibc floor on every bundled
ELF file, and `edge run` under qemu compared with onnxruntime on this machine."""

import json
import os

import numpy as np
import pytest

from edge.bundle import elf
from tests.conftest import ROOT, edge, rel_diff, run_emulated, run_onnx

pytestmark = pytest.mark.slow

KWS = ROOT / "demos/kws/model"
ARM_PERFORMANCE_LIBRARIES = ("libarmpl_lp64_mp.so", "libamath.so", "libastring.so")
TOLERANCE = 1e-4  # relative to the largest output: float32 kernels of two libraries on two architectures


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One empty cache for this module: the first build makes the MXNet prefix, later ones reuse it."""
    return {**os.environ, "EDGEPACK_CACHE": str(tmp_path_factory.mktemp("mx-cache"))}


def build(env, model, target, out, *args):
    edge("build", model, "--backend", "mxnet", "--target", target, "-o", out, *args, env=env, timeout=1800)
    return json.loads(out.with_name(out.name + ".report.json").read_text())


@pytest.fixture(scope="module")
def cnn_rpi4(models, cache, tmp_path_factory):
    src = models("trained-cnn")
    out = tmp_path_factory.mktemp("mx-dist") / "cnn-mx-rpi4"
    return out, build(cache, src, "rpi4", out, "--eval", src.parent / "eval.npz")


def assert_relinked_and_within_floor(report, floor):
    relink = report["build_env"]["packages"]["relink"]
    assert not set(ARM_PERFORMANCE_LIBRARIES) & set(relink["needed"])
    assert {"libblas.so.3", "liblapack.so.3", "liblapacke.so.3"} <= set(relink["needed"])
    assert {"liblapack3", "liblapacke", "libtmglib3", "libgomp1"} <= set(relink["debian"])
    assert all(relink["debian"].values()), relink["debian"]  # every package named was downloaded: its version
    files = report["glibc"]["per_file"]
    assert "mxnet/libmxnet.so" in files and "libblas.so.3" in files and "liblapacke.so.3" in files
    assert not [f for f in files if f.startswith(ARM_PERFORMANCE_LIBRARIES)]
    for name, info in files.items():
        assert info["arch"] == "aarch64", name
        assert info["glibc"] is None or elf.version_tuple(info["glibc"]) <= elf.version_tuple(floor), (name, info)
    assert report["glibc"]["ok"] and report["glibc"]["glibc_floor"] == floor


def test_cnn_for_rpi4_from_an_empty_cache(cnn_rpi4):
    out, report = cnn_rpi4
    assert out.read_bytes()[:4] == b"\x7fELF" and out.read_bytes()[18] == 183  # e_machine EM_AARCH64
    assert report["build_env"]["reused"] is False and report["build_env"]["emulated"] is True
    assert report["backend"]["name"] == "mxnet" and report["backend"]["version"] == "1.9.1"
    assert report["backend"]["parity"]["max_rel_diff"] <= report["backend"]["parity"]["tolerance"]
    assert report["verification"]["passed"] and report["verification"]["samples"] == 8
    assert "verify (emulated)" in report["step_seconds"]
    assert report["build_env"]["packages"]["numpy"] == "1.23.5"
    assert_relinked_and_within_floor(report, "2.36")
    relink = report["backend"]["relink"]  # the build's own report and page say what was relinked, from what
    page = out.with_name(out.name + ".report.html").read_text()
    assert "Libraries relinked at build time" in page and "libarmpl_lp64_mp.so → libblas.so.3" in page
    assert f"<td>liblapacke</td><td>{relink['debian']['liblapacke']}</td>" in page.replace("\n", "")


def test_cnn_runs_under_qemu_like_onnxruntime(models, cnn_rpi4, cache, tmp_path):
    out, _ = cnn_rpi4
    x = np.load(models("trained-cnn").parent / "eval.npz")["x"][:4]
    got = run_emulated(out, x, tmp_path, cache)
    assert rel_diff(run_onnx(models("trained-cnn"), {"x": x})[0], got) <= TOLERANCE


def test_keyword_model_for_rpi4_reuses_the_environment(cnn_rpi4, cache, tmp_path):
    out = tmp_path / "kws-mx-rpi4"
    report = build(cache, KWS / "kws.onnx", "rpi4", out, "--eval", KWS / "heldout.npz")
    assert report["build_env"]["reused"] is True and report["verification"]["passed"]
    assert_relinked_and_within_floor(report, "2.36")
    x = np.load(KWS / "heldout.npz")["logmel"][:4]
    got = run_emulated(out, x, tmp_path, cache, "logmel")
    assert rel_diff(run_onnx(KWS / "kws.onnx", {"logmel": x})[0], got) <= TOLERANCE


def test_jetson_builds_from_its_own_base(models, cache, tmp_path):
    src = models("trained-cnn")
    out = tmp_path / "cnn-mx-orin"
    report = build(cache, src, "jetson-orin", out, "--eval", src.parent / "eval.npz")
    assert report["build_env"]["reused"] is False and report["build_env"]["packages"]["debian"] == "bullseye"
    assert report["build_env"]["packages"]["python"].startswith("3.9.")
    assert report["build_env"]["packages"]["relink"]["debian"]["liblapacke"].startswith("3.9.")  # bullseye's
    assert_relinked_and_within_floor(report, "2.35")
    # the board allows 2.35 but the verification runs in bullseye's prefix (2.31, symbol versions up to 2.30)
    boot = report["bootloader"]
    assert ("build prefix's 2.30" in boot.get("why", "")) if boot["bootloader"] == "PyInstaller's own" else \
        elf.version_tuple(boot["glibc_needed"]) <= (2, 30), boot
    x = np.load(src.parent / "eval.npz")["x"][:2]
    assert rel_diff(run_onnx(src, {"x": x})[0], run_emulated(out, x, tmp_path, cache)) <= TOLERANCE
