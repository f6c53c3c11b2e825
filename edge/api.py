"""edgepack from Python: the same three steps as the command line, for scripts, CI matrices and notebooks.

    import edge
    info = edge.inspect("model.onnx", input_shapes={"x": [1, 3, 48, 192]})
    report = edge.optimize("model.onnx", "out/model.int8.onnx", quantize="int8", calibration="cal.npz")
    built = edge.build("model.onnx", "dist/model", target="rpi4", optimize={"quantize": "int8",
                       "calibration": "cal.npz"})

Keyword options are pipeline.Options' fields (one per option the pipeline and its passes declare; `edge
optimize --help` lists them as flags). Results are the reports the command line writes beside its outputs.
Errors are edge.errors.EdgeError subclasses with one-line messages and the CLI's exit code."""

from __future__ import annotations

import os
from pathlib import Path

PathLike = str | os.PathLike


def _path(p: PathLike | None) -> Path | None:
    return Path(p) if p is not None else None


def _fields(options: dict) -> dict:
    """Strings for path options become Paths (as the flags' types make them); an unknown option is refused with
    the known ones named."""
    from edge import pipeline
    from edge.errors import UsageError

    known = {o.name: o for o in pipeline.OPTIONS}
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return {k: Path(v) if known[k].type is Path and isinstance(v, str) else v for k, v in options.items()}


def _app_options(app: str | None, given: dict) -> dict:
    """The app's own options, converted as its flags would be (a str for a Path option becomes a Path)."""
    from edge import apps
    from edge.errors import UsageError

    if not given:
        return {}
    if app not in apps.registered():
        raise UsageError(f"app_options without a known app (apps: {', '.join(apps.registered())})")
    types = {o.dest: o.type for o in apps.registered()[app].options}
    unknown = sorted(set(given) - set(types))
    if unknown:
        raise UsageError(f"app {app} has no option(s) {', '.join(unknown)}; it has {', '.join(types) or 'none'}")
    return {k: types[k](v) if isinstance(v, str) and types[k] is not str else v for k, v in given.items()}


def inspect(model: PathLike, input_shapes: dict[str, list[int]] | None = None, backend: str | None = None,
            tensors: bool = False) -> dict:
    """What `edge inspect --json` prints: the model's inputs, outputs, ops, parameters, MACs; with
    a backend that cannot take every model also `backend_check` (for MXNet: what its importer cannot take, before
    and after the lossless passes). Never raises for backend problems: `backend_check["blocking"]` lists them."""
    from edge import describe
    from edge import model as M

    path = Path(model)
    m = M.load(path, check=False)
    info = describe.describe(m, path, tensors=tensors, input_shapes=input_shapes or {})
    if backend:
        from edge import backends

        check = backends.get(backend).preflight(m, input_shapes or {})
        if check is not None:
            info["backend_check"] = check
    return info


def optimize(model: PathLike, output: PathLike, progress=None, target: str | None = None, **options) -> dict:
    """`edge optimize MODEL -o OUTPUT [--target BOARD]`: writes OUTPUT and its .report.json and .report.html;
    returns the report."""
    from edge import pipeline

    opts = pipeline.Options(model=Path(model), output=Path(output), target=target, **_fields(options))
    return pipeline.optimize(opts, progress)


def build(model: PathLike, output: PathLike, target: str = "x86_64", *, backend: str | None = None,
          app: str | None = None, app_options: dict | None = None, optimize: dict | None = None,
          onedir: bool = False, threads: int | None = None, runtime_wheel: PathLike | None = None,
          runtime_tmpdir: str | None = None, progress=print) -> dict:
    """`edge build MODEL -o OUTPUT --target TARGET`: writes the executable and its .report.json; returns the
    report. `optimize`: pipeline options as for optimize(); `app_options`: the app's own (e.g. {"labels": …});
    `backend`: a name in edge.backends.NAMES (default: edge.backends.DEFAULT)."""
    from edge import backends
    from edge.bundle import builder

    opts = builder.BuildOptions(
        model=Path(model), output=Path(output), target=target, onedir=onedir, threads=threads,
        runtime_wheel=_path(runtime_wheel), optimize=_fields(optimize or {}), app=app,
        backend=backend or backends.DEFAULT,
        app_options=_app_options(app, app_options or {}),
        runtime_tmpdir=runtime_tmpdir)
    return builder.build(opts, progress=progress)
