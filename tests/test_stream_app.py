"""The voice-command app's streaming contract: a model that takes raw audio and carries state from one
step to the next (demos/kws/assembly/assemble.py makes the real one). A small real ONNX model, run by onnxruntime
through the app's own Listener, checks the plumbing exactly; apps.py refuses contracts the model breaks."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge import model as M
from edge.apps.voice_commands import APP as VOICE_COMMANDS
from edge.errors import DataError, ModelError
from edge.runtime.audio.app import Listener
from edge.runtime.audio.settings import ListenConfig, VoiceSettings
from edge.runtime.ort import open_session

CHUNK, AUDIO, STATE = 320, 480, 4
LABELS = ["go", "stop", "_unknown_"]


def stream_model(path, state_out_shape=(STATE,)):
    """state_out = state + mean(audio); scores = softmax([sum(state_out), -sum(state_out), mean(logmel)])."""
    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("ReduceMean", ["audio"], ["a_mean"], axes=[1], keepdims=1),
        helper.make_node("Add", ["state", "a_mean"], ["state_out"]),
        helper.make_node("ReduceSum", ["state_out", "one"], ["s"], keepdims=1),
        helper.make_node("Neg", ["s"], ["neg_s"]),
        helper.make_node("ReduceMean", ["logmel"], ["m"], axes=[1, 2, 3], keepdims=1),
        helper.make_node("Reshape", ["m", "shape_n1"], ["m2"]),
        helper.make_node("Concat", ["s", "neg_s", "m2"], ["z"], axis=1),
        helper.make_node("Softmax", ["z"], ["scores"], axis=1),
    ]
    g = helper.make_graph(nodes, "toy", [
        helper.make_tensor_value_info("logmel", f, ["n", 1, 40, 98]),
        helper.make_tensor_value_info("audio", f, ["n", AUDIO]),
        helper.make_tensor_value_info("state", f, ["n", STATE]),
    ], [
        helper.make_tensor_value_info("scores", f, ["n", 3]),
        helper.make_tensor_value_info("state_out", f, ["n", *state_out_shape]),
    ], [numpy_helper.from_array(np.array([1], np.int64), "one"),
        numpy_helper.from_array(np.array([-1, 1], np.int64), "shape_n1")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return model


def labels_file(path, **stream):
    spec = {"chunk_samples": CHUNK, "audio": "audio", "states": {"state": "state_out"}, **stream}
    path.write_text(json.dumps({"labels": LABELS, "output_kind": "probabilities", "stream": spec}))
    return path


def manifest_for(model, labels):
    return {"app": VOICE_COMMANDS.configure(model, {"labels": labels}),
            "inputs": [s.as_dict() for s in M.inputs(model)], "outputs": [s.as_dict() for s in M.outputs(model)]}


def test_listener_feeds_audio_and_carries_state_every_step(tmp_path):
    path = tmp_path / "toy.onnx"
    manifest = manifest_for(stream_model(path), labels_file(tmp_path / "labels.json"))
    app = manifest["app"]
    assert app["hop_s"] == CHUNK / 16000 and app["logmel"] == "logmel" and app["stream"]["audio_samples"] == AUDIO
    settings = VoiceSettings.from_dict(app)
    config = ListenConfig.defaults(settings, hop_ms=20, threshold=0.99, smooth=1, refractory_s=1.0)
    listener = Listener(open_session(path, 1), settings, config, [o["name"] for o in manifest["outputs"]],
                        out=lambda d: None)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 60 * CHUNK + 100).astype(np.float32)
    for i in range(0, len(x), 777):  # blocks that do not line up with steps
        listener.feed(x[i : i + 777])
    steps = len(x) // CHUNK
    padded = np.concatenate([np.zeros(AUDIO, np.float32), x[: steps * CHUNK]])
    want = sum(padded[(k + 1) * CHUNK : (k + 1) * CHUNK + AUDIO].mean() for k in range(steps))
    # every step moved the state, including the first second that is never judged
    np.testing.assert_allclose(listener.stream._states["state"], np.full((1, STATE), want), rtol=1e-4, atol=1e-5)
    assert listener.windows == steps - 16000 // CHUNK + 1


@pytest.mark.parametrize("change, words", [
    ({"audio": "nope"}, "audio input 'nope'"),
    ({"chunk_samples": AUDIO + 1}, "samples >= 481"),
    ({"states": {"state": "missing_out"}}, "state -> missing_out"),
])
def test_contracts_the_model_breaks_are_refused(tmp_path, change, words):
    model = stream_model(tmp_path / "toy.onnx")
    with pytest.raises(ModelError, match=words):
        manifest_for(model, labels_file(tmp_path / "labels.json", **change))


def test_state_of_another_shape_and_a_bad_chunk_are_refused(tmp_path):
    model = stream_model(tmp_path / "toy.onnx", state_out_shape=(STATE + 1,))
    with pytest.raises(ModelError, match="same static shape"):
        manifest_for(model, labels_file(tmp_path / "labels.json"))
    with pytest.raises(DataError, match="chunk_samples"):
        manifest_for(stream_model(tmp_path / "toy.onnx"), labels_file(tmp_path / "l.json", chunk_samples=0))
