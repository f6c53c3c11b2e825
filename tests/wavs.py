"""Test helpers: write WAV files in the formats users have (PCM of any width, float, any rate/channels)."""

import struct
from pathlib import Path

import numpy as np

KWS = Path(__file__).resolve().parent.parent / "demos" / "kws"
SAMPLE = KWS / "samples" / "commands.wav"
REAL_SAMPLE = KWS / "samples" / "real.wav"  # real speakers (Speech Commands, CC BY 4.0; real.txt credits them)


def write(path: Path, x: np.ndarray, rate: int, bits: int = 16, floating: bool = False) -> Path:
    """x: [frames] or [frames, channels] in [-1, 1]."""
    x = np.asarray(x, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if floating:
        raw = x.astype("<f4" if bits == 32 else "<f8").tobytes()
    elif bits == 8:
        raw = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    else:
        v = np.clip(np.round(x * 2 ** (bits - 1)), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1).astype("<i4")
        raw = v.astype("<i2").tobytes() if bits == 16 else v.tobytes() if bits == 32 else \
            b"".join(int(s).to_bytes(3, "little", signed=True) for s in v.ravel())
    ch = x.shape[1]
    fmt = struct.pack("<HHIIHH", 3 if floating else 1, ch, rate, rate * ch * bits // 8, ch * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(raw)) + raw
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def read16k(path: Path) -> np.ndarray:
    import wave

    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768


def fft_resample(x: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """An independent reference converter (whole signal at once)."""
    n, m = len(x), int(round(len(x) * new_rate / rate))
    spec = np.fft.rfft(x)
    out = np.zeros(m // 2 + 1, complex)
    k = min(len(spec), len(out))
    out[:k] = spec[:k]
    return np.fft.irfft(out, m) * (m / n)


def expected_words(path: Path = KWS / "samples" / "commands.txt") -> list[tuple[float, str]]:
    rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return [(float(r[0]), r[1]) for r in rows]
