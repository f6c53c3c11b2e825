"""The real `edge` command run as another, unprivileged user, wherever the checkout lives.

A checkout may sit in a folder only its owner can enter (`mktemp -d`, or /root on Debian: mode 0700), and the
interpreter running the tests may live there too (the checkout's .venv, pyenv under /root). Another user reaches
neither. The commands run this way need only the standard library (edge doctor: build.py runs it before any
virtual environment exists), so the package is copied to a folder everyone may read and run by a Python that user
may execute."""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
USER_PATH = "/usr/local/bin:/usr/bin:/bin"  # Debian's default PATH for a user without root (no sbin)
COPIED = ("edge", "targets")  # the package and the board files it reads beside it


def unprivileged_uid() -> int:
    try:
        return pwd.getpwnam("nobody").pw_uid
    except KeyError:  # no such entry: setpriv takes any number
        return 65534


def reachable_by_all(path: Path) -> bool:
    """Whether any user may enter `path` (search permission for others on it and every folder above)."""
    path = path.resolve()
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _shared_bases() -> Iterator[Path]:
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        path = Path(base)
        if path.is_dir() and os.access(path, os.W_OK | os.X_OK) and reachable_by_all(path):
            yield path


@contextlib.contextmanager
def shared_folder(mode: int = 0o755) -> Iterator[Path]:
    """A new folder every user may enter (and, with mode 0o777, write), removed afterwards. TMPDIR first; where
    that is private (pytest's own folders are mode 0700), the first system temporary folder everyone reaches."""
    base = next(_shared_bases(), None)
    if base is None:
        raise RuntimeError("no temporary folder here is both writable by this user and reachable by others")
    with tempfile.TemporaryDirectory(dir=base, prefix="edgepack-shared-") as folder:
        os.chmod(folder, mode)
        yield Path(folder)


def _as(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


@functools.cache
def python_for(uid: int) -> str | None:
    """A Python >= 3.11 that `uid` may run: the tests' own interpreter's base where reachable, else the system's."""
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                  os.path.realpath(sys.executable), shutil.which("python3", path=USER_PATH)]
    for python in dict.fromkeys(c for c in candidates if c):
        probe = subprocess.run([*_as(uid), python, "-I", "-c", "import sys; sys.exit(sys.version_info < (3, 11))"],
                               capture_output=True, cwd="/", timeout=60)
        if probe.returncode == 0:
            return python
    return None


def run_edge_as(uid: int, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m edge ARGS` as `uid`, from a copy of the package everyone may read, with a user's PATH and a home
    of its own; `env` adds to that."""
    python = python_for(uid)
    if python is None:
        pytest.skip(f"no Python >= 3.11 on this machine may be run by uid {uid} (the interpreters tried: "
                    "this one's base, python3 on a user's PATH)")
    with shared_folder() as folder:
        for name in COPIED:
            shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chmod", "-R", "a+rX", str(folder)], check=True)  # whatever the umask of the checkout
        home = folder / "home"
        home.mkdir(mode=0o777)
        os.chmod(home, 0o777)
        user_env = {"PATH": USER_PATH, "HOME": str(home), "LANG": "C.UTF-8", "PYTHONPATH": str(folder),
                    "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
        return subprocess.run([*_as(uid), python, "-m", "edge", *args], capture_output=True, text=True,
                              cwd=folder, env=user_env, timeout=timeout)
