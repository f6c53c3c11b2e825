"""`edge doctor`: what this machine needs to build for the boards, one line per check with what to do, and
`--fix` (as root) installing the Debian packages and running the commands that provide it.

Each check is a function registered in CHECKS with the builds it concerns (`applies`); `edge build` runs the
ones for its own target, app and backend before any work. Standard library only: build.py runs it before the
virtual environment exists."""

from __future__ import annotations

import ctypes.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge import apps, arches, backends
from edge import targets as T
from edge.errors import SetupError
from edge.runtime.fsutil import reason, unwritable

BINFMT = Path("/proc/sys/fs/binfmt_misc")
CACHE_FAIL_BYTES = 1_000_000_000  # a first build environment: ~170-400 MB, plus pip's and apt's downloads
CACHE_WARN_BYTES = 3_000_000_000
TMP_WARN_BYTES = 500_000_000  # edge optimize's work folder holds a few copies of the model
TEST_PACKAGES = ("pulseaudio", "pulseaudio-utils", "libasound2-plugins")  # a private PulseAudio daemon as mic
# the kiosk page's tests drive Debian's browser (no browser download); the font keeps screenshots legible
TEST_BROWSER = ("chromium", "chromium-driver", "fonts-dejavu-core")
# `edge package` (dpkg-scanpackages, apt-ftparchive, systemd-analyze) and its tests: lintian, Debian roots made by
# mmdebstrap and booted with systemd-nspawn
TEST_PACKAGING = ("dpkg-dev", "apt-utils", "systemd", "lintian", "mmdebstrap", "systemd-container")


@dataclass
class Result:
    check: str
    status: str  # "ok", "warn" (works, but worse) or "fail" (the build stops)
    detail: str
    fix: str = ""  # what to do, in words
    packages: tuple[str, ...] = ()  # Debian packages that fix it
    commands: tuple[tuple[str, ...], ...] = ()  # run as root after the packages are installed

    @property
    def fixable(self) -> bool:
        return self.status != "ok" and bool(self.packages or self.commands)

    def line(self) -> str:
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[self.status]
        return f"{mark} {self.check:<24} {self.detail}" + (f" — {self.fix}" if self.fix else "")

    def as_dict(self) -> dict:
        return {**asdict(self), "commands": [" ".join(c) for c in self.commands]}


@dataclass(frozen=True)
class Need:
    """What a set of builds uses: boards, apps and backends, and whether the test suite runs too."""

    targets: tuple[T.Target, ...]
    apps: frozenset[str] = field(default_factory=lambda: frozenset(apps.registered()))
    backends: frozenset[str] = frozenset(backends.NAMES)
    tests: bool = False
    survey: bool = True  # also measure the cache's size (a walk of ~1 GB; `edge build` skips it)

    @property
    def host_targets(self) -> tuple[T.Target, ...]:
        return tuple(t for t in self.targets if t.base == "host")

    @property
    def emulated_archs(self) -> tuple[str, ...]:
        return tuple(sorted({t.arch for t in self.targets if t.base == "debian-prefix"}))


# ---- the checks ---------------------------------------------------------------------------------------------

