"""Optimization passes: small steps, each taking a model and returning a changed one plus what it did.

A pass is a module-level object satisfying `Pass`; `pipeline.plan()` picks and orders them from the
command-line options. Lossless passes are checked for parity by the pipeline and reverted if they
change the function; lossy passes are judged by the evaluation at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import onnx

from edge.data import Samples


@dataclass
class Context:
    """What passes may need beyond the model itself."""

    workdir: Path
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    parity_feeds: list[dict[str, np.ndarray]] = field(default_factory=list)
    calibration: Samples | None = None
    options: dict = field(default_factory=dict)


class Outcome(dict):
    """What a pass reports: free-form details plus `notes` (human sentences) and an optional `fallback`."""

    def note(self, text: str) -> Outcome:
        self.setdefault("notes", []).append(text)
        return self


class Pass(Protocol):
    name: str
    lossless: bool

    def run(self, model: onnx.ModelProto, ctx: Context) -> tuple[onnx.ModelProto, Outcome]: ...
