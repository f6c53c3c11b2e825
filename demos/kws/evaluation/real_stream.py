"""Step 5 (`measure`), first part: streams of real speakers' clips, how a user tries the demo: each clip followed
by 1.2-1.8 s of quiet room noise; and the committed sample recording made the same way.

    .venv/bin/python -m demos.kws.evaluation.real_stream --speech-commands DIR [--split test] [--out DIR]
    .venv/bin/python -m demos.kws.evaluation.real_stream --speech-commands DIR --sample   # rewrites samples/real.wav

The stream holds every clip of the split (training/train_head.py's speaker split of DIR: keywords, other words
and _silence_) in a seeded order: real_stream.wav and real_stream.json (each clip's start, end, label, word,
speaker and file), by default in demos/kws/.data/real_stream/. benchmarks/voice.py then runs the executables on
it and scores their detections with listening.py's `score()`. Numpy and the standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from demos.kws.common import DATA, HERE, KEYWORDS, write_wav
from demos.kws.data import speech_commands as sc

SR = 16000
GAP_S = (1.2, 1.8)
ROOM_DBFS = (-62.0, -50.0)  # RMS of the quiet between clips: a quiet room through a desk microphone
SAMPLE_WORDS = ["yes", "no", "left", "right", "stop", "go"]
SAMPLE = os.path.join(HERE, "samples", "real.wav")


def room_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink-ish noise with a little mains hum at a random quiet level."""
    white = rng.standard_normal(n)
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    x = np.fft.irfft(np.fft.rfft(white) * (f / 100) ** -0.7, n)
    x += 0.1 * np.sin(2 * np.pi * 50 * np.arange(n) / SR) * x.std()
    return (x / (x.std() + 1e-12) * 10 ** (rng.uniform(*ROOM_DBFS) / 20)).astype(np.float32)


def join(clips: list[sc.Clip], seed: int) -> tuple[np.ndarray, list[dict]]:
    rng = np.random.default_rng(seed)
    audio = sc.load(clips)
    parts, events, t = [room_noise(SR, rng)], [], SR
    for c, x in zip(clips, audio):
        gap = room_noise(int(rng.uniform(*GAP_S) * SR), rng)
        events.append(dict(start_s=t / SR, end_s=(t + len(x)) / SR, label=c.label, word=c.word, speaker=c.speaker,
                           file=os.path.relpath(c.path, os.path.dirname(os.path.dirname(c.path)))))
        parts += [x, gap]
        t += len(x) + len(gap)
    return np.concatenate(parts), events


def write_sample(clips: list[sc.Clip], seed: int = 5) -> None:
    """samples/real.wav: one clip of each SAMPLE_WORDS word, each by another test speaker, and real.txt."""
    rng = np.random.default_rng(seed)
    chosen, speakers = [], set()
    for w in SAMPLE_WORDS:
        pool = [c for c in clips if c.word == w and c.speaker not in speakers]
        c = pool[rng.integers(len(pool))]
        chosen.append(c)
        speakers.add(c.speaker)
    audio, events = join(chosen, seed)
    write_wav(SAMPLE, audio)
    lines = ["# samples/real.wav: real speakers never used in training (train_head.py's test split), one clip each,",
             "# each followed by 1.2-1.8 s of generated quiet room noise. Clips from Speech Commands v0.02",
             f"# ({sc.CITATION}); licence CC BY 4.0, https://creativecommons.org/licenses/by/4.0/ .",
             "# start_s word speaker file"]
    lines += [f"{e['start_s']:.2f} {e['word']} {e['speaker']} {e['file']}" for e in events]
    with open(SAMPLE.replace(".wav", ".txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {SAMPLE} ({len(audio) / SR:.1f} s) and real.txt")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speech-commands", required=True, metavar="DIR")
    ap.add_argument("--split", default="test", choices=sc.SPLITS)
    ap.add_argument("--out", default=os.path.join(DATA, "real_stream"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", action="store_true", help="write samples/real.wav + real.txt instead")
    args = ap.parse_args()
    try:
        clips = [c for c in sc.scan(args.speech_commands) if c.split == args.split]
        if args.sample:
            write_sample(clips)
            return 0
        order = np.random.default_rng(args.seed).permutation(len(clips))
        audio, events = join([clips[i] for i in order], args.seed)
    except sc.LayoutError as e:
        sys.exit(f"real_stream.py: {e}")
    os.makedirs(args.out, exist_ok=True)
    wav, js = os.path.join(args.out, "real_stream.wav"), os.path.join(args.out, "real_stream.json")
    write_wav(wav + ".tmp", audio)
    with open(js + ".tmp", "w") as f:
        json.dump({"split": args.split, "seed": args.seed, "source": sc.CITATION, "clips": events}, f, indent=1)
    os.replace(wav + ".tmp", wav)
    os.replace(js + ".tmp", js)
    kw = sum(e["label"] in KEYWORDS for e in events)
    print(f"wrote {wav} ({len(audio) / SR / 60:.1f} min: {kw} keywords, {len(events) - kw} other clips) and {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
