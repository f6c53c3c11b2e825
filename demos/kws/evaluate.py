"""Step 4: evaluate the exported ONNX model on voices and a synthesizer never trained on.

    demos/kws/.venv-train/bin/python demos/kws/evaluate.py

Runs demos/kws/model/kws.onnx with onnxruntime on
  heldout_voices  espeak-ng voices + festival ked never trained on (used for checkpoint choice)
  heldout_engine  all flite voices (engine never seen; not used for any choice)
each clean and with a fixed-seed augmented copy ("noisy": noise 0-35 dB SNR, rooms, band-limits),
plus generated _silence_. Prints and writes model/eval_report.json: accuracy, per-class accuracy,
confusion matrix (rows = truth, columns = prediction, order of labels.json), per-voice accuracy, and
a check of the sample recording samples/commands.wav (best score of the spoken label per word).
"""

import json
import os

import numpy as np
import onnxruntime as ort
from augment import Augmenter, split_set
from common import CLASSES, CLIP, HERE, IRS, MODEL_DIR, SR, UNKNOWN, Timer, features, read_manifest, read_wav

HOP = SR // 10  # 100 ms, for the sample-recording check


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def scores(sess, audio, bs=256):
    name = sess.get_inputs()[0].name
    return np.concatenate(
        [softmax(sess.run(None, {name: features.log_mel(audio[i : i + bs])})[0]) for i in range(0, len(audio), bs)]
    )


def summarize(y, pred, voices):
    cm = np.zeros((len(CLASSES), len(CLASSES)), int)
    np.add.at(cm, (y, pred), 1)
    per_class = {c: round(float(cm[i, i] / max(cm[i].sum(), 1)), 4) for i, c in enumerate(CLASSES)}
    by_voice = {}
    for v, ok in zip(voices, pred == y):
        by_voice.setdefault(v, []).append(ok)
    return dict(
        accuracy=round(float((pred == y).mean()), 4),
        n=int(len(y)),
        per_class=per_class,
        confusion=cm.tolist(),
        by_voice={v: round(float(np.mean(o)), 4) for v, o in sorted(by_voice.items())},
    )


def print_block(name, r, show_voices):
    print(f"\n== {name}: accuracy {r['accuracy']:.4f} on {r['n']} clips")
    print("   " + "  ".join(f"{c}={a:.2f}" for c, a in r["per_class"].items()))
    if show_voices:
        print("   by voice: " + "  ".join(f"{v}={a:.2f}" for v, a in r["by_voice"].items()))
    w = max(len(c) for c in CLASSES)
    print(" " * (w + 1) + " ".join(f"{c[:5]:>5}" for c in CLASSES))
    for c, row in zip(CLASSES, r["confusion"]):
        print(f"{c:>{w}} " + " ".join(f"{v:5d}" for v in row))


def sample_check(sess):
    """Slide a 1 s window every 100 ms over samples/commands.wav; best score of each spoken word's label."""
    wav, txt = os.path.join(HERE, "samples", "commands.wav"), os.path.join(HERE, "samples", "commands.txt")
    if not os.path.exists(wav):
        return None
    x, _ = read_wav(wav)
    x = np.concatenate([np.zeros(CLIP // 2, np.float32), x, np.zeros(CLIP, np.float32)])
    wins = np.stack([x[i : i + CLIP] for i in range(0, len(x) - CLIP + 1, HOP)])
    p = scores(sess, wins)
    t_end = (np.arange(len(wins)) * HOP + CLIP - CLIP // 2) / SR  # window end time in the file
    out = []
    for line in open(txt):
        if line.startswith("#") or not line.strip():
            continue
        t, word = float(line.split()[0]), line.split()[1]
        near = (t_end > t) & (t_end < t + 1.3)
        k = CLASSES.index(word)
        top = CLASSES[int(np.bincount(p[near].argmax(1), minlength=len(CLASSES)).argmax())]
        out.append(dict(t=t, word=word, best_score=round(float(p[near, k].max()), 3), most_frequent_top=top))
    return out


def main():
    timer = Timer()
    sess = ort.InferenceSession(os.path.join(MODEL_DIR, "kws.onnx"), providers=["CPUExecutionProvider"])
    rows = read_manifest()
    report = {}
    for split in ("heldout_voices", "heldout_engine"):
        x, y, engines, voices = split_set(rows, split)
        names = [f"{e}/{v}" if e != "espeak-ng" else "espeak-ng/*" for e, v in zip(engines, voices)]
        report[split] = summarize(y, scores(sess, x).argmax(1), names)
        unk = np.nonzero(y == CLASSES.index(UNKNOWN))[0]
        aug = Augmenter(np.load(IRS), x[unk], seed=11)
        real = np.array([e != "generated" for e in engines])
        xn = x.copy()
        rs = [r for r in rows if r["split"] == split]
        xn[real] = aug(x[real], np.array([r["start"] for r in rs]), np.array([r["end"] for r in rs]))
        report[split + "_noisy"] = summarize(y, scores(sess, xn).argmax(1), names)
        for k in (split, split + "_noisy"):
            print_block(k, report[k], show_voices=True)
    report["sample_recording"] = sample_check(sess)
    if report["sample_recording"]:
        print("\n== samples/commands.wav (best score of the spoken word's label, 1 s windows every 100 ms)")
        for r in report["sample_recording"]:
            print(
                f"   {r['t']:5.2f}s {r['word']:6s} score {r['best_score']:.3f}  "
                f"most frequent top label {r['most_frequent_top']}"
            )
    report["elapsed_s"] = round(timer.s, 1)
    with open(os.path.join(MODEL_DIR, "eval_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"\nwrote {os.path.join(MODEL_DIR, 'eval_report.json')}  {timer}")


if __name__ == "__main__":
    main()
