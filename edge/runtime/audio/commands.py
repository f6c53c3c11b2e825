"""The commands a listener hears besides the model's own: those enrolled at build time (bundled) and those
enrolled on the device (the state folder, edge/runtime/audio/enrolled.py), each measured against the bundled bank
(enrol.py). A running listener re-reads the state folder when its file changes, and decides in the stream
jointly with the model's own scores (Spotter)."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import enrol
from .detector import Detection
from .enrolled import Store, StoreError, TakenError, check_label, read_commands
from .settings import VoiceSettings

MODEL, BUNDLED, ENROLLED = "model", "bundled", "enrolled"  # where a command comes from
RELOAD_S = 1.0  # how often a listener looks at the state folder's file
PEAK_STEPS = 3  # once a command crosses its threshold, the best of this many steps decides which one it was
REARM = 0.1  # a command heard fires again only after its score fell this far under its threshold


class ConfusedError(StoreError):
    status = 422  # refused by a strict enrolment: the model cannot tell it from another command


@dataclass
class Entry:
    """One command as --commands and GET /commands show it."""

    label: str
    source: str
    takes: int | None = None
    hit_rate: float | None = None
    false_accepts: float | None = None
    threshold: float | None = None
    confusable: list[tuple[str, float]] | None = None

    def as_dict(self) -> dict:
        d = {"label": self.label, "source": self.source, "takes": self.takes, "hit_rate": _round(self.hit_rate),
             "false_accepts": _round(self.false_accepts), "threshold": _round(self.threshold)}
        d["confusable"] = [{"label": k, "overlap": round(v, 3)} for k, v in self.confusable or []]
        return d

    def line(self) -> str:
        quality = "" if self.takes is None else (
            f"{self.takes} take(s), expected hit rate "
            f"{'n/a (one take)' if self.hit_rate is None else f'{100 * self.hit_rate:.0f} %'}, false accepts "
            f"{100 * self.false_accepts:.1f} %")
        confused = "; may be confused with " + ", ".join(f"{k} ({100 * v:.0f} %)" for k, v in self.confusable) \
            if self.confusable else ""
        return f"{self.label:<16} {self.source:<9} {quality}{confused}".rstrip()


def _round(x):
    return None if x is None else round(float(x), 4)


class Vocabulary:
    """The bank, the model's own commands as the bank holds them (to name confusions), the bundled commands and
    the state folder's; `commands` are the ones a listener scores, measured."""

    def __init__(self, bank: enrol.Bank, builtins: list[str], bundled: dict[str, np.ndarray], store: Store | None,
                 warn=None):
        self.bank, self.builtins, self.store = bank, list(builtins), store
        self.warn = warn or (lambda text: print(f"warning: {text}", file=sys.stderr, flush=True))
        self.bundled = [enrol.Command(k, v).measure(bank) for k, v in bundled.items()]  # part of the executable
        self.enrolled: list[enrol.Command] = []  # the state folder's
        self._measured: dict[tuple[str, bytes], enrol.Command] = {}
        self._stamp, self._warned, self._checked = object(), None, 0.0
        self._model_commands: list[enrol.Command] | None = None
        self._lock = threading.Lock()  # the listener and the HTTP server both reload
        self._index()
        self.reload()

    @classmethod
    def for_app(cls, app: VoiceSettings, root: Path, state: Path | None, warn=None) -> Vocabulary | None:
        """None when the model carries no enrolment (no bank, no state output)."""
        if not app.enrol:
            return None
        bank = enrol.Bank.load(root / app.enrol.bank)
        bundled = read_commands(root / app.enrol.commands) if app.enrol.commands else {}
        return cls(bank, app.keywords, bundled, Store(state) if state else None, warn)

    @property
    def commands(self) -> list[enrol.Command]:
        return [*self.bundled, *self.enrolled]

    @property
    def labels(self) -> list[str]:
        return [*self.builtins, *(c.label for c in self.commands)]

    @property
    def own(self) -> list[str]:
        """The executable's own commands: the model's and the bundled ones (never enrolled over or forgotten)."""
        return [*self.builtins, *(c.label for c in self.bundled)]

    def reload(self) -> bool:
        """Read the state folder's file again if it changed; True when the commands changed."""
        with self._lock:
            return self._reload()

    def _reload(self) -> bool:
        self._checked = time.monotonic()
        if not self.store:
            return False
        stamp = self.store.stamp()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        found, warning = self.store.load()
        if warning and warning != self._warned:
            self.warn(warning)
        self._warned = warning
        bundled = {c.label for c in self.bundled}
        before = list(self.enrolled)
        self.enrolled = [self._measure(k, v) for k, v in found.items() if k not in bundled]
        self._index()
        return [id(c) for c in before] != [id(c) for c in self.enrolled]

    def due(self) -> bool:
        return time.monotonic() - self._checked >= RELOAD_S

    def _measure(self, label: str, vectors: np.ndarray) -> enrol.Command:
        key = (label, vectors.tobytes())
        if key not in self._measured:
            self._measured[key] = enrol.Command(label, vectors).measure(self.bank)
        return self._measured[key]

    def _index(self) -> None:
        """What a stream step scores, swapped in one assignment (the listener and the HTTP server both reload)."""
        self.scoring = enrol.Scorer(self.bank, self.commands)

    def model_commands(self) -> list[enrol.Command]:
        """The model's own commands as the bank holds them (other speakers saying them), to name confusions."""
        if self._model_commands is None:
            words = self.bank.words if self.bank.words is not None else np.array([], str)
            self._model_commands = [enrol.Command(w, self.bank.negatives[words == w]).measure(self.bank, False)
                                    for w in self.builtins if np.any(words == w)]
        return self._model_commands

    def check_new(self, label: str, replace: bool = False) -> str:
        """The label as it will be kept, or LabelError/TakenError: checked before any take is recorded."""
        label = check_label(label, self.labels)
        if label in self.own:
            raise TakenError(f"{label!r} is one of the executable's own commands; choose another label")
        if label in [c.label for c in self.enrolled] and not replace:
            raise TakenError(f"{label!r} is enrolled already ({self.store.path}); to enrol it again, replace it "
                             "(--replace, or ?replace=1 over HTTP)")
        return label

    def add(self, label: str, vectors: np.ndarray, replace: bool = False,
            strict: bool = False) -> tuple[enrol.Command, list[tuple[str, float]]]:
        """Measure and keep a command; with `strict`, one the model may confuse with another is refused
        (ConfusedError, nothing kept). Returns the command and what it may be confused with."""
        command = enrol.Command(label, np.asarray(vectors, np.float32)).measure(self.bank)
        confused = self.confusions(command)
        if confused and strict:
            raise ConfusedError(f"{label!r} may be confused with " + ", ".join(
                f"{k!r} (overlap {100 * v:.0f} %)" for k, v in confused) + "; not enrolled")
        self.store.add(label, vectors, builtins=self.own, replace=replace)
        self.reload()
        return command, confused

    def confusions(self, command: enrol.Command) -> list[tuple[str, float]]:
        others = [c for c in (*self.model_commands(), *self.commands) if c.label != command.label]
        return enrol.confusions(self.bank, command, others)

    def entries(self) -> list[Entry]:
        return [*(Entry(w, MODEL) for w in self.builtins), *(self.entry(c) for c in self.commands)]

    def entry(self, c: enrol.Command) -> Entry:
        source = BUNDLED if c in self.bundled else ENROLLED
        return Entry(c.label, source, len(c.vectors), c.hit_rate, c.false_accepts, c.threshold, self.confusions(c))


