"""Test models, made here: real PyTorch exports (trained where accuracy matters) and hand-built graphs
that look like TensorFlow / PaddlePaddle exports. Also `python -m tests.zoo NAME DIR` for build.py and
the benchmarks.

Every builder writes DIR/model.onnx (and data files where it has them) and returns DIR/model.onnx."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = 4
IMAGE = (3, 16, 16)


def _torch():
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    return torch


def _export(torch, module, args, path: Path, opset: int, names_in, names_out, dynamic: dict, fold: bool = False):
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # do_constant_folding=False keeps what real exports carry: BatchNorm, Identity, shape chains
        torch.onnx.export(module, args, str(path), opset_version=opset, dynamo=False, input_names=names_in,
                          output_names=names_out, dynamic_axes=dynamic, do_constant_folding=fold)
    return path


def synthetic_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A separable 4-class task: a bright patch in one quadrant (and channel) over noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, n)
    x = rng.normal(0, 0.4, (n, *IMAGE)).astype(np.float32)
    for i, k in enumerate(labels):
        r, c = (k // 2) * 8 + 1, (k % 2) * 8 + 1
        x[i, k % 3, r:r + 6, c:c + 6] += 1.0 + 0.5 * rng.random()
    return x, labels.astype(np.int64)


def cnn_module(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU(),  # depthwise
        nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.ReLU(),  # pointwise
        nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(64, CLASSES), nn.Softmax(dim=1),
    )


def _train(torch, net, logits, x: np.ndarray, y: np.ndarray, epochs: int) -> None:
    """Adam on cross-entropy, batches of 64: `logits` is the part of `net` whose output the loss reads."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(logits(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def trained_cnn(out: Path, opset: int = 13, epochs: int = 3) -> Path:
    """A CNN trained here (seconds), with calibration.npz (train distribution) and eval.npz (+ labels)."""
    torch = _torch()
    net = cnn_module(torch)
    _train(torch, net, net[:-1], *synthetic_images(3000, seed=1), epochs)  # trained on logits
    out.mkdir(parents=True, exist_ok=True)
    cal, _ = synthetic_images(200, seed=2)
    ev, ev_labels = synthetic_images(500, seed=3)
    np.savez(out / "calibration.npz", x=cal)
    np.savez(out / "eval.npz", x=ev, labels=ev_labels)
    return _export(torch, net, (torch.from_numpy(ev[:1]),), out / "model.onnx", opset, ["x"], ["probs"],
                   {"x": {0: "batch"}, "probs": {0: "batch"}})


SENSITIVE_LAYER = "/conv2/Conv"  # the node sensitive_cnn makes fragile under int8


def sensitive_cnn(out: Path) -> Path:
    """A small CNN trained here in which one layer, conv2, is made sensitive to int8 on purpose without changing
    what the float model computes: conv1 gains a channel that ReLU always zeroes (tiny weights, bias -10), and
    conv2 reads it with weights 1000× its largest real one. The float function is unchanged (the channel is always
    0), but int8 per-channel weight scales of conv2 become so coarse that its real weights all round to 0.
    Data files as trained_cnn writes them."""
    torch = _torch()
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self, c1: int = 8):
            super().__init__()
            self.conv1 = nn.Conv2d(3, c1, 3, padding=1)
            self.conv2 = nn.Conv2d(c1, 16, 3, padding=1)
            self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
            self.fc = nn.Linear(16 * 4 * 4, CLASSES)

        def forward(self, x):
            x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
            return self.fc(torch.flatten(torch.relu(self.conv3(x)), 1))

    net = Net()
    _train(torch, net, net, *synthetic_images(3000, seed=11), epochs=3)
    fragile = Net(c1=9)
    with torch.no_grad():
        fragile.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith(("conv1", "conv2"))},
                                strict=False)
        fragile.conv1.weight[:8] = net.conv1.weight
        fragile.conv1.weight[8] = 1e-3 * torch.randn_like(net.conv1.weight[0])  # tiny, not 0: a real int8 scale
        fragile.conv1.bias[:8], fragile.conv1.bias[8] = net.conv1.bias, -10.0  # channel 8: ReLU makes it 0
        fragile.conv2.weight.zero_()
        fragile.conv2.weight[:, :8] = net.conv2.weight
        fragile.conv2.weight[:, 8] = 1000 * net.conv2.weight.abs().max()  # reads only zeros: no effect in float
        fragile.conv2.bias.copy_(net.conv2.bias)
    out.mkdir(parents=True, exist_ok=True)
    cal, _ = synthetic_images(200, seed=12)
    ev, ev_labels = synthetic_images(500, seed=13)
    np.savez(out / "calibration.npz", x=cal)
    np.savez(out / "eval.npz", x=ev, labels=ev_labels)
    return _export(torch, fragile, (torch.from_numpy(ev[:1]),), out / "model.onnx", 13, ["x"], ["logits"],
                   {"x": {0: "batch"}, "logits": {0: "batch"}})


