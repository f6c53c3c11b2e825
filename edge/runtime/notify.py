"""systemd's readiness and watchdog protocol (sd_notify(3)), in the standard library: a service unit with
`Type=notify` learns when the executable is ready, and with `WatchdogSec=` restarts it when the loop that
calls `alive()` stops calling. Outside systemd (no $NOTIFY_SOCKET) every call does nothing."""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    def __init__(self, environ=os.environ):
        address = environ.get("NOTIFY_SOCKET", "")
        # "@name" is an abstract socket (a leading NUL byte); anything else is a path
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.interval = self._watchdog_interval(environ)
        self._last = 0.0

    @staticmethod
    def _watchdog_interval(environ) -> float | None:
        """Half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; None when there is no watchdog for us.
        A onefile executable runs its Python in a child of the bootloader, the process systemd started, so the
        watchdog's $WATCHDOG_PID may be our parent's."""
        try:
            usec = int(environ.get("WATCHDOG_USEC", "0"))
            pid = int(environ.get("WATCHDOG_PID", "0"))
        except ValueError:
            return None
        if usec <= 0 or pid not in (0, os.getpid(), os.getppid()):
            return None
        return usec / 2e6

    @property
    def active(self) -> bool:
        return bool(self.address)

    def send(self, *fields: str) -> bool:
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError:  # systemd gone or the socket not ours: the service goes on without being watched
            return False

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def alive(self) -> None:
        """Call from the loop that does the work: pings the watchdog at most once per interval."""
        if self.interval is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.send("WATCHDOG=1")


NOTIFIER = Notifier()
