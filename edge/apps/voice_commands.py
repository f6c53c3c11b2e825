"""The voice-commands app: keyword spotting from a microphone or WAV file. Build time: checks the model against
its labels file (class names, an optional streaming contract and detector) and writes the app's settings into
the manifest; run time: edge/runtime/audio."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from edge import own_commands
from edge.apps import App, BuildOption
from edge.errors import DataError, ModelError
from edge.files import check_readable_file

if TYPE_CHECKING:  # loaded by configure only: `edge doctor` reads this module before numpy and onnx exist
    import onnx


def _read_labels(path: Path | None) -> dict:
    if path is None:
        raise DataError("the voice-commands app needs --labels FILE (JSON with a \"labels\" list, as written by "
                        "demos/kws/assembly/assemble.py)")
    check_readable_file(Path(path), "labels", DataError)
    if Path(path).stat().st_size > MAX_LABELS_BYTES:
        raise DataError(f"{path}: {Path(path).stat().st_size:,} bytes is no labels file (at most "
                        f"{MAX_LABELS_BYTES:,})")
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
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise DataError(f"{path}: label(s) {', '.join(map(repr, twice))} appear more than once")
    _check_detector(meta.get("detector"), path)
    return meta


DETECTOR_LIMITS = {"threshold": (0.0, 1.0, False), "smooth": (1, 100, True), "refractory_s": (0.0, 60.0, False)}


def _check_detector(detector, path) -> None:
    if detector is None:
        return
    if not isinstance(detector, dict):
        raise DataError(f"{path}: \"detector\" must be an object")
    for key, (low, high, integer) in DETECTOR_LIMITS.items():
        if key not in detector:
            continue
        v = detector[key]
        ok = isinstance(v, int if integer else (int, float)) and not isinstance(v, bool) and low <= v <= high
        if not ok or (key == "threshold" and v == 0):
            raise DataError(f"{path}: \"detector\": {key} {v!r} must be {'an integer' if integer else 'a number'} "
                            f"in {'(' if key == 'threshold' else '['}{low}, {high}]")


MAX_LABELS_BYTES = 1 << 20


def _shape(spec) -> str:
    return f"{spec.name} {spec.dtype}{list(spec.shape or [])}"


def _stream(meta: dict, ins: list, outs: list, path) -> tuple[dict, set[str]]:
    """The streaming contract: one call per step of `chunk_samples` new samples; the audio input gets the
    last samples, each state input the previous call's matching output (zeros at the start)."""
    from edge.runtime.audio import features

    s = meta["stream"]
    by_in, by_out = {i.name: i for i in ins}, {o.name: o for o in outs}
    if not isinstance(s, dict) or not isinstance(s.get("chunk_samples"), int) or s["chunk_samples"] <= 0:
        raise DataError(f"{path}: \"stream\" needs a positive integer \"chunk_samples\"")
    audio = by_in.get(s.get("audio"))
    if audio is None or len(audio.shape or []) != 2 or not isinstance(audio.shape[1], int) \
            or audio.shape[1] < s["chunk_samples"]:
        raise ModelError(f"the stream contract in {path} names the audio input {s.get('audio')!r}: the model needs "
                         f"it as float32 [N, samples >= {s['chunk_samples']}]")
    states = []
    for i_name, o_name in dict(s.get("states") or {}).items():
        i, o = by_in.get(i_name), by_out.get(o_name)
        if i is None or o is None or list(i.shape or [])[1:] != list(o.shape or [])[1:] \
                or not all(isinstance(d, int) for d in list(i.shape or [])[1:]):
            raise ModelError(f"the stream contract in {path} carries state {i_name} -> {o_name}: the model needs "
                             "an input and an output of that name with the same static shape")
        states.append({"input": i_name, "output": o_name, "shape": [1, *i.shape[1:]]})
    window = s.get("window_samples", features.CLIP_SAMPLES)
    if not isinstance(window, int) or window < s["chunk_samples"]:
        raise DataError(f"{path}: \"stream\": \"window_samples\" (the audio each score depends on) must be an "
                        f"integer >= chunk_samples")
    fed = {audio.name, *(x["input"] for x in states)}
    return {"chunk_samples": s["chunk_samples"], "audio": audio.name, "audio_samples": audio.shape[1],
            "states": states, "window_samples": window}, fed


MIN_BANK = 50  # vectors of other speech: fewer cannot set a threshold at 0.2 % false accepts


