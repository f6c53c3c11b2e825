"""Commands enrolled from a few recordings, in any language. Each take is checked, trimmed to its speech and run
through the keyword model's own stream; the speech embedding the model carries as state, averaged over the window,
is the take's vector. Vectors are centred on a bank of other speech and noise (what "not a command" sounds like),
and a command is the mean direction of its takes: a window matches when its own centred vector points the same way
(cosine similarity). Nothing is trained and nothing depends on a language, only on how the takes sound.

A take is also heard 10 % slower and faster (its vector is the mean of the three): other voices differ in pace and
pitch. A window's similarity to a prototype is normalized against the bank (s-norm, as speaker verification
does): how far it stands above the bank vectors most like the prototype, and above those most like the window, so
a voice or room that is close to everything does not pass for a command.

The threshold of a command comes from the bank (how often other speech comes that close: half of the bank sets
it, the other half measures the false accepts), its expected hit rate from leaving each take out in turn, and its
overlap with every other command from the other command's threshold applied to this one's takes."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from .resample import convert
from .settings import Stream
from .streaming import ModelStream

RATE = 16000
FRAME = 320  # 20 ms: the unit of the speech/silence decision
MAX_TAKE_S = 3.0  # one command per take; longer is a sentence or a recording left running
# Measured on the train and validation speakers' clips of Speech Commands and its noise slices: 10 dB over the
# floor and 0.1 s of speech refuse 0.65 % of the words and 95 % of the noise; 6 dB refused less noise (78 %)
MIN_SPEECH_S = 0.1
QUIET_DBFS = -45.0  # the loudest 20 ms of a take under this is too quiet to enrol
SPEECH_BELOW_PEAK_DB = 30.0  # frames this far under the loudest one are not speech
SPEECH_ABOVE_FLOOR_DB = 10.0  # ... nor those this close to the take's own noise floor
CLIPPED_SHARE = 0.01  # samples at full scale: the microphone was overdriven (0.7 % of those words reach it)
MARGIN_S = 0.1  # kept around the speech when trimming
# of the bank's other speech, per command: chosen on validation speakers (demos/kws/evaluation/enrolment.py
# --split validation: 0.2 % kept 98 % of new words heard and cut other clips triggering from 5.4 % at 0.5 %)
TARGET_FALSE_ACCEPTS = 0.002
MIN_SIMILARITY = 0.35  # a window less like the prototype never matches: noise alone lines up that far now and then
# Chosen on validation speakers with the model's ten words enrolled as if new (k = 3, in the stream): the speeds
# and the normalization together heard 94.7 % against 91.5 % with other clips triggering 5.1 % against 5.8 %
SPEEDS = (0.9, 1.0, 1.1)
COHORT = 50  # the bank vectors most like a prototype or a window: what its score is measured against
GATED = -1e3  # the score of a window under MIN_SIMILARITY
# A bank word group whose median similarity to a new command's prototype reaches this is that word: measured on
# the bank's training speakers (3 takes of a word, the rest of its group against every other group): the same
# word's median is >= 0.73 for 90 % of draws; the closest other word's reaches it for 8 %, nearly all
# homophones (four/forward, three/tree), which the model cannot tell apart anyway
SAME_WORD = 0.72
MIN_GROUP = 3
SILENCE = "_silence_"
OVERLAP_WARN = 0.2  # a share of one command's takes accepted by another: the two are confusable


class EnrolError(ValueError):
    pass


@dataclass(frozen=True)
class Take:
    audio: np.ndarray  # the speech, trimmed, 16 kHz float32
    problem: str | None  # why the take cannot be used, in words a speaker can act on
    speech_s: float
    peak_dbfs: float


def quantile(x: np.ndarray, q: float) -> float:
    """numpy's default (linear) quantile; np.quantile needs numpy.ma, which executables leave out."""
    x = np.sort(np.asarray(x, np.float64).ravel())
    pos = q * (len(x) - 1)
    low = int(np.floor(pos))
    high = min(low + 1, len(x) - 1)
    return float(x[low] + (x[high] - x[low]) * (pos - low))


