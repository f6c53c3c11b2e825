"""Serve mode of the voice executable: the event stream beside the unchanged stdout, a reader that never
reads, the kiosk page in a real browser (Debian's chromium) listening to a PulseAudio virtual microphone,
and a two-hour soak."""

import contextlib
import json
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from tests import wavs
from tests.browser import chromium
from tests.conftest import ROOT
from tests.pulse import VirtualMic
from tests.served import Served, sse_events, wait_for

pytestmark = pytest.mark.slow
ARTIFACTS = ROOT / "build" / "test-artifacts"  # screenshots; git-ignored, named in the test log


def _stdout_detections(served: Served) -> list[dict]:
    return [json.loads(ln) for ln in served.proc.stdout.read().splitlines() if ln.strip()]


def _reader(served, got, headers=None):
    stop = threading.Event()
    t = threading.Thread(target=sse_events, args=(served, stop, got, headers), daemon=True)
    t.start()
    return stop, t


def test_wav_events_match_stdout_and_serving_outlasts_the_file(voice_exe):
    s = Served(voice_exe, "--wav", wavs.SAMPLE, "--json")  # real time: the reader connects before the words
    got: list = []
    stop, _ = _reader(s, got)
    assert wait_for(lambda: any(k == "status" and d["state"] == "ended" for k, d in got), 60), got[-3:]
    assert s.json("GET", "/healthz")[0] == 200  # the file has ended; the server has not
    code, err = s.stop()
    stop.set()
    printed = _stdout_detections(s)
    streamed = [{k: d[k] for k in ("t", "label", "score")} for kind, d in got if kind == "detection"]
    assert code == 0 and "end of file, then stopped" in err and "Traceback" not in err, err
    assert len(printed) >= 5 and streamed == printed  # every detection, as it was printed
    levels = [d for kind, d in got if kind == "level"]
    assert len(levels) >= 20 and all(-120 <= d["rms_db"] <= 0 for d in levels)  # -120: digital silence (the floor)
    assert any(max(d.get("scores", {"": 0}).values()) > 0.5 for d in levels)  # the bars move with the words


def test_a_reader_that_never_reads_costs_the_microphone_no_frame(voice_exe, tmp_path):
    mic = VirtualMic(tmp_path).start()
    try:
        s = Served(voice_exe, "--mic", "--device", "pulse", "--json", env=mic.env)
        assert wait_for(lambda: "listening on" in s.stderr, 30), s.stderr
        import socket
        stuck = socket.create_connection((s.host, s.port))
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        stuck.sendall(b"GET /v1/events HTTP/1.1\r\n\r\n")  # subscribes, then never reads a byte
        got: list = []
        stop, _ = _reader(s, got)
        mic.play(np.tile(wavs.read16k(wavs.SAMPLE), 2))
        time.sleep(2 * 9.1 + 1.5)
        code, err = s.stop()
        stop.set()
        stuck.close()
        mic.stop_playing()
    finally:
        mic.close()
    printed = _stdout_detections(s)
    assert code == 0, err
    assert "dropped 0 frames, 0 overflow(s)" in err, err
    assert len(printed) >= 8 and [d["label"] for k, d in got if k == "detection"] == [d["label"] for d in printed]


WATCH_WORDS = """
window.__words = [];
const w = document.getElementById('word');
new MutationObserver(() => { if (w.className === 'fresh') window.__words.push(w.textContent); })
  .observe(w, {attributes: true, childList: true, characterData: true, subtree: true});
"""


def _check_screenshot(path: Path) -> None:
    from PIL import Image

    img = Image.open(path).convert("RGB")
    colours = len(img.resize((160, 90)).getcolors(maxcolors=1 << 16) or range(1 << 16))
    assert colours > 20, f"{path}: {colours} colours: a blank page"  # text, bars and panels, not one fill


