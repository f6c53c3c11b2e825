"""The keyword demo's time stretch (demos/kws/data/augment.py): slower or faster speech with the pitch kept."""

import numpy as np
import pytest

from demos.kws.data.augment import stretch

SR = 16000


def pitch(x: np.ndarray) -> float:
    """The strongest frequency of x in Hz (8x zero-padded FFT: 0.5 Hz bins for 0.25 s)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    return float(np.argmax(spec)) * SR / (8 * len(x))


@pytest.mark.parametrize("factor", [0.75, 1.0, 1.5, 1.8])
def test_stretch_scales_duration_and_keeps_pitch(factor):
    t = np.arange(int(0.5 * SR)) / SR
    f0 = np.where(t < 0.25, 150.0, 220.0)  # a pitch step half-way, like two syllables
    x = (0.5 * np.sin(2 * np.pi * np.cumsum(f0) / SR)).astype(np.float32)
    y = stretch(x, factor)
    assert len(y) == round(len(x) * factor)
    n = len(y)
    # each half keeps its own pitch (within 2 %) and the step stays in the middle: a resampling would
    # have moved both pitches by 1/factor
    assert pitch(y[n // 8 : 3 * n // 8]) == pytest.approx(150, rel=0.02)
    assert pitch(y[5 * n // 8 : 7 * n // 8]) == pytest.approx(220, rel=0.02)
    # overlap-add of aligned frames keeps the level (no phasing dips, no doubling)
    mid = y[n // 8 : 3 * n // 8]
    assert np.sqrt(np.mean(mid**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
