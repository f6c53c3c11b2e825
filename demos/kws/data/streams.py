"""Step 1a (`negatives`) and DS-CNN step 5: long synthetic streams for the streaming detector (numpy, synthesizers).

From the repository root:
    nice -n 19 python3 -m demos.kws.data.streams        # held-out voices, .data/streams/: ~40 s on 2 shared cores
    python3 -m demos.kws.data.streams --seed 1 --out demos/kws/.data/streams_tune     # step 1a's tuning stream
    python3 -m demos.kws.data.streams --voices train --seed 2 --minutes 60 --out demos/kws/.data/mining2  # 1a

By default, spoken by HELD-OUT voices (the benchmark's synthetic streams, read by benchmarks/voice.py and
evaluation/stream_check.py), it writes demos/kws/.data/streams/ (git-ignored), every .wav 16 kHz mono PCM16:
  negatives.wav   >= 60 min with NO keyword: a bed of noise segments (white, pink, brown, mains hum,
                  babble of non-keyword words, room tone, stretches of digital silence) at several
                  levels, with _unknown_ words and short phrases of other words spoken at random times
                  (about 6 a minute) -> false alarms per hour. Written segment by segment (memory stays
                  small).
  negatives.json  what is in it: {"sample_rate", "duration_s", "segments": [{"start_s", "end_s",
                  "noise", "rms_dbfs"}], "speech": [{"start_s", "end_s", "voice", "text"}]}
  keywords.wav    ~4 min: the 10 keywords (10 each, shuffled) by held-out voices of several engines,
                  each followed by 1.5-3 s of low noise (-65..-50 dBFS) -> detection rate and latency.
  keywords.json   ground truth, a list of {"label", "start_s", "end_s", "voice"} (word onset/offset at
                  -40 dB from its peak, in seconds from the start of keywords.wav).

With --voices train it writes only negatives.wav (and .json), spoken by TRAIN voices with MINING_PHRASES:
a stream to take hard negatives from (training/train_head.py --negatives); the held-out streams never share its
voices or texts.

Held-out voices only (never trained on, see synthetic_clips.py): espeak-ng dialect en-029 (all its variants) and
the held-out variants in other dialects, festival ked, rab and czech_machac, MBROLA us1/us2/us3/en1
(through festival and espeak-ng, where installed), flite awb and rms. Negatives never contain a keyword
or a homophone of one ("know", "write", "of" ...): every phrase is checked against FORBIDDEN.
"""

import argparse
import json
import os
import random
import subprocess
import tempfile
import wave

import numpy as np

from demos.kws.common import DATA, KEYWORDS, SR, UNKNOWN_WORDS, Timer, read_wav, read_wav_bytes, resample
from demos.kws.data.synthetic_clips import (
    ENCODING,
    ESPEAK_DIALECTS,
    ESPEAK_MBROLA_VOICES,
    FESTIVAL_VOICES,
    FLITE_VOICES,
    HELDOUT_DIALECTS,
    HELDOUT_VARIANTS,
    espeak_variants,
    festival_voices,
    text_of,
)

