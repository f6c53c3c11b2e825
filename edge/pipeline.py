"""`edge optimize`: plan the passes from the options, run them with parity checks, evaluate, gate, write."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import field, make_dataclass
from pathlib import Path
from typing import Any

import onnx

from edge import data, evaluate, files, targets
from edge import model as M
from edge.errors import AccuracyGateError, EdgeError, ModelError, UsageError, one_line
from edge.passes import Context, Option, Outcome, Pass, graph, quantize, ratio
from edge.passes.channels import PRUNE_CHANNELS
from edge.passes.weights import PRUNE_WEIGHTS
from edge.search.prune import AutoPruneChannels
from edge.search.quantize import AutoQuantize
from edge.version import __version__

RANDOM_SAMPLES = 8
PARITY_DATA_SAMPLES = 16


def _at_least_zero(value):
    if value is not None and not value >= 0:  # also refuses nan
        return "--max-accuracy-drop must be >= 0 (percentage points)"
    return None


# the pipeline's own settings; every pass declares its own (edge/passes/*.py, `options`)
LOSSLESS = Option("lossless", "--no-lossless", "skip lossless graph pruning (on by default)", "graph",
                  action="store_false", default=True)
EVALUATION = (
    Option("eval", "--eval", "evaluation data (.npz or folder; optional 'labels')", "evaluation", type=Path,
           metavar="DATA"),
    Option("max_accuracy_drop", "--max-accuracy-drop", "refuse to write the output if accuracy (or top-1 "
           "agreement) drops by more than P points", "evaluation", type=ratio, metavar="P", check=_at_least_zero),
    Option("search_eval", "--search-eval", "what --quantize/--prune-channels auto choose on (default: --eval); "
           "samples of their own keep --eval's figures free of the choice", "evaluation", type=Path, metavar="DATA"),
)
# every pass the pipeline can plan, in the order it runs them
PASSES: tuple[Pass, ...] = (graph.CUT, graph.FIX_SHAPES, graph.CLEAN_INPUTS, graph.OPTIMIZER, graph.SIMPLIFY,
                            graph.INFER_SHAPES, PRUNE_CHANNELS, AutoPruneChannels(), PRUNE_WEIGHTS,
                            *quantize.MODES.values(), AutoQuantize())


def _collect_options(passes) -> tuple[Option, ...]:
    """The pipeline's own options and each pass's, once each (the quantize modes share theirs)."""
    return (LOSSLESS, *{o.name: o for p in passes for o in p.options}.values(), *EVALUATION)


OPTIONS: tuple[Option, ...] = _collect_options(PASSES)


class _OptionsMethods:
    def validate(self) -> None:
        for option in OPTIONS:
            problem = option.check(getattr(self, option.name)) if option.check else None
            if problem:
                raise UsageError(problem)
        if self.output.suffix != ".onnx":
            raise UsageError(f"{self.output}: the output must end in .onnx (the report goes beside it)")
        self.board()  # an unknown target is refused before any work
        for flag, value in (("--quantize", self.quantize), ("--prune-channels", self.prune_channels)):
            if value == "auto" and (self.eval is None or self.max_accuracy_drop is None):
                raise UsageError(f"{flag} auto needs --eval DATA (held-out samples, with labels for accuracy) and "
                                 "--max-accuracy-drop P (the points it may lose)")

    def board(self):
        """The board the model is optimized for (its int8 activation type, its architecture for latency)."""
        return targets.get(self.target) if self.target else targets.for_this_machine()

    def written_files(self) -> dict[str, Path]:
        return {"optimized model": self.output, "report": report_path(self.output),
                "HTML report": html_path(self.output)}

    def read_files(self) -> dict[str, Path | None]:
        return {"input model": self.model, "--calibration data": self.calibration, "--eval data": self.eval,
                "--search-eval data": self.search_eval,
                **{f"model's external data file {p.name}": p for p in M.external_data_files(self.model)}}

    def pass_settings(self) -> dict:
        return {o.name: getattr(self, o.name) for o in OPTIONS}


def _options_class():
    """`edge optimize`'s settings: the model, the output, and one field per declared option (its default too)."""
    # target: a board name (edge build's --target; edge optimize's, default this machine's)
    fields = [("model", Path), ("output", Path), *((o.name, Any, o.field()) for o in OPTIONS),
              ("target", Any, field(default=None))]
    cls = make_dataclass("Options", fields,
                         bases=(_OptionsMethods,), namespace={"__module__": __name__})
    cls.__doc__ = "What `edge optimize` does: MODEL → OUTPUT with the options of the pipeline and its passes."
    return cls


