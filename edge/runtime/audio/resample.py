"""Streaming sample-rate conversion (polyphase windowed sinc) and channel mixing, numpy only.

Microphones that only offer 44.1 or 48 kHz and WAV files of any rate are converted to the model's
16 kHz block by block, with state carried across blocks, so a stream and the same audio read at once
give the same samples."""

from __future__ import annotations

from math import gcd

import numpy as np

TAPS_PER_PHASE = 32  # filter length in input samples: ~90 dB stop band with the Kaiser window below


def to_mono(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=1, dtype=np.float32) if block.ndim == 2 else block.astype(np.float32, copy=False)


class Resampler:
    def __init__(self, rate_in: int, rate_out: int, centred: bool = False):
        """centred: output k is taken at input time k * rate_in / rate_out instead of `delay` input samples
        later (the filter's peak sits on a tap, half a tap off the symmetric one), so the last outputs come only
        once `delay` more samples have been fed (`convert` feeds zeros); a live stream wants the default."""
        g = gcd(int(rate_in), int(rate_out))
        self.up, self.down = int(rate_out) // g, int(rate_in) // g
        self.identity = self.up == self.down
        if self.identity:
            return
        n = TAPS_PER_PHASE * self.up
        cutoff = 0.95 / max(self.up, self.down)  # of the upsampled Nyquist: stays below 7.6 kHz at 16 kHz out
        centre = n // 2 if centred else (n - 1) / 2
        t = np.arange(n) - centre
        h = cutoff * np.sinc(cutoff * t) * np.kaiser(n, 9.0) * self.up
        # phase p uses taps h[p], h[p + up], ... against the newest input sample backwards
        self._phases = h.reshape(TAPS_PER_PHASE, self.up).T.astype(np.float32)  # [up, taps]
        self._history = np.zeros(TAPS_PER_PHASE - 1, np.float32)
        self.delay = centre / self.up  # group delay, in input samples
        self._pos = (TAPS_PER_PHASE - 1) * self.up  # next output, in upsampled samples from the history start
        if centred:
            self._pos += centre

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if self.identity:
            return x
        buf = np.concatenate([self._history, x])
        # output k sits at upsampled position pos; it needs input pos // up and the taps - 1 inputs before it
        count = max(0, (len(buf) * self.up - 1 - self._pos) // self.down + 1)
        pos = self._pos + np.arange(count) * self.down
        idx = (pos // self.up)[:, None] - np.arange(TAPS_PER_PHASE)[None, :]
        y = np.einsum("kt,kt->k", buf[idx], self._phases[pos % self.up]).astype(np.float32)
        keep = len(buf) - (TAPS_PER_PHASE - 1)
        self._history = buf[keep:]
        self._pos += count * self.down - keep * self.up
        return y


def convert(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """A whole signal at once through the filter a stream uses, without its delay: output sample k lines up
    with input time k / rate_out and there are round(len(x) * rate_out / rate_in) of them."""
    x = np.asarray(x, np.float32)
    r = Resampler(rate_in, rate_out, centred=True)
    if r.identity:
        return x
    want = int(round(len(x) * r.up / r.down))
    tail = np.zeros(int(np.ceil(r.delay)) + r.down // r.up + 2, np.float32)
    return np.concatenate([r(x), r(tail)])[:want]