def fragile_mlp(out: Path) -> Path:
    """features float32[batch, 16] → scores [batch, 10] through three Gemms, each of which int8 breaks on its own:
    feature 0 of the data is 10⁴ times larger than the rest (read with tiny weights), so an int8 scale for the
    input rounds every other feature away; the second and third Gemms read a hidden unit that ReLU always zeroes
    with weights 1000× their largest real one (the trick of sensitive_cnn). No int8 model of it can agree with
    the float one: for refusals. data.npz holds inputs of that distribution."""
    rng = np.random.default_rng(21)

    def layer(n_in, n_out, dead_in: bool, dead_out: bool, name: str):
        w = rng.normal(0, 1 / np.sqrt(n_in), (n_in, n_out)).astype(np.float32)
        b = rng.normal(0, 0.1, n_out).astype(np.float32)
        if dead_in:
            w[-1] = 1000 * np.abs(w[:-1]).max()
        if dead_out:
            w[:, -1], b[-1] = 1e-6 * rng.normal(size=n_in), -10.0
        return [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]

    inits = layer(16, 33, False, True, "fc1") + layer(33, 33, True, True, "fc2") + layer(33, 10, True, False, "fc3")
    inits[0].CopyFrom(numpy_helper.from_array(np.concatenate([np.full((1, 33), 1e-5, np.float32),
                                                              numpy_helper.to_array(inits[0])[1:]]), "fc1.w"))
    nodes = [helper.make_node("Gemm", ["features", "fc1.w", "fc1.b"], ["h1"], name="fc1"),
             helper.make_node("Relu", ["h1"], ["r1"], name="relu1"),
             helper.make_node("Gemm", ["r1", "fc2.w", "fc2.b"], ["h2"], name="fc2"),
             helper.make_node("Relu", ["h2"], ["r2"], name="relu2"),
             helper.make_node("Gemm", ["r2", "fc3.w", "fc3.b"], ["scores"], name="fc3")]
    graph = helper.make_graph(nodes, "fragile_mlp",
                              [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 10])], inits)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    x[:, 0] *= 1e4
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "data.npz", features=x)
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), out)


def detector_cnn(out: Path) -> Path:
    """A CNN the size of a small text detector (3.1 M parameters, 1×3×96×96, random weights with BatchNorm
    statistics from data): big enough that int8 kernels, not per-op overhead, decide the latency. For benchmarks
    (top-1 agreement of its 16-way output, no labels); calibration.npz and eval.npz beside it."""
    torch = _torch()
    nn = torch.nn

    def block(c_in, c_out, stride):
        return [nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU()]

    chans = [(3, 32, 2), (32, 64, 1), (64, 96, 2), (96, 128, 1), (128, 192, 2), (192, 256, 1), (256, 384, 2),
             (384, 384, 1)]
    net = nn.Sequential(*[m for c in chans for m in block(*c)], nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(384, 16))
    rng = np.random.default_rng(31)
    cal = rng.standard_normal((64, 3, 96, 96)).astype(np.float32)
    ev = rng.standard_normal((200, 3, 96, 96)).astype(np.float32)
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(cal))  # BatchNorm running statistics of this input distribution
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "calibration.npz", x=cal)
    np.savez(out / "eval.npz", x=ev)
    return _export(torch, net, (torch.from_numpy(ev[:1]),), out / "model.onnx", 13, ["x"], ["scores"],
                   {"x": {0: "batch"}, "scores": {0: "batch"}}, fold=True)


def mlp(out: Path, opset: int = 17) -> Path:
    torch = _torch()
    nn = torch.nn
    net = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 64), nn.GELU(), nn.Linear(64, 10))
    return _export(torch, net, (torch.randn(1, 32),), out / "model.onnx", opset, ["features"], ["logits"],
                   {"features": {0: "batch"}, "logits": {0: "batch"}})


def rnn(out: Path, cell: str = "LSTM", opset: int = 14) -> Path:
    torch = _torch()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(torch.nn, cell)(20, 64, batch_first=True)
            self.head = torch.nn.Linear(64, 6)

        def forward(self, x):
            seq, _ = self.rnn(x)
            return self.head(seq[:, -1])

    return _export(torch, Net(), (torch.randn(1, 12, 20),), out / "model.onnx", opset, ["frames"], ["scores"],
                   {"frames": {0: "batch", 1: "time"}, "scores": {0: "batch"}})


