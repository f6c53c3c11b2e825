"""`edge doctor`: the machine's set-up for the boards, checked for real (this machine after build.py's set-up),
a check forced to fail, and `--fix` undoing a real breakage (a disabled binfmt entry)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge import doctor
from tests import users
from tests.conftest import ROOT

ENTRY = doctor.BINFMT / "qemu-aarch64"
SPACE = {"cache-space", "tmp"}  # these depend on the disk CI gets: warnings there are not set-up faults


def _doctor(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edge", "doctor", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_this_machine_is_set_up_for_every_board():
    r = _doctor("--tests")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    checks = {ln.split()[1]: ln.split()[0] for ln in lines}
    assert {"python", "voice-commands-libraries", "mxnet-libraries", "emulation-aarch64", "binutils-aarch64",
            "compiler-aarch64", "compiler-x86_64", "cache", "cache-space", "tmp", "test-audio", "test-browser",
            "test-packaging"} == set(checks)
    assert all(status == "ok" for name, status in checks.items() if name not in SPACE), lines


def test_json_names_each_check_with_its_fix():
    r = _doctor("rpi4", "x86_64", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["targets"] == ["rpi4", "x86_64"] and report["ok"] is True and report["ran"] == []
    by_name = {c["check"]: c for c in report["checks"]}
    assert by_name["emulation-aarch64"]["status"] == "ok" and "binfmt" in by_name["emulation-aarch64"]["detail"]
    assert set(by_name["cache"]) == {"check", "status", "detail", "fix", "packages", "commands"}
    only_x86 = json.loads(_doctor("x86_64", "--json").stdout)
    assert not any(c["check"].endswith("aarch64") for c in only_x86["checks"])  # a host board needs no emulation


def test_a_cache_that_cannot_be_written_fails_its_check_and_the_build(tmp_path, models):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {"EDGEPACK_CACHE": str(blocker / "cache")}
    r = _doctor("x86_64", env=env)
    assert r.returncode == 13 and "Traceback" not in r.stderr
    line = next(ln for ln in r.stdout.splitlines() if " cache " in ln)
    assert line.startswith("FAIL") and f"{blocker} is not a folder" in line and "set EDGEPACK_CACHE" in line
    assert r.stderr.strip() == "edge: error: 1 check(s) failed: cache; set EDGEPACK_CACHE to a writable folder"
    b = subprocess.run([sys.executable, "-m", "edge", "build", models("mlp"), "-o", tmp_path / "out" / "mlp"],
                       capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}, timeout=120)
    assert b.returncode == 13 and "this machine cannot build for x86_64: cache:" in b.stderr
    assert not (tmp_path / "out").exists()


def _aarch64_program(folder: Path) -> Path:
    (folder / "seven.c").write_text("int main(void) { return 7; }\n")
    subprocess.run(["aarch64-linux-gnu-gcc", "-static", "-o", folder / "seven", folder / "seven.c"], check=True)
    return folder / "seven"


@pytest.mark.skipif(os.geteuid() != 0, reason="changes the machine's binfmt set-up: root only (CI runs as root)")
@pytest.mark.parametrize("state", ["unregistered", "disabled"])
def test_fix_enables_emulation(tmp_path, models, state):
    # unregistered: a fresh machine with qemu installed but binfmt not set up; disabled: the kernel holds the entry
    subprocess.run(["update-binfmts", "--disable", "qemu-aarch64"], check=True, capture_output=True) \
        if state == "unregistered" else ENTRY.write_text("0")
    try:
        r = _doctor("rpi4")
        assert r.returncode == 13 and "FAIL emulation-aarch64" in r.stdout and "is not enabled" in r.stdout
        assert "edge doctor --fix rpi4" in r.stderr and "update-binfmts --enable qemu-aarch64" in r.stderr
        b = subprocess.run([sys.executable, "-m", "edge", "build", models("mlp"), "--target", "rpi4", "-o",
                            tmp_path / "mlp"], capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert b.returncode == 13 and "`edge doctor --fix rpi4` sets it up" in b.stderr, b.stderr
        user = users.run_edge_as(users.unprivileged_uid(), "doctor", "--fix", "rpi4")  # not root: the command
        assert user.returncode == 13 and "needs root: sudo sh -c '" in user.stderr, user.stdout + user.stderr
        assert not ENTRY.exists() or ENTRY.read_text().splitlines()[0] == "disabled"
        fixed = _doctor("--fix", "rpi4", "--json")
        assert fixed.returncode == 0, fixed.stderr
        assert json.loads(fixed.stdout)["ran"][-1] == "update-binfmts --enable qemu-aarch64"
        assert ENTRY.read_text().splitlines()[0] == "enabled"
        assert subprocess.run([_aarch64_program(tmp_path)], timeout=60).returncode == 7  # runs, under qemu
    finally:
        if not ENTRY.exists() or ENTRY.read_text().splitlines()[0] != "enabled":
            subprocess.run(["update-binfmts", "--disable", "qemu-aarch64"], capture_output=True)
            subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)


def test_doctor_needs_only_the_standard_library():
    # build.py runs it with the system's python3, before the virtual environment exists: the apps' and backends'
    # declarations it reads load without numpy or onnx
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from edge import doctor; "
            "print(' '.join(r.check for r in doctor.run(doctor.need_for(None))))")
    r = subprocess.run([sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert {"python", "voice-commands-libraries", "mxnet-libraries", "emulation-aarch64"} <= set(r.stdout.split())


def test_an_environment_being_made_is_not_called_debris(tmp_path):
    # another build making its environment right now (its folder is named after its process) is not debris; the
    # same folder once that process is gone is, and the check says what to remove
    builder = subprocess.Popen(["sleep", "60"])
    partial = tmp_path / "envs" / f"x86_64-0123456789ab.tmp-{builder.pid}"
    partial.mkdir(parents=True)
    try:
        live = json.loads(_doctor("x86_64", "--json", env={"EDGEPACK_CACHE": str(tmp_path)}).stdout)
    finally:
        builder.kill()
        builder.wait()
    cache = next(c for c in live["checks"] if c["check"] == "cache")
    assert cache["status"] == "ok" and "1 being made now" in cache["detail"], cache
    gone = json.loads(_doctor("x86_64", "--json", env={"EDGEPACK_CACHE": str(tmp_path)}).stdout)
    cache = next(c for c in gone["checks"] if c["check"] == "cache")
    assert cache["status"] == "warn" and "1 unfinished" in cache["detail"], cache
    assert f"remove {partial} (left by an interrupted build)" == cache["fix"]
