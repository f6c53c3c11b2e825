"""A pretrained speech embedding as a second front end: openWakeWord 0.4.0's two ONNX files.

    melspectrogram.onnx  audio (int16 scale) -> 32 mel bands every 10 ms (512-sample frames)
    embedding_model.onnx 76 mel frames (0.76 s)  -> a 96-d speech embedding (Google's speech_embedding,
                         pretrained on large amounts of real speech)

Licence: openWakeWord's code is Apache-2.0; its README puts "all included pre-trained models" under
CC BY-NC-SA 4.0 (non-commercial), although the embedding re-implements Google's Apache-2.0 TFHub
speech_embedding. These files are therefore never committed here: `fetch()` takes them from the PyPI
wheel (a package, not a model hub) into the git-ignored cache, and everything built with them carries
the non-commercial caveat.

Both files are used unchanged except at the edges of the mel graph (`mel_model`):
  - the input is audio in [-1, 1] (the x 32767 is inside the graph);
  - openWakeWord floors the dB values at (max of the whole batch - 80 dB), which makes one clip's
    features depend on its neighbours and a streaming chunk differ from the same frames computed
    offline. Here the floor is a fixed mel power, that of 1-LSB white noise, so a frame's features
    depend only on its own 512 samples: offline features equal streamed ones exactly;
  - the output is openWakeWord's `x / 10 + 2` scaling, [B, T, 32].

Stream geometry (openWakeWord's): one step = 1280 new samples (80 ms) plus 480 older ones = 8 new mel
frames; one embedding per step over the last 76 frames. The keyword head reads the last N_EMB = 3
embeddings. For a 1 s clip whose end is a step's end, those are the embeddings of mel frames starting
at 5, 13 and 21 (`EMB_STARTS`), the new frames of the last step are 89..96 and the mel state is 21..88.
"""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".data", "oww")
WHEEL = "openwakeword==0.4.0"
FILES = {  # sha256 of the two files inside openwakeword-0.4.0-py3-none-any.whl
    "melspectrogram.onnx": "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
    "embedding_model.onnx": "ba754db3cd768a524c655ea90655ee5e6055a43b8dfd29366a11e93716ae9e51",
}
LICENCE = ("speech embedding: openWakeWord 0.4.0 melspectrogram.onnx + embedding_model.onnx, CC BY-NC-SA 4.0 "
           "(non-commercial) per openWakeWord's README; re-implements Google's Apache-2.0 speech_embedding")

SR = 16000
CHUNK = 1280  # new samples per step (80 ms)
CONTEXT = 480  # older samples each step re-reads: 1760 samples give exactly 8 new 512-sample frames
STEP_AUDIO = CHUNK + CONTEXT
FRAMES_PER_STEP = 8
EMB_FRAMES = 76
N_EMB = 3
MEL_STATE = EMB_FRAMES - FRAMES_PER_STEP  # 68 frames carried between steps
EMB_STARTS = (5, 13, 21)
N_MELS, EMB_DIM = 32, 96


def fetch(cache: str = CACHE) -> dict[str, str]:
    """Paths of the two ONNX files, taken from the openwakeword wheel on PyPI on first use."""
    paths = {name: os.path.join(cache, name) for name in FILES}
    if not all(os.path.exists(p) for p in paths.values()):
        os.makedirs(cache, exist_ok=True)
        print(f"fetching {WHEEL} from PyPI (its two speech-embedding ONNX files; {LICENCE})", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                        "-d", cache, WHEEL], check=True)
        wheel = sorted(glob.glob(os.path.join(cache, "openwakeword-0.4.0-*.whl")))[-1]
        with zipfile.ZipFile(wheel) as z:
            for name, path in paths.items():
                data = z.read(f"openwakeword/resources/models/{name}")
                with open(path + ".tmp", "wb") as f:
                    f.write(data)
                os.replace(path + ".tmp", path)
    for name, path in paths.items():
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        if digest != FILES[name]:
            raise SystemExit(f"{path}: sha256 {digest} is not the one of openwakeword 0.4.0's file; delete {cache}")
    return paths


def _floor_power(stft_real: np.ndarray, stft_imag: np.ndarray, mel_w: np.ndarray) -> float:
    """Mean mel power of 1-LSB white noise through the graph's own STFT weights and mel matrix."""
    # E|sum_k w_k n_k|^2 = sum_k w_k^2 for unit white noise
    power = (stft_real[:, 0] ** 2).sum(1) + (stft_imag[:, 0] ** 2).sum(1)  # [257]
    return float((power @ mel_w).mean())


