"""The licences of what a bundle holds, read where each part came from: a Python distribution's metadata and
licence files (in the build environment), a shared library's Debian package and its copyright file (the build
machine's dpkg database, or the .debs an emulated prefix was unpacked from), CPython's own licence and
PyInstaller's bootloader. The build report lists them; `edge package` writes them into the package's copyright
file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from edge.bundle.envs import BuildEnv
from edge.errors import BuildError

# Run by the build environment's Python, which sees the distributions the bundle was made from.
LISTER = r"""
import importlib.metadata as m, json, os, sys, sysconfig
bundled = set(json.loads(sys.argv[1]))
LICENCE_FILE = ('LICENSE', 'LICENCE', 'COPYING', 'NOTICE', 'AUTHORS')
found = []
for d in m.distributions():
    md = d.metadata
    tops = (d.read_text('top_level.txt') or '').split() or sorted(
        {str(f).split('/')[0].removesuffix('.py') for f in d.files or [] if '.dist-info' not in str(f)})
    name = md['Name']
    if not bundled.intersection(tops) and name.lower() != 'pyinstaller':
        continue
    classifiers = [c.split(' :: ')[-1] for c in md.get_all('Classifier') or [] if c.startswith('License ::')]
    licence = md.get('License-Expression') or (md.get('License') or '').strip().split('\n')[0][:200] \
        or ', '.join(classifiers) or 'unknown (see its files)'
    texts = {}
    for f in d.files or []:
        if os.path.basename(str(f)).upper().startswith(LICENCE_FILE):
            try:
                texts[str(f)] = f.locate().read_text(errors='replace')
            except OSError:
                pass
    part = 'its bootloader (the executable\'s start-up code)' if name.lower() == 'pyinstaller' else 'Python package'
    found.append({'name': name, 'version': md['Version'], 'licence': licence, 'part': part, 'texts': texts})
stdlib_licence = os.path.join(sysconfig.get_path('stdlib'), 'LICENSE.txt')
texts = {'LICENSE.txt': open(stdlib_licence).read()} if os.path.exists(stdlib_licence) else {}
found.append({'name': 'CPython', 'version': sys.version.split()[0], 'licence': 'PSF-2.0', 'part': 'interpreter',
              'texts': texts})
json.dump(found, sys.stdout)
"""


def _tops(modules: list[str], binaries: list[str]) -> list[str]:
    """Top-level names the bundle holds: its modules' packages and its data files' first folder."""
    return sorted({m.split(".")[0] for m in modules} | {b.removeprefix("_internal/").split("/")[0] for b in binaries})


def _distributions(env: BuildEnv, tops: list[str]) -> list[dict]:
    result = subprocess.run([str(env.python), "-c", LISTER, json.dumps(tops)], capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"cannot read the licences in {env.path}: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def _candidates(env: BuildEnv, names: set[str]) -> list[tuple[str, str, Path]]:
    """(library file name, Debian package, the file it installs) for every package file of those names: from
    this machine's dpkg database, or from the .debs an emulated prefix was unpacked from."""
    found = []
    if env.emulated:
        for deb in sorted((env.path / "debs").glob("*.deb")):
            listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
            for line in listing.splitlines():
                path = line.split(" ./", 1)[-1].split(" -> ")[0]
                if Path(path).name in names:
                    found.append((Path(path).name, deb.name.split("_")[0], env.path / "root" / path))
        return found
    for name in sorted(names):
        out = subprocess.run(["dpkg", "-S", f"*/{name}"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            packages, _, path = line.partition(": ")
            for package in packages.split(", "):
                found.append((name, package.split(":")[0], Path(path.strip())))
    return found


def _owners(env: BuildEnv, extracted: Path, names: list[str]) -> dict[str, str]:
    """{library file name: the Debian package whose file is byte for byte the one in the bundle}; a library
    that came from elsewhere (a wheel, a Python built from source) has none."""
    owners = {}
    for name, package, path in _candidates(env, set(names)):
        if name not in owners and _same(extracted / name, path):
            owners[name] = package
    return owners


def _version(env: BuildEnv, package: str) -> str | None:
    if env.emulated:
        found = sorted((env.path / "debs").glob(f"{package}_*.deb"))
        return found[0].name.split("_")[1].replace("%3a", ":") if found else None
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
    return out.stdout.strip() or None


def _debian_packages(env: BuildEnv, extracted: Path, libraries: list[str]) -> list[dict]:
    owners = _owners(env, extracted, libraries)
    doc_root = env.path / "root" / "usr/share/doc" if env.emulated else Path("/usr/share/doc")
    parts = []
    for package in sorted(set(owners.values())):
        copyright_file = doc_root / package.split(":")[0] / "copyright"
        text = copyright_file.read_text(errors="replace") if copyright_file.is_file() else ""
        parts.append({"name": package, "version": _version(env, package), "licence": "see its Debian copyright file",
                      "part": "shared libraries " + ", ".join(sorted(k for k, v in owners.items() if v == package)),
                      "texts": {"copyright": text} if text else {}})
    return parts


def collect(env: BuildEnv, built: Path, extracted: Path, modules: list[str], binaries: list[str]) -> list[dict]:
    """Every licensed part of the bundle: [{name, version, licence, part, texts: {file: text}}]. `extracted`
    holds a onefile bundle's binaries (a onedir bundle's lie in its folder)."""
    folder = built / "_internal" if built.is_dir() else extracted
    libraries = sorted({Path(b).name for b in binaries if ".so" in Path(b).name and "/" not in
                        b.removeprefix("_internal/")})
    return _distributions(env, _tops(modules, binaries)) + _debian_packages(env, folder, libraries)
