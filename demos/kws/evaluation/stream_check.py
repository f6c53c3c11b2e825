"""DS-CNN step 5: a window model on data/streams.py's streams, scored through the app's own Listener.

    .venv/bin/python -m demos.kws.evaluation.stream_check [--model M.onnx --labels L.json]   # ~2-3 min

Defaults: the DS-CNN, model/kws.onnx and model/labels.json. A 1 s window every 100 ms through
edge/runtime/audio/app.py's Listener (streaming front end, hop loop, the end-of-file padding; listening.py's
window_scores, as benchmarks/voice.py replays it); a detection is a window whose top class is a
keyword with score >= the threshold, and after a detection the next 1 s is ignored (refractory). No smoothing.
On .data/streams/negatives.wav every detection is a false alarm (reported per hour); on keywords.wav a word
counts as detected when a detection of its label ends within [word start, word end + 1 s]; latency =
detection window end - word end. It compares models on the same footing; the app's smoothing and thresholds
are chosen by assembly/tune_detector.py.
"""

import argparse
import json
import os
from pathlib import Path

import numpy as np

from demos.kws.common import CLASSES, DATA, MODEL_DIR, Timer
from demos.kws.evaluation.listening import window_scores as listener_scores

STREAMS = os.path.join(DATA, "streams")
THRESHOLDS = (0.5, 0.7, 0.8, 0.9)
N_KW = 10


def window_scores(model, labels, path):
    """-> (scores [W, 12], window end times [W] in s)."""
    scores, hop_s, first = listener_scores(Path(model), Path(labels), Path(path))
    return scores, first + np.arange(len(scores)) * hop_s


def detections(p, ends, thr, refractory=1.0):
    """[(end_s, label, score)] with a refractory period."""
    top, score = p.argmax(1), p.max(1)
    out, last = [], -1e9
    for i in np.nonzero((top < N_KW) & (score >= thr))[0]:
        if ends[i] - last >= refractory:
            out.append((float(ends[i]), CLASSES[top[i]], float(score[i])))
            last = ends[i]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(MODEL_DIR, "kws.onnx"))
    ap.add_argument("--labels", default=os.path.join(MODEL_DIR, "labels.json"), help="the model's labels file")
    ap.add_argument("--out", default=None, help="write the report as JSON here")
    ap.add_argument("--streams", default=STREAMS, help="folder with the files of streams.py")
    a = ap.parse_args()
    timer = Timer()
    report = dict(model=a.model)
    p, ends = window_scores(a.model, a.labels, os.path.join(a.streams, "negatives.wav"))
    hours = ends[-1] / 3600
    neg = json.load(open(os.path.join(a.streams, "negatives.json")))
    speech = [(s["start_s"], s["end_s"], s["text"]) for s in neg["speech"]]
    report["negatives"] = {}
    for thr in THRESHOLDS:
        d = detections(p, ends, thr)
        near = [
            next((t for s, e, t in speech if s - 0.2 <= end <= e + 1.0), "(noise only)") for end, _, _ in d
        ]  # what was being said when the window ended
        by_label = {c: sum(1 for x in d if x[1] == c) for c in CLASSES[:N_KW]}
        texts = {}
        for t in near:
            texts[t] = texts.get(t, 0) + 1
        report["negatives"][thr] = dict(
            false_alarms=len(d),
            per_hour=round(len(d) / hours, 1),
            by_label=by_label,
            top_triggers=sorted(texts.items(), key=lambda kv: -kv[1])[:8],
        )
        print(f"negatives ({hours * 60:.1f} min) thr {thr}: {len(d)} false alarms = {len(d) / hours:.1f}/h  {by_label}")
        print(f"   triggered by: {report['negatives'][thr]['top_triggers']}")
    print(f"  {timer}", flush=True)
    p, ends = window_scores(a.model, a.labels, os.path.join(a.streams, "keywords.wav"))
    truth = json.load(open(os.path.join(a.streams, "keywords.json")))
    report["keywords"] = {}
    for thr in THRESHOLDS:
        d = detections(p, ends, thr)
        hit, lat, by_label, by_voice = [], [], {}, {}
        for t in truth:
            m = [x for x in d if t["start_s"] <= x[0] <= t["end_s"] + 1.0 and x[1] == t["label"]]
            hit.append(bool(m))
            if m:
                lat.append(m[0][0] - t["end_s"])
            by_label.setdefault(t["label"], []).append(bool(m))
            engine = t["voice"].split("/")[0]
            by_voice.setdefault(engine, []).append(bool(m))
        wrong = [
            x for x in d if not any(t["start_s"] <= x[0] <= t["end_s"] + 1.0 and x[1] == t["label"] for t in truth)
        ]
        report["keywords"][thr] = dict(
            detected=round(float(np.mean(hit)), 3),
            n=len(truth),
            latency_s_median=round(float(np.median(lat)), 2) if lat else None,
            latency_s_p90=round(float(np.percentile(lat, 90)), 2) if lat else None,
            other_detections=len(wrong),
            by_label={k: round(float(np.mean(v)), 2) for k, v in by_label.items()},
            by_engine={k: round(float(np.mean(v)), 2) for k, v in by_voice.items()},
        )
        r = report["keywords"][thr]
        print(
            f"keywords thr {thr}: detected {r['detected']:.2f} of {len(truth)}, latency after word end median "
            f"{r['latency_s_median']} s p90 {r['latency_s_p90']} s, other detections {len(wrong)}  "
            f"{r['by_label']} {r['by_engine']}"
        )
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)
    print(f"done  {timer}")


if __name__ == "__main__":
    main()
