"""The sections of an `edge build` report: the executable, what it is made of, the glibc each file needs."""

from __future__ import annotations

from pathlib import Path

from edge.htmlreport import charts
from edge.htmlreport.page import (
    Raw,
    chart_grid,
    dig,
    facts,
    fmt_bytes,
    fmt_num,
    fmt_share,
    num,
    para,
    part,
    records,
    section,
    table,
)

GLIBC_CHART_FILES = 25


def title(report: dict) -> str:
    return f"edge build: {Path(str(report.get('output') or 'executable')).name}"


def build_sections(report: dict) -> list[Raw]:
    return [executable_section(report), commands_section(report), components_section(report),
            relink_section(report), elf_section(report)]


def executable_section(report: dict) -> Raw:
    target = part(report, "target")
    verified = part(report, "verification")
    sha = report.get("sha256")
    parts = [facts([
        ("executable", report.get("output")),
        ("format", report.get("format")),
        ("size", fmt_bytes(report.get("bytes")) if report.get("bytes") is not None else None),
        ("sha256", f"{sha[:16]}…" if isinstance(sha, str) else None),
        ("target", f"{target.get('name', '–')} ({target.get('arch', '–')})" if target else None),
        ("glibc allowed", target.get("glibc_floor")),
        ("board", target.get("description")),
        ("backend", " ".join(str(dig(report, "backend", k)) for k in ("name", "version")
                             if dig(report, "backend", k)) or None),
        ("app", dig(report, "app", "name")),
        ("bootloader", bootloader_text(report.get("bootloader"))),
        ("verified", f"{verified.get('samples', '–')} samples, max relative difference "
                     f"{fmt_num(verified.get('max_rel_diff'), '.2g')}" if verified else None),
        ("build time", f"{fmt_num(report.get('total_seconds'), '.1f')} s"
         if report.get("total_seconds") is not None else None),
    ])]
    steps = report.get("step_seconds")
    if isinstance(steps, dict) and steps:
        parts += [Raw("<h3>time per step</h3>"),
                  table(["step", "seconds"], [[k, fmt_num(v, ".1f")] for k, v in steps.items()], numeric={1})]
    return section("Executable", *parts, section_id="executable")


def commands_section(report: dict) -> Raw:
    """The voice app's commands enrolled at build time (--commands DIR) and what to expect of each."""
    commands = records(dig(report, "app", "commands"))
    if not commands:
        return Raw("")
    rows = []
    for c in commands:
        confused = ", ".join(f"{x.get('label')} ({fmt_share(x.get('overlap'))})"
                             for x in records(c.get("confusable"))) or "–"
        hit = fmt_share(c.get("hit_rate")) if c.get("hit_rate") is not None else "n/a (one recording)"
        rows.append([c.get("label"), len(c.get("recordings") or []) or c.get("takes"), hit,
                     fmt_share(c.get("false_accepts")), fmt_num(c.get("threshold"), ".2f"), confused])
    bank = part(report, "app", "bank")
    note = para(f"expected hit rate: each recording left out in turn and scored against the others; false accepts: "
                f"the share of the bundled bank of other speech ({bank.get('vectors', '–')} recordings) that a "
                "command accepts, on the half of the bank that did not set its threshold", "muted")
    return section("Your own commands", table(["command", "recordings", "expected hit rate", "false accepts",
                                               "threshold", "may be confused with"], rows, numeric={1, 2, 3, 4}),
                   note, section_id="commands")


def bootloader_text(boot) -> str | None:
    if isinstance(boot, dict):
        needs = f" (needs glibc {boot['glibc_needed']})" if boot.get("glibc_needed") else ""
        return f"{boot.get('bootloader', '–')}{needs}"
    return None if boot is None else str(boot)