OUT = os.path.join(DATA, "streams")
FORBIDDEN = set(KEYWORDS) | {
    "know", "knows", "known", "write", "writes", "rite", "wright", "of", "yeah", "yep", "nope", "going",
    "goes", "gone", "stops", "stopped", "lefts", "rights", "ons", "offs", "ups", "downs", "noes", "oh",
}  # fmt: skip
PHRASES = [
    "the weather is nice today",
    "the cat is sleeping by the window",
    "seven happy birds sat in the tree",
    "we will have dinner at eight",
    "my house has a red door",
    "the water is very cold",
    "listen to the music",
    "the number is forty two",
    "good morning everyone",
    "the little dog is happy",
    "she reads a book every evening",
    "tomorrow will be warm and sunny",
    "where is the yellow paper",
    "open the window please",
    "call me later",
    "the meeting starts at nine",
    "this table is made from wood",
    "what time is it",
    "my brother lives in a big city",
    "the children are playing outside",
    "I would like some coffee",
    "thank you very much",
    "the train arrives at seven",
    "he bought three apples and a banana",
    "it is raining again",
    "the garden looks beautiful",
    "bring the blue chair here",
    "we need more paper",
    "the bird sings in the morning",
    "the baby is sleeping",
    "people like music and dancing",
    "this is a lesson about money",
    "she paints pictures with bright colors",
    "my favorite number is six",
    "the kitchen smells like bread",
    "the car is in the garage",
    "a quiet evening at home",
    "the phone is ringing",
    "please close the door",
    "happy birthday to you",
    "tell me a story",
    "the shop sells fresh fish",
    "we walked to the beach",
    "sheila and marvin learn fast",
]
# Spoken by TRAIN voices in the mining stream (--voices train): other sentences than PHRASES, so the
# held-out streams' texts stay unseen; with near-confusables of the keywords ("upon", "lift", "bright", "noon").
MINING_PHRASES = [
    "once upon a time there was a king", "the lift is broken again", "a bright light in the night",
    "start the engine slowly", "the town hall is closed today", "yesterday was very windy",
    "she wrote a letter to her mother", "the goat ate all the grass", "the soup is too hot",
    "we saw many stars", "my uncle plays the piano", "the plane has a long nose", "remember your coat",
    "the gold ring was lost", "a sound from the basement", "the shop opens at ten",
    "bread and butter for breakfast", "the light turned green", "a tiny mouse ran across the floor",
    "the ocean is deep and blue", "we dance all night", "the clock struck twelve", "she kept the secret",
    "the lesson begins at noon", "a heavy box with books", "the doctor will see you soon",
    "he likes to cook pasta", "the road was long and dusty", "my sister found a puppy", "the fire is warm",
    "a cup with lemon tea", "the river flows to the sea", "the knight rode a white horse", "the kite flew high",
    "turn the page", "the snow melted in spring", "the goal was scored late", "a bowl with rice",
    "the stock market fell", "upstairs is the bedroom", "a lonely owl", "the golden gate bridge",
]
NOISES = ("white", "pink", "brown", "hum", "babble", "room", "digital_silence")
NOISE_P = (0.14, 0.2, 0.14, 0.12, 0.16, 0.16, 0.08)
NOISE_DB = dict(white=(-65, -30), pink=(-65, -25), brown=(-60, -25), hum=(-60, -30), babble=(-50, -28), room=(-75, -50))
assert not any(w in FORBIDDEN for p in PHRASES + MINING_PHRASES for w in p.lower().split()), "a phrase holds a keyword"
assert not set(PHRASES) & set(MINING_PHRASES)
assert not set(UNKNOWN_WORDS) & FORBIDDEN


def heldout_voices(rng):
    """(engine, voice, lang) of every held-out voice that is installed."""
    variants = [v for v in espeak_variants() if v]
    out = [("espeak-ng", "en-029", "en")] + [("espeak-ng", "en-029+" + v, "en") for v in variants]
    out += [("espeak-ng", d + "+" + v, "en") for d in ("en-us", "en-gb") for v in sorted(HELDOUT_VARIANTS)]
    fv = festival_voices()
    out += [("festival", k, v[2]) for k, v in fv.items() if v[1] != "train"]
    if os.path.isdir("/usr/share/mbrola"):
        out += [("espeak-mbrola", v, "en") for v in ESPEAK_MBROLA_VOICES]
    out += [("flite", v, "en") for v, s in FLITE_VOICES.items() if s != "train"]
    return out


def train_voices():
    """(engine, voice, lang) of every installed train voice that synthesize() drives: the mining stream's."""
    variants = [v for v in espeak_variants() if v not in HELDOUT_VARIANTS]  # "" (the plain dialect) included
    out = [("espeak-ng", d + ("+" + v if v else ""), "en") for d in ESPEAK_DIALECTS if d not in HELDOUT_DIALECTS
           for v in variants]
    out += [("festival", k, v[2]) for k, v in festival_voices().items() if v[1] == "train"]
    out += [("flite", v, "en") for v, s in FLITE_VOICES.items() if s == "train"]
    return out