def deb_installed(package: str) -> bool | None:
    """True/False from dpkg; None on a system without dpkg."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True).stdout
    except OSError:
        return None
    return "install ok installed" in out


def _libraries(check: str, libraries: dict[str, str], why: str) -> Result:
    """`libraries`: library name (as for ctypes.util.find_library) → the Debian package that provides it."""
    found = {lib: ctypes.util.find_library(lib) for lib in libraries}
    missing = [pkg for lib, pkg in libraries.items() if not found[lib] and not deb_installed(pkg)]
    if missing:
        return Result(check, "fail", f"{', '.join(missing)} missing ({why})", f"install {' '.join(missing)}",
                      tuple(missing))
    return Result(check, "ok", f"{', '.join(found[lib] or pkg for lib, pkg in libraries.items())} ({why})")


def check_python(need: Need) -> Result:
    try:
        import ensurepip  # noqa: F401 - `python3 -m venv` needs it; Debian ships it in python3-venv
    except ImportError:
        return Result("python", "fail", f"Python {sys.version.split()[0]} without venv/ensurepip",
                      "install python3-venv", ("python3-venv",))
    return Result("python", "ok", f"Python {sys.version.split()[0]} with venv ({sys.executable})")


def check_libraries(need: Need) -> list[Result]:
    """What the apps and backends in use take from this machine when it builds for itself."""
    results = []
    for name in sorted(need.apps):
        wanted = apps.registered()[name].host_libraries  # the check runs only for host-built boards
        if wanted:
            results.append(_libraries(f"{name}-libraries", wanted, f"bundled into --app {name} executables"))
    for name in sorted(need.backends):
        wanted = {lib: deb for t in need.host_targets for lib, deb in backends.get(name).host_libraries(t).items()}
        if wanted:
            results.append(_libraries(f"{name}-libraries", wanted, f"--backend {name} loads them here"))
    return results


def _binfmt_commands(arch: str) -> tuple[tuple[str, ...], ...]:
    mount = () if (BINFMT / "register").exists() else (("mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)),)
    # an entry the kernel holds but has disabled counts as enabled for update-binfmts: drop it, register anew
    qemu = arches.get(arch).qemu
    drop = (("update-binfmts", "--disable", qemu),) if (BINFMT / qemu).exists() else ()
    return (*mount, *drop, ("update-binfmts", "--enable", qemu))


def emulation(arch: str) -> Result:
    emulator = arches.get(arch).qemu
    entry = BINFMT / emulator
    qemu = shutil.which(f"{emulator}-static")
    enabled = entry.exists() and "enabled" in entry.read_text()
    if qemu and enabled:
        interpreter = next((ln.split()[1] for ln in entry.read_text().splitlines() if ln.startswith("interpreter")),
                           qemu)
        return Result(f"emulation-{arch}", "ok", f"{arch} programs run here through binfmt ({interpreter})")
    packages = () if qemu else ("qemu-user-static", "binfmt-support")
    what = "qemu-user-static is not installed" if not qemu else f"binfmt entry {entry} is not enabled"
    return Result(f"emulation-{arch}", "fail", f"{what}: {arch} builds run PyInstaller and the parity gate under "
                  "qemu user-mode emulation", "install qemu-user-static and enable its binfmt entry", packages,
                  _binfmt_commands(arch))


def binutils(arch: str) -> Result:
    a = arches.get(arch)
    tool = f"{a.binutils}objdump"
    found = shutil.which(tool)
    if found:
        return Result(f"binutils-{arch}", "ok", f"{found} (PyInstaller reads {arch} libraries with it)")
    return Result(f"binutils-{arch}", "fail", f"{tool} is missing (PyInstaller needs {arch} binutils)",
                  f"install {a.binutils_package}", (a.binutils_package,))


def check_emulation(need: Need) -> list[Result]:
    return [emulation(arch) for arch in need.emulated_archs]


def check_binutils(need: Need) -> list[Result]:
    return [binutils(arch) for arch in need.emulated_archs]


def check_compilers(need: Need) -> list[Result]:
    results = []
    for arch in sorted({t.arch for t in need.targets}):
        a = arches.get(arch)
        compiler, package = a.compiler, a.compiler_package
        found = shutil.which(compiler)
        results.append(Result(f"compiler-{arch}", "ok", f"{found} (builds the onefile bootloader that names a full "
                              "temporary folder)") if found else
                       Result(f"compiler-{arch}", "warn", f"{compiler} is missing: {arch} onefile builds use "
                              "PyInstaller's own bootloader, whose error on a full temporary folder names no folder",
                              f"install {package}", (package,)))
    return results


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(root, n)).st_size
            except OSError:
                pass
    return total


def cache_dir() -> Path:
    return Path(os.environ.get("EDGEPACK_CACHE") or Path.home() / ".cache" / "edgepack")


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_cache(need: Need) -> list[Result]:
    cache = cache_dir()
    try:
        return _check_cache(need, cache)
    except OSError as e:
        return [Result("cache", "fail", f"{cache}: cannot be read ({reason(e)})",
                       "set EDGEPACK_CACHE to a writable folder")]


def _being_made(partial: Path) -> bool:
    """A build environment's temporary folder (NAME.tmp-PID) whose build is still running is not debris."""
    pid = partial.name.rpartition(".tmp-")[2]
    return pid.isdigit() and Path("/proc", pid).is_dir()


