"""Step 3b: assemble the streaming keyword model: DS-CNN + speech-embedding head in one ONNX graph.

    python demos/kws/assemble.py [-o build/kws-stream]      (needs numpy, onnx, onnxruntime; ~10 s)

Inputs: model/kws.onnx (DS-CNN, committed), model/head.onnx and model/head_report.json (train_head.py,
committed), model/stream_clips.npz (committed audio), and openWakeWord's two ONNX files, which
embedding.fetch() takes from the PyPI wheel: they are CC BY-NC-SA 4.0, so they are never committed and
everything written here is for non-commercial use (the DS-CNN alone, model/kws.onnx, has no such limit).

One call of the graph is one 80 ms step of a stream:
  inputs   logmel     [N, 1, 40, 98]  the last 1 s as edge/runtime/audio/features.py log-mel (DS-CNN)
           audio      [N, 1760]       the last 1760 samples (1280 new + 480 older), 16 kHz, [-1, 1]
           mel_state  [N, 68, 32]     carried from the previous step's mel_state_out (zeros at start)
           emb_state  [N, 2, 96]      carried from the previous step's emb_state_out (zeros at start)
  outputs  scores     [N, 12]         softmax(w * DS-CNN logits + (1 - w) * head logits) (--pool geometric:
                                      the normalised weighted geometric mean of the two models' probabilities),
                                      or --pool mean: w * softmax(DS-CNN) + (1 - w) * softmax(head);
                                      w from head_report.json
           mel_state_out, emb_state_out
Writes into the output folder: kws_stream.onnx, labels.json (with the stream contract the app reads),
calib.npz and heldout.npz (all four inputs + labels, for edge optimize / edge build --eval) and
assemble_report.json. Checks, or exits non-zero: the graph against the parts run separately (1e-5), and
stepping it through 3 s of audio from zero states against one call with offline-computed states (1e-4).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from common import CLASSES, MODEL_DIR, ROOT, Timer, features
from embedding import (
    CHUNK,
    EMB_DIM,
    FRAMES_PER_STEP,
    LICENCE,
    MEL_STATE,
    N_EMB,
    N_MELS,
    STEP_AUDIO,
    Embedder,
    fetch,
    mel_model,
)
from evaluate import softmax
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def graft(nodes: list, inits: list, model: onnx.ModelProto, prefix: str, rename: dict[str, str]) -> None:
    """Copy a model's nodes and initializers under a name prefix; `rename` wires its inputs and outputs."""
    def name(x: str) -> str:
        return x if not x else rename.get(x, prefix + x)
    for n in model.graph.node:
        c = onnx.NodeProto()
        c.CopyFrom(n)
        c.name = prefix + (n.name or n.output[0]).lstrip("/")
        c.input[:] = [name(x) for x in n.input]
        c.output[:] = [name(x) for x in n.output]
        nodes.append(c)
    for i in model.graph.initializer:
        c = onnx.TensorProto()
        c.CopyFrom(i)
        c.name = prefix + i.name
        inits.append(c)


