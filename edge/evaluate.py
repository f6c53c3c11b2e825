"""Run models with onnxruntime and measure what optimization changed: output parity, top-1 agreement,
accuracy, latency (1 thread, batch 1), size, parameters and MACs."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort

from edge import stats
from edge.errors import DataError
from edge.runtime.ort import inference_session

# the one parity tolerance: lossless passes, the MXNet conversion and the finished executable are each held to
# max |diff| <= PARITY_RTOL * max(1, max |reference|)
PARITY_RTOL = 1e-4


def session(model: onnx.ModelProto, threads: int = 1) -> ort.InferenceSession:
    return inference_session(model.SerializeToString(), threads)


def run_all(sess: ort.InferenceSession, feeds: list[dict[str, np.ndarray]], source: str = "") -> list[list[np.ndarray]]:
    names = {i.name for i in sess.get_inputs()}
    results = []
    for feed in feeds:
        try:
            results.append(sess.run(None, {k: v for k, v in feed.items() if k in names}))
        except (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ort.capi.onnxruntime_pybind11_state.Fail) as e:
            first = str(e).strip().splitlines()[0]
            raise DataError(f"{source or 'sample data'}: the model rejects a sample: {first}") from None
    return results


def max_rel_diff(ref: list[list[np.ndarray]], out: list[list[np.ndarray]]) -> float:
    """Largest |out - ref| over all samples and outputs, relative to max(1, max |ref|) of that output."""
    worst = 0.0
    for r_sample, o_sample in zip(ref, out):
        for r, o in zip(r_sample, o_sample):
            r = np.asarray(r, np.float64)
            o = np.asarray(o, np.float64)
            if r.shape != o.shape:
                return float("inf")
            if r.size:
                scale = max(1.0, float(np.nanmax(np.abs(r))))
                worst = max(worst, float(np.nanmax(np.abs(o - r))) / scale)
    return worst


def _classes(outputs: list[list[np.ndarray]]) -> np.ndarray | None:
    """Top-1 classes of the first output, one row per sample×batch, when it looks like class scores."""
    first = [np.asarray(s[0]) for s in outputs]
    if not first or first[0].ndim == 0 or first[0].shape[-1] < 2 or first[0].dtype.kind != "f":
        return None
    return np.concatenate([f.reshape(-1, f.shape[-1]).argmax(axis=1) for f in first])


def compare(ref: list[list[np.ndarray]], out: list[list[np.ndarray]], output_names: list[str]) -> dict:
    per_output = {}
    for k, name in enumerate(output_names):
        r = np.concatenate([np.asarray(s[k], np.float64).ravel() for s in ref])
        o = np.concatenate([np.asarray(s[k], np.float64).ravel() for s in out])
        if r.shape != o.shape:
            per_output[name] = {"error": "shapes differ"}
            continue
        diff = np.abs(o - r)
        denom = np.linalg.norm(r) * np.linalg.norm(o)
        per_output[name] = {
            "max_abs_diff": float(diff.max()) if diff.size else 0.0,
            "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
            "cosine": float(np.dot(r, o) / denom) if denom > 0 else (1.0 if np.allclose(r, o) else 0.0),
        }
    rc, oc = _classes(ref), _classes(out)
    agreement = float(np.mean(rc == oc)) if rc is not None and oc is not None and rc.shape == oc.shape else None
    return {"outputs": per_output, "top1_agreement": agreement, "max_rel_diff": max_rel_diff(ref, out)}


def accuracy(outputs: list[list[np.ndarray]], labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    classes = _classes(outputs)
    if classes is None or len(classes) != len(labels):
        return None
    return float(np.mean(classes == labels))


def latency_ms(sess: ort.InferenceSession, feed: dict[str, np.ndarray], budget_s: float = 1.0,
               max_runs: int = 200) -> dict:
    names = {i.name for i in sess.get_inputs()}
    feed = {k: v for k, v in feed.items() if k in names}
    for _ in range(3):
        sess.run(None, feed)
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < 10 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "runs": len(times)}


def drop_pp(ref: list[list[np.ndarray]], out: list[list[np.ndarray]], labels: np.ndarray | None
            ) -> tuple[float | None, str | None]:
    """(points lost, basis): accuracy with labels, top-1 agreement with the reference without; (None, None) when
    the first output is not class scores."""
    ref_acc, acc = accuracy(ref, labels), accuracy(out, labels)
    if ref_acc is not None and acc is not None:
        return (ref_acc - acc) * 100, "accuracy"
    rc, oc = _classes(ref), _classes(out)
    if rc is not None and oc is not None and rc.shape == oc.shape:
        return (1 - float(np.mean(rc == oc))) * 100, "top-1 agreement"
    return None, None


@dataclass
class Measured:
    outputs: list[list[np.ndarray]]
    metrics: dict


def measure(model: onnx.ModelProto, feeds, labels=None, source: str = "") -> Measured:
    sess = session(model)
    outs = run_all(sess, feeds, source)
    params, zeros = stats.parameters(model)
    shapes = {k: v.shape for k, v in feeds[0].items()}
    metrics = {
        "size_bytes": model.ByteSize(),
        "compressed_bytes": stats.compressed_size(model),
        "parameters": params,
        "zero_share": round(zeros / params, 4) if params else 0.0,
        "macs": stats.macs(model, shapes),
        "latency": latency_ms(sess, feeds[0]),
        "accuracy": accuracy(outs, labels),
    }
    return Measured(outs, metrics)
