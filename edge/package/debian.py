"""`edge package EXE --deb`: a Debian package of an edgepack executable, built with dpkg-deb from what its
build report says (architecture, Depends, licences), optionally with a hardened systemd service, and added to
a local apt repository."""

from __future__ import annotations

import getpass
import gzip
import hashlib
import os
import shutil
import socket
import subprocess
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from edge import apps, files
from edge.errors import OutputError, SetupError, UsageError
from edge.package import built as B
from edge.package import copyright, repo, service
from edge.version import __version__

# What lintian reports of every edgepack executable, and why it is so
LINTIAN_OVERRIDES = """\
# PyInstaller's bootloader carries zlib inside: it inflates the executable's archive before any shared
# library can be loaded
@NAME@: embedded-library zlib [@EXEC@]
"""
# and of a onedir build's folder: private copies of a Python's and its wheels' libraries, loaded by this
# program only, exactly as they were verified
LINTIAN_ONEDIR = """\
# not stripped: stripping third-party libraries breaks some (numpy's OpenBLAS: "ELF load command
# address/offset not page-aligned"), and these are the bytes the build verified
@NAME@: unstripped-binary-or-object [usr/lib/@NAME@/*]
# wheels find their own libraries beside them ($ORIGIN); a Python built from source (pyenv) names its own
# lib folder, absent on a board, where the loader goes on to the bundle's folder
@NAME@: custom-library-search-path * [usr/lib/@NAME@/*]
# Python extension modules take their symbols from the interpreter that loads them
@NAME@: shared-library-lacks-prerequisites [usr/lib/@NAME@/*]
@NAME@: library-not-linked-against-libc [usr/lib/@NAME@/*]
# the bootloader's zlib and the wheels' own copies of what they were built with
@NAME@: embedded-library * [usr/lib/@NAME@/*]
"""


@dataclass
class PackageOptions:
    executable: Path
    version: str | None = None  # the package's version; default: from the build's time stamp
    service: str | None = None  # the service's flags (ARGS in /etc/default/NAME); None: no service
    maintainer: str | None = None
    repo: Path | None = None  # also add the package to this apt repository


def check_version(version: str) -> str:
    out = subprocess.run(["dpkg", "--validate-version", version], capture_output=True, text=True)
    if out.returncode != 0:
        why = out.stderr.strip().splitlines()[-1].split("bad syntax: ")[-1] if out.stderr.strip() else "invalid"
        raise UsageError(f"--version {version!r}: not a Debian version ({why})")
    return version


def default_version(b: B.Built) -> str:
    """0.YYYYMMDD.HHMMSS-1 of the build: every rebuild sorts newer, and any --version from 1 on above them."""
    built = datetime.fromisoformat(b.manifest["built"])
    return built.strftime("0.%Y%m%d.%H%M%S-1")


def default_maintainer() -> str:
    name = os.environ.get("DEBFULLNAME") or os.environ.get("NAME") or getpass.getuser()
    email = os.environ.get("DEBEMAIL") or os.environ.get("EMAIL") or f"{getpass.getuser()}@{socket.getfqdn()}"
    return f"{name} <{email}>"


def description(b: B.Built) -> tuple[str, str]:
    """(synopsis, extended description) from the manifest."""
    m, app = b.manifest, b.manifest.get("app")
    source, backend = m["model"]["source"], m["backend"]["name"]
    known = apps.registered().get(app["name"]) if app else None
    what = f"{known.synopsis}:" if known else "ONNX model"
    synopsis = f"{what} {source} on {backend} (edgepack)"
    target = m["target"]
    body = [f"One executable built by edgepack {b.report['edgepack']} for {target['name']} ({target['arch']}, glibc "
            f">= {target['glibc_floor']}): the model {m['model']['source']}, the {m['backend']['name']} runtime "
            f"and a Python interpreter, verified against onnxruntime when it was built.",
            f"Run `{b.name} --help` for its flags and `{b.name} --info` for what it holds."]
    lines = [w for paragraph in body for w in [*textwrap.wrap(paragraph, 79), "."]][:-1]
    return synopsis[:80], "\n".join(f" {line}" for line in lines)


def _changelog(name: str, version: str, maintainer: str, b: B.Built) -> bytes:
    when = format_datetime(datetime.now(UTC).replace(microsecond=0))
    text = (f"{name} ({version}) stable; urgency=medium\n\n"
            f"  * Built by edgepack {b.report['edgepack']} for {b.manifest['target']['name']} from "
            f"{b.manifest['model']['source']}\n    (sha256 {b.manifest['model']['source_sha256'][:16]}…).\n\n"
            f" -- {maintainer}  {when}\n")
    return gzip.compress(text.encode(), 9, mtime=0)


