"""The systemd service of a package: the unit, its /etc/default flags file (a conffile) and the maintainer
scripts, written as debhelper's dh_installsystemd writes them (its autoscripts, bookworm's debhelper 13.11:
enable and start on install, restart on upgrade, stop on remove, forget on purge), so the package behaves like
every other service on the board without needing debhelper to build."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from edge.errors import UsageError

RESOURCES = Path(__file__).parent / "resources"

# debhelper's autoscripts with #UNITFILE(S)# as #UNIT#: resources/postinst.in is postinst-systemd-enable and
# postinst-systemd-restart (restart after upgrade), prerm.in is prerm-systemd-restart, postrm.in is
# postrm-systemd-reload-only and postrm-systemd, then the purge of the unit's StateDirectory=
SCRIPTS = ("postinst", "prerm", "postrm")


def check_args(args: str) -> str:
    """--service ARGS goes into a double-quoted EnvironmentFile value, split at white space by `$ARGS`."""
    if re.search(r'["\\$`\n\r]', args):
        raise UsageError(f"--service {args!r}: the flags cannot hold quotes, backslashes, '$', '`' or line breaks "
                         "(they are written to /etc/default/NAME as ARGS=\"...\")")
    return args.strip()


def unit(name: str, description: str, exec_path: str) -> str:
    text = (RESOURCES / "service.in").read_text()
    return text.replace("@NAME@", name).replace("@DESCRIPTION@", description).replace("@EXEC@", exec_path)


def defaults(name: str, args: str) -> str:
    return (RESOURCES / "default.in").read_text().replace("@NAME@", name).replace("@ARGS@", args)


def maintainer_scripts(name: str) -> dict[str, str]:
    """{script: text}: what dh_installsystemd would add to each, in a script of its own."""
    def filled(script: str) -> str:
        return (RESOURCES / f"{script}.in").read_text().replace("#UNIT#", f"{name}.service").replace("#NAME#", name)

    return {script: f"#!/bin/sh\nset -e\n# Automatically added by edge package (debhelper's dh_installsystemd "
                    f"snippets)\n{filled(script)}# End automatically added section\n" for script in SCRIPTS}


def security(unit_path: Path) -> dict:
    """`systemd-analyze security --offline` of the unit: its overall exposure (0 best … 10 worst) and verdict."""
    if not shutil.which("systemd-analyze"):
        return {"exposure": None, "verdict": None, "output": "systemd-analyze is not installed (package systemd)"}
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit_path)],
                         capture_output=True, text=True)
    found = re.search(r"Overall exposure level for \S+: ([\d.]+) (\S+)", out.stdout + out.stderr)
    if not found:
        return {"exposure": None, "verdict": None, "output": (out.stderr or out.stdout).strip()[-400:]}
    return {"exposure": float(found.group(1)), "verdict": found.group(2)}
