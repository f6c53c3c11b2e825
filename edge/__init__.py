"""edgepack: prune, quantize and package ONNX models for edge boards.

`edge.inspect`, `edge.optimize` and `edge.build` are the Python API (edge/api.py), imported on first use so
that `import edge` stays light (build.py imports edge.doctor before anything is installed)."""

from edge.version import __version__ as __version__  # edge.__version__, for users

API = ("inspect", "optimize", "build")


def __getattr__(name: str):
    if name in API:
        from edge import api

        return getattr(api, name)
    raise AttributeError(f"module 'edge' has no attribute {name!r}")
