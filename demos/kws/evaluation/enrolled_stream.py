"""Commands enrolled on the device, heard in a stream through the real executable by speakers the enrolment
never heard: what a user gets.

    .venv/bin/python -m demos.kws.evaluation.enrolled_stream --speech-commands DIR [--model build/kws-stream]
        [--draws 3] [--out benchmarks/results/enrol_stream.json]

The stream: every clip of the evaluated speakers (`--split`, default test: Speech Commands v0.02, split by
speaker as in training), each followed by 1.2-1.8 s of quiet room noise (demos/kws/evaluation/real_stream.py).
For k = 1, 3, 5 and each draw, six new words (Speech Commands words that are not the model's commands, spoken by at
least 6 speakers) are enrolled at once with `voice-commands --enroll WORD FILE…` from k clips of different training
speakers (a take the executable refuses, as clipped or unlike the others, is replaced by another speaker's clip, as
a user records another; counted); then `voice-commands --wav STREAM --fast --json --state DIR` listens. A clip of
an enrolled word is heard when its segment (the clip and the quiet after it) holds a detection of that word, wrong
when it holds only others; any other clip (other words, the built-in commands, noise) triggers when its segment
holds a detection of an enrolled command; the built-in commands are scored as without enrolment, and against the
same stream without any. The evaluated speakers say few of those words (about 12 clips a draw), so the same is
repeated with the model's own ten words enrolled as if new, in an executable built with `--builtin none` (about 280
clips a draw). Also: the listener's peak memory with 0 and 6 commands, and the wall time of `--enroll` with three
takes (the executable's start included), each on one core."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from demos.kws.common import KEYWORDS, ROOT, SILENCE, UNKNOWN, write_wav
from demos.kws.data import speech_commands as sc
from demos.kws.evaluation.listening import score
from demos.kws.evaluation.real_stream import join

KS = (1, 3, 5)
AT_ONCE = 6
MIN_SPEAKERS = 6
OUT = Path(ROOT) / "benchmarks" / "results" / "enrol_stream.json"


def novel_words(clips: list[sc.Clip], split: str) -> list[str]:
    speakers, heard = defaultdict(set), set()
    for c in clips:
        if c.label == UNKNOWN:
            speakers[c.word].add(c.speaker)
            if c.split == split:
                heard.add(c.word)
    return sorted(w for w, s in speakers.items() if len(s) >= MIN_SPEAKERS and w in heard)


def takes_of(clips: list[sc.Clip], word: str, rng: np.random.Generator) -> list[str]:
    """One clip of the word per training speaker, in a random order: the first k are the takes, the others stand
    in for a take the executable refuses (a user records it again)."""
    pool = [c for c in clips if c.word == word and c.label != SILENCE and c.split == "train"]
    by_speaker = {}
    for i in rng.permutation(len(pool)):
        by_speaker.setdefault(pool[i].speaker, pool[i].path)
    return list(by_speaker.values())


def enrol(exe: Path, word: str, candidates: list[str], k: int, state: Path, say) -> tuple[float | None, int]:
    """`--enroll WORD` from the first k candidates; a take refused (the error names its file) is replaced by the
    next candidate, as a user records another. (wall time of the accepted enrolment or None, takes replaced)"""
    files, spare, replaced = candidates[:k], candidates[k:], 0
    while True:
        t = time.monotonic()
        r = subprocess.run([str(exe), "--enroll", word, *files, "--state", str(state), "--threads", "1"],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return time.monotonic() - t, replaced
        bad = next((f for f in files if f in r.stderr), None)
        say(f"  --enroll {word}: {r.stderr.strip()}")
        if bad is None or not spare:
            return None, replaced
        files = [spare.pop(0) if f == bad else f for f in files]
        replaced += 1


def listen(exe: Path, stream: Path, state: Path) -> tuple[list[dict], int]:
    """Detections and the peak resident memory (kB) of the executable and its descendants (the onefile's
    bootloader waits for its Python, so wait4's maximum covers both)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen([str(exe), "--wav", str(stream), "--fast", "--json", "--threads", "1", "--state",
                              str(state)], stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            sys.exit(f"{exe} failed ({p.returncode}): {err.read()[-2000:]}")
        return [json.loads(line) for line in out.read().splitlines() if line.strip()], usage.ru_maxrss


