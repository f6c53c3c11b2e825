"""Probe suite for `edge inspect|optimize|build|run|targets`: bad input, harmed inputs, full and read-only
disks, permissions, runaway sizes and signals. Each case runs the real command line and checks the exit
code, that there is no traceback, that a few lines name the path and the problem, that every input file is
unchanged and that nothing was left behind (in the case's folder and in a private TMPDIR)."""

import os
import shutil
import signal
import struct
import subprocess
import time
import zipfile

import numpy as np
import onnx
import pytest
from google.protobuf import json_format, text_format

from edge import files
from tests import probe
from tests.probe import edge_cmd, expect_failure, private_env, snapshot

LABELS = '{"labels": ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right", "on", "off"]}'


def _npy_header(shape, dtype="<f4") -> bytes:
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {tuple(shape)}, }}".encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _arrays(d):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 32)).astype(np.float32)
    np.savez(d / "cal.npz", features=x)
    np.savez(d / "eval.npz", features=x, labels=np.arange(8) % 10)
    np.savez(d / "eval_badlabels.npz", features=x, labels=np.full(8, 12))
    np.savez(d / "nan.npz", features=np.full_like(x, np.nan))
    np.savez(d / "int.npz", features=x.astype(np.int32))
    np.savez(d / "count.npz", features=x, labels=np.arange(3))
    np.savez(d / "objects.npz", features=np.array([object()] * 8, dtype=object))
    (d / "huge.npy").write_bytes(_npy_header((10**12,)) + b"\0" * 64)
    with zipfile.ZipFile(d / "huge.npz", "w") as z:  # an .npz whose member claims 10^12 × 32 floats
        z.writestr("features.npy", _npy_header((10**12, 1, 32)) + b"\0" * 64)
    (d / "notes.npz").write_text("not numpy")
    (d / "empty").mkdir()
    (d / "labels.json").write_text(LABELS)


@pytest.fixture
def case(models, tmp_path):
    """A user's folder: the model, data, labels; and a private TMPDIR."""
    d = tmp_path / "work"
    d.mkdir()
    shutil.copy(models("mlp"), d / "model.onnx")
    _arrays(d)
    return d


def _run_case(case, args, setup=None, code=0, words=(), **kw):
    if setup:
        setup(case)
    tmp = case.parent / "tmp"
    env = private_env(tmp)
    before = snapshot(case)
    args = [str(a).format(d=case) for a in args]
    r = probe.run(edge_cmd(*args), env=env, **kw)
    if code:
        expect_failure(r, code, *(w.format(d=case) for w in words))
        after = snapshot(case)
        assert after == before, f"files changed or left behind: {set(after.items()) ^ set(before.items())}"
    else:
        assert r.code == 0 and "Traceback" not in r.stderr, r.stderr
    assert probe.leftovers(tmp) == [], "debris in TMPDIR"
    return r


def _symlink(name, to):
    return lambda d: (d / name).symlink_to(d / to)


def _hardlink(name, to):
    return lambda d: os.link(d / to, d / name)


def _write(name, data):
    return lambda d: (d / name).write_bytes(data) if isinstance(data, bytes) else (d / name).write_text(data)


def _copy(name, to):
    return lambda d: shutil.copy(d / to, d / name)


def _mode(name, mode, data=b"x"):
    def setup(d):
        (d / name).write_bytes(data)
        os.chmod(d / name, mode)
    return setup


def _as_text_formats(d):
    m = onnx.load(str(d / "model.onnx"))
    (d / "model.json").write_bytes(m.SerializeToString())  # binary protobuf with a misleading name
    (d / "model.textproto").write_bytes(m.SerializeToString())
    (d / "real.json").write_text(json_format.MessageToJson(m))
    (d / "real.txt").write_text(text_format.MessageToString(m))


def _fifo(d):
    os.mkfifo(d / "pipe.onnx")


def _folder_named(name):
    return lambda d: (d / name).mkdir()


