"""Inference backends, host side: what each needs to package a model (build-environment pins, the
files it ships, PyInstaller rules, checks before any work). One module per backend, one line in NAMES;
the device-side half is edge/runtime/<runtime_module>.py, chosen by the manifest.

Backend modules import only the standard library and light parts of edge when loaded: `edge doctor` and
the board-file loader read their declarations before the virtual environment exists. Heavy imports go
inside the methods that need them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only
    import numpy as np
    import onnx


class Backend(Protocol):
    name: str  # in the manifest and on the command line
    description: str  # for `edge build --help`: what it takes, where it runs
    python_packages: tuple[str, ...]  # its top-level packages in an executable (the report's size table)
    # the board-file tables it reads ("" keys: the table's own; "NAME.SUB": a sub-table) and their keys
    board_tables: dict[str, tuple[str, ...]]
    runtime_module: str  # edge/runtime/<module>.py
    hidden: tuple[str, ...]  # modules PyInstaller cannot see
    excludes: tuple[str, ...]  # modules the runtime never needs from this backend's packages
    keep: tuple[str, ...]  # modules the bare runtime excludes but this backend imports

    def check(self, target, optimize: dict, source: onnx.ModelProto, source_path: Path) -> None:
        """Refuse early (BackendError / TargetError) what this backend cannot build from `source` with these
        pipeline.Options fields (judging the graph the pipeline will give it, not the file)."""

    def requirements(self, target, runtime_wheel: Path | None) -> list[str]: ...

    def key(self, target) -> dict:
        """What makes this backend's build environment different from another's."""

    def probe(self) -> str:
        """Python expression, run in the build environment, giving {package: version} of the runtime."""

    def package(self, model_path: Path, model: onnx.ModelProto, payload: Path, env, work: Path,
                feeds: list[dict[str, np.ndarray]], progress) -> dict:
        """Write the model file(s) into payload; return {"file", "backend": {...}, "report": {...}}."""

    def binaries(self, env) -> list[tuple[str, str]]:
        """(library, folder in the bundle) pairs PyInstaller would miss."""

    def debs(self, target) -> tuple[str, ...]:
        """Debian packages of the board's release this backend needs in an emulated build prefix."""

    def finish_env(self, env_path: Path, target, log: Path, progress) -> dict:
        """Last step of making a build environment (its packages are installed); returns what it did."""

    def host_libraries(self, target) -> dict[str, str]:
        """What a build for `target` on this machine needs from it: library (as ctypes.util.find_library names
        it) → the Debian package providing it. `edge doctor` checks them."""

    def preflight(self, model: onnx.ModelProto, input_shapes: dict) -> dict | None:
        """For `edge inspect --backend`: what this backend cannot take in `model`, never raising; None when it
        takes any model onnxruntime runs."""


NAMES = ("onnxruntime", "mxnet")  # the registry: edge/backends/<name>.py defines BACKEND
DEFAULT = NAMES[0]


def get(name: str) -> Backend:
    import importlib

    return importlib.import_module(f"edge.backends.{name}").BACKEND


def board_tables() -> dict[str, tuple[str, ...]]:
    """Every backend's board-file tables and their keys."""
    return {table: keys for n in NAMES for table, keys in get(n).board_tables.items()}


def python_packages() -> tuple[str, ...]:
    return tuple(p for n in NAMES for p in get(n).python_packages)


def runtime_modules() -> set[str]:
    """The device-side module of every backend (a bundle carries only its own)."""
    return {get(n).runtime_module for n in NAMES}
