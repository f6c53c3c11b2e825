"""A model executable's command line: --info, --input/--output, --samples, --bench, --threads. Apps build on
its parser and run_model for their model flags."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import arrays, bundled
from .feeds import InputError, as_json, check_feed, signature
from .fsutil import reason, replace_whole, same_path, unwritable
from .manifest import Manifest, Tensor
from .notify import NOTIFIER
from .serve import options as serve_options
from .session import open_session

EXIT_USAGE = 2  # wrong flags, input names, shapes or dtypes, unreadable input files
EXIT_RUNTIME = 3  # the model or backend failed, or the machine ran out of memory
EXIT_OUTPUT = 5  # the --output file cannot be written
MAX_BENCH_RUNS = 10_000_000


class OutputError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise InputError(message)


def parser(name: str) -> argparse.ArgumentParser:
    p = _Parser(prog=name, description="Run the model packed into this executable (edgepack).")
    p.add_argument("--info", action="store_true", help="print the manifest (model, inputs, backend, build) as JSON")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                   help="an input array (repeatable); a bare FILE.npy when the model has one input")
    p.add_argument("paths", nargs="*", metavar="FILE.npy", help="same as --input FILE.npy")
    p.add_argument("--samples", type=Path, metavar="FILE.npz",
                   help="run every sample of an .npz (one array per input, first axis = samples)")
    p.add_argument("--output", type=Path, metavar="OUT.npz", help="write every output by name")
    p.add_argument("--json", action="store_true", help="print outputs as JSON on stdout")
    p.add_argument("--bench", type=int, metavar="N", help="time N runs after warm-up; print latency statistics")
    p.add_argument("--threads", type=int, metavar="K", help="inference threads (default: chosen at build time, --info)")
    serve_options.add_flags(p)
    return p


def _read(load, path, kind: str):
    """`load(path)` with every way a file can be wrong as one InputError line."""
    try:
        return load(path)
    except arrays.ArrayFileError as e:
        raise InputError(str(e)) from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not {kind} file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {reason(e)}") from None


def read_inputs(items: list[str], inputs: list[Tensor]) -> dict[str, np.ndarray]:
    feeds = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            if len(inputs) != 1:
                raise InputError(f"{item}: give NAME=FILE.npy; the model has inputs {signature(inputs)}")
            name, path = inputs[0].name, item
        if name in feeds:
            raise InputError(f"input {name!r} given twice ({item})")
        feeds[name] = _read(arrays.load_npy, path, "a .npy")
    return check_feed(feeds, inputs)


def read_samples(path: Path, inputs: list[Tensor]) -> list[dict[str, np.ndarray]]:
    found = {k: a for k, a in _read(arrays.load_npz, path, "an .npz").items() if k != "labels"}
    if any(a.ndim == 0 for a in found.values()):
        raise InputError(f"{path}: every array needs a first axis of samples")
    counts = {len(a) for a in found.values()}
    if len(counts) != 1:
        raise InputError(f"{path}: arrays hold different sample counts" if counts else f"{path}: holds no arrays")
    return [check_feed({k: a[i] for k, a in found.items()}, inputs, f"{path} sample {i}: ")
            for i in range(counts.pop())]


def check_output(path: Path, read: list[str]) -> None:
    """Before any inference: the output is no input, its folder exists and takes a file."""
    for src in read:
        if same_path(path, src):
            raise InputError(f"{path}: --output would overwrite the input {src}; choose another path")
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file path for --output (e.g. out.npz)")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: is a device, pipe or socket, not a file; give a file path for --output")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"{path}: folder {folder} does not exist")
    e = unwritable(folder)
    if e is not None:
        raise OutputError(f"{path}: folder {folder} is not writable ({reason(e)})")


def write_outputs(path: Path, outputs: dict[str, np.ndarray]) -> None:
    try:
        replace_whole(path, lambda tmp: np.savez(tmp, **outputs), suffix=".npz")
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {reason(e)}") from None


def bench(session, feed, runs: int) -> dict:
    """Latency statistics; Ctrl-C ends it early with the statistics of the runs timed so far."""
    times, interrupted = [], False
    try:
        for _ in range(min(10, max(2, runs // 10))):
            session.run(feed)
        for _ in range(runs):
            t = time.perf_counter()
            session.run(feed)
            times.append((time.perf_counter() - t) * 1e3)
    except KeyboardInterrupt:
        interrupted = True
    if not times:
        return {"runs": 0, "requested": runs, "interrupted": interrupted, "min_ms": None, "median_ms": None,
                "p90_ms": None, "mean_ms": None}
    t = sorted(times)  # plain Python: numpy.ma and statistics (→ decimal) are not in the bundle
    n = len(t)
    median = t[n // 2] if n % 2 else (t[n // 2 - 1] + t[n // 2]) / 2
    return {"runs": n, "requested": runs, "interrupted": interrupted, "min_ms": t[0], "median_ms": median,
            "p90_ms": t[min(n - 1, round(0.9 * (n - 1)))], "mean_ms": sum(t) / n}


def bench_line(stats: dict) -> str:
    if not stats["runs"]:
        return "interrupted during warm-up: no run timed"
    cut = f" (interrupted; {stats['requested']} asked)" if stats["interrupted"] else ""
    return (f"{stats['runs']} runs{cut}, {stats['threads']} thread(s): min {stats['min_ms']:.3f} ms, median "
            f"{stats['median_ms']:.3f} ms, p90 {stats['p90_ms']:.3f} ms")


def check_threads(threads: int | None) -> None:
    cores = os.cpu_count() or 1
    if threads is not None and not 1 <= threads <= cores:
        raise InputError(f"--threads {threads}: this machine has {cores} CPU core(s); give 1..{cores}")


def check_bench(runs: int | None) -> None:
    if runs is not None and not 1 <= runs <= MAX_BENCH_RUNS:
        raise InputError(f"--bench {runs}: give a number of runs between 1 and {MAX_BENCH_RUNS:,}")


def warn_non_finite(feeds: list[dict[str, np.ndarray]], name: str) -> None:
    for i, feed in enumerate(feeds):
        for k, a in feed.items():
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                bad = int(a.size - np.isfinite(a).sum())
                where = f" (sample {i})" if len(feeds) > 1 else ""
                print(f"{name}: warning: input {k!r}{where} holds {bad} NaN or infinite value(s)", file=sys.stderr)
                return


def synthetic_feed(inputs: list[Tensor]) -> dict[str, np.ndarray]:
    """Inputs for --bench when none are given: a dynamic first (batch) dimension becomes 1."""
    feed = {}
    for s in inputs:
        shape = [d if isinstance(d, int) else 1 if i == 0 else None for i, d in enumerate(s.shape)]
        if None in shape:
            raise InputError(f"input {s.name!r} has dynamic dimensions {s.shape}: give --input for --bench")
        size = int(np.prod(shape))
        feed[s.name] = (np.sin(np.arange(size, dtype=np.float64)) * 2).astype(s.dtype).reshape(shape)
    return feed


def serve(args, manifest: Manifest, session, name: str) -> int:
    from .serve.model_api import ModelRoutes  # only a serving run needs the HTTP side

    routes = ModelRoutes(manifest, session)
    server = serve_options.start(args, routes.routes(), name, InputError)
    NOTIFIER.ready(f"serving on {server.url}")
    serve_options.wait_for_stop(server)
    server.close()
    print(f"{name}: stopped: served {routes.requests} classification(s), {server.errors} failed", file=sys.stderr,
          flush=True)
    return 0


def main(argv: list[str] | None, manifest: Manifest, name: str) -> int:
    try:
        args = parser(name).parse_args(argv)
    except InputError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return run_model(args, manifest, name)


def run_model(args, manifest: Manifest, name: str) -> int:
    try:
        if args.info:
            print(manifest.dumps())
            return 0
        inputs, outputs = manifest.inputs, manifest.outputs
        args.input += args.paths
        check_threads(args.threads)
        check_bench(args.bench)
        serve_options.check(args, InputError)
        if args.serve and (args.input or args.samples or args.bench or args.output):
            raise InputError("--serve answers requests: give it without --input, --samples, --bench or --output")
        if not (args.input or args.samples or args.bench or args.serve):
            raise InputError("nothing to do: give --info, --input, --samples, --bench or --serve (inputs: "
                             f"{signature(inputs)})")
        if args.input and args.samples:
            raise InputError("give --input or --samples, not both")
        if args.output:
            check_output(args.output, [i.partition("=")[2] or i for i in args.input] +
                         ([str(args.samples)] if args.samples else []))
        feeds = read_samples(args.samples, inputs) if args.samples else [read_inputs(args.input, inputs)] \
            if args.input else []
        warn_non_finite(feeds, name)
        threads = args.threads or manifest.threads
        try:
            session = open_session(manifest, bundled.model_path(manifest), threads)
        except Exception as e:  # backend could not load the model: nothing the user can fix with flags
            print(f"{name}: error: the {manifest.backend.name} backend cannot load the model: {e}",
                  file=sys.stderr)
            return EXIT_RUNTIME
        if args.serve:
            return serve(args, manifest, session, name)
        if args.bench:
            stats = bench(session, feeds[0] if feeds else synthetic_feed(inputs), args.bench)
            stats["threads"] = threads
            print(json.dumps(stats) if args.json or not sys.stdout.isatty() else bench_line(stats), flush=True)
            return 0
        results = [session.run(f) for f in feeds]
        names = [o.name for o in outputs]
        if args.samples:
            merged = {n: np.stack([r[i] for r in results]) for i, n in enumerate(names)}
        else:
            merged = dict(zip(names, results[0]))
        if args.output:
            write_outputs(args.output, merged)
        if args.json or not args.output:
            if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in merged.values()):
                print(f"{name}: warning: outputs hold NaN or infinite values (null in the JSON)", file=sys.stderr)
            print(json.dumps({n: {"shape": list(a.shape), "dtype": str(a.dtype), "data": as_json(a)}
                              for n, a in merged.items()}, allow_nan=False))
        return 0
    except InputError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OutputError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return EXIT_OUTPUT
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
