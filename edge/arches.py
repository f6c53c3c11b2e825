"""CPU architectures as data: edge/resources/architectures.toml → Arch, one table each. Adding an architecture is
a table there plus the board files that use it. Standard library only: edge doctor reads it before anything is
installed."""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from edge.errors import TargetError

FILE = Path(__file__).resolve().parent / "resources" / "architectures.toml"


@dataclass(frozen=True)
class Arch:
    name: str
    elf_machine: str
    debian: str
    loader: str
    bootloader_folder: str | None = None
    compiler: str | None = None
    compiler_package: str | None = None
    qemu: str | None = None
    binutils: str | None = None
    binutils_package: str | None = None
    cpuinfo: str | None = None  # one processor's entry, {index} for its number

    def emulated_cpuinfo(self, processors: int = 4) -> str:
        return "".join(self.cpuinfo.format(index=i) for i in range(processors)) if self.cpuinfo else ""

    @property
    def buildable(self) -> bool:
        return bool(self.compiler and self.bootloader_folder)


@functools.cache
def all_arches() -> dict[str, Arch]:
    known = {f.name for f in fields(Arch)} - {"name"}
    found = {}
    for name, table in tomllib.loads(FILE.read_text()).items():
        unknown = sorted(set(table) - known)
        if unknown:
            raise TargetError(f"{FILE}: [{name}] has unknown key(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(known))}")
        found[name] = Arch(name=name, **table)
    return found


def get(name: str) -> Arch:
    arch = all_arches().get(name)
    if arch is None:
        raise TargetError(f"unknown architecture {name!r}; {FILE} describes {', '.join(all_arches())}")
    return arch


@functools.cache
def by_elf_machine() -> dict[str, str]:
    return {a.elf_machine: a.name for a in all_arches().values()}
