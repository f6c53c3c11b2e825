"""Log-mel front end for the keyword-spotting demo (numpy only).

The same module computes the model input during training (demos/kws) and on
the device (the streaming app), so both see bit-for-bit the same features.

Contract
--------
* Input: float32 mono audio at 16 kHz, scaled to [-1, 1].
* Frames: 25 ms Hann window (400 samples, periodic), 10 ms hop (160 samples),
  zero-padded to a 512-point FFT, no centre padding.  One second (16000
  samples) gives ``1 + (16000 - 400) // 160 = 98`` frames.
* Power spectrum -> 40 triangular mel bands (HTK mel scale, 20-7600 Hz,
  unit-peak triangles; the matrix is built once at import time)
  -> ``log(mel + 1e-6)``.
* Per-utterance normalisation: the mean of each mel band over the frames of
  the window is subtracted (cepstral-mean style, per band).  This removes the
  overall gain and the fixed colouring of a microphone / room (a constant
  per-band offset in the log domain), which is the main difference between
  the synthetic training voices and a real cheap USB microphone.  No division
  by the standard deviation: a window of pure (quiet) noise must stay flat
  instead of being blown up to the contrast of speech.  Digital silence gives
  an all-zero feature map.
* Output: ``log_mel(x)`` for a 1-D clip returns float32 ``[1, N_MELS, T]``
  (``[1, 40, 98]`` for one second); for a 2-D batch ``[B, samples]`` it
  returns ``[B, 1, N_MELS, T]``, which is exactly the model input layout
  ``[batch, channel=1, mel=40, frames=98]``.  For one streaming window use
  ``log_mel(window)[None]``.

Everything is vectorised and deterministic (no dither, no randomness).
"""

import numpy as np

SAMPLE_RATE = 16000
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms
N_FFT = 512
N_MELS = 40
F_MIN = 20.0
F_MAX = 7600.0
CLIP_SAMPLES = SAMPLE_RATE  # the model looks at 1 s windows
N_FRAMES = 1 + (CLIP_SAMPLES - WIN_LENGTH) // HOP_LENGTH  # 98
LOG_EPS = 1e-6
INPUT_SHAPE = (1, 1, N_MELS, N_FRAMES)  # model input for one window


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_matrix(n_mels=N_MELS, n_fft=N_FFT, sr=SAMPLE_RATE, fmin=F_MIN, fmax=F_MAX):
    """[n_fft // 2 + 1, n_mels] float32 matrix of triangular HTK mel filters."""
    fft_hz = np.arange(n_fft // 2 + 1) * sr / n_fft
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (fft_hz[None, :] - lo) / (mid - lo)
    down = (hi - fft_hz[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down)).T.astype(np.float32)


_WINDOW = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WIN_LENGTH) / WIN_LENGTH)).astype(np.float32)
_MEL = mel_matrix()


def n_frames(n_samples):
    """Number of frames for a signal of n_samples (98 for one second)."""
    return 1 + (int(n_samples) - WIN_LENGTH) // HOP_LENGTH


def log_mel(audio, mel=_MEL):
    """Normalised log-mel features; see the module docstring for the contract.

    audio: float32 array [samples] (>= 400) or [batch, samples].
    returns: [1, N_MELS, T] for 1-D input, [batch, 1, N_MELS, T] for 2-D.
    mel: the [257, N_MELS] filter matrix, or [batch, 257, N_MELS], one per clip (training passes warped ones).
    """
    x = np.asarray(audio, dtype=np.float32)
    single = x.ndim == 1
    if single:
        x = x[None]
    if x.ndim != 2 or x.shape[1] < WIN_LENGTH:
        raise ValueError(f"expected [samples] or [batch, samples] with >= {WIN_LENGTH} samples, got {x.shape}")
    frames = np.lib.stride_tricks.sliding_window_view(x, WIN_LENGTH, axis=1)[:, ::HOP_LENGTH]
    spec = np.fft.rfft(frames * _WINDOW, n=N_FFT, axis=-1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)  # [B, T, 257]
    mel = np.log(power @ mel + np.float32(LOG_EPS))  # [B, T, 40]
    mel -= mel.mean(axis=1, keepdims=True)  # per-band mean over the window
    out = np.ascontiguousarray(mel.transpose(0, 2, 1), dtype=np.float32)[:, None]  # [B, 1, 40, T]
    return out[0] if single else out
