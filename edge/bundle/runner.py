"""`edge run EXE ...`: run any edgepack executable on this machine, under emulation when its
architecture differs (the loader and glibc come from a cached build environment of that architecture)."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
from pathlib import Path

from edge import arches
from edge.bundle import elf, prefix
from edge.bundle.envs import cache_dir
from edge.bundle.verify import entry_point
from edge.errors import TargetError, UsageError
from edge.runtime.fsutil import reason

STOP_WAIT_S = 30  # for the executable to finish after the signal edge passed on
DEBIAN_RELEASES = {"buster": 10, "bullseye": 11, "bookworm": 12, "trixie": 13}


def emulation_env(arch: str) -> dict | None:
    """None when `arch` runs natively; else the environment that makes qemu find the target's loader."""
    if arch == platform.machine():
        return None
    if arches.get(arch).qemu is None:
        raise TargetError(f"cannot run {arch} executables on {platform.machine()}")
    prefix.check_emulation(arch)
    found = []
    for env in (cache_dir() / "envs").glob("*/.ready"):
        root = env.parent / "root"
        if root.is_dir() and (root / "lib" / arches.get(arch).loader).exists():
            release = json.loads(env.read_text()).get("debian", "")
            found.append((DEBIAN_RELEASES.get(release, 0), env.stat().st_mtime, env.parent))
    if found:  # the newest glibc runs executables built for every older one
        return prefix.run_env(max(found)[2])
    raise TargetError(f"no {arch} system files cached in {cache_dir() / 'envs'}: build once for an {arch} target "
                      f"(e.g. edge build MODEL --target rpi4 -o dist/NAME) so edge has the loader and glibc")


def run(exe: Path, args: list[str]) -> int:
    path = entry_point(exe) if exe.is_dir() else exe
    if not path.is_file():
        raise UsageError(f"{exe}: no such executable")
    try:
        info = elf.read(path)
    except OSError as e:
        raise UsageError(f"{exe}: cannot read it: {reason(e)}") from None
    if info is None:
        raise UsageError(f"{exe}: not an ELF executable")
    env = emulation_env(info["arch"])
    try:
        child = subprocess.Popen([str(path.absolute()), *args], env=env or os.environ.copy())  # not a PATH lookup
    except OSError as e:
        raise UsageError(f"{exe}: cannot run it: {reason(e)}") from None
    try:
        return child.wait()
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM to edge: the executable ends itself, with its summary
        child.send_signal(getattr(e, "signum", signal.SIGINT))
        try:
            return child.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            raise e from None
