"""Enrolment (edge/runtime/audio/enrol.py) on real speech: takes are checked and trimmed as a speaker would need,
and a word the model never learned (taken out of the bank), enrolled from three real speakers, is heard from two others
through the model's own stream, while the other words and noise of real speakers are not."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from demos.kws.assembly.bank import OUT as BANK
from demos.kws.assembly.bank import tap_for
from edge.runtime.audio import enrol
from tests import wavs
from tests.conftest import ROOT

SIX = sorted((ROOT / "tests" / "fixtures" / "enrol").glob("six_*.wav"))
OTHERS = sorted(p for p in (ROOT / "tests" / "fixtures" / "speech_commands").rglob("*.wav"))
RNG = np.random.default_rng(0)


def speech() -> np.ndarray:
    return wavs.read16k(SIX[0])


@pytest.mark.parametrize("make, problem", [
    (lambda: np.zeros(16000, np.float32), "too quiet"),
    (lambda: RNG.normal(0, 0.02, 16000).astype(np.float32), "no speech found"),
    (lambda: speech() * 0.003, "too quiet"),
    (lambda: np.clip(speech() * 40, -1, 1), "clipped"),
    (lambda: np.tile(speech(), 4), "too long"),
])
def test_a_take_that_cannot_be_used_says_why(make, problem):
    take = enrol.check_take(make())
    assert take.problem and take.problem.startswith(problem), take.problem


def test_a_take_is_trimmed_to_its_speech():
    x = speech()
    padded = np.concatenate([RNG.normal(0, 1e-3, 8000), x, RNG.normal(0, 1e-3, 16000)]).astype(np.float32)
    take = enrol.check_take(padded)
    assert take.problem is None and 0.3 < take.speech_s < 1.0
    assert len(take.audio) < len(x)  # the clip's own quiet start and end go too
    assert np.max(np.abs(take.audio)) == pytest.approx(np.max(np.abs(x)))  # the word itself stays


@pytest.fixture(scope="module")
def tap(tmp_path_factory):
    work = tmp_path_factory.mktemp("stream")
    subprocess.run([sys.executable, "-m", "demos.kws.assembly.assemble", "-o", work], cwd=ROOT, check=True,
                   capture_output=True, timeout=600)
    return tap_for(work)


def _take(tap, bank, path: Path) -> np.ndarray:
    return tap.take_vector(bank, enrol.check_take(wavs.read16k(path)).audio)


def _steps(tap, path: Path) -> np.ndarray:
    take = enrol.check_take(wavs.read16k(path))
    return tap.vectors(take.audio if take.problem is None else wavs.read16k(path))


@pytest.mark.slow
def test_a_new_word_from_three_speakers_is_heard_from_two_others_and_nothing_else_is(tap):
    bank = enrol.Bank.load(BANK).without({"six"})  # a word new to it
    takes = [_take(tap, bank, p) for p in SIX[:3]]
    six = enrol.Command("six", np.array(takes)).measure(bank)
    assert six.false_accepts <= 0.03
    assert six.hit_rate is not None and six.hit_rate >= 2 / 3  # each take against the other two
    for path in SIX[3:]:  # speakers the enrolment never heard
        assert six.scores(bank, _steps(tap, path)).max() >= six.threshold, path.name
    for path in OTHERS:  # ten other words of three more speakers, and noise
        assert six.scores(bank, _steps(tap, path)).max() < six.threshold, path.name


@pytest.mark.slow
def test_two_enrolments_of_the_same_word_are_said_to_be_confusable(tap):
    bank = enrol.Bank.load(BANK).without({"six"})  # a word new to it
    vectors = [_take(tap, bank, p) for p in SIX]
    first = enrol.Command("six", np.array(vectors[:2])).measure(bank)
    again = enrol.Command("sechs", np.array(vectors[2:])).measure(bank)
    other = enrol.Command("other", np.array([_take(tap, bank, p) for p in OTHERS
                                         if p.parent.name in ("yes", "no", "left")])).measure(bank)
    found = dict(enrol.confusions(bank, again, [first, other]))
    assert set(found) == {"six"} and found["six"] >= enrol.OVERLAP_WARN
