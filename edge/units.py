"""Quantities as the tables and pages show them; shared by the printed reports (report.py) and the HTML pages
(htmlreport/)."""


def human_bytes(n) -> str:
    """1234567 → '1.2 MB' (decimal units, as file managers and the tables here show sizes)."""
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