def two_io(out: Path) -> Path:
    """Two inputs, two outputs, with Identity/Dropout clutter and an unused initializer."""
    rng = np.random.default_rng(5)
    w1 = numpy_helper.from_array(rng.normal(size=(8, 16)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(rng.normal(size=(16,)).astype(np.float32), "b1")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 16)).astype(np.float32), "w2")
    w3 = numpy_helper.from_array(rng.normal(size=(16, 3)).astype(np.float32), "w3")
    unused = numpy_helper.from_array(np.ones(100, np.float32), "unused")
    nodes = [
        helper.make_node("Identity", ["a"], ["a1"]),
        helper.make_node("Gemm", ["a1", "w1", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["r1"]),
        helper.make_node("Dropout", ["r1"], ["d1"]),
        helper.make_node("MatMul", ["b", "w2"], ["h2"]),
        helper.make_node("Add", ["d1", "h2"], ["s"]),
        helper.make_node("Identity", ["s"], ["sum"]),
        helper.make_node("MatMul", ["s", "w3"], ["m"]),
        helper.make_node("Softmax", ["m"], ["probs"], axis=-1),
    ]
    g = helper.make_graph(
        nodes, "two_io",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 8]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 16]),
         helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])],
        [w1, b1, w2, w3, unused],
    )
    return _save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), out)


def export_like(out: Path, opset: int = 13, style: str = "tf") -> Path:
    """A graph shaped like converter output: NHWC input with a dynamic batch, a Transpose to NCHW,
    hundreds of Constant and Identity nodes, weights as Constant nodes, a Shape→Gather→Unsqueeze→Concat→
    Reshape chain for the flatten, initializers also listed as graph inputs (old exporters), dead branches."""
    rng = np.random.default_rng(7)
    nodes, inits, extra_inputs = [], [], []

    def const(name, array):
        nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name + "_v")))
        return name

    def unsqueeze(src, dst, axis):
        if opset >= 13:
            nodes.append(helper.make_node("Unsqueeze", [src, const(dst + "_axes", np.array([axis], np.int64))], [dst]))
        else:
            nodes.append(helper.make_node("Unsqueeze", [src], [dst], axes=[axis]))

    nodes.append(helper.make_node("Transpose", ["input:0"], ["nchw"], perm=[0, 3, 1, 2]))
    prev = "nchw"
    for i in range(60):  # tf2onnx / paddle2onnx leave long Identity chains
        nodes.append(helper.make_node("Identity", [prev], [f"id{i}"]))
        prev = f"id{i}"
    w = const("conv_w", rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32))
    if style == "paddle":  # paddle exports keep BatchNorm and scale ops separately
        nodes.append(helper.make_node("Conv", [prev, w], ["conv"], pads=[1, 1, 1, 1]))
        for p, v in (("bn_s", 1.0 + 0.1 * rng.random(8)), ("bn_b", rng.normal(size=8)), ("bn_m", rng.normal(size=8)),
                     ("bn_v", 0.5 + rng.random(8))):
            inits.append(numpy_helper.from_array(v.astype(np.float32), p))
            extra_inputs.append(helper.make_tensor_value_info(p, TensorProto.FLOAT, [8]))
        nodes.append(helper.make_node("BatchNormalization", ["conv", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"]))
        prev = "bn"
    else:
        b = const("conv_b", rng.normal(size=8).astype(np.float32))
        nodes.append(helper.make_node("Conv", [prev, w, b], ["conv"], pads=[1, 1, 1, 1]))
        prev = "conv"
    nodes.append(helper.make_node("Relu", [prev], ["relu"]))
    nodes.append(helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]))
    # flatten through a shape chain, as converters write it
    nodes.append(helper.make_node("Shape", ["pool"], ["shape"]))
    nodes.append(helper.make_node("Gather", ["shape", const("zero", np.array(0, np.int64))], ["n"], axis=0))
    unsqueeze("n", "n1", 0)
    nodes.append(helper.make_node("Concat", ["n1", const("minus1", np.array([-1], np.int64))], ["flat_shape"], axis=0))
    nodes.append(helper.make_node("Reshape", ["pool", "flat_shape"], ["flat"]))
    fw = const("fc_w", rng.normal(0, 0.05, (8 * 8 * 8, 10)).astype(np.float32))
    fb = const("fc_b", rng.normal(size=10).astype(np.float32))
    nodes.append(helper.make_node("MatMul", ["flat", fw], ["fc"]))
    nodes.append(helper.make_node("Add", ["fc", fb], ["logits"]))
    nodes.append(helper.make_node("Dropout", ["logits"], ["dropped"]))
    nodes.append(helper.make_node("Softmax", ["dropped"], ["probs"], axis=1 if opset < 13 else -1))
    for i in range(200):  # constants nobody reads, and a dead branch
        const(f"dead_c{i}", np.full((4,), i, np.float32))
    nodes.append(helper.make_node("Add", ["dead_c0", "dead_c1"], ["dead_sum"]))
    g = helper.make_graph(
        nodes, f"{style}_export",
        [helper.make_tensor_value_info("input:0", TensorProto.FLOAT, ["unk__0", 16, 16, 3]), *extra_inputs],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["unk__0", 10])],
        inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="tf2onnx" if style == "tf" else "paddle2onnx")
    model.ir_version = 7 if opset <= 15 else 8 if opset <= 18 else 9
    return _save(model, out)


