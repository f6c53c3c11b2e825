"""/usr/share/doc/NAME/copyright: every licence the build report names (each bundled part: Python packages,
Debian libraries, CPython, PyInstaller's bootloader) and the model card's, with their texts. Texts that
Debian ships in /usr/share/common-licenses are pointed to there, as policy 12.5 asks."""

from __future__ import annotations

COMMON = {  # a line that starts the licence's text → its file in /usr/share/common-licenses
    "GNU GENERAL PUBLIC LICENSE": "GPL",
    "GNU LESSER GENERAL PUBLIC LICENSE": "LGPL",
    "Apache License": "Apache-2.0",
}


def _text(text: str) -> str:
    """A licence text as a copyright-file field: full texts Debian ships are cut at their start and pointed to."""
    lines = text.replace("\t", "    ").splitlines()
    for i, line in enumerate(lines):
        for start, common in COMMON.items():
            if line.strip().startswith(start) and len(lines) - i > 40:
                lines = lines[:i] + [f"(the rest is the {start.title()}: see /usr/share/common-licenses/{common}*)"]
                break
        else:
            continue
        break
    return "\n".join(f" {ln}" if ln.strip() else " ." for ln in lines)


def _card(card: dict | None) -> list[str]:
    if not card:
        return []
    lines = ["", "Files: the model inside the executable",
             f"License: {card.get('licence', 'see the model card')}"]
    for key, value in card.items():
        if key != "licence":
            lines.append(f" {key}: {value}")
    return lines


def write(name: str, report: dict) -> str:
    """The copyright file's text."""
    edgepack = report["edgepack"]
    # free-form (not the machine-readable format: its Files fields are paths, and every part here is inside one)
    out = [f"Upstream-Name: {name}",
           f"Comment: /usr/bin/{name} is one executable that edgepack {edgepack} built from the parts below;",
           " each keeps its own licence. The model's licence is its maker's (the model card).", "",
           "Files: *", "Copyright: the authors of each part named below",
           "License: various", " See the paragraphs below, one per part of the executable."]
    app = report["manifest"].get("app") or {}
    out += _card(app.get("settings", {}).get("model_card"))
    for part in report["licences"]:
        version = f" {part['version']}" if part.get("version") else ""
        out += ["", f"Files: the {part['part']} {part['name']}{version}", "Copyright: its authors",
                f"License: {part['licence'].strip().splitlines()[0]}"]
        for file, text in part["texts"].items():
            out += [f" From {file}:", " ."] + [_text(text)] + [" ."]
        if not part["texts"]:
            out.append(" (its distribution carries no licence file)")
    return "\n".join(ln.rstrip() for ln in out) + "\n"