def _manpage(name: str, synopsis: str, b: B.Built) -> bytes:
    m = b.manifest
    text = (f'.TH {name.upper()} 1 "{m["built"][:10]}" "edgepack {b.report["edgepack"]}"\n.SH NAME\n{name} \\- '
            f"{synopsis.replace('-', chr(92) + '-')}\n.SH SYNOPSIS\n.B {name}\n[\\fIflags\\fR]\n.SH DESCRIPTION\n"
            f"An edgepack executable: the model {m['model']['source']} with the {m['backend']['name']} runtime.\n"
            f".B {name} \\-\\-help\nlists its flags;\n.B {name} \\-\\-info\nprints its manifest.\n"
            f".SH FILES\n/etc/default/{name} (the service's flags, when packaged with one)\n")
    return gzip.compress(text.encode(), 9, mtime=0)


def _control(name: str, version: str, arch: str, maintainer: str, depends: list[str], b: B.Built,
             installed_kib: int) -> str:
    synopsis, body = description(b)
    fields = {"Package": name, "Version": version, "Architecture": arch, "Maintainer": maintainer,
              "Installed-Size": str(installed_kib), "Depends": ", ".join(depends), "Section": "misc",
              "Priority": "optional", "Description": f"{synopsis}\n{body}"}
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


def _stage(root: Path, b: B.Built, name: str, opts: PackageOptions, maintainer: str, version: str) -> dict:
    """The package's tree under root (DEBIAN/ last: it lists the others); returns what went where."""
    synopsis = description(b)[0]
    doc = root / "usr/share/doc" / name
    doc.mkdir(parents=True)
    if b.onedir:
        shutil.copytree(b.path, root / "usr/lib" / name, symlinks=True)
        for lib in (root / "usr/lib" / name).rglob("*.so*"):  # wheels ship libraries executable; policy 8.1 not
            if lib.is_file() and not lib.is_symlink():
                os.chmod(lib, 0o644)
        (root / "usr/bin").mkdir(parents=True)
        (root / "usr/bin" / name).symlink_to(f"../lib/{name}/{name}")
        exec_path = f"/usr/lib/{name}/{name}"
    else:
        (root / "usr/bin").mkdir(parents=True)
        shutil.copyfile(b.path, root / "usr/bin" / name)
        exec_path = f"/usr/bin/{name}"
    os.chmod(root / exec_path.lstrip("/"), 0o755)
    (doc / "copyright").write_text(copyright.write(name, b.report))
    # policy 12.7: a version with a Debian revision (1.2-1) has changelog.Debian.gz, a native one (1.2) changelog.gz
    changelog = "changelog.Debian.gz" if "-" in version else "changelog.gz"
    (doc / changelog).write_bytes(_changelog(name, version, maintainer, b))
    man = root / "usr/share/man/man1"
    man.mkdir(parents=True)
    (man / f"{name}.1.gz").write_bytes(_manpage(name, synopsis, b))
    overrides = root / "usr/share/lintian/overrides"
    overrides.mkdir(parents=True)
    text = LINTIAN_ONEDIR if b.onedir else LINTIAN_OVERRIDES
    (overrides / name).write_text(text.replace("@NAME@", name).replace("@EXEC@", exec_path[1:]))
    debian = root / "DEBIAN"
    debian.mkdir()
    conffiles = []
    if opts.service is not None:
        unit_dir = root / "lib/systemd/system"
        unit_dir.mkdir(parents=True)
        (unit_dir / f"{name}.service").write_text(service.unit(name, synopsis, exec_path))
        (root / "etc/default").mkdir(parents=True)
        (root / "etc/default" / name).write_text(service.defaults(name, opts.service))
        conffiles.append(f"/etc/default/{name}")
        for script, text in service.maintainer_scripts(name).items():
            (debian / script).write_text(text)
            os.chmod(debian / script, 0o755)
    if conffiles:
        (debian / "conffiles").write_text("".join(f"{c}\n" for c in conffiles))
    return {"exec": exec_path, "conffiles": conffiles}


