"""How well commands enrolled from a few recordings are heard by speakers the enrolment never heard.

    .venv/bin/python -m demos.kws.evaluation.enrolment --speech-commands DIR [--model build/kws-stream]
        [--split test|validation] [--out benchmarks/results/enrol.json]

New words: every `_unknown_` word of DIR with clips by at least 6 speakers. For k = 1, 3, 5 and 5 draws: six of
those words are enrolled at once, each from k clips of different training speakers (edge/runtime/audio/enrol.py,
the device's own code, through the model's stream), against the bank less those six words; then every clip of
the evaluated speakers (`--split`: test, or validation for choices) is run through the same stream: the enrolled
words' clips are heard or not (or given another enrolled label), and every other clip (other words, the built-in
commands, noise) may trigger an enrolled command. A clip triggers the command whose score is furthest above its
threshold at any 80-ms step. Per k and per word; one speaker enrolling from three of their own takes (heard on
their other takes, their other words triggering); and the time to enrol three takes on one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from demos.kws.assembly.bank import OUT as BANK
from demos.kws.assembly.bank import model_tap
from demos.kws.common import ROOT, SILENCE, UNKNOWN
from demos.kws.data import speech_commands as sc
from edge.runtime.audio import enrol

KS = (1, 3, 5)
DRAWS = 5
AT_ONCE = 6
MIN_SPEAKERS = 6
OWN_TAKES = 3
OUT = Path(ROOT) / "benchmarks" / "results" / "enrol.json"


def decide(commands: list[enrol.Command], bank: enrol.Bank, steps: np.ndarray) -> str | None:
    margins = [float(c.scores(bank, steps).max()) - c.threshold for c in commands]
    best = int(np.argmax(margins))
    return commands[best].label if margins[best] >= 0 else None


def evaluate(clips, steps, vectors, full_bank, rng, split: str) -> dict:
    words = defaultdict(list)
    for i, c in enumerate(clips):
        if c.label == UNKNOWN:
            words[c.word].append(i)
    novel = sorted(w for w, idx in words.items() if len({clips[i].speaker for i in idx}) >= MIN_SPEAKERS)
    result = {"novel_words": novel, "k": {}}
    for k in KS:
        heard = wrong = asked = triggered = others = 0
        per_word = defaultdict(lambda: [0, 0])
        kinds = defaultdict(lambda: [0, 0])
        for _ in range(DRAWS):
            chosen = list(rng.choice(novel, AT_ONCE, replace=False))
            bank = full_bank.without(chosen)
            commands = []
            for w in chosen:
                pool = [i for i in words[w] if clips[i].split == "train"]
                by_speaker = {clips[i].speaker: i for i in rng.permutation(pool)}
                take = list(by_speaker.values())[:k]
                commands.append(enrol.Command(w, vectors[take]).measure(bank))
            for i, c in enumerate(clips):
                if c.split != split:
                    continue
                got = decide(commands, bank, steps[i])
                if c.label == UNKNOWN and c.word in chosen:
                    asked += 1
                    heard += got == c.word
                    wrong += got is not None and got != c.word
                    per_word[c.word][0] += got == c.word
                    per_word[c.word][1] += 1
                else:
                    kind = "noise" if c.label == SILENCE else "other words" if c.label == UNKNOWN else "built-ins"
                    others += 1
                    triggered += got is not None
                    kinds[kind][0] += got is not None
                    kinds[kind][1] += 1
        result["k"][str(k)] = {
            "heard": round(heard / asked, 4), "wrong_label": round(wrong / asked, 4), "clips": asked,
            "non_command_triggering": round(triggered / others, 4), "non_command_clips": others,
            "by_kind": {kd: round(a / b, 4) for kd, (a, b) in sorted(kinds.items())},
            "per_word": {w: round(a / b, 3) for w, (a, b) in sorted(per_word.items())}}
    return result


def own_voice(clips, steps, vectors, full_bank, split: str) -> dict:
    """One speaker enrols a word from three of their own takes and is heard on their other takes of it; their
    clips of every other word may trigger it. The evaluated speakers repeat only the built-in commands, so each
    is enrolled as if it were new (the bank less that word, the model's own command left out)."""
    takes = defaultdict(list)
    for i, c in enumerate(clips):
        if c.split == split and c.label != SILENCE:
            takes[(c.speaker, c.word)].append(i)
    heard = asked = triggered = others = 0
    for (speaker, word), idx in sorted(takes.items()):
        if len(idx) < OWN_TAKES + 1:
            continue
        bank = full_bank.without({word})
        command = enrol.Command(word, vectors[idx[:OWN_TAKES]]).measure(bank)
        for i in idx[OWN_TAKES:]:
            asked += 1
            heard += decide([command], bank, steps[i]) == word
        for (s2, w2), other in takes.items():
            if s2 == speaker and w2 != word:
                others += len(other)
                triggered += sum(decide([command], bank, steps[i]) is not None for i in other)
    return {"enrolments": sum(len(v) > OWN_TAKES for v in takes.values()), "heard": round(heard / asked, 4),
            "clips": asked, "own_other_words_triggering": round(triggered / others, 4), "own_other_clips": others}


def enrol_seconds(tap, bank, audio: list[np.ndarray]) -> float:
    t = time.perf_counter()
    takes = [enrol.check_take(x) for x in audio]
    vectors = np.array([tap.take_vector(bank, t.audio) for t in takes])
    enrol.Command("timed", vectors).measure(bank)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speech-commands", required=True, metavar="DIR")
    ap.add_argument("--model", type=Path, help="assemble.py's output folder (default: assembled now)")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--split", choices=("test", "validation"), default="test",
                    help="whose clips are listened to (validation: for choices; test: to report)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    clips = [c for c in sc.scan(args.speech_commands)]
    with model_tap(args.model) as tap:
        bank = enrol.Bank.load(BANK)
        keep = [c for c in clips if c.label == UNKNOWN or c.split == args.split]
        audio = sc.load(keep)
        t0 = time.monotonic()
        steps, vectors = [], []
        for x in audio:
            take = enrol.check_take(x)
            heard = take.audio if take.problem is None else x
            steps.append(tap.vectors(heard))  # the clip heard
            vectors.append(tap.take_vector(bank, heard))  # the clip as a take
        vectors = np.array(vectors)
        print(f"{len(keep)} clips through the stream in {time.monotonic() - t0:.0f} s", file=sys.stderr)
        result = evaluate(keep, steps, vectors, bank, np.random.default_rng(args.seed), args.split)
        result["own_voice"] = own_voice(keep, steps, vectors, bank, args.split)
        result["enrol_3_takes_seconds"] = round(min(enrol_seconds(tap, bank, list(audio[:3])) for _ in range(3)), 3)
    result["split"] = args.split
    result["speakers"] = len({c.speaker for c in keep if c.split == args.split and c.speaker})
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("| k | heard | wrong label | non-command clips triggering (other words / built-ins / noise) |")
    print("|---|---|---|---|")
    for k, r in result["k"].items():
        kinds = r["by_kind"]
        print(f"| {k} | {100 * r['heard']:.1f} % | {100 * r['wrong_label']:.1f} % | "
              f"{100 * r['non_command_triggering']:.1f} % ({100 * kinds.get('other words', 0):.1f} / "
              f"{100 * kinds.get('built-ins', 0):.1f} / {100 * kinds.get('noise', 0):.1f}) |")
    own = result["own_voice"]
    print(f"one speaker, {own['enrolments']} enrolments from {OWN_TAKES} own takes: {100 * own['heard']:.1f} % of "
          f"{own['clips']} other takes heard; {100 * own['own_other_words_triggering']:.1f} % of their "
          f"{own['own_other_clips']} clips of other words triggering")
    print(f"enrolling 3 takes: {result['enrol_3_takes_seconds']} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
