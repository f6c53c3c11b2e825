"""Inference backends, host side: what each needs to package a model (build-environment pins, the
files it ships, PyInstaller rules, checks before any work). One module per backend, one registry;
the device-side halves are edge/runtime/ort.py and edge/runtime/mx.py, chosen by the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # annotations only: `edge inspect`'s parser reads NAMES without loading onnx
    import numpy as np
    import onnx


class Backend(Protocol):
    name: str  # in the manifest and on the command line
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


NAMES = ("onnxruntime", "mxnet")  # the registry: edge/backends/<name>.py defines BACKEND


def get(name: str) -> Backend:
    import importlib

    return importlib.import_module(f"edge.backends.{name}").BACKEND


def runtime_modules() -> set[str]:
    """The device-side module of every backend (a bundle carries only its own)."""
    return {get(n).runtime_module for n in NAMES}
