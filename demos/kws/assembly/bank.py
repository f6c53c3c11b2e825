"""Step 2a (`bank`): the bank of "not a command" that enrolled commands are measured against.

    .venv/bin/python -m demos.kws.assembly.bank --speech-commands DIR      (~2 min)

Runs clips of the training speakers through the streaming model's own state (edge/runtime/audio/enrol.py's
EmbeddingTap, the code a device runs when it enrols) and keeps each clip's window vector: their `_unknown_` words
(every one), the ten built-in commands (other speech, as far as a new command is concerned) and `_silence_` noise
slices, with what each is (`words`). A benchmark enrolling one of those words drops it from the bank first
(Bank.without). Validation and test speakers stay out as everywhere. The vectors depend on the speech embedding
only, not on the head. Writes model/bank.npz (`centre`, `negatives`, `words`) and model/bank_report.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from demos.kws.common import KEYWORDS, MODEL_DIR, ROOT, SILENCE, UNKNOWN
from demos.kws.data import speech_commands as sc
from edge.runtime.audio import enrol
from edge.runtime.audio.settings import Stream
from edge.runtime.ort import OrtSession

PER_WORD = 60  # clips of each built-in command, spread over speakers
OUT = Path(MODEL_DIR) / "bank.npz"


def pick(clips: list[sc.Clip], rng: np.random.Generator) -> list[sc.Clip]:
    train = [c for c in clips if c.split == "train"]
    chosen = [c for c in train if c.label == UNKNOWN]
    for label in (*KEYWORDS, SILENCE):
        of = [c for c in train if c.label == label]
        chosen += [of[i] for i in sorted(rng.permutation(len(of))[:PER_WORD])]
    return chosen


def tap_for(model_dir: Path) -> enrol.EmbeddingTap:
    meta = json.loads((model_dir / "labels.json").read_text())
    s = meta["stream"]
    (state_in, state_out), = s["states"].items()
    session = OrtSession(model_dir / "kws_stream.onnx", threads=1)
    shapes = {i.name: i.shape for i in session.inputs()}
    outputs = [o.name for o in session.outputs()]
    stream = Stream(chunk_samples=s["chunk_samples"], audio=s["audio"], audio_samples=shapes[s["audio"]][1],
                    states=[{"input": state_in, "output": state_out, "shape": [1, *shapes[state_in][1:]]}],
                    window_samples=s["window_samples"])
    return enrol.EmbeddingTap(session, stream, outputs, state_out)


@contextlib.contextmanager
def model_tap(model: Path | None):
    """The tap of assemble.py's output folder, or of the model assembled now into a temporary one."""
    with tempfile.TemporaryDirectory() as tmp:
        if model is None:
            model = Path(tmp)
            subprocess.run([sys.executable, "-m", "demos.kws.assembly.assemble", "-o", str(model)], cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL)
        yield tap_for(model)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speech-commands", required=True, metavar="DIR",
                    help="Speech Commands v0.02 (CC BY 4.0), either layout (README.md: Data)")
    ap.add_argument("--model", type=Path, help="assemble.py's output folder (default: assembled now, in a "
                                               "temporary folder)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.monotonic()
    clips = pick(sc.scan(args.speech_commands), np.random.default_rng(args.seed))
    with model_tap(args.model) as tap:
        steps = [tap.vectors(x) for x in sc.load(clips)]
    everything = np.concatenate(steps)
    centre = everything.mean(axis=0)
    bank = enrol.Bank(centre, np.zeros((0, centre.size), np.float32))
    negatives = np.array([enrol.peak_window(bank, s) for s in steps], np.float32)
    words = np.array([c.word if c.label != SILENCE else SILENCE for c in clips])
    tmp_out = OUT.with_name(OUT.name + ".tmp")
    with open(tmp_out, "wb") as f:
        np.savez_compressed(f, centre=centre.astype(np.float32), negatives=negatives.astype(np.float16),
                            words=words)
    tmp_out.replace(OUT)
    report = {"clips": len(clips), "speakers": len({c.speaker for c in clips if c.speaker}),
              "words": {w: int((words == w).sum()) for w in sorted(set(words))}, "dimensions": int(centre.size),
              "seconds": round(time.monotonic() - t0, 1), "source": sc.CITATION}
    (OUT.parent / "bank_report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB: {len(clips)} clips of {report['speakers']} training "
          f"speakers) in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
