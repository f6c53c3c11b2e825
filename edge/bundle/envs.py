"""Isolated build environments holding only the runtime's dependencies and PyInstaller, one per target
and pin set, cached under ~/.cache/edgepack/envs (EDGEPACK_CACHE overrides) so later builds reuse them."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from edge import doctor
from edge.apps import App
from edge.backends import Backend
from edge.backends.onnxruntime import BACKEND as ORT
from edge.bundle import elf, prefix
from edge.bundle.proc import run_logged
from edge.errors import BuildError, TargetError
from edge.targets import Target

ENV_FORMAT = 1  # bump when the way environments are made changes


@dataclass
class BuildEnv:
    path: Path
    python: Path
    created: bool
    seconds: float
    packages: dict

    @property
    def emulated(self) -> bool:
        return (self.path / "root").is_dir()

    @property
    def strip_tool(self) -> str:
        wrapper = self.path / "bin" / "strip"
        return str(wrapper) if self.emulated else "strip"

    @property
    def site_packages(self) -> Path:
        """Where the runtime's packages are: the emulated prefix's pip --target folder, or the venv's."""
        return self.path / "site" if self.emulated else next(self.path.glob("lib/python3*/site-packages"))

    @property
    def glibc(self) -> str | None:
        """The newest glibc version the emulated prefix's libc provides (None: this machine's own)."""
        libc = next(self.path.glob("root/lib/*-linux-gnu/libc.so.6"), None) if self.emulated else None
        return elf.glibc_provided(libc) if libc else None

    def run_env(self) -> dict | None:
        """Environment for running what this env builds (emulated: the prefix holds the target's loader)."""
        return prefix.run_env(self.path) if self.emulated else None

    def as_dict(self) -> dict:
        return {"path": str(self.path), "reused": not self.created, "seconds": round(self.seconds, 1),
                "emulated": self.emulated, "packages": self.packages}


cache_dir = doctor.cache_dir  # ~/.cache/edgepack, or EDGEPACK_CACHE


def requirements(target: Target, runtime_wheel: Path | None = None, app: App | None = None,
                 backend: Backend = ORT) -> list[str]:
    return [*backend.requirements(target, runtime_wheel), *(app.pip if app else ())]


