"""Apache MXNet 1.9.1: the ONNX model is rewritten for MXNet's importer, converted to symbol + params
in an environment of MXNet's own (numpy < 2, onnx 1.18), and checked against onnxruntime node by node
before anything is packaged, because some importer paths give wrong numbers without an error."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import BackendError, BuildError, TargetError

if TYPE_CHECKING:
    import numpy as np
    import onnx

CONVERTER = Path(__file__).resolve().parent / "mx_convert.py"
FLOAT_ONLY = ("int8", "int8-dynamic", "fp16", "auto")


def _tolerance() -> float:
    from edge import evaluate

    return evaluate.PARITY_RTOL  # MXNet against onnxruntime, as the executable's parity gate


class MXNet:
    name = "mxnet"
    description = "float models, x86_64 and the aarch64 boards"
    python_packages = ("mxnet",)
    board_tables = {"mxnet": ("mxnet", "numpy", "onnx", "pyinstaller", "pip", "blas", "relink", "unavailable"),
                    "mxnet.relink": ("replace", "remove", "add", "debs")}
    runtime_module = "mx"
    hidden = ("mxnet",)
    # host-side or download-only parts: the importer (needs onnx), plotting, HTTP
    excludes = ("onnx", "requests", "graphviz")  # mxnet.contrib.onnx itself imports onnx only when called
    # what `import mxnet` needs of the modules the bare runtime excludes (found by importing it with the
    # others blocked: 524 modules instead of 788)
    keep = ("multiprocessing", "socket", "_socket", "unittest", "numpy.testing", "distutils", "bz2", "_bz2", "lzma",
            "_lzma")

    def check(self, target, optimize, source, source_path) -> None:
        from edge.backends import mxnet_ops, mxnet_relink

        quantize = optimize.get("quantize")
        table = target.tables.get(self.name, {})
        if "unavailable" in table:
            raise TargetError(f"--backend mxnet --target {target.name}: {table['unavailable']}. Use --backend "
                              "onnxruntime for this board (or --target x86_64 for MXNet)")
        if not table.get("mxnet"):
            raise TargetError(f"{target.path}: no [mxnet] table with pins; --backend mxnet is not set up for "
                              f"{target.name}")
        mxnet_relink.plan(target)  # a board file's mistake, before minutes of work
        if quantize in FLOAT_ONLY:
            raise BackendError(f"--quantize {quantize} with --backend mxnet: MXNet 1.9.1's importer takes float "
                               "ONNX graphs only (no QuantizeLinear, ConvInteger or float16), and MXNet's own "
                               "int8 is still ~7x slower than onnxruntime (benchmarks/mxnet_int8.py). Build "
                               "without --quantize, or use --backend onnxruntime for int8")
        mxnet_ops.refuse(source_path, mxnet_ops.preflight(source, optimize).as_dict())

    def requirements(self, target, runtime_wheel: Path | None) -> list[str]:
        if runtime_wheel:
            raise BackendError("--runtime-wheel replaces onnxruntime; it does not go with --backend mxnet")
        t = target.tables[self.name]
        return [f"{k}=={t[k]}" for k in ("mxnet", "numpy", "onnx", "pyinstaller")] + list(t.get("pip", ()))

    def key(self, target) -> dict:
        return {"backend": self.name, "pins": target.tables[self.name]}

    def probe(self) -> str:
        return "{'mxnet': __import__('mxnet').__version__}"

    def package(self, model_path: Path, model: onnx.ModelProto, payload: Path, env, work: Path,
                feeds: list[dict[str, np.ndarray]], progress) -> dict:
        import onnx

        from edge import evaluate
        from edge.backends import mxnet_ops, mxnet_rewrites

        mxnet_ops.refuse_converted(model_path, model)
        fixed = onnx.ModelProto()
        fixed.CopyFrom(model)
        exact = mxnet_rewrites.apply(fixed, mxnet_rewrites.EXACT)
        if exact:  # plain ONNX still: onnxruntime proves the rewrite kept the function
            diff = evaluate.max_rel_diff(evaluate.run_all(evaluate.session(model), feeds),
                                         evaluate.run_all(evaluate.session(fixed), feeds))
            if diff > 1e-5:
                raise BuildError(f"edgepack's MXNet rewrites {sorted(exact)} changed the model's outputs by "
                                 f"{diff:.3g}; please report this model")
            progress(f"mxnet: rewrote {', '.join(f'{k} ({len(v)})' for k, v in exact.items())}; onnxruntime "
                     "confirms the same outputs")
        importer = mxnet_rewrites.apply(fixed, mxnet_rewrites.IMPORTER_ONLY)
        rewritten = work / "model.mxnet.onnx"
        onnx.save(fixed, rewritten)
        prefix = payload / "model"
        info = json.loads(self._converter(env, ["convert", rewritten, prefix], "converting to MXNet").splitlines()[-1])
        progress(f"mxnet: converted to {prefix.name}-symbol.json + {prefix.name}-0000.params (MXNet {info['mxnet']})")
        parity = self._parity(env, model, prefix, feeds, work)
        progress(f"mxnet: parity with onnxruntime on {parity['samples']} samples: max relative difference "
                 f"{parity['max_rel_diff']:.2g}")
        return {"file": "model", "backend": {"name": self.name, "version": info["mxnet"], "engine": "NaiveEngine"},
                "report": {"rewrites": {**exact, **{k: len(v) for k, v in importer.items()}}, "parity": parity,
                           **({"relink": env.packages["relink"]} if "relink" in env.packages else {})}}

    def _converter(self, env, args: list, what: str) -> str:
        # the script's text, not its path: run from this folder, `import mxnet` would find this module
        r = subprocess.run([str(env.python), "-c", CONVERTER.read_text(), *map(str, args)], capture_output=True,
                           text=True)
        if r.returncode != 0:
            tail = [ln for ln in r.stderr.strip().splitlines() if ln.strip()][-3:]
            raise BackendError(f"MXNet failed {what}: {' | '.join(tail)}")
        return r.stdout

    def _parity(self, env, model: onnx.ModelProto, prefix: Path, feeds, work: Path) -> dict:
        """MXNet against onnxruntime; on a difference, name the first node whose output departs."""
        import numpy as np

        from edge import evaluate

        tolerance = _tolerance()
        names = sorted(feeds[0])
        inputs, out = work / "mx-in.npz", work / "mx-out.npz"
        np.savez(inputs, **{n: np.stack([f[n] for f in feeds]) for n in names})
        self._converter(env, ["run", prefix, inputs, out], "running the converted model")
        ref = evaluate.run_all(evaluate.session(model), feeds)
        with np.load(out) as z:
            keys = list(z.files)
            got = [[z[k][i].reshape(r.shape) if z[k][i].size == r.size else z[k][i] for k, r in zip(keys, ref[i])]
                   for i in range(len(feeds))]
        diff = evaluate.max_rel_diff(ref, got)
        if diff <= tolerance:
            return {"samples": len(feeds), "max_rel_diff": diff, "tolerance": tolerance}
        where = self._first_divergence(env, model, prefix, feeds, inputs, work)
        raise BackendError(f"MXNet's conversion gives other numbers than onnxruntime (max relative difference "
                           f"{diff:.3g} > {tolerance}); first diverging node: {where}. Nothing was packaged; use "
                           "--backend onnxruntime for this model")

    def _first_divergence(self, env, model, prefix, feeds, inputs, work) -> str:
        import numpy as np
        import onnx

        from edge import evaluate

        tolerance = _tolerance()
        out = work / "mx-internals.npz"
        self._converter(env, ["run", prefix, inputs, out, "--internals"], "running the converted model's nodes")
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        known = {o.name for o in probe.graph.output}
        for n in probe.graph.node:
            for o in n.output:
                if o and o not in known:
                    probe.graph.output.append(onnx.ValueInfoProto(name=o))
        sess = evaluate.session(probe)
        ort_names = [o.name for o in sess.get_outputs()]
        ref = dict(zip(ort_names, sess.run(None, feeds[0]), strict=True))
        with np.load(out) as z:
            mx = {k: z[k][0] for k in z.files}
        for n in model.graph.node:
            got = mx.get(f"{n.name}_output")
            want = ref.get(n.output[0])
            if got is None or want is None:
                continue
            if got.size != want.size:
                return f"{n.name} ({n.op_type}): output shape {list(got.shape)}, onnxruntime {list(want.shape)}"
            d = float(np.max(np.abs(got.reshape(want.shape) - want)) / max(1.0, float(np.max(np.abs(want)))))
            if d > tolerance:
                return f"{n.name} ({n.op_type}): relative difference {d:.3g}"
        return "(no named intermediate output differs; the difference is in the final outputs)"

    def binaries(self, env) -> list[tuple[str, str]]:
        # loaded with ctypes from mxnet/libinfo.py's search path: PyInstaller's analysis cannot see it
        lib = env.site_packages / "mxnet" / "libmxnet.so"
        if not lib.is_file():
            raise BuildError(f"{env.path}: mxnet/libmxnet.so is missing from the build environment")
        return [(str(lib), "mxnet")]

    def debs(self, target) -> tuple[str, ...]:
        from edge.backends import mxnet_relink

        return mxnet_relink.debs(target)

    def finish_env(self, env_path, target, log, progress) -> dict:
        from edge.backends import mxnet_relink

        return mxnet_relink.relink(env_path, target, log, progress)

    def host_libraries(self, target) -> dict[str, str]:
        # MXNet 1.9.1's libmxnet.so links them, and it converts and runs models here whatever the board
        if not target.tables.get(self.name, {}).get("mxnet"):
            return {}
        return {"gomp": "libgomp1", "quadmath": "libquadmath0"}

    def preflight(self, model, input_shapes) -> dict:
        from edge.backends import mxnet_ops

        return mxnet_ops.preflight(model, {"input_shapes": input_shapes}).as_dict()


BACKEND = MXNet()
