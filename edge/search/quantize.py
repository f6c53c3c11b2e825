"""`--quantize auto`: int8 static with the fewest float nodes, the calibration and the activation type that keep
--max-accuracy-drop, chosen by measurement.

1. Configurations: everything int8, each calibration method (minmax, entropy, percentile) × each activation type
   worth measuring here (the target's; both when the latency is measured on the target's own architecture).
2. If the best of them loses too much: rank the quantized nodes by the error each adds (sensitivity.py), keep the
   most sensitive in float, 1, 2, 3, 4, 6, 8, 12 … (at least one node stays int8), until the drop is within the
   limit;
3. then put back into int8, least sensitive first, every float node the limit does not need: what stays float is
   a set from which no node can be quantized without crossing the limit.
4. Around the best so far: per-tensor scales, and the other activation type.
The winner: Search.choose() (fastest, then smallest; by size when latency is not the board's)."""

from __future__ import annotations

from dataclasses import replace

import onnx

from edge.passes import Context, Outcome
from edge.passes.quantize import CALIBRATION_METHODS, OPTIONS, Int8Settings, Prepared, activation_type
from edge.search import SEARCH_BUDGET, Candidate, Judge, Search, latency_on_target, max_drop, sensitivity


def _steps(n: int):
    """1, 2, 3, 4, 6, 8, 12, 16, 24 … below n: one or a few more nodes at a time, never all (that is no longer an
    int8 model)."""
    k = 1
    while k < n:
        yield k
        k = k + 1 if k < 4 else k + k // 2


class QuantizeSearch:
    def __init__(self, model: onnx.ModelProto, ctx: Context):
        self.ctx = ctx
        self.limit = max_drop(ctx, "--quantize")
        self.prepared = Prepared.make(model, ctx)
        self.search = Search("quantize", Judge(ctx.reference or model, ctx, self.limit), ctx, self.limit)
        self.sensitivity: list[dict] = []

    def attempt(self, settings: Int8Settings) -> Candidate | None:
        settings = replace(settings, per_channel=settings.per_channel and self.prepared.per_channel)
        dst = self.ctx.workdir / f"q-auto-{len(self.search.candidates) + 1}.onnx"
        return self.search.attempt(settings.label(), settings.as_dict(),
                                   lambda: self.prepared.quantize(settings, self.ctx, dst))

    def activation_types(self) -> list[str]:
        first = activation_type(self.ctx)
        if self.ctx.options.get("activations") or not latency_on_target(self.ctx):
            return [first]  # given by the user, or the board's: latency here cannot tell the two apart
        return [first, *(a for a in ("int8", "uint8") if a != first)]

    def run(self) -> tuple[onnx.ModelProto, Outcome]:
        configs = [Int8Settings(method=m, activations=a) for a in self.activation_types() for m in CALIBRATION_METHODS]
        measured = [c for c in map(self.attempt, configs) if c is not None and not c.error]
        if not measured:
            raise self.search.refuse()
        base = min(measured, key=lambda c: (c.drop_pp, c.latency_ms))
        base_settings = _settings(base)
        if not base.meets:
            self.keep_sensitive_in_float(base_settings)
        best = self.search.choose()
        if best is not None:
            self.variants(_settings(best))
        return self.finish()

    def keep_sensitive_in_float(self, base: Int8Settings) -> None:
        if self.search.exhausted():
            return
        self.sensitivity = sensitivity.rank(self.prepared.path, self.ctx.workdir / f"q-auto-{_id(self.search, base)}"
                                            ".onnx", self.ctx.evaluation.feeds, self.ctx.workdir)
        order = [r["node"] for r in self.sensitivity]
        self.search.progress(f"quantize search: sensitivity of {len(order)} quantized nodes; most sensitive: "
                             + ", ".join(f"{r['node']} ({r['added_db']} dB)" for r in self.sensitivity[:3]))
        for k in _steps(len(order)):
            c = self.attempt(base.with_float(order[:k]))
            if c is None:
                return
            if c.meets:
                self.put_back(base, order[:k], order)
                return
        self.search.notes.append("no set of float nodes that leaves a node in int8 met the limit")

    def put_back(self, base: Int8Settings, kept: list[str], order: list[str]) -> None:
        """Quantize again, least sensitive first, each float node the limit does not need."""
        kept = list(kept)
        for node in reversed(list(kept)):
            trial = [n for n in kept if n != node]
            if not trial:
                break
            c = self.attempt(base.with_float(sorted(trial, key=order.index)))
            if c is None:
                return
            if c.meets:
                kept = trial

    def variants(self, best: Int8Settings) -> None:
        if self.prepared.per_channel and best.per_channel:
            self.attempt(replace(best, per_channel=False))
        for other in self.activation_types():
            if other != best.activations:
                self.attempt(replace(best, activations=other))

    def finish(self) -> tuple[onnx.ModelProto, Outcome]:
        s = self.search
        s.stopped = s.stopped or "every planned candidate measured"
        winner = s.choose()
        record = s.record(winner, {"sensitivity": self.sensitivity})
        if winner is None:
            raise s.refuse()
        chosen = _settings(winner)
        ref_ms = s.judge.reference["latency_ms"]
        record["slower_than_float"] = winner.latency_ms > ref_ms
        outcome = self.prepared.outcome
        outcome.update(search=record, activations=chosen.activations, weights="int8",
                       calibration_method=chosen.method, per_channel=chosen.per_channel,
                       float_nodes=list(chosen.float_nodes))
        outcome.note(f"auto: {len(s.candidates)} candidates in {s.elapsed():.0f}s; chose {record['why']}")
        if record["slower_than_float"]:
            where = "here" if s.by_latency else f"here (not on the {self.ctx.target.name} board)"
            outcome.note(f"int8 runs slower than float {where}: {winner.latency_ms:.3f} ms against {ref_ms:.3f} ms")
        return winner.model, outcome


def _settings(c: Candidate) -> Int8Settings:
    d = c.settings
    return Int8Settings(d["method"], d["activations"], d["per_channel"], tuple(d["float_nodes"]))


def _id(search: Search, settings: Int8Settings) -> int:
    return next(c.id for c in search.candidates if c.settings == settings.as_dict())


class AutoQuantize:
    name = "quantize-auto"
    mode = "auto"  # the --quantize value
    reference = False
    lossless = False
    options = (*OPTIONS, SEARCH_BUDGET)

    def wanted(self, settings):
        return settings["quantize"] == self.mode

    def run(self, model, ctx: Context):
        return QuantizeSearch(model, ctx).run()