def voice_name(engine, voice):
    """The engine/voice name used in the manifest: MBROLA voices are "mbrola/us1", "mbrola/espeak-us1"."""
    if engine == "festival" and FESTIVAL_VOICES[voice][4] == "mbrola":
        return "mbrola/" + voice
    if engine == "espeak-mbrola":
        return "mbrola/espeak-" + voice.replace("mb-", "")
    return f"{engine}/{voice}"


def pick_voices(voices, n, rng):
    """n voices, spread evenly over the engines (espeak-ng has far more voices than the others)."""
    by_engine = {}
    for v in voices:
        by_engine.setdefault(v[0] if v[0] != "festival" else "festival/" + v[1], []).append(v)
    keys = sorted(by_engine)
    return [rng.choice(by_engine[keys[i % len(keys)]]) for i in rng.sample(range(n), n)]


def synthesize(items, rng):
    """items: [(engine, voice, lang, text)] -> [float32 16 kHz audio or None], random speed/pitch."""
    out = [None] * len(items)
    with tempfile.TemporaryDirectory() as tmp:
        fest = {}
        for i, (engine, voice, _lang, text) in enumerate(items):
            if engine == "festival":
                fest.setdefault(voice, []).append((i, text))
            elif engine in ("espeak-ng", "espeak-mbrola"):
                p = subprocess.run(
                    ["espeak-ng", "-v", voice, "-s", str(rng.randint(120, 200)), "-p", str(rng.randint(20, 85)),
                     "--stdout", text],
                    capture_output=True,
                )  # fmt: skip
                try:
                    x, rate = read_wav_bytes(p.stdout)
                    out[i] = resample(x, rate)
                except ValueError:
                    pass
            elif engine == "flite":
                path = os.path.join(tmp, "f.wav")
                stretch = round(rng.uniform(0.85, 1.25), 2)
                subprocess.run(
                    ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}", "-t", text, "-o", path],
                    capture_output=True,
                )
                try:
                    x, rate = read_wav(path)
                    out[i] = resample(x, rate)
                except (ValueError, OSError):
                    pass
        for voice, todo in fest.items():
            fn = FESTIVAL_VOICES[voice][0]
            lines = [f"({fn})"]
            for i, text in todo:
                lines.append(f"(Parameter.set 'Duration_Stretch {rng.uniform(0.85, 1.25):.2f})")
                lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{tmp}/{i}.wav" \'riff)')
            script = os.path.join(tmp, f"{voice}.scm")
            with open(script, "w", encoding=ENCODING.get(FESTIVAL_VOICES[voice][2], "utf-8")) as f:
                f.write("\n".join(lines) + "\n")
            subprocess.run(["festival", "-b", script], capture_output=True)
            for i, _ in todo:
                try:
                    x, rate = read_wav(os.path.join(tmp, f"{i}.wav"))
                    out[i] = resample(x, rate)
                except (ValueError, OSError):
                    pass
    return out


def trim(x, floor_db=40):
    """Cut leading/trailing parts more than floor_db below the peak (10 ms frames) -> (audio, None if silent)."""
    if x is None or len(x) < SR // 50 or np.abs(x).max() < 1e-4:
        return None
    hop = SR // 100
    n = len(x) // hop
    db = 10 * np.log10((x[: n * hop].reshape(n, hop) ** 2).sum(1) + 1e-12)
    on = np.nonzero(db > db.max() - floor_db)[0]
    return x[on[0] * hop : (on[-1] + 1) * hop].astype(np.float32)


def colored(rng, n, kind):
    """n samples of unit-RMS noise: white, pink (1/f), brown (1/f^2) or room tone (brown, low-passed)."""
    white = rng.standard_normal(n)
    if kind == "white":
        return white.astype(np.float32)
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    shape = {"pink": f**-0.5, "brown": f**-1.0, "room": f**-1.0 / np.sqrt(1 + (f / 300) ** 4)}[kind]
    x = np.fft.irfft(np.fft.rfft(white) * shape, n)
    return (x / (x.std() + 1e-12)).astype(np.float32)