Options = _options_class()


def register(new: Pass, before: str | None = None) -> None:
    """Add a pass: it runs in PASSES order (before the pass named `before`, else last), its options become
    flags of `edge optimize`/`edge build` and fields of Options (docs/extending.md)."""
    global PASSES, OPTIONS, Options
    names = [p.name for p in PASSES]
    at = names.index(before) if before in names else len(PASSES)
    PASSES = (*PASSES[:at], new, *PASSES[at:])
    OPTIONS = _collect_options(PASSES)
    Options = _options_class()


def report_path(output: Path) -> Path:
    return output.with_name(output.stem + ".report.json")


def html_path(output: Path) -> Path:
    return output.with_name(output.stem + ".report.html")


def plan(opts: Options) -> tuple[list[Pass], list[Pass]]:
    """(passes that define the reference function, passes that optimize it), in PASSES order."""
    settings = opts.pass_settings()
    chosen = [p for p in PASSES if p.wanted(settings)]
    return [p for p in chosen if p.reference], [p for p in chosen if not p.reference]


def _summary(m: onnx.ModelProto) -> dict:
    return {"nodes": len(m.graph.node), "initializers": len(m.graph.initializer), "bytes": m.ByteSize()}


def _op_delta(before: onnx.ModelProto, after: onnx.ModelProto) -> tuple[dict, dict]:
    b = Counter(n.op_type for n in before.graph.node)
    a = Counter(n.op_type for n in after.graph.node)
    return dict((b - a).most_common()), dict((a - b).most_common())


def _copy(m: onnx.ModelProto) -> onnx.ModelProto:
    c = onnx.ModelProto()
    c.CopyFrom(m)
    return c


class Runner:
    def __init__(self, ctx: Context, progress=None):
        self.ctx = ctx
        self.records: list[dict] = []
        self.searches: list[dict] = []  # the auto modes' candidates, kept out of the passes table
        self.progress = progress or (lambda text: None)

    def apply(self, p: Pass, model: onnx.ModelProto, check_parity: bool, reference_outputs=None):
        self.progress(p.name)
        start = time.perf_counter()
        record = {"name": p.name, "lossless": p.lossless}
        try:
            result, outcome = p.run(_copy(model), self.ctx)
        except EdgeError:
            raise
        except Exception as e:
            if not p.lossless:
                raise
            # a library step that cannot handle this graph: keep the model as it was and say so
            result, outcome = model, Outcome(status="skipped").note(f"failed: {one_line(e)}")
        record["status"] = outcome.pop("status", "applied")
        if check_parity and result is not model:
            try:
                diff = evaluate.max_rel_diff(reference_outputs, evaluate.run_all(evaluate.session(result),
                                                                                  self.ctx.parity_feeds))
            except Exception as e:
                diff, outcome = float("inf"), outcome.note(f"the result does not run: {one_line(e)}")
            record["parity_max_rel_diff"] = diff
            if not diff <= evaluate.PARITY_RTOL:
                outcome.note(f"reverted: changed outputs by {diff:.3g} (> {evaluate.PARITY_RTOL})")
                record["status"] = "reverted"
                result = model
        if outcome.get("fallback"):
            record["status"] = "fallback"
        record["seconds"] = round(time.perf_counter() - start, 3)
        record["before"], record["after"] = _summary(model), _summary(result)
        record["ops_removed"], record["ops_added"] = _op_delta(model, result)
        if "search" in outcome:
            self.searches.append({"pass": p.name, **outcome.pop("search")})
        record.update(outcome)
        self.records.append(record)
        return result


