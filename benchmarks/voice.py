#!/usr/bin/env python3
"""The voice-command executable on streams: real speakers never used for training or any choice, and the
synthetic streams (held-out voices, an hour keyword-free): keywords heard, wrong labels, non-keyword clips
that trigger, false alarms per hour, latency, real-time factor; fp32 against int8; streaming features against
recomputing the whole window (the naive front end), all in one run.

    .venv/bin/python -m demos.kws.evaluation.real_stream --speech-commands DIR   # real speakers' stream (test split)
    nice python3 -m demos.kws.data.streams       # optional: the synthetic streams (~1 h of audio, synthesizers)
    .venv/bin/python benchmarks/voice.py [--out benchmarks/results/voice.json]

Headline figures come from the real executables (`--wav FILE --fast --json --threads 1`); the real-time
factor also from the first minute of the stream paced like a microphone (no --fast), with 1 and 2 threads. The
threshold sweep replays the same runtime code in this process (front ends, onnxruntime, Detector)
on cached window scores, since running the executable once per threshold would take an hour. Replaying and
scoring come from demos/kws/evaluation/listening.py, the one demo module benchmarks import."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demos.kws.evaluation.listening import replay, score, window_scores  # noqa: E402
from edge.bundle import builder  # noqa: E402
from edge.runtime.audio import features  # noqa: E402
from edge.runtime.audio.streaming import StreamingLogMel  # noqa: E402
from edge.runtime.audio.wavfile import WavReader  # noqa: E402

KWS = ROOT / "demos" / "kws"
MODEL = KWS / "model"
STREAMS = KWS / ".data" / "streams"
REAL = KWS / ".data" / "real_stream"
AFTER_END_S = 1.5  # a detection belongs to a word when it comes between its start and 1.5 s after its end
# Paced like a microphone (no --fast): the process sleeps between steps and each step starts cold, which costs
# more than --fast shows; these runs last as long as their audio, so only the first minute of keywords.wav
PACED_S = 60
PACED_THREADS = (1, 2)
SWEEP = [(th, sm) for sm in (3, 5, 8) for th in (0.5, 0.6, 0.7, 0.8, 0.9)]  # (threshold, windows averaged)


STREAM = ROOT / "build" / "kws-stream"  # python -m demos.kws.assembly.assemble: the demo's model


def hand_int8() -> dict:
    """int8 with the nodes assemble.py lists kept in float (the rpi4 default's exclusions)."""
    listing = json.loads((STREAM / "assemble_report.json").read_text())["int8_keep_float"]
    return {"quantize": "int8", "calibration": STREAM / "calib.npz", "exclude_nodes": listing}


def auto_int8() -> dict:
    """What `python3 build.py` ships: --quantize auto, chosen on the calibration speakers within 1 point."""
    calib = STREAM / "calib.npz"
    return {"quantize": "auto", "calibration": calib, "search_eval": calib, "max_accuracy_drop": 1.0}


# (model, labels, eval data, the optimization options beyond --eval)
MODELS = {
    "embedding+head fp32": (STREAM / "kws_stream.onnx", STREAM / "labels.json", STREAM / "heldout.npz", dict),
    "embedding+head int8": (STREAM / "kws_stream.onnx", STREAM / "labels.json", STREAM / "heldout.npz", hand_int8),
    "embedding+head auto": (STREAM / "kws_stream.onnx", STREAM / "labels.json", STREAM / "heldout.npz", auto_int8),
    "ds-cnn fp32": (MODEL / "kws.onnx", MODEL / "labels.json", MODEL / "heldout.npz", dict),
}


def build(kind: str, work: Path, progress) -> tuple[Path, dict]:
    model, labels, heldout, options = MODELS[kind]
    out = work / f"voice-{kind.replace(' ', '-')}"
    report = builder.build(builder.BuildOptions(model=model, output=out, target="x86_64",
                                                optimize={"eval": heldout, **options()}, app="voice-commands",
                                                app_options={"labels": labels}), progress)
    return out, report


def run_exe(exe: Path, wav: Path, threads: int = 1, fast: bool = True) -> tuple[list[dict], float, float]:
    t = time.monotonic()
    r = subprocess.run([str(exe), "--wav", str(wav), *(["--fast"] if fast else []), "--json", "--threads",
                        str(threads)], capture_output=True, text=True, check=True)
    wall = time.monotonic() - t
    rtf = float(re.search(r"real-time factor ([0-9.]+)", r.stderr).group(1))
    return [json.loads(ln) for ln in r.stdout.splitlines()], wall, rtf


def score_keywords(hits: list[dict], truth: list[dict]) -> dict:
    owner = {}
    stray, wrong, dup = [], [], 0
    for h in hits:
        near = [i for i, w in enumerate(truth) if w["start_s"] <= h["t"] <= w["end_s"] + AFTER_END_S]
        if not near:
            stray.append(h)
            continue
        i = near[0]
        if truth[i]["label"] != h["label"]:
            wrong.append({**h, "spoken": truth[i]["label"], "voice": truth[i]["voice"]})
        elif i in owner:
            dup += 1
        else:
            owner[i] = h
    latency = sorted(owner[i]["t"] - truth[i]["end_s"] for i in owner)
    per_label: dict[str, list[int]] = {}
    for i, w in enumerate(truth):
        per_label.setdefault(w["label"], [0, 0])[0] += i in owner
        per_label[w["label"]][1] += 1
    return {"words": len(truth), "detected": len(owner), "detection_rate": len(owner) / max(1, len(truth)),
            "wrong_label": len(wrong), "duplicates": dup, "stray": len(stray),
            "latency_after_word_end_s": {"median": _pct(latency, 50), "p90": _pct(latency, 90)},
            "per_label": {k: f"{a}/{b}" for k, (a, b) in sorted(per_label.items())}, "wrong": wrong[:20]}


def _pct(x: list[float], q: float) -> float | None:
    return round(float(np.percentile(x, q)), 3) if x else None


def excerpt(wav: Path, seconds: float, out: Path) -> Path:
    with wave.open(str(wav)) as r, wave.open(str(out), "wb") as w:
        w.setparams(r.getparams())
        w.writeframes(r.readframes(int(seconds * r.getframerate())))
    return out


def wav_seconds(path: Path) -> float:
    r = WavReader(path)
    n = sum(len(b) for b in r.blocks(1 << 16))
    r.close()
    return n / r.rate


def front_end_cost(seconds: float = 30.0) -> dict:
    """Per-hop cost of the streaming front end against recomputing all 98 frames (the naive way)."""
    x = np.random.default_rng(0).standard_normal(int(seconds * 16000)).astype(np.float32) * 0.05
    hops = range(0, len(x) - 1600 + 1, 1600)
    t = time.perf_counter()
    s = StreamingLogMel()
    for i in hops:
        s.push(x[i : i + 1600])
    streaming = (time.perf_counter() - t) / len(hops)
    padded = np.concatenate([np.zeros(16000, np.float32), x])
    t = time.perf_counter()
    for i in hops:
        features.log_mel(padded[i + 1600 : i + 1600 + 16000])
    naive = (time.perf_counter() - t) / len(hops)
    return {"naive_ms": round(naive * 1e3, 3), "streaming_ms": round(streaming * 1e3, 3),
            "ratio": round(streaming / naive, 3)}


def real_speakers(exe: Path, real: Path) -> dict:
    """The executable at its defaults on the real speakers' stream (demos/kws/evaluation/real_stream.py)."""
    events = json.loads((real / "real_stream.json").read_text())["clips"]
    hits, _, rtf = run_exe(exe, real / "real_stream.wav")
    return score(events, hits) | {"real_time_factor": rtf}


def synthetic(exe: Path, streams: Path, optimized: Path, labels_path: Path, labels: list[str]) -> dict:
    """The executable on the synthetic streams (held-out voices, an hour keyword-free), and the sweep."""
    kw_wav, neg_wav = streams / "keywords.wav", streams / "negatives.wav"
    truth = json.loads((streams / "keywords.json").read_text())
    truth = truth["words"] if isinstance(truth, dict) else truth
    neg_hours = wav_seconds(neg_wav) / 3600
    hits, _, _ = run_exe(exe, kw_wav)
    row = score_keywords(hits, truth)
    neg_hits, neg_wall, neg_rtf = run_exe(exe, neg_wav)
    row |= {"negatives_h": round(neg_hours, 3), "false_alarms": len(neg_hits),
            "false_alarms_per_hour": round(len(neg_hits) / neg_hours, 2),
            "false_alarm_labels": sorted({h["label"] for h in neg_hits}), "real_time_factor": neg_rtf}
    kw_scores = window_scores(optimized, labels_path, kw_wav)
    neg_scores = window_scores(optimized, labels_path, neg_wav)
    row["sweep"] = [{"threshold": th, "smooth": sm,
                     "detection_rate": round(score_keywords(replay(kw_scores, labels, th, sm), truth)["detection_rate"],
                                             3),
                     "false_alarms_per_hour": round(len(replay(neg_scores, labels, th, sm)) / neg_hours, 2)}
                    for th, sm in SWEEP]
    return row


def optimized_model(model: Path, options: dict, tmp: Path) -> Path:
    if not options:
        return model
    from edge import pipeline

    out = tmp / f"optimized-{model.stem}.onnx"
    pipeline.optimize(pipeline.Options(model=model, output=out, **options), lambda s: None)
    return out


def print_tables(result: dict) -> None:
    print("\nReal speakers never used for training or any choice (clip + 1.2-1.8 s quiet each):\n")
    print("| model | keywords heard | wrong label | non-keyword clips triggering | latency after clip end (median) "
          "| real-time factor, 1 thread: --fast / paced | paced, 2 threads | model file |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, r in result["models"].items():
        x = r["real"]
        print(f"| {kind} | {x['heard']}/{x['keywords']} ({100 * x['heard_rate']:.1f}%) | {x['wrong_label']} "
              f"({100 * x['wrong_rate']:.1f}%) | {x['triggered']}/{x['non_keywords']} ({100 * x['trigger_rate']:.1f}%) "
              f"| {x['latency_after_clip_end_s']['median']} s | {x['real_time_factor']} / "
              f"{r['real_time_factor_paced']['1']} | {r['real_time_factor_paced']['2']} | "
              f"{r['model_bytes'] / 1e6:.2f} MB |")
    syn = {k: r["synthetic"] for k, r in result["models"].items() if r.get("synthetic")}
    if not syn:
        print("\nsynthetic streams: not measured (make them with python3 -m demos.kws.data.streams)")
        return
    print("\n| model | synthetic voices: detected | wrong label | stray | false alarms/h |")
    print("|---|---|---|---|---|")
    for kind, r in syn.items():
        print(f"| {kind} | {r['detected']}/{r['words']} ({100 * r['detection_rate']:.1f}%) | {r['wrong_label']} | "
              f"{r['stray']} | {r['false_alarms_per_hour']} |")
    print("\n| threshold | smoothing (windows) | " + " | ".join(f"{k} detected / FA per h" for k in syn) + " |")
    print("|---|---|" + "---|" * len(syn))
    for i, (th, sm) in enumerate(SWEEP):
        cells = [f"{100 * r['sweep'][i]['detection_rate']:.1f}% / {r['sweep'][i]['false_alarms_per_hour']}"
                 for r in syn.values()]
        print(f"| {th} | {sm} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "voice.json")
    ap.add_argument("--real", type=Path, default=REAL, help="demos/kws/evaluation/real_stream.py's output folder")
    ap.add_argument("--streams", type=Path, default=STREAMS, help="demos/kws/data/streams.py's output (optional)")
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS), metavar="MODEL",
                    help=f"which of: {', '.join(MODELS)} (default: all)")
    args = ap.parse_args()
    if not (args.real / "real_stream.wav").exists():
        sys.exit(f"{args.real}: no real speakers' stream; make it first: "
                 ".venv/bin/python -m demos.kws.evaluation.real_stream --speech-commands DIR")
    has_synthetic = (args.streams / "keywords.wav").exists() and (args.streams / "negatives.wav").exists()
    progress = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if not has_synthetic:
        progress(f"{args.streams}: no synthetic streams (python3 -m demos.kws.data.streams): measuring the real "
                 "speakers only")
    labels = json.loads((MODEL / "labels.json").read_text())["labels"]
    result = {"real_stream": {"seconds": round(wav_seconds(args.real / "real_stream.wav"), 1)}, "models": {}}
    with tempfile.TemporaryDirectory(dir=ROOT / "build" if (ROOT / "build").is_dir() else None) as tmp:
        paced_wav = excerpt(args.real / "real_stream.wav", PACED_S, Path(tmp) / "paced.wav")
        for kind in args.models:
            model, labels_path, _, options = MODELS[kind]
            if not model.exists():
                sys.exit(f"{model}: missing; make it first: .venv/bin/python -m demos.kws.assembly.assemble")
            progress(f"== {kind}: edge build")
            exe, report = build(kind, Path(tmp), progress)
            ev = report["optimize"]["evaluation"]
            progress(f"== {kind}: real speakers' stream, then {PACED_S} s of it paced like a microphone")
            row = {"real": real_speakers(exe, args.real),
                   "real_time_factor_paced": {str(t): run_exe(exe, paced_wav, threads=t, fast=False)[2]
                                              for t in PACED_THREADS},
                   "heldout_accuracy": ev["optimized"]["accuracy"], "model_bytes": ev["optimized"]["size_bytes"],
                   "executable_bytes": report["bytes"]}
            if has_synthetic:
                progress(f"== {kind}: synthetic streams and the threshold sweep")
                row["synthetic"] = synthetic(exe, args.streams, optimized_model(model, options(), Path(tmp)),
                                             labels_path, labels)
            result["models"][kind] = row
    result["front_end_per_hop"] = front_end_cost()
    print_tables(result)
    fe = result["front_end_per_hop"]
    print(f"\nlog-mel front end (DS-CNN) per 100 ms hop: whole window {fe['naive_ms']} ms, streaming "
          f"{fe['streaming_ms']} ms ({fe['ratio']}×)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
