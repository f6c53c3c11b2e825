"""The enrolled commands over HTTP (`--serve` beside `--mic`/`--wav`), behind the server's token:

    GET    /v1/commands                     every command heard, with its expected quality
    POST   /v1/commands/LABEL/takes         one take: a WAV body, or no body to record the next seconds of the
                                            live input; answers with the take's check and the draft so far
    GET    /v1/commands/LABEL/takes         the draft: its good takes and the quality they would give
    DELETE /v1/commands/LABEL/takes         forget the draft
    POST   /v1/commands/LABEL               enrol: the draft's takes, or a WAV body (one take), or JSON
                                            {"takes": [base64 WAV, ...]}, or ?record=N takes of the live input;
                                            ?replace=1 enrols an existing label again, ?strict=1 refuses a
                                            command the model may confuse with another
    DELETE /v1/commands/LABEL               forget an enrolled command

The same routes answer without the version prefix (`/commands`, `/commands/LABEL`, ...).

Takes of the live input come through the running listener (Capture): the stream the model hears is the one
recorded, with no second audio stream. The listener picks up a change within a second (Vocabulary.reload)."""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
import time

import numpy as np

from edge.runtime.serve.http import HttpError, Request, Response

from . import enrol
from .commands import Vocabulary
from .enrol_cli import MAX_MIC_TAKES, TAKE_S, examine, read_take
from .enrolled import MAX_TAKES, StoreError
from .wavfile import WavError

DRAFT_TTL_S = 600.0  # a draft nobody added to for this long is dropped
MAX_DRAFTS = 8
EXTRA_TRIES = 5  # ?record=N: refused takes allowed besides the N asked for
PREFIXES = ("/v1/commands", "/commands")  # versioned like every route, and as the short form


class Capture:
    """The next seconds of the live input, for takes recorded through the running listener."""

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs: list[list] = []  # [samples needed, chunks, done event]
        self.ended = False

    def feed(self, block: np.ndarray) -> None:
        with self._lock:
            for job in list(self._jobs):
                job[1].append(np.array(block, np.float32))
                if sum(map(len, job[1])) >= job[0]:
                    job[2].set()
                    self._jobs.remove(job)

    def end(self) -> None:
        self.ended = True
        with self._lock:
            for job in self._jobs:
                job[2].set()

    def record(self, seconds: float) -> np.ndarray:
        if self.ended:
            raise HttpError(409, "the input has ended: takes can only be recorded while it is listening")
        job = [int(seconds * enrol.RATE), [], threading.Event()]
        with self._lock:
            self._jobs.append(job)
        if not job[2].wait(seconds + 10) or self.ended:
            with self._lock:
                if job in self._jobs:
                    self._jobs.remove(job)
            raise HttpError(409, "no audio came from the input: is it still listening?")
        return np.concatenate(job[1])[: job[0]]


class Draft:
    def __init__(self):
        self.vectors: list[np.ndarray] = []
        self.touched = time.monotonic()