class Spotter:
    """The enrolled commands in a stream: each step's window vector (the mean of the state output's embeddings)
    scored against every command; once one crosses its threshold, the best margin over PEAK_STEPS steps is the
    detection (the clip-level decision of demos/kws/evaluation/enrolment.py, in a stream)."""

    def __init__(self, vocabulary: Vocabulary, state_index: int):
        self.vocabulary, self.index = vocabulary, state_index
        self._best: Detection | None = None
        self._margin, self._age = 0.0, 0
        self._spent: set[str] = set()  # heard, and still above threshold - REARM: one word, one detection

    def step(self, outputs: list[np.ndarray], t: float) -> Detection | None:
        scorer = self.vocabulary.scoring
        labels = scorer.labels
        if not labels:
            self._best = None
            return None
        scores, margins = scorer.step(enrol.pooled(outputs[self.index]))
        self._spent -= {k for k, m in zip(labels, margins) if m < -REARM}
        margins = np.where([k in self._spent for k in labels], -np.inf, margins)
        top = int(np.argmax(margins))
        if margins[top] >= 0 and (self._best is None or margins[top] > self._margin):
            self._best, self._margin = Detection(t, labels[top], float(scores[top])), float(margins[top])
        if self._best is None:
            return None
        self._age += 1
        if self._age < PEAK_STEPS and margins[top] >= 0:
            return None
        found, self._best, self._age = self._best, None, 0
        self._spent.add(found.label)
        return found

    def clear(self) -> None:
        self._best, self._age = None, 0