def segments(events: list[dict], hits: list[dict]) -> dict[int, list[dict]]:
    starts = np.array([e["start_s"] for e in events])
    seg: dict[int, list[dict]] = defaultdict(list)
    for h in hits:
        i = int(np.searchsorted(starts, h["t"], side="right")) - 1
        if i >= 0:
            seg[i].append(h)
    return seg


def judge(events: list[dict], hits: list[dict], chosen: list[str]) -> dict:
    seg = segments(events, hits)
    asked = heard = wrong = 0
    per_word = defaultdict(lambda: [0, 0])
    kinds = defaultdict(lambda: [0, 0])
    for i, e in enumerate(events):
        got = [h["label"] for h in seg.get(i, [])]
        if e["label"] != SILENCE and e["word"] in chosen:
            asked += 1
            ok = e["word"] in got
            heard += ok
            wrong += bool(got) and not ok
            per_word[e["word"]][0] += ok
            per_word[e["word"]][1] += 1
            continue
        kind = "noise" if e["label"] == SILENCE else "built-ins" if e["label"] in KEYWORDS else "other words"
        kinds[kind][0] += any(g in chosen for g in got)
        kinds[kind][1] += 1
    others = sum(n for _, n in kinds.values())
    return {"heard": round(heard / asked, 4), "wrong_label": round(wrong / asked, 4), "clips": asked,
            "non_command_triggering": round(sum(a for a, _ in kinds.values()) / others, 4),
            "non_command_clips": others, "by_kind": {k: round(a / n, 4) for k, (a, n) in sorted(kinds.items())},
            "per_word": {w: [a, n] for w, (a, n) in sorted(per_word.items())},
            "built_ins": score(events, [h for h in hits if h["label"] in KEYWORDS])}


