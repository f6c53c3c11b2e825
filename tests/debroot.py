"""Real Debian systems for the package tests: bookworm roots made by mmdebstrap (amd64 with systemd, to boot
under systemd-nspawn; arm64 run under qemu), cached as tarballs beside the build environments and unpacked
fresh for each test. Commands run inside with `systemd-nspawn` (its /proc, /dev and /sys; the host's network,
so apt reaches the mirror and the host reaches a service's port)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from edge import doctor
from edge.bundle import prefix

INCLUDE = {"amd64": ["systemd", "systemd-sysv", "dbus"], "arm64": []}
NSPAWN = ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit"]


def _nspawn(root: Path) -> list[str]:
    # a machine name of its own: two roots both called "root" would share nspawn's run-time folder
    name = re.sub(r"[^A-Za-z0-9-]", "-", f"edgepack-{os.getpid()}-{root.parent.name}")[:64]
    return [*NSPAWN, f"--machine={name}", "-D", str(root)]


def tarball(arch: str) -> Path:
    cached = doctor.cache_dir() / "roots" / f"bookworm-{arch}.tar"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.stem}.tmp-{os.getpid()}.tar")
        include = [f"--include={','.join(INCLUDE[arch])}"] if INCLUDE[arch] else []
        subprocess.run(["mmdebstrap", "--quiet", "--format=tar", "--variant=minbase", f"--architectures={arch}",
                        *include, "bookworm", str(tmp), prefix.mirror()], check=True, timeout=1800)
        os.replace(tmp, cached)
    return cached


def unpack(arch: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-C", str(dest), "-xf", str(tarball(arch))], check=True)
    dest.chmod(0o755)  # a system's / whatever the umask: its services' own users walk through it
    return dest


def run(root: Path, *cmd: str, check: bool = True, timeout: float = 600):
    """A command inside the root (not booted)."""
    r = subprocess.run([*_nspawn(root), *cmd], capture_output=True,
                       text=True, timeout=timeout, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    if check:
        assert r.returncode == 0, f"{' '.join(cmd)}: {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


class Booted:
    """The root booted with systemd as PID 1 in a container; `sh` runs commands in it (nsenter)."""

    def __init__(self, root: Path, log: Path):
        self.root, self.log = root, log
        self.proc = None

    def __enter__(self) -> Booted:
        self.proc = subprocess.Popen([*_nspawn(self.root), "--boot"], stdin=subprocess.DEVNULL,
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            leader = self._leader()
            if leader and self.sh("systemctl is-system-running --wait", check=False).stdout.strip() in (
                    "running", "degraded"):
                return self
            time.sleep(0.5)
        raise AssertionError("the container did not finish booting in 120 s: " + self.log.read_text()[-3000:])

    def _leader(self) -> int | None:
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    def sh(self, command: str, check: bool = True, timeout: float = 120):
        r = subprocess.run(["nsenter", "-t", str(self._leader()), "-a", "/bin/sh", "-c", command],
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, f"{command}: {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        return r

    def show(self, unit: str, *props: str) -> dict:
        out = self.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.sh("systemctl poweroff", check=False)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def files_of(root: Path) -> set[str]:
    """Every path in the root but the ones dpkg, apt and the logs change on any install."""
    skip = ("var/lib/dpkg/", "var/log/", "var/cache/", "var/lib/apt/", "var/lib/systemd/deb-systemd-helper")
    return {str(p.relative_to(root)) for p in root.rglob("*") if not str(p.relative_to(root)).startswith(skip)}


def need_tools() -> str | None:
    """Why the tests cannot run here (None: they can)."""
    missing = [t for t in ("mmdebstrap", "systemd-nspawn", "nsenter", "lintian", "dpkg-deb") if not shutil.which(t)]
    return f"missing {', '.join(missing)} (python3 build.py test installs them)" if missing else None
