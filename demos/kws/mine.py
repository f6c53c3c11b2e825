"""Step 5a: hard negatives (train_head.py, train.py --mined): 1 s windows of a keyword-free stream spoken by
TRAIN voices on which the current ensemble is tempted to say a keyword.

    nice -n 19 python3 demos/kws/streams.py --voices train --seed 2 --minutes 40 --out demos/kws/.data/mining
    nice -n 19 demos/kws/.venv-train/bin/python demos/kws/mine.py

Scores the window that ends at every 80 ms step of .data/mining/negatives.wav with the DS-CNN + head
ensemble, computed offline as the streaming graph computes it (assemble.py checks that the two agree),
keeps the windows whose top keyword probability is >= --min-score and writes .data/mined.npz (int16
audio, score, end time, the keyword it was taken for). train_head.py (and train.py --mined) add them to
_unknown_. The stream's voices and sentences are never those of the held-out streams (streams.py
MINING_PHRASES), so the false alarm figures measured on those stay honest.
"""

import argparse
import json
import os

import numpy as np
import onnxruntime as ort
from common import CLASSES, CLIP, DATA, KEYWORDS, MODEL_DIR, SR, Timer, features, read_wav
from embedding import CHUNK, Embedder
from evaluate import geometric, scores, softmax

STREAM = os.path.join(DATA, "mining", "negatives.wav")
MINED = os.path.join(DATA, "mined.npz")


def window_scores(win, cnn, head, emb, w):
    """[N, 12] ensemble probabilities of [N, CLIP] windows, each computed on its own (the reference)."""
    return geometric(scores(cnn, win), softmax(head.run(None, {"embeddings": emb.clips(win)})[0]), w)


def stream_scores(audio, cnn, head, emb, w, batch=1024):
    """[steps, 12] probabilities of the window ending at every 80 ms step of `audio` (the first after 1 s), as
    window_scores gives them, computed once per frame instead of once per window: consecutive windows
    share 90 of their 98 log-mel frames and 2 of their 3 embeddings. Per-band mean normalisation is linear, so
    a window cut from the log-mel of a longer stretch and re-normalised equals the log-mel of that window."""
    ends = np.arange(CLIP, len(audio) + 1, CHUNK)
    step = CHUNK // features.HOP_LENGTH  # 8 log-mel frames per step
    out = []
    for i in range(0, len(ends), batch):
        n = min(batch, len(ends) - i)
        part = audio[ends[i] - CLIP : ends[i + n - 1]]
        lm = features.log_mel(part)[0]  # [40, T]
        win = np.lib.stride_tricks.sliding_window_view(lm, features.N_FRAMES, axis=1)[:, ::step][:, :n]  # [40, n, 98]
        win = win - win.mean(axis=2, keepdims=True)
        p_cnn = softmax(cnn.run(None, {"logmel": np.ascontiguousarray(win.transpose(1, 0, 2)[:, None])})[0])
        p_head = softmax(head.run(None, {"embeddings": emb.steps(part, n)})[0])
        out.append(geometric(p_cnn, p_head, w))
    return ends, np.concatenate(out)


def session(name):
    return ort.InferenceSession(os.path.join(MODEL_DIR, name), providers=["CPUExecutionProvider"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stream", default=STREAM)
    ap.add_argument("--out", default=MINED, help="where the hard negatives go (train.py and train_head.py --mined)")
    ap.add_argument("--min-score", type=float, default=0.3, help="top keyword probability that makes a window hard")
    args = ap.parse_args()
    timer = Timer()
    if not os.path.exists(args.stream):
        raise SystemExit(f"{args.stream}: missing; make it with: python3 demos/kws/streams.py --voices train "
                         f"--seed 2 --minutes 40 --out {os.path.dirname(args.stream)}")
    audio, rate = read_wav(args.stream)
    if rate != SR:
        raise SystemExit(f"{args.stream}: {rate} Hz, expected {SR}")
    with open(os.path.join(MODEL_DIR, "head_report.json")) as f:
        w = json.load(f)["cnn_weight"]
    models = session("kws.onnx"), session("head.onnx"), Embedder(1), w
    ends, p = stream_scores(audio, *models)
    check = np.linspace(0, len(ends) - 1, min(64, len(ends))).astype(int)
    ref = window_scores(np.stack([audio[e - CLIP : e] for e in ends[check]]), *models)
    diff = float(np.abs(p[check] - ref).max())
    if diff > 1e-4:
        raise SystemExit(f"{args.stream}: shared-frame scores differ from per-window scores by {diff:.1e}; "
                         "nothing written")
    kw = p[:, : len(KEYWORDS)]
    hard = np.nonzero(kw.max(1) >= args.min_score)[0]
    win = np.stack([audio[e - CLIP : e] for e in ends[hard]]) if len(hard) else np.zeros((0, CLIP), np.float32)
    i16 = (np.clip(win, -1, 32767 / 32768) * 32768).round().astype(np.int16)
    tmp = args.out + ".tmp.npz"
    np.savez_compressed(tmp, audio=i16, score=kw[hard].max(1), t=ends[hard] / SR,
                        label=np.array([CLASSES[k] for k in kw[hard].argmax(1)]))
    os.replace(tmp, args.out)
    hours = len(audio) / SR / 3600
    print(f"{len(ends)} windows of {hours * 60:.0f} min scored; {len(hard)} with a keyword >= {args.min_score} "
          f"({', '.join(f'{CLASSES[k]} {n}' for k, n in zip(*np.unique(kw[hard].argmax(1), return_counts=True)))}) "
          f"-> {args.out} (scores vs per-window: max |diff| {diff:.1e})  {timer}")


if __name__ == "__main__":
    main()