class CommandRoutes:
    def __init__(self, vocabulary: Vocabulary, tap_factory, capture: Capture):
        self.vocabulary, self.capture = vocabulary, capture
        self._tap_factory, self._tap = tap_factory, None
        self._drafts: dict[str, Draft] = {}
        self._lock = threading.Lock()  # one enrolment at a time: takes are seconds of audio anyway

    def routes(self) -> dict:
        found = {}
        for prefix in PREFIXES:
            found.update({("GET", prefix): self.list, ("POST", f"{prefix}/*"): self.post,
                          ("GET", f"{prefix}/*"): self.get_one, ("DELETE", f"{prefix}/*"): self.delete})
        return found

    @property
    def tap(self) -> enrol.EmbeddingTap:
        if self._tap is None:
            self._tap = self._tap_factory()
        return self._tap

    def list(self, _r: Request) -> Response:
        v = self.vocabulary
        v.reload()
        return Response.json({"state": str(v.store.path), "commands": [e.as_dict() for e in v.entries()]})

    def post(self, r: Request) -> Response:
        label, takes = _parts(r.path)
        with self._lock:
            return self._take(label, r) if takes else self._enrol(label, r)

    def get_one(self, r: Request) -> Response:
        label, takes = _parts(r.path)
        if not takes:
            found = [e for e in self.vocabulary.entries() if e.label == label]
            if not found:
                raise HttpError(404, f"no command {label!r}")
            return Response.json(found[0].as_dict())
        draft = self._drafts.get(label)
        if draft is None:
            raise HttpError(404, f"no takes of {label!r} are waiting")
        return Response.json(self._draft(label, draft))

    def delete(self, r: Request) -> Response:
        label, takes = _parts(r.path)
        if takes:
            if self._drafts.pop(label, None) is None:
                raise HttpError(404, f"no takes of {label!r} are waiting")
            return Response.json({"label": label, "draft": None})
        v = self.vocabulary
        if label in v.own:
            raise HttpError(409, f"{label!r} is one of the executable's own commands; only enrolled ones can be "
                                 "forgotten")
        with self._lock:
            if not _store(lambda: v.store.forget(label)):
                raise HttpError(404, f"{label!r} is not enrolled")
            v.reload()
        return Response.json({"forgot": label})

    def _take(self, label: str, r: Request) -> Response:
        label = _store(lambda: self.vocabulary.check_new(label, _flag(r, "replace")))
        self._expire()
        draft = self._drafts.get(label) or Draft()
        if len(draft.vectors) >= MAX_TAKES:
            raise HttpError(409, f"{label!r} has {MAX_TAKES} takes waiting already: enrol or discard them")
        audio = _wav(r.body) if r.body else self.capture.record(TAKE_S)
        problem, vector, take = examine(self.vocabulary, self.tap, audio, draft.vectors)
        if vector is not None:
            draft.vectors.append(vector)
        draft.touched = time.monotonic()
        self._drafts[label] = draft
        checked = {"ok": problem is None, "problem": problem, "speech_s": round(take.speech_s, 2),
                   "peak_dbfs": round(take.peak_dbfs, 1)}
        return Response.json({"take": checked, "draft": self._draft(label, draft)})

    def _draft(self, label: str, draft: Draft) -> dict:
        found = {"label": label, "takes": len(draft.vectors)}
        if draft.vectors:
            command = enrol.Command(label, np.array(draft.vectors)).measure(self.vocabulary.bank)
            quality = self.vocabulary.entry(command).as_dict()
            found.update({k: quality[k] for k in ("hit_rate", "false_accepts", "threshold", "confusable")})
        return found

    def _enrol(self, label: str, r: Request) -> Response:
        v = self.vocabulary
        replace, strict = _flag(r, "replace"), _flag(r, "strict")
        label = _store(lambda: v.check_new(label, replace))
        record = r.query.get("record")
        if record is not None:
            vectors, checks = self._record(label, record)
        elif r.body:
            vectors, checks = self._bodies(r)
        else:
            draft = self._drafts.get(label)
            if draft is None or not draft.vectors:
                raise HttpError(400, f"no takes of {label!r}: POST /v1/commands/{label}/takes first, or send the "
                                     "takes in the body, or ?record=N")
            vectors, checks = draft.vectors, []
        try:
            command, confused = _store(lambda: v.add(label, np.array(vectors), replace, strict))
        except HttpError as e:
            raise HttpError(e.status, f"strict=1: {e.message}" if e.status == 422 else e.message) from None
        self._drafts.pop(label, None)
        entry = v.entry(command).as_dict()
        return Response.json({"command": entry, "takes": checks, "warnings": [
            f"{label!r} may be confused with {k!r} (overlap {100 * s:.0f} %)" for k, s in confused]}, 201)

    def _record(self, label: str, record: str) -> tuple[list, list]:
        try:
            n = int(record)
        except ValueError:
            n = 0
        if not 1 <= n <= MAX_MIC_TAKES:
            raise HttpError(400, f"record={record}: give 1..{MAX_MIC_TAKES} takes")
        vectors, checks = [], []
        while len(vectors) < n:
            if len(checks) >= n + EXTRA_TRIES:
                raise HttpError(422, f"{len(checks)} takes recorded, {len(vectors)} usable; nothing was saved: "
                                     + "; ".join(c["problem"] for c in checks if c["problem"]))
            problem, vector, take = examine(self.vocabulary, self.tap, self.capture.record(TAKE_S), vectors)
            checks.append({"ok": problem is None, "problem": problem, "speech_s": round(take.speech_s, 2)})
            if vector is not None:
                vectors.append(vector)
        return vectors, checks

    def _bodies(self, r: Request) -> tuple[list, list]:
        kind = r.headers.get("content-type", "").split(";")[0].strip()
        if kind == "application/json":
            bodies = _base64_takes(r.body)
        elif kind in ("audio/wav", "audio/x-wav", "audio/wave", "application/octet-stream", ""):
            bodies = [r.body]
        else:
            raise HttpError(415, f"send audio/wav (one take) or application/json {{\"takes\": [...]}}, not {kind}")
        vectors, checks = [], []
        for i, body in enumerate(bodies):
            problem, vector, _take = examine(self.vocabulary, self.tap, _wav(body, f"take {i + 1}"), vectors)
            if problem:
                raise HttpError(400, f"take {i + 1}: {problem}; nothing was saved")
            vectors.append(vector)
            checks.append({"ok": True, "problem": None})
        return vectors, checks

    def _expire(self) -> None:
        now = time.monotonic()
        for label, d in list(self._drafts.items()):
            if now - d.touched > DRAFT_TTL_S:
                del self._drafts[label]
        if len(self._drafts) >= MAX_DRAFTS:
            oldest = min(self._drafts, key=lambda k: self._drafts[k].touched)
            del self._drafts[oldest]


def _parts(path: str) -> tuple[str, bool]:
    """/v1/commands/LABEL[/takes] (or /commands/…) → (LABEL, whether it is the takes)."""
    prefix = next(p for p in PREFIXES if path.startswith(f"{p}/"))
    rest = path[len(prefix) + 1:].split("/")
    if len(rest) > 2 or (len(rest) == 2 and rest[1] != "takes"):
        raise HttpError(404, f"no such path: {path[:200]}")
    return rest[0], len(rest) == 2


def _flag(r: Request, name: str) -> bool:
    return r.query.get(name, "0").lower() in ("1", "true", "yes")


def _store(action):
    try:
        return action()
    except StoreError as e:
        raise HttpError(e.status, str(e)) from None


def _wav(body: bytes, name: str = "the request body") -> np.ndarray:
    try:
        return read_take(io.BytesIO(body), name)
    except WavError as e:
        raise HttpError(400, str(e)) from None


def _base64_takes(body: bytes) -> list[bytes]:
    try:
        doc = json.loads(body)
        takes = doc["takes"] if isinstance(doc, dict) else None
        if not isinstance(takes, list) or not 1 <= len(takes) <= MAX_TAKES:
            raise ValueError(f"\"takes\" must list 1 to {MAX_TAKES} WAV files")
        return [base64.b64decode(t, validate=True) for t in takes]
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError) as e:
        raise HttpError(400, f"body: {{\"takes\": [base64 WAV, ...]}} expected ({str(e)[:120]})") from None
