"""Server-Sent Events: one publisher (the audio loop), any number of readers, each with its own bounded
queue. Publishing never waits: a reader whose queue is full loses that event and the loss is counted (its
next event carries the count), so a stuck browser can slow neither the audio thread nor the other readers."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator

from .http import Request, Response

QUEUE_EVENTS = 256  # per reader: ~50 s of level events at 5/s
KEEPALIVE_S = 15.0  # a comment line, so proxies and browsers keep an idle stream open


class Reader:
    def __init__(self):
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_EVENTS)
        self.dropped = 0
        self.sent = 0


class Hub:
    def __init__(self):
        self._readers: set[Reader] = set()
        self._lock = threading.Lock()
        self.closed = False
        self.published = 0
        self.dropped = 0  # over all readers
        self.last: dict[str, dict] = {}  # the latest event of each kind, replayed to a new reader

    @property
    def readers(self) -> int:
        return len(self._readers)

    def publish(self, kind: str, data: dict) -> None:
        self.published += 1
        self.last[kind] = data
        with self._lock:
            readers = list(self._readers)
        for r in readers:
            try:
                r.queue.put_nowait((kind, data))
            except queue.Full:
                r.dropped += 1
                self.dropped += 1

    def close(self) -> None:
        self.closed = True
        with self._lock:
            readers = list(self._readers)
        for r in readers:
            try:
                r.queue.put_nowait(None)
            except queue.Full:
                pass

    def _stream(self, reader: Reader) -> Iterator[bytes]:
        with self._lock:  # registered on the first write, so a stream never started leaves nothing behind
            self._readers.add(reader)
        try:
            yield b"retry: 2000\n\n"  # the browser reconnects 2 s after the server went away
            for kind in ("status", "detection"):
                if kind in self.last:
                    yield _event(kind, self.last[kind])
            idle_since = time.monotonic()
            while not self.closed:
                try:
                    item = reader.queue.get(timeout=1.0)
                except queue.Empty:
                    if time.monotonic() - idle_since > KEEPALIVE_S:
                        idle_since = time.monotonic()
                        yield b": keep-alive\n\n"
                    continue
                if item is None:
                    return
                kind, data = item
                if reader.dropped:
                    data = {**data, "dropped_before": reader.dropped}
                reader.sent += 1
                idle_since = time.monotonic()
                yield _event(kind, data)
        finally:
            with self._lock:
                self._readers.discard(reader)

    def route(self, _r: Request) -> Response:
        return Response(200, b"", "text/event-stream", {"X-Accel-Buffering": "no"}, stream=self._stream(Reader()))


def _event(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, allow_nan=False, separators=(',', ':'))}\n\n".encode()
