"""The manifest, the host↔device contract: the host writes it, the device reads it back the same."""

import json

import pytest

from edge.runtime.audio.settings import ListenConfig, VoiceSettings
from edge.runtime.manifest import FORMAT, Manifest, ManifestError, ModelFile, Optimization, Part, Target, Tensor


def _manifest(**change) -> Manifest:
    fields = dict(
        name="kws", model=ModelFile("model.onnx", "ab" * 32, 1234, "kws.onnx", "cd" * 32),
        inputs=[Tensor("audio", "float32", [1, 1280]), Tensor("state", "float32", ["batch", 16])],
        outputs=[Tensor("scores", "float32", [1, 12])],
        backend=Part("onnxruntime", "ort", {"version": "1.32.0", "providers": ["CPU"]}),
        target=Target("rpi4", "aarch64", "2.36"), threads=4,
        optimization=Optimization(["onnxoptimizer"], [10, 8], [0.97, 0.96], 0.99),
        edgepack="0.1.0", built="2026-12-02T00:00:00+00:00",
        app=Part("voice-commands", "audio.app", {"labels": ["yes", "_silence_"], "threshold": 0.8}),
        runtime_tmpdir="/var/tmp")
    return Manifest(**{**fields, **change})


@pytest.mark.parametrize("change", [{}, {"app": None, "runtime_tmpdir": None}])
def test_round_trip_through_json(change):
    m = _manifest(**change)
    text = m.dumps()
    assert Manifest.from_dict(json.loads(text)) == m
    d = json.loads(text)
    assert d["format"] == FORMAT and d["backend"] == {"name": "onnxruntime", "module": "ort", "version": "1.32.0",
                                                      "providers": ["CPU"]}
    assert ("app" in d) == (m.app is not None) and ("runtime_tmpdir" in d) == (m.runtime_tmpdir is not None)


def test_another_format_is_refused_with_what_to_do():
    d = _manifest().as_dict()
    d["format"] = FORMAT + 1
    with pytest.raises(ManifestError, match=f"manifest format {FORMAT + 1}; this runtime reads format {FORMAT}"):
        Manifest.from_dict(d)


def test_a_missing_field_is_named():
    d = _manifest().as_dict()
    del d["threads"]
    with pytest.raises(ManifestError, match="threads"):
        Manifest.from_dict(d)


def test_voice_settings_and_listen_defaults():
    raw = {"labels": ["yes", "no", "_unknown_"], "scores": "logits", "sample_rate": 16000, "window_s": 1.0,
           "hop_s": 0.08, "logmel": None, "threshold": 0.8, "thresholds": {"no": 0.9}, "smooth": 3,
           "refractory_s": 1.5, "model_card": None, "builtins": None,
           "stream": {"chunk_samples": 1280, "audio": "audio", "audio_samples": 1760, "window_samples": 16000,
                      "states": [{"input": "s", "output": "s_out", "shape": [1, 4]}]},
           "enrol": {"state": "s_out", "bank": "bank.npz", "commands": "commands.json"}}
    s = VoiceSettings.from_dict(raw)
    assert s.as_dict() == raw and s.stream.chunk_samples == 1280 and s.keywords == ["yes", "no"]
    assert s.enrol.bank == "bank.npz"
    # --builtin: the model's commands that stay reported; an older manifest without the new keys reads as before
    assert VoiceSettings.from_dict({**raw, "builtins": ["no"]}).keywords == ["no"]
    old = VoiceSettings.from_dict({k: v for k, v in raw.items() if k not in ("builtins", "enrol")})
    assert old.keywords == ["yes", "no"] and old.enrol is None
    c = ListenConfig.defaults(s, smooth=1)
    assert (c.hop_ms, c.threshold, c.thresholds, c.smooth, c.refractory_s) == (80, 0.8, {"no": 0.9}, 1, 1.5)