def components_section(report: dict) -> Raw:
    """Compressed bytes per component (contents.inspect's sums over the archive entries), as a chart and a table."""
    parts = report.get("components")
    sized = sorted(((str(k), num(v)) for k, v in parts.items() if num(v)), key=lambda kv: -kv[1]) \
        if isinstance(parts, dict) else []
    if not sized:
        return Raw("")
    total = sum(v for _, v in sized)
    chart = charts.hbar_chart([k for k, _ in sized], [v / 1e6 for _, v in sized], "components",
                              "size by component", "compressed size (MB)", "{:.2f}")
    rows = [[k, fmt_bytes(v), f"{v / total:.1%}"] for k, v in sized] + [["all", fmt_bytes(total), "100%"]]
    entries = report.get("bundle_entries")
    note = para(f"{entries} archive entries, sizes as stored (compressed)" if entries else
                "sizes as stored (compressed)", "muted")
    return section("Inside the executable", chart_grid(chart, table(["component", "size", "share"], rows,
                                                                    numeric={1, 2})), note, section_id="bundle")


def relink_section(report: dict) -> Raw:
    """A backend library rewritten at build time (MXNet's aarch64 libmxnet.so): what changed, from which packages."""
    relink = part(report, "backend", "relink")
    if not relink:
        return Raw("")
    replaced = relink.get("replaced") if isinstance(relink.get("replaced"), dict) else {}
    debian = relink.get("debian") if isinstance(relink.get("debian"), dict) else {}
    return section("Libraries relinked at build time", facts([
        ("library", relink.get("library")),
        ("BLAS", relink.get("blas_what") or relink.get("blas")),
        ("replaced", ", ".join(f"{a} → {b}" for a, b in replaced.items()) or None),
        ("removed", ", ".join(map(str, relink.get("removed") or [])) or None),
        ("added", ", ".join(map(str, relink.get("added") or [])) or None),
        ("patchelf", relink.get("patchelf")),
    ]), table(["Debian package", "version"], [[k, v or "–"] for k, v in debian.items()]), section_id="relink")


def needing_glibc(report: dict) -> list[tuple[str, str]]:
    """(file, glibc version) for every ELF file that needs one, newest version first."""
    per_file = dig(report, "glibc", "per_file", default={})
    found = [(str(name), str(info["glibc"])) for name, info in per_file.items()
             if isinstance(info, dict) and info.get("glibc")] if isinstance(per_file, dict) else []
    return sorted(found, key=lambda nv: (-charts.version_value(nv[1]), nv[0]))


def glibc_floor(report: dict) -> str | None:
    return dig(report, "target", "glibc_floor") or dig(report, "glibc", "glibc_floor")


def glibc_figure(report: dict) -> Raw | None:
    found = needing_glibc(report)
    if not found:
        return None
    shown = found[:GLIBC_CHART_FILES]
    more = f"; {len(found) - len(shown)} more need older versions (table below)" if len(found) > len(shown) else ""
    return charts.glibc_chart([n for n, _ in shown], [v for _, v in shown], glibc_floor(report),
                              caption=f"the {len(shown)} files needing the newest glibc{more}")


def elf_section(report: dict) -> Raw:
    """What each ELF file needs: the newest glibc versions as a chart beside the verdict, then every file."""
    result = report.get("glibc")
    if not isinstance(result, dict):
        return Raw("")
    per_file = result.get("per_file") if isinstance(result.get("per_file"), dict) else {}
    verdict = [para(f"the bundle needs glibc {result.get('glibc_needed') or 'none'}, the target allows "
                    f"{glibc_floor(report) or '–'}; {result.get('elf_files', len(per_file))} ELF files, "
                    f"{len(needing_glibc(report))} of them need glibc")]
    verdict += [para(f"{what}: {', '.join(map(str, result[key]))}", "warn")
                for key, what in (("too_new", "too new"), ("wrong_arch", "wrong architecture")) if result.get(key)]
    libs = result.get("system_libraries")
    if libs:
        verdict.append(para(f"needed from the board's system: {', '.join(map(str, libs))}", "muted"))
    order = {name: i for i, (name, _) in enumerate(needing_glibc(report))}
    names = sorted(per_file, key=lambda n: (order.get(n, len(order)), n))
    rows = [[n, dig(per_file, n, "glibc") or "none", dig(per_file, n, "arch") or "–",
             ", ".join(map(str, dig(per_file, n, "needed") or []))] for n in names]
    files = table(["file", "glibc", "arch", "libraries needed"], rows, wide={0, 3}) if rows else ""
    return section("ELF files and glibc", chart_grid(glibc_figure(report), Raw("<div>" + "".join(verdict) + "</div>")),
                   files, section_id="elf")
