"""PyInstaller's onefile bootloader, rebuilt from its own source with one change: when unpacking fails (a full
or read-only temporary folder), it says so in one line that names the folder and the operating system's reason,
and removes the half-unpacked `_MEI*` folder. The stock bootloader prints "Failed to extract X: decompression
resulted in return code -1!" and leaves the folder behind, which fills a board's small /tmp a little more on
every start.

The source is PyInstaller's sdist from PyPI (the same version the build environment runs, GPL-2.0 with the
bootloader exception, which allows shipping the bootloader with any program). It is compiled once per
architecture with the host's gcc (x86_64) or Debian's aarch64 cross gcc, with zlib built in, and cached."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import sys
import tarfile
from pathlib import Path

from edge import arches
from edge.bundle.proc import run_logged
from edge.errors import BuildError

# (file, text, replacement): each must match exactly once, so a new PyInstaller version fails loudly here
PATCHES = [
    ("src/pyi_archive.c", '#include "zlib.h"\n',
     '#include "zlib.h"\n#include <errno.h>\n\n/* errno of the first failed write while unpacking; 0: none */\n'
     'int pyi_archive_write_errno = 0;\n'),
    ("src/pyi_archive.c",
     "                if (fwrite(buffer_out, 1, out_len, out_fp) != out_len || ferror(out_fp)) {\n"
     "                    rc = Z_ERRNO;\n",
     "                if (fwrite(buffer_out, 1, out_len, out_fp) != out_len || ferror(out_fp)) {\n"
     "                    pyi_archive_write_errno = errno ? errno : EIO;\n"
     "                    rc = Z_ERRNO;\n"),
    ("src/pyi_archive.c",
     "    } else {\n        PYI_ERROR(\"Failed to extract %s: decompression resulted in return code %d!\\n\", "
     "toc_entry->name, rc);\n",
     "    } else {\n        if (rc != Z_ERRNO) {\n            PYI_ERROR(\"Failed to extract %s: decompression "
     "resulted in return code %d!\\n\", toc_entry->name, rc);\n        }\n"),
    ("src/pyi_archive.c",
     "        if (fwrite(buffer, chunk_size, 1, out_fp) < 1) {\n"
     "            PYI_PERROR(\"fwrite\", \"Failed to extract %s: failed to write data chunk!\\n\", toc_entry->name);\n",
     "        if (fwrite(buffer, chunk_size, 1, out_fp) < 1) {\n"
     "            pyi_archive_write_errno = errno ? errno : EIO;\n"),
    ("src/pyi_archive.c",
     "    if (out_fp == NULL) {\n"
     "        PYI_PERROR(\"fopen\", \"Failed to extract %s: failed to open target file!\\n\", toc_entry->name);\n",
     "    if (out_fp == NULL) {\n        pyi_archive_write_errno = errno ? errno : EIO;\n"),
    ("src/pyi_archive.c", "    fclose(out_fp);\n\n    return rc;\n",
     "    /* buffered data is written here: a full disk may only show now */\n"
     "    if (fclose(out_fp) != 0 && rc == 0) {\n        pyi_archive_write_errno = errno ? errno : EIO;\n"
     "        rc = -1;\n    }\n\n    return rc;\n"),
    ("src/pyi_launch.c", '#include "pyi_multipkg.h"\n',
     '#include "pyi_multipkg.h"\n#include <errno.h>\n\nextern int pyi_archive_write_errno;\n'),
    ("src/pyi_launch.c",
     "        if (retcode != 0) {\n            PYI_ERROR(\"Failed to extract entry: %s.\\n\", toc_entry->name);\n",
     "        if (retcode != 0 && pyi_archive_write_errno) {\n"
     "            char folder[PYI_PATH_MAX];\n            char *slash;\n"
     "            snprintf(folder, PYI_PATH_MAX, \"%s\", pyi_ctx->application_home_dir);\n"
     "            slash = strrchr(folder, '/');\n            if (slash && slash != folder) {\n"
     "                *slash = 0;\n            }\n"
     "            fprintf(stderr, \"%s: error: cannot unpack into the temporary folder %s: %s; free space there or "
     "set TMPDIR to a folder with room\\n\", "
     "strrchr(pyi_ctx->executable_filename, '/') ? strrchr(pyi_ctx->executable_filename, '/') + 1 : "
     "pyi_ctx->executable_filename, folder, strerror(pyi_archive_write_errno));\n            break;\n        }\n"
     "        if (retcode != 0) {\n            PYI_ERROR(\"Failed to extract entry: %s.\\n\", toc_entry->name);\n"),
    ("src/pyi_main.c",
     "    if (pyi_launch_extract_files_from_archive(pyi_ctx) < 0) {\n"
     "        PYI_DEBUG(\"LOADER: failed to extract files!\\n\");\n",
     "    if (pyi_launch_extract_files_from_archive(pyi_ctx) < 0) {\n"
     "        PYI_DEBUG(\"LOADER: failed to extract files!\\n\");\n"
     "        pyi_recursive_rmdir(pyi_ctx->application_home_dir);  /* never leave half an unpacked _MEI folder */\n"),
    # after the app exited, a late second Ctrl-C (or SIGTERM) must not kill the bootloader while it removes the
    # unpacked folder: ignored until the end, and the default restored only to re-raise the app's own signal
    ("src/pyi_utils_posix.c",
     "    PYI_DEBUG(\"LOADER: restoring signal handlers\\n\");\n"
     "    for (signum = 0; signum < num_signals; ++signum) {\n        signal(signum, SIG_DFL);\n    }\n",
     "    PYI_DEBUG(\"LOADER: restoring signal handlers\\n\");\n"
     "    for (signum = 0; signum < num_signals; ++signum) {\n        signal(signum, SIG_DFL);\n    }\n"
     "    signal(SIGINT, SIG_IGN);\n    signal(SIGTERM, SIG_IGN);\n"),
    ("src/pyi_main.c", "        raise(pyi_ctx->child_signal);\n",
     "        signal(pyi_ctx->child_signal, SIG_DFL);\n        raise(pyi_ctx->child_signal);\n"),
]


def _key() -> str:
    """Changes with the patch, so a changed patch is compiled again."""
    return hashlib.sha256(repr(PATCHES).encode()).hexdigest()[:12]


def _extract(archive: Path, dest: Path) -> None:
    """Only files, folders and links that stay inside `dest`. tarfile's "data" filter does that from Python
    3.11.4; Debian 12's Python is 3.11.2, so there the same refusals are made here."""
    with tarfile.open(archive) as t:
        if hasattr(tarfile, "data_filter"):
            t.extractall(dest, filter="data")
            return
        for member in t.getmembers():
            if not _stays_inside(member):
                raise BuildError(f"{archive}: {member.name!r} is not a file, folder or link inside the archive")
        t.extractall(dest)


