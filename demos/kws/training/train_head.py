"""Step 1 (`train-head`): the keyword head on Google's speech embedding (embedding.py), trained on real speech.

    demos/kws/.venv-train/bin/python -m demos.kws.training.train_head --speech-commands DIR [--rounds 12]
        [--negatives demos/kws/.data/mining2 ...]      (step 1a's keyword-free streams)

DIR is a folder in Speech Commands' layout (data/speech_commands.py): the full dataset
speech_commands_v0.02.tar.gz, unpacked (its list files split it by speaker), or a share of its test set
(split here by a hash of the speaker id). Every choice (the epoch, the seed, the window length) is
made on the validation speakers; the test speakers are only reported.

1. Embeddings (12 x 96 per clip: the last 1.655 s, as the stream sees them at one step) of the train clips:
   clean, plus --rounds augmented copies (data/augment.py: the word placed anywhere in the window, speaking rate,
   speed, rooms, band-limits, gain, noise 0-35 dB SNR) and _silence_ (the dataset's own, with random gain, and
   generated noise with switches). Cached in .data/.
2. An MLP head (12 x 96 -> H -> H -> 12, LayerNorm, dropout) trained with torch; the epoch with the best
   validation accuracy (clean + one noisy copy) is kept.
Writes model/head.onnx (input "embeddings" [N, 12, 96], output "logits" [N, 12]), model/head_report.json
(accuracy, per class, confusion, per speaker, for validation and test) and model/stream_clips.npz (audio of
validation clips for calibration, of test clips for edge build --eval).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os

import numpy as np
import torch
from torch import nn

from demos.kws.common import CLASSES, CLIP, DATA, MODEL_DIR, SILENCE, UNKNOWN, Timer, read_wav
from demos.kws.data import augment
from demos.kws.data import speech_commands as sc
from demos.kws.data.augment import NOISE_STEPS, TEMPO, Augmenter, synthetic_irs
from demos.kws.evaluation.evaluate import summarize
from demos.kws.training.embedding import CHUNK, EMB_DIM, LICENCE, N_EMB, WINDOW, Embedder, in_window


class Head(nn.Module):
    def __init__(self, n_emb=N_EMB, hidden=192, dropout=0.3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(n_emb * EMB_DIM, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, len(CLASSES)))

    def forward(self, x):  # [B, n_emb, 96] embeddings -> logits [B, 12]
        return self.net(x)


def split(clips, audio, name):
    idx = [i for i, c in enumerate(clips) if c.split == name]
    return audio[idx], np.array([CLASSES.index(clips[i].label) for i in idx]), [clips[i] for i in idx]


def span_of(n_emb):
    return WINDOW + CHUNK * (n_emb - 1)


def augmented_rounds(x, y, noises, rounds, seed, timer, emb, n_emb):
    """Embeddings of `rounds` augmented copies of the train clips, plus as many _silence_ examples per round."""
    sil, words = y == CLASSES.index(SILENCE), y != CLASSES.index(SILENCE)
    starts, ends = sc.word_bounds(x[words])
    span = span_of(n_emb)
    aug = Augmenter(synthetic_irs(), x[y == CLASSES.index(UNKNOWN)], seed=seed, tempo=TEMPO, length=span)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k in range(rounds):
        a = np.concatenate([aug(x[words][j : j + 512], starts[j : j + 512], ends[j : j + 512])
                            for j in range(0, int(words.sum()), 512)])
        real_sil = in_window(x[sil], span, seed + k) * 10 ** rng.uniform(-2, 0.5, (int(sil.sum()), 1))
        gen_sil = aug.silence(int(sil.sum()), NOISE_STEPS)
        parts = [a, np.clip(real_sil, -1, 1).astype(np.float32), gen_sil]
        if noises:
            parts.append(in_window(sc.silence_clips(noises, int(sil.sum()), rng), span, seed + k))
        batch = np.concatenate(parts)
        xs.append(emb.clips(batch, n_emb=n_emb))
        ys.append(np.concatenate([y[words]] + [np.full(len(p), CLASSES.index(SILENCE)) for p in parts[1:]]))
        print(f"  augmented round {k + 1}/{rounds} embedded  {timer}", flush=True)
    return np.concatenate(xs), np.concatenate(ys)


def train_set(emb, x, y, noises, rounds, timer, n_emb):
    """Embeddings of the clean train clips (centred in the window) and of the augmented rounds, cached per
    (clips, augment.py's text, rounds, n_emb)."""
    digest = hashlib.sha256(x.tobytes() + y.tobytes() + open(augment_path(), "rb").read()).hexdigest()[:10]
    path = os.path.join(DATA, f"emb_real_{rounds}_{n_emb}_{digest}.npz")
    if os.path.exists(path):
        d = np.load(path)
        return d["x"], d["y"]
    xa, ya = augmented_rounds(x, y, noises, rounds, 1, timer, emb, n_emb)
    clean = emb.clips(in_window(x, span_of(n_emb)), n_emb=n_emb)
    xe, ye = np.concatenate([clean, xa]).astype(np.float32), np.concatenate([y, ya])
    os.makedirs(DATA, exist_ok=True)
    np.savez(path + ".tmp.npz", x=xe, y=ye)
    os.replace(path + ".tmp.npz", path)
    return xe, ye


def augment_path():
    return augment.__file__


def negative_windows(emb, folder, n_emb, every=4, chunk_steps=750):
    """Head inputs from a keyword-free stream (data/streams.py --voices train: train voices, other phrases, noise with
    babble and switches), one window every `every` steps: _unknown_ where the window holds speech, else
    _silence_. The stream's embeddings are computed once, in chunks of chunk_steps steps."""
    x, _ = read_wav(os.path.join(folder, "negatives.wav"))
    speech = json.load(open(os.path.join(folder, "negatives.json")))["speech"]
    span, hop = span_of(n_emb), CHUNK
    xs, ends = [], []
    for c0 in range(0, len(x) - span, chunk_steps * hop):
        e = emb.run(x[None, c0 : c0 + chunk_steps * hop + span])[0]
        for j in range(0, min(chunk_steps, len(e) - n_emb + 1), every):
            xs.append(e[j : j + n_emb])
            ends.append((c0 + j * hop + span) / 16000)
    ends = np.array(ends)
    talk = np.zeros(len(ends), bool)
    for ev in speech:
        talk |= (ends > ev["start_s"]) & (ends - span / 16000 < ev["end_s"])
    y = np.where(talk, CLASSES.index(UNKNOWN), CLASSES.index(SILENCE))
    return np.stack(xs).astype(np.float32), y


def eval_set(emb, x, y, n_emb):
    """(embeddings, labels, n clean) of clean clips + one fixed-seed noisy copy, each centred in the head's
    window."""
    words = y != CLASSES.index(SILENCE)
    st, en = np.zeros(len(y), int), np.full(len(y), CLIP)
    st[words], en[words] = sc.word_bounds(x[words])
    aug = Augmenter(synthetic_irs(), np.zeros((1, CLIP), np.float32), seed=123)
    noisy = aug(x, st, en)
    noisy[~words] = x[~words]
    audio = in_window(np.concatenate([x, noisy]), span_of(n_emb))
    return emb.clips(audio, n_emb=n_emb), np.concatenate([y, y]), len(y)


def probs(head, x):
    head.eval()
    with torch.no_grad():
        return torch.softmax(head(torch.from_numpy(x)), 1).numpy()


def fit(x, y, val, epochs, hidden, seed, timer):
    torch.manual_seed(seed)
    head = Head(x.shape[1], hidden)
    opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=1e-2)
    steps = epochs * (len(x) // 256 + 1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    best, log = (-1.0, None), []
    for epoch in range(epochs):
        head.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 256):
            b = perm[i : i + 256]
            loss = nn.functional.cross_entropy(head(xt[b]), yt[b], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc = float((probs(head, val[0]).argmax(1) == val[1]).mean())
        log.append(dict(epoch=epoch + 1, loss=round(loss.item(), 4), validation=round(acc, 4)))
        print(f"  epoch {epoch + 1:2d}  loss {loss.item():.3f}  validation (clean+noisy) {acc:.4f}  {timer}",
              flush=True)
        if acc > best[0]:
            best = (acc, {k: v.clone() for k, v in head.state_dict().items()})
    head.load_state_dict(best[1])
    return head, log


def report_split(p, ev, clips):
    _, y, n = ev
    return dict(clean=summarize(y[:n], p[:n].argmax(1), [c.speaker or "noise" for c in clips]),
                noisy=round(float((p[n:].argmax(1) == y[n:]).mean()), 4))


STREAM_CLIPS = os.path.join(MODEL_DIR, "stream_clips.npz")


def write_stream_clips(val, test, path=STREAM_CLIPS, per_class=3, seed=0):
    """Audio (int16) for edge optimize / edge build: calibration from validation speakers, per_class clips of
    each class; --eval data from test speakers (6 per class). assembly/assemble.py turns it into the model's inputs."""
    rng = np.random.default_rng(seed)

    def pick(y, k):
        return np.concatenate([rng.permutation(np.nonzero(y == c)[0])[:k] for c in range(len(CLASSES))])

    i16 = lambda a: (np.clip(a, -1, 32767 / 32768) * 32768).round().astype(np.int16)  # noqa: E731
    ci, hi = pick(val[1], per_class), pick(test[1], 6)
    np.savez_compressed(path, calib=i16(val[0][ci]), calib_labels=val[1][ci], heldout=i16(test[0][hi]),
                        heldout_labels=test[1][hi])
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speech-commands", required=True, metavar="DIR",
                    help="a folder in Speech Commands' layout (the full speech_commands_v0.02 or a share of it)")
    ap.add_argument("--rounds", type=int, default=12, help="augmented copies of the train clips (default 12)")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--embeddings", type=int, default=N_EMB,
                    help=f"consecutive 80 ms embeddings the head reads (default {N_EMB})")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--negatives", nargs="*", default=[], metavar="DIR",
                    help="keyword-free streams by train voices (data/streams.py --voices train --out DIR): their "
                         "windows are _unknown_ / _silence_ examples")
    ap.add_argument("--dry-run", action="store_true", help="train and report, write nothing to model/")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    timer = Timer()
    print(LICENCE)
    try:
        clips = sc.scan(args.speech_commands)
        sc.check_speakers(clips)
        audio = sc.load(clips)
    except sc.LayoutError as e:
        raise SystemExit(f"train_head.py: {e}") from None
    counts = sc.summary(clips)
    print("  " + "; ".join(f"{s}: {v['clips']} clips, {v['speakers']} speakers" for s, v in counts.items()))
    emb = Embedder(args.threads)
    tr, va, te = (split(clips, audio, s) for s in sc.SPLITS)
    k = args.embeddings
    x, y = train_set(emb, tr[0], tr[1], sc.background(args.speech_commands), args.rounds, timer, k)
    for folder in args.negatives:
        if not os.path.exists(os.path.join(folder, "negatives.wav")):
            raise SystemExit(f"train_head.py: {folder}: no negatives.wav (make it with python3 -m "
                             f"demos.kws.data.streams --voices train --out {folder})")
        xn, yn = negative_windows(emb, folder, k)
        x, y = np.concatenate([x, xn]), np.concatenate([y, yn])
        print(f"  {len(yn)} windows of {folder} ({int((yn == CLASSES.index(UNKNOWN)).sum())} with speech)  {timer}",
              flush=True)
    val, test = eval_set(emb, va[0], va[1], k), eval_set(emb, te[0], te[1], k)
    print(f"train {x.shape}, validation and test embedded  {timer}", flush=True)
    head, log = fit(x, y, val, args.epochs, args.hidden, args.seed, timer)
    report = dict(licence=LICENCE, data=sc.CITATION, splits=counts, rounds=args.rounds, hidden=args.hidden,
                  embeddings=k, negatives=[os.path.relpath(f, MODEL_DIR) for f in args.negatives],
                  seed=args.seed, train_windows=int(len(y)), epochs=args.epochs,
                  chosen_epoch=int(np.argmax([e["validation"] for e in log]) + 1), log=log,
                  validation=report_split(probs(head, val[0]), val, va[2]),
                  test=report_split(probs(head, test[0]), test, te[2]))
    for s in ("validation", "test"):
        r = report[s]
        print(f"{s:10s} clean {r['clean']['accuracy']:.4f} ({r['clean']['n']} clips)  noisy {r['noisy']:.4f}   "
              + "  ".join(f"{c}={a:.2f}" for c, a in r["clean"]["per_class"].items()))
    if args.dry_run:
        return
    path = os.path.join(MODEL_DIR, "head.onnx")
    head.eval()
    torch.onnx.export(head, torch.zeros(1, k, EMB_DIM), path + ".tmp", opset_version=17, dynamo=False,
                      input_names=["embeddings"], output_names=["logits"],
                      dynamic_axes={"embeddings": {0: "batch"}, "logits": {0: "batch"}})
    os.replace(path + ".tmp", path)
    with open(os.path.join(MODEL_DIR, "head_report.json.tmp"), "w") as f:
        json.dump(report, f, indent=1)
    os.replace(os.path.join(MODEL_DIR, "head_report.json.tmp"), os.path.join(MODEL_DIR, "head_report.json"))
    write_stream_clips(va, te)
    print(f"wrote {path} and head_report.json  {timer}")


if __name__ == "__main__":
    main()
