"""Commands enrolled at build time (`edge build --app voice-commands --commands DIR`): DIR holds one folder per
command, DIR/<label>/*.wav, any rate, channels and length up to a few seconds. Each take is read, checked and
trimmed as the device does (edge/runtime/audio/enrol_cli.py), run through the optimized model's own stream, and
the commands are measured against the bank that is bundled with them: per command, the recordings used, the
expected hit rate (each recording left out in turn), the false accepts on the bank's other half, and the
commands most likely to be confused with it. The executable carries them as commands.json."""

from __future__ import annotations

from pathlib import Path

from edge.errors import DataError

MAX_DIR_TAKES = 20  # the state file's limit per command (edge/runtime/audio/enrolled.py)


def folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def takes(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")


def check_folder(root: Path, keywords: list[str]) -> list[tuple[str, list[Path]]]:
    """(label, WAV files) per command folder, or DataError naming what is wrong."""
    from edge.runtime.audio.enrolled import StoreError, check_label

    if not root.is_dir():
        raise DataError(f"--commands {root}: not a folder (give DIR holding DIR/<label>/*.wav)")
    found, labels = [], []
    for folder in folders(root):
        try:
            label = check_label(folder.name, [*keywords, *labels])
        except StoreError as e:
            raise DataError(f"{folder}: {e}") from None
        if label in keywords:
            raise DataError(f"{folder}: {label!r} is one of the model's own commands (--builtin chooses which stay)")
        wavs = takes(folder)
        if not wavs:
            raise DataError(f"{folder}: no .wav recordings in it")
        if len(wavs) > MAX_DIR_TAKES:
            raise DataError(f"{folder}: {len(wavs)} recordings; at most {MAX_DIR_TAKES} per command")
        labels.append(label)
        found.append((label, wavs))
    if not found:
        raise DataError(f"--commands {root}: no command folders in it (DIR/<label>/*.wav)")
    return found


def enrol_folder(root: Path, keywords: list[str], model: Path, settings: dict, bank_path: Path, say) -> tuple:
    """({label: take vectors}, the report's entries) for the commands in `root`, through `model`'s stream."""
    from edge.runtime.audio import enrol
    from edge.runtime.audio.commands import Vocabulary
    from edge.runtime.audio.enrol_cli import file_takes
    from edge.runtime.audio.settings import VoiceSettings
    from edge.runtime.audio.wavfile import WavError
    from edge.runtime.ort import OrtSession

    app = VoiceSettings.from_dict(settings)
    session = OrtSession(model, threads=1)
    tap = enrol.EmbeddingTap(session, app.stream, [o.name for o in session.outputs()], app.enrol.state)
    bank = enrol.Bank.load(bank_path)
    folders = check_folder(root, keywords)
    commands = {}
    for label, wavs in folders:
        try:
            commands[label] = file_takes(bank, wavs, tap)
        except (enrol.EnrolError, WavError) as e:
            raise DataError(str(e)) from None
        say(f"  {label}: {len(wavs)} recording(s)")
    vocab = Vocabulary(bank, app.keywords, commands, store=None)
    entries = [e.as_dict() for e in vocab.entries() if e.source != "model"]
    for entry, (_, wavs) in zip(entries, folders):
        entry["recordings"] = [str(p) for p in wavs]
    return commands, entries
