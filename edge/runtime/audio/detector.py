"""From per-window class scores to detections: posterior smoothing, per-class thresholds, a refractory
period, and re-arming, so that one spoken word gives one detection."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detection:
    t: float  # stream time (s) at the end of the window that fired
    label: str
    score: float

    def as_dict(self) -> dict:
        return {"t": round(self.t, 3), "label": self.label, "score": round(self.score, 4)}


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


class Detector:
    def __init__(self, labels: list[str], threshold: float, thresholds: dict[str, float] | None = None,
                 smooth: int = 3, refractory_s: float = 1.0, rearm: float = 0.5, reported: list[str] | None = None):
        self.labels = labels
        # classes whose name starts with "_" (_silence_, _unknown_) are never reported, nor those left out
        self.keywords = np.array([i for i, n in enumerate(labels)
                                  if not n.startswith("_") and (reported is None or n in reported)], np.int64)
        per = thresholds or {}
        self.thresholds = np.array([per.get(labels[i], threshold) for i in self.keywords], np.float32)
        self.refractory_s = refractory_s
        self.rearm = rearm  # a class fires again only after its smoothed score fell below rearm x threshold
        self._recent: deque[np.ndarray] = deque(maxlen=max(1, smooth))
        self._last_t = -1e9
        self._armed = np.ones(len(self.keywords), bool)

    def step(self, scores: np.ndarray, t: float) -> Detection | None:
        self._recent.append(scores)
        if not len(self.keywords):
            return None
        smoothed = np.mean(self._recent, axis=0)[self.keywords]
        self._armed |= smoothed < self.rearm * self.thresholds
        best = int(np.argmax(smoothed))
        if smoothed[best] < self.thresholds[best] or not self._armed[best] or t - self._last_t < self.refractory_s:
            return None
        self._last_t = t
        self._armed[best] = False
        return Detection(t, self.labels[self.keywords[best]], float(smoothed[best]))

    def quiet(self, t: float) -> bool:
        """No detection of any kind is allowed at t (the refractory period of the last one)."""
        return t - self._last_t < self.refractory_s

    def hold(self, t: float) -> None:
        """A detection was made at t by something else (an enrolled command): the refractory period applies."""
        self._last_t = t
