"""The repository passes its own lint configuration (pyproject.toml [tool.ruff]): pyflakes, pycodestyle,
import order, pyupgrade and bugbear findings fail the suite instead of waiting for a reviewer."""

import ast
import graphlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.fail("ruff is not installed next to this Python: run `python3 build.py test` (test extras)")
    r = subprocess.run([ruff, "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, f"ruff check found problems:\n{r.stdout}{r.stderr}"


def _imports(package: Path) -> dict[str, set[str]]:
    """Module → the package's modules it imports, lazy imports inside functions included; `from pkg import x`
    counts as pkg.x when x is a module, else as pkg itself."""
    files = {".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in package.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                here = name.split(".") + ([""] if path.name == "__init__.py" else [])
                parent = here[:len(here) - node.level] if node.level else []
                base = ".".join(parent + [node.module or ""]).strip(".")
                subs = {f"{base}.{a.name}" for a in node.names}
                found.update(subs if subs <= files.keys() else subs & files.keys() | {base})
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def test_edge_has_no_import_cycles():
    # a cycle makes rooms that cannot be understood, tested or moved apart: cut it with a small module both
    # sides import, or by passing in what the callee would fetch
    try:
        tuple(graphlib.TopologicalSorter(_imports(ROOT / "edge")).static_order())
    except graphlib.CycleError as e:
        pytest.fail("import cycle: " + " → ".join(e.args[1]))


def test_the_cycle_check_finds_a_cycle(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/__init__.py").write_text("")
    (tmp_path / "pkg/a.py").write_text("from pkg import b\n")
    (tmp_path / "pkg/b.py").write_text("def f():\n    from . import a  # lazy, still a cycle\n")
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter(_imports(tmp_path / "pkg")).static_order())
