"""edgepack: prune, quantize and package ONNX models for edge boards.

`edge.inspect`, `edge.optimize` and `edge.build` are the Python API (edge/api.py), imported on first use so
that `import edge` stays light (build.py imports edge.doctor before anything is installed)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgepack")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"


API = ("inspect", "optimize", "build")


def __getattr__(name: str):
    if name in API:
        from edge import api

        return getattr(api, name)
    raise AttributeError(f"module 'edge' has no attribute {name!r}")