def bed(rng, n, kind, pool):
    """One noise segment of n samples, unit RMS (zeros for digital silence)."""
    if kind == "digital_silence":
        return np.zeros(n, np.float32)
    if kind == "hum":
        t = np.arange(n) / SR
        f0 = rng.choice([50.0, 60.0])
        x = sum(rng.uniform(0.2, 1) * np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6.3)) for h in (1, 2, 3, 5))
        x = x + 0.3 * colored(rng, n, "pink")
    elif kind == "babble":
        x = 0.05 * colored(rng, n, "pink")
        for _ in range(int(n / SR * rng.uniform(4, 8))):  # 4-8 non-keyword words per second, overlapping
            w = pool[rng.integers(len(pool))]
            s = rng.integers(0, max(1, n - len(w)))
            x[s : s + len(w)] += w[: n - s] / (np.abs(w).max() + 1e-9)
    else:
        x = colored(rng, n, kind)
    x = x - x.mean()
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


class WavOut:
    """Append float32 audio to a PCM16 mono WAV without holding the whole stream."""

    def __init__(self, path):
        self.w = wave.open(path, "wb")
        self.w.setnchannels(1)
        self.w.setsampwidth(2)
        self.w.setframerate(SR)
        self.n = 0

    def write(self, x):
        self.w.writeframes((np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2").tobytes())
        self.n += len(x)

    def close(self):
        self.w.close()


def make_negatives(out_dir, voices, minutes, per_minute, rng, nrng, timer, phrases=PHRASES):
    n_speech = int(minutes * per_minute * 1.1)
    chosen = pick_voices(voices, n_speech + 120, rng)
    items = []
    for k, (engine, voice, lang) in enumerate(chosen):
        if k >= n_speech:  # the babble pool: single unknown words
            text = rng.choice(UNKNOWN_WORDS)
        elif rng.random() < 0.5:
            text = rng.choice(UNKNOWN_WORDS)
        else:
            text = rng.choice(phrases)
        items.append((engine, voice, lang, text_of(text, lang) if text in UNKNOWN_WORDS else text))
    print(
        f"negatives: synthesizing {len(items)} utterances by {len({v[:2] for v in chosen})} voices  {timer}",
        flush=True,
    )
    audio = [trim(x) for x in synthesize(items, rng)]
    speech = [(a, it) for a, it in zip(audio[:n_speech], items[:n_speech]) if a is not None and len(a) < 8 * SR]
    pool = [a for a in audio[n_speech:] if a is not None]
    print(f"  {len(speech)} speech events, babble pool {len(pool)} words  {timer}", flush=True)
    total = int(minutes * 60 * SR)
    w = WavOut(os.path.join(out_dir, "negatives.wav"))
    meta = dict(sample_rate=SR, segments=[], speech=[])
    gap = 60.0 / per_minute
    next_t, k = rng.uniform(0, gap), 0
    while w.n < total:
        n = min(int(nrng.uniform(5, 40) * SR), total - w.n)
        kind = str(nrng.choice(NOISES, p=NOISE_P))
        db = float(nrng.uniform(*NOISE_DB[kind])) if kind in NOISE_DB else None
        seg = bed(nrng, n, kind, pool) * (10 ** (db / 20) if db is not None else 0.0)
        fade = min(n // 2, SR // 20)
        seg[:fade] *= np.linspace(0, 1, fade)
        seg[-fade:] *= np.linspace(1, 0, fade)
        t0 = w.n / SR
        while next_t < t0 + n / SR:  # speech events whose start falls in this segment
            a, (engine, voice, _, text) = speech[k % len(speech)]
            s = int((next_t - t0) * SR)
            if s + len(a) > n:  # never cut an utterance (a cut word could sound like a keyword): postpone it
                next_t = t0 + n / SR + 0.05
                break
            k += 1
            a = a / (np.abs(a).max() + 1e-9) * 10 ** (rng.uniform(-30, -3) / 20)
            seg[s : s + len(a)] += a
            meta["speech"].append(
                dict(
                    start_s=round(next_t, 3),
                    end_s=round(next_t + len(a) / SR, 3),
                    voice=voice_name(engine, voice),
                    text=text,
                )
            )
            next_t += rng.expovariate(1 / gap) + len(a) / SR
        meta["segments"].append(dict(start_s=round(t0, 3), end_s=round(t0 + n / SR, 3), noise=kind, rms_dbfs=db))
        w.write(seg)
        if len(meta["segments"]) % 20 == 0:
            print(f"  negatives.wav {w.n / SR / 60:5.1f}/{minutes} min  {timer}", flush=True)
    w.close()
    meta["duration_s"] = w.n / SR
    with open(os.path.join(out_dir, "negatives.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"negatives.wav: {w.n / SR / 60:.1f} min, {len(meta['speech'])} speech events, "
          f"{len(meta['segments'])} noise segments  {timer}", flush=True)  # fmt: skip


def make_keywords(out_dir, voices, per_word, rng, nrng, timer):
    labels = [w for w in KEYWORDS for _ in range(per_word)]
    rng.shuffle(labels)
    chosen = pick_voices(voices, len(labels), rng)
    items = [(e, v, lang, text_of(word, lang)) for word, (e, v, lang) in zip(labels, chosen)]
    print(f"keywords: synthesizing {len(items)} keywords by held-out voices  {timer}", flush=True)
    audio = [trim(x) for x in synthesize(items, rng)]
    w = WavOut(os.path.join(out_dir, "keywords.wav"))
    truth = []

    def floor(n):
        return colored(nrng, n, "pink") * 10 ** (nrng.uniform(-65, -50) / 20)

    w.write(floor(int(1.5 * SR)))
    for word, (engine, voice, _, _), a in zip(labels, items, audio):
        if a is None:
            continue
        a = a / (np.abs(a).max() + 1e-9) * 10 ** (rng.uniform(-15, -3) / 20)
        x = floor(len(a)) + a
        truth.append(
            dict(
                label=word,
                start_s=round(w.n / SR, 3),
                end_s=round((w.n + len(a)) / SR, 3),
                voice=voice_name(engine, voice),
            )
        )
        w.write(x)
        w.write(floor(int(rng.uniform(1.5, 3.0) * SR)))
    w.close()
    with open(os.path.join(out_dir, "keywords.json"), "w") as f:
        json.dump(truth, f, indent=1)
    print(f"keywords.wav: {w.n / SR / 60:.2f} min, {len(truth)} keywords by "
          f"{len({t['voice'] for t in truth})} voices  {timer}", flush=True)  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=62.0, help="length of negatives.wav")
    ap.add_argument("--per-minute", type=float, default=6.0, help="speech events per minute in negatives.wav")
    ap.add_argument("--per-word", type=int, default=10, help="utterances of each keyword in keywords.wav")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--voices", choices=("heldout", "train"), default="heldout",
                    help="train: only negatives.wav, by train voices with MINING_PHRASES (hard negatives)")
    ap.add_argument("--out", default=OUT, help="output folder (default .data/streams, what benchmarks/voice.py reads; "
                    "a second seed elsewhere gives streams to tune detection settings on without touching those)")
    a = ap.parse_args()
    timer = Timer()
    os.makedirs(a.out, exist_ok=True)
    rng, nrng = random.Random(a.seed), np.random.default_rng(a.seed)
    if a.voices == "train":
        voices = train_voices()
        print(f"{len(voices)} train voices", flush=True)
        make_negatives(a.out, voices, a.minutes, a.per_minute, rng, nrng, timer, MINING_PHRASES)
        print(f"done: {a.out}  {timer}")
        return
    voices = heldout_voices(rng)
    print(f"{len(voices)} held-out voices: {sorted({voice_name(*v[:2]) for v in voices if v[0] != 'espeak-ng'})} "
          f"+ espeak-ng en-029 and held-out variants", flush=True)  # fmt: skip
    make_keywords(a.out, voices, a.per_word, rng, nrng, timer)
    make_negatives(a.out, voices, a.minutes, a.per_minute, rng, nrng, timer)
    print(f"done: {a.out}  {timer}")


if __name__ == "__main__":
    main()
