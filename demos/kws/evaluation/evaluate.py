"""DS-CNN step 4: evaluate the exported ONNX model on voices and synthesizers never trained on.

    demos/kws/.venv-train/bin/python -m demos.kws.evaluation.evaluate [--model other.onnx --out report.json]

Runs demos/kws/model/kws.onnx with onnxruntime on
  heldout_voices  whole voices never trained on: espeak-ng dialect en-029 + 12 variants, festival ked,
                  rab, czech_machac (used for checkpoint choice; the >= 95 % figure)
  heldout_engine  MBROLA us1/us2/us3/en1 through festival and espeak-ng (a synthesizer never seen) and
                  flite awb, rms (speakers never seen); not used for any choice: the cross-synth figure
each clean and with a fixed-seed augmented copy ("noisy": noise 0-35 dB SNR, rooms, band-limits),
plus generated _silence_. Prints and writes model/eval_report.json: accuracy, per-class accuracy,
confusion matrix (rows = truth, columns = prediction, order of labels.json), accuracy per engine and
per voice, per _unknown_ word the share taken for a keyword (near-confusables of "down" always
printed), and a check of the sample recording samples/commands.wav (best score of the spoken label).
--model/--out evaluate another ONNX file (e.g. a candidate model) without touching model/.
"""

import argparse
import json
import os

import numpy as np
import onnxruntime as ort

from demos.kws.common import CLASSES, CLIP, HERE, IRS, MODEL_DIR, SR, UNKNOWN, Timer, features, read_manifest, read_wav
from demos.kws.data.augment import Augmenter, split_set

HOP = SR // 10  # 100 ms, for the sample-recording check
NEAR_DOWN = ("town", "dawn", "round", "sound", "done")  # _unknown_ words that sound close to "down"


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def geometric(p_cnn, p_head, w):
    """softmax(w log p_cnn + (1 - w) log p_head) = softmax of the weighted mean of the two models' logits."""
    return softmax(w * np.log(p_cnn + 1e-12) + (1 - w) * np.log(p_head + 1e-12))


def scores(sess, audio, bs=256):
    name = sess.get_inputs()[0].name
    return np.concatenate(
        [softmax(sess.run(None, {name: features.log_mel(audio[i : i + bs])})[0]) for i in range(0, len(audio), bs)]
    )


def summarize(y, pred, voices):
    cm = np.zeros((len(CLASSES), len(CLASSES)), int)
    np.add.at(cm, (y, pred), 1)
    per_class = {c: round(float(cm[i, i] / max(cm[i].sum(), 1)), 4) for i, c in enumerate(CLASSES)}
    by_voice, by_engine = {}, {}
    for v, ok in zip(voices, pred == y):
        by_voice.setdefault(v, []).append(ok)
        by_engine.setdefault(v.split("/")[0], []).append(ok)
    return dict(
        accuracy=round(float((pred == y).mean()), 4),
        n=int(len(y)),
        per_class=per_class,
        confusion=cm.tolist(),
        by_engine={v: round(float(np.mean(o)), 4) for v, o in sorted(by_engine.items())},
        by_voice={v: round(float(np.mean(o)), 4) for v, o in sorted(by_voice.items())},
    )


def unknown_words(rows, pred):
    """Per _unknown_ word: clips, share taken for a keyword, and which keyword most often."""
    out = {}
    for r, p in zip(rows, pred):
        if r["label"] == UNKNOWN:
            out.setdefault(r["word"], []).append(CLASSES[p])
    rep = {}
    for w, ps in sorted(out.items()):
        kw = [p for p in ps if p in CLASSES[:10]]
        top = max(set(kw), key=kw.count) if kw else None
        rep[w] = dict(n=len(ps), as_keyword=round(len(kw) / len(ps), 3), top_keyword=top)
    return rep


def print_block(name, r, show_voices):
    print(f"\n== {name}: accuracy {r['accuracy']:.4f} on {r['n']} clips")
    print("   " + "  ".join(f"{c}={a:.2f}" for c, a in r["per_class"].items()))
    print("   by engine: " + "  ".join(f"{v}={a:.3f}" for v, a in r["by_engine"].items()))
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
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(MODEL_DIR, "kws.onnx"))
    ap.add_argument("--out", default=os.path.join(MODEL_DIR, "eval_report.json"))
    a = ap.parse_args()
    timer = Timer()
    sess = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    rows = read_manifest()
    report = {}
    for split in ("heldout_voices", "heldout_engine"):
        x, y, engines, voices = split_set(rows, split)
        names = [f"{e}/{v}" if e != "espeak-ng" else "espeak-ng/*" for e, v in zip(engines, voices)]
        pred = scores(sess, x).argmax(1)
        report[split] = summarize(y, pred, names)
        report[split]["unknown_words"] = unknown_words([r for r in rows if r["split"] == split], pred)
        unk = np.nonzero(y == CLASSES.index(UNKNOWN))[0]
        aug = Augmenter(np.load(IRS), x[unk], seed=11)
        real = np.array([e != "generated" for e in engines])
        xn = x.copy()
        rs = [r for r in rows if r["split"] == split]
        xn[real] = aug(x[real], np.array([r["start"] for r in rs]), np.array([r["end"] for r in rs]))
        report[split + "_noisy"] = summarize(y, scores(sess, xn).argmax(1), names)
        for k in (split, split + "_noisy"):
            print_block(k, report[k], show_voices=True)
        near = {w: v for w, v in report[split]["unknown_words"].items() if w in NEAR_DOWN or v["as_keyword"] >= 0.2}
        print(f"   {split} _unknown_ words taken for a keyword (near-confusables of 'down' always shown): {near}")
    report["sample_recording"] = sample_check(sess) if a.model == os.path.join(MODEL_DIR, "kws.onnx") else None
    if report["sample_recording"]:
        print("\n== samples/commands.wav (best score of the spoken word's label, 1 s windows every 100 ms)")
        for r in report["sample_recording"]:
            print(
                f"   {r['t']:5.2f}s {r['word']:6s} score {r['best_score']:.3f}  "
                f"most frequent top label {r['most_frequent_top']}"
            )
    report["elapsed_s"] = round(timer.s, 1)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"\nwrote {a.out}  {timer}")


if __name__ == "__main__":
    main()