def _enrol(meta: dict, stream: dict | None, path) -> dict | None:
    """What enrolling commands needs: a state output holding embeddings [1, K, D] and a bank of D-dimensional
    vectors beside the labels file (edge/runtime/audio/enrol.py)."""
    import numpy as np

    e = meta.get("enrol")
    if e is None:
        return None
    if not isinstance(e, dict) or not isinstance(e.get("state"), str) or not isinstance(e.get("bank"), str):
        raise DataError(f"{path}: \"enrol\" needs \"state\" (a state output) and \"bank\" (a file beside it)")
    states = {s["output"]: s["shape"] for s in (stream or {}).get("states", [])}
    if e["state"] not in states or len(states[e["state"]]) != 3:
        raise ModelError(f"{path}: \"enrol\": {e['state']!r} must be one of the stream's state outputs, shaped "
                         "[1, K, D] (K embeddings of D numbers)")
    bank = Path(path).parent / e["bank"]
    check_readable_file(bank, "enrolment bank", DataError)
    try:
        with np.load(bank) as z:
            centre, negatives = z["centre"], z["negatives"]
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{bank}: not a bank of \"centre\" and \"negatives\" arrays ({err})") from None
    d = states[e["state"]][-1]
    if centre.shape != (d,) or negatives.ndim != 2 or negatives.shape[1] != d or len(negatives) < MIN_BANK \
            or not (np.isfinite(centre).all() and np.isfinite(negatives).all()):
        raise DataError(f"{bank}: needs centre [{d}] and at least {MIN_BANK} finite negatives [N, {d}] for the "
                        f"state {e['state']}; has {list(centre.shape)} and {list(negatives.shape)}")
    return {"state": e["state"], "bank": BANK_FILE, "source": bank}


BANK_FILE, COMMANDS_FILE = "bank.npz", "commands.json"  # their names inside the executable


def _builtins(given: str | None, labels: list[str]) -> list[str] | None:
    """--builtin all|none|a,b,…: the model's commands that stay reported."""
    keywords = [k for k in labels if not k.startswith("_")]
    if given in (None, "all"):
        return None
    chosen = [] if given == "none" else [w.strip() for w in given.split(",") if w.strip()]
    unknown = [w for w in chosen if w not in keywords]
    if unknown or (given != "none" and not chosen):
        raise DataError(f"--builtin {given}: give all, none or some of {','.join(keywords)}"
                        + (f" (not the model's: {', '.join(unknown)})" if unknown else ""))
    return chosen


def _kept(labels: list[str], builtins: list[str] | None) -> list[str]:
    return [k for k in labels if not k.startswith("_") and (builtins is None or k in builtins)]


def _stage(settings: dict, options: dict, model: Path, payload: Path, say) -> tuple[dict, dict | None]:
    """The bank (and the commands of --commands DIR, enrolled through the optimized model) into the executable."""
    if not settings.get("enrol"):
        return settings, None
    import numpy as np

    from edge.runtime.audio.enrolled import write_commands

    meta = _read_labels(options["labels"])
    bank = Path(options["labels"]).parent / meta["enrol"]["bank"]
    shutil.copyfile(bank, payload / BANK_FILE)
    with np.load(bank) as z:
        section = {"bank": {"file": str(bank), "vectors": int(len(z["negatives"]))}, "commands": []}
    if options.get("commands"):
        kept = _kept(settings["labels"], settings.get("builtins"))
        commands, section["commands"] = own_commands.enrol_folder(Path(options["commands"]), kept, model, settings,
                                                                  bank, say)
        write_commands(payload / COMMANDS_FILE, commands)
        settings = {**settings, "enrol": {**settings["enrol"], "commands": COMMANDS_FILE}}
    return settings, section


