"""Optimization passes: small steps, each taking a model and returning a changed one plus what it did.

A pass is a module-level object satisfying `Pass`; `pipeline.plan()` picks and orders them from the
command-line options. Lossless passes are checked for parity by the pipeline and reverted if they
change the function; lossy passes are judged by the evaluation at the end.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
    options: dict = field(default_factory=dict)  # Option.name → value
    target: Any = None  # the edge.targets.Target the model is optimized for (its defaults, its architecture)
    evaluation: Samples | None = None  # --eval data: what accuracy searches measure on
    reference: onnx.ModelProto | None = None  # the function every lossy result is compared with
    progress: Callable[[str], None] = lambda text: None

    def value(self, option: Option):
        """A pass's setting: what was given, else the option's own default."""
        value = self.options.get(option.name)
        return copy.copy(option.default) if value is None else value


class Outcome(dict):
    """What a pass reports: free-form details plus `notes` (human sentences) and an optional `fallback`."""

    def note(self, text: str) -> Outcome:
        self.setdefault("notes", []).append(text)
        return self


def ratio(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None


def names(text: str) -> list[str]:
    found = [n.strip() for n in text.split(",") if n.strip()]
    if not found:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return found


@dataclass(frozen=True)
class Option:
    """A setting a pass (or the pipeline) declares once: `edge optimize`/`edge build` make a flag of it,
    pipeline.Options a field, and the pass reads it back from ctx.options[name]."""

    name: str  # the Options field and ctx.options key
    flag: str
    help: str
    group: str  # "graph", "lossy" or "evaluation": where --help lists it
    type: Callable | None = None  # argparse's conversion of the flag's text
    default: Any = None
    metavar: str | None = None
    action: str | None = None  # argparse action ("append", "store_false")
    parse: Callable[[Any], Any] | None = None  # flag value → field value (e.g. NAME=D1,D2 → {name: dims})
    check: Callable[[Any], str | None] | None = None  # a field value → why it is refused, or None

    def argparse_kwargs(self) -> dict:
        kw = {"dest": self.name, "help": self.help}
        if self.action:
            kw["action"] = self.action
        if self.type:
            kw["type"] = self.type
        if self.metavar and self.action != "store_false":
            kw["metavar"] = self.metavar
        if self.default is not None and self.parse is None:
            kw["default"] = copy.copy(self.default)
        return kw

    def from_flag(self, value):
        return self.parse(value) if self.parse else value

    def field(self):
        default = self.default
        return field(default_factory=lambda: copy.copy(default)) if isinstance(default, list | dict) \
            else field(default=default)


def in_range(flag: str, low: float, high_exclusive: float, words: str):
    def check(value):
        if value is not None and not low <= value < high_exclusive:  # also refuses nan
            return f"{flag} {value}: {words}"
        return None
    return check


class Pass(Protocol):
    name: str
    lossless: bool
    reference: bool  # it defines the function the others must keep (cut, fixed shapes), so it runs first
    options: tuple[Option, ...]  # what this pass reads from ctx.options

    def wanted(self, settings: dict) -> bool:
        """Whether the pipeline runs this pass, from every option's value (Option.name → value)."""

    def run(self, model: onnx.ModelProto, ctx: Context) -> tuple[onnx.ModelProto, Outcome]: ...
