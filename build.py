#!/usr/bin/env python3
"""A new user's one command.

    python3 build.py          set up .venv, then the main job: build the voice-command executable
                              (dist/voice-commands) from the demo model and run it on two sample recordings
    python3 build.py --commands DIR [--builtin all|none|LIST]
                              the same, with your own commands enrolled into it: DIR/<label>/*.wav
                              (docs/commands.md)
    python3 build.py test     set up .venv with the test extras, then run the whole test suite
                              (extra arguments go to pytest, e.g. `python3 build.py test -k quantize`)
    python3 build.py test --quick   the same set-up, then only the fast tier: unit tests and one real build

Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".edgepack-installed"
START = time.monotonic()


def step(message: str) -> None:
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


def run(cmd: list[str], **kw) -> None:
    result = subprocess.run(cmd, cwd=ROOT, **kw)
    if result.returncode != 0:
        step(f"failed ({result.returncode}): {' '.join(map(str, cmd))}")
        sys.exit(result.returncode)


def setup(extras: str) -> None:
    if not (BIN / "python").exists():
        step(f"creating {VENV.relative_to(ROOT)}")
        run([sys.executable, "-m", "venv", str(VENV)])
    want = extras + ":" + hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    have = STAMP.read_text().split("\n") if STAMP.exists() else []
    if want in have:
        step("environment up to date")
        return
    target = f".[{extras}]" if extras else "."
    step(f"installing edgepack{f'[{extras}]' if extras else ''} and its dependencies into .venv (pip)")
    run([str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "-e", target])
    STAMP.write_text("\n".join(have + [want]))
    step("environment ready")


KWS = ROOT / "demos" / "kws"


def system_setup(tests: bool) -> None:
    """What `edge doctor --fix` does, for the builds this command runs: as root, install what is missing;
    otherwise print the one command that does it, and stop."""
    sys.path.insert(0, str(ROOT))
    from edge import doctor  # standard library only: runs before the virtual environment exists

    if tests:  # the suite builds for every board, with both backends, and needs a microphone stand-in
        need = doctor.Need(tuple(doctor.T.all_targets().values()), tests=True, survey=False)
    else:  # the main job: the voice-command executable for this machine
        need = doctor.Need((doctor.T.get("x86_64"),), backends=frozenset({"onnxruntime"}), survey=False)
    results = doctor.run(need)
    todo = [r for r in results if r.fixable]
    for r in results:
        if r.status != "ok":
            print(r.line(), flush=True)
    if todo and os.geteuid() == 0:
        step("setting this machine up (edge doctor --fix): " + ", ".join(r.check for r in todo))
        doctor.fix(todo, say=lambda text: step(text))
        results = doctor.run(need)
    elif any(r.status == "fail" for r in todo):
        sys.exit(f"this machine needs system packages first; run once, then this command again:\n  "
                 f"{doctor.fix_command(todo)}")
    failed = [r for r in results if r.status == "fail"]
    if failed:
        sys.exit("\n".join(r.line() for r in failed))
    step("system set-up: " + ", ".join(r.check for r in results) + " ok")


def show(cmd: list[str]) -> list[str]:
    print("$ " + " ".join(os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c for c in cmd), flush=True)
    return cmd


SAMPLES = [  # (recording, what it is): the main job runs the executable on both and prints what it heard
    (KWS / "samples" / "real.wav", "real speakers never used in training (Speech Commands v0.02, CC BY 4.0)"),
    (KWS / "samples" / "commands.wav", "a synthetic voice (flite rms)"),
]


def expected(recording: Path, builtin: str = "all") -> str:
    """The words said in a sample recording that the executable reports (--builtin: the model's that stay)."""
    lines = recording.with_suffix(".txt").read_text().splitlines()
    said = [ln.split()[1] for ln in lines if ln.strip() and not ln.startswith("#")]
    kept = None if builtin == "all" else set(builtin.split(",")) if builtin != "none" else set()
    return ", ".join(w for w in said if kept is None or w in kept) or "(none of its words: --builtin)"


def main_job(extra: list[str]) -> int:
    """extra: `edge build`'s app flags for your own commands (--commands DIR, --builtin LIST)."""
    exe = ROOT / "dist" / "voice-commands"
    data = ROOT / "build" / "kws-stream"
    step("assembling the keyword model: Google's speech embedding (Apache-2.0) + a head trained on real speech "
         "(demos/kws/MODEL_CARD.md)")
    run(show([str(BIN / "python"), "-m", "demos.kws.assembly.assemble", "-o", str(data)]))
    model = data / "kws_stream.onnx"
    step("edge build: the voice-command executable for this machine (first time: a build environment, minutes). "
         "Its model as int8: what stays in float chosen by measurement on the calibration speakers (within 1 point "
         "of fp32), then checked on held-out speakers the choice never saw; the build stops if that gate fails")
    run(show([str(BIN / "edge"), "build", str(model), "--app", "voice-commands", "--labels",
              str(data / "labels.json"), "--target", "x86_64", "-o", str(exe), "--quantize", "auto",
              "--calibration", str(data / "calib.npz"), "--search-eval", str(data / "calib.npz"),
              "--eval", str(data / "heldout.npz"), "--max-accuracy-drop", "1", *extra]))
    for recording, what in SAMPLES:
        step(f"running it on {os.path.relpath(recording, ROOT)}: {what}, in real time")
        builtin = extra[extra.index("--builtin") + 1] if "--builtin" in extra else "all"
        print(f"expected: {expected(recording, builtin)}", flush=True)
        run(show([str(exe), "--wav", str(recording)]))
    step(f"done: {os.path.relpath(exe, ROOT)} ({exe.stat().st_size / 1e6:.1f} MB, report beside it). "
         f"With a microphone: {os.path.relpath(exe, ROOT)} --mic   (--list-devices, --help, --info)")
    return 0


MAIN_JOB_FLAGS = ("--commands", "--builtin")  # passed on to `edge build`, each with its value
USAGE = "usage: python3 build.py [--commands DIR] [--builtin all|none|LIST] | test [--quick] [pytest args...]"


def main_job_flags(argv: list[str]) -> list[str]:
    """The main job's flags, checked before minutes of set-up; a path made absolute (edge runs elsewhere)."""
    extra = []
    while argv:
        flag, *rest = argv
        if flag not in MAIN_JOB_FLAGS or not rest:
            sys.exit(f"{USAGE}\n(unknown or incomplete: {' '.join(argv)})")
        value = rest[0]
        if flag == "--commands":
            if not Path(value).is_dir():
                sys.exit(f"--commands {value}: not a folder (give DIR holding DIR/<label>/*.wav)")
            value = str(Path(value).resolve())
        extra += [flag, value]
        argv = rest[1:]
    return extra


QUICK = ["-m", "not slow or quick"]  # the fast tier: the unit tests and one real build


def test_job(args: list[str]) -> int:
    quick = "--quick" in args
    args = [a for a in args if a != "--quick"]
    step("running the " + ("fast tier (--quick: unit tests and one real build)" if quick else "test suite"))
    # the 15 slowest tests close the log: where the suite's time goes, run after run
    cmd = [str(BIN / "python"), "-m", "pytest", "--durations=15", *(QUICK if quick else []), *args]
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    if sys.version_info < (3, 11):  # noqa: UP036 - this file must run (and explain) on older Pythons too
        sys.exit(f"edgepack needs Python >= 3.11; this is {sys.version.split()[0]}")
    argv = sys.argv[1:]
    if argv[:1] == ["test"]:
        system_setup(tests=True)
        setup("test")
        sys.exit(test_job(argv[1:]))
    extra = main_job_flags(argv)
    system_setup(tests=False)
    setup("")
    sys.exit(main_job(extra))