# (id, setup, args, exit code, words the message must hold); {d} is the case folder
INSPECT = [
    ("missing", None, ["inspect", "{d}/nope.onnx"], 3, ["{d}/nope.onnx", "no such file"]),
    ("folder", _folder_named("m.onnx"), ["inspect", "{d}/m.onnx"], 3, ["{d}/m.onnx", "is a folder"]),
    ("device", None, ["inspect", "/dev/zero"], 3, ["/dev/zero", "not a regular file"]),
    ("fifo", _fifo, ["inspect", "{d}/pipe.onnx"], 3, ["pipe.onnx", "not a regular file"]),
    ("empty", _write("e.onnx", b""), ["inspect", "{d}/e.onnx"], 3, ["e.onnx", "empty"]),
    ("text", _write("t.onnx", "hello\n"), ["inspect", "{d}/t.onnx"], 3, ["t.onnx", "not an ONNX model"]),
    ("random-bytes", _write("r.onnx", bytes(range(256)) * 8), ["inspect", "{d}/r.onnx"], 3, ["r.onnx"]),
    ("json-text", _as_text_formats, ["inspect", "{d}/real.json"], 3, ["real.json", "not an ONNX model"]),
    ("textproto-text", _as_text_formats, ["inspect", "{d}/real.txt"], 3, ["real.txt", "not an ONNX model"]),
    ("unknown-backend", None, ["inspect", "{d}/model.onnx", "--backend", "tvm"], 2, ["--backend", "tvm"]),
    ("no-model", None, ["inspect"], 2, ["model"]),
    ("unknown-command", None, ["frobnicate"], 2, ["frobnicate"]),
    ("unknown-target", None, ["targets", "pi9"], 9, ["pi9"]),
]

OPTIMIZE = [
    ("out-is-model", None, ["optimize", "{d}/model.onnx", "-o", "{d}/model.onnx"], 2, ["overwrite", "model.onnx"]),
    ("out-symlink-to-model", _symlink("link.onnx", "model.onnx"), ["optimize", "{d}/model.onnx", "-o",
                                                                    "{d}/link.onnx"], 2, ["link.onnx", "overwrite"]),
    ("out-hardlink-to-model", _hardlink("hard.onnx", "model.onnx"), ["optimize", "{d}/model.onnx", "-o",
                                                                      "{d}/hard.onnx"], 2, ["hard.onnx", "overwrite"]),
    ("model-via-symlink", _symlink("alias.onnx", "model.onnx"), ["optimize", "{d}/alias.onnx", "-o",
                                                                  "{d}/model.onnx"], 2, ["overwrite"]),
    ("out-not-onnx", None, ["optimize", "{d}/model.onnx", "-o", "{d}/out.bin"], 2, ["out.bin", ".onnx"]),
    ("out-is-folder", _folder_named("o.onnx"), ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx"], 8, ["o.onnx"]),
    ("report-is-folder", _folder_named("o.report.json"), ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx"], 8,
     ["o.report.json", "folder"]),
    ("out-parent-is-file", _write("f", "x"), ["optimize", "{d}/model.onnx", "-o", "{d}/f/o.onnx"], 8,
     ["cannot create folder"]),
    ("out-is-device", lambda d: (d / "dev.onnx").symlink_to("/dev/null"), ["optimize", "{d}/model.onnx", "-o",
                                                                   "{d}/dev.onnx"], 8, ["dev.onnx", "is a device"]),
    ("new-folders-removed-on-failure", None, ["optimize", "{d}/model.onnx", "-o", "{d}/a/b/o.onnx", "--quantize",
                                              "int8", "--calibration", "{d}/nan.npz"], 4, ["nan.npz", "NaN"]),
    ("prune-1", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--prune-weights", "1"], 2,
     ["--prune-weights"]),
    ("prune-negative", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--prune-channels", "-0.1"], 2,
     ["--prune-channels"]),
    ("prune-nan", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--prune-weights", "nan"], 2,
     ["--prune-weights"]),
    ("prune-word", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--prune-weights", "half"], 2,
     ["half"]),
    ("drop-negative", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--max-accuracy-drop", "-1"], 2,
     ["--max-accuracy-drop"]),
    ("drop-nan", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--max-accuracy-drop", "nan"], 2,
     ["--max-accuracy-drop"]),
    ("quantize-int4", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--quantize", "int4"], 2,
     ["int4"]),
    ("calibration-method", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--quantize", "int8",
                                  "--calibration", "{d}/cal.npz", "--calibration-method", "mean"], 2, ["mean"]),
    ("int8-no-calibration", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--quantize", "int8"], 2,
     ["--calibration"]),
    ("shape-letters", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--input-shape", "features=a,32"],
     2, ["--input-shape"]),
    ("shape-zero", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--input-shape", "features=0,32"],
     2, ["--input-shape"]),
    ("shape-unknown-input", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--input-shape", "x=1,32"],
     2, ["'x'"]),
    ("shape-wrong-fixed", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--input-shape",
                                 "features=1,31"], 5, ["features", "32"]),
    ("outputs-is-input", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--outputs", "features"], 2,
     ["--outputs", "'features'"]),
    ("outputs-unknown", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--outputs", "nope"], 2,
     ["--outputs", "'nope'"]),
    ("inputs-unknown", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--inputs", "nope"], 2,
     ["--inputs", "'nope'"]),
    ("calibration-missing", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--quantize", "int8",
                                   "--calibration", "{d}/none.npz"], 4, ["none.npz", "not found"]),
    ("calibration-empty-folder", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--quantize", "int8",
                                        "--calibration", "{d}/empty"], 4, ["empty", "no .npz"]),
    ("calibration-not-numpy", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--quantize", "int8",
                                     "--calibration", "{d}/notes.npz"], 4, ["notes.npz"]),
    ("calibration-nan", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--quantize", "int8",
                               "--calibration", "{d}/nan.npz"], 4, ["nan.npz", "NaN"]),
    ("calibration-int", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--quantize", "int8",
                               "--calibration", "{d}/int.npz"], 4, ["int32", "float32"]),
    ("calibration-objects", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--quantize", "int8",
                                   "--calibration", "{d}/objects.npz"], 4, ["objects.npz"]),
    ("calibration-device", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--quantize", "int8",
                                  "--calibration", "/dev/zero"], 4, ["/dev/zero", "not a regular file"]),
    ("eval-all-nan", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--eval", "{d}/nan.npz"], 4,
     ["nan.npz", "NaN"]),
    ("eval-labels-outside-classes", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--eval",
                                           "{d}/eval_badlabels.npz"], 4, ["labels", "outside", "10 classes"]),
    ("eval-label-count", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--eval", "{d}/count.npz"], 4,
     ["labels"]),
    ("model-unreadable", _mode("locked.onnx", 0), ["optimize", "{d}/locked.onnx", "-o", "{d}/o.onnx"], 3,
     ["locked.onnx", "Permission denied"]),
    ("fifo-model", _fifo, ["optimize", "{d}/pipe.onnx", "-o", "{d}/o.onnx"], 3, ["not a regular file"]),
]

