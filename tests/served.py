"""Test helpers: start an executable with --serve on a free port and talk to it over real sockets."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

SERVING = re.compile(r"serving on (?:http://(?P<host>[^ ]+):(?P<port>\d+)|unix:(?P<path>\S+))")


class Served:
    """`exe --serve 0 ARGS…`; stderr is read by a thread (the caller may read stdout itself). `exe` may be a
    command list (`edge run EXE` for another architecture)."""

    def __init__(self, exe: Path | list, *args, serve: str = "0", env=None, stdout=subprocess.PIPE, timeout=60):
        command = list(map(str, exe)) if isinstance(exe, list) else [str(exe)]
        self.proc = subprocess.Popen([*command, "--serve", serve, *map(str, args)], stdout=stdout,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.err_lines: list[str] = []
        self._ready = threading.Event()
        self.host, self.port, self.unix = None, None, None
        threading.Thread(target=self._read_err, daemon=True).start()
        if not self._ready.wait(timeout):
            self.proc.kill()
            raise AssertionError("no 'serving on' line:\n" + "".join(self.err_lines))

    def _read_err(self):
        for line in self.proc.stderr:
            self.err_lines.append(line)
            m = SERVING.search(line)
            if m and not self._ready.is_set():
                self.host, self.port, self.unix = m["host"], int(m["port"] or 0), m["path"]
                self._ready.set()
        self._ready.set()

    @property
    def stderr(self) -> str:
        return "".join(self.err_lines)

    def connection(self, timeout=30) -> http.client.HTTPConnection:
        if self.unix:
            return UnixConnection(self.unix, timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method: str, path: str, body=None, headers=None, timeout=30):
        """(status, headers, body bytes) on a fresh connection."""
        c = self.connection(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def json(self, method: str, path: str, value=None, headers=None):
        body = None if value is None else json.dumps(value).encode()
        status, _, data = self.request(method, path, body, {"Content-Type": "application/json", **(headers or {})})
        return status, json.loads(data)

    def raw(self, data: bytes, timeout=10) -> bytes:
        """Send bytes as they are and read until the server closes."""
        s = socket.create_connection((self.host, self.port), timeout=timeout)
        try:
            s.sendall(data)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out
        finally:
            s.close()

    def stop(self, sig=signal.SIGTERM, timeout=30) -> tuple[int, str]:
        self.proc.send_signal(sig)
        self.proc.wait(timeout)
        time.sleep(0.1)  # the stderr thread reads the last lines
        return self.proc.returncode, self.stderr

    def python_pid(self) -> int:
        """The interpreter's process: a onefile executable's bootloader runs it as its child."""
        kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(kids[0]) if kids else self.proc.pid

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.python_pid()}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def sse_events(served: Served, stop: threading.Event, got: list, headers=None, arrivals: list | None = None):
    """Read /v1/events until `stop`, appending (event, data) pairs (and to `arrivals` the time each came)."""
    c = served.connection(timeout=60)
    c.request("GET", "/v1/events", headers=headers or {})
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
    kind = None
    try:
        while not stop.is_set():
            line = r.fp.readline()
            if not line:
                return
            line = line.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                if arrivals is not None:
                    arrivals.append(time.time())
                got.append((kind, json.loads(line[6:])))
    finally:
        c.close()


def free_env(**extra) -> dict:
    return {**os.environ, **extra}


def wait_for(predicate, timeout=60.0) -> bool:
    """True as soon as predicate() is, False after timeout seconds (polled every 0.1 s)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False
