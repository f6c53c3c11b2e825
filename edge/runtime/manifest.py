"""The manifest: the one contract between the host and an executable. edge/bundle/builder.py writes it,
everything in edge/runtime/ reads it through these types; `--info` prints it. Standard library only.

The JSON keeps one object per part; a backend's and an app's own settings sit beside their `name` (flat), so
`--info` stays readable and each side adds settings without touching this module."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

FORMAT = 2  # bump when a field changes meaning; an executable refuses a manifest of another format


class ManifestError(ValueError):
    """A manifest this runtime cannot read (another format, a missing field)."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: list  # ints, or strings for dynamic dimensions

    def describe(self) -> str:
        return f"{self.name}: {self.dtype}[{', '.join(str(d) for d in self.shape)}]"

    def as_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict) -> Tensor:
        return cls(d["name"], d["dtype"], list(d.get("shape") or []))


@dataclass(frozen=True)
class ModelFile:
    file: str  # inside the bundle's data folder
    sha256: str
    bytes: int
    source: str  # the model the user gave edge build
    source_sha256: str


@dataclass(frozen=True)
class Part:
    """A backend or an app: its registry name, the device module that runs it, and its own settings."""

    name: str
    module: str  # backend: edge.runtime.<module>.open_session; app: edge.runtime.<module>.main
    settings: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "module": self.module, **self.settings}

    @classmethod
    def from_dict(cls, d: dict, what: str) -> Part:
        if "name" not in d or "module" not in d:
            raise ManifestError(f"the {what} entry names no name or module")
        return cls(d["name"], d["module"], {k: v for k, v in d.items() if k not in ("name", "module")})


@dataclass(frozen=True)
class Target:
    name: str
    arch: str
    glibc_floor: str


@dataclass(frozen=True)
class Optimization:
    passes: list[str]
    size_bytes: list  # [before, after]
    accuracy: list  # [before, after]; None without labelled data
    top1_agreement: float | None


@dataclass(frozen=True)
class Manifest:
    name: str
    model: ModelFile
    inputs: list[Tensor]
    outputs: list[Tensor]
    backend: Part
    target: Target
    threads: int
    optimization: Optimization
    edgepack: str
    built: str
    app: Part | None = None
    runtime_tmpdir: str | None = None
    format: int = FORMAT

    def as_dict(self) -> dict:
        d = {"format": self.format, "name": self.name, "model": asdict(self.model),
             "inputs": [t.as_dict() for t in self.inputs], "outputs": [t.as_dict() for t in self.outputs],
             "backend": self.backend.as_dict(), "target": asdict(self.target), "threads": self.threads,
             "optimization": asdict(self.optimization), "edgepack": self.edgepack, "built": self.built}
        if self.app is not None:
            d["app"] = self.app.as_dict()
        if self.runtime_tmpdir is not None:
            d["runtime_tmpdir"] = self.runtime_tmpdir
        return d

    def dumps(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> Manifest:
        if d.get("format") != FORMAT:
            raise ManifestError(f"manifest format {d.get('format')!r}; this runtime reads format {FORMAT} "
                                "(rebuild the executable with this edgepack)")
        try:
            return cls(
                name=d["name"], model=ModelFile(**d["model"]),
                inputs=[Tensor.from_dict(t) for t in d["inputs"]], outputs=[Tensor.from_dict(t) for t in d["outputs"]],
                backend=Part.from_dict(d["backend"], "backend"), target=Target(**d["target"]),
                threads=int(d["threads"]), optimization=Optimization(**d["optimization"]),
                edgepack=d["edgepack"], built=d["built"],
                app=Part.from_dict(d["app"], "app") if d.get("app") else None,
                runtime_tmpdir=d.get("runtime_tmpdir"))
        except (KeyError, TypeError) as e:
            raise ManifestError(f"the manifest misses or mistypes a field ({e})") from None

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_dict(json.loads(Path(path).read_text()))
