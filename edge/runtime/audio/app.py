"""The voice-command app: stream a microphone (or a WAV file through the same path) into the model,
one 1 s window every hop, and print one line per detected keyword."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edge.runtime import bundled
from edge.runtime.manifest import Manifest
from edge.runtime.model_cli import EXIT_RUNTIME, EXIT_USAGE, InputError, check_threads, parser, run_model
from edge.runtime.notify import NOTIFIER
from edge.runtime.serve import options as serve_options
from edge.runtime.serve.http import Response
from edge.runtime.serve.live import InputState
from edge.runtime.session import open_session

from . import enrol_cli, features
from .commands import Spotter, Vocabulary
from .detector import Detection, Detector, softmax
from .enrol import EmbeddingTap
from .mic import AudioError, Microphone, find_device, import_sounddevice, input_devices
from .resample import Resampler, to_mono
from .settings import ListenConfig, VoiceSettings
from .streaming import ModelStream, StreamingLogMel
from .wavfile import WavError, WavReader

EXIT_AUDIO = 4  # no input device, device lost, unreadable WAV
RATE = features.SAMPLE_RATE


def audio_parser(name: str, app: VoiceSettings) -> argparse.ArgumentParser:
    p = parser(name)
    p.description = (f"Listen for the keywords {', '.join(app.keywords)} "
                     "(edgepack voice-command app). The model flags below run the bare model.")
    g = p.add_argument_group("listening")
    g.add_argument("--mic", action="store_true", help="listen to a microphone (Ctrl-C stops with a summary)")
    g.add_argument("--device", metavar="N|NAME", help="input device index or (part of its) name; see --list-devices")
    g.add_argument("--list-devices", action="store_true", help="list audio input devices and exit")
    g.add_argument("--wav", type=Path, metavar="FILE",
                   help="stream a WAV file (any rate, any channels) instead; - reads standard input "
                        "(e.g. arecord -f S16_LE -r 16000 | NAME --wav -)")
    g.add_argument("--fast", action="store_true", help="with --wav: as fast as possible instead of real time")
    g.add_argument("--hop-ms", type=int, default=round(app.hop_s * 1000),
                   help="evaluate the last second every HOP ms (multiple of 10; default %(default)s; fixed for "
                        "streaming models)")
    g.add_argument("--threshold", action="append", default=[], metavar="X|LABEL=X",
                   help=f"score needed to report a keyword (default {app.threshold}); LABEL=X for one keyword")
    g.add_argument("--smooth", type=int, default=app.smooth,
                   help="average the scores of the last N windows (default %(default)s)")
    g.add_argument("--refractory", type=float, default=app.refractory_s, metavar="S",
                   help="no new detection for S seconds after one (default %(default)s)")
    g.add_argument("--silence-warn", type=float, default=5.0, metavar="S",
                   help="warn after S seconds of digital silence from the microphone (default %(default)s)")
    g.add_argument("--reconnect", type=float, default=0.0, metavar="S",
                   help="when the device is lost, wait up to S seconds for it to come back (default: exit)")
    g.add_argument("--verbose", action="store_true", help="timing of every window on stderr")
    enrol_cli.add_flags(p)
    return p


LIMITS = {  # flag: (attribute, lowest, highest, what the number means)
    "--smooth": ("smooth", 1, 100, "windows"),
    "--refractory": ("refractory", 0.0, 60.0, "seconds"),
    "--silence-warn": ("silence_warn", 0.1, 3600.0, "seconds"),
    "--reconnect": ("reconnect", 0.0, 86400.0, "seconds"),
}


def check_limits(args) -> None:
    for flag, (attr, low, high, unit) in LIMITS.items():
        value = getattr(args, attr)
        if not low <= value <= high:  # also refuses nan
            raise InputError(f"{flag} {value}: give {low}..{high} {unit}")


def thresholds(items: list[str], app: VoiceSettings) -> tuple[float, dict[str, float]]:
    default, per = float(app.threshold), dict(app.thresholds)
    for item in items:
        label, sep, value = item.rpartition("=")
        try:
            x = float(value)
        except ValueError:
            raise InputError(f"--threshold {item}: not a number") from None
        if not 0 < x <= 1:  # also refuses nan
            raise InputError(f"--threshold {item}: must be in (0, 1]")
        if not sep:
            default = x
        elif label not in app.keywords:
            raise InputError(f"--threshold {item}: unknown keyword {label!r}")
        else:
            per[label] = x
    return default, per


class Listener:
    """Everything after the audio source: rebuffering to hops, features, inference, detection, output.
    `outputs`: the model's output names, in order (a streaming model's states come back by name); `detector`:
    anything with step(probs, t) -> Detection | None, the config's Detector when not given (benchmarks record
    every window's scores with their own)."""

    def __init__(self, session, app: VoiceSettings, config: ListenConfig, outputs: list[str], out, detector=None,
                 observer=None, vocabulary: Vocabulary | None = None):
        self.session, self.logits = session, app.scores == "logits"
        stream = app.stream
        self.hop = stream.chunk_samples if stream else RATE * config.hop_ms // 1000
        self.window = int(RATE * app.window_s)
        self.logmel = app.logmel
        self.frontend = StreamingLogMel(self.window) if self.logmel else None
        self.stream = ModelStream(stream, outputs) if stream else None
        self.detector = detector or Detector(app.labels, config.threshold, config.thresholds, config.smooth,
                                             config.refractory_s, reported=app.keywords)
        # enrolled commands, decided jointly with the model's own: see _decide
        self.vocabulary = vocabulary
        self.spotter = Spotter(vocabulary, outputs.index(app.enrol.state)) if vocabulary else None
        self.reported = {app.labels.index(k) for k in app.keywords}
        self.labels, self.verbose, self.out = app.labels, config.verbose, out
        self.observer = observer  # observer(t, block, probs or None) after every step (serve mode's level meter)
        self.pending = np.zeros(0, np.float32)
        self.samples = 0
        self.non_finite = 0  # NaN/inf samples in the input, replaced by silence
        self.bad_scores = 0  # windows whose scores were not finite, skipped
        self.windows, self.feature_s, self.inference_s, self.detections = 0, 0.0, 0.0, []

    def feed(self, audio: np.ndarray) -> None:
        finite = np.isfinite(audio)
        if not finite.all():
            if not self.non_finite:
                print(f"warning: the input holds NaN or infinite samples (at {self.samples / RATE:.2f} s); they "
                      "are replaced by silence and counted in the summary", file=sys.stderr, flush=True)
            self.non_finite += int(audio.size - finite.sum())
            audio = np.where(finite, audio, 0).astype(np.float32)
        self.pending = np.concatenate([self.pending, audio])
        while len(self.pending) >= self.hop:
            block, self.pending = self.pending[: self.hop], self.pending[self.hop :]
            self._window(block)

    def _window(self, block: np.ndarray) -> None:
        t0 = time.perf_counter()
        feeds = {self.logmel: self.frontend.push(block)} if self.frontend else {}
        if self.stream:
            feeds.update(self.stream.feeds(block))
        self.samples += len(block)
        warm = self.samples >= self.window  # before, the window is still part digital zeros: nothing to judge
        if not warm and not self.stream:  # a streaming model's states must follow every step, judged or not
            self._observe(block, None)
            return
        t1 = time.perf_counter()
        outputs = self.session.run(feeds)
        if self.stream:
            self.stream.update(outputs)
        t2 = time.perf_counter()
        if not warm:
            self._observe(block, None)
            return
        scores = outputs[0][0]
        self.windows += 1
        self.feature_s += t1 - t0
        self.inference_s += t2 - t1
        probs = softmax(scores) if self.logits else scores
        if not np.isfinite(probs).all():  # a model that overflowed: never a detection, never NaN in the JSON
            self.bad_scores += 1
            self._observe(block, None)
            return
        self._observe(block, probs)
        hit = self._decide(probs, outputs, self.samples / RATE)
        if self.verbose:
            top = int(np.argmax(probs))
            print(f"t={self.samples / RATE:.2f}s features {1e3 * (t1 - t0):.2f} ms inference {1e3 * (t2 - t1):.2f} ms "
                  f"top {self.labels[top]} {probs[top]:.2f}", file=sys.stderr, flush=True)
        if hit:
            self.detections.append(hit)
            self.out(hit)

    def _decide(self, probs: np.ndarray, outputs: list[np.ndarray], t: float) -> Detection | None:
        """The model's own commands first; an enrolled command is heard when none of them is, outside the
        refractory period of the last detection, and while the model's own top class is not one of its reported
        commands (a built-in said is never also an enrolled command)."""
        hit = self.detector.step(probs, t)
        if not self.spotter:
            return hit
        if self.vocabulary.due() and self.vocabulary.reload():
            heard = ", ".join(c.label for c in self.vocabulary.commands) or "none"
            print(f"enrolled commands changed: now also hearing {heard}", file=sys.stderr, flush=True)
        heard = self.spotter.step(outputs, t)
        if hit:
            self.spotter.clear()
            return hit
        if heard is None or self.detector.quiet(t) or int(np.argmax(probs)) in self.reported:
            return None
        self.detector.hold(t)
        return Detection(t, heard.label, heard.score)

    def _observe(self, block: np.ndarray, probs) -> None:
        if self.observer:
            self.observer(self.samples / RATE, block, probs)

    def summary(self, extra: str = "") -> str:
        secs = self.samples / RATE
        n = max(1, self.windows)
        per_window = (self.feature_s + self.inference_s) / n
        rtf = per_window / (self.hop / RATE)
        return (f"{secs:.1f} s of audio, {self.windows} windows, {len(self.detections)} detection(s); per window: "
                f"features {1e3 * self.feature_s / n:.2f} ms, inference {1e3 * self.inference_s / n:.2f} ms "
                f"(real-time factor {rtf:.3f}){extra}" +
                (f"; {self.non_finite} NaN/infinite input sample(s) replaced by silence" if self.non_finite else "") +
                (f"; {self.bad_scores} window(s) with non-finite scores skipped" if self.bad_scores else ""))


