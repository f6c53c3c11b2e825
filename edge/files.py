"""Where `edge` reads and writes: every output checked against every input before any work, outputs that
appear whole (temp names beside them, renamed only when all are complete), and operating-system errors
turned into one line that names the path and what went wrong."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

from edge.errors import EdgeError, OutputError, UsageError
from edge.runtime.fsutil import reason, same_path, unwritable


def os_error(e: OSError, path: Path | str | None = None, kind: type[EdgeError] = OutputError,
             doing: str = "cannot write") -> EdgeError:
    where = path if path is not None else (e.filename or "?")
    hint = {errno.ENOSPC: "; free some space or choose another folder",
            errno.EROFS: "; choose a writable folder",
            errno.EACCES: "; check the folder's permissions", errno.EPERM: "; check the folder's permissions"}
    error = kind(f"{where}: {doing}: {reason(e)}{hint.get(e.errno, '')}")
    error.path, error.os_reason = Path(where), reason(e)  # for callers that know better where the file was
    return error


def refuse_overwriting(outputs: dict[str, Path], inputs: dict[str, Path | None]) -> None:
    """Before any work: no output may be an input, another output, or a file inside an input folder that
    is read as data."""
    given = {what: Path(p) for what, p in inputs.items() if p is not None}
    named = list(outputs.items())
    for i, (out_what, out) in enumerate(named):
        for in_what, src in given.items():
            if same_path(out, src):
                raise UsageError(f"{out}: the {out_what} would overwrite the {in_what} {src}; choose another -o")
            if src.is_dir() and Path(os.path.realpath(out)).is_relative_to(os.path.realpath(src)):
                raise UsageError(f"{out}: the {out_what} would be written inside the {in_what} folder {src}; "
                                 "choose another -o")
        for other_what, other in named[i + 1:]:
            if same_path(out, other):
                raise UsageError(f"{out}: the {out_what} and the {other_what} would be the same file; "
                                 "choose another -o")


def check_readable_file(path: Path, what: str, kind: type[EdgeError]) -> None:
    """A regular file that can be opened: not missing, not a folder, not a device or pipe."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise kind(f"{path}: no such file") from None
    except OSError as e:
        raise os_error(e, path, kind, f"cannot read the {what}") from None
    if stat.S_ISDIR(st.st_mode):
        raise kind(f"{path}: is a folder, not a {what} file")
    if not stat.S_ISREG(st.st_mode):
        raise kind(f"{path}: is not a regular file (a device, pipe or socket); give a {what} file")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise os_error(e, path, kind, f"cannot read the {what}") from None


class Outputs:
    """The files (or folders) a command writes. `prepare()` checks them before any work and creates missing
    parent folders; the work writes to `temp(path)`; `commit()` renames all into place. A failure or a signal
    before `commit()` removes the temp files and the folders `prepare()` created."""

    def __init__(self, *paths: Path):
        self.paths = [Path(os.path.abspath(p)) for p in paths]
        self._created: list[Path] = []
        self._temps: dict[Path, Path] = {}
        self._committed = False

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            self.discard()

    def prepare(self) -> None:
        for path in self.paths:
            self._make_parent(path.parent)
            if path.is_symlink() and not path.exists():
                raise OutputError(f"{path}: is a broken symbolic link; remove it or choose another path")
            if path.exists() and not path.is_dir() and not path.is_file():
                raise OutputError(f"{path}: is a device, pipe or socket, not a file; choose another path")
            self._probe(path.parent, path)

    def _make_parent(self, parent: Path) -> None:
        missing = []
        p = parent
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        if p.exists() and not p.is_dir():
            raise OutputError(f"{parent}: cannot create folder {parent}: {p} is a file, not a folder")
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            except OSError as e:
                raise OutputError(f"{parent}: cannot create folder {parent}: {reason(e)}") from None
            self._created.append(folder)

    @staticmethod
    def _probe(folder: Path, path: Path) -> None:
        e = unwritable(folder)
        if e is not None:
            raise OutputError(f"{path}: folder {folder} is not writable ({reason(e)})")

    def temp(self, path: Path) -> Path:
        """A name beside `path` (same file system, so the rename is atomic)."""
        path = Path(os.path.abspath(path))
        tmp = path.with_name(f".{path.name}.part-{os.getpid()}")
        self._temps[path] = tmp
        return tmp

    def commit(self) -> None:
        """Rename every temp into place, the first-named path first; if one rename fails, the ones already
        placed are taken back out, so the outputs appear together or not at all."""
        placed = []
        try:
            for path in self.paths:
                tmp = self._temps.get(path)
                if tmp is None:
                    continue
                _replace(tmp, path)
                placed.append(path)
        except OSError as e:
            for path in placed:
                _remove(path)
            raise os_error(e, e.filename or self.paths[len(placed)], doing="cannot put the output in place") \
                from None
        self._committed = True

    def discard(self) -> None:
        for tmp in self._temps.values():
            _remove(tmp)
        for folder in reversed(self._created):
            try:
                folder.rmdir()  # only if still empty: never anything a user put there meanwhile
            except OSError:
                pass


