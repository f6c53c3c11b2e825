"""Step 1: synthesize keyword clips offline with espeak-ng, festival and flite.

    nice -n 19 python3 demos/kws/data.py     # ~3.5 min for ~11 200 clips (2 shared cores)

Writes 1 s, 16 kHz mono clips to demos/kws/.data/clips/ (git-ignored), a manifest
(.data/manifest.csv: engine, voice, split, label, word, variant, word start/end) and a
bank of sox reverb impulse responses (.data/irs.npy) used by the training-time augmentation.

Splits are by VOICE, never by clip:
  train           espeak-ng voices (7 English dialects x ~90 variants) + festival kal, slt
  heldout_voices  espeak-ng voices never trained on (dialect en-029 and 12 variants) + festival ked
                  (used to pick the best checkpoint)
  heldout_engine  every flite voice: a synthesizer never seen in training (pure test set).
                  Caveat: flite kal/slt are the same speakers as festival kal/slt, so awb and
                  rms are the truly unseen speakers; evaluate.py reports per voice.
_silence_ is not stored: it is generated (noise, room tone, hum) at training/evaluation time.
"""

import argparse
import glob
import os
import random
import shutil
import subprocess
import tempfile

import numpy as np
from common import (
    CLIP,
    CLIPS,
    DATA,
    IRS,
    KEYWORDS,
    MANIFEST,
    SR,
    UNKNOWN,
    UNKNOWN_WORDS,
    Timer,
    read_wav,
    read_wav_bytes,
    resample,
    write_manifest,
    write_wav,
)

ESPEAK_DIALECTS = [
    "en-gb",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-us-nyc",
    "en-029",
]
HELDOUT_DIALECTS = {"en-029"}
HELDOUT_VARIANTS = {
    "Andy",
    "Gene2",
    "Hugo",
    "RicishayMax2",
    "aunty",
    "boris",
    "f4",
    "iven3",
    "klatt4",
    "m5",
    "robosoft3",
    "steph2",
}
FESTIVAL_VOICES = {
    "kal": ("voice_kal_diphone", "train"),
    "slt": ("voice_cmu_us_slt_arctic_hts", "train"),
    "ked": ("voice_ked_diphone", "heldout_voices"),
}
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]  # awb_time is a limited-domain (clock) voice


def espeak_variants():
    d = glob.glob("/usr/lib/*/espeak-ng-data/voices/!v") + glob.glob("/usr/share/espeak-ng-data/voices/!v")
    names = sorted(os.listdir(d[0])) if d else []
    return [""] + [n for n in names if " " not in n]


def place(x, rng):
    """Trim silence, fit into 1 s (speeding up if longer), centre it -> (clip, start, end) or None."""
    if len(x) == 0 or np.abs(x).max() < 1e-4:
        return None
    hop = SR // 100
    e = np.array([np.sum(x[i : i + hop] ** 2) for i in range(0, len(x) - hop + 1, hop)]) + 1e-12
    db = 10 * np.log10(e)
    on = np.nonzero(db > db.max() - 40)[0]
    a, b = max(0, on[0] * hop - 3 * hop), min(len(x), (on[-1] + 1) * hop + 3 * hop)
    w = x[a:b]
    if len(w) > int(0.95 * CLIP):
        w = resample(w, len(w), int(0.95 * CLIP))  # speed up overly long words
    w = w / (np.abs(w).max() + 1e-9) * rng.uniform(0.3, 0.9)
    clip = np.zeros(CLIP, np.float32)
    start = (CLIP - len(w)) // 2
    clip[start : start + len(w)] = w
    return clip, start, start + len(w)


