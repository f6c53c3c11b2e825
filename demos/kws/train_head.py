"""Step 2b: a keyword head on the pretrained speech embedding (embedding.py), and its ensemble with the DS-CNN.

    nice -n 19 demos/kws/.venv-train/bin/python demos/kws/train_head.py [--rounds 4]
    demos/kws/.venv-train/bin/python demos/kws/train_head.py --keep-head   # after a new DS-CNN: steps 3 only

1. Embeddings of every train clip: clean, plus --rounds augmented copies (augment.py: tempo, speed, shift,
   rooms, band-limits, noise) and generated _silence_ (with noise switches, like train.py); cached in
   .data/emb_train_<rounds>_<digest of the clip list and of augment.py's output on a fixed batch>.npz.
   Plus the hard negatives of mine.py (.data/mined.npz, if present): windows of a keyword-free stream by train
   voices that the previous ensemble took for a keyword, as _unknown_ (--mined-copies times each).
2. An MLP head (3 x 96 -> 128 -> 128 -> 12) trained on them with torch; the epoch is chosen on
   heldout_voices (clean + one fixed noisy copy), like train.py. heldout_engine is only reported.
3. The ensemble: softmax of the weighted mean of the DS-CNN's and the head's logits (the normalised
   weighted geometric mean of their probabilities; assemble.py's default), weight chosen on
   heldout_voices. The weighted mean of probabilities is reported beside it ("ensemble_mean").
Writes model/head.onnx (input "embeddings" [N, 3, 96], output "logits" [N, 12]) and
model/head_report.json (accuracy per split of the head alone, the DS-CNN alone and the ensemble, per class
and per engine, confusion matrices). assemble.py then builds the streaming model from kws.onnx +
head.onnx + the embedding files.
"""

import argparse
import hashlib
import json
import os

import numpy as np
import onnxruntime as ort
import torch
from augment import NOISE_STEPS, TEMPO, Augmenter, split_set
from common import CLASSES, CLIP, DATA, IRS, MODEL_DIR, SILENCE, SR, UNKNOWN, Timer, features, load_clips, read_manifest
from embedding import EMB_DIM, LICENCE, N_EMB, Embedder
from evaluate import geometric, softmax, summarize
from export import committed_clips
from torch import nn


class Head(nn.Module):
    def __init__(self, hidden=128, dropout=0.3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(N_EMB * EMB_DIM, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, len(CLASSES)))

    def forward(self, x):  # [B, 3, 96] embeddings -> logits [B, 12]
        return self.net(x)


def augmentation_fingerprint(n=64):
    """Bytes of what augment.py does to a fixed batch (tones, word bounds, silences): changes with its behaviour,
    not with an edit to its comments or a refactor that leaves its output alone."""
    t = np.arange(CLIP, dtype=np.float32) / SR
    clips = np.stack([np.sin(2 * np.pi * (100 + 37 * k) * t) * (t > 0.1 + k / 400) for k in range(n)])
    clips = clips.astype(np.float32)
    starts, ends = np.arange(n) * 40 + 1600, np.full(n, CLIP - 1000)
    aug = Augmenter(np.load(IRS), clips[:8], seed=1, tempo=TEMPO)
    return aug(clips, starts, ends).tobytes() + aug.silence(n, NOISE_STEPS).tobytes()


def train_set(emb, rows, rounds, timer):
    """Embeddings of the train clips, cached per (train clip list, augmentation behaviour, rounds)."""
    tr = [r for r in rows if r["split"] == "train"]
    digest = hashlib.sha256("\n".join(r["path"] for r in tr).encode() + augmentation_fingerprint()).hexdigest()[:10]
    path = os.path.join(DATA, f"emb_train_{rounds}_{digest}.npz")
    if os.path.exists(path):
        d = np.load(path)
        return d["x"], d["y"]
    clips = load_clips(tr)
    y = np.array([CLASSES.index(r["label"]) for r in tr])
    st, en = np.array([r["start"] for r in tr]), np.array([r["end"] for r in tr])
    aug = Augmenter(np.load(IRS), clips[y == CLASSES.index(UNKNOWN)], seed=1, tempo=TEMPO)
    n_sil = int(np.bincount(y).mean())
    xs, ys = [emb.clips(clips)], [y]
    print(f"  clean train clips embedded: {len(y)}  {timer}", flush=True)
    for k in range(rounds):
        a = np.concatenate([aug(clips[j : j + 512], st[j : j + 512], en[j : j + 512]) for j in range(0, len(y), 512)])
        xs += [emb.clips(a), emb.clips(aug.silence(n_sil, NOISE_STEPS))]
        ys += [y, np.full(n_sil, CLASSES.index(SILENCE))]
        print(f"  augmented round {k + 1}/{rounds} embedded  {timer}", flush=True)
    x, y = np.concatenate(xs).astype(np.float32), np.concatenate(ys)
    np.savez(path, x=x, y=y)
    return x, y


