"""A run's inputs checked against the manifest, and outputs as JSON: shared by the command line (model_cli) and
the HTTP routes (serve/model_api)."""

from __future__ import annotations

import numpy as np

from .manifest import Tensor


class InputError(Exception):
    """Input that does not fit the model or a flag: one line for the user, exit 2 (or a 400 when serving)."""


def signature(inputs: list[Tensor]) -> str:
    return "; ".join(s.describe() for s in inputs)


def check_feed(feeds: dict[str, np.ndarray], inputs: list[Tensor], where: str = "") -> dict[str, np.ndarray]:
    expected = {s.name: s for s in inputs}
    wrong = sorted(set(feeds) - set(expected))
    missing = sorted(set(expected) - set(feeds))
    if wrong or missing:
        what = ", ".join([f"unknown input {w!r}" for w in wrong] + [f"missing input {m!r}" for m in missing])
        raise InputError(f"{where}{what}; expected {signature(inputs)}")
    checked = {}
    for name, array in feeds.items():
        spec = expected[name]
        if str(array.dtype) != spec.dtype:
            raise InputError(f"{where}input {name!r} is {array.dtype}, expected {signature(inputs)}")
        fixed = [d for d in spec.shape]
        if array.ndim != len(fixed) or any(isinstance(d, int) and d != n for d, n in zip(fixed, array.shape)):
            raise InputError(f"{where}input {name!r} has shape {list(array.shape)}, expected {signature(inputs)}")
        checked[name] = array
    return checked


def as_json(a: np.ndarray):
    """Nested lists; a non-finite float becomes null (JSON has no NaN or Infinity)."""
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return np.where(np.isfinite(a), a.astype(object), None).tolist()
    return a.tolist()
