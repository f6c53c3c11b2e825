"""Policy checks on every ELF file in a bundle (in the spirit of auditwheel): the highest GLIBC symbol
version any of them needs must not exceed the target's floor, and every one must be built for the
target's architecture."""

from __future__ import annotations

from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

from edge import arches


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def read(path: Path) -> dict | None:
    """{'arch': ..., 'glibc': highest GLIBC_x.y needed or None, 'needed': DT_NEEDED sonames, 'soname': DT_SONAME
    or None} for an ELF file, None for anything else."""
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            return None
        f.seek(0)
        try:
            elf = ELFFile(f)
            arch = arches.by_elf_machine().get(elf["e_machine"], elf["e_machine"])
            needed, libraries, soname = [], [], None
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        if tag.entry.d_tag == "DT_NEEDED":
                            libraries.append(tag.needed)
                        elif tag.entry.d_tag == "DT_SONAME":
                            soname = tag.soname
                if isinstance(section, GNUVerNeedSection):
                    for _, auxes in section.iter_versions():
                        for aux in auxes:
                            name = aux.name
                            if name.startswith("GLIBC_") and name[6:7].isdigit():
                                needed.append(version_tuple(name[6:]))
        except ELFError:
            return None
    return {"arch": arch, "glibc": ".".join(map(str, max(needed))) if needed else None, "needed": libraries,
            "soname": soname}


def glibc_provided(libc: Path) -> str | None:
    """The newest GLIBC_x.y symbol version a libc.so.6 defines: the newest a program may need to run with it."""
    found = []
    try:
        with open(libc, "rb") as f:
            for section in ELFFile(f).iter_sections():
                if isinstance(section, GNUVerDefSection):
                    found += [version_tuple(aux.name[6:]) for _, auxes in section.iter_versions() for aux in auxes
                              if aux.name.startswith("GLIBC_") and aux.name[6:7].isdigit()]
    except (OSError, ELFError):
        return None
    return ".".join(map(str, max(found))) if found else None


def system_libraries(per_file: dict[str, dict]) -> list[str]:
    """The sonames the bundle's ELF files need that no file in it provides: what the board's system must have
    (a package's Depends are computed from these)."""
    provided = {Path(name).name for name in per_file} | {i["soname"] for i in per_file.values() if i["soname"]}
    return sorted({lib for i in per_file.values() for lib in i["needed"]} - provided)


def check(files: list[tuple[str, Path]], floor: str, arch: str) -> dict:
    """files: (name in the bundle, path on disk). Returns the report; 'ok' is False on any violation."""
    per_file, too_new, wrong_arch = {}, [], []
    for name, path in files:
        info = read(path)
        if info is None:
            continue
        per_file[name] = info
        if info["glibc"] and version_tuple(info["glibc"]) > version_tuple(floor):
            too_new.append(f"{name} (GLIBC_{info['glibc']})")
        if info["arch"] != arch:
            wrong_arch.append(f"{name} ({info['arch']})")
    versions = [v["glibc"] for v in per_file.values() if v["glibc"]]
    found = max(versions, key=version_tuple) if versions else None
    return {"elf_files": len(per_file), "glibc_needed": found, "glibc_floor": floor, "too_new": sorted(too_new),
            "wrong_arch": sorted(wrong_arch), "ok": not too_new and not wrong_arch,
            "system_libraries": system_libraries(per_file),
            "per_file": dict(sorted(per_file.items()))}
