"""Training-time augmentation and _silence_ generation (numpy only, vectorised per batch).

Per keyword / unknown clip (probabilities in AUG):
  in training only, a slower or faster speaking rate (`tempo`: WSOLA time stretch, pitch and formants kept),
  speed perturbation 0.85-1.15 (tempo + pitch + formants, like a different speaker),
  random placement of the word anywhere in the 1 s window (time shift),
  reverberation with one of the sox reverb impulse responses made by synthetic_clips.py,
  band-limiting like a cheap USB mic (high-pass 80-400 Hz, low-pass 3-7.5 kHz),
  peak level -35..-1 dBFS (gain), additive noise at 0-35 dB SNR (white, pink, brown,
  babble of unknown words, mains hum), rare soft clipping.
_silence_: noise / room tone / hum / faint babble at -80..-20 dBFS RMS, sometimes digital silence; in training
also switches from one noise to another (onsets and offsets, `steps`).
"""

import numpy as np

from demos.kws.common import CLASSES, CLIP, IRS, SILENCE, SR, load_clips

AUG = dict(speed=0.8, reverb=0.3, bandlimit=0.4, noise=0.85, clip=0.05)
NOISES = ("white", "pink", "brown", "babble", "hum")
NOISE_STEPS = 0.3  # share of training _silence_ examples whose noise switches within the window
TEMPO = 0.5  # share of training words whose duration is stretched by a factor in TEMPO_RANGE
TEMPO_RANGE = (0.75, 1.8)  # log-uniform; words are stretched more than squeezed: people say "nooo", not "n"


def _colored(rng, n, kind, length=CLIP):
    """[n, length] unit-RMS noise of one colour."""
    white = rng.standard_normal((n, length)).astype(np.float32)
    if kind == "white":
        return white
    f = np.fft.rfftfreq(length, 1 / SR)
    f[0] = f[1]
    shape = f ** (-0.5 if kind == "pink" else -1.0)
    x = np.fft.irfft(np.fft.rfft(white, axis=1) * shape, length, axis=1).astype(np.float32)
    return x / (x.std(axis=1, keepdims=True) + 1e-9)