RUNAWAY = [  # each under a 3 GB address-space limit and a timeout: a header must not make edge allocate
    ("npy-header-claims-1e12", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--eval", "{d}/huge.npy"],
     4, ["huge.npy", "header claims"]),
    ("npz-member-claims-1e12", None, ["optimize", "{d}/model.onnx", "-o", "{d}/o.onnx", "--eval",
                                      "{d}/huge.npz"], 4, ["huge.npz", "header claims"]),
]

BUILD = [  # all refused before any build work starts
    ("data-loss-no-suffix", _copy("model", "model.onnx"), ["build", "{d}/model", "-o", "{d}/model"], 2,
     ["overwrite", "{d}/model"]),
    ("out-symlink-to-model", _symlink("exe", "model.onnx"), ["build", "{d}/model.onnx", "-o", "{d}/exe"], 2,
     ["overwrite"]),
    ("out-is-labels", None, ["build", "{d}/model.onnx", "--app", "voice-commands", "--labels", "{d}/labels.json",
                             "-o", "{d}/labels.json"], 8, ["labels.json"]),
    ("out-is-eval", _copy("evaldata", "eval.npz"), ["build", "{d}/model.onnx", "--eval", "{d}/evaldata", "-o",
                                                    "{d}/evaldata"], 2, ["overwrite", "--eval"]),
    ("report-is-input", _copy("exe.report.json", "labels.json"), ["build", "{d}/model.onnx", "--app",
                                                                  "voice-commands", "--labels",
                                                                  "{d}/exe.report.json", "-o", "{d}/exe"], 2,
     ["report", "overwrite"]),
    ("out-onnx", None, ["build", "{d}/model.onnx", "-o", "{d}/exe.onnx"], 8, ["exe.onnx"]),
    ("report-is-folder", _folder_named("exe.report.json"), ["build", "{d}/model.onnx", "-o", "{d}/exe"], 8,
     ["exe.report.json", "folder"]),
    ("out-is-folder", _folder_named("exe"), ["build", "{d}/model.onnx", "-o", "{d}/exe"], 8, ["is a folder"]),
    ("threads-0", None, ["build", "{d}/model.onnx", "-o", "{d}/exe", "--threads", "0"], 2, ["--threads"]),
    ("threads-10000", None, ["build", "{d}/model.onnx", "-o", "{d}/exe", "--threads", "10000"], 2, ["--threads"]),
    ("threads-word", None, ["build", "{d}/model.onnx", "-o", "{d}/exe", "--threads", "many"], 2, ["many"]),
    ("target-unknown", None, ["build", "{d}/model.onnx", "-o", "{d}/exe", "--target", "pi9"], 9, ["pi9"]),
    ("labels-without-app", None, ["build", "{d}/model.onnx", "-o", "{d}/exe", "--labels", "{d}/labels.json"], 2,
     ["--labels"]),
    ("labels-missing", None, ["build", "{d}/model.onnx", "-o", "{d}/exe", "--app", "voice-commands", "--labels",
                              "{d}/no.json"], 4, ["no.json"]),
    ("labels-device", None, ["build", "{d}/model.onnx", "-o", "{d}/exe", "--app", "voice-commands", "--labels",
                             "/dev/zero"], 4, ["/dev/zero", "not a regular file"]),
    ("labels-not-json", _write("bad.json", "{labels: yes"), ["build", "{d}/model.onnx", "-o", "{d}/exe", "--app",
                                                            "voice-commands", "--labels", "{d}/bad.json"], 4,
     ["bad.json", "not JSON"]),
    ("labels-twice", _write("twice.json", '["yes", "yes", "no", "up", "down", "left", "right", "on", "off", "go"]'),
     ["build", "{d}/model.onnx", "-o", "{d}/exe", "--app", "voice-commands", "--labels", "{d}/twice.json"], 4,
     ["twice.json", "'yes'"]),
    ("labels-bad-detector", _write("det.json", '{"labels": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"], '
                                               '"detector": {"smooth": 0}}'),
     ["build", "{d}/model.onnx", "-o", "{d}/exe", "--app", "voice-commands", "--labels", "{d}/det.json"], 4,
     ["det.json", "smooth"]),
    ("model-missing", None, ["build", "{d}/none.onnx", "-o", "{d}/exe"], 3, ["none.onnx", "no such file"]),
    ("model-is-json-text", _as_text_formats, ["build", "{d}/real.json", "-o", "{d}/exe"], 3, ["real.json"]),
    ("wheel-missing", None, ["build", "{d}/model.onnx", "-o", "{d}/exe", "--runtime-wheel", "{d}/none.whl"], 9,
     ["none.whl"]),
]

