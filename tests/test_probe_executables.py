"""Probe suite for the executables themselves (a bare model executable and the voice-command app, both real
onefile builds): bad files, outputs that cannot be written, runaway headers and flags, non-finite input and
signals. Each failing case checks the exit code, that there is no traceback, a few lines naming the path and
the problem, inputs unchanged and nothing left behind."""

import contextlib
import json
import os
import signal
import struct
import subprocess
import time
import zipfile

import numpy as np
import pytest

from tests import probe, wavs
from tests.probe import expect_failure, private_env, snapshot

pytestmark = pytest.mark.slow


def _npy_header(shape, dtype="<f4") -> bytes:
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {tuple(shape)}, }}".encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def _wav_header(rate=16000, channels=1, bits=16, tag=1, fmt_size=16, data_bytes=3200) -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8 & 0xFFFFFFFF,
                      channels * bits // 8 & 0xFFFF, bits)
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt +
            b"data" + struct.pack("<I", data_bytes))


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "work"
    d.mkdir()
    x = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
    np.save(d / "x.npy", x)
    np.save(d / "x64.npy", x.astype(np.float64))
    np.save(d / "short.npy", x[:, :31])
    np.save(d / "nan.npy", np.full_like(x, np.nan))
    np.save(d / "objects.npy", np.array([object()], dtype=object), allow_pickle=True)
    (d / "huge.npy").write_bytes(_npy_header((10**6, 10**6)) + b"\0" * 64)
    (d / "notes.txt").write_text("not numpy\n")
    np.savez(d / "samples.npz", features=np.repeat(x[None], 4, axis=0))
    np.savez(d / "extra.npz", features=np.repeat(x[None], 4, axis=0), other=np.zeros((4, 3)))
    np.savez(d / "scalar.npz", features=np.float32(1))
    with zipfile.ZipFile(d / "huge.npz", "w") as z:
        z.writestr("features.npy", _npy_header((10**6, 1, 10**6)) + b"\0" * 64)
    (d / "folder").mkdir()
    (d / "rate.wav").write_bytes(_wav_header(rate=4294967295) + b"\0" * 3200)
    (d / "channels0.wav").write_bytes(_wav_header(channels=0) + b"\0" * 3200)
    (d / "channels1000.wav").write_bytes(_wav_header(channels=1000) + b"\0" * 3200)
    (d / "bigfmt.wav").write_bytes(_wav_header(fmt_size=0xFFFFFFF0) + b"\0" * 3200)
    (d / "bits12.wav").write_bytes(_wav_header(bits=12) + b"\0" * 3200)
    (d / "cut.wav").write_bytes(_wav_header()[:20])
    (d / "alaw.wav").write_bytes(_wav_header(tag=6, bits=8) + b"\0" * 3200)
    return d


def _case(exe, d, args, code, words, unprivileged=False, mem_mb=None, timeout=60):
    tmp = d.parent / "tmp"
    before = snapshot(d)
    args = [str(a).format(d=d) for a in args]
    start = time.monotonic()
    r = probe.run([exe, *args], env=private_env(tmp), unprivileged=unprivileged, mem_mb=mem_mb, timeout=timeout)
    expect_failure(r, code, *(w.format(d=d) for w in words))
    assert time.monotonic() - start < timeout
    assert snapshot(d) == before, "files changed or left behind"
    assert probe.leftovers(tmp) == [], "debris in TMPDIR (an unpacked _MEI folder?)"
    return r


