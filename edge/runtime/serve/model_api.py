"""The routes every executable serves: GET /v1/info (the manifest), POST /v1/classify (inputs as JSON or an
.npz body, outputs by name with timings), GET /healthz. Inputs are checked by the command line's own
check_feed, so a wrong name, shape or dtype gets the CLI's line, as a 400."""

from __future__ import annotations

import io
import json
import threading
import time

import numpy as np

from edge.runtime import arrays
from edge.runtime.feeds import InputError, as_json, check_feed
from edge.runtime.manifest import Manifest

from .http import HttpError, Request, Response

NPZ = "application/x-npz"


def _json_inputs(body: bytes, inputs) -> dict[str, np.ndarray]:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise HttpError(400, f"body is not JSON ({str(e)[:120]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), dict):
        raise HttpError(400, 'body needs {"inputs": {"NAME": [...]}}')
    dtypes = {s.name: s.dtype for s in inputs}
    feeds = {}
    for name, value in doc["inputs"].items():
        try:
            feeds[name] = np.asarray(value, dtype=dtypes.get(name, "float32"))
        except (ValueError, TypeError, OverflowError) as e:
            raise HttpError(400, f"input {name!r}: not a numeric array of {dtypes.get(name, 'float32')} "
                                 f"({str(e).splitlines()[0][:120]})") from None
    return feeds


def _npz_inputs(body: bytes) -> dict[str, np.ndarray]:
    try:
        return arrays.load_npz("the request body", body)
    except arrays.ArrayFileError as e:
        raise HttpError(400, str(e)) from None


def _npz_bytes(outputs: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **outputs)
    return buf.getvalue()


class ModelRoutes:
    """One session for every client. onnxruntime sessions run concurrently (the backend says so with
    `concurrent = True`); any other backend is run by one client at a time."""

    def __init__(self, manifest: Manifest, session):
        self.manifest, self.session = manifest, session
        self._lock = None if getattr(session, "concurrent", False) else threading.Lock()
        self.requests = 0

    def routes(self) -> dict:
        return {("GET", "/v1/info"): self.info, ("POST", "/v1/classify"): self.classify,
                ("GET", "/healthz"): self.health}

    def info(self, _r: Request) -> Response:
        return Response(200, self.manifest.dumps().encode() + b"\n")

    def health(self, _r: Request) -> Response:
        return Response.json({"status": "ok", "model": self.manifest.model.source, "requests": self.requests})

    def classify(self, r: Request) -> Response:
        t0 = time.perf_counter()
        is_npz = r.headers.get("content-type", "").split(";")[0].strip() == NPZ or r.body[:4] == b"PK\x03\x04"
        feeds = _npz_inputs(r.body) if is_npz else _json_inputs(r.body, self.manifest.inputs)
        try:
            feeds = check_feed(feeds, self.manifest.inputs)
        except InputError as e:
            raise HttpError(400, str(e)) from None
        t1 = time.perf_counter()
        if self._lock:
            with self._lock:
                results = self.session.run(feeds)
        else:
            results = self.session.run(feeds)
        t2 = time.perf_counter()
        self.requests += 1
        outputs = dict(zip([o.name for o in self.manifest.outputs], results))
        timing = {"decode_ms": 1e3 * (t1 - t0), "inference_ms": 1e3 * (t2 - t1)}
        if NPZ in r.headers.get("accept", ""):
            body = _npz_bytes(outputs)
            timing["encode_ms"] = 1e3 * (time.perf_counter() - t2)
            return Response(200, body, NPZ, {"X-Timing": json.dumps(timing)})
        encoded = {k: as_json(v) for k, v in outputs.items()}
        timing["encode_ms"] = 1e3 * (time.perf_counter() - t2)
        return Response.json({"outputs": encoded, "timing": {k: round(v, 4) for k, v in timing.items()}})