class Writer:
    def __init__(self, total):
        self.rows, self.total, self.timer, self.skipped, self.rng = [], total, Timer(), 0, random.Random(1)

    def add(self, x, engine, voice, split, word, variant):
        placed = place(x, self.rng)
        if placed is None:
            self.skipped += 1
            return
        clip, start, end = placed
        label = word if word in KEYWORDS else UNKNOWN
        rel = os.path.join("clips", engine, voice.replace("+", "_"), f"{word}_{len(self.rows):05d}.wav")
        write_wav(os.path.join(DATA, rel), clip)
        self.rows.append(
            dict(
                path=rel,
                engine=engine,
                voice=voice,
                split=split,
                label=label,
                word=word,
                variant=variant,
                start=start,
                end=end,
            )
        )
        n = len(self.rows) + self.skipped
        if n % 500 == 0 or n == self.total:
            print(f"  {n}/{self.total} clips  {self.timer}  ({n / max(self.timer.s, 1e-3):.0f} clips/s)", flush=True)


def espeak_jobs(rng, n_unknown, n_heldout_voices):
    variants = espeak_variants()
    train, held = [], []
    for d in ESPEAK_DIALECTS:
        for v in variants:
            (held if d in HELDOUT_DIALECTS or v in HELDOUT_VARIANTS else train).append((d, v))
    held = rng.sample(held, min(n_heldout_voices, len(held)))
    jobs = []
    for voices, split in ((train, "train"), (held, "heldout_voices")):
        for d, v in voices:
            for word in KEYWORDS + rng.sample(UNKNOWN_WORDS, n_unknown):
                jobs.append((d + ("+" + v if v else ""), split, word, rng.randint(120, 230), rng.randint(20, 85)))
    return jobs


def run_espeak(jobs, out):
    for voice, split, word, speed, pitch in jobs:
        p = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word], capture_output=True
        )
        try:
            x, rate = read_wav_bytes(p.stdout)
        except ValueError:
            out.skipped += 1
            continue
        out.add(resample(x, rate), "espeak-ng", voice, split, word, f"s{speed}p{pitch}")


def festival_jobs(rng, n_kw, n_unk):
    jobs = []
    for voice, (_, split) in FESTIVAL_VOICES.items():
        words = [w for w in KEYWORDS for _ in range(n_kw)] + [rng.choice(UNKNOWN_WORDS) for _ in range(n_unk)]
        for w in words:
            jobs.append((voice, split, w, round(rng.uniform(0.8, 1.35), 2), rng.randint(75, 200)))
    return jobs


def run_festival(jobs, out):
    """One festival process per voice, synthesizing all its words from a generated script."""
    with tempfile.TemporaryDirectory() as tmp:
        for voice, (fn, _) in FESTIVAL_VOICES.items():
            mine = [(i, j) for i, j in enumerate(jobs) if j[0] == voice]
            lines = [f"({fn})"]
            for i, (_, _, word, stretch, f0) in mine:
                if voice == "slt":  # HTS voice: speed via the engine's -r; pitch shifted with sox below
                    lines.append(
                        f"(set! hts_engine_params (append cmu_us_slt_arctic_hts::hts_engine_params "
                        f'\'(("-r" {1 / stretch:.3f}))))'
                    )
                else:
                    lines.append(f"(Parameter.set 'Duration_Stretch {stretch})")
                    lines.append(
                        f"(set! int_lr_params '((target_f0_mean {f0}) (target_f0_std {f0 // 7}) "
                        "(model_f0_mean 170) (model_f0_std 34)))"
                    )
                lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{word}")) "{tmp}/{i}.wav" \'riff)')
            script = os.path.join(tmp, f"{voice}.scm")
            with open(script, "w") as f:
                f.write("\n".join(lines) + "\n")
            subprocess.run(["festival", "-b", script], capture_output=True)
            for i, (_, split, word, stretch, f0) in mine:
                path = os.path.join(tmp, f"{i}.wav")
                if not os.path.exists(path):
                    out.skipped += 1
                    continue
                variant = f"d{stretch}f{f0}"
                if voice == "slt":
                    cents = int((f0 - 140) * 4)  # -260 .. +240 cents
                    shifted = path + ".p.wav"
                    subprocess.run(["sox", path, "-r", str(SR), shifted, "pitch", str(cents)], capture_output=True)
                    path, variant = shifted, f"d{stretch}c{cents}"
                x, rate = read_wav(path)
                out.add(resample(x, rate), "festival", voice, split, word, variant)