def mel_model(path: str) -> onnx.ModelProto:
    """openWakeWord's mel graph with the edges described above: audio [B, S] in [-1, 1] -> [B, T, 32]."""
    m = onnx.load(path)
    g = m.graph
    init = {i.name: i for i in g.initializer}
    arr = {n: numpy_helper.to_array(i) for n, i in init.items()}
    floor = _floor_power(arr["0.stft.conv_real.weight"], arr["0.stft.conv_imag.weight"], arr["1.melW"])
    keep, tail = [], False
    for n in g.node:
        if n.op_type == "ReduceMax":
            tail = True  # the batch-relative floor: ReduceMax, Sub, Cast, Clip
        if not tail:
            keep.append(n)
    db = keep[-1].output[0]  # 10 * log10(mel power), [B, 1, T, 32]
    for n in keep:
        for i, name in enumerate(n.input):
            if name == "input":
                n.input[i] = "audio_i16"
            if name == "onnx::Clip_39":
                n.input[i] = "mel_floor"
    consts = [numpy_helper.from_array(np.array(v, np.float32), name) for name, v in
              (("i16_scale", 32767.0), ("mel_floor", floor), ("ten", 10.0), ("two", 2.0))]
    nodes = [helper.make_node("Mul", ["audio", "i16_scale"], ["audio_i16"])] + keep + [
        helper.make_node("Div", [db, "ten"], ["mel_div"]),
        helper.make_node("Add", ["mel_div", "two"], ["mel_4d"]),
        helper.make_node("Squeeze", ["mel_4d", "axis1"], ["mel"]),
    ]
    consts.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    used = {i for n in nodes for i in n.input}
    inits = [i for i in g.initializer if i.name in used and i.name != "onnx::Clip_39"] + consts
    graph = helper.make_graph(
        nodes, "mel", [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["batch", "frames", N_MELS])], inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="edgepack-kws")
    out.ir_version = m.ir_version
    onnx.checker.check_model(out)
    return out


class Embedder:
    """Offline features for 1 s clips, identical to what the streaming graph computes (onnxruntime)."""

    def __init__(self, threads: int = 1):
        import onnxruntime as ort

        paths = fetch()
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.mel = ort.InferenceSession(mel_model(paths["melspectrogram.onnx"]).SerializeToString(), so,
                                        providers=["CPUExecutionProvider"])
        self.emb = ort.InferenceSession(paths["embedding_model.onnx"], so, providers=["CPUExecutionProvider"])

    def mel_frames(self, audio: np.ndarray) -> np.ndarray:
        return self.mel.run(None, {"audio": np.ascontiguousarray(audio, np.float32)})[0]

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """[B, 76, 32] mel windows -> [B, 96]."""
        b = len(windows)
        return self.emb.run(None, {"input_1": windows.reshape(b, EMB_FRAMES, N_MELS, 1)})[0].reshape(b, EMB_DIM)

    def clips(self, audio: np.ndarray, bs: int = 256) -> np.ndarray:
        """[N, 16000] clips -> [N, N_EMB, 96], the embeddings the head sees when a step ends at the clip's end."""
        out = []
        for i in range(0, len(audio), bs):
            mel = self.mel_frames(audio[i : i + bs])
            win = np.stack([mel[:, s : s + EMB_FRAMES] for s in EMB_STARTS], 1)  # [B, 3, 76, 32]
            out.append(self.embed_windows(win.reshape(-1, EMB_FRAMES, N_MELS)).reshape(len(win), N_EMB, EMB_DIM))
        return np.concatenate(out)

    def steps(self, audio: np.ndarray, n: int) -> np.ndarray:
        """[n, N_EMB, 96]: what clips() gives for the 1 s windows ending at each of the n 80 ms steps of a 1-D
        signal that starts 1 s before the first step's end; each embedding is computed once, not N_EMB times."""
        assert np.all(np.diff(EMB_STARTS) == FRAMES_PER_STEP), EMB_STARTS
        mel = self.mel_frames(audio[None])[0]
        starts = EMB_STARTS[0] + FRAMES_PER_STEP * np.arange(n + N_EMB - 1)
        e = self.embed_windows(np.stack([mel[s : s + EMB_FRAMES] for s in starts]))
        return np.stack([e[j : j + N_EMB] for j in range(n)])

    def stream_feeds(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        """The stream model's audio and state inputs for the step that ends at each clip's end."""
        mel = self.mel_frames(audio)
        first = EMB_STARTS[-1]
        prev = np.stack([mel[:, s : s + EMB_FRAMES] for s in EMB_STARTS[:-1]], 1)
        emb_state = self.embed_windows(prev.reshape(-1, EMB_FRAMES, N_MELS)).reshape(len(audio), N_EMB - 1, EMB_DIM)
        return {
            "audio": np.ascontiguousarray(audio[:, -STEP_AUDIO:], np.float32),
            "mel_state": np.ascontiguousarray(mel[:, first : first + MEL_STATE], np.float32),
            "emb_state": emb_state.astype(np.float32),
        }