def stretch(w, factor, frame=512, tolerance=128):
    """WSOLA time stretch: `w` lasts `factor` times as long with its pitch and formants unchanged.

    Overlap-add of Hann frames at a fixed synthesis hop; each next analysis frame is moved by up to
    `tolerance` samples to where it best continues the previous one (the waveform similarity), so
    pitch periods line up instead of smearing as in a plain overlap-add."""
    hop = frame // 2
    n_out = int(round(len(w) * factor))
    ana = hop / factor
    n_frames = n_out // hop + 2
    lead = tolerance + frame // 2
    xp = np.pad(w.astype(np.float32), (lead, int(n_frames * ana) + frame + 2 * tolerance))
    win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)).astype(np.float32)
    y = np.zeros(n_frames * hop + frame, np.float32)
    delta = 0
    for k in range(n_frames):
        a = tolerance + int(round(k * ana)) + delta
        y[k * hop : k * hop + frame] += xp[a : a + frame] * win
        natural = xp[a + hop : a + hop + frame]
        nxt = int(round((k + 1) * ana))
        cands = np.lib.stride_tricks.sliding_window_view(xp[nxt : nxt + 2 * tolerance + frame], frame)
        delta = int(np.argmax(cands @ natural)) - tolerance
    return y[frame // 2 : frame // 2 + n_out]


class Augmenter:
    def __init__(self, irs, babble_pool, seed=0, tempo=0.0, length=CLIP):
        """irs: [K, L] impulse responses; babble_pool: [M, CLIP] clips of non-keyword words; tempo: share of
        words time-stretched (0 draws no random number, so evaluation sets stay the same); length: samples of
        each output window (a word is placed anywhere inside it)."""
        self.irs, self.pool, self.rng, self.tempo = irs, babble_pool, np.random.default_rng(seed), tempo
        self.length = length

    def noise(self, n):
        """[n, L] unit-RMS noise of random kinds."""
        rng, L = self.rng, self.length
        out = np.empty((n, L), np.float32)
        kinds = rng.choice(NOISES, n, p=[0.2, 0.3, 0.15, 0.25, 0.1])
        for kind in NOISES:  # fixed order (a set's order changes per process): reproducible streams
            idx = np.nonzero(kinds == kind)[0]
            if len(idx) == 0:
                continue
            if kind == "babble":
                k = rng.integers(3, 7)
                parts = self.pool[rng.integers(0, len(self.pool), (len(idx), k))]  # [n, k, CLIP]
                shifts = rng.integers(0, L, (len(idx), k))
                x = np.stack(  # np.resize repeats a pool clip to fill a window longer than it
                    [np.stack([np.roll(np.resize(p, L), s) for p, s in zip(ps, ss)]).sum(0)
                     for ps, ss in zip(parts, shifts)]
                )
                x += 0.05 * _colored(rng, len(idx), "pink", L)
            elif kind == "hum":
                t = np.arange(L) / SR
                f0 = rng.choice([50.0, 60.0], (len(idx), 1))
                x = sum(
                    rng.uniform(0.2, 1, (len(idx), 1))
                    * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6.3, (len(idx), 1)))
                    for h in (1, 2, 3, 5)
                )
                x = x + 0.3 * _colored(rng, len(idx), "pink", L)
            else:
                x = _colored(rng, len(idx), kind, L)
            out[idx] = x / (x.std(axis=1, keepdims=True) + 1e-9)
        return out

    def silence(self, n, steps=0.0):
        """[n, L] _silence_ examples; a fraction `steps` of them switch noise within the window.

        A switch (one noise and level before a random instant, another after, 5 ms crossfade) is a fan or
        a door, or one noise segment giving way to the next: without such examples the DS-CNN took the
        first 0.3 s of loud noise after a quiet stretch for "up" (p = 0.95)."""
        rng, L = self.rng, self.length
        x = self.noise(n) * (10 ** (rng.uniform(-80, -20, (n, 1)) / 20))
        x[rng.random(n) < 0.05] = 0.0
        sw = np.nonzero(rng.random(n) < steps)[0] if steps > 0 else []  # no draw: seeds give the same stream
        if len(sw):
            after = self.noise(len(sw)) * (10 ** (rng.uniform(-60, -15, (len(sw), 1)) / 20))
            cut = rng.integers(int(0.2 * L), L, (len(sw), 1))
            ramp = np.clip((np.arange(L)[None] - cut) / (0.005 * SR) + 0.5, 0, 1)
            onset = rng.random((len(sw), 1)) < 0.7  # mostly quiet -> loud, the case that fired
            ramp = np.where(onset, ramp, 1 - ramp)
            x[sw] = x[sw] * (1 - ramp) + after * ramp
        return x.astype(np.float32)

    def __call__(self, clips, starts, ends):
        """Augment a batch of 1 s clips whose word lies in [start, end)."""
        rng, n, L = self.rng, len(clips), self.length
        out = np.zeros((n, L), np.float32)
        slow = rng.random(n) < self.tempo if self.tempo > 0 else np.zeros(n, bool)  # 0: no draw (same stream)
        factors = np.exp(rng.uniform(*np.log(TEMPO_RANGE), n)) if self.tempo > 0 else None
        for i in range(n):
            w = clips[i, starts[i] : ends[i]]
            if slow[i]:
                w = stretch(w, min(factors[i], 0.8 * L / max(len(w), 1)))
            if rng.random() < AUG["speed"]:
                m = int(len(w) / rng.uniform(0.85, 1.15))
                w = np.interp(np.linspace(0, len(w) - 1, m), np.arange(len(w)), w).astype(np.float32)
            w = w[:L]
            s = rng.integers(0, L - len(w) + 1)
            out[i, s : s + len(w)] = w
        speech_mask = np.abs(out) > 0
        rev = rng.random(n) < AUG["reverb"]
        if rev.any():
            ir = self.irs[rng.integers(0, len(self.irs), rev.sum())]
            nfft = 1 << int(np.ceil(np.log2(L + ir.shape[1])))
            wet = np.fft.irfft(np.fft.rfft(out[rev], nfft) * np.fft.rfft(ir, nfft), nfft)[:, :L]
            out[rev] += (rng.uniform(0.2, 1.0, (rev.sum(), 1)) * wet).astype(np.float32)
        bl = rng.random(n) < AUG["bandlimit"]
        if bl.any():
            f = np.fft.rfftfreq(L, 1 / SR)[None]
            hp, lp = rng.uniform(80, 400, (bl.sum(), 1)), rng.uniform(3000, 7500, (bl.sum(), 1))
            gain = 1 / np.sqrt(1 + (hp / np.maximum(f, 1)) ** 4) / np.sqrt(1 + (f / lp) ** 8)
            out[bl] = np.fft.irfft(np.fft.rfft(out[bl], axis=1) * gain, L, axis=1)
        out *= (10 ** (rng.uniform(-35, -1, (n, 1)) / 20)) / (np.abs(out).max(axis=1, keepdims=True) + 1e-9)
        nz = rng.random(n) < AUG["noise"]
        if nz.any():
            p_speech = (out[nz] ** 2 * speech_mask[nz]).sum(1) / np.maximum(speech_mask[nz].sum(1), 1)
            snr = rng.uniform(0, 35, nz.sum())
            out[nz] += self.noise(nz.sum()) * np.sqrt(p_speech / 10 ** (snr / 10))[:, None]
        cl = rng.random(n) < AUG["clip"]
        if cl.any():
            k = rng.uniform(2, 8, (cl.sum(), 1))
            out[cl] = np.tanh(k * out[cl]) / np.tanh(k)
        return np.clip(out, -1, 1).astype(np.float32)