def eval_sets(emb, rows, cnn):
    """{split: (head input, DS-CNN probabilities, labels, voices, n_clean)}: clean clips + one noisy copy."""
    aug = Augmenter(np.load(IRS), np.zeros((1, 16000), np.float32), seed=1)
    out = {}
    for split in ("heldout_voices", "heldout_engine"):
        x, y, engines, voices = split_set(rows, split)
        rs = [r for r in rows if r["split"] == split]
        aug.rng = np.random.default_rng(123)
        noisy = aug(x[: len(rs)], np.array([r["start"] for r in rs]), np.array([r["end"] for r in rs]))
        audio = np.concatenate([x, noisy])
        names = [f"{e}/{v}" for e, v in zip(engines, voices)]
        p_cnn = np.concatenate([softmax(cnn.run(None, {"logmel": features.log_mel(audio[i : i + 256])})[0])
                                for i in range(0, len(audio), 256)])
        out[split] = (emb.clips(audio), p_cnn, np.concatenate([y, y[: len(rs)]]), names + names[: len(rs)], len(y))
    return out


def probs(head, x):
    head.eval()
    with torch.no_grad():
        return torch.softmax(head(torch.from_numpy(x)), 1).numpy()


STREAM_CLIPS = os.path.join(MODEL_DIR, "stream_clips.npz")
DEFAULT_MINED = [os.path.join(DATA, "mined.npz")]


