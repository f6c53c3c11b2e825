"""The keyword demo's layout: one folder per pipeline stage, each stage module's step as README.md's tables give
it, and demos/ and benchmarks/ kept apart except through one shared module."""

import ast
import re
from pathlib import Path

import pytest

from demos.kws import pipeline
from tests.conftest import ROOT

KWS = ROOT / "demos" / "kws"
STAGES = ("data", "training", "assembly", "evaluation")
# the only demo code benchmarks/ may import: the app's Listener replayed in-process and the scoring of detections
SHARED = {"demos.kws.evaluation.listening"}
README = (KWS / "README.md").read_text()


def sources(top: Path) -> list[Path]:
    return sorted(p for p in top.rglob("*.py")
                  if not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(top).parts))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, by full name (`from a import b` gives a.b as well as a)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def test_each_stage_is_a_package_with_a_docstring():
    for folder in (ROOT / "demos", KWS, *(KWS / s for s in STAGES)):
        init = folder / "__init__.py"
        assert init.exists(), init
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init}: no docstring"
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse((KWS / stage / "__init__.py").read_text()))
        for module in sources(KWS / stage):
            assert module.name == "__init__.py" or module.name in doc, f"{stage}/__init__.py: no {module.name}"
            assert ast.get_docstring(ast.parse(module.read_text())), f"{module}: no docstring"
    assert {p.name for p in KWS.glob("*.py")} == {"__init__.py", "common.py", "pipeline.py"}  # the rest is in a stage


def test_demos_never_import_benchmarks_and_benchmarks_import_only_the_shared_module():
    demo_modules = {module_name(p) for p in sources(ROOT / "demos")}
    assert SHARED <= demo_modules
    bare = {p.stem for p in sources(ROOT / "demos")} - {"__init__"}
    for path in sources(ROOT / "demos"):
        names = imports(path)
        assert not {n for n in names if n.split(".")[0] == "benchmarks"}, f"{path} imports benchmarks/"
        # one way in: full names from the repository root, never a demo module by its bare name on sys.path
        assert not {n for n in names if n in bare}, f"{path} imports a demo module by its bare name"
        assert "sys.path" not in path.read_text(), f"{path} changes sys.path"
    for path in sources(ROOT / "benchmarks"):
        from_demos = {n for n in imports(path) if n.split(".")[0] == "demos"}
        # `from demos.kws.evaluation.listening import x` names the module, its packages and x
        allowed = {n for n in from_demos if any(n == s or n.startswith(s + ".") or s.startswith(n + ".")
                                                for s in SHARED)}
        assert from_demos == allowed, f"{path} imports {sorted(from_demos - allowed)} from demos/"


def _rows(section: str) -> dict[str, str]:
    """{step label: table row} of the README section under the heading that starts with `section`."""
    text = README.split("\n## " + section, 1)[1].split("\n## ", 1)[0]
    return {m.group(1): line for line in text.splitlines() if (m := re.match(r"\| (\w+)\. ", line))}


PIPELINE, DSCNN = _rows("The pipeline"), _rows("The synthetic-voice DS-CNN")


def stage_modules() -> list[Path]:
    return [p for s in STAGES for p in sources(KWS / s) if p.name != "__init__.py"]


STEP = re.compile(r"(DS-CNN step|Step) (\w+)(?: \(`([\w-]+)`\))?")


@pytest.mark.parametrize("path", stage_modules(), ids=lambda p: str(p.relative_to(KWS)))
def test_a_stage_modules_step_is_the_readmes(path):
    """A docstring's first line naming "Step N (`name`)" or "DS-CNN step N": README.md's row N runs this module."""
    first = ast.get_docstring(ast.parse(path.read_text())).splitlines()[0]
    command = f"-m {module_name(path)}"
    for kind, step, name in STEP.findall(first):
        row = (PIPELINE if kind == "Step" else DSCNN).get(step, "")
        assert command in row, f"{path.name}: {kind} {step}, README's row: {row!r}"
        assert kind != "Step" or (name and f"`{name}`" in row), f"{path.name}: {first!r}; README's row: {row!r}"
    assert not re.search(r"(?<!DS-CNN )\bstep \w+", first), f"{path.name}: a step README.md does not number: {first!r}"


def test_steps_named_in_any_docstring_are_the_readmes():
    for path in sources(ROOT / "demos"):
        doc = " ".join((ast.get_docstring(ast.parse(path.read_text())) or "").split())
        for m in re.finditer(r"\b[Ss]tep (\w+) \(`([\w-]+)`\)", doc):
            assert f"`{m.group(2)}`" in PIPELINE.get(m.group(1), ""), f"{path}: {m.group(0)}"
        for step in re.findall(r"DS-CNN step (\w+)", doc):
            assert step in DSCNN, f"{path}: DS-CNN step {step}"


def test_every_module_the_readme_and_the_pipeline_run_exists_and_names_that_step():
    for stage in pipeline.STAGES:
        label = stage.what.split(".")[0]
        row = PIPELINE[label]
        assert f"`{stage.name}`" in row
        for cmd in stage.commands("DIR"):
            if "-m" in cmd and cmd[cmd.index("-m") + 1].startswith("demos."):
                module = cmd[cmd.index("-m") + 1]
                assert f"-m {module}" in row, f"pipeline.py's {stage.name} runs {module}; README's row: {row!r}"
    for table, label in ((PIPELINE, "Step"), (DSCNN, "DS-CNN step")):
        for step, row in table.items():
            for module in re.findall(r"-m (demos\.kws\.[\w.]+)", row):
                path = ROOT / (module.replace(".", "/") + ".py")
                assert path.exists(), f"README's {label} {step} runs {module}: no {path}"
                first = ast.get_docstring(ast.parse(path.read_text())).splitlines()[0]
                assert re.search(rf"\b{label} {step}\b", first), f"{path.name}'s docstring: {first!r}"
