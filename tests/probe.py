"""Helpers for the probe suites: run a real command as a user would, with the faults a user meets (a full
disk, a read-only folder, a capability-dropped run, a memory limit), and check the contract: the exit code,
no traceback, a few lines naming the path and the problem, inputs unchanged, no debris."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

PROGRESS = re.compile(r"^\[\s*[\d.]+s\] ")
MAX_LINES = 3


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """stderr without progress lines."""
        return [x for x in self.stderr.strip().splitlines() if x.strip() and not PROGRESS.match(x)]


def run(cmd: list, *, env: dict | None = None, timeout: float = 120, mem_mb: int | None = None,
        unprivileged: bool = False, stdin=None, cwd: Path = ROOT) -> Result:
    """`unprivileged`: root without its capabilities, so mode-000 files and read-only folders refuse it as
    they refuse a user. `mem_mb`: an address-space limit, so a runaway allocation fails fast instead of
    swapping."""
    prefix = []
    if unprivileged:
        prefix += ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]
    if mem_mb:
        prefix += ["prlimit", f"--as={mem_mb << 20}"]
    r = subprocess.run([*prefix, *map(str, cmd)], capture_output=True, text=True, env=env, timeout=timeout,
                       stdin=stdin, cwd=cwd)
    return Result(r.returncode, r.stdout, r.stderr)


def edge_cmd(*args) -> list:
    return [sys.executable, "-m", "edge", *args]


def private_env(tmpdir: Path, **extra) -> dict:
    tmpdir.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmpdir), **extra}


def expect_failure(r: Result, code: int, *words: str) -> str:
    assert r.code == code, f"exit {r.code}, expected {code}:\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.lines
    assert 1 <= len(lines) <= MAX_LINES, r.stderr
    text = "\n".join(lines)
    assert "error" in text, text
    for w in words:
        assert str(w) in text, f"{w!r} not in {text!r}"
    return text


# onnxruntime (1.32) writes a session id to $TMPDIR/.ses on import and reuses it: its file, not debris
FOREIGN = {".ses"}


def leftovers(tmpdir: Path) -> list[str]:
    return sorted(p.name for p in tmpdir.iterdir() if p.name not in FOREIGN)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` with its content hash: to find debris and harmed inputs."""
    found = {}
    for p in sorted(folder.rglob("*")):
        if p.name in FOREIGN:
            continue
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            found[rel] = "-> " + os.readlink(p)
        elif p.is_dir():
            found[rel] = "dir"
        elif p.is_file() and os.access(p, os.R_OK):
            found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_file():  # a case's mode-000 file: as a user, not even the test may read it
            st = p.stat()
            found[rel] = f"unreadable: {st.st_size} bytes, mode {st.st_mode:o}, modified {st.st_mtime_ns}"
        else:
            found[rel] = "special"
    return found


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m", read_only: bool = False):
    """A small tmpfs (a full disk, or a read-only one) mounted at `path` for the block."""
    if os.geteuid() != 0:
        pytest.skip("mounts a small tmpfs (a full or read-only disk): root only (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}" + (",ro" if read_only else ""), "tmpfs",
                    str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> None:
    """Fill a tmpfs to the last byte (unbuffered writes: nothing is left to flush when it is full)."""
    for name, piece in (("filler", 1 << 16), ("filler-small", 1)):
        try:
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT)
        except OSError:
            return
        try:
            while True:
                os.write(fd, b"\0" * piece)
        except OSError:
            pass
        finally:
            os.close(fd)
