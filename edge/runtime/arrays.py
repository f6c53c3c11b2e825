"""Read .npy and .npz files without trusting their headers: the size a header claims is checked against the
bytes that are really there before anything is allocated (numpy allocates first, then reads)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

MAX_HEADER = 1 << 16  # numpy writes headers of a few hundred bytes


class ArrayFileError(Exception):
    pass


def _array_header(f, path: str) -> tuple[tuple[int, ...], np.dtype, bool]:
    try:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(f, max_header_size=MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy_format.read_array_header_2_0(f, max_header_size=MAX_HEADER)
        else:
            raise ValueError(f"unknown .npy format version {version}")
    except (ValueError, EOFError, SyntaxError) as e:
        raise ArrayFileError(f"{path}: not a .npy array ({str(e).splitlines()[0] if str(e) else 'bad header'})") \
            from None
    if dtype.hasobject:
        raise ArrayFileError(f"{path}: holds Python objects, which are never loaded (only numeric arrays)")
    return shape, dtype, fortran


def _check_size(shape, dtype: np.dtype, available: int, path: str) -> None:
    count = 1
    for d in shape:
        count *= int(d)
    claimed = count * dtype.itemsize
    if claimed > available:
        raise ArrayFileError(f"{path}: the header claims {list(shape)} {dtype} ({claimed:,} bytes) but only "
                             f"{available:,} bytes follow: a truncated or corrupt file")


def load_npy(path: str | os.PathLike) -> np.ndarray:
    path = str(path)
    with open(path, "rb") as f:
        shape, dtype, _ = _array_header(f, path)
        _check_size(shape, dtype, os.fstat(f.fileno()).st_size - f.tell(), path)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise ArrayFileError(f"{path}: cannot read the array ({e})") from None


def load_npz(path: str | os.PathLike, data: bytes | None = None) -> dict[str, np.ndarray]:
    """Every array of an .npz by name; each member's header is checked against its uncompressed size.
    data: the archive's bytes (a request body), `path` then only names it in errors."""
    path = str(path)
    try:
        with zipfile.ZipFile(path if data is None else io.BytesIO(data)) as z:
            arrays = {}
            for info in z.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with z.open(info) as member:
                    shape, dtype, fortran = _array_header(member, f"{path} (array {name!r})")
                    header = member.tell()
                    _check_size(shape, dtype, info.file_size - header, f"{path} (array {name!r})")
                    raw = member.read()
                array = np.frombuffer(raw, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)))
                arrays[name] = (array.reshape(shape[::-1]).T if fortran else array.reshape(shape)).copy()
            return arrays
    except zipfile.BadZipFile as e:
        raise ArrayFileError(f"{path}: not an .npz archive ({e})") from None
    except (zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as e:
        raise ArrayFileError(f"{path}: cannot read the archive ({e})") from None


def load(path: Path) -> dict[str, np.ndarray] | np.ndarray:
    """An .npz as a dict of arrays; anything else as one .npy array."""
    with open(path, "rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"
    return load_npz(path) if is_zip else load_npy(path)
