"""Real speech: read a folder in Speech Commands' layout and split it by speaker.

Two layouts, told apart by the list files:

- the full dataset, `speech_commands_v0.02.tar.gz` (Warden 2018, arXiv:1804.03209, CC BY 4.0; 105,829 clips of
  35 words by 2,618 speakers, distributed at download.tensorflow.org/data/speech_commands_v0.02.tar.gz):
  one folder per word, `_background_noise_/` (long noise recordings) and `validation_list.txt` /
  `testing_list.txt`, which split it by speaker. Words that are not keywords are `_unknown_`; `_silence_` is
  cut from the background recordings (train split) by `silence_clips`.
- the test-set layout (`speech_commands_test_set_v0.02`, or a share of it): the ten keyword folders,
  `_unknown_/` (the file name starts with the word: `backward_0c540988_nohash_2.wav`) and `_silence_/`
  (1 s noise slices). It has no list files: every speaker goes wholly to one split by a hash of the speaker
  id. Speech Commands' own `which_set` rule hashes the name with sha1 too, but that rule chose the test
  set's speakers in the first place (all of them fall in one narrow band of it), so the hash here is salted;
  and it hashes the speaker id alone, so that one speaker's `_unknown_` words cannot land in another split
  than the same speaker's keywords.

The speaker is the 8-hex-digit id before `_nohash_`. A split never shares a speaker with another.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

import numpy as np

from demos.kws.common import CLASSES, CLIP, KEYWORDS, SILENCE, UNKNOWN, read_wav

CITATION = ("Speech Commands v0.02, P. Warden, \"Speech Commands: A Dataset for Limited-Vocabulary Speech "
            "Recognition\", arXiv:1804.03209 (2018), CC BY 4.0")
NAME = re.compile(r"^(?:(?P<word>[a-z]+)_)?(?P<speaker>[0-9a-f]{8})_nohash_(?P<n>\d+)\.wav$")
BACKGROUND = "_background_noise_"
LISTS = {"validation": "validation_list.txt", "test": "testing_list.txt"}
SPLITS = ("train", "validation", "test")


class LayoutError(ValueError):
    """The folder is not in Speech Commands' layout; the message names the path and what is wrong."""


@dataclass(frozen=True)
class Clip:
    path: str  # absolute
    label: str  # one of CLASSES
    word: str  # the spoken word (the label for keywords, the noise file's stem for _silence_)
    speaker: str  # 8 hex digits; "" for _silence_
    split: str  # train / validation / test


SALT = "edgepack-kws/"


def speaker_split(key: str, validation_pct: float, test_pct: float) -> str:
    """A uniform split of keys by a salted sha1 (stable across machines and runs)."""
    h = int(hashlib.sha1((SALT + key).encode()).hexdigest(), 16) % 10**6 / 10**4
    if h < validation_pct:
        return "validation"
    if h < validation_pct + test_pct:
        return "test"
    return "train"


def _label(word: str) -> str:
    return word if word in KEYWORDS else UNKNOWN


def _parse(root: str, folder: str, name: str) -> tuple[str, str]:
    m = NAME.match(name)
    if not m:
        raise LayoutError(f"{os.path.join(root, folder, name)}: not a Speech Commands clip name "
                          "(SPEAKER_nohash_N.wav, or WORD_SPEAKER_nohash_N.wav in _unknown_)")
    word = m["word"] or folder
    if folder != UNKNOWN and m["word"]:
        raise LayoutError(f"{os.path.join(root, folder, name)}: a word prefix outside {UNKNOWN}/")
    if folder == UNKNOWN and not m["word"]:
        raise LayoutError(f"{os.path.join(root, folder, name)}: {UNKNOWN}/ names start with the word")
    return word, m["speaker"]


def _wavs(path: str) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.endswith(".wav"))