def _replace(tmp: Path, path: Path) -> None:
    if tmp.is_dir() and path.is_dir():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def write_bytes(data: bytes, path: Path) -> None:
    try:
        path.write_bytes(data)
    except OSError as e:
        _remove(path)
        raise os_error(e, path) from None


def sha256(path: Path) -> str:
    """A file's SHA-256, read in 1 MiB chunks (executables and wheels are tens of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(obj: dict, path: Path) -> None:
    """Written whole to a temp name, then renamed: a crash never leaves half a report."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write_bytes((json.dumps(obj, indent=2, default=json_default) + "\n").encode(), tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise os_error(e, path) from None
    finally:
        tmp.unlink(missing_ok=True)


def json_default(o):
    """numpy scalars and arrays (their tolist() gives Python numbers and lists) and paths, for json.dumps."""
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(type(o).__name__)


# Scratch folders this process made and has not removed yet. A name goes in before its folder is made and
# leaves only after the folder is gone, so a signal landing anywhere in between leaves sweep_folders() the
# rest of the job.
_unremoved: set[Path] = set()


def make_folder(prefix: str, where: Path) -> Path:
    """tempfile.mkdtemp, but recorded for sweep_folders() before it exists."""
    while True:
        folder = where / f"{prefix}{secrets.token_hex(5)}"
        _unremoved.add(folder)
        try:
            folder.mkdir(mode=0o700)
            return folder
        except FileExistsError:  # another process's folder: not ours to sweep
            _unremoved.discard(folder)
        except BaseException:
            if not folder.is_dir():
                _unremoved.discard(folder)
            raise


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    _unremoved.discard(folder)


def sweep_folders() -> None:
    """Remove what an interrupted clean-up left (run on the way out, with signals ignored)."""
    for folder in list(_unremoved):
        remove_folder(folder)


@contextlib.contextmanager
def scratch_folder(prefix: str, where: Path | None = None):
    folder = make_folder(prefix, where or Path(tempfile.gettempdir()))
    try:
        yield folder
    finally:
        remove_folder(folder)


@contextlib.contextmanager
def work_folder(prefix: str, parent: Path | None = None):
    """A scratch folder (in TMPDIR unless `parent` is given), removed afterwards whatever happens."""
    where = parent or Path(tempfile.gettempdir())
    try:
        folder = make_folder(prefix, where)
    except OSError as e:
        raise os_error(e, where, doing="cannot create a work folder (set TMPDIR to another folder)") \
            from None
    hint = "set TMPDIR to a folder with room" if parent is None else "free some space there"
    try:
        yield folder
    except OSError as e:
        if e.filename and Path(e.filename).is_relative_to(folder):
            raise OutputError(f"{where}: cannot write in the work folder: {reason(e)}; {hint}") from None
        raise
    except EdgeError as e:
        inside = getattr(e, "path", None)
        if inside is not None and inside.is_relative_to(folder):
            raise OutputError(f"{where}: cannot write in the work folder: {e.os_reason}; {hint}") from None
        raise
    finally:
        remove_folder(folder)
