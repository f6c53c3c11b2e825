"""DS-CNN step 2: train the DS-CNN (model.py) on train voices, keep the best checkpoint on held-out voices.

    nice -n 19 demos/kws/.venv-train/bin/python -m demos.kws.training.train   # 20 epochs: ~68 min, busy 2 cores

Input: log-mel [1, 40, 98] from edge/runtime/audio/features.py, computed per batch after the
waveform augmentation of augment.py (so every epoch sees new noise, shifts, speeds, rooms, and
_silence_ whose noise switches; with --tempo also words said slower or faster), with each example's
spectrum warped in frequency (--warp), and SpecAugment. With --mined FILE, hard negatives (1 s windows of
train voices, int16 "audio" [N, 16000] in an .npz) are _unknown_ examples in every epoch.
Validation: the heldout_voices split (espeak-ng voices, festival ked, rab and czech_machac, never
trained on), clean plus one fixed augmented copy, plus generated _silence_. The heldout_engine split
(MBROLA voices, flite awb and rms) is not looked at.
Writes .data/kws_best.pt and .data/train_log.json (both git-ignored; assembly/export.py reads them).
"""

import argparse
import json
import os

import numpy as np
import torch
from torch import nn

from demos.kws.common import (
    CHECKPOINT,
    CLASSES,
    CLIP,
    IRS,
    SILENCE,
    TRAIN_LOG,
    UNKNOWN,
    Timer,
    features,
    load_clips,
    read_manifest,
)
from demos.kws.data.augment import NOISE_STEPS, TEMPO, Augmenter
from demos.kws.training.model import DSCNN, n_params


def spec_augment(x, rng):
    """One frequency mask (<= 6 bands) and one time mask (<= 12 frames) per example, p = 0.5 each."""
    b, _, nm, nt = x.shape
    for i in range(b):
        if rng.random() < 0.5:
            w, f = rng.integers(1, 7), rng.integers(0, nm - 6)
            x[i, :, f : f + w] = 0
        if rng.random() < 0.5:
            w, t = rng.integers(1, 13), rng.integers(0, nt - 12)
            x[i, :, :, t : t + w] = 0
    return x


