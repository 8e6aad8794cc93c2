"""``fastcnn bench``'s peers for the DeepConvNet training step: the same network, weights, batch,
loss (mean softmax cross-entropy) and optimizer (Adam, lr 1e-3, eps 1e-8) in PyTorch eager,
with NCHW tensors and with channels_last ones (the layout torch's oneDNN convolutions run
fastest on CPU), and in TensorFlow as a Keras model whose whole step (forward, gradient, Adam)
is one ``tf.function``. Each peer's logits in inference mode (dropout off) are checked against
the reference layers' before it is timed. A framework that is not installed is left out with
a note, and none is imported until asked for. The timing and the tables are _bench.py's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

# The peers, in the order the tables print them, and the framework each needs.
PEERS = {"torch eager": "torch", "torch channels_last": "torch", "tensorflow": "tensorflow"}
INSTALL = {"torch": "pip install torch", "tensorflow": "pip install tensorflow-cpu"}
Step = Callable[[], float]


def import_torch() -> Any:
    """torch with fastcnn's thread count, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    import fastcnn

    torch.set_num_threads(fastcnn.get_num_threads())
    return torch


def import_tensorflow() -> tuple[Any, str | None]:
    """(tensorflow, None) with Keras on its TensorFlow backend and fastcnn's thread count
    (intra-op; one inter-op thread, as the step is one graph), or (None, why not)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up log: errors only
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return None, f"not installed ({INSTALL['tensorflow']})"
    if keras.backend.backend() != "tensorflow":
        return None, f"Keras runs on {keras.backend.backend()} here (KERAS_BACKEND), not tensorflow"
    import fastcnn

    threads = fastcnn.get_num_threads()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started in this process: keep its setting
        pass
    got = tf.config.threading.get_intra_op_parallelism_threads()
    if got not in (0, threads):
        return None, f"already running with {got} threads, fastcnn uses {threads}"
    return tf, None


def import_frameworks(torch: bool = True, tensorflow: bool = True) -> tuple[dict, dict]:
    """({"torch": module, "tensorflow": module} for those asked for and importable, {framework:
    why it is left out} for those asked for and not)."""
    found: dict[str, Any] = {}
    notes: dict[str, str] = {}
    if torch:
        found["torch"] = import_torch()
        if found["torch"] is None:
            del found["torch"]
            notes["torch"] = f"not installed ({INSTALL['torch']})"
    if tensorflow:
        tf, why = import_tensorflow()
        if tf is None:
            notes["tensorflow"] = str(why)
        else:
            found["tensorflow"] = tf
    return found, notes


def reference_logits(model: Any, x: np.ndarray) -> np.ndarray:
    """The logits of ``model``'s layers without their dropout layers: what the peers compute in
    inference mode (their dropout is the identity there, DeepConvNet's scales by 1 - ratio)."""
    y = x
    for layer in model.layers.values():
        if type(layer).__name__ != "Dropout":
            y = layer.forward(y)
    return y


def _check_logits(got: np.ndarray, model: Any, x: np.ndarray, peer: str) -> None:
    want = reference_logits(model, x)
    if got.shape != want.shape or not np.allclose(got, want, atol=1e-3, rtol=1e-3):
        raise AssertionError(f"bench: the {peer} DeepConvNet's logits differ from fastcnn's")


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------


def _torch_deep(torch: Any, model: Any) -> Any:
    """nn.Sequential equal to the DeepConvNet ``model`` (weights copied). Dropout differs in
    form (torch scales at training time, DeepConvNet at inference) but not in cost."""
    nn = torch.nn
    p = model.params
    mods: list[Any] = []
    for i, cp in enumerate(model.conv_params, 1):
        w = p[f"W{i}"]
        conv = nn.Conv2d(w.shape[1], w.shape[0], cp["filter_size"], cp["stride"], cp["pad"])
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(p[f"b{i}"]))
        mods += [conv, nn.ReLU()]
        if i % 2 == 0:
            mods.append(nn.MaxPool2d(2, 2))
    fcs = []
    for i in (7, 8):
        w = p[f"W{i}"]
        fc = nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            fc.bias.copy_(torch.from_numpy(p[f"b{i}"]))
        fcs.append(fc)
    ratio = model.dropout_ratio
    return nn.Sequential(
        *mods, nn.Flatten(), fcs[0], nn.ReLU(), nn.Dropout(ratio), fcs[1], nn.Dropout(ratio)
    )