def _frames_db(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME
    if not n:
        return np.full(1, -120.0)
    rms = np.sqrt(np.mean(x[: n * FRAME].reshape(n, FRAME).astype(np.float64) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-6))


def check_take(x: np.ndarray) -> Take:
    """A take (16 kHz mono float32 in [-1, 1]) trimmed to its speech, or the reason it cannot be used."""
    x = np.asarray(x, np.float32)
    seconds = len(x) / RATE
    if seconds > MAX_TAKE_S:
        return Take(x, f"too long ({seconds:.1f} s; at most {MAX_TAKE_S:.0f} s, one command per take)", 0.0, 0.0)
    clipped = float(np.mean(np.abs(x) >= 0.999)) if len(x) else 0.0
    db = _frames_db(x)
    peak = float(db.max())
    if clipped > CLIPPED_SHARE:
        return Take(x, f"clipped ({100 * clipped:.1f} % of the samples at full scale): speak further from the "
                       "microphone or turn its gain down", 0.0, peak)
    if peak < QUIET_DBFS:
        return Take(x, f"too quiet (loudest {peak:.0f} dBFS; needs {QUIET_DBFS:.0f}): speak closer or louder",
                    0.0, peak)
    floor = quantile(db, 0.1)
    speech = np.flatnonzero((db >= peak - SPEECH_BELOW_PEAK_DB) & (db >= floor + SPEECH_ABOVE_FLOOR_DB))
    span = (speech[-1] - speech[0] + 1) * FRAME / RATE if len(speech) else 0.0
    if span < MIN_SPEECH_S:
        return Take(x, "no speech found (only noise or silence, or a sound shorter than a word)", span, peak)
    margin = int(MARGIN_S * RATE)
    start, end = max(0, speech[0] * FRAME - margin), min(len(x), (speech[-1] + 1) * FRAME + margin)
    return Take(x[start:end], None, span, peak)


class EmbeddingTap:
    """The keyword model's stream over a recording: after each step, the mean of the embeddings its state holds,
    the same vector a listener computes from the same output."""

    def __init__(self, session, stream: Stream, outputs: list[str], state_output: str):
        self.session, self.spec, self.outputs = session, stream, outputs
        self.index = outputs.index(state_output)

    def vectors(self, audio: np.ndarray) -> np.ndarray:
        """[steps, D] for the audio, which is preceded by a window of silence (the state's start) and followed by
        one (the speech passes through the whole window)."""
        hop, window = self.spec.chunk_samples, self.spec.window_samples
        x = np.concatenate([np.zeros(window, np.float32), np.asarray(audio, np.float32),
                            np.zeros(window, np.float32)])
        stream, found = ModelStream(self.spec, self.outputs), []
        for i in range(0, len(x) - hop + 1, hop):
            outs = self.session.run(stream.feeds(x[i : i + hop]))
            stream.update(outs)
            if i >= window:
                found.append(pooled(outs[self.index]))
        return np.array(found, np.float32)

    def take_vector(self, bank: Bank, audio: np.ndarray) -> np.ndarray:
        """A take's vector: the mean of its peak windows (peak_window) at each of SPEEDS."""
        return np.mean([peak_window(bank, self.vectors(convert(audio, round(RATE * f), RATE))) for f in SPEEDS],
                       axis=0).astype(np.float32)


def pooled(state: np.ndarray) -> np.ndarray:
    """The window's vector: the embeddings of a state output [1, K, D] averaged over K."""
    return np.asarray(state, np.float32).reshape(-1, state.shape[-1]).mean(axis=0)


def unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-9)


@dataclass(frozen=True)
class Bank:
    """What is not a command, as the model hears it: `centre` [D] (the mean of everything the bank holds) and
    `negatives` [N, D] (window vectors of other words, noise and silence), made from speakers a test never uses."""

    centre: np.ndarray
    negatives: np.ndarray
    words: np.ndarray | None = None  # what each negative is (a word, or _silence_)

    def centred(self, v: np.ndarray) -> np.ndarray:
        return unit(np.asarray(v, np.float32) - self.centre)

    @functools.cached_property
    def centred_negatives(self) -> np.ndarray:
        return self.centred(self.negatives)

    def negatives_cohort(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each kept negative's cohort (mean and spread of its COHORT most similar kept negatives, itself left
        out), for one `keep` mask at a time (most commands share the mask that keeps everything)."""
        key = keep.tobytes()
        if key not in self._cohorts:
            self._cohorts[key] = cohort(self._similarities[np.ix_(keep, keep)])  # one mask per word group at most
        return self._cohorts[key]

    @functools.cached_property
    def _cohorts(self) -> dict:
        return {}

    @functools.cached_property
    def _similarities(self) -> np.ndarray:
        """[N, N] between the negatives, each with itself left out: made once (an executable's numpy multiplies
        matrices without an optimized BLAS)."""
        sims = self.centred_negatives @ self.centred_negatives.T
        np.fill_diagonal(sims, -np.inf)
        return sims

    def same_word(self, sims: np.ndarray) -> np.ndarray:
        """Mask of the negatives that are the enrolled word itself: the bank's word groups whose median
        similarity to the prototype reaches SAME_WORD (a word the bank holds must not set its own threshold)."""
        mask = np.zeros(len(sims), bool)
        for group in self.groups:
            if quantile(sims[group], 0.5) >= SAME_WORD:
                mask[group] = True
        return mask

    @functools.cached_property
    def groups(self) -> list[np.ndarray]:
        """Indices of each word's negatives (words with at least MIN_GROUP of them; not silence)."""
        if self.words is None:
            return []
        found = [np.flatnonzero(self.words == w) for w in sorted(set(self.words.tolist()) - {SILENCE})]
        return [g for g in found if len(g) >= MIN_GROUP]

    def without(self, words) -> Bank:
        """The bank less some words (a benchmark enrolling a word the bank holds)."""
        keep = ~np.isin(self.words, list(words))
        return Bank(self.centre, self.negatives[keep], self.words[keep])

    @classmethod
    def load(cls, path) -> Bank:
        with np.load(path) as z:
            words = z["words"] if "words" in z.files else None
            return cls(z["centre"].astype(np.float32), z["negatives"].astype(np.float32), words)


