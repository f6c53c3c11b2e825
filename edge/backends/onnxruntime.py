"""onnxruntime: the default backend. The optimized ONNX model ships as it is."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import onnx


class OnnxRuntime:
    name = "onnxruntime"
    description = "any model, every board"
    python_packages = ("onnxruntime",)
    board_tables: dict[str, tuple[str, ...]] = {}  # its pins are the board's [runtime] table, which every build reads
    runtime_module = "ort"
    hidden: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()

    def check(self, target, optimize, source, source_path) -> None:
        pass

    def requirements(self, target, runtime_wheel: Path | None) -> list[str]:
        rt = target.runtime
        ort_spec = str(runtime_wheel) if runtime_wheel else f"onnxruntime=={rt['onnxruntime']}"
        return [f"numpy=={rt['numpy']}", ort_spec, f"pyinstaller=={rt['pyinstaller']}"]

    def key(self, target) -> dict:
        return {}  # the target's [runtime] table is part of every key already

    def probe(self) -> str:
        return "{'onnxruntime': __import__('onnxruntime').__version__}"

    def package(self, model_path: Path, model: onnx.ModelProto, payload: Path, env, work: Path,
                feeds: list[dict[str, np.ndarray]], progress) -> dict:
        shutil.copyfile(model_path, payload / "model.onnx")
        return {"file": "model.onnx",
                "backend": {"name": self.name, "version": env.packages["onnxruntime"], "providers": ["CPU"]},
                "report": {}}

    def binaries(self, env) -> list[tuple[str, str]]:
        return []

    def debs(self, target) -> tuple[str, ...]:
        return ()

    def finish_env(self, env_path, target, log, progress) -> dict:
        return {}

    def host_libraries(self, target) -> dict[str, str]:
        return {}  # its wheel carries what it links

    def preflight(self, model, input_shapes) -> None:
        return None


BACKEND = OnnxRuntime()