def _check_cache(need: Need, cache: Path) -> list[Result]:
    base = _existing_parent(cache)
    if not base.is_dir():
        return [Result("cache", "fail", f"{cache}: cannot be created ({base} is not a folder)",
                       "set EDGEPACK_CACHE to a writable folder")]
    problem = unwritable(base)
    if problem:
        return [Result("cache", "fail", f"{cache}: {base} is not writable ({reason(problem)})",
                       "set EDGEPACK_CACHE to a writable folder")]
    envs = sorted((cache / "envs").glob("*/.ready")) if cache.is_dir() else []
    partial = sorted((cache / "envs").glob("*.tmp-*")) if cache.is_dir() else []
    unfinished = [p for p in partial if not _being_made(p)]
    in_progress = len(partial) - len(unfinished)
    names = [e.parent.name.rsplit("-", 1)[0] for e in envs]
    counted = [f"{n} ×{names.count(n)}" if names.count(n) > 1 else n for n in dict.fromkeys(names)]
    size = f"{_tree_bytes(cache) / 1e6:.0f} MB, " if need.survey and cache.is_dir() else ""
    detail = (f"{cache}: {size}{len(envs)} build environment(s)" + (f" ({', '.join(counted)})" if names else "")
              + (f", {len(unfinished)} unfinished" if unfinished else "")
              + (f", {in_progress} being made now" if in_progress else ""))
    first = [t.name for t in need.targets if not any(n == t.name or n.startswith(f"{t.name}-") for n in names)]
    if first:
        detail += f"; first build for {', '.join(first)} creates one (minutes; PyPI and the Debian mirror)"
    results = [Result("cache", "warn" if unfinished else "ok", detail,
                      f"remove {', '.join(str(u) for u in unfinished)} (left by an interrupted build)"
                      if unfinished else "")]
    free = shutil.disk_usage(base).free
    status = "fail" if free < CACHE_FAIL_BYTES and first else "warn" if free < CACHE_WARN_BYTES else "ok"
    results.append(Result("cache-space", status, f"{free / 1e9:.1f} GB free in {base}",
                          "" if status == "ok" else "free some space, or set EDGEPACK_CACHE to a roomier disk"))
    return results


def check_tmp(need: Need) -> Result:
    import tempfile

    tmp = Path(tempfile.gettempdir())
    problem = unwritable(tmp)
    if problem:
        return Result("tmp", "fail", f"{tmp} is not writable ({reason(problem)})", "set TMPDIR to a writable folder")
    free = shutil.disk_usage(tmp).free
    status = "warn" if free < TMP_WARN_BYTES else "ok"
    return Result("tmp", status, f"{free / 1e9:.1f} GB free in {tmp} (edge optimize's work folder)",
                  "set TMPDIR to a folder with room" if status != "ok" else "")


def _test_packages(name: str, packages: tuple[str, ...], why: str, ok: str) -> Result:
    missing = [p for p in packages if deb_installed(p) is False]
    if missing:
        return Result(name, "fail", f"{', '.join(missing)} missing ({why})", f"install {' '.join(missing)}",
                      tuple(missing))
    return Result(name, "ok", ok)


def check_test_audio(need: Need) -> Result:
    return _test_packages("test-audio", TEST_PACKAGES, "the tests' microphone is a private PulseAudio daemon fed "
                          "from a pipe", "PulseAudio for the tests' microphone")


def check_test_browser(need: Need) -> Result:
    return _test_packages("test-browser", TEST_BROWSER, "the kiosk page is tested in a real browser",
                          "chromium and chromedriver for the kiosk page's tests")


def check_test_packaging(need: Need) -> Result:
    return _test_packages("test-packaging", TEST_PACKAGING, "the .deb tests run lintian and install into real "
                          "Debian roots", "lintian, mmdebstrap and systemd-nspawn for the package tests")


