"""edgepack: prune, quantize and package ONNX models for edge boards."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgepack")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"
