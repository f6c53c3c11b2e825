"""Microphone capture through PortAudio (sounddevice): device lookup, a callback that never blocks,
counted overflows and drops, and a clear error when the device is missing or goes away."""

from __future__ import annotations

import ctypes.util
import os
import queue
import sys
import time

import numpy as np

PORTAUDIO = "libportaudio.so.2"


class AudioError(Exception):
    pass


def import_sounddevice():
    """sounddevice finds PortAudio with ctypes.util.find_library, which does not look inside a bundle:
    point it at the copy packed into the executable (the board may not have libportaudio2)."""
    bundled = os.path.join(getattr(sys, "_MEIPASS", ""), PORTAUDIO)
    original = ctypes.util.find_library
    if os.path.isfile(bundled):
        ctypes.util.find_library = lambda name: bundled if name == "portaudio" else original(name)
    try:
        import sounddevice
    except OSError as e:  # PortAudio or the ALSA library it needs is missing
        raise AudioError(f"audio input is unavailable: {e} (the board needs libasound2 / ALSA)") from None
    except ImportError as e:
        raise AudioError(f"audio input is unavailable: {e}") from None
    finally:
        ctypes.util.find_library = original
    return sounddevice


def input_devices(sd) -> list[dict]:
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except sd.PortAudioError as e:
        raise AudioError(f"cannot list audio devices: {e}") from None
    return [{"index": i, "name": d["name"], "channels": d["max_input_channels"],
             "default_rate": d["default_samplerate"], "default": i == default_in}
            for i, d in enumerate(devices) if d["max_input_channels"] > 0]


def find_device(sd, wanted: str | None) -> dict:
    devices = input_devices(sd)
    if not devices:
        raise AudioError("no audio input device found (is a microphone connected? try --list-devices)")
    if wanted is None:
        for d in devices:
            if d["default"]:
                return d
        return devices[0]
    if wanted.isdigit():
        for d in devices:
            if d["index"] == int(wanted):
                return d
    else:
        matches = [d for d in devices if d["name"] == wanted] or \
                  [d for d in devices if wanted.lower() in d["name"].lower()]
        if matches:
            return matches[0]
    names = ", ".join(f"{d['index']}: {d['name']}" for d in devices)
    raise AudioError(f"no input device {wanted!r}; input devices: {names}")


class Microphone:
    """Opens the device at the model's rate when it can, else at the device's own rate (the caller
    resamples). Blocks arrive through a bounded queue; a full queue drops the block and counts it."""

    def __init__(self, sd, device: dict, rate: int, block_s: float, max_queue_s: float = 2.0):
        self.sd, self.device, self.dropped_frames, self.overflows = sd, device, 0, 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(2, int(max_queue_s / block_s)))
        self._finished = False
        self.stream = None
        errors = []
        for r in dict.fromkeys([rate, int(device["default_rate"]), 48000, 44100]):
            try:
                self.stream = sd.InputStream(device=device["index"], channels=1, samplerate=r, dtype="float32",
                                             blocksize=int(r * block_s), callback=self._callback,
                                             finished_callback=self._on_finished)
                self.rate = r
                break
            except (sd.PortAudioError, ValueError) as e:
                errors.append(f"{r} Hz: {e}")
        if self.stream is None:
            raise AudioError(f"cannot open input device {device['index']} ({device['name']}): {'; '.join(errors)}")

    def _callback(self, data, frames, _time, status):
        if status.input_overflow:
            self.overflows += 1
        try:
            self._queue.put_nowait(data[:, 0].copy())
        except queue.Full:  # the consumer fell behind: drop this block, never block the audio thread
            self.dropped_frames += frames

    def _on_finished(self):
        self._finished = True

    def __enter__(self):
        try:
            self.stream.start()
        except self.sd.PortAudioError as e:
            raise AudioError(f"cannot start input device {self.device['name']}: {e}") from None
        return self

    def __exit__(self, *exc):
        try:
            self.stream.abort(ignore_errors=True)
            self.stream.close(ignore_errors=True)
        except Exception:  # noqa: BLE001 - closing a vanished device must not mask the real outcome
            pass

    def read(self, timeout_s: float) -> np.ndarray:
        """The next block; AudioError when the device stops delivering (unplugged, server gone)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._finished or not self.stream.active:
                    raise AudioError(f"input device {self.device['name']!r} stopped (unplugged?)") from None
                if time.monotonic() > deadline:
                    raise AudioError(f"input device {self.device['name']!r} delivered no audio for "
                                     f"{timeout_s:.0f} s (unplugged or stalled?)") from None
