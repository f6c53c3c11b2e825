"""The real-speech loader of the keyword demo (demos/kws/data/speech_commands.py) on committed Speech Commands clips:
both layouts, the split by speaker, `_unknown_` names, the full dataset's list files and background noise."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from demos.kws.common import write_wav
from demos.kws.data import speech_commands as sc

ROOT = Path(__file__).resolve().parent.parent

FIXTURE = ROOT / "tests" / "fixtures" / "speech_commands"


def test_test_set_layout_gives_labels_words_and_one_split_per_speaker():
    clips = sc.scan(FIXTURE)
    assert len(clips) == 15
    by_name = {Path(c.path).name: c for c in clips if c.label == "_unknown_"}
    assert {(c.word, c.speaker) for c in by_name.values()} == {
        ("backward", "f2e59fea"), ("eight", "db24628d"), ("five", "d962e5ac")}
    assert {c.label for c in clips} == {*sc.KEYWORDS, "_unknown_", "_silence_"}
    assert all(c.speaker == "" and c.word == "_silence_" for c in clips if c.label == "_silence_")
    sc.check_speakers(clips)  # every speaker's clips, keywords and other words, in one split
    splits = {c.speaker: c.split for c in clips if c.speaker}
    assert len(splits) == 3 and set(splits.values()) <= set(sc.SPLITS)
    # the rule is a salted hash of the speaker id alone: stable, and not the same as the word-prefixed name
    assert sc.speaker_split("f2e59fea", 15, 25) == splits["f2e59fea"]


def test_split_shares_follow_the_percentages():
    keys = [f"{i:08x}" for i in range(4000)]
    share = {s: sum(sc.speaker_split(k, 15, 25) == s for k in keys) / len(keys) for s in sc.SPLITS}
    assert abs(share["validation"] - 0.15) < 0.02 and abs(share["test"] - 0.25) < 0.02


def _full_layout(tmp_path: Path, validation: list[str], testing: list[str]) -> Path:
    """The fixture rearranged as the full dataset: one folder per word, list files, _background_noise_."""
    root = tmp_path / "speech_commands_v0.02"
    for c in sc.scan(FIXTURE):
        if c.label == "_silence_":
            continue
        folder = root / c.word
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(c.path, folder / f"{c.speaker}_nohash_0.wav")
    (root / "validation_list.txt").write_text("".join(f"{p}\n" for p in validation))
    (root / "testing_list.txt").write_text("".join(f"{p}\n" for p in testing))
    (root / sc.BACKGROUND).mkdir()
    noise = np.concatenate([sc.load([c])[0] for c in sc.scan(FIXTURE) if c.label == "_silence_"])
    write_wav(str(root / sc.BACKGROUND / "noise.wav"), noise)
    return root


def test_full_dataset_layout_follows_its_list_files(tmp_path):
    root = _full_layout(tmp_path, ["left/db24628d_nohash_0.wav", "right/db24628d_nohash_0.wav",
                                   "eight/db24628d_nohash_0.wav"],
                        ["stop/d962e5ac_nohash_0.wav", "go/d962e5ac_nohash_0.wav", "on/d962e5ac_nohash_0.wav",
                         "off/d962e5ac_nohash_0.wav", "down/d962e5ac_nohash_0.wav", "five/d962e5ac_nohash_0.wav"])
    clips = sc.scan(root)
    sc.check_speakers(clips)
    assert {c.speaker: c.split for c in clips} == {"f2e59fea": "train", "db24628d": "validation",
                                                   "d962e5ac": "test"}
    words = {c.word: c.label for c in clips}
    assert words["backward"] == words["eight"] == words["five"] == "_unknown_" and words["yes"] == "yes"
    assert not any(c.label == "_silence_" for c in clips)  # made from the background recordings instead
    noises = sc.background(str(root))
    assert len(noises) == 1 and len(noises[0]) == 32000
    sil = sc.silence_clips(noises, 5, np.random.default_rng(0))
    assert sil.shape == (5, 16000) and np.abs(sil).max() <= np.abs(noises[0]).max() + 1e-6
    summary = sc.summary(clips)
    assert summary["test"]["speakers"] == 1 and summary["test"]["per_class"]["stop"] == 1


def test_a_list_that_splits_a_speaker_is_refused(tmp_path):
    root = _full_layout(tmp_path, ["left/db24628d_nohash_0.wav"], ["stop/d962e5ac_nohash_0.wav"])
    with pytest.raises(sc.LayoutError, match="speaker db24628d is in both"):
        sc.check_speakers(sc.scan(root))


@pytest.mark.parametrize("damage, words", [
    (lambda r: shutil.rmtree(r / "go"), "no folder for go"),
    (lambda r: (r / "yes" / "hello.wav").write_bytes(b"RIFF"), "not a Speech Commands clip name"),
    (lambda r: (r / "validation_list.txt").write_text(""), "but not both"),
])
def test_a_folder_in_another_layout_is_named_with_its_problem(tmp_path, damage, words):
    root = tmp_path / "sc"
    shutil.copytree(FIXTURE, root)
    damage(root)
    with pytest.raises(sc.LayoutError, match=words) as e:
        sc.scan(root)
    assert str(tmp_path) in str(e.value)


def test_word_bounds_find_the_word_in_each_clip():
    clips = [c for c in sc.scan(FIXTURE) if c.label in sc.KEYWORDS]
    audio = sc.load(clips)
    start, end = sc.word_bounds(audio)
    assert np.all(start < end) and np.all(end - start >= 2400)  # every keyword lasts > 150 ms
    for x, s, e in zip(audio, start, end):  # the loudest 10 ms frame lies inside the bounds
        loud = int(np.argmax((x[: 16000 // 160 * 160].reshape(-1, 160) ** 2).mean(1))) * 160
        assert s <= loud < e
