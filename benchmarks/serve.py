#!/usr/bin/env python3
"""Serve mode against in-process onnxruntime on the same model, in one run: classify latency (p50/p99) and
requests/s over loopback with 1, 4 and 16 keep-alive clients (JSON and .npz bodies), and how long a detection
takes from the voice executable to an event reader (a Python SSE client and Debian's chromium).

    .venv/bin/python benchmarks/serve.py [--requests 2000] [--out benchmarks/results/serve.json]

The model is the demo's synthetic-voice DS-CNN (`demos/kws/model/kws.onnx`, input [1, 1, 40, 98]: a 16 kB
request body as JSON, 15.7 kB as .npz), built by `edge build` for x86_64, one inference thread everywhere."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.bundle import builder  # noqa: E402
from edge.runtime.ort import inference_session  # noqa: E402
from tests import wavs  # noqa: E402
from tests.served import Served, sse_events  # noqa: E402

MODEL = ROOT / "demos" / "kws" / "model" / "kws.onnx"
LABELS = ROOT / "demos" / "kws" / "model" / "labels.json"
CLIENTS = (1, 4, 16)


def _pct(times: list[float], q: float) -> float:
    t = sorted(times)
    return round(t[min(len(t) - 1, int(q * (len(t) - 1) + 0.5))], 3)


def stats(times_ms: list[float], wall_s: float) -> dict:
    return {"requests": len(times_ms), "p50_ms": _pct(times_ms, 0.5), "p99_ms": _pct(times_ms, 0.99),
            "requests_per_s": round(len(times_ms) / wall_s, 1)}


def in_process(x: np.ndarray, n: int) -> dict:
    sess = inference_session(MODEL, 1)
    name = sess.get_inputs()[0].name
    for _ in range(50):
        sess.run(None, {name: x})
    times, t0 = [], time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e3)
    return stats(times, time.perf_counter() - t0)


def over_http(served: Served, body: bytes, headers: dict, n: int, clients: int) -> dict:
    times: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        c = served.connection()
        mine = []
        for _ in range(10):  # warm the connection
            c.request("POST", "/v1/classify", body, headers)
            c.getresponse().read()
        barrier.wait()
        for _ in range(k):
            t = time.perf_counter()
            c.request("POST", "/v1/classify", body, headers)
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
            mine.append((time.perf_counter() - t) * 1e3)
        c.close()
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=client, args=(n // clients,)) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return stats(times, time.perf_counter() - t0)


def classify_benchmark(exe: Path, n: int) -> dict:
    x = np.random.default_rng(0).standard_normal((1, 1, 40, 98)).astype(np.float32)
    as_json = json.dumps({"inputs": {"logmel": x.tolist()}}).encode()
    buf = io.BytesIO()
    np.savez(buf, logmel=x)
    as_npz = buf.getvalue()
    result = {"in_process": in_process(x, n), "body_bytes": {"json": len(as_json), "npz": len(as_npz)}}
    served = Served(exe, "--threads", "1")
    try:
        for c in CLIENTS:
            result[f"json_{c}"] = over_http(served, as_json, {"Content-Type": "application/json"}, n, c)
            result[f"npz_{c}"] = over_http(served, as_npz, {"Content-Type": "application/x-npz",
                                                            "Accept": "application/x-npz"}, n, c)
    finally:
        served.stop()
    base = result["in_process"]["p50_ms"]
    for k, v in result.items():
        if k.startswith(("json_", "npz_")):
            v["p50_over_in_process"] = round(v["p50_ms"] / base, 2)
    return result


def event_latency_python(exe: Path) -> dict:
    s = Served(exe, "--wav", wavs.SAMPLE, "--json")
    got: list = []
    stop = threading.Event()
    arrivals: list[float] = []
    threading.Thread(target=sse_events, args=(s, stop, got, None, arrivals), daemon=True).start()
    time.sleep(11.0)  # the sample is 9.1 s, played in real time
    s.stop()
    stop.set()
    lat = [(a - d["wall"]) * 1e3 for a, (k, d) in zip(arrivals, got) if k == "detection"]
    return {"detections": len(lat), "median_ms": round(float(np.median(lat)), 2) if lat else None,
            "max_ms": round(max(lat), 2) if lat else None}


def event_latency_browser(exe: Path) -> dict | None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    from tests.test_serve_voice import _browser

    s = Served(exe, "--wav", wavs.SAMPLE, "--json")
    browser = _browser(800, 480)
    try:
        browser.get(f"http://127.0.0.1:{s.port}/")
        browser.execute_script("window.__lat = []; new EventSource('/v1/events').addEventListener('detection',"
                               " m => window.__lat.push(Date.now() - JSON.parse(m.data).wall * 1000));")
        time.sleep(11.0)
        lat = browser.execute_script("return window.__lat")
    finally:
        browser.quit()
        s.stop()
    return {"detections": len(lat), "median_ms": round(float(np.median(lat)), 2) if lat else None,
            "max_ms": round(max(lat), 2) if lat else None}


def print_tables(r: dict) -> None:
    c = r["classify"]
    print("\nclassify over loopback (DS-CNN, 1 inference thread), against in-process onnxruntime:\n")
    print("| how | clients | p50 ms | p99 ms | requests/s | p50 / in-process |")
    print("|---|---|---|---|---|---|")
    ip = c["in_process"]
    print(f"| in-process onnxruntime | 1 | {ip['p50_ms']} | {ip['p99_ms']} | {ip['requests_per_s']} | 1 |")
    for kind in ("json", "npz"):
        for n in CLIENTS:
            v = c[f"{kind}_{n}"]
            print(f"| HTTP, {kind} body | {n} | {v['p50_ms']} | {v['p99_ms']} | {v['requests_per_s']} | "
                  f"{v['p50_over_in_process']} |")
    print("\ndetection → event reader (voice executable, --wav in real time):\n")
    for who in ("python_sse", "chromium"):
        e = r["events"].get(who)
        if e:
            print(f"- {who}: {e['detections']} detections, median {e['median_ms']} ms, max {e['max_ms']} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000, help="requests per measurement (default %(default)s)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve.json")
    args = ap.parse_args()
    progress = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        exe, voice = Path(tmp) / "kws", Path(tmp) / "voice"
        progress("== edge build: the model, then the voice app")
        builder.build(builder.BuildOptions(model=MODEL, output=exe, target="x86_64", optimize={}), progress)
        builder.build(builder.BuildOptions(model=MODEL, output=voice, target="x86_64", optimize={},
                                           app="voice-commands", app_options={"labels": LABELS}), progress)
        progress("== classify")
        result = {"requests": args.requests, "classify": classify_benchmark(exe, args.requests)}
        progress("== events")
        result["events"] = {"python_sse": event_latency_python(voice), "chromium": event_latency_browser(voice)}
        result["executable_bytes"] = exe.stat().st_size
    print_tables(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
