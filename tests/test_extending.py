"""docs/extending.md, done for real: a pass and an app added through the registries alone reach the command
line (flags, --help), the plan, the report and the app's configure step; an architecture, a backend and an app
added in a copy of the package touch only their own files and the registry line, and build and run."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import ROOT

TOY_PASS = '''
import sys
from edge import pipeline
from edge.passes import Option, Outcome


class StripDocStrings:
    """A lossless toy pass: drops every node's doc_string."""

    name = "strip-doc-strings"
    lossless = True
    reference = False
    options = (Option("strip_docs", "--strip-docs", "drop node doc strings", "graph", action="store_true",
                      default=False),)

    def wanted(self, settings):
        return settings["strip_docs"]

    def run(self, model, ctx):
        count = sum(1 for n in model.graph.node if n.doc_string)
        for n in model.graph.node:
            n.doc_string = ""
        return model, Outcome(stripped=count)


pipeline.register(StripDocStrings(), before="fold-constants")
from edge.cli import main
sys.exit(main(sys.argv[1:]))
'''

TOY_APP = '''
import sys
from edge import apps
from edge.errors import DataError


def configure(model, options):
    raise DataError(f"toy app configured with greeting {options['greeting']!r}")


apps.register(apps.App(name="toy", description="says hello", synopsis="greetings", module="toy.app",
                       runtime_packages=(), pip=(), debs=(), hidden=(), keep=(), system_libraries=(),
                       configure=configure,
                       options=(apps.BuildOption("--greeting", "greeting", "what the toy app says"),)))
from edge.cli import main
sys.exit(main(sys.argv[1:]))
'''


def _run(script, *args):
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_a_registered_pass_gets_its_flag_and_runs_in_its_place(models, tmp_path):
    src = models("trained-cnn")  # a PyTorch export: its nodes carry no doc strings; the pass must still run
    assert "--strip-docs" in _run(TOY_PASS, "optimize", "--help").stdout
    out = tmp_path / "o.onnx"
    r = _run(TOY_PASS, "optimize", src, "-o", out, "--strip-docs", "--json")
    assert r.returncode == 0, r.stderr
    names = [p["name"] for p in json.loads(r.stdout)["passes"]]
    assert names.index("strip-doc-strings") == names.index("fold-constants") - 1
    plain = _run(TOY_PASS, "optimize", src, "-o", tmp_path / "p.onnx", "--json")
    assert "strip-doc-strings" not in [p["name"] for p in json.loads(plain.stdout)["passes"]]


def test_a_registered_app_gets_its_flags_and_its_configure_step(models, tmp_path):
    assert "--greeting" in _run(TOY_APP, "build", "--help").stdout
    alone = _run(TOY_APP, "build", models("mlp"), "-o", tmp_path / "x", "--greeting", "hi")
    assert alone.returncode == 2 and "--greeting goes with --app toy" in alone.stderr
    r = _run(TOY_APP, "build", models("mlp"), "-o", tmp_path / "x", "--app", "toy", "--greeting", "hi")
    assert r.returncode == 4 and "toy app configured with greeting 'hi'" in r.stderr
    assert not list(tmp_path.iterdir())


RISCV = '''
[riscv64]
elf_machine = "EM_RISCV"
debian = "riscv64"
loader = "ld-linux-riscv64-lp64d.so.1"
bootloader_folder = "Linux-64bit-riscv"
compiler = "riscv64-linux-gnu-gcc"
compiler_package = "gcc-riscv64-linux-gnu"
qemu = "qemu-riscv64"
binutils = "riscv64-linux-gnu-"
binutils_package = "binutils-riscv64-linux-gnu"
'''


def _copy(tmp_path):
    for name in ("edge", "targets"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}

    def edge_in_copy(*args, timeout=120):
        return subprocess.run([sys.executable, "-m", "edge", *map(str, args)], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=timeout)

    return edge_in_copy


def _changed(copy) -> set[str]:
    """Files of the copy that are new or differ from the checkout's."""
    return {str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file() and p.suffix != ".pyc"
            and (not (ROOT / p.relative_to(copy)).exists()
                 or (ROOT / p.relative_to(copy)).read_bytes() != p.read_bytes())}


def _add_line(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, f"{path}: {old!r}"
    path.write_text(text.replace(old, new))


def test_a_new_architecture_is_a_table_and_a_board_file(tmp_path):
    # a copy of the package and its boards; the only edits: one table in the architectures file, one board file
    edge_in_copy = _copy(tmp_path)
    arch_file = tmp_path / "edge/resources/architectures.toml"
    arch_file.write_text(arch_file.read_text() + RISCV)
    board = (ROOT / "targets/rpi4.toml").read_text().replace('name = "rpi4"', 'name = "visionfive2"')
    (tmp_path / "targets/visionfive2.toml").write_text(board.replace('arch = "aarch64"', 'arch = "riscv64"'))
    shown = json.loads(edge_in_copy("targets", "visionfive2", "--json").stdout)
    assert shown["arch"] == "riscv64" and shown["file"] == str(tmp_path / "targets/visionfive2.toml")
    doctor = json.loads(edge_in_copy("doctor", "visionfive2", "--json").stdout)
    checks = {c["check"]: c for c in doctor["checks"]}
    assert "qemu-riscv64" in json.dumps(checks["emulation-riscv64"])
    assert checks["binutils-riscv64"]["packages"] in ([], ["binutils-riscv64-linux-gnu"])
    assert "riscv64-linux-gnu-objdump" in checks["binutils-riscv64"]["detail"]
    assert "riscv64-linux-gnu-gcc" in checks["compiler-riscv64"]["detail"]
    assert _changed(tmp_path) == {"edge/resources/architectures.toml", "targets/visionfive2.toml"}


FAKE_BACKEND = '''
"""onnxruntime under another name, with a board table of its own: the smallest backend there is."""