def _stays_inside(member: tarfile.TarInfo) -> bool:
    names = [member.name]
    if member.issym():  # relative to the link's own folder
        names.append(posixpath.join(posixpath.dirname(member.name), member.linkname))
    elif member.islnk():  # relative to the archive's top
        names.append(member.linkname)
    elif not (member.isfile() or member.isdir()):
        return False
    return all(not name.startswith("/") and not posixpath.normpath(name).startswith("..") for name in names)


def _source(version: str, cache: Path, log: Path, progress) -> Path:
    src = cache / f"pyinstaller-{version}-{_key()}"
    if (src / ".patched").exists():
        return src
    shutil.rmtree(src, ignore_errors=True)
    downloads = cache / "sdist"
    run_logged([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                "-d", downloads, f"pyinstaller=={version}"], log, "downloading PyInstaller's source", progress)
    archive = next(downloads.glob(f"pyinstaller-{version}.tar.gz"), None)
    if archive is None:
        raise BuildError(f"PyInstaller {version}'s source archive was not downloaded; see {log}")
    unpacked = cache / "unpack"
    shutil.rmtree(unpacked, ignore_errors=True)
    _extract(archive, unpacked)
    os.replace(unpacked / f"pyinstaller-{version}", src)
    boot = src / "bootloader"
    for rel, old, new in PATCHES:
        text = (boot / rel).read_text()
        if text.count(old) != 1:
            raise BuildError(f"the bootloader patch does not fit PyInstaller {version} ({rel}); pin the version "
                             "in the target file that edge/bundle/bootloader.py was written for")
        (boot / rel).write_text(text.replace(old, new))
    (src / ".patched").write_text("")
    return src


def missing_compiler(arch: str) -> str | None:
    a = arches.get(arch)
    if shutil.which(a.compiler) is None:
        return f"no {a.compiler}: as root, `edge doctor --fix` installs it ({a.compiler_package})"
    return None


def build(version: str, arch: str, cache: Path, log: Path, progress) -> Path:
    """The patched onefile bootloader (`run`) for `arch`, built once and cached."""
    out = cache / f"bootloader-{version}-{arch}-{_key()}" / "run"
    if out.is_file():
        return out
    problem = missing_compiler(arch)
    if problem:
        raise BuildError(problem)
    compiler = arches.get(arch).compiler
    src = _source(version, cache, log, progress)
    boot = src / "bootloader"
    shutil.rmtree(boot / "build", ignore_errors=True)
    env = {"PATH": "/usr/bin:/bin", "CC": compiler}
    # the architecture is the compiler's own (waf's --target-arch would add -m64, which aarch64 gcc refuses)
    run_logged([sys.executable, "./waf", "--static-zlib", "--no-tests", "configure", "build_release"],
               log, f"compiling PyInstaller's bootloader for {arch}", progress, env=env, cwd=boot)
    built = next((boot / "build").rglob("release/run"), None)
    if built is None:
        raise BuildError(f"the bootloader build wrote no 'run'; see {log}")
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(built, out)
    return out


def install(bootloader: Path, pyinstaller_package: Path, arch: str) -> None:
    """Put the patched `run` where PyInstaller takes it from, inside the build environment."""
    target = pyinstaller_package / "bootloader" / arches.get(arch).bootloader_folder / "run"
    if not target.parent.is_dir():
        raise BuildError(f"no PyInstaller bootloader folder {target.parent} in the build environment")
    stock = target.with_name("run.stock")
    if not stock.exists():
        shutil.copy2(target, stock)
    shutil.copy2(bootloader, target)


def restore(pyinstaller_package: Path, arch: str) -> None:
    """PyInstaller's own bootloader back in place (an environment shared with a board of an older glibc)."""
    target = pyinstaller_package / "bootloader" / arches.get(arch).bootloader_folder / "run"
    stock = target.with_name("run.stock")
    if stock.exists():
        shutil.copy2(stock, target)
