"""Ctrl-C and SIGTERM end a run once, cleanly. A terminal's Ctrl-C reaches a onefile executable twice (the
terminal signals the whole process group, and PyInstaller's bootloader forwards what it gets to its child):
the first signal unwinds to the caller's handler, which prints its summary; every later one is ignored by
the operating system, so it can cut neither the summary nor the interpreter's shutdown short."""

from __future__ import annotations

import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _first(signum, frame):
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> None:
    for sig in SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:  # started with it ignored (nohup, `&`): keep it so
            signal.signal(sig, _first)