def printer(as_json: bool):
    def out(d: Detection) -> None:
        if as_json:
            print(json.dumps(d.as_dict(), allow_nan=False), flush=True)
        else:
            print(f"[{d.t:7.2f} s]  {d.label:<6} {d.score:.2f}", flush=True)
    return out


def wav_audio(path: Path, fast: bool, window_s: float, status: InputState | None = None) -> Iterator[np.ndarray]:
    reader = WavReader(None if str(path) == "-" else path)
    if status:
        status.rate = reader.rate
    try:
        resample = Resampler(reader.rate, RATE)
        start, sent = time.monotonic(), 0
        for block in reader.blocks(max(1, reader.rate // 10)):
            y = resample(to_mono(block))
            if not fast:  # real time: never run ahead of the wall clock
                time.sleep(max(0.0, start + sent / RATE - time.monotonic()))
            sent += len(y)
            yield y
        # a word at the very end of the file must pass through a whole window too
        yield resample(np.zeros(int(reader.rate * window_s) + 64, np.float32))
    finally:
        reader.close()


def mic_audio(sd, args, status: InputState) -> Iterator[np.ndarray]:
    """Blocks from the microphone at 16 kHz; after a lost device, waits up to --reconnect seconds for it.
    `status` follows the device's state (serve mode's heartbeat reads it)."""
    silent_for, warned, lost_at = 0.0, False, None
    while True:
        try:
            device = find_device(sd, args.device)
            mic = Microphone(sd, device, RATE, args.hop_ms / 1000)
        except AudioError:
            if lost_at is None or time.monotonic() - lost_at > args.reconnect:
                raise
            NOTIFIER.alive()  # waiting for the device as told is not hanging
            time.sleep(1.0)
            _rescan(sd)
            continue
        with mic:
            status.mics.append(mic)
            status.state, status.device, status.rate, status.warning = "listening", device["name"], mic.rate, ""
            rate_note = "" if mic.rate == RATE else f", resampled from {mic.rate} Hz"
            print(f"{'reconnected' if lost_at else 'listening'} on {device['index']}: {device['name']} "
                  f"({mic.rate} Hz{rate_note}); Ctrl-C stops", file=sys.stderr, flush=True)
            resample = Resampler(mic.rate, RATE)
            try:
                while True:
                    block = mic.read(timeout_s=max(2.0, 20 * args.hop_ms / 1000))
                    if np.any(block):
                        if warned:
                            print("audio is back", file=sys.stderr, flush=True)
                            status.warning = ""
                        silent_for, warned = 0.0, False
                    else:
                        silent_for += len(block) / mic.rate
                        if silent_for >= args.silence_warn and not warned:
                            print(f"warning: no audio: the input has been digital silence for {silent_for:.0f} s "
                                  "(muted or dead microphone?)", file=sys.stderr, flush=True)
                            warned = True
                            status.warning = "no audio: the microphone gives digital silence (muted or dead?)"
                    status.silent_s = silent_for
                    yield resample(block)
            except AudioError as e:
                status.state, status.warning = ("lost", str(e)) if args.reconnect <= 0 else ("reconnecting", str(e))
                if args.reconnect <= 0:
                    raise
                print(f"warning: {e}; waiting up to {args.reconnect:g} s for it to come back", file=sys.stderr,
                      flush=True)
                lost_at = time.monotonic()
        _rescan(sd)


def _rescan(sd) -> None:
    """PortAudio lists devices once, at initialisation: start it again to see a device come back."""
    try:
        sd._terminate()
        sd._initialize()
    except Exception:  # noqa: BLE001 - the next open attempt reports what is wrong
        pass


def list_devices(sd, as_json: bool) -> int:
    devices = input_devices(sd)
    if as_json:
        print(json.dumps(devices))
    elif not devices:
        print("no audio input devices")
    for d in [] if as_json else devices:
        print(f"{'*' if d['default'] else ' '} {d['index']:3d}  {d['name']}  ({d['channels']} ch, "
              f"{d['default_rate']:.0f} Hz)")
    return 0


class Serving:
    """--serve beside --mic/--wav: the model's routes, the kiosk page, the event stream and, for a model that
    enrols commands, /v1/commands (takes recorded through the listener: `observe` sees every block)."""

    def __init__(self, args, manifest: Manifest, session, app: VoiceSettings, status: InputState, name: str,
                 vocabulary: Vocabulary | None):
        from edge.runtime.serve.events import Hub
        from edge.runtime.serve.kiosk import PAGE
        from edge.runtime.serve.live import Live
        from edge.runtime.serve.model_api import ModelRoutes

        self.hub = Hub()
        self.live = Live(self.hub, status, list(app.keywords), list(app.labels))
        self.model = ModelRoutes(manifest, session)
        page = PAGE.encode()
        routes = {**self.model.routes(), ("GET", "/v1/events"): self.hub.route,
                  ("GET", "/"): lambda _r: Response(200, page, "text/html; charset=utf-8")}
        self.capture = None
        if vocabulary:
            from .commands_api import Capture, CommandRoutes

            self.capture = Capture()
            routes.update(CommandRoutes(vocabulary, lambda: _tap_on(session, manifest, app), self.capture).routes())
        self.server = serve_options.start(args, routes, name, InputError)
        self.live.start()

    def observe(self, t: float, block: np.ndarray, probs) -> None:
        self.live.window(t, block, probs)
        if self.capture:
            self.capture.feed(block)

    def tee(self, out):
        def both(d: Detection) -> None:
            out(d)  # stdout first: the JSON lines stay exactly as without --serve
            self.live.detection(d)
        return both

    def close(self) -> str:
        if self.capture:
            self.capture.end()
        self.live.stop()
        self.hub.close()
        self.server.close()
        return (f"; served {self.model.requests} classification(s), {self.hub.published} event(s), "
                f"{self.hub.dropped} dropped for slow readers")


def _tap(manifest: Manifest, app: VoiceSettings, threads: int | None) -> EmbeddingTap:
    return _tap_on(open_session(manifest, bundled.model_path(manifest), threads or manifest.threads), manifest, app)


def _tap_on(session, manifest: Manifest, app: VoiceSettings) -> EmbeddingTap:
    """The model's stream over a take, for enrolment (its own states: a listener's stream is not disturbed)."""
    return EmbeddingTap(session, app.stream, [o.name for o in manifest.outputs], app.enrol.state)


def main(argv: list[str] | None, manifest: Manifest, name: str) -> int:
    app = VoiceSettings.from_dict(manifest.app.settings)
    try:
        args = audio_parser(name, app).parse_args(argv)
        if enrol_cli.wanted(args):
            return enrol_cli.run(args, manifest, app, name, lambda: _tap(manifest, app, args.threads))
        if args.fast and not args.wav:
            raise InputError("--fast goes with --wav")
        if not (args.mic or args.wav or args.list_devices):
            if not (args.info or args.input or args.paths or args.samples or args.bench or args.serve):
                raise InputError("nothing to do: give --mic, --wav FILE or --list-devices (model flags: --info, "
                                 "--input, --samples, --bench, --serve)")
            return run_model(args, manifest, name)
        if sum(map(bool, (args.mic, args.wav, args.list_devices))) > 1:
            raise InputError("give one of --mic, --wav, --list-devices")
        check_limits(args)
        check_threads(args.threads)
        serve_options.check(args, InputError)
        if args.hop_ms < 10 or args.hop_ms % 10 or args.hop_ms > 1000:
            raise InputError("--hop-ms must be a multiple of 10 between 10 and 1000")
        step_ms = round(app.hop_s * 1000)
        if app.stream and args.hop_ms != step_ms:
            raise InputError(f"--hop-ms: this model reads the stream in steps of {step_ms} ms; it cannot change")
        as_json = args.json or not sys.stdout.isatty()
        sd = import_sounddevice() if args.mic or args.list_devices else None
        if args.list_devices:
            return list_devices(sd, as_json)
        try:
            session = open_session(manifest, bundled.model_path(manifest), args.threads or manifest.threads)
        except Exception as e:  # noqa: BLE001 - backend failures are not the user's flags
            print(f"{name}: error: the {manifest.backend.name} backend cannot load the model: {e}",
                  file=sys.stderr)
            return EXIT_RUNTIME
        default, per = thresholds(args.threshold, app)
        config = ListenConfig(hop_ms=args.hop_ms, threshold=default, thresholds=per, smooth=args.smooth,
                              refractory_s=args.refractory, verbose=args.verbose)
        status = InputState("wav" if args.wav else "mic", device="" if args.mic else str(args.wav))
        vocabulary = enrol_cli.vocabulary(app, args.state)
        served = Serving(args, manifest, session, app, status, name, vocabulary) if args.serve else None
        out = printer(as_json)
        if served:
            out = served.tee(out)
        listener = Listener(session, app, config, [o.name for o in manifest.outputs], out,
                            observer=served.observe if served else None, vocabulary=vocabulary)
        if vocabulary and vocabulary.commands:
            print(f"also hearing {', '.join(c.label for c in vocabulary.commands)} (enrolled; --commands lists them)",
                  file=sys.stderr, flush=True)
        code, how = 0, "end of file" if args.wav else ""
        try:
            status.state = "listening"
            audio = wav_audio(args.wav, args.fast, app.window_s, status) if args.wav else mic_audio(sd, args, status)
            ready = False
            for block in audio:
                if not ready:  # the first block: the device delivers audio
                    NOTIFIER.ready(f"listening to {status.device or 'the microphone'}")
                    ready = True
                NOTIFIER.alive()  # a hung audio loop stops these, and systemd restarts the service
                listener.feed(block)
            if served:  # the file has ended: the page and the API stay up until Ctrl-C or SIGTERM
                status.state = "ended"
                if served.capture:
                    served.capture.end()
                served.live.publish_status()
                NOTIFIER.status("the file has ended; still serving")
                serve_options.wait_for_stop(served.server)
                how = "end of file, then stopped"
        except KeyboardInterrupt:
            how = "stopped"
            NOTIFIER.stopping()
        except AudioError as e:
            print(f"{name}: error: {e}", file=sys.stderr)
            code, how, status.state = EXIT_AUDIO, "input lost", "lost"
        mics = status.mics
        drops = (f"; dropped {sum(m.dropped_frames for m in mics)} frames, {sum(m.overflows for m in mics)} "
                 f"overflow(s)" + (f", {len(mics) - 1} reconnection(s)" if len(mics) > 1 else "")) if mics else ""
        if served:
            drops += served.close()
        print(f"{name}: {how}: {listener.summary(drops)}", file=sys.stderr, flush=True)
        return code
    except InputError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (AudioError, WavError) as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return EXIT_AUDIO
    except KeyboardInterrupt:
        return 0