MODEL_CASES = [  # (id, args, exit code, words)
    ("input-missing", ["--input", "{d}/none.npy"], 2, ["none.npy"]),
    ("input-folder", ["--input", "{d}/folder"], 2, ["folder", "is a folder"]),
    ("input-text", ["--input", "{d}/notes.txt"], 2, ["notes.txt", "not a .npy"]),
    ("input-objects", ["--input", "{d}/objects.npy"], 2, ["objects.npy"]),
    ("input-dtype", ["--input", "{d}/x64.npy"], 2, ["float64", "features: float32"]),
    ("input-shape", ["--input", "{d}/short.npy"], 2, ["[1, 31]", "features: float32"]),
    ("input-unknown-name", ["--input", "image={d}/x.npy"], 2, ["'image'", "features"]),
    ("input-and-samples", ["--input", "{d}/x.npy", "--samples", "{d}/samples.npz"], 2, ["not both"]),
    ("samples-missing", ["--samples", "{d}/none.npz"], 2, ["none.npz"]),
    ("samples-not-zip", ["--samples", "{d}/notes.txt"], 2, ["notes.txt", "not an .npz"]),
    ("samples-extra-array", ["--samples", "{d}/extra.npz"], 2, ["'other'"]),
    ("samples-scalar", ["--samples", "{d}/scalar.npz"], 2, ["scalar.npz", "first axis"]),
    ("samples-folder", ["--samples", "{d}/folder"], 2, ["folder", "is a folder"]),
    ("output-is-input", ["--input", "{d}/x.npy", "--output", "{d}/x.npy"], 2, ["x.npy", "overwrite"]),
    ("output-is-samples", ["--samples", "{d}/samples.npz", "--output", "{d}/samples.npz"], 2, ["overwrite"]),
    ("output-folder", ["--input", "{d}/x.npy", "--output", "{d}/folder"], 5, ["folder", "is a folder"]),
    ("output-no-parent", ["--input", "{d}/x.npy", "--output", "{d}/no/out.npz"], 5, ["{d}/no", "does not exist"]),
    ("output-device", ["--input", "{d}/x.npy", "--output", "/dev/full"], 5, ["/dev/full", "device"]),
    ("threads-0", ["--input", "{d}/x.npy", "--threads", "0"], 2, ["--threads 0"]),
    ("threads-10000", ["--input", "{d}/x.npy", "--threads", "10000"], 2, ["--threads 10000", "core"]),
    ("bench-negative", ["--bench", "-1"], 2, ["--bench -1"]),
    ("bench-zero", ["--bench", "0"], 2, ["--bench 0"]),
    ("bench-word", ["--bench", "many"], 2, ["many"]),
    ("bench-runaway", ["--bench", "1000000000000"], 2, ["--bench"]),
    ("unknown-flag", ["--frobnicate"], 2, ["--frobnicate"]),
    ("nothing-to-do", [], 2, ["nothing to do"]),
    ("bare-path-two-ways", ["{d}/x.npy", "--input", "features={d}/x.npy"], 2, ["features"]),
]


@pytest.mark.parametrize("name, args, code, words", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_model_executable(mlp_exe, files, name, args, code, words):
    _case(mlp_exe, files, args, code, words)


@pytest.mark.parametrize("name, file", [("npy-header-claims-1e12", "huge.npy"), ("npz-claims-1e12", "huge.npz")])
def test_model_executable_checks_sizes_before_allocating(mlp_exe, files, name, file):
    flag = "--samples" if file.endswith(".npz") else "--input"
    _case(mlp_exe, files, [flag, f"{{d}}/{file}"], 2, [file, "header claims"], mem_mb=3072)


def test_unreadable_input(mlp_exe, files):
    os.chmod(files / "x.npy", 0)
    _case(mlp_exe, files, ["--input", "{d}/x.npy"], 2, ["x.npy", "Permission denied"], unprivileged=True)


def test_output_folder_without_permission(mlp_exe, files):
    locked = files.parent / "locked"
    locked.mkdir(mode=0o555)
    _case(mlp_exe, files, ["--input", "{d}/x.npy", "--output", locked / "o.npz"], 5, [str(locked),
                                                                                       "Permission denied"],
          unprivileged=True)
    assert list(locked.iterdir()) == []


def test_output_on_a_full_disk(mlp_exe, files):
    with probe.tmpfs(files.parent / "full", "64k") as full:
        probe.fill(full)
        before = snapshot(full)
        _case(mlp_exe, files, ["--input", "{d}/x.npy", "--output", full / "o.npz"], 5, [str(full)])
        assert snapshot(full) == before


def test_output_in_a_read_only_folder(mlp_exe, files):
    with probe.tmpfs(files.parent / "ro", "64k", read_only=True) as ro:
        _case(mlp_exe, files, ["--input", "{d}/x.npy", "--output", ro / "o.npz"], 5, [str(ro),
                                                                                     "Read-only file system"])


def test_non_finite_input_warns_and_the_json_stays_json(mlp_exe, files):
    r = probe.run([mlp_exe, "--input", files / "nan.npy", "--json"], env=private_env(files.parent / "tmp"))
    assert r.code == 0 and "Traceback" not in r.stderr, r.stderr
    assert "NaN or infinite" in r.stderr
    out = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert out["logits"]["data"] == [[None] * 10]


def _interrupt(cmd, env, started, sig=signal.SIGINT, twice=False, gap_s=0.0):
    """Start `cmd` in its own process group (a terminal's job), wait until `started(process)` returns, then
    signal the whole group as a terminal's Ctrl-C does: the app gets it from the terminal and again from the
    bootloader, which forwards what it gets. `twice`: a second Ctrl-C `gap_s` after the first (late ones land
    while the bootloader removes its unpacked folder)."""
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         start_new_session=True)
    first = started(p)
    os.killpg(p.pid, sig)
    if twice:
        time.sleep(gap_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, sig)
    out, err = p.communicate(timeout=60)
    return p.returncode, first + out, err


