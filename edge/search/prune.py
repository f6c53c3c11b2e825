"""`--prune-channels auto`: the largest structured-pruning ratios, global then per layer, that keep
--max-accuracy-drop, chosen by measurement.

1. Global: one ratio for every layer, bisected over RATIOS (accuracy falls as the ratio grows).
2. Per layer: each prunable layer alone one step further (its own sensitivity); then, least sensitive first, the
   steps that keep the limit are taken together, one layer at a time.
The winner: Search.choose() (fastest, then smallest; by size when latency is not the board's). With
`--quantize auto` as well, pruning gets half the limit and quantization the rest (both measured against the
original)."""

from __future__ import annotations

import onnx

from edge.passes import Context, Outcome
from edge.passes.channels import RATIO, feed_shapes, prune
from edge.search import SEARCH_BUDGET, Candidate, Judge, Search, max_drop

RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    c = onnx.ModelProto()
    c.CopyFrom(model)
    return c


class PruneSearch:
    def __init__(self, model: onnx.ModelProto, ctx: Context):
        self.model, self.ctx = model, ctx
        self.limit = max_drop(ctx, "--prune-channels")
        self.shared = ctx.options.get("quantize") == "auto"
        if self.shared:
            self.limit /= 2
        self.search = Search("prune-channels", Judge(ctx.reference or model, ctx, self.limit), ctx, self.limit)
        if self.shared:
            self.search.notes.append(f"half of --max-accuracy-drop ({self.limit:g} pt) for pruning, the rest for "
                                     "--quantize auto")
        self.shapes = feed_shapes(ctx)
        self.outcomes: dict[int, Outcome] = {}

    def attempt(self, ratios: dict[str, float], default: float, label: str) -> Candidate | None:
        settings = {"ratio": default, "layers": dict(sorted(ratios.items()))}
        outcome_box = {}

        def make():
            pruned = _copy(self.model)
            outcome_box["outcome"] = prune(pruned, lambda layer: ratios.get(layer, default), self.shapes)
            if not outcome_box["outcome"]["pruned"]:
                raise ValueError("no layer could be pruned at this ratio")
            return pruned

        c = self.search.attempt(label, settings, make)
        if c is not None and "outcome" in outcome_box:
            self.outcomes[c.id] = outcome_box["outcome"]
        return c

    def run(self) -> tuple[onnx.ModelProto, Outcome]:
        best = self.bisect_global()
        if best is not None:
            self.per_layer(best)
        return self.finish()

    def bisect_global(self) -> float | None:
        lo, hi = -1, len(RATIOS)  # RATIOS[lo] meets (or none), RATIOS[hi] misses (or none tried)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            c = self.attempt({}, RATIOS[mid], f"global {RATIOS[mid]:g}")
            if c is None:
                break
            if c.meets:
                lo = mid
            else:
                hi = mid
        return RATIOS[lo] if lo >= 0 else None

    def per_layer(self, base: float) -> None:
        step = next((r for r in RATIOS if r > base), None)
        if step is None:
            return
        base_c = next(c for c in self.search.candidates if c.settings == {"ratio": base, "layers": {}})
        layers = [p["layer"] for p in self.outcomes[base_c.id]["pruned"]]
        alone = []
        for layer in layers:
            c = self.attempt({layer: step}, base, f"global {base:g}, {layer} {step:g}")
            if c is None:
                return
            if c.meets:
                alone.append((c.drop_pp, -c.size_bytes, layer))
        taken: dict[str, float] = {}
        for _, _, layer in sorted(alone)[:]:
            trial = {**taken, layer: step}
            if len(trial) == 1:
                taken = trial  # measured alone above
                continue
            c = self.attempt(trial, base, f"global {base:g}, {len(trial)} layers {step:g}")
            if c is None:
                return
            if c.meets:
                taken = trial

    def finish(self) -> tuple[onnx.ModelProto, Outcome]:
        s = self.search
        s.stopped = s.stopped or "every planned candidate measured"
        winner = s.choose()
        record = s.record(winner)
        if winner is None:
            raise s.refuse()
        outcome = self.outcomes[winner.id]
        outcome.update(ratio="auto", chosen=winner.settings, search=record)
        outcome.note(f"auto: {len(s.candidates)} candidates in {s.elapsed():.0f}s; chose {record['why']}")
        return winner.model, outcome


class AutoPruneChannels:
    """`--prune-channels auto`: the same flag as the fixed ratio (edge/passes/channels.py), answered by a search."""

    name = "prune-channels"
    options = (RATIO, SEARCH_BUDGET)
    reference = False
    lossless = False

    def wanted(self, settings):
        return settings["prune_channels"] == "auto"

    def run(self, model, ctx: Context):
        return PruneSearch(model, ctx).run()