def torch_step(
    torch: Any,
    model: Any,
    x: np.ndarray,
    t: np.ndarray,
    channels_last: bool,
    check: bool = True,
    warm_up: bool = False,
) -> Step:
    """One torch training step of ``model``'s network on (x, t); with channels_last, the
    network's parameters and the input batch are in that memory format (the logits check runs
    in it too). check: compare the logits with the reference's first; warm_up: run one
    inference forward of the batch first."""
    net = _torch_deep(torch, model)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        xt = xt.contiguous(memory_format=torch.channels_last)
    net.eval()
    if check:
        with torch.no_grad():
            got = net(xt).numpy()
        _check_logits(got, model, x, "torch channels_last" if channels_last else "torch eager")
    if warm_up:
        with torch.no_grad():
            net(xt)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-8)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(net(xt), tt)
        loss.backward()
        opt.step()
        return float(loss.detach().item())

    return step


# ---------------------------------------------------------------------------------------------
# TensorFlow (Keras 3 on its TensorFlow backend)
# ---------------------------------------------------------------------------------------------


def _keras_deep(tf: Any, model: Any) -> Any:
    """A Keras model equal to the DeepConvNet ``model`` in NHWC (TensorFlow's CPU layout):
    kernels (K, C, R, S) as (R, S, C, K), "same" padding where it equals the model's (else an
    explicit ZeroPadding2D), and the first affine's rows reordered from the model's (C, H, W)
    flattening to Keras's (H, W, C)."""
    import keras

    layers = keras.layers
    p = model.params
    c, h, w = model.input_dim
    inp = keras.Input((h, w, c))
    y = inp
    weights: list[tuple[Any, list[np.ndarray]]] = []
    for i, cp in enumerate(model.conv_params, 1):
        kernel = p[f"W{i}"]
        size, pad = cp["filter_size"], cp["pad"]
        same = cp["stride"] == 1 and 2 * pad == size - 1
        if pad and not same:
            y = layers.ZeroPadding2D(pad)(y)
        conv = layers.Conv2D(kernel.shape[0], size, cp["stride"], "same" if same else "valid")
        y = layers.ReLU()(conv(y))
        weights.append((conv, [kernel.transpose(2, 3, 1, 0), p[f"b{i}"]]))
        if i % 2 == 0:
            y = layers.MaxPooling2D(2, 2)(y)
    _, hh, ww, cc = y.shape
    w7 = p["W7"].reshape(cc, hh, ww, -1).transpose(1, 2, 0, 3).reshape(hh * ww * cc, -1)
    fc1, fc2 = layers.Dense(w7.shape[1]), layers.Dense(p["W8"].shape[1])
    ratio = model.dropout_ratio
    y = layers.Dropout(ratio)(layers.ReLU()(fc1(layers.Flatten()(y))))
    y = layers.Dropout(ratio)(fc2(y))
    weights += [(fc1, [w7, p["b7"]]), (fc2, [p["W8"], p["b8"]])]
    net = keras.Model(inp, y)
    for layer, values in weights:
        layer.set_weights(values)
    return net


def tensorflow_step(
    tf: Any, model: Any, x: np.ndarray, t: np.ndarray, check: bool = True, warm_up: bool = False
) -> Step:
    """One TensorFlow training step of ``model``'s network on (x, t), traced once as a
    tf.function; the batch goes in as NHWC, converted once like the channels_last batch.
    check and warm_up as for torch_step."""
    import keras

    net = _keras_deep(tf, model)
    xh, th = tf.constant(x.transpose(0, 2, 3, 1)), tf.constant(t)
    if check:
        _check_logits(net(xh, training=False).numpy(), model, x, "tensorflow")
    if warm_up:
        net(xh, training=False)
    opt = keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train(xb: Any, tb: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(tb, net(xb, training=True))
        grads = tape.gradient(loss, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables))
        return loss

    def step() -> float:
        return float(train(xh, th))

    return step


def peer_step(
    name: str,
    frameworks: dict,
    model: Any,
    x: np.ndarray,
    t: np.ndarray,
    check: bool = True,
    warm_up: bool = False,
) -> Step | None:
    """The training step of peer ``name`` (a key of PEERS), or None when its framework is not
    in ``frameworks`` (import_frameworks); check and warm_up as for torch_step."""
    framework = frameworks.get(PEERS[name])
    if framework is None:
        return None
    if name == "tensorflow":
        return tensorflow_step(framework, model, x, t, check, warm_up)
    channels_last = name == "torch channels_last"
    return torch_step(framework, model, x, t, channels_last, check, warm_up)