RUN = [
    ("missing", None, ["run", "{d}/none"], 2, ["none", "no such executable"]),
    ("not-elf", None, ["run", "{d}/labels.json"], 2, ["labels.json", "not an ELF"]),
    ("folder-without-entry", None, ["run", "{d}/empty"], 2, ["empty"]),
    ("unreadable", _mode("exe", 0o000, b"\x7fELF" + b"\0" * 60), ["run", "{d}/exe"], 2, ["exe", "Permission denied"]),
]

def _ids(cases):
    return [c[0] for c in cases]


@pytest.mark.parametrize("name, setup, args, code, words", INSPECT, ids=_ids(INSPECT))
def test_inspect(case, name, setup, args, code, words):
    _run_case(case, args, setup, code, words, timeout=60)


@pytest.mark.parametrize("name, setup, args, code, words", OPTIMIZE, ids=_ids(OPTIMIZE))
def test_optimize(case, name, setup, args, code, words):
    _run_case(case, args, setup, code, words, unprivileged=name == "model-unreadable", timeout=120)


@pytest.mark.parametrize("name, setup, args, code, words", RUNAWAY, ids=_ids(RUNAWAY))
def test_runaway_sizes_fail_fast_in_bounded_memory(case, name, setup, args, code, words):
    start = time.monotonic()
    _run_case(case, args, setup, code, words, mem_mb=3072, timeout=60)
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("name, setup, args, code, words", BUILD, ids=_ids(BUILD))
def test_build_refuses_before_any_work(case, name, setup, args, code, words):
    _run_case(case, args, setup, code, words, timeout=120)