def synthetic_irs(n=24, seed=0, length=SR // 2):
    """[n, length] room impulse responses without sox: a direct path and exponentially decaying noise
    (RT60 0.15-0.8 s, the late part low-passed as walls absorb highs), unit energy."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SR
    irs = np.zeros((n, length), np.float32)
    for i in range(n):
        rt60 = rng.uniform(0.15, 0.8)
        tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
        k = max(1, int(rng.uniform(1, 6)))
        tail = np.convolve(tail, np.ones(k) / k, mode="same")
        onset = int(rng.uniform(0.002, 0.02) * SR)
        ir = np.zeros(length)
        ir[0] = 1.0
        ir[onset:] += tail[: length - onset] * rng.uniform(0.3, 1.0)
        irs[i] = ir / np.sqrt((ir**2).sum())
    return irs


def silence(n, seed):
    """n reproducible _silence_ clips (babble replaced by faint pink noise: no word pool needed)."""
    return Augmenter(np.load(IRS), np.zeros((1, CLIP), np.float32), seed=seed).silence(n)


def split_set(rows, split, seed=7):
    """Clean clips of one split + as many generated silences as the mean class.

    -> (audio [N, CLIP], labels [N], engine per clip, voice per clip)."""
    rs = [r for r in rows if r["split"] == split]
    y = np.array([CLASSES.index(r["label"]) for r in rs])
    n_sil = int(np.bincount(y)[np.bincount(y) > 0].mean())
    x = np.concatenate([load_clips(rs), silence(n_sil, seed)])
    y = np.concatenate([y, np.full(n_sil, CLASSES.index(SILENCE))])
    return x, y, [r["engine"] for r in rs] + ["generated"] * n_sil, [r["voice"] for r in rs] + ["noise"] * n_sil