def paddle_dynamic(out: Path) -> Path:
    """The trained CNN rewritten the way paddle2onnx writes a model (opset 11): dynamic dimensions as
    `dim_value: -1` on the input and output, `dim_value: 0` in value_info, weights as Constant nodes, and the
    flatten as Shape→Slice→Concat→Reshape (opset-11 Slice with its starts/ends as inputs, which MXNet's importer
    refuses until constant folding at a fixed shape removes the chain). Data files as trained_cnn writes them."""
    torch_model = onnx.load(str(trained_cnn(out / "torch", opset=11)))
    for name in ("calibration.npz", "eval.npz"):
        (out / name).write_bytes((out / "torch" / name).read_bytes())
    g = torch_model.graph
    nodes = [helper.make_node("Constant", [], [i.name], value=i, name=f"const_{i.name}") for i in g.initializer]
    shape_consts = {"starts": [0], "ends": [1], "axes": [0], "rest": [-1]}
    for k, v in shape_consts.items():
        nodes.append(helper.make_node("Constant", [], [f"flat_{k}"], name=f"const_flat_{k}",
                                      value=numpy_helper.from_array(np.array(v, np.int64), f"flat_{k}_v")))
    for n in g.node:
        if n.op_type != "Flatten":
            nodes.append(n)
            continue
        src, dst = n.input[0], n.output[0]
        nodes += [helper.make_node("Shape", [src], ["flat_shape_all"], name="shape_0"),
                  helper.make_node("Slice", ["flat_shape_all", "flat_starts", "flat_ends", "flat_axes"],
                                   ["flat_batch"], name="slice_0"),
                  helper.make_node("Concat", ["flat_batch", "flat_rest"], ["flat_shape"], axis=0, name="concat_0"),
                  helper.make_node("Reshape", [src, "flat_shape"], [dst], name="reshape_0")]
    for i in range(120):  # paddle2onnx writes a Constant for every scalar it meets, many unused
        nodes.append(helper.make_node("Constant", [], [f"fill_{i}"], name=f"fill_{i}",
                                      value=numpy_helper.from_array(np.array([float(i)], np.float32), f"fill_{i}_v")))
    for i, n in enumerate(nodes):
        n.name = n.name or f"{n.op_type.lower()}_{i}"
    x, probs = g.input[0].name, g.output[0].name
    conv_outs = [n.output[0] for n in g.node if n.op_type == "Conv"]
    graph = helper.make_graph(
        nodes, "paddle_dynamic",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [-1, 3, -1, -1])],
        [helper.make_tensor_value_info(probs, TensorProto.FLOAT, [-1, CLASSES])],
        value_info=[helper.make_tensor_value_info(conv_outs[0], TensorProto.FLOAT, [0, 16, 0, 0]),
                    helper.make_tensor_value_info(conv_outs[1], TensorProto.FLOAT, [-1, 16, -1, 0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="PaddlePaddle",
                              producer_version="2.6")
    model.ir_version = 6
    return _save(model, out)


def fragile_reshape(out: Path) -> Path:
    """x float32[1, n] -> reshaped to [1, 2, n/2] -> summed to [1, 2]: valid input, run-time failure for odd n
    (what a model error looks like to a server)."""
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["r"]), helper.make_node("ReduceSum", ["r", "axes"], ["y"],
                                                                              keepdims=0)],
        "fragile", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(np.array([1, 2, -1], np.int64), "shape"),
         numpy_helper.from_array(np.array([2], np.int64), "axes")])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), out)


def _save(model: onnx.ModelProto, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, str(out / "model.onnx"))
    return out / "model.onnx"


BUILDERS = {
    "trained-cnn": trained_cnn,
    "sensitive-cnn": sensitive_cnn,
    "mlp": mlp,
    "fragile-mlp": fragile_mlp,
    "detector-cnn": detector_cnn,
    "lstm": rnn,
    "gru": lambda out, opset=14: rnn(out, "GRU", opset),
    "two-io": two_io,
    "tf-like": export_like,
    "paddle-like": lambda out, opset=11: export_like(out, opset, "paddle"),
    "paddle-dynamic": paddle_dynamic,
    "fragile-reshape": fragile_reshape,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in BUILDERS:
        sys.exit(f"usage: python -m tests.zoo {{{','.join(BUILDERS)}}} DIR")
    print(BUILDERS[sys.argv[1]](Path(sys.argv[2])))