@dataclass(frozen=True)
class Check:
    run: Callable[[Need], Result | list[Result]]
    applies: Callable[[Need], bool]


CHECKS: dict[str, Check] = {
    "python": Check(check_python, lambda n: True),
    "libraries": Check(check_libraries, lambda n: bool(n.host_targets)),
    "emulation": Check(check_emulation, lambda n: bool(n.emulated_archs)),
    "binutils": Check(check_binutils, lambda n: bool(n.emulated_archs)),
    "compilers": Check(check_compilers, lambda n: True),
    "cache": Check(check_cache, lambda n: True),
    "tmp": Check(check_tmp, lambda n: True),
    "test-audio": Check(check_test_audio, lambda n: n.tests),
    "test-browser": Check(check_test_browser, lambda n: n.tests),
    "test-packaging": Check(check_test_packaging, lambda n: n.tests),
}


def run(need: Need) -> list[Result]:
    results = []
    for check in CHECKS.values():
        if check.applies(need):
            got = check.run(need)
            results += got if isinstance(got, list) else [got]
    return results


def need_for(names: list[str] | None, tests: bool = False) -> Need:
    """Every board when none is named."""
    boards = [T.get(n) for n in names] if names else list(T.all_targets().values())
    return Need(tuple(boards), tests=tests)


# ---- fixing -------------------------------------------------------------------------------------------------

APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def fix_plan(results: list[Result]) -> tuple[list[str], list[tuple[str, ...]]]:
    """(Debian packages to install, commands to run after them) for every fixable check."""
    packages = sorted({p for r in results if r.fixable for p in r.packages})
    commands = list(dict.fromkeys(c for r in results if r.fixable for c in r.commands))
    return packages, commands


def fix_command(results: list[Result]) -> str:
    """The one command a user without root pastes (with sudo) to do what `--fix` does."""
    packages, commands = fix_plan(results)
    steps = ([f"apt-get update -qq && apt-get install -y {' '.join(packages)}"] if packages else [])
    steps += [shlex.join(c) for c in commands]
    return "sudo sh -c '" + " && ".join(steps) + "'" if steps else ""


def fix(results: list[Result], say=print) -> list[str]:
    """Install and run what the failing checks name; return the commands run. Needs root."""
    packages, commands = fix_plan(results)
    if not packages and not commands:
        return []
    if os.geteuid() != 0:
        raise SetupError(f"setting this machine up needs root: {fix_command(results)}")
    ran = []
    steps = ([("apt-get", "update", "-qq"), ("apt-get", "install", "-y", "-qq", *packages)] if packages else [])
    for cmd in [*steps, *commands]:
        if cmd[0] == "mount" and (BINFMT / "register").exists():  # installing binfmt-support mounted it
            continue
        say("running: " + " ".join(cmd))
        ran.append(" ".join(cmd))
        r = subprocess.run(cmd, env={**os.environ, **APT_ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode != 0:
            tail = " | ".join([ln for ln in r.stderr.strip().splitlines() if ln.strip()][-3:])
            raise SetupError(f"`{' '.join(cmd)}` failed ({r.returncode}): {tail or 'no message'}")
    return ran


def require(target: T.Target, app: str | None, backend: str) -> None:
    """Before a build: refuse with the doctor's line when this machine lacks what the build needs."""
    need = Need((target,), apps=frozenset({app} if app else ()), backends=frozenset({backend}), survey=False)
    _refuse(f"build for {target.name}", target.name, run(need))


def require_emulation(arch: str) -> None:
    """Before running (or packaging in) an emulated build environment of `arch`."""
    _refuse(f"run {arch} programs", "", [emulation(arch), binutils(arch)])


def _refuse(doing: str, board: str, results: list[Result]) -> None:
    failed = [r for r in results if r.status == "fail"]
    if not failed:
        return
    first = failed[0]
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    command = " ".join(["edge doctor --fix", *([board] if board else [])])
    how = f"as root, `{command}` sets it up" + (
        f" ({fix_command(failed)})" if any(r.fixable for r in failed) else f"; {first.fix}")
    raise SetupError(f"this machine cannot {doing}: {first.check}: {first.detail}{more}; {how}")
