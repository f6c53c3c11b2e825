"""Boards as data: targets/*.toml → Target. Adding a board is adding a file."""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edge import arches, backends
from edge.errors import TargetError

REQUIRED = ("name", "description", "arch", "glibc_floor", "base", "python", "default_threads", "default_quantize",
            "runtime")
REQUIRED_RUNTIME = ("onnxruntime", "numpy", "pyinstaller")
OWN_KEYS = {
    "": (*REQUIRED, "quantize_activations"),
    "runtime": ("debian", *REQUIRED_RUNTIME, "numpy_without_blas"),
}


def keys() -> dict[str, tuple[str, ...]]:
    """Every key a board file may hold, per table: its own, and the tables backends read (a misspelt key is an
    error, never a silently ignored setting)."""
    extra = backends.board_tables()
    tops = tuple(t for t in extra if "." not in t)
    return {**OWN_KEYS, "": (*OWN_KEYS[""], *tops), **extra}


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: str
    glibc_floor: str
    base: str
    python: str
    default_threads: int
    default_quantize: str
    runtime: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)  # backends' own tables (their pins, or `unavailable` and why)
    quantize_activations: str = "int8"  # int8 static's activation type: int8 (S8S8) or uint8 (U8S8)
    path: Path | None = None

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in REQUIRED}
        d["quantize_activations"] = self.quantize_activations
        d.update(self.tables)
        d["file"] = str(self.path) if self.path else None
        return d


def targets_dir() -> Path:
    env = os.environ.get("EDGEPACK_TARGETS")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "targets"


def load_file(path: Path) -> Target:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise TargetError(f"{path}: not a readable TOML file ({e})") from None
    _refuse_unknown_keys(path, data)
    missing = [k for k in REQUIRED if k not in data]
    missing += [f"runtime.{k}" for k in REQUIRED_RUNTIME if k not in data.get("runtime", {})]
    if missing:
        raise TargetError(f"{path}: target file misses field(s) {', '.join(missing)}")
    if data["name"] != path.stem:
        raise TargetError(f"{path}: name = {data['name']!r} must match the file name {path.stem!r}")
    arch = arches.all_arches().get(data["arch"])
    if arch is None or not arch.buildable:
        buildable = ", ".join(a.name for a in arches.all_arches().values() if a.buildable)
        raise TargetError(f"{path}: arch = {data['arch']!r}: boards can be {buildable} ({arches.FILE} describes "
                          "each architecture)")
    activations = data.get("quantize_activations", "int8")
    if activations not in ("int8", "uint8"):
        raise TargetError(f"{path}: quantize_activations = {activations!r}: choose int8 or uint8")
    tables = {t: data[t] for t in backends.board_tables() if "." not in t and t in data}
    return Target(**{k: data[k] for k in REQUIRED}, tables=tables, quantize_activations=activations, path=path)


def _refuse_unknown_keys(path: Path, data: dict) -> None:
    for table, allowed in keys().items():
        values = data
        for part in table.split(".") if table else ():
            values = values.get(part) if isinstance(values, dict) else None
        for key in values if isinstance(values, dict) else ():
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(allowed)}"
                raise TargetError(f"{path}: unknown key {key!r}" + (f" in [{table}]" if table else "") + f"; {hint}")


def all_targets() -> dict[str, Target]:
    return {p.stem: load_file(p) for p in sorted(targets_dir().glob("*.toml"))}


def for_this_machine() -> Target | None:
    """The board edgepack measures for when none is named: the one named after this machine's architecture, else
    the first of that architecture (an aarch64 host: a Raspberry Pi), else None."""
    import platform

    machine = platform.machine()
    boards = all_targets()
    return boards.get(machine) or next((t for t in boards.values() if t.arch == machine), None)


def get(name: str) -> Target:
    path = targets_dir() / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in targets_dir().glob("*.toml")))
        raise TargetError(f"unknown target {name!r}; known targets: {known} (one file each in {targets_dir()})")
    return load_file(path)
