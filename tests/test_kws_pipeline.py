"""demos/kws/pipeline.py: the demo's stages in the README's order, each with the command it runs."""

import subprocess
import sys

from tests.conftest import ROOT

DRIVER = ROOT / "demos" / "kws" / "pipeline.py"
README_ORDER = ["venv", "negatives", "train-head", "tune-detector", "assemble", "build", "measure"]


def _run(*args):
    return subprocess.run([sys.executable, DRIVER, *args], capture_output=True, text=True, timeout=60)


def test_lists_the_stages_in_the_readme_order():
    r = _run()
    assert r.returncode == 0 and [ln.split()[0] for ln in r.stdout.splitlines()] == README_ORDER
    readme = (ROOT / "demos" / "kws" / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in README_ORDER)


def test_all_runs_stages_one_to_five_in_order_and_needs_the_speech_folder():
    r = _run("run", "all", "--dry-run", "--speech-commands", "/data/speech_commands")
    stages = [ln.split("] ")[1].split(":")[0] for ln in r.stdout.splitlines()]
    assert r.returncode == 0 and list(dict.fromkeys(stages)) == README_ORDER[1:]
    assert "train_head.py --speech-commands /data/speech_commands --negatives" in r.stdout
    refused = _run("run", "train-head")
    assert refused.returncode == 2 and "train-head read real speech: give --speech-commands DIR" in refused.stderr