def env_key(target: Target, runtime_wheel: Path | None = None, app: App | None = None, backend: Backend = ORT) -> str:
    spec = {"format": ENV_FORMAT, "base": target.base, "python": platform.python_version(),
            "arch": target.arch, "runtime": target.runtime, **backend.key(target)}
    if app:  # an app's packages make another environment; the bare runtime's stays without them
        spec["app"] = {"pip": list(app.pip), "debs": list(app.debs)}
    if runtime_wheel:
        spec["runtime_wheel"] = hashlib.sha256(runtime_wheel.read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def check_wheel(wheel: Path, target: Target) -> None:
    """A vendor onnxruntime wheel must exist and fit the target's architecture and Python."""
    if not wheel.is_file() or wheel.suffix != ".whl":
        raise TargetError(f"--runtime-wheel {wheel}: not a .whl file")
    parts = wheel.stem.split("-")
    if len(parts) < 5 or not parts[0].lower().startswith("onnxruntime"):
        raise TargetError(f"--runtime-wheel {wheel}: not an onnxruntime wheel (name onnxruntime*-VER-TAGS.whl)")
    py_tag, platform_tag = parts[-3], parts[-1]
    if target.arch not in platform_tag:
        raise TargetError(f"--runtime-wheel {wheel.name}: built for {platform_tag}, target {target.name} is "
                          f"{target.arch}")
    want = "cp" + target.python.replace(".", "")
    if want not in py_tag.split("."):
        raise TargetError(f"--runtime-wheel {wheel.name}: built for {py_tag}, target {target.name} runs Python "
                          f"{target.python} ({want})")


def ensure(target: Target, progress, runtime_wheel: Path | None = None, app: App | None = None,
           backend: Backend = ORT) -> BuildEnv:
    if target.base not in BASES:
        raise TargetError(f"{target.path}: base {target.base!r} is unknown; use one of {', '.join(BASES)}")
    if target.base == "host" and target.arch != platform.machine():
        raise TargetError(f"target {target.name} is {target.arch}; base 'host' builds only for {platform.machine()}")
    if target.base == "debian-prefix":
        prefix.check_emulation(target.arch)
    if runtime_wheel:
        check_wheel(runtime_wheel, target)
    key = env_key(target, runtime_wheel, app, backend)
    label = "".join(f"-{x}" for x in (backend.name if backend is not ORT else None, app.name if app else None) if x)
    path = cache_dir() / "envs" / f"{target.name}{label}-{key}"
    python = path / "bin" / "python"
    ready = path / ".ready"
    start = time.monotonic()
    if ready.exists():
        progress(f"build environment: reusing {path}")
        return BuildEnv(path, python, False, time.monotonic() - start, json.loads(ready.read_text()))
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    log = cache_dir() / "logs" / f"env-{target.name}-{key}.log"
    log.unlink(missing_ok=True)
    progress(f"build environment: creating {path} (first build for this target; log: {log})")
    try:
        debs = (*(app.debs if app else ()), *backend.debs(target))
        packages = BASES[target.base](tmp, target, log, progress, requirements(target, runtime_wheel, app, backend),
                                      debs)
        packages.update(backend.finish_env(tmp, target, log, progress))
        if runtime_wheel:
            packages["onnxruntime_wheel"] = {"file": runtime_wheel.name,
                                             "sha256": hashlib.sha256(runtime_wheel.read_bytes()).hexdigest()}
        packages.update(_versions(tmp / "bin" / "python", log, progress, backend))
        (tmp / ".ready").write_text(json.dumps(packages, indent=2))
        try:
            os.rename(tmp, path)
        except OSError:  # another build made it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(f"build environment: ready in {time.monotonic() - start:.0f}s")
    return BuildEnv(path, python, True, time.monotonic() - start, json.loads(ready.read_text()))


def _create_host(tmp: Path, target: Target, log: Path, progress, pins: list[str], debs=()) -> dict:
    """A venv of the Python running edge, for the same architecture; `debs` must be installed on this machine."""
    # not a Debian system (no dpkg): PyInstaller warns if a library is missing
    missing = [d for d in debs if doctor.deb_installed(d) is False]
    if missing:
        raise TargetError(f"the build needs Debian package(s) {', '.join(missing)} on this machine: as root, "
                          f"`edge doctor --fix {target.name}` (or apt-get install -y {' '.join(missing)})")
    shutil.rmtree(tmp)
    run_logged([sys.executable, "-m", "venv", tmp], log, "creating the venv", progress)
    pip = [tmp / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    rt = target.runtime
    numpy_build = "wheel (with OpenBLAS)"
    if rt.get("numpy_without_blas") and f"numpy=={rt['numpy']}" in pins:
        progress(f"build environment: compiling numpy {rt['numpy']} without BLAS (a few minutes, once)")
        try:
            run_logged(pip + ["--no-binary", "numpy", f"numpy=={rt['numpy']}",
                              "-Csetup-args=-Dallow-noblas=true", "-Csetup-args=-Dblas=none",
                              "-Csetup-args=-Dlapack=none"], log, "building numpy without BLAS", progress)
            numpy_build = "compiled without BLAS/LAPACK"
        except BuildError as e:  # no compiler or headers: the stock wheel works, only bigger
            first = e.message.splitlines()[0]
            progress(f"build environment: {first}; using the numpy wheel (about 8 MB bigger)")
            numpy_build = f"wheel (with OpenBLAS): the build without BLAS failed, see {log}"
    progress("build environment: installing " + ", ".join(pins))
    run_logged(pip + pins, log, "installing the runtime packages", progress)
    return {"numpy_build": numpy_build}


BASES = {"host": _create_host, "debian-prefix": prefix.create}


def _versions(python: Path, log: Path, progress, backend: Backend = ORT) -> dict:
    out = log.with_suffix(".versions.json")
    code = ("import json, sys, numpy, PyInstaller; json.dump({'python': sys.version.split()[0], "
            f"'numpy': numpy.__version__, 'pyinstaller': PyInstaller.__version__, **{backend.probe()}}}, "
            f"open({str(out)!r}, 'w'))")
    run_logged([python, "-c", code], log, "checking the build environment", progress)
    return json.loads(out.read_text())
