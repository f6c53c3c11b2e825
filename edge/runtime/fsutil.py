"""File-system helpers the executables and the host share (standard library only): the errno's words, whether
two paths are the same file, whether a folder takes a new file, and replacing a file whole."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def reason(e: OSError) -> str:
    """The errno's meaning, in the operating system's words (e.g. 'No space left on device')."""
    return e.strerror or (os.strerror(e.errno) if e.errno else str(e) or type(e).__name__)


def same_path(a, b) -> bool:
    """True when writing `a` would change `b`: the same name through symlinks, or the same file (hard link)."""
    if Path(os.path.realpath(a)) == Path(os.path.realpath(b)):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def unwritable(folder: Path) -> OSError | None:
    """Why a new file cannot be created in `folder`, or None: tried for real (permissions, read-only, full)."""
    probe = Path(folder) / f".edge-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
    except OSError as e:
        return e
    finally:
        with contextlib.suppress(OSError):  # a read-only folder: nothing was created
            probe.unlink(missing_ok=True)
    return None


def replace_whole(path: Path, write, suffix: str = "") -> None:
    """`write(temporary path)` beside `path`, then rename it into place: readers see the old file or the new one,
    never half of one. OSError propagates; the temporary file never stays. `suffix`: one the writer insists on
    (numpy's savez adds .npz to a name without it)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
