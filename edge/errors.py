"""The user-facing error family: each kind has its own exit code and says what to do next.

Anything raised as an EdgeError is printed as one line (`edge: error: ...`) with no traceback.
Any other exception is a bug in edgepack and keeps its traceback; a library's exception that explains a
user's problem is quoted with `one_line`.
"""

import re


class EdgeError(Exception):
    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UsageError(EdgeError):
    """A command-line option has a bad value."""

    exit_code = 2


class ModelError(EdgeError):
    """The model file cannot be read, is not ONNX, or fails the checker."""

    exit_code = 3


class DataError(EdgeError):
    """Calibration or evaluation data does not match the model."""

    exit_code = 4


class ShapeError(EdgeError):
    """A dynamic dimension needs a fixed value that nobody gave."""

    exit_code = 5


class QuantizationError(EdgeError):
    """The chosen quantization cannot be applied to this model."""

    exit_code = 6


class AccuracyGateError(EdgeError):
    """The optimized model lost more than --max-accuracy-drop allows; nothing was written."""

    exit_code = 7


class OutputError(EdgeError):
    """The output path cannot be written."""

    exit_code = 8


class TargetError(EdgeError):
    """The target is unknown or its file is incomplete."""

    exit_code = 9


class BuildError(EdgeError):
    """The build environment or PyInstaller failed; the message says where the full log is."""

    exit_code = 10


class VerifyError(EdgeError):
    """The finished executable did not start or did not match the reference; it was removed."""

    exit_code = 11


class BackendError(EdgeError):
    """The model cannot run on the chosen backend (ops its importer cannot take); the message lists them."""

    exit_code = 12


class SetupError(EdgeError):
    """This machine lacks a tool or library a build needs (`edge doctor` says which; `--fix` installs it)."""

    exit_code = 13


class PackageError(EdgeError):
    """The path is not an edgepack executable with its build report, or the report cannot make a package."""

    exit_code = 14


ONE_LINE_MAX = 600  # characters: onnxruntime's explaining sentence often comes after a long node name


def one_line(e: BaseException) -> str:
    """A library exception as one line: its lines joined, the "[ONNXRuntimeError] : 1 : FAIL :" prefix dropped,
    long middles (node listings, paths) cut rather than the end, where the explanation usually is."""
    text = " ".join(line.strip() for line in str(e).strip().splitlines() if line.strip())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    if len(text) > ONE_LINE_MAX:
        half = ONE_LINE_MAX // 2
        text = f"{text[:half]} … {text[-half:]}"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