@pytest.mark.parametrize("name, setup, args, code, words", RUN, ids=_ids(RUN))
def test_run(case, name, setup, args, code, words):
    _run_case(case, args, setup, code, words, unprivileged=name == "unreadable", timeout=60)


@pytest.mark.parametrize("name", ["model.json", "model.textproto"])
def test_binary_model_read_whatever_its_name(case, name):
    _as_text_formats(case)
    r = _run_case(case, ["inspect", f"{{d}}/{name}", "--json"])
    assert '"features"' in r.stdout
    r = _run_case(case, ["optimize", f"{{d}}/{name}", "-o", "{d}/o.onnx"])
    assert (case / "o.onnx").is_file() and (case / "o.report.json").is_file()


def test_output_on_a_full_disk(case):
    with probe.tmpfs(case.parent / "full", "256k") as full:
        probe.fill(full)
        before = snapshot(full)
        r = probe.run(edge_cmd("optimize", case / "model.onnx", "-o", full / "o.onnx"),
                      env=private_env(case.parent / "tmp"))
        expect_failure(r, 8, str(full), "No space left on device")
        assert snapshot(full) == before


def test_output_in_a_read_only_folder(case):
    with probe.tmpfs(case.parent / "ro", "1m", read_only=True) as ro:
        r = probe.run(edge_cmd("optimize", case / "model.onnx", "-o", ro / "o.onnx"),
                      env=private_env(case.parent / "tmp"))
        expect_failure(r, 8, str(ro), "Read-only file system")


def test_output_folder_without_permission(case):
    locked = case.parent / "locked"
    locked.mkdir(mode=0o555)
    r = probe.run(edge_cmd("optimize", case / "model.onnx", "-o", locked / "o.onnx"),
                  env=private_env(case.parent / "tmp"), unprivileged=True)
    expect_failure(r, 8, str(locked), "Permission denied")
    assert list(locked.iterdir()) == []


def test_full_temporary_folder_during_quantization(case):
    # room for Python's probe of TMPDIR (a full one is skipped for /tmp), not for the 53 kB model quantization
    # writes there
    with probe.tmpfs(case.parent / "fulltmp", "16k") as full:
        r = probe.run(edge_cmd("optimize", case / "model.onnx", "-o", case / "o.onnx", "--quantize", "int8",
                               "--calibration", case / "cal.npz"),
                      env={**os.environ, "TMPDIR": str(full)})
        expect_failure(r, 8, "No space left on device", "TMPDIR")
        assert not (case / "o.onnx").exists() and not (case / "o.report.json").exists()
        assert probe.leftovers(full) == []


def test_missing_temporary_folder_falls_back(case):
    r = probe.run(edge_cmd("optimize", case / "model.onnx", "-o", case / "o.onnx"),
                  env={**os.environ, "TMPDIR": str(case / "no-such-folder")})
    assert r.code == 0, r.stderr
    assert (case / "o.onnx").is_file()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_optimize_cleans_up(case, sig):
    tmp = case.parent / "tmp"
    before = snapshot(case)
    p = subprocess.Popen(edge_cmd("optimize", case / "model.onnx", "-o", case / "o.onnx", "--quantize", "int8",
                                  "--calibration", case / "cal.npz", "--calibration-method", "entropy"),
                         env=private_env(tmp), stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "quantize" in line or "int8" in line:
            break
    p.send_signal(sig)
    p.send_signal(sig)  # a second one (a terminal's Ctrl-C, twice) must not cut the clean-up short
    err = p.stderr.read()
    p.wait(timeout=60)
    assert p.returncode == 128 + sig, err
    assert "Traceback" not in err and "interrupted" in err
    assert snapshot(case) == before and probe.leftovers(tmp) == []


def test_scratch_folder_whose_clean_up_was_cut_short_is_swept_on_the_way_out(tmp_path):
    # a signal can land after the folder is made and before its `with` owns it, or halfway through its
    # removal: edge's exit path finishes the job, and leaves another process's folder alone
    ours = files.make_folder("edge-scratch-", tmp_path)
    (ours / "sym_shape_infer_temp.onnx").write_bytes(b"half")
    theirs = tmp_path / "edge-scratch-theirs"
    theirs.mkdir()
    files.sweep_folders()
    assert list(tmp_path.iterdir()) == [theirs]
