"""Sample data for calibration and evaluation: an `.npz` (one array per input name, first axis =
samples, optional `labels`; text arrays are per-sample notes and ignored) or a folder of `.npz`/`.npy`
files (concatenated in name order; a bare `.npy` belongs to the model's only input)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import DataError
from edge.files import check_readable_file, os_error
from edge.model import TensorSpec
from edge.runtime import arrays

LABELS = "labels"


@dataclass
class Samples:
    feeds: list[dict[str, np.ndarray]]  # one feed per sample, batch 1
    labels: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(self.feeds)


def load(path: str | Path, specs: list[TensorSpec], what: str = "data") -> Samples:
    path = Path(path)
    if path.is_dir():
        try:
            files = sorted(p for p in path.iterdir() if p.suffix in (".npz", ".npy"))
        except OSError as e:
            raise os_error(e, path, DataError, f"cannot list the {what} folder") from None
        if not files:
            raise DataError(f"{path}: {what} folder holds no .npz or .npy files")
    elif path.exists():
        check_readable_file(path, what, DataError)
        files = [path]
    else:
        raise DataError(f"{path}: {what} not found")
    chunks = [_read(f, specs) for f in files]
    names = set(chunks[0])
    for f, c in zip(files, chunks):
        if set(c) != names:
            raise DataError(f"{f}: holds arrays {sorted(c)}, other files hold {sorted(names)}")
    arrays = {n: np.concatenate([c[n] for c in chunks]) for n in names}
    return _validate(arrays, specs, str(path))


def _read(file: Path, specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    try:
        if file.suffix == ".npy":
            if len(specs) != 1:
                raise DataError(
                    f"{file}: a bare .npy is only accepted for a model with one input; this model has "
                    f"{len(specs)} ({', '.join(s.name for s in specs)}): use an .npz with one array per input"
                )
            return {specs[0].name: arrays.load_npy(file)}
        return arrays.load_npz(file)
    except arrays.ArrayFileError as e:
        raise DataError(str(e)) from None
    except OSError as e:
        raise os_error(e, file, DataError, "cannot read") from None


def _validate(arrays: dict[str, np.ndarray], specs: list[TensorSpec], source: str) -> Samples:
    expected = {s.name for s in specs}
    labels = arrays.pop(LABELS, None)
    for name in [n for n, a in arrays.items() if n not in expected and a.dtype.kind in "US"]:
        del arrays[name]  # text per sample (e.g. which voice or engine): notes, never a model input
    unknown = sorted(set(arrays) - expected)
    missing = sorted(expected - set(arrays))
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing array(s) {missing}")
        if unknown:
            parts.append(f"unknown array(s) {unknown}")
        raise DataError(f"{source}: {'; '.join(parts)}; the model's inputs are {sorted(expected)}")
    counts = {n: len(a) for n, a in arrays.items()}
    if len(set(counts.values())) != 1:
        raise DataError(f"{source}: arrays hold different sample counts {counts}")
    count = next(iter(counts.values()))
    if count == 0:
        raise DataError(f"{source}: holds no samples")
    converted = {s.name: _match(arrays[s.name], s, source) for s in specs}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim == 2:  # one-hot
            labels = labels.argmax(axis=1)
        if labels.ndim != 1 or len(labels) != count or labels.dtype.kind not in "iu":
            raise DataError(f"{source}: 'labels' must be {count} integer class ids, got {labels.dtype} {labels.shape}")
    feeds = [{n: a[i] for n, a in converted.items()} for i in range(count)]
    return Samples(feeds, labels, source)


def _match(array: np.ndarray, spec: TensorSpec, source: str) -> np.ndarray:
    """Return [samples, *input shape]; a stack that lacks the batch axis of size 1 gets it added."""
    if spec.dtype.kind != array.dtype.kind and not (spec.dtype.kind in "iu" and array.dtype.kind in "iu"):
        raise DataError(f"{source}: array '{spec.name}' is {array.dtype}, the model input needs {spec.dtype}")
    array = array.astype(spec.dtype, copy=False)
    if array.dtype.kind in "fc" and not np.isfinite(array).all():
        bad = int(array.size - np.isfinite(array).sum())
        raise DataError(f"{source}: array '{spec.name}' holds {bad:,} NaN or infinite value(s) of {array.size:,}; "
                        "no measurement on such data means anything")
    given = list(array.shape)
    if spec.shape is None:
        return array[:, None] if array.ndim else array
    rank = len(spec.shape)
    if array.ndim == rank:  # first axis is both sample and batch axis: feed one at a time
        array = array[:, None]
    if array.ndim != rank + 1:
        raise DataError(
            f"{source}: array '{spec.name}' has shape {given}; expected samples × {_fmt(spec.shape)}"
        )
    for i, (want, got) in enumerate(zip(spec.shape, array.shape[1:])):
        if isinstance(want, int) and want > 0 and want != got:
            raise DataError(
                f"{source}: array '{spec.name}' has shape {given}: dimension {i} of a sample is {got}, "
                f"the model input needs {_fmt(spec.shape)} (first axis of the array = samples)"
            )
    return array


def _fmt(shape) -> str:
    return "[" + ", ".join(str(d) if isinstance(d, int) else (d or "?") for d in shape) + "]"


def check_labels(samples: Samples, scores: np.ndarray) -> None:
    """Labels are class ids of the model's first output: each must be one of its classes."""
    scores = np.asarray(scores)
    classes = int(scores.shape[-1]) if scores.ndim else 1
    bad = samples.labels[(samples.labels < 0) | (samples.labels >= classes)]
    if len(bad):
        raise DataError(f"{samples.source}: 'labels' holds {len(bad)} class id(s) outside the model's {classes} "
                        f"classes (e.g. {int(bad[0])}; valid ids are 0..{classes - 1})")
