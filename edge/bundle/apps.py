"""Apps: what an executable runs besides the bare model. Each app names the extra runtime code, pins,
system packages and bundle rules it needs, and checks the model and its data files at build time."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx

from edge import model as M
from edge.errors import DataError, ModelError
from edge.runtime.audio import features


@dataclass(frozen=True)
class App:
    name: str
    description: str
    runtime_packages: tuple[str, ...]  # subpackages of edge/runtime staged into the executable
    pip: tuple[str, ...]  # extra pins for the build environment
    debs: tuple[str, ...]  # extra Debian packages for prefix-based (emulated) build environments
    hidden: tuple[str, ...]  # modules imported lazily, invisible to PyInstaller's analysis
    keep: tuple[str, ...]  # modules the bare runtime excludes but this app needs
    system_libraries: tuple[str, ...]  # libraries the board must provide: never bundled
    configure: Callable[[onnx.ModelProto, dict], dict]  # (model, options) -> manifest["app"]


def _read_labels(path: Path | None) -> dict:
    if path is None:
        raise DataError("the voice-commands app needs --labels FILE (JSON with a \"labels\" list, as written by "
                        "demos/kws/export.py)")
    try:
        meta = json.loads(Path(path).read_text())
    except OSError as e:
        raise DataError(f"{path}: cannot read labels ({e.strerror})") from None
    except ValueError as e:
        raise DataError(f"{path}: not JSON ({e})") from None
    meta = {"labels": meta} if isinstance(meta, list) else meta
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise DataError(f"{path}: needs a non-empty \"labels\" list of class names")
    if all(x.startswith("_") for x in labels):
        raise DataError(f"{path}: every label starts with '_' (not reported), so nothing could be detected")
    return meta


def _voice_commands(model: onnx.ModelProto, options: dict) -> dict:
    meta = _read_labels(options.get("labels"))
    labels = meta["labels"]
    ins, outs = M.inputs(model), M.outputs(model)
    want = [1, features.N_MELS, features.N_FRAMES]
    if len(ins) != 1 or list(ins[0].shape or [])[1:] != want or str(ins[0].dtype) != "float32":
        got = "; ".join(f"{s.name} {s.dtype}{list(s.shape or [])}" for s in ins)
        raise ModelError(f"the voice-commands app feeds one float32 log-mel input [N, {', '.join(map(str, want))}] "
                         f"(edge/runtime/audio/features.py); the model has {got}")
    classes = outs[0].shape[-1] if outs and outs[0].shape else None
    if classes != len(labels):
        raise ModelError(f"the model's first output {outs[0].name} {list(outs[0].shape or [])} does not give one "
                         f"score per label: {options.get('labels')} has {len(labels)} labels")
    kind = str(meta.get("output_kind", "logits"))
    return {
        "name": "voice-commands",
        "labels": labels,
        "scores": "probabilities" if kind.startswith("prob") else "logits",
        "sample_rate": features.SAMPLE_RATE,
        "window_s": features.CLIP_SAMPLES / features.SAMPLE_RATE,
        "hop_s": 0.1,
        # benchmarks/voice.py's sweep on 62 min of keyword-free speech and noise: 0.8 over 5 windows gave
        # 6.8 false alarms/h at 62% detection of held-out voices; 0.7 over 3 gave 45/h at 70%
        "threshold": options.get("threshold", 0.8),
        "thresholds": {},
        "smooth": 5,
        "refractory_s": 1.0,
    }


VOICE_COMMANDS = App(
    name="voice-commands",
    description="keyword spotting from a microphone or WAV file (log-mel front end, smoothing, refractory)",
    runtime_packages=("audio",),
    # 0.5.6: the version tested here; its PortAudio comes from the build system (libportaudio2), bundled
    pip=("sounddevice==0.5.6",),
    debs=("libportaudio2",),
    hidden=("edge.runtime.audio.app", "sounddevice", "_cffi_backend"),
    keep=("numpy.fft",),
    # ALSA must be the board's own: its configuration and plugins (pulse, dmix) are loaded from the system
    system_libraries=("libasound.so.2",),
    configure=_voice_commands,
)

APPS = {a.name: a for a in (VOICE_COMMANDS,)}