def build(model_dir: Path, exe: Path, *flags: str) -> Path:
    subprocess.run([sys.executable, "-m", "edge", "build", str(model_dir / "kws_stream.onnx"), "--app",
                    "voice-commands", "--labels", str(model_dir / "labels.json"), "--target", "x86_64", "-o",
                    str(exe), "--eval", str(model_dir / "heldout.npz"), *flags], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return exe


def scenario(exe: Path, stream: Path, events: list[dict], clips: list[sc.Clip], words: list[str], draws: int,
             seed: int, tmp: Path, say) -> tuple[dict, list[float], list[int]]:
    """For each k, `draws` sets of six of `words` enrolled at once, then the stream listened to."""
    found, enrol_s, peak = {}, [], []
    for k in KS:
        runs, replaced = [], 0
        for d in range(draws):
            rng = np.random.default_rng(1000 * seed + d)
            chosen = list(rng.choice(words, AT_ONCE, replace=False))
            state = tmp / f"{exe.name}-k{k}-d{d}"
            for w in chosen:
                seconds, n = enrol(exe, w, takes_of(clips, w, rng), k, state, say)
                replaced += n
                if k == 3 and seconds is not None:
                    enrol_s.append(seconds)
            hits, kb = listen(exe, stream, state)
            peak.append(kb)
            runs.append(judge(events, hits, chosen))
            say(f"k={k} draw {d}: heard {runs[-1]['heard']:.3f} of {runs[-1]['clips']}, wrong "
                f"{runs[-1]['wrong_label']:.3f}, triggering {runs[-1]['non_command_triggering']:.4f}")
        found[str(k)] = {**merge(runs), "takes_replaced": replaced}
    return found, enrol_s, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speech-commands", required=True, metavar="DIR")
    ap.add_argument("--model", type=Path, help="assemble.py's output folder (default: assembled now)")
    ap.add_argument("--split", choices=("test", "validation"), default="test")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t0 = time.monotonic()
    clips = sc.scan(args.speech_commands)
    words = novel_words(clips, args.split)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            model = tmp / "model"
            subprocess.run([sys.executable, "-m", "demos.kws.assembly.assemble", "-o", str(model)], cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL)
        exe = build(model, tmp / "voice-commands")
        heard_by = [c for c in clips if c.split == args.split]
        order = np.random.default_rng(args.seed).permutation(len(heard_by))
        audio, events = join([heard_by[i] for i in order], args.seed)
        stream = tmp / "stream.wav"
        write_wav(str(stream), audio)
        print(f"[{time.monotonic() - t0:5.0f}s] stream: {len(audio) / 16000 / 60:.1f} min, {len(events)} clips; "
              f"new words: {', '.join(words)}", file=sys.stderr)
        (tmp / "none").mkdir()
        base_hits, base_kb = listen(exe, stream, tmp / "none")
        say = lambda text: print(f"[{time.monotonic() - t0:5.0f}s] {text}", file=sys.stderr, flush=True)  # noqa: E731
        result = {"split": args.split, "novel_words": words, "stream_minutes": round(len(audio) / 16000 / 60, 1),
                  "built_ins_without_enrolment": score(events, base_hits)}
        result["k"], enrol_s, peak = scenario(exe, stream, events, clips, words, args.draws, args.seed, tmp, say)
        # the model's own ten words enrolled as if new, the model's commands off: ten times the test clips
        off = build(model, tmp / "voice-builtin-none", "--builtin", "none")
        result["builtin_words_as_new"], _, _ = scenario(off, stream, events, clips, list(KEYWORDS), args.draws,
                                                        args.seed, tmp, say)
    result["enrol_3_takes_wall_s"] = {"median": round(float(np.median(enrol_s)), 2), "max": round(max(enrol_s), 2)}
    result["peak_memory_kb"] = {"no_commands": base_kb, "six_commands_median": int(np.median(peak))}
    result["seconds"] = round(time.monotonic() - t0)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    table(result)
    return 0


def merge(runs: list[dict]) -> dict:
    per_word = defaultdict(lambda: [0, 0])
    for r in runs:
        for w, (a, n) in r["per_word"].items():
            per_word[w][0] += a
            per_word[w][1] += n
    mean = lambda key: round(float(np.mean([r[key] for r in runs])), 4)  # noqa: E731
    kinds = {k: round(float(np.mean([r["by_kind"][k] for r in runs])), 4) for k in runs[0]["by_kind"]}
    return {"draws": len(runs), "heard": mean("heard"), "wrong_label": mean("wrong_label"),
            "non_command_triggering": mean("non_command_triggering"), "by_kind": kinds,
            "clips_per_draw": runs[0]["clips"], "non_command_clips": runs[0]["non_command_clips"],
            "built_ins_heard": round(float(np.mean([r["built_ins"]["heard_rate"] for r in runs])), 4),
            "per_word": {w: round(a / n, 3) for w, (a, n) in sorted(per_word.items())}}


def table(r: dict) -> None:
    base = r["built_ins_without_enrolment"]["heard_rate"]
    print(f"| words | k | heard | wrong label | non-command clips triggering (other words / built-ins / noise) | "
          f"built-ins heard (without: {100 * base:.1f} %) | takes refused and replaced |")
    print("|---|---|---|---|---|---|---|")
    rows = [("new", k, x) for k, x in r["k"].items()]
    rows += [("built-in, as new", k, x) for k, x in r["builtin_words_as_new"].items()]
    for words, k, x in rows:
        kd = x["by_kind"]
        builtins = "(off)" if words != "new" else f"{100 * x['built_ins_heard']:.1f} %"
        print(f"| {words} | {k} | {100 * x['heard']:.1f} % of {x['clips_per_draw']} | {100 * x['wrong_label']:.1f} % | "
              f"{100 * x['non_command_triggering']:.1f} % ({100 * kd.get('other words', 0):.1f} / "
              f"{100 * kd.get('built-ins', 0):.1f} / {100 * kd.get('noise', 0):.1f}) | "
              f"{builtins} | {x['takes_replaced']} |")
    m = r["peak_memory_kb"]
    print(f"--enroll with 3 takes: {r['enrol_3_takes_wall_s']['median']} s (median, start-up included); peak memory "
          f"{m['no_commands'] / 1024:.1f} MB without commands, {m['six_commands_median'] / 1024:.1f} MB with six")


if __name__ == "__main__":
    sys.exit(main())
