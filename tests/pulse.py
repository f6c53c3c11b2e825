"""A real PortAudio microphone without sound hardware: a private PulseAudio daemon whose pipe source
reads a FIFO that the test writes audio into, paced in real time (PulseAudio's module-pipe-source)."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

RATE = 16000
APT = "apt-get install -y pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 (see .ci/run)"


class VirtualMic:
    def __init__(self, root: Path):
        if not shutil.which("pulseaudio") or not shutil.which("pactl"):
            raise RuntimeError(f"PulseAudio is not installed: {APT}")
        self.root = root
        self.fifo = root / "mic.fifo"
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(root / "run"), "XDG_CONFIG_HOME": str(root / "cfg"),
                    "HOME": str(root), "PULSE_SOURCE": "vmic"}
        for d in ("run", "cfg"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        self._queue: collections.deque[bytes] = collections.deque()

    def start(self) -> VirtualMic:
        subprocess.run(["pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--disallow-exit",
                        "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=vsink"],
                       env=self.env, check=True, capture_output=True, timeout=30)
        # loaded afterwards: at start-up the module refuses a FIFO path that already exists
        subprocess.run(["pactl", "load-module", "module-pipe-source", "source_name=vmic", f"file={self.fifo}",
                        "format=s16le", f"rate={RATE}", "channels=1"], env=self.env, check=True, capture_output=True,
                       timeout=30)
        return self

    def play(self, audio: np.ndarray) -> None:
        """Write audio into the microphone in real time, then silence until stop(): if the writer closes,
        closing the PortAudio stream hangs. While it plays, more audio is queued after what is playing."""
        pcm = (np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
        if self._writer and self._writer.is_alive():
            self._queue.append(pcm)
            return
        self._stop.clear()
        self._queue = collections.deque([pcm])

        def write():
            with open(self.fifo, "wb", buffering=0) as f:
                start, sent, chunk = time.monotonic(), 0, RATE // 10 * 2
                playing, at = b"", 0
                while not self._stop.is_set():
                    if at >= len(playing) and self._queue:
                        playing, at = self._queue.popleft(), 0
                    block = playing[at : at + chunk]
                    at += len(block)
                    block += bytes(chunk - len(block))
                    try:
                        f.write(block)
                    except BrokenPipeError:
                        return
                    sent += chunk
                    time.sleep(max(0.0, start + sent / (2 * RATE) - time.monotonic()))

        self._writer = threading.Thread(target=write, daemon=True)
        self._writer.start()

    def stop_playing(self) -> None:
        self._stop.set()
        if self._writer:
            self._writer.join(timeout=5)

    def kill_server(self) -> None:
        subprocess.run(["pulseaudio", "-k"], env=self.env, capture_output=True, timeout=30)

    def close(self) -> None:
        self.kill_server()
        self.stop_playing()