def _parity_feeds(ref: onnx.ModelProto, samples: list[data.Samples]) -> tuple[list[dict], str]:
    specs = M.inputs(ref)
    given = [feed for s in samples if s is not None for feed in s.feeds[:PARITY_DATA_SAMPLES]]
    if given:
        # dynamic dimensions take the sizes the data has
        shapes = {k: v.shape for k, v in given[0].items()}
        specs = [M.TensorSpec(s.name, s.dtype, shapes[s.name]) for s in specs]
    random = M.random_inputs(specs, RANDOM_SAMPLES, seed=0)
    return given + random, f"{len(given)} data + {len(random)} random samples"


def optimize(opts: Options, progress=None) -> dict:
    opts.validate()
    original = M.load(opts.model)
    # after loading, which reads but never writes: the external data files the model names are inputs too
    files.refuse_overwriting(opts.written_files(), opts.read_files())
    if opts.quantize:
        quantize.preflight(original, opts.quantize, opts.calibration is not None)
    with files.Outputs(opts.output, report_path(opts.output), html_path(opts.output)) as out:
        out.prepare()
        report, optimized = _run(opts, original, progress)
        M.save(optimized, out.temp(opts.output))
        files.write_json(report, out.temp(report_path(opts.output)))
        write_html(report, out.temp(html_path(opts.output)), "optimize")
        out.commit()
    return report


def write_html(report: dict, path: Path, kind: str) -> None:
    """The report as one self-contained page (charts inline): edge/htmlreport/."""
    from edge import htmlreport

    render = htmlreport.render_build if kind == "build" else htmlreport.render_optimize
    files.write_bytes(render(report).encode(), path)


def _run(opts: Options, original: onnx.ModelProto, progress) -> tuple[dict, onnx.ModelProto]:
    with files.work_folder("edge-optimize-") as tmp:
        ctx = Context(workdir=tmp, input_shapes=opts.input_shapes, options=opts.pass_settings(),
                      target=opts.board(), progress=progress or (lambda text: None))
        runner = Runner(ctx, progress)
        reference_passes, work_passes = plan(opts)
        reference = original
        for p in reference_passes:
            reference = runner.apply(p, reference, check_parity=False)
        specs = M.inputs(reference)
        eval_data = data.load(opts.eval, specs, "--eval data") if opts.eval else None
        ctx.calibration = data.load(opts.calibration, specs, "--calibration data") if opts.calibration else None
        ctx.parity_feeds, parity_source = _parity_feeds(reference, [eval_data, ctx.calibration])
        try:
            ref_parity = evaluate.run_all(evaluate.session(reference), ctx.parity_feeds, "parity samples")
        except EdgeError:
            raise
        except Exception as e:
            raise ModelError(f"{opts.model}: onnxruntime cannot run this model: {one_line(e)}") from None
        if eval_data is not None and eval_data.labels is not None:
            data.check_labels(eval_data, ref_parity[0][0])
        ctx.reference = reference
        ctx.evaluation = data.load(opts.search_eval, specs, "--search-eval data") if opts.search_eval else eval_data
        if opts.search_eval and ctx.evaluation.labels is not None:
            data.check_labels(ctx.evaluation, ref_parity[0][0])
        current = reference
        for p in work_passes:
            # lossless passes must keep the reference function; lossy ones are judged by the evaluation
            current = runner.apply(p, current, check_parity=p.lossless, reference_outputs=ref_parity)
        progress and progress("evaluate")
        report = _evaluate(opts, reference, current, eval_data, ctx.parity_feeds, parity_source, ref_parity)
    report["passes"] = runner.records
    report["searches"] = runner.searches
    report["target"] = {"name": ctx.target.name, "arch": ctx.target.arch} if ctx.target else None
    report["edgepack"] = __version__
    report["input"] = {"path": str(opts.model), "sha256": M.sha256(original), "opset": M.opset(original),
                       "bytes": original.ByteSize()}
    _gate(opts, report)
    report["output"] = {"path": str(opts.output), "sha256": M.sha256(current), "bytes": current.ByteSize()}
    return report, current


