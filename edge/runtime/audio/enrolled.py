"""Where enrolled commands live on the device: one JSON file in a state folder (`--state DIR`, else
$STATE_DIRECTORY under systemd, else ~/.local/state/voice-commands). Each command keeps its takes' window vectors
(edge/runtime/audio/enrol.py), so its threshold and quality can be measured again against any bank.

Changes are made under a lock (two enrolments at once both land), written to a temporary file and renamed (a full
disk or a crash never damages what was there), and a refused change leaves the file as it was. A file that is not
ours is never overwritten: loading it gives no commands and one warning naming it, and changing it is refused."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from edge.runtime.fsutil import reason, replace_whole

FILE = "commands.json"
FORMAT = 1
MAX_LABEL = 32
MAX_TAKES = 20


class StoreError(ValueError):
    """A refused change or an unusable state folder; the message names the file and what to do."""

    status = 503  # what an HTTP client is told: the state folder cannot be used


class LabelError(StoreError):
    status = 400  # the label itself is wrong


class TakenError(StoreError):
    status = 409  # the label is taken (enrolled already, or one of the executable's own)


def state_dir(given: str | None = None, environ=os.environ) -> Path:
    if given:
        return Path(given)
    if environ.get("STATE_DIRECTORY"):  # systemd's StateDirectory=: the first of a colon-separated list
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    return Path(environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "voice-commands"


def check_label(label: str, taken: list[str]) -> str:
    """The label as it will be shown, or StoreError saying what is wrong with it. `taken`: every label already
    known (built-in and enrolled) that this one must not be confused with."""
    label = unicodedata.normalize("NFC", label.strip())
    if not label:
        raise LabelError("a command's label cannot be empty")
    if len(label) > MAX_LABEL:
        raise LabelError(f"label {label[:MAX_LABEL]!r}…: at most {MAX_LABEL} characters")
    if any(unicodedata.category(c).startswith("C") for c in label):
        raise LabelError(f"label {label!r}: control characters are not allowed")
    if "/" in label or "\\" in label or label in (".", ".."):
        raise LabelError(f"label {label!r}: no '/', '\\', '.' or '..'")
    if label.startswith("_"):
        raise LabelError(f"label {label!r}: labels starting with '_' are reserved (never reported)")
    for other in taken:
        if other != label and other.casefold() == label.casefold():
            raise LabelError(f"label {label!r} differs from the existing command {other!r} only by case")
    return label


class Store:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / FILE

    def load(self) -> tuple[dict[str, np.ndarray], str | None]:
        """{label: vectors [takes, D]} and a warning when the file exists but cannot be used."""
        try:
            return self._read(), None
        except StoreError as e:
            return {}, f"{e}; only the built-ins are heard"

    def _read(self) -> dict[str, np.ndarray]:
        try:
            return read_commands(self.path)
        except FileNotFoundError:
            return {}

    def stamp(self) -> tuple[int, int] | None:
        """Changes when the file does (a listener compares it every second to pick up enrolments)."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ino

    def add(self, label: str, vectors: np.ndarray, builtins: list[str] = (), replace: bool = False) -> str:
        """Save a command; returns its label as stored. Refused (file unchanged): a bad label, one that exists
        (unless `replace`), a built-in's name."""
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or not 1 <= len(vectors) <= MAX_TAKES or not np.isfinite(vectors).all():
            raise LabelError(f"{label!r}: 1 to {MAX_TAKES} finite take vectors are needed, got {vectors.shape}")
        with self._locked() as commands:
            label = check_label(label, [*builtins, *commands])
            if label in builtins:
                raise TakenError(f"{label!r} is one of the executable's own commands; choose another label")
            if label in commands and not replace:
                raise TakenError(f"{label!r} is enrolled already ({self.path}); to enrol it again, replace it "
                                 "(--replace, or ?replace=1 over HTTP)")
            commands[label] = vectors
        return label

    def forget(self, label: str) -> bool:
        with self._locked() as commands:
            return commands.pop(label, None) is not None

    @contextlib.contextmanager
    def _locked(self):
        """The commands under an exclusive lock, written back (temp file, then rename) if the block succeeds."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            lock = open(self.folder / ".commands.lock", "a")  # noqa: SIM115 - held for the whole change
        except OSError as e:
            raise StoreError(f"{self.folder}: cannot use the state folder ({reason(e)}); choose another with "
                             "--state DIR") from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                commands = self._read()
            except StoreError as e:
                raise StoreError(f"{e}; move it away to start afresh") from None
            before = dict(commands)
            yield commands
            if commands.keys() != before.keys() or any(commands[k] is not before[k] for k in commands):
                self._write(commands)

    def _write(self, commands: dict[str, np.ndarray]) -> None:
        try:
            write_commands(self.path, commands)
        except OSError as e:
            raise StoreError(f"{self.path}: cannot save ({reason(e)}); nothing was changed") from None


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as f:  # on disk before the rename: a power cut never leaves an empty file in its place
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def read_commands(path: Path) -> dict[str, np.ndarray]:
    """{label: vectors} of a commands file; FileNotFoundError when there is none, StoreError naming it when it
    cannot be used."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise StoreError(f"{path}: cannot read the enrolled commands ({reason(e)})") from None
    try:
        return _parse(raw)
    except (ValueError, KeyError, TypeError) as e:
        raise StoreError(f"{path}: not an enrolled-commands file ({e})") from None


def write_commands(path: Path, commands: dict[str, np.ndarray]) -> None:
    """The whole file at once (beside it, synced, renamed into place)."""
    doc = {"format": FORMAT, "written": datetime.now(UTC).isoformat(timespec="seconds"),
           "commands": {k: {"takes": len(v), "vectors": np.round(v, 6).tolist()} for k, v in commands.items()}}
    replace_whole(Path(path), lambda tmp: _write_synced(tmp, json.dumps(doc)))


def _parse(raw: bytes) -> dict[str, np.ndarray]:
    doc = json.loads(raw)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("commands"), dict):
        raise ValueError(f"expected format {FORMAT} with a \"commands\" object")
    out = {}
    for label, entry in doc["commands"].items():
        v = np.asarray(entry["vectors"], np.float32)
        if v.ndim != 2 or not len(v) or not np.isfinite(v).all():
            raise ValueError(f"command {label!r} has no usable vectors")
        out[label] = v
    return out
