"""File-system helpers the executables and the host share (standard library only): the errno's words, whether
two paths are the same file, and whether a folder takes a new file."""

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
