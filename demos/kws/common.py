"""Shared constants and helpers of the keyword-spotting pipeline (numpy only)."""

import csv
import importlib.util
import os
import time
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# The device-side front end, loaded by path so that nothing else of the edge package is imported.
_spec = importlib.util.spec_from_file_location(
    "kws_features", os.path.join(ROOT, "edge", "runtime", "audio", "features.py")
)
features = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(features)

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


def read_wav_bytes(data):
    """Parse a PCM16 WAV (possibly with a bogus streaming header) -> (float32 mono, rate)."""
    if data[:4] != b"RIFF":
        raise ValueError("not a WAV")
    rate, channels, pos = 16000, 1, 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"fmt ":
            channels = int.from_bytes(data[pos + 10 : pos + 12], "little")
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
        elif cid == b"data":
            pcm = data[pos + 8 :]
            pcm = pcm[: min(size, len(pcm)) // 2 * 2] if size > 0 else pcm[: len(pcm) // 2 * 2]
            x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
            return x.reshape(-1, channels).mean(axis=1), rate
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")


def read_wav(path):
    with open(path, "rb") as f:
        return read_wav_bytes(f.read())


def write_wav(path, x, rate=SR):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    pcm = (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def resample(x, rate, new_rate=SR):
    """Band-limited FFT resampling (fine for short clips with silent edges)."""
    if rate == new_rate:
        return x.astype(np.float32)
    n = len(x)
    m = max(1, int(round(n * new_rate / rate)))
    spec = np.fft.rfft(x)
    keep = min(len(spec), m // 2 + 1)
    out = np.zeros(m // 2 + 1, dtype=spec.dtype)
    out[:keep] = spec[:keep]
    return (np.fft.irfft(out, m) * (m / n)).astype(np.float32)


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
