"""docs/extending.md, done for real: a pass and an app added through the registries alone reach the command
line (flags, --help), the plan, the report and the app's configure step."""

import json
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
