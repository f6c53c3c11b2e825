"""What the voice app tells /v1/events: detections as they happen, the input level and top scores a few
times a second, and a status heartbeat each second (source, device, dropped frames, overflows, silence)."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field, fields

import numpy as np

from .events import Hub

LEVEL_EVERY_S = 0.2  # wall clock: five level events a second, however fast a --fast file runs
STATUS_EVERY_S = 1.0


@dataclass
class InputState:
    """Written by the audio loop, read by the heartbeat; plain fields, so a torn read is harmless."""

    source: str  # "mic" or "wav"
    state: str = "starting"  # listening | reconnecting | lost | ended
    device: str = ""
    rate: int = 0
    silent_s: float = 0.0
    warning: str = ""
    mics: list = field(default_factory=list, repr=False)  # every Microphone opened: their drop counters

    def as_dict(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in fields(self) if f.name != "mics"},
                "dropped_frames": sum(m.dropped_frames for m in self.mics),
                "overflows": sum(m.overflows for m in self.mics), "reconnections": max(0, len(self.mics) - 1)}


class Live:
    def __init__(self, hub: Hub, state: InputState, keywords: list[str], labels: list[str]):
        self.hub, self.state = hub, state
        self._keep = [labels.index(k) for k in keywords]
        self._keywords = keywords
        self._next_level = 0.0
        self.audio_s = 0.0
        self.detections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="edgepack-status", daemon=True)

    def start(self) -> Live:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.publish_status()

    def detection(self, d) -> None:
        self.detections += 1
        self.hub.publish("detection", {**d.as_dict(), "wall": time.time()})

    def window(self, t: float, block: np.ndarray, probs: np.ndarray | None) -> None:
        """Every hop, from the audio loop: cheap unless a level event is due."""
        self.audio_s = t
        now = time.monotonic()
        if now < self._next_level or not self.hub.readers:
            return
        self._next_level = now + LEVEL_EVERY_S
        rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64)))) if len(block) else 0.0
        level = {"t": round(t, 3), "rms_db": round(20 * math.log10(max(rms, 1e-6)), 1),
                 "peak": round(float(np.max(np.abs(block))) if len(block) else 0.0, 4)}
        if probs is not None:
            level["scores"] = {k: round(float(probs[i]), 3) for k, i in zip(self._keywords, self._keep)}
        self.hub.publish("level", level)

    def publish_status(self) -> None:
        self.hub.publish("status", {**self.state.as_dict(), "t": round(self.audio_s, 2),
                                    "detections": self.detections, "readers": self.hub.readers,
                                    "events_dropped": self.hub.dropped})

    def _beat(self) -> None:
        while not self._stop.wait(STATUS_EVERY_S):
            self.publish_status()
