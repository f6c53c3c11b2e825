"""Accuracy-aware searches (`--quantize auto`, `--prune-channels auto`): make candidate models, measure each
against the reference on the --eval data (accuracy with labels, top-1 agreement without), size and latency,
keep those within --max-accuracy-drop, and choose the fastest, then smallest.

A search is bounded by `--search-budget` (seconds or candidates) and prints progress per candidate; its record
(every candidate, the Pareto front, the winner and why) goes into the optimize report's `searches`."""

from __future__ import annotations

import argparse
import platform
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx

from edge import evaluate
from edge.errors import AccuracyGateError, EdgeError, UsageError, one_line
from edge.passes import Context, Option

LATENCY_NOISE = 0.05  # candidates this close to the fastest count as equally fast (measured run-to-run spread)
LATENCY_BUDGET_S = 0.5  # per candidate
DEFAULT_CANDIDATES = 40


@dataclass(frozen=True)
class Budget:
    seconds: float | None = None
    candidates: int | None = None

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "candidates": self.candidates}


def budget(text: str) -> Budget:
    """`--search-budget`: '300s' (seconds), '5m' (minutes) or '40' (candidates)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|)\s*", text)
    if not m or float(m.group(1)) <= 0 or (not m.group(2) and "." in m.group(1)):
        raise argparse.ArgumentTypeError(f"'{text}': give seconds ('300s'), minutes ('5m') or a number of "
                                         "candidates ('40')")
    value, unit = float(m.group(1)), m.group(2)
    return Budget(seconds=value * (60 if unit == "m" else 1)) if unit else Budget(candidates=int(value))


SEARCH_BUDGET = Option("search_budget", "--search-budget", "bound of --quantize auto / --prune-channels auto: "
                       f"seconds ('300s'), minutes ('5m') or candidates ('40'); default {DEFAULT_CANDIDATES} "
                       "candidates", "lossy", type=budget, metavar="B")


@dataclass
class Candidate:
    id: int
    label: str
    settings: dict
    seconds: float = 0.0
    size_bytes: int | None = None
    latency_ms: float | None = None
    accuracy: float | None = None
    top1_agreement: float | None = None
    drop_pp: float | None = None
    meets: bool = False
    pareto: bool = False
    error: str | None = None
    model: onnx.ModelProto | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "model"}

    def quality(self) -> str:
        if self.error:
            return f"failed: {self.error}"
        metric = (f"accuracy {self.accuracy:.2%}" if self.accuracy is not None
                  else f"agreement {self.top1_agreement:.2%}")
        return f"{metric} (drop {self.drop_pp:.2f} pt), {self.size_bytes / 1e3:.1f} kB, {self.latency_ms:.3f} ms"


class Judge:
    """Measures models against the reference on the eval data, the same way for every candidate."""

    def __init__(self, reference: onnx.ModelProto, ctx: Context, max_drop: float):
        self.samples = ctx.evaluation
        self.labels = self.samples.labels
        self.max_drop = max_drop
        sess = evaluate.session(reference)
        self.ref_outputs = evaluate.run_all(sess, self.samples.feeds, self.samples.source)
        drop, basis = evaluate.drop_pp(self.ref_outputs, self.ref_outputs, self.labels)
        if basis is None:
            raise UsageError("--max-accuracy-drop: the model's first output is not class scores, so no accuracy or "
                             "top-1 agreement can be measured for a search")
        self.basis = basis
        self.reference = {"size_bytes": reference.ByteSize(), "latency_ms": self.latency(sess),
                          "accuracy": evaluate.accuracy(self.ref_outputs, self.labels)}

    def latency(self, sess) -> float:
        return evaluate.latency_ms(sess, self.samples.feeds[0], budget_s=LATENCY_BUDGET_S)["median_ms"]

    def measure(self, candidate: Candidate, model: onnx.ModelProto) -> None:
        sess = evaluate.session(model)
        outputs = evaluate.run_all(sess, self.samples.feeds, self.samples.source)
        candidate.drop_pp, _ = evaluate.drop_pp(self.ref_outputs, outputs, self.labels)
        candidate.accuracy = evaluate.accuracy(outputs, self.labels)
        candidate.top1_agreement = evaluate.compare(self.ref_outputs, outputs, [])["top1_agreement"]
        candidate.size_bytes = model.ByteSize()
        candidate.latency_ms = self.latency(sess)
        candidate.meets = candidate.drop_pp <= self.max_drop + 1e-9


def latency_on_target(ctx: Context) -> bool:
    return ctx.target is None or ctx.target.arch == platform.machine()


class Search:
    """Candidates of one search, its budget and progress; `choose()` picks the winner."""

    def __init__(self, kind: str, judge: Judge, ctx: Context, max_drop: float):
        self.kind, self.judge, self.max_drop = kind, judge, max_drop
        self.budget = ctx.value(SEARCH_BUDGET) or Budget(candidates=DEFAULT_CANDIDATES)
        self.by_latency = latency_on_target(ctx)
        self.progress = ctx.progress
        self.start = time.monotonic()
        self.candidates: list[Candidate] = []
        self.stopped = ""
        self.notes: list[str] = []
        self.latency_note = None if self.by_latency else (
            f"latency measured on this {platform.machine()} machine, not on the {ctx.target.name} board "
            f"({ctx.target.arch}): shown for reference only; the winner is chosen by size")

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def exhausted(self) -> bool:
        b = self.budget
        if b.candidates is not None and len(self.candidates) >= b.candidates:
            self.stopped = self.stopped or f"budget of {b.candidates} candidates used"
            return True
        if b.seconds is not None and self.elapsed() >= b.seconds:
            self.stopped = self.stopped or f"budget of {b.seconds:g} s used"
            return True
        return False

    def tried(self, settings: dict) -> Candidate | None:
        return next((c for c in self.candidates if c.settings == settings), None)

    def attempt(self, label: str, settings: dict, make: Callable[[], onnx.ModelProto]) -> Candidate | None:
        """Make and measure one candidate (None when the budget is spent); a candidate that cannot be made or
        run is recorded with its error, never fatal."""
        known = self.tried(settings)
        if known is not None:
            return known
        if self.exhausted():
            return None
        c = Candidate(id=len(self.candidates) + 1, label=label, settings=settings)
        t = time.monotonic()
        try:
            model = make()
            self.judge.measure(c, model)
            c.model = model
        except EdgeError as e:
            c.error = e.message
        except Exception as e:
            c.error = one_line(e)
        c.seconds = round(time.monotonic() - t, 2)
        self.candidates.append(c)
        self._say(c)
        return c

    def _say(self, c: Candidate) -> None:
        best = self.choose()
        limit = f" of ≤{self.budget.candidates}" if self.budget.candidates else ""
        mark = "meets" if c.meets else "misses"
        self.progress(f"{self.kind} search: candidate {c.id}{limit} ({c.label}): {c.quality()}, {mark}; best so far "
                      f"{f'#{best.id}' if best else 'none'}; {self.elapsed():.1f}s")

    def eligible(self) -> list[Candidate]:
        """Within the limit and smaller than the original: a model larger than what it replaces is no optimization
        (int8 with most nodes in float can be, from its scales and QuantizeLinear pairs)."""
        ref = self.judge.reference["size_bytes"]
        return [c for c in self.candidates if c.meets and not c.error and c.size_bytes < ref]

    def choose(self) -> Candidate | None:
        feasible = self.eligible()
        if not feasible:
            return None
        if self.by_latency:
            fastest = min(c.latency_ms for c in feasible)
            feasible = [c for c in feasible if c.latency_ms <= fastest * (1 + LATENCY_NOISE)]
            return min(feasible, key=lambda c: (c.size_bytes, c.latency_ms, c.drop_pp))
        return min(feasible, key=lambda c: (c.size_bytes, c.drop_pp, c.latency_ms))

    def best_missing(self) -> Candidate | None:
        measured = [c for c in self.candidates if not c.error]
        return min(measured, key=lambda c: (c.drop_pp, c.size_bytes)) if measured else None

    def why(self, winner: Candidate) -> str:
        ref = self.judge.reference
        speed = winner.latency_ms / ref["latency_ms"] if ref["latency_ms"] else float("nan")
        size = winner.size_bytes / ref["size_bytes"]
        n = len(self.eligible())
        rule = (f"the fastest of the {n} candidates within the limit and smaller than the original (or within "
                f"{LATENCY_NOISE:.0%} of the fastest, the smallest of those)" if self.by_latency
                else f"the smallest of the {n} candidates within the limit")
        return (f"#{winner.id} ({winner.label}): {self.judge.basis} drop {winner.drop_pp:.2f} pt ≤ {self.max_drop:g} "
                f"pt, {rule}; {size:.2f}× the original's size, {speed:.2f}× its latency")

    def refuse(self) -> AccuracyGateError:
        best = self.best_missing()
        found = (f"the best of {len(self.candidates)} candidates, #{best.id} ({best.label}), lost {best.drop_pp:.2f} "
                 f"points of {self.judge.basis}" if best else "no candidate could be measured")
        larger = [c for c in self.candidates if c.meets and not c.error]
        if larger:
            found += (f"; the {len(larger)} within the limit are no smaller than the original "
                      f"({min(c.size_bytes for c in larger) / self.judge.reference['size_bytes']:.2f}× at best)")
        return AccuracyGateError(f"--{self.kind.replace(' ', '-')} auto: no candidate keeps {self.judge.basis} within "
                                 f"--max-accuracy-drop {self.max_drop:g} ({self.stopped or 'search exhausted'}); "
                                 f"{found}; nothing written. Allow a larger drop or a larger --search-budget")

    def mark_pareto(self) -> None:
        """Non-dominated in (size, latency, drop): no other candidate is at least as good in all three and better
        in one."""
        ok = [c for c in self.candidates if not c.error]
        key = lambda c: (c.size_bytes, c.latency_ms, c.drop_pp)  # noqa: E731
        for c in ok:
            c.pareto = not any(all(a <= b for a, b in zip(key(o), key(c))) and key(o) != key(c) for o in ok)

    def record(self, winner: Candidate | None, extra: dict | None = None) -> dict:
        self.mark_pareto()
        return {
            "kind": self.kind, "max_drop_pp": self.max_drop, "basis": self.judge.basis,
            "data": self.judge.samples.source, "samples": len(self.judge.samples),
            "budget": self.budget.as_dict(), "seconds": round(self.elapsed(), 1),
            "stopped": self.stopped, "latency_note": self.latency_note, "by_latency": self.by_latency,
            "latency_statistic": f"median of {LATENCY_BUDGET_S:g} s of runs (1 thread, batch 1)",
            "reference": self.judge.reference, "candidates": [c.as_dict() for c in self.candidates],
            "winner": winner.id if winner else None, "why": self.why(winner) if winner else "",
            "notes": self.notes, **(extra or {}),
        }


def max_drop(ctx: Context, flag: str) -> float:
    """The search's limit; auto modes need it and labelled or unlabelled --eval data to measure against."""
    limit = ctx.options.get("max_accuracy_drop")
    if limit is None or ctx.evaluation is None:
        raise UsageError(f"{flag} auto needs --eval DATA (held-out samples, with labels for accuracy) and "
                         "--max-accuracy-drop P (the points it may lose)")
    return float(limit)