def flite_jobs(rng, n_kw, n_unk):
    jobs = []
    for voice in FLITE_VOICES:
        words = [w for w in KEYWORDS for _ in range(n_kw)] + [rng.choice(UNKNOWN_WORDS) for _ in range(n_unk)]
        for w in words:
            jobs.append((voice, "heldout_engine", w, round(rng.uniform(0.85, 1.3), 2), 0))
    return jobs


def run_flite(jobs, out):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.wav")
        for voice, split, word, stretch, _ in jobs:
            subprocess.run(
                ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}", "-t", word, "-o", path],
                capture_output=True,
            )
            try:
                x, rate = read_wav(path)
            except (ValueError, OSError):
                out.skipped += 1
                continue
            out.add(resample(x, rate), "flite", voice, split, word, f"d{stretch}")


def make_irs(n=24, seed=0):
    """Room impulse responses from sox's reverb applied to a unit impulse (wet only)."""
    rng = random.Random(seed)
    irs = np.zeros((n, SR // 2), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        imp = np.zeros(SR // 2, np.float32)
        imp[0] = 0.5
        write_wav(os.path.join(tmp, "imp.wav"), imp)
        for i in range(n):
            rev, damp, room = rng.randint(20, 100), rng.randint(10, 100), rng.randint(20, 100)
            subprocess.run(
                [
                    "sox",
                    os.path.join(tmp, "imp.wav"),
                    os.path.join(tmp, "ir.wav"),
                    "reverb",
                    "-w",
                    str(rev),
                    str(damp),
                    str(room),
                ],
                check=True,
            )
            x, _ = read_wav(os.path.join(tmp, "ir.wav"))
            irs[i, : len(x)] = x[: SR // 2] / (np.sqrt(np.sum(x**2)) + 1e-9)  # unit energy
    np.save(IRS, irs)
    return irs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--espeak-unknown", type=int, default=3, help="unknown words per espeak voice")
    ap.add_argument("--espeak-heldout-voices", type=int, default=60)
    ap.add_argument("--festival-per-word", type=int, default=30, help="variants per keyword per festival voice")
    ap.add_argument("--festival-unknown", type=int, default=240)
    ap.add_argument("--flite-per-word", type=int, default=10)
    ap.add_argument("--flite-unknown", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for tool in ("espeak-ng", "festival", "flite", "sox"):
        if not shutil.which(tool):
            raise SystemExit(
                f"{tool} missing: apt-get install -y espeak-ng flite festival sox "
                "festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
            )
    rng = random.Random(a.seed)
    shutil.rmtree(CLIPS, ignore_errors=True)
    os.makedirs(CLIPS, exist_ok=True)
    timer = Timer()
    make_irs()
    print(f"reverb impulse responses -> {IRS}  {timer}")
    ej = espeak_jobs(rng, a.espeak_unknown, a.espeak_heldout_voices)
    fj = festival_jobs(rng, a.festival_per_word, a.festival_unknown)
    lj = flite_jobs(rng, a.flite_per_word, a.flite_unknown)
    out = Writer(len(ej) + len(fj) + len(lj))
    print(f"synthesizing {out.total} clips: espeak-ng {len(ej)}, festival {len(fj)}, flite {len(lj)}")
    for name, fn, jobs in (("espeak-ng", run_espeak, ej), ("festival", run_festival, fj), ("flite", run_flite, lj)):
        t = Timer()
        run_fn = fn
        run_fn(jobs, out)
        print(f"{name}: done in {t} (total {timer})", flush=True)
    write_manifest(out.rows)
    print(f"wrote {len(out.rows)} clips ({out.skipped} skipped) and {MANIFEST} in {timer}")
    tab = {}
    for r in out.rows:
        k = (r["split"], r["engine"])
        tab.setdefault(k, [0, set()])
        tab[k][0] += 1
        tab[k][1].add(r["voice"])
    for (split, engine), (n, voices) in sorted(tab.items()):
        print(f"  {split:15s} {engine:10s} {n:6d} clips  {len(voices):4d} voices")


if __name__ == "__main__":
    main()