def test_kiosk_page_shows_each_word_from_the_microphone(voice_exe, tmp_path, capsys):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    mic = VirtualMic(tmp_path).start()
    with contextlib.ExitStack() as closing:
        closing.callback(mic.close)
        s = Served(voice_exe, "--mic", "--device", "pulse", "--json", env=mic.env)
        assert wait_for(lambda: "listening on" in s.stderr, 30), s.stderr
        browser = closing.enter_context(chromium(1920, 1080))
        browser.get(f"http://{s.host}:{s.port}/")
        assert wait_for(lambda: browser.execute_script(
            "return document.querySelectorAll('#scores .row').length") == 10, 30)
        assert wait_for(lambda: browser.find_element("id", "status").text == "listening", 30)
        browser.execute_script(WATCH_WORDS)
        mic.play(wavs.read16k(wavs.SAMPLE))
        time.sleep(9.1 + 2.0)
        words = browser.execute_script("return window.__words")
        for size in ((1920, 1080), (800, 480)):
            browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {  # the viewport, not the window
                "width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False})
            time.sleep(0.5)
            inner = browser.execute_script("return [window.innerWidth, window.innerHeight]")
            box = browser.execute_script("const r = document.getElementById('word').getBoundingClientRect();"
                                         "return [r.left, r.top, r.right, r.bottom]")
            overflow = browser.execute_script("return [document.documentElement.scrollWidth,"
                                              " document.documentElement.scrollHeight]")
            shot = ARTIFACTS / f"kiosk-{size[0]}x{size[1]}.png"
            browser.save_screenshot(str(shot))
            with capsys.disabled():  # into the CI log, where the artifact's path is wanted
                print(f"\nkiosk screenshot: {shot} (viewport {inner[0]}x{inner[1]})")
            assert inner == list(size)
            _check_screenshot(shot)
            assert 0 <= box[0] and box[2] <= inner[0] and 0 <= box[1] and box[3] <= inner[1], (size, box, inner)
            assert overflow[0] <= inner[0] and overflow[1] <= inner[1], (size, overflow, inner)
        code, err = s.stop()
        mic.stop_playing()
    printed = [d["label"] for d in _stdout_detections(s)]
    assert code == 0, err
    assert len(printed) >= 5 and words == printed, (words, printed)


def test_kiosk_page_reconnects_when_the_executable_restarts(voice_exe):
    s = Served(voice_exe, "--wav", wavs.SAMPLE, "--json")
    port = s.port
    with chromium(800, 480) as browser:
        browser.get(f"http://127.0.0.1:{port}/")
        assert wait_for(lambda: browser.find_element("id", "status").text in ("listening", "connected"), 30)
        # the file's name, not its path
        assert wait_for(lambda: browser.find_element("id", "device").text.split(" · ")[0] == wavs.SAMPLE.name, 30)
        s.stop()
        assert wait_for(lambda: "reconnecting" in browser.find_element("id", "status").text, 30)
        again = Served(voice_exe, "--wav", wavs.SAMPLE, "--json", serve=f"127.0.0.1:{port}")
        try:
            assert wait_for(lambda: browser.find_element("id", "status").text == "listening", 30)
            browser.execute_script(WATCH_WORDS)
            assert wait_for(lambda: len(browser.execute_script("return window.__words")) >= 2, 30)
        finally:
            again.stop()


def _long_wav(path: Path, hours: float) -> Path:
    """The sample, over and over, with a little noise so no two minutes are alike."""
    x = wavs.read16k(wavs.SAMPLE)
    rng = np.random.default_rng(0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        for _ in range(int(hours * 3600 * 16000 / len(x))):
            y = x + rng.normal(0, 0.003, len(x))
            w.writeframes((np.clip(y, -1, 0.99997) * 32768).astype("<i2").tobytes())
    return path


def test_two_hour_soak_with_three_readers_keeps_memory_flat(voice_exe, tmp_path, capsys):
    wav = _long_wav(tmp_path / "long.wav", 2.0)
    out = open(tmp_path / "detections.jsonl", "w")  # ~5 000 lines: more than a pipe holds unread
    s = Served(voice_exe, "--wav", wav, "--fast", "--json", stdout=out)
    readers = []
    for _ in range(3):
        got: list = []
        readers.append((got, _reader(s, got)[0]))
    samples = []  # (audio seconds, RSS MB), about once a minute of audio at this speed
    first = readers[0][0]
    while not any(k == "status" and d["state"] == "ended" for k, d in first[-5:]):
        times = [d["t"] for k, d in first[-20:] if k in ("level", "status")]
        if times and (not samples or times[-1] >= samples[-1][0] + 60):
            samples.append((times[-1], s.rss_mb()))
        assert s.proc.poll() is None, s.stderr
        time.sleep(0.02)
    code, err = s.stop()
    out.close()
    for _, stop in readers:
        stop.set()
    printed = [json.loads(ln) for ln in (tmp_path / "detections.jsonl").read_text().splitlines()]
    assert code == 0, err
    for got, _ in readers:
        streamed = [d for k, d in got if k == "detection"]
        assert len(streamed) == len(printed) and not any("dropped_before" in d for d in streamed)
    t, rss = np.array(samples).T
    keep = t > 600  # after the first ten minutes (allocator and caches warm)
    slope = np.polyfit(t[keep] / 3600, rss[keep], 1)[0]
    with capsys.disabled():
        print(f"\nsoak: {len(printed)} detections, RSS {rss[keep].min():.1f}-{rss[keep].max():.1f} MB over "
              f"{t[-1] / 3600:.2f} h of audio, slope {slope:+.2f} MB/h")
    assert len(samples) >= 60 and t[-1] >= 7000
    assert rss[keep].max() - rss[keep].min() < 8 and abs(slope) < 4, (slope, rss.tolist())


def test_status_events_carry_the_silent_microphone_warning(voice_exe, tmp_path):
    mic = VirtualMic(tmp_path).start()
    try:
        s = Served(voice_exe, "--mic", "--device", "pulse", "--silence-warn", "1", env=mic.env)
        got: list = []
        stop, _ = _reader(s, got)
        mic.play(np.zeros(16000 * 4, np.float32))
        ok = wait_for(lambda: any(k == "status" and "no audio" in d["warning"] for k, d in got), 20)
        code, err = s.stop()
        stop.set()
        mic.stop_playing()
    finally:
        mic.close()
    status = [d for k, d in got if k == "status"]
    assert ok, status[-2:]
    assert code == 0 and status[-1]["state"] == "listening" and status[-1]["device"] == "pulse"
