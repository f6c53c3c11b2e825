"""Child processes that end with us: long subprocesses with a heartbeat (elapsed time) and a log file instead
of a wall of output, and short ones with captured output. Each runs in its own process group, so an
interrupted build (Ctrl-C, SIGTERM) ends the child and everything the child started (PyInstaller's analysis
workers, a onefile executable's unpacked child), not only the first process."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from edge.errors import BuildError

HEARTBEAT_S = 15
GRACE_S = 5  # after SIGTERM, before SIGKILL
NO_SPACE = "No space left on device"


def end_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the child's whole group (a onefile bootloader forwards it and removes its unpacked folder),
    then SIGKILL to whatever is left."""
    for sig, wait in ((signal.SIGTERM, GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
            if sig == signal.SIGTERM:  # the leader is gone; make sure its group is too
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue
        except (ProcessLookupError, PermissionError):
            return


def run_captured(cmd: list[str], timeout: float, env=None) -> subprocess.CompletedProcess:
    """subprocess.run(capture_output=True, text=True), but a timeout or an interrupt ends the whole group."""
    proc = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:
        end_group(proc)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_logged(cmd: list[str], log: Path, label: str, progress, env=None, cwd=None, tail: int = 15) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "a") as out:
        out.write(f"$ {' '.join(map(str, cmd))}\n")
        out.flush()
        proc = subprocess.Popen(list(map(str, cmd)), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=HEARTBEAT_S)
                    break
                except subprocess.TimeoutExpired:
                    progress(f"{label}: still running ({time.monotonic() - start:.0f}s)")
        except BaseException:
            end_group(proc)
            raise
    if rc != 0:
        lines = log.read_text(errors="replace").strip().splitlines()
        full = "no space left on device (a full disk: free space in the output's folder or in "
        cause = f"; {full}{log.parent.parent})" if any(NO_SPACE in ln for ln in lines[-200:]) else ""
        raise BuildError(f"{label} failed (exit {rc}){cause}; last lines:\n    " + "\n    ".join(lines[-tail:]) +
                         f"\n  full log: {log}")
