"""The executable's own commands on the device: --enroll LABEL FILE… or --enroll LABEL --mic (guided takes),
--forget LABEL and --commands, against the state folder (--state DIR)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from edge.runtime import bundled
from edge.runtime.manifest import Manifest
from edge.runtime.model_cli import InputError

from . import enrol
from .commands import ConfusedError, Vocabulary
from .enrolled import MAX_TAKES, StoreError, state_dir
from .mic import Microphone, find_device, import_sounddevice
from .resample import Resampler, to_mono
from .settings import VoiceSettings
from .wavfile import WavReader

RATE = enrol.RATE
MIN_TAKES, MAX_MIC_TAKES = 3, 5  # guided takes: enough for a hit rate, few enough to stay patient
TAKE_S = 2.0  # each guided take records this long
EXTRA_TRIES = 5  # refused guided takes allowed besides the ones asked for
# A take whose vector points away from the other takes' mean (cosine below this) is another word or a noise.
# Measured on the bank's training speakers: the same word by two other speakers scores >= 0.48 for 95 % of takes
# (>= 0.16 for 99 %); a different word's median is 0.32: this catches gross mistakes, not near-homophones.
UNLIKE_BELOW = 0.3


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("your own commands (models that carry a bank; see --commands)")
    g.add_argument("--enroll", metavar="LABEL", help="enrol a command from the WAV files given after it, or from "
                                                     "the microphone with --mic (guided takes)")
    g.add_argument("--takes", type=int, default=MIN_TAKES, metavar="N",
                   help=f"with --enroll --mic: takes to record ({MIN_TAKES}..{MAX_MIC_TAKES}; default %(default)s)")
    g.add_argument("--replace", action="store_true", help="with --enroll: enrol an existing label again")
    g.add_argument("--strict", action="store_true",
                   help="with --enroll: refuse a command the model may confuse with another (default: warn)")
    g.add_argument("--forget", metavar="LABEL", help="remove an enrolled command")
    g.add_argument("--commands", action="store_true", help="list the commands heard, with their expected quality")
    g.add_argument("--state", metavar="DIR", help="where enrolled commands are kept (default: $STATE_DIRECTORY "
                                                  "under systemd, else ~/.local/state/voice-commands)")


def wanted(args) -> bool:
    return bool(args.enroll is not None or args.forget is not None or args.commands)


def vocabulary(app: VoiceSettings, state: str | None, warn=None) -> Vocabulary | None:
    return Vocabulary.for_app(app, bundled.root(), state_dir(state), warn)


def run(args, manifest: Manifest, app: VoiceSettings, name: str, open_model) -> int:
    if sum(map(bool, (args.enroll is not None, args.forget is not None, args.commands))) > 1:
        raise InputError("give one of --enroll, --forget, --commands")
    if args.wav or args.serve or (args.mic and args.enroll is None):
        raise InputError("--enroll, --forget and --commands run alone (--mic goes with --enroll)")
    vocab = vocabulary(app, args.state)
    if vocab is None:
        raise InputError("this model carries no bank to enrol commands against (its labels file has no \"enrol\" "
                         "section; demos/kws/assembly/assemble.py writes one)")
    if args.commands:
        return list_commands(vocab, args.json or not sys.stdout.isatty())
    if args.forget is not None:
        return forget(vocab, args.forget, name)
    label = _check_new_label(vocab, args)
    if args.mic:
        if not MIN_TAKES <= args.takes <= MAX_MIC_TAKES:
            raise InputError(f"--takes {args.takes}: give {MIN_TAKES}..{MAX_MIC_TAKES}")
        if args.paths:
            raise InputError("--enroll --mic records its takes; give WAV files or --mic, not both")
        vectors = guided_takes(vocab, args, label, open_model())
    else:
        if not args.paths:
            raise InputError(f"--enroll {label}: give the WAV files of its takes, or --mic to record them")
        if len(args.paths) > MAX_TAKES:
            raise InputError(f"--enroll {label}: {len(args.paths)} files; at most {MAX_TAKES} takes")
        try:
            vectors = file_takes(vocab.bank, [Path(p) for p in args.paths], open_model())
        except enrol.EnrolError as e:
            raise InputError(str(e)) from None
    return save(vocab, label, vectors, args, name)


def _check_new_label(vocab: Vocabulary, args) -> str:
    try:
        return vocab.check_new(args.enroll, args.replace)
    except StoreError as e:
        raise InputError(str(e)) from None


def read_take(path, name: str | None = None) -> np.ndarray:
    """A WAV file (a path, or an open binary file called `name` in errors) at 16 kHz mono, read up to just past
    the longest take allowed (a long file is refused by check_take without being read whole)."""
    reader = WavReader(path, name)
    try:
        resample, got, limit = Resampler(reader.rate, RATE), [], int((enrol.MAX_TAKE_S + 0.5) * RATE)
        for block in reader.blocks(max(1, reader.rate // 10)):
            got.append(resample(to_mono(block)))
            if sum(map(len, got)) > limit:
                break
        return np.concatenate(got) if got else np.zeros(0, np.float32)
    finally:
        reader.close()


def file_takes(bank: enrol.Bank, paths: list[Path], tap: enrol.EmbeddingTap) -> np.ndarray:
    """The take vectors of recordings (the device's --enroll FILE… and the build's --commands DIR alike), or
    EnrolError naming the first file that cannot be used (WavError for one that cannot be read)."""
    takes = []
    for path in paths:
        take = enrol.check_take(read_take(path))
        if take.problem:
            raise enrol.EnrolError(f"{path}: {take.problem}")
        takes.append(take)
    vectors = np.array([tap.take_vector(bank, t.audio) for t in takes], np.float32)
    for path, similarity in zip(paths, unlike(bank, vectors)):
        if similarity is not None:
            raise enrol.EnrolError(f"{path}: unlike the other takes (similarity {similarity:.2f}, needs "
                                   f"{UNLIKE_BELOW}): another word, or mostly noise?")
    return vectors


def unlike(bank: enrol.Bank, vectors: np.ndarray) -> list[float | None]:
    """Per take: its similarity to the mean of the others when that is too low, else None (one take: None)."""
    if len(vectors) < 2:
        return [None] * len(vectors)
    c = bank.centred(vectors)
    found = []
    for i in range(len(c)):
        s = float(c[i] @ enrol.unit(np.delete(c, i, axis=0).mean(axis=0)))
        found.append(s if s < UNLIKE_BELOW else None)
    return found


def examine(vocab: Vocabulary, tap: enrol.EmbeddingTap, audio: np.ndarray,
            previous: list[np.ndarray]) -> tuple[str | None, np.ndarray | None, enrol.Take]:
    """(why the take cannot be used or None, its vector, the take): the checks of check_take, then whether it
    sounds like the takes before it."""
    take = enrol.check_take(audio)
    if take.problem:
        return take.problem, None, take
    v = tap.take_vector(vocab.bank, take.audio)
    bad = unlike(vocab.bank, np.array([*previous, v]))[-1] if len(previous) else None
    if bad is not None:
        return f"unlike the other takes (similarity {bad:.2f}): another word, or mostly noise?", None, take
    return None, v, take


def guided_takes(vocab: Vocabulary, args, label: str, tap: enrol.EmbeddingTap) -> np.ndarray:
    sd = import_sounddevice()
    device = find_device(sd, args.device)
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    say(f"enrolling {label!r} on {device['index']}: {device['name']}: {args.takes} takes of {TAKE_S:.0f} s; say "
        "the command once per take, the way you will say it to the device")
    vectors: list[np.ndarray] = []
    tries = 0
    with Microphone(sd, device, RATE, 0.1) as mic:
        resample = Resampler(mic.rate, RATE)
        while len(vectors) < args.takes:
            tries += 1
            if tries > args.takes + EXTRA_TRIES:
                raise InputError(f"--enroll {label}: {tries - 1} takes, {len(vectors)} usable; nothing was saved")
            say(f"take {len(vectors) + 1} of {args.takes}: speak now")
            problem, v, take = examine(vocab, tap, _record(mic, resample), vectors)
            if problem:
                say(f"  take refused: {problem}; again")
                continue
            vectors.append(v)
            say(f"  ok ({take.speech_s:.1f} s of speech, loudest {take.peak_dbfs:.0f} dBFS)")
    return np.array(vectors, np.float32)


def _record(mic: Microphone, resample) -> np.ndarray:
    got, need = [], int(TAKE_S * RATE)
    while sum(map(len, got)) < need:
        got.append(resample(mic.read(timeout_s=2.0)))
    return np.concatenate(got)[:need]


def save(vocab: Vocabulary, label: str, vectors: np.ndarray, args, name: str) -> int:
    try:
        command, confused = vocab.add(label, vectors, args.replace, args.strict)
    except ConfusedError as e:
        print(f"{name}: error: --strict: {e}", file=sys.stderr)
        return 1
    except StoreError as e:
        raise InputError(str(e)) from None
    for other, share in confused:
        print(f"{name}: warning: {label!r} may be confused with {other!r} (overlap {100 * share:.0f} % of their "
              "takes)", file=sys.stderr)
    hit = "n/a with one take" if command.hit_rate is None else f"{100 * command.hit_rate:.0f} %"
    print(f"enrolled {label!r} from {len(vectors)} take(s): expected hit rate {hit}, false accepts "
          f"{100 * command.false_accepts:.1f} % (threshold {command.threshold:.2f}); kept in {vocab.store.path}")
    return 0


def forget(vocab: Vocabulary, label: str, name: str) -> int:
    if label in vocab.own:
        raise InputError(f"{label!r} is one of the executable's own commands; only enrolled ones can be forgotten")
    try:
        gone = vocab.store.forget(label)
    except StoreError as e:
        raise InputError(str(e)) from None
    if not gone:
        raise InputError(f"{label!r} is not enrolled ({vocab.store.path}); --commands lists them")
    print(f"forgot {label!r}")
    return 0


def list_commands(vocab: Vocabulary, as_json: bool) -> int:
    entries = vocab.entries()
    if as_json:
        print(json.dumps({"state": str(vocab.store.path), "commands": [e.as_dict() for e in entries]}))
        return 0
    for e in entries:
        print(e.line())
    print(f"(enrolled commands: {vocab.store.path})")
    return 0