def scan(root: str, validation_pct: float = 15.0, test_pct: float = 25.0) -> list[Clip]:
    """Every clip of the folder with its label, speaker and split (the full dataset's lists win when present)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise LayoutError(f"{root}: no such folder (a Speech Commands folder, e.g. speech_commands_v0.02/)")
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and d != BACKGROUND)
    missing = [k for k in KEYWORDS if k not in folders]
    if missing:
        raise LayoutError(f"{root}: no folder for {', '.join(missing)} (not in Speech Commands' layout)")
    lists = {split: os.path.join(root, name) for split, name in LISTS.items()}
    full = all(os.path.exists(p) for p in lists.values())
    if any(os.path.exists(p) for p in lists.values()) and not full:
        raise LayoutError(f"{root}: has one of {', '.join(LISTS.values())} but not both")
    listed = {}
    if full:
        for split, p in lists.items():
            with open(p) as f:
                listed.update({ln.strip(): split for ln in f if ln.strip()})
    clips = []
    for folder in folders:
        for name in _wavs(os.path.join(root, folder)):
            path = os.path.join(root, folder, name)
            if folder == SILENCE:
                clips.append(Clip(path, SILENCE, SILENCE, "", speaker_split(name, validation_pct, test_pct)))
                continue
            word, speaker = _parse(root, folder, name)
            split = listed.get(f"{folder}/{name}", "train") if full else speaker_split(speaker, validation_pct,
                                                                                       test_pct)
            clips.append(Clip(path, _label(word), word, speaker, split))
    if not clips:
        raise LayoutError(f"{root}: no clips")
    return clips


def check_speakers(clips: list[Clip]) -> None:
    """Refuse a split that shares a speaker with another (a list file that splits by clip)."""
    seen: dict[str, str] = {}
    for c in clips:
        if c.speaker and seen.setdefault(c.speaker, c.split) != c.split:
            raise LayoutError(f"speaker {c.speaker} is in both {seen[c.speaker]} and {c.split} "
                              f"({c.path}): the splits must be by speaker")


def load(clips: list[Clip]) -> np.ndarray:
    """[N, 16000] float32 in [-1, 1]; shorter clips (Speech Commands has some) are padded with zeros."""
    out = np.zeros((len(clips), CLIP), np.float32)
    for i, c in enumerate(clips):
        try:
            x, rate = read_wav(c.path)
        except ValueError as e:
            raise LayoutError(f"{c.path}: {e}") from None
        if rate != 16000:
            raise LayoutError(f"{c.path}: {rate} Hz, Speech Commands clips are 16 kHz")
        out[i, : min(CLIP, len(x))] = x[:CLIP]
    return out


def background(root: str) -> list[np.ndarray]:
    """The full dataset's long noise recordings (empty for the test-set layout)."""
    path = os.path.join(root, BACKGROUND)
    if not os.path.isdir(path):
        return []
    return [read_wav(os.path.join(path, n))[0] for n in _wavs(path)]


def silence_clips(noises: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """n 1 s slices of long noise recordings at random levels (how Speech Commands makes _silence_)."""
    out = np.zeros((n, CLIP), np.float32)
    for i in range(n):
        x = noises[rng.integers(len(noises))]
        s = rng.integers(0, len(x) - CLIP + 1)
        out[i] = x[s : s + CLIP] * rng.uniform(0, 1)
    return out


def word_bounds(audio: np.ndarray, floor_db: float = -30.0, margin: int = 800) -> tuple[np.ndarray, np.ndarray]:
    """Where the word is in each clip: 10 ms frames within floor_db of the clip's loudest, plus margin samples."""
    frames = audio[:, : CLIP // 160 * 160].reshape(len(audio), -1, 160)
    db = 10 * np.log10((frames**2).mean(-1) + 1e-10)
    loud = db > db.max(1, keepdims=True) + floor_db
    first, last = loud.argmax(1), loud.shape[1] - 1 - loud[:, ::-1].argmax(1)
    return np.maximum(first * 160 - margin, 0), np.minimum((last + 1) * 160 + margin, CLIP)


def summary(clips: list[Clip]) -> dict[str, dict]:
    """{split: {clips, speakers, per class}} for reports."""
    out = {}
    for split in SPLITS:
        cs = [c for c in clips if c.split == split]
        out[split] = dict(clips=len(cs), speakers=len({c.speaker for c in cs if c.speaker}),
                          per_class={k: sum(c.label == k for c in cs) for k in CLASSES})
    return out
