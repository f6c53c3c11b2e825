"""How the voice-command app listens to a WAV stream, replayed in this process, and how its detections are
scored: the one module that both the demo and benchmarks/voice.py use.

- `window_scores()`: every judged window's scores from the app's own Listener (edge/runtime/audio/app.py: hop
  loop, front ends, stream states, the end-of-file padding) with onnxruntime;
- `replay()`: the app's Detector on those scores at a threshold and smoothing, as the executable would detect;
- `score()`: detections against a stream of clips (evaluation/real_stream.py's).

Used by assembly/tune_detector.py (step 2), evaluation/stream_check.py and benchmarks/voice.py (step 5).
Nothing else of demos/ is imported by benchmarks/, and nothing of benchmarks/ by demos/
(tests/test_kws_layout.py checks both). Needs edgepack's environment (`.venv`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from demos.kws.common import KEYWORDS
from edge.runtime.audio import features
from edge.runtime.audio.detector import Detector
from edge.runtime.audio.wavfile import WavReader


class _Recorder:
    """Stands in for the app's Detector: keeps every judged window's scores."""

    def __init__(self):
        self.scores = []

    def step(self, probs: np.ndarray, t: float) -> None:
        self.scores.append(probs)


def window_scores(model_path: Path, labels_path: Path, wav: Path) -> tuple[np.ndarray, float, float]:
    """([windows, classes] scores, hop in s, time of the first judged window in s) from the app's own Listener
    (hop loop, front ends, stream states)."""
    import onnx

    from edge import model as M
    from edge.apps.voice_commands import APP as VOICE_COMMANDS
    from edge.runtime.audio.app import Listener
    from edge.runtime.audio.settings import ListenConfig, VoiceSettings
    from edge.runtime.ort import open_session

    m = onnx.load(str(model_path))
    manifest = {"app": VOICE_COMMANDS.configure(m, {"labels": labels_path}),
                "inputs": [s.as_dict() for s in M.inputs(m)], "outputs": [s.as_dict() for s in M.outputs(m)]}
    app = manifest["app"]
    settings = VoiceSettings.from_dict(app)
    config = ListenConfig.defaults(settings, smooth=1, refractory_s=1.0)
    recorder = _Recorder()
    listener = Listener(open_session(model_path, 1), settings, config, [o["name"] for o in manifest["outputs"]],
                        out=None, detector=recorder)
    r = WavReader(wav)
    assert r.rate == features.SAMPLE_RATE and r.channels == 1, wav
    for b in r.blocks(1600):
        listener.feed(b[:, 0])
    listener.feed(np.zeros(int(features.SAMPLE_RATE * app["window_s"]) + 64, np.float32))  # the app's end padding
    r.close()
    hop = round(app["hop_s"] * features.SAMPLE_RATE)
    first = np.ceil(app["window_s"] * features.SAMPLE_RATE / hop) * hop / features.SAMPLE_RATE
    return np.array(recorder.scores), app["hop_s"], float(first)


def replay(scores: tuple[np.ndarray, float, float], labels: list[str], threshold: float, smooth: int) -> list[dict]:
    probs, hop_s, first = scores
    det = Detector(labels, threshold, smooth=smooth, refractory_s=1.0)
    return [d.as_dict() for i, s in enumerate(probs) if (d := det.step(s, first + i * hop_s))]


def score(events: list[dict], hits: list[dict]) -> dict:
    """An executable's (or replay()'s) detections against a stream's clips (evaluation/real_stream.py's events):
    a detection belongs to the clip whose segment (the clip and the quiet after it) it falls in; a keyword is
    heard when one of its segment's detections has its label, has a wrong label when its segment has only
    others; a non-keyword clip triggers when its segment has any."""
    starts = np.array([e["start_s"] for e in events])
    seg: dict[int, list[dict]] = {}
    for h in hits:
        i = int(np.searchsorted(starts, h["t"], side="right")) - 1
        if i >= 0:
            seg.setdefault(i, []).append(h)
    kw = [i for i, e in enumerate(events) if e["label"] in KEYWORDS]
    other = [i for i, e in enumerate(events) if e["label"] not in KEYWORDS]
    heard = [i for i in kw if any(h["label"] == events[i]["label"] for h in seg.get(i, []))]
    wrong = [i for i in kw if seg.get(i) and i not in heard]
    triggered = [i for i in other if seg.get(i)]
    latency = sorted(next(h["t"] for h in seg[i] if h["label"] == events[i]["label"]) - events[i]["end_s"]
                     for i in heard)
    return {
        "keywords": len(kw), "heard": len(heard), "heard_rate": round(len(heard) / max(1, len(kw)), 4),
        "wrong_label": len(wrong), "wrong_rate": round(len(wrong) / max(1, len(kw)), 4),
        "non_keywords": len(other), "triggered": len(triggered),
        "trigger_rate": round(len(triggered) / max(1, len(other)), 4),
        "latency_after_clip_end_s": {"median": round(float(np.median(latency)), 3) if latency else None},
        "missed": [events[i]["file"] for i in kw if i not in heard and i not in wrong][:40],
        "wrong": [dict(file=events[i]["file"], heard=[h["label"] for h in seg[i]]) for i in wrong][:40],
        "triggers": [dict(file=events[i]["file"], heard=[h["label"] for h in seg[i]]) for i in triggered][:40],
    }