def lossless_graph(model: onnx.ModelProto, fields: dict) -> onnx.ModelProto:
    """What the lossless part of the pipeline makes of `model` under these Options fields (cut, fixed input
    shapes, pruning and folding), without data, parity checks or evaluation: the graph a backend will be given,
    for checks that must come before minutes of work and must not judge nodes that folding removes."""
    opts = Options(model=Path("preview.onnx"), output=Path("preview.onnx"), **fields)
    reference, work = plan(opts)
    with files.work_folder("edge-preview-") as tmp:
        ctx = Context(workdir=tmp, input_shapes=opts.input_shapes, options=opts.pass_settings())
        runner = Runner(ctx)
        for p in reference + [p for p in work if p.lossless]:
            model = runner.apply(p, model, check_parity=False)
    return model


def _evaluate(opts, reference, optimized, eval_data, parity_feeds, parity_source, ref_parity) -> dict:
    if eval_data is not None:
        feeds, labels, source = eval_data.feeds, eval_data.labels, str(opts.eval)
    else:
        feeds, labels, source = parity_feeds, None, parity_source
    ref = evaluate.measure(reference, feeds, labels, source)
    opt = evaluate.measure(optimized, feeds, labels, source)
    names = [o.name for o in reference.graph.output]
    comparison = evaluate.compare(ref.outputs, opt.outputs, names)
    # the reference's parity outputs were computed once, before the passes ran
    parity_diff = evaluate.max_rel_diff(ref_parity, evaluate.run_all(evaluate.session(optimized), parity_feeds))
    return {"evaluation": {
        "data": source, "samples": len(feeds), "labels": labels is not None,
        "original": ref.metrics, "optimized": opt.metrics, "comparison": comparison,
        "parity": {"samples": parity_source, "max_rel_diff": parity_diff, "tolerance": evaluate.PARITY_RTOL},
    }}


def _gate(opts: Options, report: dict) -> None:
    ev = report["evaluation"]
    lossy = any(not p["lossless"] for p in report["passes"])
    if not lossy and not ev["parity"]["max_rel_diff"] <= evaluate.PARITY_RTOL:
        raise EdgeError(f"lossless passes changed the outputs by {ev['parity']['max_rel_diff']:.3g} "
                        f"(> {evaluate.PARITY_RTOL}); nothing written. Retry with --no-lossless and report this model")
    ref_acc, opt_acc = ev["original"]["accuracy"], ev["optimized"]["accuracy"]
    agreement = ev["comparison"]["top1_agreement"]
    if ref_acc is not None:
        drop, basis = (ref_acc - opt_acc) * 100, "accuracy"
    elif agreement is not None:
        drop, basis = (1 - agreement) * 100, "top-1 agreement"
    else:
        drop, basis = None, None
    ev["drop_pp"], ev["drop_basis"] = drop, basis
    if opts.max_accuracy_drop is None:
        return
    if drop is None:
        raise UsageError("--max-accuracy-drop: the model's first output is not class scores, so no accuracy or "
                         "top-1 agreement can be measured; leave the option out")
    ev["gate"] = {"max_drop_pp": opts.max_accuracy_drop, "passed": drop <= opts.max_accuracy_drop}
    if drop > opts.max_accuracy_drop + 1e-9:
        raise AccuracyGateError(
            f"{basis} dropped by {drop:.2f} points (> --max-accuracy-drop {opts.max_accuracy_drop}); "
            f"{opts.output} not written. Try a milder setting (lower prune ratio, --calibration-method "
            f"entropy or percentile, more calibration data, --exclude-nodes for sensitive layers)")