def compose(cnn: onnx.ModelProto, head: onnx.ModelProto, mel: onnx.ModelProto, emb: onnx.ModelProto,
            cnn_weight: float, pool: str = "geometric") -> onnx.ModelProto:
    nodes, inits = [], []
    const = {"i64_8": [FRAMES_PER_STEP], "i64_1": [1], "i64_big": [1 << 30], "axis3": [3],
             "emb_shape": [-1, 1, EMB_DIM]}
    inits += [numpy_helper.from_array(np.array(v, np.int64), k) for k, v in const.items()]
    inits += [numpy_helper.from_array(np.array(v, np.float32), k) for k, v in
              (("w_cnn", cnn_weight), ("w_head", 1.0 - cnn_weight))]
    graft(nodes, inits, mel, "mel/", {"audio": "audio", "mel": "mel_new"})
    nodes += [
        helper.make_node("Concat", ["mel_state", "mel_new"], ["mel_window"], axis=1, name="stream/mel_window"),
        helper.make_node("Slice", ["mel_window", "i64_8", "i64_big", "i64_1"], ["mel_state_out"],
                         name="stream/mel_keep"),
        helper.make_node("Unsqueeze", ["mel_window", "axis3"], ["emb_in"], name="stream/emb_in"),
    ]
    graft(nodes, inits, emb, "emb/", {"input_1": "emb_in", "conv2d_19": "emb_4d"})
    nodes += [
        helper.make_node("Reshape", ["emb_4d", "emb_shape"], ["emb_new"], name="stream/emb_new"),
        helper.make_node("Concat", ["emb_state", "emb_new"], ["embeddings"], axis=1, name="stream/embeddings"),
        helper.make_node("Slice", ["embeddings", "i64_1", "i64_big", "i64_1"], ["emb_state_out"],
                         name="stream/emb_keep"),
    ]
    graft(nodes, inits, head, "head/", {"embeddings": "embeddings", "logits": "head_logits"})
    graft(nodes, inits, cnn, "cnn/", {"logmel": "logmel", "logits": "cnn_logits"})
    if pool == "geometric":  # softmax of the weighted mean of logits = normalised weighted geometric mean
        nodes += [
            helper.make_node("Mul", ["cnn_logits", "w_cnn"], ["cnn_w"], name="mix/cnn_weight"),
            helper.make_node("Mul", ["head_logits", "w_head"], ["head_w"], name="mix/head_weight"),
            helper.make_node("Add", ["cnn_w", "head_w"], ["mixed"], name="mix/add"),
            helper.make_node("Softmax", ["mixed"], ["scores"], axis=-1, name="mix/scores"),
        ]
    else:
        nodes += [
            helper.make_node("Softmax", ["cnn_logits"], ["cnn_p"], axis=-1, name="mix/cnn_softmax"),
            helper.make_node("Softmax", ["head_logits"], ["head_p"], axis=-1, name="mix/head_softmax"),
            helper.make_node("Mul", ["cnn_p", "w_cnn"], ["cnn_w"], name="mix/cnn_weight"),
            helper.make_node("Mul", ["head_p", "w_head"], ["head_w"], name="mix/head_weight"),
            helper.make_node("Add", ["cnn_w", "head_w"], ["scores"], name="mix/scores"),
        ]
    f = TensorProto.FLOAT
    graph = helper.make_graph(nodes, "kws_stream", [
        helper.make_tensor_value_info("logmel", f, ["batch", 1, features.N_MELS, features.N_FRAMES]),
        helper.make_tensor_value_info("audio", f, ["batch", STEP_AUDIO]),
        helper.make_tensor_value_info("mel_state", f, ["batch", MEL_STATE, N_MELS]),
        helper.make_tensor_value_info("emb_state", f, ["batch", N_EMB - 1, EMB_DIM]),
    ], [
        helper.make_tensor_value_info("scores", f, ["batch", len(CLASSES)]),
        helper.make_tensor_value_info("mel_state_out", f, ["batch", MEL_STATE, N_MELS]),
        helper.make_tensor_value_info("emb_state_out", f, ["batch", N_EMB - 1, EMB_DIM]),
    ], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgepack-kws")
    model.ir_version = 8
    model.doc_string = "keyword spotting, one 80 ms stream step; " + LICENCE
    onnx.checker.check_model(model, full_check=True)
    return model


def feeds_for(emb: Embedder, audio: np.ndarray) -> dict[str, np.ndarray]:
    return {"logmel": features.log_mel(audio), **emb.stream_feeds(audio)}


def keep_float() -> list[str]:
    """Nodes int8 quantization must leave in float (`edge optimize --exclude-nodes`): the mel graph and the
    embedding (trained by others, in float), the state plumbing (a quantized state drifts from step to step),
    the head's LayerNorms (their 1-D weights cannot take per-channel scales) and what the DS-CNN keeps in float
    on its own (export.py lists it in train_report.json: its first Conv, which reads raw log-mel values)."""
    cnn = json.load(open(os.path.join(MODEL_DIR, "train_report.json")))["int8_keep_float"]
    return ["mel/*", "emb/*", "stream/*", "head/*LayerNormalization"] + ["cnn/" + n.lstrip("/") for n in cnn]


def check_parts(scores, emb, cnn, head, w, pool, feeds, audio) -> float:
    """The graph's scores on some clips against its parts run one by one (the head on offline embeddings)."""
    a, b = cnn.run(None, {"logmel": feeds["logmel"]})[0], head.run(None, {"embeddings": emb.clips(audio)})[0]
    want = softmax(w * a + (1 - w) * b) if pool == "geometric" else w * softmax(a) + (1 - w) * softmax(b)
    return float(np.abs(scores - want).max())


def check_stream(sess, emb, signal: np.ndarray) -> float:
    """Step the graph through a signal from zero states, as the app does; compare the last step with one
    call whose states were computed offline from the signal's last second."""
    buf = np.zeros(STEP_AUDIO, np.float32)
    mel_state = np.zeros((1, MEL_STATE, N_MELS), np.float32)
    emb_state = np.zeros((1, N_EMB - 1, EMB_DIM), np.float32)
    assert len(signal) % CHUNK == 0
    for i in range(0, len(signal), CHUNK):
        buf = np.concatenate([buf, signal[i : i + CHUNK]])[-STEP_AUDIO:]
        history = signal[max(0, i + CHUNK - features.CLIP_SAMPLES) : i + CHUNK]
        window = np.concatenate([np.zeros(features.CLIP_SAMPLES - len(history), np.float32), history])
        scores, mel_state, emb_state = sess.run(None, {"logmel": features.log_mel(window[None]), "audio": buf[None],
                                                       "mel_state": mel_state, "emb_state": emb_state})
    offline = sess.run(["scores"], feeds_for(emb, signal[None, -features.CLIP_SAMPLES :]))[0]
    return float(np.abs(scores - offline).max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", default=os.path.join(ROOT, "build", "kws-stream"))
    ap.add_argument("--pool", choices=("geometric", "mean"), default="geometric",
                    help="how the two models' scores combine: softmax of the weighted mean of logits (default) "
                         "or the weighted mean of probabilities")
    args = ap.parse_args()
    timer = Timer()
    paths = fetch()
    report = json.load(open(os.path.join(MODEL_DIR, "head_report.json")))
    w = float(report["cnn_weight"])
    cnn_m, head_m = onnx.load(os.path.join(MODEL_DIR, "kws.onnx")), onnx.load(os.path.join(MODEL_DIR, "head.onnx"))
    mel_m, emb_m = mel_model(paths["melspectrogram.onnx"]), onnx.load(paths["embedding_model.onnx"])
    model = compose(cnn_m, head_m, mel_m, emb_m, w, args.pool)
    os.makedirs(args.out, exist_ok=True)
    out = os.path.join(args.out, "kws_stream.onnx")
    staged = {out: out + ".tmp"}  # every output is written beside its name and renamed once all checks pass
    onnx.save(model, staged[out])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(staged[out], so, providers=["CPUExecutionProvider"])
    cnn = ort.InferenceSession(cnn_m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(head_m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    emb = Embedder()
    clips = np.load(os.path.join(MODEL_DIR, "stream_clips.npz"))
    heldout = clips["heldout"].astype(np.float32) / 32768
    calib = clips["calib"].astype(np.float32) / 32768
    feeds = {"calib": feeds_for(emb, calib), "heldout": feeds_for(emb, heldout)}
    scores = sess.run(["scores"], feeds["heldout"])[0]
    parts = check_parts(scores, emb, cnn, head, w, args.pool, feeds["heldout"], heldout)
    signal = np.concatenate([heldout[i] for i in range(3)])
    stream = check_stream(sess, emb, signal[: len(signal) // CHUNK * CHUNK])
    print(f"graph vs its parts: max |diff| {parts:.1e}; stepped stream vs offline states: {stream:.1e}")
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
    stage("heldout.npz", lambda f: np.savez_compressed(f, **feeds["heldout"], labels=clips["heldout_labels"],
                                                       engine=clips["heldout_engine"]))
    acc = float((scores.argmax(1) == clips["heldout_labels"]).mean())
    labels = json.load(open(os.path.join(MODEL_DIR, "labels.json")))
    labels.update(output="scores", output_kind="probabilities", input="logmel, audio, mel_state, emb_state",
                  stream={"chunk_samples": CHUNK, "audio": "audio", "states": {"mel_state": "mel_state_out",
                                                                              "emb_state": "emb_state_out"}},
                  # benchmarks/voice.py, 62 min keyword-free + 100 held-out-voice keywords: 0.7 over 8 steps
                  # (0.64 s) heard 76 % of the keywords with 2.9 false alarms/h; 0.9 over 3, 58 % and 1.0/h
                  detector={"threshold": 0.7, "smooth": 8, "refractory_s": 1.0},
                  front_end="logmel: edge/runtime/audio/features.py log_mel of the last 1 s; audio: the last "
                            f"{STEP_AUDIO} samples", licence=LICENCE)
    labels.pop("input_shape", None)
    stage("labels.json", lambda f: json.dump(labels, f, indent=1))
    size = os.path.getsize(staged[out])
    stage("assemble_report.json", lambda f: json.dump(
        dict(model=out, cnn_weight=w, pool=args.pool, bytes=size, check_parts=parts, check_stream=stream,
             int8_keep_float=keep_float(), heldout_accuracy=acc, heldout_n=int(len(heldout)), licence=LICENCE),
        f, indent=1))
    for path, tmp in staged.items():
        os.replace(tmp, path)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB), labels.json, calib.npz, heldout.npz "
          f"(accuracy {acc:.3f} on its {len(heldout)} clips)  {timer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
