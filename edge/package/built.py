"""An executable `edge build` made, read back with its report: everything a package is computed from."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edge import arches, files, targets
from edge.bundle import elf
from edge.errors import PackageError, TargetError

RESOURCES = Path(__file__).parent / "resources"
DEBIAN = tomllib.loads((RESOURCES / "debian.toml").read_text())
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian policy 5.6.1


@dataclass
class Built:
    path: Path  # the executable (onefile) or its folder (onedir)
    report: dict

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def onedir(self) -> bool:
        return self.report["format"] == "onedir"

    @property
    def program(self) -> Path:
        """The ELF file that starts: the executable itself, or the one of its name in its folder."""
        return self.path / self.path.name if self.onedir else self.path

    @property
    def manifest(self) -> dict:
        return self.report["manifest"]

    @property
    def arch(self) -> str:
        return self.report["target"]["arch"]

    @property
    def glibc_needed(self) -> str:
        return self.report["glibc"]["glibc_needed"]

    @property
    def system_libraries(self) -> list[str]:
        app = self.report.get("app") or {}
        return sorted({*self.report["glibc"]["system_libraries"], *app.get("system_libraries", [])})


def _report(path: Path) -> dict:
    report_path = path.with_name(path.name + ".report.json")
    if not report_path.is_file():
        raise PackageError(f"{path}: no build report beside it ({report_path.name}); package what `edge build` "
                           "wrote, with its report")
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError) as e:
        raise PackageError(f"{report_path}: not a readable build report ({e})") from None
    if not isinstance(report, dict) or "edgepack" not in report or "manifest" not in report:
        raise PackageError(f"{report_path}: not an edgepack build report")
    missing = [k for k in ("system_libraries",) if k not in report.get("glibc", {})] + \
              [k for k in ("licences",) if k not in report]
    if missing:
        raise PackageError(f"{report_path}: made by edgepack {report['edgepack']}, which did not record "
                           f"{', '.join(missing)}; rebuild the executable with this edgepack")
    return report


def read(path: Path) -> Built:
    """The executable and its report, checked against each other; PackageError/TargetError if they are not."""
    path = Path(path)
    if not path.exists():
        raise PackageError(f"{path}: no such file")
    built = Built(path, _report(path))
    if built.onedir != path.is_dir() or not built.program.is_file():
        raise PackageError(f"{path}: not the {built.report['format']} executable its report describes")
    if not built.onedir and files.sha256(path) != built.report["sha256"]:
        raise PackageError(f"{path}: differs from the executable its report describes (sha256); rebuild it or "
                           "put back the file `edge build` wrote")
    info = elf.read(built.program)
    if info is None:
        raise PackageError(f"{built.program}: not an ELF executable")
    if info["arch"] != built.arch:
        raise PackageError(f"{built.program}: an {info['arch']} file, but its report says {built.arch}")
    debian_arch(built.arch)
    if not PACKAGE_NAME.match(built.name):
        raise PackageError(f"{path}: {built.name!r} cannot be a Debian package name (lower-case letters, digits, "
                           "'+', '-', '.'); rebuild with e.g. -o dist/" + re.sub(r"[^a-z0-9+.-]", "-",
                                                                               built.name.lower()))
    return built


def debian_arch(arch: str) -> str:
    """The Debian architecture of an ELF machine that some board in targets/ has."""
    boards = sorted(t.name for t in targets.all_targets().values() if t.arch == arch)
    if not boards:  # a board's arch is always a known architecture (edge/targets.py)
        raise TargetError(f"no board in targets/ is {arch}: edge package makes packages for "
                          f"{', '.join(sorted({t.arch for t in targets.all_targets().values()}))}")
    return arches.get(arch).debian


def depends(built: Built) -> list[str]:
    """Debian packages that provide what the bundle needs from the system, from the report's ELF files."""
    # every architecture's dynamic loader comes with the C library
    table = DEBIAN["libraries"] | {a.loader: "libc6" for a in arches.all_arches().values()}
    unknown = [lib for lib in built.system_libraries if lib not in table]
    if unknown:
        raise PackageError(f"{built.path}: needs {', '.join(unknown)} from the system, and "
                           f"edge/package/resources/debian.toml does not say which Debian package provides it")
    packages = sorted({table[lib] for lib in built.system_libraries} | {"libc6"})
    return [f"libc6 (>= {built.glibc_needed})" if p == "libc6" else p for p in packages]
