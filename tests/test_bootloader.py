"""The PyInstaller source the patched bootloader is compiled from is unpacked safely on every Python ≥ 3.11
(tarfile's "data" filter exists from 3.11.4; Debian 12's Python is 3.11.2)."""

import io
import sys
import tarfile

import pytest

from edge.bundle import bootloader
from edge.errors import BuildError


def _archive(path, members: dict) -> None:
    with tarfile.open(path, "w:gz") as t:
        for name, kind in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(kind, str):  # a symbolic link to that name
                info.type, info.linkname = tarfile.SYMTYPE, kind
                t.addfile(info)
            else:
                info.size = len(kind)
                t.addfile(info, io.BytesIO(kind))


@pytest.mark.parametrize("data_filter", [True, False], ids=["python-with-filter", "python-without-filter"])
@pytest.mark.parametrize("bad", ["../escape.c", "/abs.c", "pyinstaller-1/link", "pyinstaller-1/uplink"])
def test_unsafe_members_are_refused_and_plain_ones_unpacked(tmp_path, monkeypatch, data_filter, bad):
    if data_filter and not hasattr(tarfile, "data_filter"):
        pytest.skip(f"this Python's tarfile ({sys.version.split()[0]}) has no data filter (3.11.4 and later)")
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    good = tmp_path / "good.tar.gz"
    _archive(good, {"pyinstaller-1/bootloader/src/main.c": b"int main;\n",
                    "pyinstaller-1/news/README.txt": "../bootloader/src/main.c"})  # a link inside, as PyPI's has
    bootloader._extract(good, tmp_path / "out")
    assert (tmp_path / "out/pyinstaller-1/bootloader/src/main.c").read_bytes() == b"int main;\n"
    assert (tmp_path / "out/pyinstaller-1/news/README.txt").read_bytes() == b"int main;\n"
    evil = tmp_path / "evil.tar.gz"
    target = {"pyinstaller-1/link": "/etc/passwd", "pyinstaller-1/uplink": "../../escape.c"}.get(bad, b"y")
    _archive(evil, {"pyinstaller-1/ok.c": b"x", bad: target})
    if data_filter:  # tarfile's own refusal, or (an absolute name) the member put inside the folder
        try:
            bootloader._extract(evil, tmp_path / "out2")
        except tarfile.FilterError:
            pass
    else:
        with pytest.raises(BuildError, match="not a file, folder or link inside the archive"):
            bootloader._extract(evil, tmp_path / "out2")
    outside = {p.name for p in tmp_path.iterdir()} - {"good.tar.gz", "evil.tar.gz", "out", "out2"}
    out2 = (tmp_path / "out2").resolve()
    assert not outside and not [p for p in tmp_path.rglob("*") if p.is_symlink() and p.is_relative_to(out2)
                                and not p.resolve().is_relative_to(out2)]
