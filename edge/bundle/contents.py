"""What is inside a finished executable: every archive entry with its compressed size, by component."""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

from edge import apps, backends
from edge.bundle.envs import BuildEnv
from edge.errors import BuildError

# Run by the build environment's Python, which has PyInstaller's archive readers.
LISTER = r"""
import json, sys, os, tempfile
from PyInstaller.archive.readers import CArchiveReader, ZlibArchiveReader
path = sys.argv[1]
extract = sys.argv[2] if len(sys.argv) > 2 else None  # write binaries here, for the ELF checks
entries, modules = [], []
def read_pyz(data, origin):
    with tempfile.NamedTemporaryFile(suffix='.pyz', delete=False) as f:
        f.write(data)
    try:
        z = ZlibArchiveReader(f.name)
        for name, (typ, off, length) in z.toc.items():
            modules.append(name)
            entries.append({'name': 'PYZ:' + name, 'bytes': length, 'kind': 'module'})
    finally:
        os.unlink(f.name)
def read_carchive(exe):
    r = CArchiveReader(exe)
    for name, (off, length, ulen, flag, typ) in r.toc.items():
        if typ == 'z':
            read_pyz(r.extract(name), name)
        else:
            entries.append({'name': name, 'bytes': length, 'unpacked': ulen, 'kind': typ})
            if extract and typ == 'b':
                dest = os.path.join(extract, name)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                with open(dest, 'wb') as out:
                    out.write(r.extract(name))
if os.path.isdir(path):  # onedir: the executable holds the PYZ, files lie beside it
    exe = os.path.join(path, os.path.basename(path))
    read_carchive(exe)
    for root, _, files in os.walk(path):
        for fn in files:
            p = os.path.join(root, fn)
            if p != exe:
                entries.append({'name': os.path.relpath(p, path), 'bytes': os.path.getsize(p), 'kind': 'file'})
else:
    read_carchive(path)
json.dump({'entries': entries, 'modules': sorted(modules)}, sys.stdout)
"""

FORBIDDEN = ("onnx", "onnxruntime.quantization", "onnxruntime.transformers", "PyInstaller", "onnxsim",
             "onnxoptimizer", "torch", "rich")


_backend_packages = functools.cache(backends.python_packages)


@functools.cache
def _app_parts() -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(app.component for app in apps.registered().values() if app.component)


def _app_part(name: str) -> str | None:
    return next((part for part, prefixes in _app_parts() if name.startswith(prefixes)), None)


def component(name: str) -> str:
    """Which part of the bundle an archive entry belongs to (for the size table in the report)."""
    backend_packages = _backend_packages()
    if name.startswith("PYZ:"):
        top = name[4:].split(".")[0]
        return {"numpy": "numpy", "edge": "edgepack runtime"}.get(top, "runtime backend" if top in backend_packages
                                                                   else _app_part(top) or "python")
    n = name.removeprefix("_internal/")
    if n.startswith("edgepack/"):
        return "model" if n.startswith("edgepack/model") else "edgepack runtime"
    if n.startswith(("numpy/", "numpy.libs/", "libscipy_openblas", "libopenblas", "libgfortran", "libquadmath",
                     "libblas", "liblapack")):
        return "numpy"
    part = _app_part(n)
    if part:
        return part
    top = n.split("/")[0]
    if top in backend_packages or top.endswith(".libs") and n.startswith(backend_packages):
        return "runtime backend"
    if n.startswith(("libpython", "python3", "base_library", "pyi", "struct")) or "/" not in n and "." not in n:
        return "python"
    return "other"


def inspect(env: BuildEnv, exe: Path, extract: Path | None = None) -> dict:
    """List the bundle; with `extract`, also write every binary (shared library) there."""
    args = [str(env.python), "-c", LISTER, str(exe)] + ([str(extract)] if extract else [])
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"cannot read the bundle {exe}: {result.stderr.strip().splitlines()[-1:]}")
    listing = json.loads(result.stdout)
    sizes: dict[str, int] = {}
    for e in listing["entries"]:
        part = component(e["name"])
        sizes[part] = sizes.get(part, 0) + e["bytes"]
    forbidden = sorted({m for m in listing["modules"] for f in FORBIDDEN if m == f or m.startswith(f + ".")})
    return {"components": dict(sorted(sizes.items(), key=lambda kv: -kv[1])), "modules": listing["modules"],
            "entries": len(listing["entries"]), "forbidden_modules": forbidden,
            "binaries": sorted(e["name"] for e in listing["entries"] if e["kind"] in ("b", "file"))}