def _after(seconds):
    def started(p):
        time.sleep(seconds)
        return ""
    return started


def _first_stdout_line(p):
    return p.stdout.readline()


@pytest.mark.parametrize("attempt", range(3))
def test_bench_interrupted_ends_with_its_statistics(mlp_exe, files, attempt):
    tmp = files.parent / "tmp"
    # 4 s: the onefile has unpacked itself and is timing runs
    code, out, err = _interrupt([mlp_exe, "--bench", "10000000", "--json"], private_env(tmp), _after(4),
                                twice=attempt == 2)
    assert code == 0 and "Traceback" not in err, err
    stats = json.loads(out)
    assert stats["interrupted"] and stats["runs"] > 0 and stats["median_ms"] > 0
    assert probe.leftovers(tmp) == []


WAV_CASES = [  # (id, args, exit code, words)
    ("wav-missing", ["--wav", "{d}/none.wav"], 4, ["none.wav"]),
    ("wav-folder", ["--wav", "{d}/folder"], 4, ["folder", "is a folder"]),
    ("wav-text", ["--wav", "{d}/notes.txt"], 4, ["notes.txt", "not a WAV"]),
    ("wav-rate-4294967295", ["--wav", "{d}/rate.wav", "--fast"], 4, ["rate.wav", "4294967295 Hz"]),
    ("wav-0-channels", ["--wav", "{d}/channels0.wav", "--fast"], 4, ["channels0.wav", "0 channel"]),
    ("wav-1000-channels", ["--wav", "{d}/channels1000.wav", "--fast"], 4, ["channels1000.wav", "1000 channel"]),
    ("wav-fmt-chunk-4GB", ["--wav", "{d}/bigfmt.wav", "--fast"], 4, ["bigfmt.wav", "'fmt '"]),
    ("wav-12-bits", ["--wav", "{d}/bits12.wav", "--fast"], 4, ["bits12.wav", "12 bits"]),
    ("wav-a-law", ["--wav", "{d}/alaw.wav", "--fast"], 4, ["alaw.wav", "format tag 6"]),
    ("wav-truncated-header", ["--wav", "{d}/cut.wav", "--fast"], 4, ["cut.wav"]),
    ("smooth-0", ["--wav", "{d}/none.wav", "--smooth", "0"], 2, ["--smooth 0"]),
    ("smooth-negative", ["--wav", "{d}/none.wav", "--smooth", "-3"], 2, ["--smooth -3"]),
    ("refractory-negative", ["--wav", "{d}/none.wav", "--refractory", "-5"], 2, ["--refractory -5"]),
    ("refractory-nan", ["--wav", "{d}/none.wav", "--refractory", "nan"], 2, ["--refractory nan"]),
    ("silence-warn-0", ["--mic", "--silence-warn", "0"], 2, ["--silence-warn"]),
    ("reconnect-negative", ["--mic", "--reconnect", "-1"], 2, ["--reconnect"]),
    ("threshold-2", ["--wav", "{d}/none.wav", "--threshold", "2"], 2, ["--threshold 2"]),
    ("threshold-nan", ["--wav", "{d}/none.wav", "--threshold", "nan"], 2, ["--threshold nan"]),
    ("threshold-unknown-label", ["--wav", "{d}/none.wav", "--threshold", "banana=0.5"], 2, ["'banana'"]),
    ("hop-15", ["--wav", "{d}/none.wav", "--hop-ms", "15"], 2, ["--hop-ms"]),
    ("fast-without-wav", ["--mic", "--fast"], 2, ["--fast goes with --wav"]),
    ("mic-and-wav", ["--mic", "--wav", "{d}/none.wav"], 2, ["one of"]),
    ("threads-10000", ["--wav", "{d}/none.wav", "--threads", "10000"], 2, ["--threads 10000"]),
    ("nothing-to-do", [], 2, ["nothing to do"]),
]


@pytest.mark.parametrize("name, args, code, words", WAV_CASES, ids=[c[0] for c in WAV_CASES])
def test_voice_app(voice_exe, files, name, args, code, words):
    _case(voice_exe, files, args, code, words, mem_mb=4096 if name.startswith("wav-") else None)


def test_unreadable_wav(voice_exe, files):
    wavs.write(files / "locked.wav", np.zeros(16000, np.float32), 16000)
    os.chmod(files / "locked.wav", 0)
    _case(voice_exe, files, ["--wav", "{d}/locked.wav"], 4, ["locked.wav", "Permission denied"],
          unprivileged=True)