def warp_matrix(alpha, nyquist=features.SAMPLE_RATE / 2):
    """Mel matrix that reads the spectrum with its frequencies scaled by alpha (vocal tract length perturbation).

    Bin f takes the power found at h(f) = f / alpha, piecewise linear so that 0 and Nyquist stay put (Kaldi's
    VTLN warp): formants move by alpha while pitch and duration stay, a speaker axis that speed
    perturbation (which moves all three together) does not cover."""
    hz = np.arange(features.N_FFT // 2 + 1) * features.SAMPLE_RATE / features.N_FFT
    fc = 0.75 * nyquist * min(1.0, alpha)
    src = np.where(hz <= fc, hz / alpha, fc / alpha + (nyquist - fc / alpha) * (hz - fc) / (nyquist - fc))
    pos = src / hz[1]
    lo = np.clip(np.floor(pos).astype(int), 0, len(hz) - 2)
    frac = (pos - lo)[:, None]
    interp = np.zeros((len(hz), len(hz)), np.float64)  # [target bin, source bin]
    np.put_along_axis(interp, lo[:, None], 1 - frac, 1)
    np.put_along_axis(interp, lo[:, None] + 1, frac, 1)
    return (interp.T @ features.mel_matrix()).astype(np.float32)


_WARPS = {}  # alpha -> warped mel matrix


def warped_log_mel(wav, rng, width):
    """features.log_mel with each example's spectrum warped by a random alpha in [1 - width, 1 + width]."""
    if width <= 0:
        return features.log_mel(wav)
    alphas = np.round(rng.uniform(1 - width, 1 + width, len(wav)), 2)
    for a in set(alphas.tolist()) - _WARPS.keys():
        _WARPS[a] = warp_matrix(a)
    return features.log_mel(wav, mel=np.stack([_WARPS[a] for a in alphas.tolist()]))


def validation_set(rows, aug, seed=123):
    """Clean held-out clips + one augmented copy + generated silence -> (features, labels, n_clean)."""
    clips = load_clips(rows)
    y = np.array([CLASSES.index(r["label"]) for r in rows])
    n_sil = int(np.bincount(y)[np.bincount(y) > 0].mean())
    aug.rng = np.random.default_rng(seed)
    noisy = aug(clips, np.array([r["start"] for r in rows]), np.array([r["end"] for r in rows]))
    sil = aug.silence(2 * n_sil)
    x = np.concatenate([clips, sil[:n_sil], noisy, sil[n_sil:]])
    ys = np.concatenate([y, np.full(n_sil, CLASSES.index(SILENCE))] * 2)
    return features.log_mel(x), ys, len(rows) + n_sil


def evaluate(model, x, y, bs=256):
    model.eval()
    with torch.no_grad():
        pred = np.concatenate(
            [
                model(torch.from_numpy(x[i : i + bs]).contiguous(memory_format=torch.channels_last)).argmax(1).numpy()
                for i in range(0, len(x), bs)
            ]
        )
    return pred == y


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=20)  # the committed model; 16 before RHVoice/Pico
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--unknown-ratio", type=float, default=2.0, help="unknown clips per epoch / keyword class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warp", type=float, default=0.1, help="vocal tract length perturbation: alpha in 1 +- warp")
    ap.add_argument("--tempo", type=float, default=0.0,
                    help=f"fraction of words time-stretched (slower or faster speech, pitch kept; augment.py). "
                         f"The committed DS-CNN: 0; --tempo {TEMPO} --warp 0 was measured (demos/kws/EXPERIMENTS.md)")
    ap.add_argument("--noise-steps", type=float, default=NOISE_STEPS,
                    help="fraction of _silence_ examples whose noise switches within the window (augment.py)")
    ap.add_argument(
        "--exclude-unknown",
        default="town,dawn,round,sound",
        help="comma-separated _unknown_ words left out of training (near-confusables of 'down'; '' keeps all)",
    )
    ap.add_argument("--mined", default="", help="hard negatives (.npz, int16 'audio' [N, 16000]): every window "
                    f"is one more {UNKNOWN} example in every epoch, as recorded (stream windows, noise included)")
    ap.add_argument("--confusables", default="", help="comma-separated _unknown_ words drawn --confusable-weight "
                    "times as often as the others (near-confusables of keywords said alone, e.g. lift,bright,start)")
    ap.add_argument("--confusable-weight", type=float, default=4.0, help="how much more often (default 4)")
    ap.add_argument("--checkpoint", default=CHECKPOINT, help="where the best checkpoint goes (log: .json beside it)")
    a = ap.parse_args()
    log_path = TRAIN_LOG if a.checkpoint == CHECKPOINT else os.path.splitext(a.checkpoint)[0] + "_log.json"
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    timer = Timer()

    rows = read_manifest()
    excluded = set(filter(None, a.exclude_unknown.split(",")))
    train = [r for r in rows if r["split"] == "train" and not (r["label"] == UNKNOWN and r["word"] in excluded)]
    val = [r for r in rows if r["split"] == "heldout_voices"]
    clips = load_clips(train)
    starts, ends = np.array([r["start"] for r in train]), np.array([r["end"] for r in train])
    y = np.array([CLASSES.index(r["label"]) for r in train])
    unk = np.nonzero(y == CLASSES.index(UNKNOWN))[0]
    unk_p = None  # a uniform draw, as the committed models had (a p of equal weights would draw other clips)
    if confusables := [w for w in a.confusables.split(",") if w]:
        words = np.array([train[i]["word"] for i in unk])
        if unseen := sorted(set(confusables) - set(words)):
            raise SystemExit(f"--confusables: {', '.join(unseen)}: not {UNKNOWN} words of the train set "
                             "(see UNKNOWN_WORDS in common.py and --exclude-unknown)")
        unk_p = np.where(np.isin(words, confusables), a.confusable_weight, 1.0)
        unk_p /= unk_p.sum()
    kw = np.nonzero(y < CLASSES.index(SILENCE))[0]
    per_class = len(kw) // (len(CLASSES) - 2)
    aug = Augmenter(np.load(IRS), clips[unk], seed=a.seed)
    if a.mined and not os.path.exists(a.mined):
        raise SystemExit(f"{a.mined}: no such file (an .npz of hard negatives, 'audio' [N, 16000] int16)")
    mined = np.load(a.mined)["audio"].astype(np.float32) / 32768 if a.mined else np.zeros((0, CLIP), np.float32)
    xv, yv, n_clean = validation_set(val, aug)
    aug.rng, aug.tempo = np.random.default_rng(a.seed), a.tempo  # validation copies without it
    print(
        f"loaded {len(train)} train clips, {len(val)} held-out-voice clips (val tensors {len(xv)}) in {timer}",
        flush=True,
    )

    model = DSCNN(len(CLASSES), ch=a.channels).to(memory_format=torch.channels_last)
    n_unk, n_sil = int(a.unknown_ratio * per_class), per_class
    steps = (len(kw) + n_unk + len(mined) + n_sil) // a.batch
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=a.epochs * steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    print(
        f"DS-CNN {n_params(model)} parameters; {steps} steps/epoch of {a.batch} "
        f"({len(kw)} keyword + {n_unk} unknown + {len(mined)} hard negative + {n_sil} silence examples)",
        flush=True,
    )

    best, history = -1.0, []
    hard_negatives = -2 - np.arange(len(mined))  # epoch indices: >= 0 a train clip, -1 silence, <= -2 these
    for epoch in range(1, a.epochs + 1):
        t = Timer()
        idx = np.concatenate([kw, rng.choice(unk, n_unk, replace=False, p=unk_p), hard_negatives, np.full(n_sil, -1)])
        rng.shuffle(idx)
        model.train()
        tot_loss, correct, t_data = 0.0, 0, 0.0
        for s in range(steps):
            td = Timer()
            b = idx[s * a.batch : (s + 1) * a.batch]
            real = b[b >= 0]
            speech = aug(clips[real], starts[real], ends[real])
            hard = -2 - b[b <= -2]
            wav = np.concatenate([speech, mined[hard], aug.silence(int((b == -1).sum()), a.noise_steps)])
            yb = np.concatenate([y[real], np.full(len(hard), CLASSES.index(UNKNOWN)),
                                 np.full(int((b == -1).sum()), CLASSES.index(SILENCE))])
            xb = torch.from_numpy(spec_augment(warped_log_mel(wav, rng, a.warp), rng)).contiguous(
                memory_format=torch.channels_last
            )
            t_data += td.s
            out = model(xb)
            loss = loss_fn(out, torch.from_numpy(yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot_loss += loss.item() * len(b)
            correct += int((out.argmax(1).numpy() == yb).sum())
        ok = evaluate(model, xv, yv)
        rec = dict(
            epoch=epoch,
            loss=tot_loss / (steps * a.batch),
            train_acc=correct / (steps * a.batch),
            val_clean=float(ok[:n_clean].mean()),
            val_noisy=float(ok[n_clean:].mean()),
            val=float(ok.mean()),
            epoch_s=round(t.s, 1),
            data_s=round(t_data, 1),
            elapsed_s=round(timer.s, 1),
        )
        history.append(rec)
        mark = ""
        if rec["val"] > best:
            best, mark = rec["val"], "  * best, saved"
            torch.save(
                dict(
                    state_dict=model.state_dict(),
                    classes=CLASSES,
                    channels=a.channels,
                    epoch=epoch,
                    val=rec,
                    args=vars(a),
                ),
                a.checkpoint,
            )
        print(
            f"epoch {epoch:2d}/{a.epochs}  loss {rec['loss']:.3f}  train(aug) {rec['train_acc']:.3f}  "
            f"held-out voices clean {rec['val_clean']:.3f} noisy {rec['val_noisy']:.3f}  "
            f"epoch {t} (augment+features {t_data:.0f}s)  elapsed {timer}{mark}",
            flush=True,
        )
    with open(log_path, "w") as f:
        json.dump(
            dict(
                args=vars(a),
                params=n_params(model),
                train_clips=len(train),
                val_clips=len(val),
                best_val=best,
                total_s=round(timer.s, 1),
                history=history,
            ),
            f,
            indent=1,
        )
    print(f"done in {timer}; best held-out-voice accuracy {best:.4f} -> {a.checkpoint}")


if __name__ == "__main__":
    main()
