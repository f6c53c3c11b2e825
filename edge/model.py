"""Load and validate ONNX models, describe their inputs, fix dynamic dimensions."""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from edge.errors import ModelError, ShapeError, UsageError
from edge.files import check_readable_file, os_error, scratch_folder, write_bytes

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: np.dtype
    shape: tuple[Dim, ...] | None  # None: rank unknown

    @property
    def is_static(self) -> bool:
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def as_dict(self) -> dict:
        shape = None if self.shape is None else [d if d is not None else "?" for d in self.shape]
        return {"name": self.name, "dtype": str(self.dtype), "shape": shape}


def load(path: str | os.PathLike, check: bool = True) -> onnx.ModelProto:
    """Read a model with its external data; raise ModelError with one clear line for any bad file."""
    path = Path(path)
    check_readable_file(path, "model", ModelError)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise os_error(e, path, ModelError, "cannot read the model") from None
    if not data:
        raise ModelError(f"{path}: file is empty, not an ONNX model")
    try:
        # binary protobuf whatever the name: onnx.load would pick a JSON or text parser from the extension
        model = onnx.load_model_from_string(data, format="protobuf")
    except (DecodeError, ValueError, RuntimeError):
        raise ModelError(f"{path}: not an ONNX model, or a truncated one (protobuf decoding failed)") from None
    if model.ir_version == 0 or not model.graph.output or not model.opset_import:
        raise ModelError(f"{path}: not an ONNX model (no IR version, opset or graph outputs)")
    _load_external_data(model, path)
    name_dynamic_dims(model)
    if check:
        try:
            onnx.checker.check_model(model)
        except (onnx.checker.ValidationError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{path}: fails the ONNX checker: {first}") from None
    return model


_EXTERNAL_FILES: dict[str, list[Path]] = {}  # model path → the external data files its last load read


def external_data_files(path: str | os.PathLike) -> list[Path]:
    """The external data files a model loaded earlier read (inputs that no output may overwrite)."""
    return _EXTERNAL_FILES.get(os.path.realpath(path), [])


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    from onnx.external_data_helper import _get_all_tensors, load_external_data_for_tensor, uses_external_data

    read = _EXTERNAL_FILES.setdefault(os.path.realpath(path), [])
    for tensor in _get_all_tensors(model):
        if not uses_external_data(tensor):
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "?")
        if not (path.parent / location).is_file():
            raise ModelError(
                f"{path}: external data file '{location}' for tensor '{tensor.name}' is missing "
                f"(expected next to the model, in {path.parent})"
            )
        read.append(path.parent / location)
        try:
            load_external_data_for_tensor(tensor, str(path.parent))
        except Exception as e:  # a short or unreadable data file
            raise ModelError(f"{path}: cannot read external data '{location}': {e}") from None
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]


def name_dynamic_dims(model: onnx.ModelProto) -> None:
    """Dimensions written as `dim_value: -1` (older paddle2onnx, some TensorFlow converters) or `dim_value: 0`
    are dynamic: each becomes a named one (`x_d0` for dimension 0 of `x`) in graph inputs, outputs and
    value_info. Left as they are, shape inference, onnxruntime and --input-shape take them as real sizes."""

    def fix(values) -> None:
        for vi in values:
            if not vi.type.tensor_type.HasField("shape"):
                continue
            for i, d in enumerate(vi.type.tensor_type.shape.dim):
                if d.HasField("dim_value") and d.dim_value <= 0:
                    d.dim_param = f"{vi.name}_d{i}"  # clears dim_value: the two are a oneof

    def walk(graph) -> None:
        fix(graph.input)
        fix(graph.output)
        fix(graph.value_info)
        for node in graph.node:
            for a in node.attribute:
                for sub in [a.g] if a.type == onnx.AttributeProto.GRAPH else a.graphs:
                    walk(sub)

    walk(model.graph)


def save(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Write to a temporary name in the same folder, then rename: a crash never leaves half a model."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write_bytes(model.SerializeToString(), tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise os_error(e, path) from None
    finally:
        tmp.unlink(missing_ok=True)


def serialized_size(model: onnx.ModelProto) -> int:
    return model.ByteSize()


def sha256(model: onnx.ModelProto) -> str:
    return hashlib.sha256(model.SerializeToString()).hexdigest()


def _dtype(elem_type: int) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type))


def _spec(vi: onnx.ValueInfoProto) -> TensorSpec:
    t = vi.type.tensor_type
    shape = None
    if t.HasField("shape"):
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim
        )
    return TensorSpec(vi.name, _dtype(t.elem_type), shape)


def inputs(model: onnx.ModelProto) -> list[TensorSpec]:
    """Graph inputs that are real inputs (not initializers listed as inputs, as old exporters do)."""
    inits = {i.name for i in model.graph.initializer}
    return [_spec(vi) for vi in model.graph.input if vi.name not in inits]


def outputs(model: onnx.ModelProto) -> list[TensorSpec]:
    return [_spec(vi) for vi in model.graph.output]


def opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def parse_input_shapes(items: list[str] | None) -> dict[str, list[int]]:
    """`--input-shape x=1,3,48,192` (repeatable) → {"x": [1, 3, 48, 192]}."""
    shapes: dict[str, list[int]] = {}
    for item in items or []:
        name, sep, dims = item.rpartition("=")
        try:
            values = [int(d) for d in dims.split(",")]
        except ValueError:
            values = []
        if not sep or not name or not values or any(v <= 0 for v in values):
            raise UsageError(f"--input-shape '{item}': expected NAME=D1,D2,... with positive integers")
        shapes[name] = values
    return shapes


def fix_input_shapes(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> onnx.ModelProto:
    """Return a copy whose named inputs have the given fixed shapes (checked against what is fixed)."""
    specs = {s.name: s for s in inputs(model)}
    for name, dims in shapes.items():
        if name not in specs:
            raise UsageError(f"--input-shape: the model has no input '{name}' (inputs: {', '.join(specs)})")
        old = specs[name].shape
        if old is not None and len(old) != len(dims):
            raise ShapeError(
                f"--input-shape {name}: gives {len(dims)} dimensions, the model has {len(old)}: {_fmt(old)}")
        for i, (a, b) in enumerate(zip(old or (), dims)):
            if isinstance(a, int) and a != b:
                raise ShapeError(f"--input-shape {name}: dimension {i} is fixed to {a} in the model, not {b}")
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for vi in fixed.graph.input:
        if vi.name in shapes:
            shape = vi.type.tensor_type.shape
            shape.ClearField("dim")
            for d in shapes[vi.name]:
                shape.dim.add().dim_value = d
    # Stale inferred shapes would contradict the new input shapes; let shape inference redo them.
    fixed.graph.ClearField("value_info")
    for vi in fixed.graph.output:  # the rank stays (onnxsim needs a shape); only fixed sizes are kept
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.Clear()
    return fixed


def _fmt(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def concrete_shape(spec: TensorSpec, hint: str = "") -> tuple[int, ...]:
    """A shape for random inputs: a dynamic first (batch) dimension becomes 1; any other must be given."""
    if spec.shape is None:
        raise ShapeError(
            f"input '{spec.name}' has no known rank; give its shape with --input-shape {spec.name}=D1,D2,..."
            f"{hint}"
        )
    dims = []
    for i, d in enumerate(spec.shape):
        if isinstance(d, int) and d > 0:
            dims.append(d)
        elif i == 0:
            dims.append(1)
        else:
            raise ShapeError(f"input '{spec.name}' dimension {i} ('{d or '?'}') is dynamic and needs a value: "
                             f"give it with {shape_example(spec)}{hint}")
    return tuple(dims)


def shape_example(spec: TensorSpec) -> str:
    """`--input-shape x=1,3,D2,D3 (D2, D3: the sizes you use)`: fixed sizes kept, a dynamic batch as 1."""
    shape = spec.shape or ()
    dims = [str(d) if isinstance(d, int) and d > 0 else "1" if i == 0 else f"D{i}" for i, d in enumerate(shape)]
    unknown = [d for d in dims[1:] if d.startswith("D")]
    return f"--input-shape {spec.name}={','.join(dims)}" + (f" ({', '.join(unknown)}: the sizes you use)"
                                                              if unknown else "")


def random_inputs(specs: list[TensorSpec], count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    shapes = {s.name: concrete_shape(s, hint=", or pass sample data with --eval") for s in specs}
    samples = []
    for _ in range(count):
        feed = {}
        for s in specs:
            shape = shapes[s.name]
            if s.dtype.kind == "f":
                feed[s.name] = rng.standard_normal(shape).astype(s.dtype)
            elif s.dtype.kind == "b":
                feed[s.name] = rng.random(shape) < 0.5
            else:  # small non-negative integers stay valid as indices and lengths
                feed[s.name] = rng.integers(0, 2, shape).astype(s.dtype)
        samples.append(feed)
    return samples


# ops that only appear in quantized graphs (QDQ, QOperator, dynamic int8)
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
                           "QLinearMatMul", "QLinearAdd", "QLinearMul", "ConvInteger", "MatMulInteger"})


def is_quantized(model: onnx.ModelProto) -> bool:
    return any(n.op_type in QUANTIZED_OPS for n in model.graph.node)


def initializer_arrays(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def toposort(model: onnx.ModelProto) -> None:
    """Order nodes so every input is produced before use (some converters append nodes at the end,
    which onnxruntime accepts but shape inference and the checker do not)."""
    nodes = list(model.graph.node)
    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    ordered, pending = [], nodes
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:  # a cycle or a dangling input: keep the rest as it was
            ordered += pending
            break
        for n in ready:
            available.update(n.output)
        ordered += ready
        done = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in done]
    del model.graph.node[:]
    model.graph.node.extend(ordered)


@contextlib.contextmanager
def scratch_cwd():
    """Run a library call whose failure path writes debug files into the current folder (onnxruntime's
    symbolic shape inference writes sym_shape_infer_temp.onnx) inside a throwaway folder instead."""
    old = os.getcwd()
    with scratch_folder("edge-scratch-") as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)