def _fix_modes(root: Path) -> None:
    """Folders and programs 0755, every other file 0644, whatever the umask the tree was made under: dpkg-deb
    refuses a DEBIAN/ folder outside 0755-0775, and files only their owner can read would be installed so (the
    rule of dh_fixperms)."""
    for p in [root, *root.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o755 if p.is_dir() or p.stat().st_mode & 0o111 else 0o644)


def _md5sums(root: Path, conffiles: list[str]) -> str:
    """Every file but the conffiles, whose sums dpkg keeps itself (as dh_md5sums does)."""
    lines = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not p.is_symlink() and rel.parts[0] != "DEBIAN" and f"/{rel}" not in conffiles:
            lines.append(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {rel}\n")
    return "".join(lines)


def _installed_kib(root: Path) -> int:
    return sum((p.stat().st_size + 1023) // 1024 for p in root.rglob("*") if p.is_file() and not p.is_symlink()
               and p.relative_to(root).parts[0] != "DEBIAN")


def _dpkg_deb(root: Path, out: Path) -> None:
    if not shutil.which("dpkg-deb"):
        raise SetupError("dpkg-deb is missing: as root, apt-get install -y dpkg")
    result = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(out)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise OutputError(f"dpkg-deb failed: {result.stderr.strip()[-400:]}")


def package(opts: PackageOptions, progress=print) -> dict:
    start = time.monotonic()

    def say(text: str) -> None:
        progress(f"[{time.monotonic() - start:6.1f}s] {text}")

    b = B.read(opts.executable)
    name = b.name
    arch = B.debian_arch(b.arch)
    version = check_version(opts.version) if opts.version is not None else default_version(b)
    if opts.service is not None:
        opts.service = service.check_args(opts.service)
    maintainer = opts.maintainer or default_maintainer()
    if "\n" in maintainer or "<" not in maintainer:
        raise UsageError(f"--maintainer {maintainer!r}: give 'Full Name <email>'")
    depends = B.depends(b)
    deb = b.path.parent / f"{name}_{version.split(':')[-1]}_{arch}.deb"
    report_out = deb.with_name(deb.name + ".report.json")
    files.refuse_overwriting({"package": deb, "report": report_out}, {"executable": b.path})
    say(f"packaging {b.path} ({b.report['format']}, {b.arch}) as {name} {version} {arch}; Depends: "
        f"{', '.join(depends)}")
    with files.Outputs(deb, report_out) as out:
        out.prepare()
        with files.work_folder(f".edge-package-{name}-", deb.parent) as work:
            root = work / "root"
            staged = _stage(root, b, name, opts, maintainer, version)
            kib = _installed_kib(root)
            (root / "DEBIAN/control").write_text(_control(name, version, arch, maintainer, depends, b, kib))
            (root / "DEBIAN/md5sums").write_text(_md5sums(root, staged["conffiles"]))
            security = None
            if opts.service is not None:
                security = service.security(root / "lib/systemd/system" / f"{name}.service")
                exposure = (f"exposure {security['exposure']} {security['verdict']} (0 is the most locked-down, 10 "
                            "the least)" if security["exposure"] is not None else security["output"])
                say(f"service: {name}.service, ARGS=\"{opts.service}\"; systemd-analyze security: {exposure}")
            say("dpkg-deb --build")
            _fix_modes(root)
            _dpkg_deb(root, out.temp(deb))
            report = {"edgepack": __version__, "package": str(deb), "name": name, "version": version,
                      "architecture": arch, "depends": depends, "maintainer": maintainer, "bytes": None,
                      "installed_kib": kib, "executable": {"path": str(b.path), "format": b.report["format"],
                                                           "sha256": b.report["sha256"], "installed": staged["exec"]},
                      "service": {"unit": f"/lib/systemd/system/{name}.service", "args": opts.service,
                                  "conffiles": staged["conffiles"], "security": security}
                      if opts.service is not None else None,
                      "licences": [f"{p['name']}: {p['licence']}" for p in b.report["licences"]]}
            report["bytes"] = out.temp(deb).stat().st_size
            files.write_json(report, out.temp(report_out))
            out.commit()
    if opts.repo is not None:
        report["repo"] = repo.add(opts.repo, deb, "edgepack")
        files.write_json(report, report_out)
        say(f"added to the apt repository {opts.repo} ({len(report['repo']['packages'])} package(s)); a board's "
            f"source line: {report['repo']['source_line']}")
    say(f"wrote {deb} ({report['bytes'] / 1e6:.1f} MB) and {report_out.name}")
    report["seconds"] = round(time.monotonic() - start, 1)
    return report
