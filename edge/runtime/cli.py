"""The executable's own command line: --info, --input/--output, --samples, --bench, --threads."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import bundled
from .session import Spec, open_session, specs

EXIT_USAGE = 2  # wrong flags, input names, shapes or dtypes
EXIT_RUNTIME = 3  # the model or backend failed


class InputError(Exception):
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
    return p


def signature(inputs: list[Spec]) -> str:
    return "; ".join(s.describe() for s in inputs)


def check_feed(feeds: dict[str, np.ndarray], inputs: list[Spec], where: str = "") -> dict[str, np.ndarray]:
    expected = {s.name: s for s in inputs}
    wrong = sorted(set(feeds) - set(expected))
    missing = sorted(set(expected) - set(feeds))
    if wrong or missing:
        what = ", ".join([f"unknown input {w!r}" for w in wrong] + [f"missing input {m!r}" for m in missing])
        raise InputError(f"{where}{what}; expected {signature(inputs)}")
    checked = {}
    for name, array in feeds.items():
        spec = expected[name]
        if str(array.dtype) != spec.dtype:
            raise InputError(f"{where}input {name!r} is {array.dtype}, expected {signature(inputs)}")
        fixed = [d for d in spec.shape]
        if array.ndim != len(fixed) or any(isinstance(d, int) and d != n for d, n in zip(fixed, array.shape)):
            raise InputError(f"{where}input {name!r} has shape {list(array.shape)}, expected {signature(inputs)}")
        checked[name] = array
    return checked


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read a .npy array ({e})") from None


def read_inputs(items: list[str], inputs: list[Spec]) -> dict[str, np.ndarray]:
    feeds = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            if len(inputs) != 1:
                raise InputError(f"{item}: give NAME=FILE.npy; the model has inputs {signature(inputs)}")
            name, path = inputs[0].name, item
        feeds[name] = _load_npy(path)
    return check_feed(feeds, inputs)


def read_samples(path: Path, inputs: list[Spec]) -> list[dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k != "labels"}
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read an .npz ({e})") from None
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1:
        raise InputError(f"{path}: arrays hold different sample counts")
    return [check_feed({k: a[i] for k, a in arrays.items()}, inputs, f"{path} sample {i}: ")
            for i in range(counts.pop())]


def write_outputs(path: Path, outputs: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    try:
        np.savez(tmp, **outputs)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def bench(session, feed, runs: int) -> dict:
    for _ in range(min(10, max(2, runs // 10))):
        session.run(feed)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(feed)
        times.append((time.perf_counter() - t) * 1e3)
    t = sorted(times)  # plain Python: numpy.ma and statistics (→ decimal) are not in the bundle
    n = len(t)
    median = t[n // 2] if n % 2 else (t[n // 2 - 1] + t[n // 2]) / 2
    return {"runs": runs, "min_ms": t[0], "median_ms": median, "p90_ms": t[min(n - 1, round(0.9 * (n - 1)))],
            "mean_ms": sum(t) / n}


def synthetic_feed(inputs: list[Spec]) -> dict[str, np.ndarray]:
    """Inputs for --bench when none are given: a dynamic first (batch) dimension becomes 1."""
    feed = {}
    for s in inputs:
        shape = [d if isinstance(d, int) else 1 if i == 0 else None for i, d in enumerate(s.shape)]
        if None in shape:
            raise InputError(f"input {s.name!r} has dynamic dimensions {s.shape}: give --input for --bench")
        size = int(np.prod(shape))
        feed[s.name] = (np.sin(np.arange(size, dtype=np.float64)) * 2).astype(s.dtype).reshape(shape)
    return feed


def main(argv: list[str] | None = None) -> int:
    name = Path(sys.argv[0]).name
    try:
        manifest = bundled.manifest()
    except (OSError, ValueError) as e:
        print(f"{name}: error: this executable's manifest is unreadable ({e}); rebuild it", file=sys.stderr)
        return EXIT_RUNTIME
    if manifest.get("app", {}).get("name") == "voice-commands":
        from .audio import app  # only app executables carry the audio package

        return app.main(argv, manifest)
    try:
        args = parser(name).parse_args(argv)
    except InputError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    return run_model(args, manifest, name)


def run_model(args, manifest: dict, name: str) -> int:
    try:
        if args.info:
            print(json.dumps(manifest, indent=2))
            return 0
        inputs, outputs = specs(manifest["inputs"]), specs(manifest["outputs"])
        args.input += args.paths
        if args.threads is not None and args.threads < 1:
            raise InputError("--threads must be >= 1")
        if not (args.input or args.samples or args.bench):
            raise InputError(f"nothing to do: give --info, --input, --samples or --bench (inputs: {signature(inputs)})")
        if args.input and args.samples:
            raise InputError("give --input or --samples, not both")
        feeds = read_samples(args.samples, inputs) if args.samples else [read_inputs(args.input, inputs)] \
            if args.input else []
        threads = args.threads or int(manifest.get("threads", 1))
        try:
            session = open_session(manifest, bundled.model_path(manifest), threads)
        except Exception as e:  # backend could not load the model: nothing the user can fix with flags
            print(f"{name}: error: the {manifest['backend']['name']} backend cannot load the model: {e}",
                  file=sys.stderr)
            return EXIT_RUNTIME
        if args.bench:
            stats = bench(session, feeds[0] if feeds else synthetic_feed(inputs), args.bench)
            stats["threads"] = threads
            print(json.dumps(stats) if args.json or not sys.stdout.isatty() else
                  f"{args.bench} runs, {threads} thread(s): min {stats['min_ms']:.3f} ms, median "
                  f"{stats['median_ms']:.3f} ms, p90 {stats['p90_ms']:.3f} ms")
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
            print(json.dumps({n: {"shape": list(a.shape), "dtype": str(a.dtype), "data": a.tolist()}
                              for n, a in merged.items()}))
        return 0
    except InputError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
