"""The voice-command demo's stages, in order, with the command each runs (README.md's pipeline table).

    python3 demos/kws/pipeline.py                       list the stages and what each writes
    python3 demos/kws/pipeline.py run STAGE [...] --speech-commands DIR
                                                        run stages in order (`all`: every stage from 1 on)

Standard library only; each stage runs from the repository root as a module of its stage folder
(`python -m demos.kws.training.train_head`), in the environment it needs (`.venv` for edgepack's own steps, the
demo's `.venv-train` for torch). DIR: Speech Commands v0.02 (CC BY 4.0), see README.md."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KWS = Path(__file__).resolve().parent
ROOT = KWS.parent.parent
EDGE_PY = ROOT / ".venv" / "bin" / "python"
TRAIN_PY = KWS / ".venv-train" / "bin" / "python"
MINING = [KWS / ".data" / f"mining{s}" for s in (2, 4, 5)]


@dataclass(frozen=True)
class Stage:
    name: str
    what: str
    writes: str
    needs_speech: bool = False

    def commands(self, speech: str | None) -> list[list[str]]:
        return COMMANDS[self.name](speech)


COMMANDS = {
    "venv": lambda d: [[sys.executable, "-m", "venv", str(KWS / ".venv-train")],
                       [str(TRAIN_PY), "-m", "pip", "install", "-r", str(KWS / "requirements-train.txt")]],
    "negatives": lambda d: [[sys.executable, "-m", "demos.kws.data.streams", "--voices", "train", "--seed", str(s),
                             "--minutes", "60", "--out", str(out)] for s, out in zip((2, 4, 5), MINING)]
    + [[sys.executable, "-m", "demos.kws.data.streams", "--seed", "1", "--out", str(KWS / ".data" / "streams_tune")]],
    "train-head": lambda d: [[str(TRAIN_PY), "-m", "demos.kws.training.train_head", "--speech-commands", d,
                              "--negatives", *map(str, MINING)]],
    "tune-detector": lambda d: [[str(EDGE_PY), "-m", "demos.kws.assembly.tune_detector", "--speech-commands", d]],
    "bank": lambda d: [[str(EDGE_PY), "-m", "demos.kws.assembly.bank", "--speech-commands", d]],
    "assemble": lambda d: [[str(EDGE_PY), "-m", "demos.kws.assembly.assemble", "-o",
                            str(ROOT / "build" / "kws-stream")]],
    "build": lambda d: [[sys.executable, str(ROOT / "build.py")]],
    "measure": lambda d: [[str(EDGE_PY), "-m", "demos.kws.evaluation.real_stream", "--speech-commands", d],
                          [str(EDGE_PY), str(ROOT / "benchmarks" / "voice.py")]],
}

STAGES = [
    Stage("venv", "0. the demo's training environment (torch)", "demos/kws/.venv-train/"),
    Stage("negatives", "1a. keyword-free negatives and a tuning stream (synthetic voices)",
          ".data/mining*/, .data/streams_tune/"),
    Stage("train-head", "1. train the head on real speakers", "model/head.onnx, head_report.json, stream_clips.npz",
          needs_speech=True),
    Stage("tune-detector", "2. choose the detector on validation speakers", "model/detector.json", needs_speech=True),
    Stage("bank", "2a. the bank enrolled commands are measured against", "model/bank.npz, bank_report.json",
          needs_speech=True),
    Stage("assemble", "3. one streaming graph: embedding + head", "build/kws-stream/"),
    Stage("build", "4. build the executable and run it on the samples", "dist/voice-commands"),
    Stage("measure", "5. real speakers' streams and the benchmark", ".data/real_stream/, benchmarks/results/voice.json",
          needs_speech=True),
]
BY_NAME = {s.name: s for s in STAGES}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run stages in order")
    run.add_argument("stages", nargs="+", choices=[*BY_NAME, "all"])
    run.add_argument("--speech-commands", metavar="DIR", help="Speech Commands v0.02 folder (stages that read it)")
    run.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = ap.parse_args(argv)
    if args.command != "run":
        for s in STAGES:
            print(f"{s.name:<14} {s.what}  →  {s.writes}" + ("  [--speech-commands DIR]" if s.needs_speech else ""))
        return 0
    chosen = STAGES[1:] if "all" in args.stages else [s for s in STAGES if s.name in args.stages]
    missing = [s.name for s in chosen if s.needs_speech and not args.speech_commands]
    if missing:
        ap.error(f"{', '.join(missing)} read real speech: give --speech-commands DIR")
    start = time.monotonic()
    for stage in chosen:
        for cmd in stage.commands(args.speech_commands):
            print(f"[{time.monotonic() - start:7.1f}s] {stage.name}: {' '.join(cmd)}", flush=True)
            if not args.dry_run and subprocess.run(cmd, cwd=ROOT).returncode:
                print(f"pipeline.py: stage {stage.name} failed; later stages not run", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
