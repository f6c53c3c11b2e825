"""One interface over the inference backends; the manifest names the module of the one an executable carries."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

import numpy as np

from .manifest import Manifest


class Session(Protocol):
    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def open_session(manifest: Manifest, model: Path, threads: int) -> Session:
    module = importlib.import_module(f"{__package__}.{manifest.backend.module}")
    return module.open_session(model, threads)
