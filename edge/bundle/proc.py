"""Long subprocesses with a heartbeat (elapsed time) and a log file instead of a wall of output."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from edge.errors import BuildError

HEARTBEAT_S = 15


def run_logged(cmd: list[str], log: Path, label: str, progress, env=None, cwd=None, tail: int = 15) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "a") as out:
        out.write(f"$ {' '.join(map(str, cmd))}\n")
        out.flush()
        proc = subprocess.Popen(list(map(str, cmd)), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=HEARTBEAT_S)
                    break
                except subprocess.TimeoutExpired:
                    progress(f"{label}: still running ({time.monotonic() - start:.0f}s)")
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    if rc != 0:
        lines = log.read_text(errors="replace").strip().splitlines()[-tail:]
        raise BuildError(f"{label} failed (exit {rc}); last lines:\n    " + "\n    ".join(lines) +
                         f"\n  full log: {log}")