from edge.backends.onnxruntime import OnnxRuntime


class Echo(OnnxRuntime):
    name = "echo"
    description = "onnxruntime, renamed"
    python_packages = ("onnxruntime",)
    runtime_module = "echo"
    board_tables = {"echo": ("greeting_threads",)}

    def host_libraries(self, target):
        return {"z": "zlib1g"}

    def preflight(self, model, input_shapes):
        return {"blocking": [], "ops": sorted({n.op_type for n in model.graph.node})}


BACKEND = Echo()
'''

FAKE_BACKEND_DEVICE = '''
"""The echo backend's device side: an onnxruntime session that says when it opens."""

import sys

import onnxruntime as ort


class EchoSession:
    concurrent = True

    def __init__(self, model, threads):
        print("echo: session open", file=sys.stderr)
        self._sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])

    def run(self, feeds):
        return self._sess.run(None, feeds)


def open_session(model, threads):
    return EchoSession(model, threads)


def version():
    return ort.__version__
'''

FAKE_APP = '''
"""The greeter app: the bare model's command line, after a greeting chosen at build time."""

from edge.apps import App, BuildOption


def configure(model, options):
    return {"greeting": options.get("greeting") or "hello"}


APP = App(name="greeter", description="greets, then runs the model", synopsis="greetings", module="greeter.app",
          runtime_packages=("greeter",), pip=(), debs=(), hidden=("edge.runtime.greeter.app",), keep=(),
          system_libraries=(), configure=configure, host_libraries={"z": "zlib1g"},
          options=(BuildOption("--greeting", "greeting", "what the greeter says first"),))
'''

FAKE_APP_DEVICE = '''
import sys

from edge.runtime import model_cli


def main(argv, manifest, name):
    print(manifest.app.settings["greeting"], file=sys.stderr)
    return model_cli.main(argv, manifest, name)
'''


@pytest.mark.slow
def test_a_new_backend_and_app_are_their_modules_and_a_registry_line_each(models, tmp_path):
    copy = tmp_path / "copy"
    edge_in_copy = _copy(copy)
    (copy / "edge/backends/echo.py").write_text(FAKE_BACKEND)
    (copy / "edge/runtime/echo.py").write_text(FAKE_BACKEND_DEVICE)
    _add_line(copy / "edge/backends/__init__.py", 'NAMES = ("onnxruntime", "mxnet")',
              'NAMES = ("onnxruntime", "mxnet", "echo")')
    (copy / "edge/apps/greeter.py").write_text(FAKE_APP)
    (copy / "edge/runtime/greeter").mkdir()
    (copy / "edge/runtime/greeter/__init__.py").write_text("")
    (copy / "edge/runtime/greeter/app.py").write_text(FAKE_APP_DEVICE)
    _add_line(copy / "edge/apps/__init__.py", 'MODULES = ("voice_commands",)',
              'MODULES = ("voice_commands", "greeter")')
    board = copy / "targets/x86_64.toml"

    helped = edge_in_copy("build", "--help").stdout.split()
    assert "{onnxruntime,mxnet,echo}" in helped and "--greeting" in helped and "{voice-commands,greeter}" in helped
    checks = {c["check"]: c for c in json.loads(edge_in_copy("doctor", "x86_64", "--json").stdout)["checks"]}
    assert checks["echo-libraries"]["status"] == "ok" and "libz.so" in checks["echo-libraries"]["detail"]
    assert checks["greeter-libraries"]["status"] == "ok" and "--app greeter" in checks["greeter-libraries"]["detail"]
    inspected = json.loads(edge_in_copy("inspect", models("mlp"), "--backend", "echo", "--json").stdout)
    assert inspected["backend_check"] == {"blocking": [], "ops": sorted(inspected["ops"])}
    # the backend's board table: read when present, its keys checked like the board's own
    board.write_text(board.read_text() + "\n[echo]\ngreeting_thread = 2\n")
    wrong = edge_in_copy("targets", "x86_64")
    assert wrong.returncode == 9 and "unknown key 'greeting_thread' in [echo]; did you mean 'greeting_threads'?" \
        in wrong.stderr, wrong.stderr
    board.write_text(board.read_text().replace("greeting_thread =", "greeting_threads ="))
    assert json.loads(edge_in_copy("targets", "x86_64", "--json").stdout)["echo"] == {"greeting_threads": 2}
    board.write_text((ROOT / "targets/x86_64.toml").read_text())

    exe = tmp_path / "greeter"
    built = edge_in_copy("build", models("mlp"), "-o", exe, "--backend", "echo", "--app", "greeter", "--greeting",
                         "hi there", timeout=1200)
    assert built.returncode == 0, built.stderr[-3000:]
    manifest = json.loads(exe.with_name("greeter.report.json").read_text())["manifest"]
    assert manifest["backend"]["name"] == "echo" and manifest["app"]["name"] == "greeter"
    x = np.random.default_rng(0).standard_normal((1, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ran = subprocess.run([exe, "--input", tmp_path / "x.npy", "--json"], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and "hi there" in ran.stderr and "echo: session open" in ran.stderr, ran.stderr
    got = np.array(next(iter(json.loads(ran.stdout).values()))["data"], np.float32)
    want = ort.InferenceSession(str(models("mlp")), providers=["CPUExecutionProvider"]).run(None, {"features": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)  # lossless passes only: float rounding
    assert _changed(copy) == {"edge/backends/__init__.py", "edge/backends/echo.py", "edge/runtime/echo.py",
                              "edge/apps/__init__.py", "edge/apps/greeter.py", "edge/runtime/greeter/__init__.py",
                              "edge/runtime/greeter/app.py"}