def _voice_commands(model: onnx.ModelProto, options: dict) -> dict:
    from edge import model as M
    from edge.runtime.audio import features
    from edge.runtime.audio.settings import VoiceSettings

    logmel_shape = [1, features.N_MELS, features.N_FRAMES]  # an input fed the log-mel of the last second
    meta = _read_labels(options.get("labels"))
    labels, path = meta["labels"], options.get("labels")
    ins, outs = M.inputs(model), M.outputs(model)
    stream, fed = _stream(meta, ins, outs, path) if "stream" in meta else (None, set())
    logmel = [i for i in ins if i.name not in fed]
    if len(logmel) > 1 or (not stream and not logmel) or any(
            list(i.shape or [])[1:] != logmel_shape or str(i.dtype) != "float32" for i in logmel):
        besides = " besides the stream's audio and states" if stream else ""
        raise ModelError(f"the voice-commands app feeds one float32 log-mel input "
                         f"[N, {', '.join(map(str, logmel_shape))}] (edge/runtime/audio/features.py){besides}; the "
                         f"model has "
                         f"{'; '.join(_shape(s) for s in ins)}")
    scores = outs[0]
    classes = scores.shape[-1] if scores.shape else None
    if classes != len(labels):
        raise ModelError(f"the model's first output {scores.name} {list(scores.shape or [])} does not give one "
                         f"score per label: {path} has {len(labels)} labels")
    kind = str(meta.get("output_kind", "logits"))
    builtins = _builtins(options.get("builtin"), labels)
    enrolment = _enrol(meta, stream, path)
    if options.get("commands") and not enrolment:
        raise DataError(f"--commands: {path} has no \"enrol\" section, so this model cannot hear enrolled commands")
    if options.get("commands"):
        own_commands.check_folder(Path(options["commands"]), _kept(labels, builtins))
    if builtins == [] and not options.get("commands") and not enrolment:
        raise DataError("--builtin none leaves nothing to hear: this model cannot enrol commands")
    # benchmarks/voice.py's sweep on 62 min of keyword-free speech and noise: for the DS-CNN alone, 0.8 over 5
    # windows gave 6.8 false alarms/h at 62% detection of held-out voices; a model may bring its own
    detector = {"threshold": 0.8, "smooth": 5, "refractory_s": 1.0, **dict(meta.get("detector") or {})}
    return VoiceSettings.from_dict({
        "labels": labels,
        "scores": "probabilities" if kind.startswith("prob") else "logits",
        "sample_rate": features.SAMPLE_RATE,
        # scores are judged once this much audio was heard: before, the window still holds the zeros of the start
        "window_s": (stream["window_samples"] if stream and not logmel else features.CLIP_SAMPLES)
                    / features.SAMPLE_RATE,
        "hop_s": stream["chunk_samples"] / features.SAMPLE_RATE if stream else 0.1,
        "logmel": logmel[0].name if logmel else None,
        "stream": stream,
        "threshold": options.get("threshold", detector["threshold"]),
        "thresholds": dict(detector.get("thresholds") or {}),
        "smooth": int(detector["smooth"]),
        "refractory_s": float(detector["refractory_s"]),
        # what the model is made of, its licences and attributions, shown by --info (the labels file's
        # "model_card": an object; free-form, not read by the device)
        "model_card": meta.get("model_card") if isinstance(meta.get("model_card"), dict) else None,
        "builtins": builtins,
        "enrol": enrolment and {k: enrolment[k] for k in ("state", "bank")},
    }).as_dict()


APP = App(
    name="voice-commands",
    description="keyword spotting from a microphone or WAV file (log-mel and/or raw-audio stream models, smoothing, "
                "refractory)",
    synopsis="voice commands from a microphone",
    module="audio.app",
    runtime_packages=("audio",),
    # 0.5.6: the version tested here; its PortAudio comes from the build system (libportaudio2), bundled
    pip=("sounddevice==0.5.6",),
    debs=("libportaudio2",),
    hidden=("edge.runtime.audio.app", "edge.runtime.audio.commands_api", "sounddevice", "_cffi_backend"),
    keep=("numpy.fft", "unicodedata"),  # unicodedata: enrolled labels in any script, normalised
    # ALSA must be the board's own: its configuration and plugins (pulse, dmix) are loaded from the system
    system_libraries=("libasound.so.2",),
    configure=_voice_commands,
    stage=_stage,
    # one step is a few ms of small convolutions after ~80 ms of waiting for audio: a thread pool wakes up
    # slower than it computes. Measured on the demo's ensemble, x86_64, paced like a microphone (60 s of
    # keywords.wav): 2.39 ms a step with 1 thread, 2.78 ms with 2 (benchmarks/voice.py, "paced")
    default_threads=1,
    options=(BuildOption("--labels", "labels", "class names in output order, for --app voice-commands "
                         "(demos/kws/model/labels.json)", Path, "FILE.json"),
             BuildOption("--commands", "commands", "your own commands, enrolled into the executable: "
                         "DIR/<label>/*.wav (models whose labels file has \"enrol\")", Path, "DIR"),
             BuildOption("--builtin", "builtin", "the model's commands that stay: all (default), none or a "
                         "comma-separated list", str, "all|none|LIST")),
    # PortAudio is bundled: a build for this machine takes it from here
    host_libraries={"portaudio": "libportaudio2"},
    component=("audio", ("libportaudio", "libjack", "libdb-", "_cffi_backend", "_sounddevice", "sounddevice",
                         "cffi")),
)
