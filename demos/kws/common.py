"""Shared constants and helpers of the keyword-spotting pipeline (numpy only)."""

import csv
import importlib.util
import io
import os
import time
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _device_module(name):
    """A module of the device's audio code, loaded by path so that nothing else of the edge package (nor its
    dependencies) is needed by the training environment: training hears audio exactly as the device does."""
    spec = importlib.util.spec_from_file_location(
        f"kws_{name}", os.path.join(ROOT, "edge", "runtime", "audio", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


features = _device_module("features")
wavfile = _device_module("wavfile")
_resample = _device_module("resample")

DATA = os.path.join(HERE, ".data")  # git-ignored cache
CLIPS = os.path.join(DATA, "clips")
MANIFEST = os.path.join(DATA, "manifest.csv")
IRS = os.path.join(DATA, "irs.npy")  # sox reverb impulse responses
MODEL_DIR = os.path.join(HERE, "model")
CHECKPOINT = os.path.join(DATA, "kws_best.pt")
TRAIN_LOG = os.path.join(DATA, "train_log.json")

SR = features.SAMPLE_RATE
CLIP = features.CLIP_SAMPLES
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
SILENCE, UNKNOWN = "_silence_", "_unknown_"
CLASSES = KEYWORDS + [SILENCE, UNKNOWN]
# Other English words for _unknown_ (no homophones of a keyword: no "know", "write", "of").
UNKNOWN_WORDS = (
    "bed bird cat dog eight five four happy house marvin nine one seven sheila six three tree two wow zero "
    "learn follow forward backward visual yellow open later little water music light start stay goat "
    "note nose dance lift night fight red bright town round sound done gold often offer yesterday lesson "
    "upon cup dawn stone hello window table paper listen money people morning number"
).split()
SPLITS = ("train", "heldout_voices", "heldout_engine")
FIELDS = ["path", "engine", "voice", "split", "label", "word", "variant", "start", "end"]


class Timer:
    def __init__(self):
        self.t0 = time.time()

    def __str__(self):
        s = time.time() - self.t0
        return f"{int(s // 60):d}m{s % 60:04.1f}s"

    @property
    def s(self):
        return time.time() - self.t0


def _read(reader):
    try:
        return _resample.to_mono(reader.read_all()), reader.rate
    finally:
        reader.close()


def read_wav_bytes(data, name="WAV data"):
    """A WAV in memory (another program's output; a streaming header is fine) -> (float32 mono, rate)."""
    return _read(wavfile.WavReader(io.BytesIO(data), name))


def read_wav(path):
    """-> (float32 mono, rate), read by the device's reader; a bad file raises ValueError (WavError)."""
    return _read(wavfile.WavReader(path))


def write_wav(path, x, rate=SR):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    pcm = (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def resample(x, rate, new_rate=SR):
    """The device's resampler over a whole clip, without its delay (a word stays where it was)."""
    return _resample.convert(x, rate, new_rate)


def read_manifest():
    with open(MANIFEST, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["start"], r["end"] = int(r["start"]), int(r["end"])
    return rows


def write_manifest(rows):
    with open(MANIFEST, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def load_clips(rows):
    """Stack the 1 s clips of manifest rows -> float32 [N, 16000]."""
    out = np.zeros((len(rows), CLIP), dtype=np.float32)
    for i, r in enumerate(rows):
        x, _ = read_wav(os.path.join(DATA, r["path"]))
        out[i, : min(CLIP, len(x))] = x[:CLIP]
    return out


def count_table(rows):
    """{split: {engine: n}} for reports."""
    t = {}
    for r in rows:
        t.setdefault(r["split"], {}).setdefault(r["engine"], 0)
        t[r["split"]][r["engine"]] += 1
    return t
