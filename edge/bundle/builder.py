"""`edge build`: optimize, prepare the target's build environment, bundle with PyInstaller, inspect the
bundle, verify it, and only then put it at the output path with its report."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import onnx

from edge import apps, backends, data, doctor, files, pipeline, targets
from edge import model as M
from edge.bundle import contents, elf, envs, licences, pyinstaller, verify
from edge.errors import BuildError, OutputError
from edge.runtime.manifest import Manifest, ModelFile, Optimization, Part, Tensor
from edge.runtime.manifest import Target as ManifestTarget
from edge.version import __version__

VERIFY_SAMPLES = 8


@dataclass
class BuildOptions:
    model: Path
    output: Path
    target: str
    onedir: bool = False
    threads: int | None = None
    runtime_wheel: Path | None = None
    optimize: dict = field(default_factory=dict)  # pipeline.Options fields
    backend: str = backends.DEFAULT  # a name in edge.backends.NAMES
    app: str | None = None  # a name in apps.registered()
    app_options: dict = field(default_factory=dict)
    runtime_tmpdir: str | None = None  # where a onefile executable unpacks itself (PyInstaller's runtime_tmpdir)


class Steps:
    """Times every step and prints progress with elapsed time."""

    def __init__(self, progress):
        self.start = time.monotonic()
        self.seconds: dict[str, float] = {}
        self._print = progress

    def say(self, text: str) -> None:
        self._print(f"[{time.monotonic() - self.start:6.1f}s] {text}")

    def run(self, name: str, fn, *args, **kw):
        self.say(name)
        t = time.monotonic()
        try:
            return fn(*args, **kw)
        finally:
            self.seconds[name] = round(time.monotonic() - t, 2)


def bundle_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def manifest(name: str, model: onnx.ModelProto, packaged: dict, target, threads: int, opt_report: dict,
             backend, app=None, app_settings: dict | None = None, runtime_tmpdir: str | None = None) -> Manifest:
    ev = opt_report["evaluation"]
    spec = packaged["backend"]
    return Manifest(
        name=name,
        model=ModelFile(file=packaged["file"], sha256=M.sha256(model), bytes=model.ByteSize(),
                        source=Path(opt_report["input"]["path"]).name, source_sha256=opt_report["input"]["sha256"]),
        inputs=[Tensor.from_dict(s.as_dict()) for s in M.inputs(model)],
        outputs=[Tensor.from_dict(s.as_dict()) for s in M.outputs(model)],
        backend=Part(spec["name"], backend.runtime_module, {k: v for k, v in spec.items() if k != "name"}),
        target=ManifestTarget(target.name, target.arch, target.glibc_floor),
        threads=threads,
        optimization=Optimization(
            passes=[p["name"] for p in opt_report["passes"] if p["status"] in ("applied", "fallback")],
            size_bytes=[ev["original"]["size_bytes"], ev["optimized"]["size_bytes"]],
            accuracy=[ev["original"]["accuracy"], ev["optimized"]["accuracy"]],
            top1_agreement=ev["comparison"]["top1_agreement"]),
        edgepack=__version__,
        built=datetime.now(UTC).isoformat(timespec="seconds"),
        app=Part(app.name, app.module, app_settings or {}) if app else None,
        runtime_tmpdir=runtime_tmpdir,
    )


def report_path(output: Path) -> Path:
    return output.with_name(output.name + ".report.json")


def html_path(output: Path) -> Path:
    return output.with_name(output.name + ".report.html")


def _absolute(opts: BuildOptions) -> BuildOptions:
    """Every path made absolute once: later steps run in other folders (PyInstaller, the build prefix)."""
    def fix(p):
        return Path(os.path.abspath(p)) if p is not None else None

    opts.model, opts.output, opts.runtime_wheel = fix(opts.model), fix(opts.output), fix(opts.runtime_wheel)
    opts.optimize = {k: fix(v) if k in ("calibration", "eval", "search_eval") else v for k, v in opts.optimize.items()}
    opts.app_options = {k: fix(v) if isinstance(v, Path) else v for k, v in opts.app_options.items()}
    return opts


def _inputs(opts: BuildOptions) -> dict[str, Path | None]:
    return {"input model": opts.model, "--calibration data": opts.optimize.get("calibration"),
            "--eval data": opts.optimize.get("eval"), "--search-eval data": opts.optimize.get("search_eval"),
            "--runtime-wheel": opts.runtime_wheel,
            **{f"--{k}": v for k, v in opts.app_options.items() if isinstance(v, Path)},
            **{f"model's external data file {p.name}": p for p in M.external_data_files(opts.model)}}


def build(opts: BuildOptions, progress=print) -> dict:
    opts = _absolute(opts)
    target = targets.get(opts.target)
    if opts.runtime_wheel:
        envs.check_wheel(opts.runtime_wheel, target)
    name = opts.output.name
    if not name or name.endswith((".onnx", ".json")):
        raise OutputError(f"{opts.output}: give the executable's path, e.g. dist/{Path(opts.model).stem}")
    outputs = {"executable": opts.output, "report": report_path(opts.output), "HTML report": html_path(opts.output)}
    if opts.output.is_dir() and not opts.onedir:
        raise OutputError(f"{opts.output}: is a folder; remove it or choose another -o")
    if report_path(opts.output).is_dir():
        raise OutputError(f"{report_path(opts.output)}: the report path is a folder; remove it or choose another -o")
    app = apps.registered()[opts.app] if opts.app else None
    backend = backends.get(opts.backend)
    doctor.require(target, opts.app, opts.backend)  # emulation, binutils, libraries: before minutes of work
    source = M.load(opts.model)
    # after loading, which reads but never writes: the external data files the model names are inputs too
    files.refuse_overwriting(outputs, _inputs(opts))
    # check the model, the backend and the app's files before minutes of work
    backend.check(target, opts.optimize, source, opts.model)
    backend.requirements(target, opts.runtime_wheel)
    if app:
        app.configure(source, opts.app_options)
    with files.Outputs(*outputs.values()) as out:
        out.prepare()
        with files.work_folder(f".edge-build-{name}-", opts.output.parent) as work:
            report, built = _build(opts, target, app, backend, work, Steps(progress))
            os.rename(built, out.temp(opts.output))
            files.write_json(report, out.temp(report_path(opts.output)))
            pipeline.write_html(report, out.temp(html_path(opts.output)), "build")
            out.commit()
    progress(f"[{report['total_seconds']:6.1f}s] wrote {opts.output} ({report['bytes'] / 1e6:.1f} MB), "
             f"{report_path(opts.output).name} and {html_path(opts.output).name}")
    return report


def _build(opts: BuildOptions, target, app, backend, work: Path, steps: Steps) -> tuple[dict, Path]:
    name = opts.output.name
    optimized_path = work / "model.onnx"
    opt_options = pipeline.Options(model=opts.model, output=optimized_path, target=target.name, **opts.optimize)
    opt_report = steps.run("optimize", pipeline.optimize, opt_options, lambda s: steps.say(f"  optimize: {s}"))
    optimized = M.load(optimized_path)
    env = steps.run("build environment", envs.ensure, target, steps.say, opts.runtime_wheel, app, backend)
    threads = opts.threads or (app and app.default_threads) or target.default_threads
    stage = work / "stage"
    payload = stage / "data"
    payload.mkdir(parents=True)
    feeds = _verify_feeds(opts, optimized)
    packaged = steps.run(f"package for {backend.name}", backend.package, optimized_path, optimized, payload, env,
                         work, feeds, steps.say)
    settings = app.configure(optimized, opts.app_options) if app else None
    app_report = None
    if app and app.stage:
        settings, app_report = steps.run("app files", app.stage, settings, opts.app_options, optimized_path, payload,
                                         steps.say)
    man = manifest(name, optimized, packaged, target, threads, opt_report, backend, app, settings,
                   opts.runtime_tmpdir)
    (payload / "manifest.json").write_text(man.dumps())
    log = envs.cache_dir() / "logs" / f"pyinstaller-{name}.log"
    log.unlink(missing_ok=True)
    boot = None if opts.onedir else steps.run("bootloader", pyinstaller.choose_bootloader, env, target.arch,
                                              target.glibc_floor, log, steps.say)
    built = steps.run("PyInstaller" + (" (emulated)" if env.emulated else ""), pyinstaller.build, env, stage,
                      payload, name, opts.onedir, backend, log, steps.say, strip_tool=env.strip_tool, app=app,
                      runtime_tmpdir=opts.runtime_tmpdir)
    binaries = work / "binaries"
    inside = steps.run("inspect bundle", contents.inspect, env, built, binaries)
    if inside["forbidden_modules"]:
        raise BuildError(f"host-side modules leaked into the bundle: {', '.join(inside['forbidden_modules'])}")
    parts = steps.run("licences", licences.collect, env, built, binaries, inside["modules"], inside["binaries"])
    elf_report = steps.run("glibc floor", check_elf, built, binaries, target)
    steps.say(f"glibc: bundle needs {elf_report['glibc_needed']}, target allows {target.glibc_floor}; "
              f"{elf_report['elf_files']} ELF files, all {target.arch}")
    checked = steps.run("verify" + (" (emulated)" if env.emulated else ""), verify.verify, built, optimized,
                        feeds, work, env=env.run_env(), manifest=man.as_dict(), cross_arch=env.emulated)
    steps.say(f"verified: {checked['samples']} samples, max relative difference {checked['max_rel_diff']:.2g}")
    size = bundle_size(built)
    report = {
        "edgepack": __version__, "output": str(opts.output), "format": "onedir" if opts.onedir else "onefile",
        "bytes": size, "sha256": None if opts.onedir else files.sha256(built),
        "target": target.as_dict(), "manifest": man.as_dict(), "build_env": env.as_dict(),
        "runtime_wheel": {"path": str(opts.runtime_wheel), "sha256": files.sha256(opts.runtime_wheel)}
        if opts.runtime_wheel else None,
        "backend": {**packaged["backend"], **packaged["report"]},
        "app": {"name": app.name, "system_libraries": list(app.system_libraries), **(app_report or {})}
        if app else None,
        "components": inside["components"], "bundle_entries": inside["entries"], "glibc": elf_report,
        "licences": parts,
        "verification": checked, "step_seconds": steps.seconds,
        "total_seconds": round(time.monotonic() - steps.start, 1), "optimize": opt_report,
        "pyinstaller_log": str(log), "bootloader": boot,
    }
    return report, built


def check_elf(built: Path, binaries: Path, target) -> dict:
    """Every ELF file in the bundle: the executable itself, and the binaries inside (extracted, or beside it)."""
    root = built if built.is_dir() else binaries
    files = [(str(p.relative_to(root)), p) for p in sorted(root.rglob("*")) if p.is_file()]
    if not built.is_dir():
        files.append((built.name, built))
    result = elf.check(files, target.glibc_floor, target.arch)
    if result["too_new"]:
        raise BuildError(f"the bundle needs glibc {result['glibc_needed']} but target {target.name} guarantees only "
                         f"{target.glibc_floor}: {', '.join(result['too_new'][:8])}; build on an older base "
                         f"system (see targets/{target.name}.toml)")
    if result["wrong_arch"]:
        raise BuildError(f"the bundle holds binaries for another architecture than {target.arch}: "
                         f"{', '.join(result['wrong_arch'][:8])}")
    return result


def _verify_feeds(opts: BuildOptions, model: onnx.ModelProto) -> list[dict]:
    specs = M.inputs(model)
    source = opts.optimize.get("eval") or opts.optimize.get("calibration")
    if source:
        return data.load(source, specs, "verification data").feeds[:VERIFY_SAMPLES]
    return M.random_inputs(specs, VERIFY_SAMPLES, seed=1)
