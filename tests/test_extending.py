"""docs/extending.md, done for real: a pass and an app added through the registries alone reach the command
line (flags, --help), the plan, the report and the app's configure step."""

import json
import os
import shutil
import subprocess
import sys

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
from edge.bundle import apps
from edge.errors import DataError


def configure(model, options):
    raise DataError(f"toy app configured with greeting {options['greeting']!r}")


apps.APPS["toy"] = apps.App(name="toy", description="says hello", module="toy.app", runtime_packages=(), pip=(),
                            debs=(), hidden=(), keep=(), system_libraries=(), configure=configure,
                            options=(apps.BuildOption("--greeting", "greeting", "what the toy app says"),))
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


def test_a_new_architecture_is_a_table_and_a_board_file(tmp_path):
    # a copy of the package and its boards; the only edits: one table in the architectures file, one board file
    for name in ("edge", "targets"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    arch_file = tmp_path / "edge/resources/architectures.toml"
    arch_file.write_text(arch_file.read_text() + RISCV)
    board = (ROOT / "targets/rpi4.toml").read_text().replace('name = "rpi4"', 'name = "visionfive2"')
    (tmp_path / "targets/visionfive2.toml").write_text(board.replace('arch = "aarch64"', 'arch = "riscv64"'))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}

    def edge_in_copy(*args):
        return subprocess.run([sys.executable, "-m", "edge", *args], capture_output=True, text=True, cwd=tmp_path,
                              env=env, timeout=120)

    shown = json.loads(edge_in_copy("targets", "visionfive2", "--json").stdout)
    assert shown["arch"] == "riscv64" and shown["file"] == str(tmp_path / "targets/visionfive2.toml")
    doctor = json.loads(edge_in_copy("doctor", "visionfive2", "--json").stdout)
    checks = {c["check"]: c for c in doctor["checks"]}
    assert "qemu-riscv64" in json.dumps(checks["emulation-riscv64"])
    assert checks["binutils-riscv64"]["packages"] in ([], ["binutils-riscv64-linux-gnu"])
    assert "riscv64-linux-gnu-objdump" in checks["binutils-riscv64"]["detail"]
    assert "riscv64-linux-gnu-gcc" in checks["compiler-riscv64"]["detail"]
    changed = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".pyc"
               and (not (ROOT / p.relative_to(tmp_path)).exists()
                    or (ROOT / p.relative_to(tmp_path)).read_bytes() != p.read_bytes())}
    assert changed == {"edge/resources/architectures.toml", "targets/visionfive2.toml"}
