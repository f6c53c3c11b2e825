"""Build environments for another architecture without a chroot: the target Debian release's Python
(arm64 .debs unpacked into a prefix), the runtime's aarch64 wheels installed by this machine's pip,
and PyInstaller run by that Python under qemu user-mode emulation (binfmt). Small wrappers stand in
for the tools PyInstaller calls (ldd, ldconfig, objdump, objcopy, strip) so it sees aarch64 answers.

Measured here: ~1-2 min to create (downloads), PyInstaller onefile ~130 s under emulation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from edge import arches, doctor
from edge.bundle.proc import run_logged
from edge.errors import BuildError

# what the prefix never needs from the dependency closure (package managers, perl, docs)
SKIP = re.compile(r"^(dpkg|perl.*|libperl.*|tar|install-info|mailcap|mime-support|readline-common|debconf.*|"
                  r"tzdata|libc-bin|base-files|sensible-utils|ucf|lsb-base|init-system-helpers)$")
# Debian's reference BLAS/LAPACK (netlib), and the sonames update-alternatives links to them on a real install
REFERENCE_BLAS_DEBS = ("libblas3", "liblapack3")
REFERENCE_BLAS_LINKS = {"libblas.so.3": "blas/libblas.so.3", "liblapack.so.3": "lapack/liblapack.so.3"}


def link_libraries(root: Path, arch: str, links: dict) -> None:
    """What update-alternatives would have linked on a real install: soname -> file under the multiarch folder."""
    libdir = root / "usr" / "lib" / f"{arch}-linux-gnu"
    for soname, file in links.items():
        if not (libdir / file).exists():
            raise BuildError(f"{libdir / file}: missing from the unpacked Debian packages")
        (libdir / soname).unlink(missing_ok=True)
        (libdir / soname).symlink_to(file)


def check_emulation(arch: str) -> None:
    doctor.require_emulation(arch)


def mirror() -> str:
    for src in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if not src.is_file() or "disabled" in src.name:
            continue
        m = re.search(r"(?:URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(https?://\S+/debian)/?\s", src.read_text() + "\n", re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def _apt(root: Path, suite: str, arch: str) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    sources = root / "sources.list"
    debian = arches.get(arch).debian
    sources.write_text(f"deb [arch={debian}] {mirror()} {suite} main\n")
    for d in ("lists/partial", "cache/archives/partial"):
        (root / d).mkdir(parents=True, exist_ok=True)
    return [f"-oAPT::Architecture={debian}", f"-oAPT::Architectures={debian}",
            f"-oDir::Etc::SourceList={sources}", "-oDir::Etc::SourceParts=/nonexistent",
            f"-oDir::State::Lists={root / 'lists'}", f"-oDir::Cache={root / 'cache'}", "-oDir::State::status=/dev/null",
            "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root"]


def create(path: Path, target, log: Path, progress, pins: list[str], extra_debs=()) -> dict:
    """Make the prefix, site-packages and wrappers under `path`; return what was installed."""
    arch, suite, py = target.arch, target.runtime["debian"], target.python
    debian = arches.get(arch).debian
    check_emulation(arch)
    apt = _apt(path / "apt", suite, arch)
    progress(f"build environment: Debian {suite} {debian} package lists")
    run_logged(["apt-get", *apt, "update"], log, "apt-get update", progress)
    roots = [f"python{py}-minimal", f"libpython{py}", f"libpython{py}-stdlib", "libstdc++6", "zlib1g", *extra_debs]
    closure = subprocess.run(["apt-cache", *apt, "depends", "--recurse", "--no-recommends", "--no-suggests",
                              "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *roots],
                             capture_output=True, text=True, check=True).stdout
    packages = sorted({ln.strip() for ln in closure.splitlines() if re.match(r"^[a-z0-9]", ln)
                       and not SKIP.match(ln.strip())})
    debian_numpy = "numpy==debian" in pins  # the board file's runtime numpy = "debian"; a backend may pin a wheel
    if debian_numpy:  # the release's numpy on reference BLAS/LAPACK: ~7 MB smaller than the wheel's OpenBLAS
        packages += ["python3-numpy", *REFERENCE_BLAS_DEBS, "libgfortran5"]
    debs = path / "debs"
    debs.mkdir()
    progress(f"build environment: downloading {len(packages)} {debian} packages")
    run_logged(["apt-get", *apt, "download", *packages], log, "apt-get download", progress, cwd=debs)
    root = path / "root"
    for deb in sorted(debs.glob("*.deb")):
        run_logged(["dpkg-deb", "-x", deb, root], log, f"unpacking {deb.name}", progress)
    if debian_numpy:
        link_libraries(root, arch, REFERENCE_BLAS_LINKS)
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(arches.get(arch).emulated_cpuinfo())
    site = path / "site"
    tag = py.replace(".", "")
    progress("build environment: installing the runtime's aarch64 wheels")
    if tuple(map(int, py.split("."))) < (3, 10):  # PyInstaller's own need on old Pythons; pip skips the marker
        pins = [*pins, "importlib_metadata>=4.6"]
    platforms = [f"--platform=manylinux_2_{v}_{arch}" for v in (17, 28, 31, 34)] + [f"--platform=manylinux2014_{arch}"]
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--target", site, *platforms,
           "--only-binary=:all:", f"--python-version={py}", "--implementation=cp", f"--abi=cp{tag}"]
    if debian_numpy:  # onnxruntime without its dependencies, or pip would shadow Debian's numpy with a wheel
        ort = [p for p in pins if "onnxruntime" in p]
        pins = [p for p in pins if not p.startswith("numpy") and p not in ort]
        run_logged([*pip, "--no-deps", *ort], log, "installing the onnxruntime wheel", progress)
    run_logged([*pip, *pins], log, "installing the runtime wheels", progress)
    _wrappers(path, root, site, py, arch)
    return {"debian": suite, "debs": len(packages), "numpy_build": "Debian python3-numpy, reference BLAS/LAPACK"
            if debian_numpy else "wheel (with OpenBLAS)"}


def _wrappers(path: Path, root: Path, site: Path, py: str, arch: str) -> None:
    """Shell wrappers that find the environment relative to themselves (the folder is renamed after creation)."""
    bins = path / "bin"
    bins.mkdir()
    loader = next(root.glob("lib/ld-linux-*.so.1")).name
    here = 'E="$(cd "$(dirname "$0")/.." && pwd)"'
    scripts = {
        "python": f'{here}\nexport QEMU_LD_PREFIX="$E/root" PYTHONPATH="$E/site:$E/root/usr/lib/python3/dist-packages" '
                  'PYTHONNOUSERSITE=1 '
                  f'PATH="$E/bin:$PATH"\nexec "$E/root/usr/bin/python{py}" "$@"',
        # the aarch64 loader lists dependencies; the vdso line has no file name
        "ldd": f'{here}\nfor f in "$@"; do QEMU_LD_PREFIX="$E/root" "$E/root/lib/{loader}" --list "$f" '
               '| grep -v "^\\s*(0x"; done',
        # only the prefix's libraries, never the host's x86 ones
        "ldconfig": f'{here}\nfind "$E/root/lib" "$E/root/usr/lib" -maxdepth 2 -name "*.so*" | '
                    'while read f; do printf "\\t%s (libc6,AArch64) => %s\\n" "$(basename "$f")" "$f"; done',
    }
    for tool in ("objdump", "objcopy", "strip", "readelf"):
        scripts[tool] = f'exec {arches.get(arch).binutils}{tool} "$@"'
    for name, body in scripts.items():
        (bins / name).write_text(f"#!/bin/sh\n{body}\n")
        (bins / name).chmod(0o755)


def run_env(env_path: Path) -> dict:
    """Environment for running a finished executable of this prefix's architecture under emulation."""
    return {**os.environ, "QEMU_LD_PREFIX": str(env_path / "root")}