def write_stream_clips(rows, path=STREAM_CLIPS):
    """Audio (int16) for the streaming model's calibration and held-out data, chosen as export.py chooses
    the DS-CNN's (4 calibration clips per class): assemble.py turns it into the model's inputs."""
    sets = {split: split_set(rows, split) for split in ("train", "heldout_voices", "heldout_engine")}
    xt, yt, hx, hy, he = committed_clips(sets, rows, calib_per_class=4)
    i16 = lambda a: (np.clip(a, -1, 32767 / 32768) * 32768).round().astype(np.int16)  # noqa: E731
    np.savez_compressed(path, calib=i16(xt), calib_labels=yt, heldout=i16(hx), heldout_labels=hy,
                        heldout_engine=np.array(he))
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=4, help="augmented copies of the train clips (default 4)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mined", nargs="*", default=DEFAULT_MINED,
                    help="mine.py's hard negatives, one or more files (none: --mined with no file)")
    ap.add_argument("--mined-copies", type=int, default=4, help="how often each hard negative is in the train set")
    ap.add_argument("--keep-head", action="store_true",
                    help="keep the committed model/head.onnx (no training): after a new DS-CNN, choose the ensemble "
                         "weight and rewrite head_report.json only (under 1 min with --threads 2, instead of 20)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    timer = Timer()
    print(LICENCE)
    emb, rows = Embedder(args.threads), read_manifest()
    cnn = ort.InferenceSession(os.path.join(MODEL_DIR, "kws.onnx"), providers=["CPUExecutionProvider"])
    if args.keep_head:
        kept = ort.InferenceSession(os.path.join(MODEL_DIR, "head.onnx"), providers=["CPUExecutionProvider"])
        previous = json.load(open(os.path.join(MODEL_DIR, "head_report.json")))
        ev = eval_sets(emb, rows, cnn)
        print(f"held-out sets embedded  {timer}", flush=True)
        report = {k: v for k, v in previous.items() if k not in ev}
        choose_and_report(lambda x: softmax(kept.run(None, {"embeddings": x})[0]), ev, report, timer)
        write_stream_clips(rows)
        return
    x, y = train_set(emb, rows, args.rounds, timer)
    n_mined = 0
    missing = [p for p in args.mined if not os.path.exists(p)]
    if missing and args.mined != DEFAULT_MINED:  # the default is used only if mine.py was run
        raise SystemExit(f"{missing[0]}: no such file (make hard negatives with demos/kws/mine.py)")
    mined = [p for p in args.mined if p not in missing]
    if mined:
        xm = emb.clips(np.concatenate([np.load(p)["audio"] for p in mined]).astype(np.float32) / 32768)
        n_mined = len(xm)
        x = np.concatenate([x] + [xm] * args.mined_copies)
        y = np.concatenate([y, np.full(n_mined * args.mined_copies, CLASSES.index(UNKNOWN))])
        print(f"  {n_mined} hard negatives (mine.py) added as {UNKNOWN} x{args.mined_copies}  {timer}", flush=True)
    ev = eval_sets(emb, rows, cnn)
    print(f"train {x.shape}, held-out sets embedded  {timer}", flush=True)
    head = Head()
    opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=1e-2)
    steps = args.epochs * (len(x) // 256 + 1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    best, log = (-1.0, None), []
    for epoch in range(args.epochs):
        head.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 256):
            b = perm[i : i + 256]
            loss = nn.functional.cross_entropy(head(xt[b]), yt[b], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        hx, _, hy, _, _ = ev["heldout_voices"]
        val = float((probs(head, hx).argmax(1) == hy).mean())
        log.append(dict(epoch=epoch + 1, loss=round(loss.item(), 4), heldout_voices=round(val, 4)))
        print(f"  epoch {epoch + 1:2d}  loss {loss.item():.3f}  held-out voices (clean+noisy) {val:.4f}  {timer}",
              flush=True)
        if val > best[0]:
            best = (val, {k: v.clone() for k, v in head.state_dict().items()})
    head.load_state_dict(best[1])
    report = dict(licence=LICENCE, rounds=args.rounds, train_windows=int(len(y)), epochs=args.epochs,
                  hard_negatives=n_mined, hard_negative_files=[os.path.basename(p) for p in mined],
                  hard_negative_copies=args.mined_copies if n_mined else 0,
                  chosen_epoch=int(np.argmax([e["heldout_voices"] for e in log]) + 1), log=log)
    choose_and_report(lambda x: probs(head, x), ev, report, timer)
    head.eval()
    path = os.path.join(MODEL_DIR, "head.onnx")
    torch.onnx.export(head, torch.zeros(1, N_EMB, EMB_DIM), path + ".tmp", opset_version=17, dynamo=False,
                      input_names=["embeddings"], output_names=["logits"],
                      dynamic_axes={"embeddings": {0: "batch"}, "logits": {0: "batch"}})
    os.replace(path + ".tmp", path)
    print(f"wrote {path}  {timer}")
    write_stream_clips(rows)


def choose_and_report(head_probs, ev, report, timer):
    """The ensemble weight chosen on heldout_voices (clean + noisy); head, DS-CNN and ensemble accuracy per split
    into report, written to model/head_report.json."""
    hx, pc, hy, _, _ = ev["heldout_voices"]
    ph = head_probs(hx)
    weights = [round(w, 1) for w in np.arange(0.0, 1.01, 0.1)]
    w = max(weights, key=lambda w: (geometric(pc, ph, w).argmax(1) == hy).mean())
    report["cnn_weight"] = w
    for split, (hx, pc, hy, names, n) in ev.items():
        ph = head_probs(hx)
        report[split] = {}
        for model, p in (("head", ph), ("dscnn", pc), ("ensemble", geometric(pc, ph, w)),
                         ("ensemble_mean", w * pc + (1 - w) * ph)):
            report[split][model] = dict(clean=summarize(hy[:n], p[:n].argmax(1), names[:n]),
                                        noisy=round(float((p[n:].argmax(1) == hy[n:]).mean()), 4))
        r = report[split]
        print(f"{split:15s} clean: head {r['head']['clean']['accuracy']:.4f}  "
              f"DS-CNN {r['dscnn']['clean']['accuracy']:.4f}  ensemble {r['ensemble']['clean']['accuracy']:.4f} "
              f"(mean of probabilities {r['ensemble_mean']['clean']['accuracy']:.4f})"
              f"   noisy: {r['head']['noisy']:.4f} / "
              f"{r['dscnn']['noisy']:.4f} / {r['ensemble']['noisy']:.4f}")
        print("   ensemble per class: " + "  ".join(f"{c}={a:.2f}" for c, a in
                                                    report[split]["ensemble"]["clean"]["per_class"].items()))
    path = os.path.join(MODEL_DIR, "head_report.json")
    with open(path + ".tmp", "w") as f:
        json.dump(report, f, indent=1)
    os.replace(path + ".tmp", path)
    print(f"wrote {path} (DS-CNN weight {w})  {timer}")


if __name__ == "__main__":
    main()
