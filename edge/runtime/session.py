"""One interface over the inference backends; the manifest names which one an executable carries."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

# backend name in the manifest → module in edge.runtime that implements `open_session`
BACKENDS = {"onnxruntime": "ort", "mxnet": "mx"}


@dataclass(frozen=True)
class Spec:
    name: str
    dtype: str
    shape: list  # ints, or strings for dynamic dimensions

    def describe(self) -> str:
        return f"{self.name}: {self.dtype}[{', '.join(str(d) for d in self.shape)}]"


class Session(Protocol):
    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def specs(entries: list[dict]) -> list[Spec]:
    return [Spec(e["name"], e["dtype"], list(e["shape"] or [])) for e in entries]


def open_session(manifest: dict, model: Path, threads: int) -> Session:
    module = importlib.import_module(f"{__package__}.{BACKENDS[manifest['backend']['name']]}")
    return module.open_session(model, threads)
