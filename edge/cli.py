"""`edge` command line: parsing and messages only; the work lives in the modules it calls."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from edge import files
from edge.errors import EdgeError, OutputError, SetupError, UsageError
from edge.version import __version__

MAX_BUILD_THREADS = 64  # more cores than any board edgepack targets


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other usage error
        raise UsageError(f"{self.prog}: {message}")


def add_optimize_options(p: argparse.ArgumentParser) -> None:
    """One flag per option the pipeline and its passes declare (edge/pipeline.py OPTIONS)."""
    from edge import pipeline

    groups = {}
    for option in pipeline.OPTIONS:
        if option.group not in groups:
            groups[option.group] = p.add_argument_group(option.group)
        groups[option.group].add_argument(option.flag, **option.argparse_kwargs())


def optimize_fields(args) -> dict:
    from edge import pipeline

    return {o.name: o.from_flag(getattr(args, o.name)) for o in pipeline.OPTIONS}


def _inspect_args(ins: argparse.ArgumentParser) -> None:
    from edge import backends

    ins.add_argument("model", type=Path)
    ins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ins.add_argument("--tensors", action="store_true", help="also list every node with its input/output tensors")
    ins.add_argument("--backend", choices=backends.NAMES,
                     help="also check that this backend can take every node (what its importer refuses, in the file "
                          "and after the lossless passes a build runs)")
    ins.add_argument("--input-shape", action="append", metavar="NAME=D1,D2,...",
                     help="fix an input's dynamic dimensions as edge optimize/build would: for MACs and for "
                          "--backend (repeatable)")


def _optimize_args(opt: argparse.ArgumentParser) -> None:
    opt.add_argument("model", type=Path)
    opt.add_argument("-o", "--output", type=Path, required=True,
                     help="optimized model (.onnx); its reports (.report.json, .report.html) beside it")
    opt.add_argument("--target", help="the board it is for (targets/*.toml): int8 activation type, and whether "
                                      "latency measured here is the board's (default: this machine's)")
    add_optimize_options(opt)
    opt.add_argument("--json", action="store_true", help="print the report as JSON instead of tables")


def _build_args(bld: argparse.ArgumentParser) -> None:
    from edge import apps, backends

    bld.add_argument("model", type=Path)
    bld.add_argument("-o", "--output", type=Path, required=True, help="the executable (e.g. dist/NAME)")
    bld.add_argument("--target", default="x86_64", help="board from targets/*.toml (`edge targets` lists them)")
    bld.add_argument("--onedir", action="store_true", help="a folder instead of one file (faster start-up)")
    bld.add_argument("--threads", type=int,
                     help="default inference threads in the executable (default: the app's, else the target's)")
    bld.add_argument("--runtime-tmpdir", metavar="DIR",
                     help="where the onefile executable unpacks itself at start-up (default: $TMPDIR, else /tmp; "
                          "boards with a small /tmp can use e.g. /var/tmp or a folder beside the executable)")
    bld.add_argument("--runtime-wheel", type=Path, metavar="WHEEL",
                     help="an onnxruntime wheel to use instead of PyPI's (e.g. a vendor build for Jetson)")
    bld.add_argument("--backend", choices=backends.NAMES, default=backends.DEFAULT,
                     help=f"inference runtime inside the executable (default {backends.DEFAULT}): "
                          + "; ".join(f"{n}: {backends.get(n).description}" for n in backends.NAMES))
    bld.add_argument("--app", choices=list(apps.registered()),
                     help="what the executable runs besides the bare model: "
                          + "; ".join(f"{a.name}: {a.description}" for a in apps.registered().values()))
    for app in apps.registered().values():
        for o in app.options:
            bld.add_argument(o.flag, dest=f"app_{o.dest}", type=o.type, metavar=o.metavar, help=o.help)
    add_optimize_options(bld)


def _run_args(run: argparse.ArgumentParser) -> None:
    run.add_argument("exe", type=Path)
    run.add_argument("args", nargs=argparse.REMAINDER, help="passed to the executable (--info, --input ...)")


def _doctor_args(doc: argparse.ArgumentParser) -> None:
    doc.add_argument("targets", nargs="*", metavar="TARGET", help="boards from targets/*.toml (default: all)")
    doc.add_argument("--fix", action="store_true",
                     help="as root: install the missing Debian packages and enable emulation, then check again")
    doc.add_argument("--tests", action="store_true", help="also what edgepack's own test suite needs")
    doc.add_argument("--json", action="store_true", help="print JSON instead of one line per check")


def _package_args(pkg: argparse.ArgumentParser) -> None:
    pkg.add_argument("exe", type=Path, help="what `edge build` wrote (its report must lie beside it)")
    pkg.add_argument("--deb", action="store_true", required=True,
                     help="a Debian package (.deb, built with dpkg-deb) beside the executable")
    pkg.add_argument("--version", dest="pkg_version", metavar="V",
                     help="the package's Debian version, e.g. 1.2-1 (default: 0.YYYYMMDD.HHMMSS-1 of the build)")
    pkg.add_argument("--service", metavar="ARGS",
                     help="also a systemd service that runs `NAME ARGS` at boot (e.g. \"--mic --serve 8080\"); the "
                          "flags go to /etc/default/NAME, kept across upgrades")
    pkg.add_argument("--maintainer", metavar="'NAME <EMAIL>'",
                     help="the package's Maintainer (default: $DEBFULLNAME <$DEBEMAIL>, else user@host)")
    pkg.add_argument("--repo", type=Path, metavar="DIR",
                     help="also add the package to this local apt repository (Packages, Release; created if missing)")


def _targets_args(tgt: argparse.ArgumentParser) -> None:
    tgt.add_argument("name", nargs="?")
    tgt.add_argument("--json", action="store_true")


# subcommand → (help, its arguments); the arguments are added for the command being run only: the optimize and
# build options come from the pass and app registries, whose imports (onnx, onnxruntime) `edge run` and
# `edge targets` should not pay for
SUBCOMMANDS = {
    "inspect": ("what is in an ONNX model", _inspect_args),
    "optimize": ("prune, quantize and evaluate a model", _optimize_args),
    "build": ("optimize, then package model + runtime into one executable", _build_args),
    "package": ("make a Debian package of an executable (with a systemd service, into an apt repo)",
                _package_args),
    "run": ("run an edgepack executable here (emulated if built for another arch)", _run_args),
    "doctor": ("check what builds for these boards need on this machine (--fix installs it)", _doctor_args),
    "targets": ("list the boards edgepack builds for, or show one", _targets_args),
}


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; with `command`, only that subcommand gets its arguments (None: every one)."""
    p = _Parser(prog="edge", description="Prune, quantize and package ONNX models for edge boards.")
    p.add_argument("--version", action="version", version=f"edgepack {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (text, add_arguments) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=text)
        if command in (None, name):
            add_arguments(sp)
    return p


def _command(argv: list[str]) -> str:
    """The subcommand named on the command line ("" when none is, e.g. `edge --help`)."""
    return next((a for a in argv if not a.startswith("-")), "")


def cmd_inspect(args) -> int:
    from edge import api, model, report

    info = api.inspect(args.model, model.parse_input_shapes(args.input_shape), args.backend, args.tensors)
    check = info.get("backend_check")
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        report.print_inspect(info)
        if args.tensors:
            for n in info["node_names"]:
                print(f"{n['op']:<20} {n['name'] or '-':<30} {', '.join(n['inputs'])} -> {', '.join(n['outputs'])}")
        if check is not None:
            report.print_mxnet_preflight(check)
    if check is not None:
        from edge.backends import mxnet_ops

        mxnet_ops.refuse(args.model, check)
    return 0


def cmd_optimize(args) -> int:
    from edge import api, report

    start = time.monotonic()

    def progress(step: str) -> None:
        if not args.json:
            print(f"[{time.monotonic() - start:6.1f}s] {step}", file=sys.stderr, flush=True)

    result = api.optimize(args.model, args.output, progress, target=args.target, **optimize_fields(args))
    if args.json:
        print(json.dumps(result, indent=2, default=files.json_default))
    else:
        report.print_optimize(result)
    return 0


def cmd_build(args) -> int:
    from edge import api

    if args.threads is not None and not 1 <= args.threads <= MAX_BUILD_THREADS:
        raise UsageError(f"--threads {args.threads}: give 1..{MAX_BUILD_THREADS} (the board's cores; the "
                         "executable also refuses more threads than the machine it runs on has)")
    api.build(args.model, args.output, args.target, backend=args.backend, app=args.app,
              app_options=_app_options(args), optimize=optimize_fields(args), onedir=args.onedir,
              threads=args.threads, runtime_wheel=args.runtime_wheel, runtime_tmpdir=args.runtime_tmpdir,
              progress=lambda text: print(text, file=sys.stderr, flush=True))
    return 0


def _app_options(args) -> dict:
    """The chosen app's own flags; another app's flag given is a usage error."""
    from edge import apps

    chosen = {}
    for app in apps.registered().values():
        for o in app.options:
            value = getattr(args, f"app_{o.dest}")
            if value is not None and app.name != args.app:
                raise UsageError(f"{o.flag} goes with --app {app.name}")
            if app.name == args.app:
                chosen[o.dest] = value
    return chosen


def cmd_targets(args) -> int:
    from edge import report, targets

    if args.name:
        t = targets.get(args.name).as_dict()
        if args.json:
            print(json.dumps(t, indent=2))
        else:
            report.print_target(t)
    else:
        found = {k: t.as_dict() for k, t in targets.all_targets().items()}
        if args.json:
            print(json.dumps(found, indent=2))
        else:
            report.print_targets(list(found.values()))
    return 0


def cmd_doctor(args) -> int:
    from edge import doctor

    need = doctor.need_for(args.targets, tests=args.tests)
    results = doctor.run(need)
    ran = []
    if args.fix and any(r.fixable for r in results):
        ran = doctor.fix(results, say=lambda text: print(f"edge doctor: {text}", file=sys.stderr, flush=True))
        results = doctor.run(need)
    failed = [r for r in results if r.status == "fail"]
    if args.json:
        print(json.dumps({"targets": [t.name for t in need.targets], "ok": not failed, "ran": ran,
                          "checks": [r.as_dict() for r in results]}, indent=2))
    else:
        for r in results:
            print(r.line())
    if failed:
        fix = doctor.fix_command(failed)
        again = " ".join(["edge doctor --fix", *args.targets, *(["--tests"] if args.tests else [])])
        words = "; ".join(dict.fromkeys(r.fix for r in failed if r.fix and not r.fixable))
        hint = (f"as root, `{again}` installs what is missing ({fix})"
                if fix and not args.fix else words or "see the lines above")
        print(f"edge: error: {len(failed)} check(s) failed: {', '.join(r.check for r in failed)}; {hint}",
              file=sys.stderr)
        return SetupError.exit_code
    return 0


def cmd_package(args) -> int:
    from edge.package import debian

    debian.package(debian.PackageOptions(args.exe, args.pkg_version, args.service, args.maintainer, args.repo),
                   progress=lambda text: print(text, file=sys.stderr, flush=True))
    return 0


def cmd_run(args) -> int:
    from edge.bundle import runner

    return runner.run(args.exe, args.args)


COMMANDS = {"inspect": cmd_inspect, "optimize": cmd_optimize, "build": cmd_build, "targets": cmd_targets,
            "run": cmd_run, "doctor": cmd_doctor, "package": cmd_package}


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _ignore_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _interrupt(signum, frame):
    # the first signal unwinds (temp files, work folders and child processes are cleaned up on the way);
    # a second one (a terminal's Ctrl-C reaches every process of the group) must not cut that short
    _ignore_signals()
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup and `cmd &` without job control ignore SIGINT
            signal.signal(sig, _interrupt)
    try:
        argv = sys.argv[1:] if argv is None else argv
        args = parser(_command(argv)).parse_args(argv)
        return COMMANDS[args.command](args)
    except EdgeError as e:
        print(f"edge: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"edge: interrupted ({signal.Signals(signum).name}); nothing was written", file=sys.stderr)
        return 128 + signum
    except MemoryError:
        print("edge: error: out of memory (the model or data is larger than this machine's memory allows)",
              file=sys.stderr)
        return 1
    except OSError as e:  # a file problem no step above names more precisely
        print(f"edge: error: {files.os_error(e, doing='failed').message}", file=sys.stderr)
        return OutputError.exit_code
    finally:
        _ignore_signals()  # the job is over, whatever its end: a late signal must not turn it into a traceback
        files.sweep_folders()


if __name__ == "__main__":
    sys.exit(main())
