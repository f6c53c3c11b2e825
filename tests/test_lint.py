"""The repository passes its own lint configuration (pyproject.toml [tool.ruff]): pyflakes, pycodestyle,
import order, pyupgrade and bugbear findings fail the suite instead of waiting for a reviewer."""

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
