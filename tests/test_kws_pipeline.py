"""demos/kws/pipeline.py: the demo's stages in the README's order, each with the command it runs."""

import subprocess
import sys

import numpy as np

from tests.conftest import ROOT

DRIVER = ROOT / "demos" / "kws" / "pipeline.py"
README_ORDER = ["venv", "negatives", "train-head", "tune-detector", "bank", "assemble", "build", "measure"]


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
    assert "-m demos.kws.training.train_head --speech-commands /data/speech_commands --negatives" in r.stdout
    refused = _run("run", "train-head")
    assert refused.returncode == 2 and "train-head read real speech: give --speech-commands DIR" in refused.stderr


TRAINING_HEARS = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from demos.kws import common
x, rate = common.read_wav(sys.argv[2])
np.save(sys.argv[3], common.resample(x, rate))
print(sorted(m for m in sys.modules if m == "edge" or m.startswith("edge.")))
"""


def test_training_reads_and_resamples_audio_with_the_devices_code(tmp_path):
    """A 24-bit stereo 44.1 kHz file: training's clip is what the device's reader and resampler make of it,
    and the demo loads that code without the rest of the edge package (its training environment lacks it)."""
    from edge.runtime.audio.resample import convert, to_mono
    from edge.runtime.audio.wavfile import WavReader
    from tests import wavs

    rng = np.random.default_rng(0)
    path = wavs.write(tmp_path / "x.wav", np.clip(rng.standard_normal((44100, 2)) * 0.2, -1, 1), 44100, bits=24)
    out = tmp_path / "clip.npy"
    r = subprocess.run([sys.executable, "-c", TRAINING_HEARS, ROOT, path, out],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    reader = WavReader(path)
    expected = convert(to_mono(reader.read_all()), 44100, 16000)
    reader.close()
    np.testing.assert_array_equal(np.load(out), expected)
    assert len(expected) == 16000
