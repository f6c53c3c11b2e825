"""Read a WAV file block by block: PCM 8/16/24/32-bit or float 32/64, any rate, any channel count
(the standard library's wave module reads integer PCM only)."""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
# A header's numbers decide how much is allocated per block: bounded so no file can make the reader run away
MAX_RATE = 768_000  # the highest rate audio interfaces offer
MAX_CHANNELS = 64
MAX_FMT_BYTES = 1024  # a 'fmt ' chunk is 16 to 40 bytes
SKIP_PIECE = 1 << 16


class WavError(ValueError):
    pass


class WavReader:
    def __init__(self, path: Path | BinaryIO | None, name: str | None = None):
        """path None: standard input (a pipe: chunks are skipped by reading, never by seeking); an open binary
        file (another program's output in memory) is read as it is and named `name` in errors."""
        self.path = name or (path if path is not None else "standard input")
        if hasattr(path, "read"):
            self._f = path
        elif path is None:
            if sys.stdin.isatty():
                raise WavError("--wav -: standard input is a terminal; pipe a WAV stream into it "
                               "(arecord -f S16_LE -r 16000 | NAME --wav -)")
            self._f = sys.stdin.buffer
        elif Path(path).is_dir():
            raise WavError(f"{path}: is a folder, not a WAV file")
        else:
            try:
                self._f = open(path, "rb")
            except OSError as e:
                raise WavError(f"{path}: cannot open ({e.strerror})") from None
        try:
            self._parse_header()
        except OSError as e:
            self.close()
            raise WavError(f"{self.path}: cannot read ({e.strerror or e})") from None
        except BaseException:
            self._f.close()
            raise

    def _fail(self, what: str):
        raise WavError(f"{self.path}: {what}")

    def _parse_header(self) -> None:
        head = self._f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            self._fail("not a WAV file (no RIFF/WAVE header)")
        fmt = None
        while True:
            chunk = self._f.read(8)
            if len(chunk) < 8:
                self._fail("no audio data (no 'data' chunk)" if fmt else "no 'fmt ' chunk")
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                if size > MAX_FMT_BYTES:
                    self._fail(f"corrupt header: a 'fmt ' chunk of {size:,} bytes")
                fmt = self._f.read(size + (size & 1))
                if len(fmt) < 16:
                    self._fail("truncated 'fmt ' chunk")
                tag, self.channels, self.rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
                if tag == EXTENSIBLE and len(fmt) >= 26:
                    tag = struct.unpack("<H", fmt[24:26])[0]
                self._dtype = self._sample_type(tag, bits)
                self.bits = bits
            elif cid == b"data":
                if fmt is None:
                    self._fail("'data' before 'fmt ' chunk")
                # streaming writers leave 0 or 0xFFFFFFFF as the size: read to the end of the file then
                self._left = None if size in (0, 0xFFFFFFFF) else size
                break
            else:
                self._skip(size + (size & 1))
        if not 1 <= self.channels <= MAX_CHANNELS or not 1000 <= self.rate <= MAX_RATE:
            self._fail(f"unusable format: {self.channels} channel(s) at {self.rate} Hz (this reader takes "
                       f"1..{MAX_CHANNELS} channels at 1000..{MAX_RATE} Hz)")
        self.frame_bytes = self.channels * self.bits // 8

    def _skip(self, n: int) -> None:
        if self._f.seekable():
            self._f.seek(n, 1)
            return
        while n > 0:  # a pipe: read and drop, a bounded piece at a time
            got = self._f.read(min(n, SKIP_PIECE))
            if not got:
                return
            n -= len(got)

    def _sample_type(self, tag: int, bits: int) -> str:
        if tag == PCM and bits in (8, 16, 24, 32):
            return {8: "u1", 16: "<i2", 24: "i3", 32: "<i4"}[bits]
        if tag == FLOAT and bits in (32, 64):
            return {32: "<f4", 64: "<f8"}[bits]
        self._fail(f"unsupported sample format (format tag {tag}, {bits} bits); use PCM or float WAV")

    def read_all(self) -> np.ndarray:
        """The whole rest of the file, float32 [frames, channels]."""
        parts = list(self.blocks(max(1, self.rate)))
        return np.concatenate(parts) if parts else np.zeros((0, self.channels), np.float32)

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        """Float32 blocks [frames, channels] scaled to [-1, 1]; the last one may be shorter."""
        want = frames * self.frame_bytes
        while self._left is None or self._left > 0:
            n = want if self._left is None else min(want, self._left)
            try:
                raw = self._f.read(n)
            except OSError as e:
                raise WavError(f"{self.path}: cannot read ({e.strerror or e})") from None
            raw = raw[: len(raw) // self.frame_bytes * self.frame_bytes]
            if not raw:
                return
            if self._left is not None:
                self._left -= len(raw)
            yield self._decode(raw).reshape(-1, self.channels)

    def _decode(self, raw: bytes) -> np.ndarray:
        if self._dtype == "u1":
            return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
        if self._dtype == "i3":
            b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            return (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
        x = np.frombuffer(raw, self._dtype)
        if self._dtype.startswith("<i"):
            return (x / float(1 << (self.bits - 1))).astype(np.float32)
        return x.astype(np.float32)

    def close(self) -> None:
        if self._f is not sys.stdin.buffer:
            self._f.close()
