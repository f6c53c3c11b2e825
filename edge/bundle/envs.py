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

    def as_dict(self) -> dict:
        return {"path": str(self.path), "reused": not self.created, "seconds": round(self.seconds, 1),
                "packages": self.packages}


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEPACK_CACHE") or Path.home() / ".cache" / "edgepack")


def requirements(target: Target) -> list[str]:
    rt = target.runtime
    return [f"numpy=={rt['numpy']}", f"onnxruntime=={rt['onnxruntime']}", f"pyinstaller=={rt['pyinstaller']}"]


def env_key(target: Target) -> str:
    spec = {"format": ENV_FORMAT, "base": target.base, "python": platform.python_version(),
            "arch": target.arch, "runtime": target.runtime}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def ensure(target: Target, progress) -> BuildEnv:
    if target.base != "host":
        raise TargetError(f"target {target.name}: base {target.base!r} is not supported by this edgepack")
    if target.arch != platform.machine():
        raise TargetError(f"target {target.name} is {target.arch}; this machine is {platform.machine()}")
    path = cache_dir() / "envs" / f"{target.name}-{env_key(target)}"
    python = path / "bin" / "python"
    ready = path / ".ready"
    start = time.monotonic()
    if ready.exists():
        progress(f"build environment: reusing {path}")
        return BuildEnv(path, python, False, time.monotonic() - start, json.loads(ready.read_text()))
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log = cache_dir() / "logs" / f"env-{target.name}-{env_key(target)}.log"
    log.unlink(missing_ok=True)
    progress(f"build environment: creating {path} (first build for this target; log: {log})")
    try:
        run_logged([sys.executable, "-m", "venv", tmp], log, "creating the venv", progress)
        pip = [tmp / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        rt = target.runtime
        numpy_build = "wheel (with OpenBLAS)"
        if rt.get("numpy_without_blas"):
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
        progress("build environment: installing " + ", ".join(requirements(target)))
        run_logged(pip + requirements(target), log, "installing the runtime packages", progress)
        packages = _versions(tmp / "bin" / "python", log, progress)
        packages["numpy_build"] = numpy_build
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


def _versions(python: Path, log: Path, progress) -> dict:
    out = log.with_suffix(".versions.json")
    code = ("import json, sys, numpy, onnxruntime, PyInstaller; json.dump({'python': sys.version.split()[0], "
            "'numpy': numpy.__version__, 'onnxruntime': onnxruntime.__version__, "
            f"'pyinstaller': PyInstaller.__version__}}, open({str(out)!r}, 'w'))")
    run_logged([python, "-c", code], log, "checking the build environment", progress)
    return json.loads(out.read_text())
