"""systemd's notify protocol: the messages a real socket receives from the Notifier and from real executables
(READY=1 once serving or listening, WATCHDOG=1 from the working loop), as a Type=notify unit would get them."""

from __future__ import annotations

import os
import socket
import time

import pytest

from edge.runtime.notify import Notifier
from tests.conftest import ROOT
from tests.served import Served


class Listener:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def read_until(self, wanted: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not any(wanted in m for m in self.messages):
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        return self.messages


@pytest.fixture
def listener(tmp_path):
    path = str(tmp_path / "notify.sock")
    lst = Listener(path)
    yield path, lst
    lst.sock.close()


def test_ready_status_and_watchdog_reach_the_socket(listener):
    path, lst = listener
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())})
    assert n.interval == pytest.approx(0.1)
    n.ready("serving on x")
    n.alive()
    n.alive()  # within the interval: not sent again
    time.sleep(0.12)
    n.alive()
    n.stopping()
    got = lst.read_until("STOPPING=1", 2)
    assert got == ["READY=1\nSTATUS=serving on x", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket_names_and_someone_elses_watchdog(tmp_path):
    name = f"edgepack-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(2)
        Notifier({"NOTIFY_SOCKET": "@" + name}).ready("ok")
        assert s.recv(100) == b"READY=1\nSTATUS=ok"
    # a watchdog meant for another process (not us, not our parent, the bootloader) is not ours to ping
    other = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert other.interval is None
    assert not Notifier({}).active and Notifier({}).send("READY=1") is False


@pytest.mark.slow
def test_serving_executable_notifies_ready_and_pings_the_watchdog(listener, mlp_exe):
    path, lst = listener
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
    s = Served(mlp_exe, env=env)
    try:
        got = lst.read_until("WATCHDOG=1", 20)
        assert got[0].startswith("READY=1\nSTATUS=serving on http://127.0.0.1:"), got
        lst.messages.clear()
        got = lst.read_until("WATCHDOG=1", 5)  # and again, every 0.2 s
        assert "WATCHDOG=1" in got
    finally:
        s.stop()


@pytest.mark.slow
def test_listening_executable_is_ready_with_its_first_audio(listener, voice_exe):
    path, lst = listener
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
    s = Served(voice_exe, "--wav", ROOT / "demos/kws/samples/real.wav", env=env)
    try:
        got = lst.read_until("WATCHDOG=1", 30)
        assert got[0] == f"READY=1\nSTATUS=listening to {ROOT / 'demos/kws/samples/real.wav'}", got
        assert "WATCHDOG=1" in got
    finally:
        s.stop()