def peak_window(bank: Bank, steps: np.ndarray) -> np.ndarray:
    """The window vector of a recording's steps [S, D] furthest from what the bank holds (the speech most in it)."""
    return steps[int(np.argmax(np.linalg.norm(steps - bank.centre, axis=1)))]


def cohort(sims: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of the COHORT largest similarities along the last axis (of the kept bank vectors)."""
    if keep is not None:
        sims = sims[..., keep]
    n = min(COHORT, sims.shape[-1])
    top = np.partition(sims, sims.shape[-1] - n, axis=-1)[..., -n:]
    return top.mean(axis=-1), top.std(axis=-1) + 1e-6


def normalized(similarity, own: tuple, other: tuple):
    """s-norm: the similarity against the prototype's cohort and against the window's, averaged; GATED under
    MIN_SIMILARITY."""
    z = 0.5 * ((similarity - own[0]) / own[1] + (similarity - other[0]) / other[1])
    return np.where(similarity >= MIN_SIMILARITY, z, GATED)


@dataclass
class Command:
    label: str
    vectors: np.ndarray  # [takes, D]: each take's vector (kept to re-measure when the bank changes)
    prototype: np.ndarray = field(init=False)  # [D], unit, centred
    keep: np.ndarray = field(init=False)  # [N] the bank's negatives that are not this word: its cohorts
    own: tuple = field(init=False)  # the prototype's cohort (mean, spread)
    threshold: float = field(init=False)  # of the normalized score
    false_accepts: float = field(init=False)  # share of the bank's other half at or above the threshold
    hit_rate: float | None = field(init=False)  # each take left out in turn; None with one take

    def measure(self, bank: Bank, hit_rate: bool = True) -> Command:
        """Prototype, threshold and false accepts; the hit rate too unless told not to (each take left out)."""
        self._fit(bank)
        n = len(self.vectors)
        if n < 2 or not hit_rate:
            self.hit_rate = None
            return self
        hits = 0
        for i in range(n):
            left_out = Command(self.label, np.delete(self.vectors, i, axis=0))
            left_out._fit(bank)
            hits += bool(left_out.scores(bank, self.vectors[i : i + 1])[0] >= left_out.threshold)
        self.hit_rate = hits / n
        return self

    def _fit(self, bank: Bank) -> None:
        self.prototype = unit(bank.centred(self.vectors).mean(axis=0))
        sims = bank.centred_negatives @ self.prototype
        self.keep = ~bank.same_word(sims)
        self.own = cohort(sims, self.keep)
        scores = normalized(sims[self.keep], self.own, bank.negatives_cohort(self.keep))
        half_a, half_b = scores[0::2], scores[1::2]
        self.threshold = max(quantile(half_a, 1 - TARGET_FALSE_ACCEPTS), GATED / 2)  # a gated window never passes
        self.false_accepts = float(np.mean(half_b >= self.threshold))

    def scores(self, bank: Bank, vectors: np.ndarray) -> np.ndarray:
        """The normalized score of each window vector [M, D]."""
        c = bank.centred(vectors)
        return normalized(c @ self.prototype, self.own, cohort(c @ bank.centred_negatives.T, self.keep))

    def overlap(self, bank: Bank, other: Command) -> float:
        """The share of this command's takes that `other` would accept."""
        return float(np.mean(other.scores(bank, self.vectors) >= other.threshold))


class Scorer:
    """Every command's normalized score and margin over its threshold for one window vector: a stream step."""

    def __init__(self, bank: Bank, commands: list[Command]):
        self.bank, self.labels = bank, [c.label for c in commands]
        n, d = len(commands), len(bank.centre)
        self.prototypes = np.array([c.prototype for c in commands], np.float32).reshape(n, d)
        self.thresholds = np.array([c.threshold for c in commands], np.float32)
        self.own = (np.array([c.own[0] for c in commands]), np.array([c.own[1] for c in commands]))
        groups: dict[bytes, tuple[np.ndarray, list[int]]] = {}
        for i, c in enumerate(commands):
            groups.setdefault(c.keep.tobytes(), (c.keep, []))[1].append(i)
        self.groups = [(keep, np.array(idx)) for keep, idx in groups.values()]  # commands sharing a cohort

    def step(self, vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, margins) [C] of a window vector [D]."""
        c = self.bank.centred(vector)
        to_bank = self.bank.centred_negatives @ c
        mean, spread = np.empty(len(self.labels)), np.empty(len(self.labels))
        for keep, idx in self.groups:
            mean[idx], spread[idx] = cohort(to_bank, keep)
        scores = normalized(self.prototypes @ c, self.own, (mean, spread))
        return scores, scores - self.thresholds


def confusions(bank: Bank, command: Command, others: list[Command]) -> list[tuple[str, float]]:
    """Other commands that accept this one's takes, or whose takes this one accepts: (label, the larger share),
    most confusable first."""
    found = []
    for other in others:
        share = max(command.overlap(bank, other), other.overlap(bank, command))
        if share >= OVERLAP_WARN:
            found.append((other.label, share))
    return sorted(found, key=lambda x: -x[1])