def _detections(stdout: str) -> list[dict]:
    return [json.loads(ln, parse_constant=lambda c: pytest.fail(f"{c} is not JSON")) for ln in stdout.splitlines()
            if ln.strip()]


def test_wav_from_standard_input_hears_what_the_file_gives(voice_exe, files):
    env = private_env(files.parent / "tmp")
    from_file = probe.run([voice_exe, "--wav", wavs.SAMPLE, "--fast"], env=env)
    with open(wavs.SAMPLE, "rb") as f:
        from_pipe = probe.run([voice_exe, "--wav", "-", "--fast"], env=env, stdin=f)
    assert from_pipe.code == 0 and "Traceback" not in from_pipe.stderr, from_pipe.stderr
    assert _detections(from_pipe.stdout) == _detections(from_file.stdout) != []
    # through a real pipe, which cannot seek: an unknown chunk before the audio is read past
    x = wavs.read16k(wavs.SAMPLE)
    wavs.write(files / "list.wav", x, 16000)
    raw = (files / "list.wav").read_bytes()
    extra = b"LIST" + struct.pack("<I", 10) + b"0123456789"
    (files / "list.wav").write_bytes(raw[:36] + extra + raw[36:])
    cat = subprocess.Popen(["cat", str(files / "list.wav")], stdout=subprocess.PIPE)
    piped = probe.run([voice_exe, "--wav", "-", "--fast"], env=env, stdin=cat.stdout)
    cat.wait()
    assert piped.code == 0, piped.stderr
    assert [h["label"] for h in _detections(piped.stdout)] == [h["label"] for h in _detections(from_file.stdout)]


def test_non_finite_audio_is_flagged_and_never_detected(voice_exe, files):
    x = wavs.read16k(wavs.SAMPLE).astype(np.float32)
    x[16000:16400] = np.nan
    x[32000:32010] = np.inf
    wavs.write(files / "nan.wav", x, 16000, bits=32, floating=True)
    r = probe.run([voice_exe, "--wav", files / "nan.wav", "--fast"], env=private_env(files.parent / "tmp"))
    assert r.code == 0 and "Traceback" not in r.stderr, r.stderr
    assert "NaN or infinite samples" in r.stderr and "410 NaN/infinite input sample(s)" in r.stderr
    hits = _detections(r.stdout)
    assert hits and all(np.isfinite(h["score"]) for h in hits)


@pytest.mark.parametrize("sig, twice, gap_s", [(signal.SIGINT, False, 0), (signal.SIGINT, True, 0),
                                               (signal.SIGINT, True, 0.06), (signal.SIGINT, True, 0.15),
                                               (signal.SIGTERM, False, 0), (signal.SIGTERM, True, 0.06)])
def test_stop_signals_end_with_the_summary(voice_exe, files, sig, twice, gap_s):
    tmp = files.parent / "tmp"
    # after the first detection: the app is listening in real time
    code, out, err = _interrupt([voice_exe, "--wav", wavs.SAMPLE], private_env(tmp), _first_stdout_line, sig=sig,
                                twice=twice, gap_s=gap_s)
    assert code == 0 and "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "stopped:" in err and "s of audio" in err, err
    _detections(out)
    assert probe.leftovers(tmp) == []


def test_full_temporary_folder_at_start_up_is_named_and_left_clean(mlp_exe, files):
    with probe.tmpfs(files.parent / "smalltmp", "4m") as small:
        r = probe.run([mlp_exe, "--info"], env={**os.environ, "TMPDIR": str(small)})
        text = expect_failure(r, 255, str(small), "No space left on device", "TMPDIR")
        assert len(r.lines) == 1, text
        assert probe.leftovers(small) == [], "a half-unpacked _MEI folder was left"


def test_runtime_tmpdir_build_option_unpacks_elsewhere(models, files, tmp_path):
    from tests.conftest import edge

    roomy = tmp_path / "unpack-here"
    roomy.mkdir()
    exe = tmp_path / "dist" / "mlp"
    edge("build", models("mlp"), "-o", exe, "--runtime-tmpdir", roomy)
    report = json.loads(exe.with_name("mlp.report.json").read_text())
    assert report["manifest"]["runtime_tmpdir"] == str(roomy)
    with probe.tmpfs(files.parent / "smalltmp", "4m") as small:
        r = probe.run([exe, "--input", files / "x.npy", "--json"], env={**os.environ, "TMPDIR": str(small)})
        assert r.code == 0, r.stderr
        assert json.loads(r.stdout)["logits"]["shape"] == [1, 10]
    assert probe.leftovers(roomy) == []  # unpacked there, and removed at exit
