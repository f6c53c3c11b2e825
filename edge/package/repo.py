"""A local apt repository (a flat one: `deb [trusted=yes] file:/DIR ./`, or served over HTTP by any web server):
the .debs, `Packages` (+ .gz) by dpkg-scanpackages and `Release` by apt-ftparchive, rewritten whole each time a
package is added so apt never reads an index that names a missing file."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

from edge.errors import OutputError, SetupError

TOOLS = {"dpkg-scanpackages": "dpkg-dev", "apt-ftparchive": "apt-utils"}


def _run(args: list[str], cwd: Path) -> bytes:
    tool = args[0]
    if not shutil.which(tool):
        raise SetupError(f"{tool} is missing: as root, apt-get install -y {TOOLS[tool]}")
    out = subprocess.run(args, cwd=cwd, capture_output=True)
    if out.returncode != 0:
        raise OutputError(f"{tool} failed in {cwd}: {out.stderr.decode(errors='replace').strip()[-300:]}")
    return out.stdout


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def add(repo: Path, deb: Path, origin: str) -> dict:
    """Copy `deb` into `repo` (created if missing) and re-index it; returns what the repository holds."""
    repo.mkdir(parents=True, exist_ok=True)
    if not os.access(repo, os.W_OK):
        raise OutputError(f"--repo {repo}: not writable")
    dest = repo / deb.name
    tmp = repo / f".{deb.name}.tmp-{os.getpid()}"
    try:
        shutil.copyfile(deb, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    packages = _run(["dpkg-scanpackages", "--multiversion", "."], repo)
    _replace(repo / "Packages", packages)
    _replace(repo / "Packages.gz", gzip.compress(packages, 9, mtime=0))
    release = _run(["apt-ftparchive", "-o", f"APT::FTPArchive::Release::Origin={origin}",
                    "-o", f"APT::FTPArchive::Release::Label={origin}", "release", "."], repo)
    _replace(repo / "Release", release)
    debs = sorted(p.name for p in repo.glob("*.deb"))
    return {"path": str(repo), "packages": debs, "source_line": f"deb [trusted=yes] file:{repo.resolve()} ./"}
