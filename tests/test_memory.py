"""Memory: what a network keeps between its forward and backward passes, and the kernels'
per-thread scratch caches (common/memory.cpp).

A model's chain keeps only what backward needs (a convolution's input, a ReLU's output, and
after a ReLU + max pool only the pool's output and uint8 argmax) and frees it as backward goes;
an inference forward keeps nothing. The scratch caches make a steady run of training steps
allocate no scratch, stay within their bound after a call that needed more, go with their
thread, and never mix up concurrent calls. No timings anywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastcnn
from fastcnn import _config, models, optim
from fastcnn import functional as F
from fastcnn._env import _core
from fastcnn.models import _blocks
from fastcnn.reference import functional as R
from fastcnn.reference import layers as ref_layers

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["fast", "reference"]
T = _core._testing


def _steps(chain: _blocks.Chain) -> list[Any]:
    """Every step of a chain, those of residual blocks' chains too."""
    out = []
    for step in chain.steps:
        out.append(step)
        layer = getattr(step, "layer", None)
        if isinstance(layer, _blocks.Residual):
            out += _steps(layer.block)
    return out


def _kept(model: Any) -> list[np.ndarray]:
    """The arrays a model's layers and chain steps hold for a backward pass."""
    arrays: list[Any] = []
    for step in _steps(model._chain):
        if isinstance(step, _blocks._ConvRelu):
            layers = [step.conv, step.relu, step.pool]
            arrays.append(step.out)
        else:
            layers = [step.layer]
            if isinstance(step.layer, _blocks.Residual) and step.layer.shortcut is not None:
                layers.append(step.layer.shortcut)
        for layer in layers:
            if layer is not None:
                arrays += [getattr(layer, name) for name in layer.forward_state]
    return [a for a in arrays if isinstance(a, np.ndarray)]


def _kept_bytes(model: Any) -> int:
    """Bytes of the distinct arrays that own the memory behind _kept (a view counts as the
    array it views, once)."""
    owners: dict[int, int] = {}
    for a in _kept(model):
        while isinstance(a.base, np.ndarray):
            a = a.base
        owners[id(a)] = a.nbytes
    return sum(owners.values())


def _batch(model: Any, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, *model.input_dim), dtype=np.float32)
    return x, rng.integers(0, model.output_size, n)


def _small_resnet(backend: str) -> Any:
    config = json.loads((ROOT / "docs" / "examples" / "small_resnet.json").read_text())
    return models.Sequential.from_config(config, backend=backend, seed=0)


# -- what a network keeps ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_deepconvnet_keeps_only_what_backward_needs(backend):
    n = 3
    model = models.DeepConvNet(backend=backend, seed=0)
    x, t = _batch(model, n)
    model.loss(x, t)  # a training forward
    # float32: the image (conv1's input); conv1's ReLU output (conv2's input); each pool's
    # output (the next layer's input) and uint8 argmax; conv3's and conv5's ReLU outputs. Then
    # Relu7's input, Affine2's input (floats) and the two dropout masks (bools). Not kept: the
    # ReLU outputs before each pool (4.8 of DeepConvNet's 25 MiB at batch 100 for pool1's).
    floats = 784 + 16 * 28 * 28 + 16 * 14 * 14 + 32 * 14 * 14 + 32 * 8 * 8 + 64 * 8 * 8
    floats += 64 * 4 * 4 + 50 + 50
    argmax = 16 * 14 * 14 + 32 * 8 * 8 + 64 * 4 * 4
    masks = 50 + 10
    assert _kept_bytes(model) == n * (4 * floats + argmax + masks)
    for name in ("Pool1", "Pool2", "Pool3"):
        pool = model.layers[name]
        assert pool.arg_max.dtype == np.uint8 and pool.x is None
    for name in ("Relu2", "Relu4", "Relu6"):
        assert model.layers[name].x is None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("net", ["deep", "resnet"])
def test_backward_frees_every_forward_state(backend, net):
    model = models.DeepConvNet(backend=backend) if net == "deep" else _small_resnet(backend)
    x, t = _batch(model, 2)
    model.loss(x, t)
    assert _kept_bytes(model) > 0
    model.loss_and_gradient(x, t)
    assert _kept(model) == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("net", ["deep", "resnet"])
def test_inference_keeps_nothing(backend, net):
    model = models.DeepConvNet(backend=backend) if net == "deep" else _small_resnet(backend)
    x, _ = _batch(model, 2)
    model.predict(x)
    assert _kept(model) == []


def test_a_released_layer_cannot_run_backward():
    conv = ref_layers.Convolution(np.ones((2, 1, 3, 3)), np.zeros(2))
    y = conv.forward(np.ones((1, 1, 4, 4)))
    conv.backward(np.ones_like(y))  # a layer on its own keeps its state, as the classic one
    assert conv.x is not None
    conv.release()
    assert conv.x is None
    with pytest.raises(RuntimeError, match="backward was called before forward"):
        conv.backward(np.ones_like(y))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_conv_relu_pool_matches_the_layers_one_by_one(backend):
    """The chain runs conv -> ReLU -> max pool as one step whose ReLU backward comes before the
    pool's; the gradients are those of the layers run one after the other, bit for bit
    (overlapping and padded windows, ties at zero)."""
    layers = [
        {"type": "conv", "filters": 4, "size": 3, "pad": 1},
        {"type": "relu"},
        {"type": "maxpool", "size": 3, "stride": 2, "pad": 1},
        {"type": "conv", "filters": 5, "size": 3},
        {"type": "relu"},
        {"type": "maxpool", "size": 2, "stride": 1},
        {"type": "affine", "units": 3},
    ]
    model = models.Sequential(layers, (2, 9, 9), backend=backend, seed=3, dtype=np.float64)
    assert sum(isinstance(s, _blocks._ConvRelu) and s.pool is not None for s in model._chain.steps)
    x, t = _batch(model, 4)
    x[:, :, :4] = 0.0  # ReLU outputs tie at zero inside windows
    _, grads = model.loss_and_gradient(x, t)
    # The same layer objects, run one by one with their own forward and backward.
    h = x
    for layer in model.layers.values():
        h = layer.forward(h)
    model.last_layer.forward(h, t)
    d = model.last_layer.backward(1.0)
    for layer in reversed(model.layers.values()):
        d = layer.backward(d)
    for key, (layer, attr) in model._grad_of.items():
        assert getattr(layer, attr).tobytes() == grads[key].tobytes(), key


@pytest.mark.parametrize("mod", [F, R], ids=["fast", "reference"])
def test_relu_backward_commutes_with_max_pool_backward(mod, rng):
    """relu_backward(pool_backward(dp), y) is pool_backward(relu_backward(dp, pool(y))) bit for
    bit, with NaN and -0 in y and in dp (what the fused step relies on)."""
    y = np.maximum(rng.standard_normal((2, 3, 9, 9)), 0.0)
    y[0, 0, :3, :3] = 0.0
    y[0, 1, 2, 2] = np.nan
    y[1, 2, 4:6, 4:6] = -0.0
    for win, stride, pad in [(2, 2, 0), (3, 2, 1), (2, 1, 0)]:
        p, am = mod.max_pool2d_forward(y, win, stride, pad, np.uint8)
        dp = rng.standard_normal(p.shape)
        dp[0, 0, 0, 0] = -0.0
        dp[1, 1, 1, 1] = np.nan
        one_by_one = mod.relu_backward(
            mod.max_pool2d_backward(dp, am, y.shape, win, stride, pad), y
        )
        fused = mod.max_pool2d_backward(mod.relu_backward(dp, p), am, y.shape, win, stride, pad)
        assert fused.tobytes() == one_by_one.tobytes()


# -- the kernels' scratch caches ------------------------------------------------------------------


def _training_steps(model: Any, n: int, x: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
    adam = optim.Adam(lr=1e-3, backend=model.backend)
    out = []
    for _ in range(n):
        loss, grads = model.loss_and_gradient(x, t)
        adam.update(model.params, grads)
        out += [np.array(loss), *(g.copy() for g in grads.values())]
    return out


_STEADY_STEPS = """
import json
import numpy as np
import fastcnn
from fastcnn import models, optim
from fastcnn._env import _core

T = _core._testing
model = models.DeepConvNet(seed=0)
rng = np.random.default_rng(0)
x = rng.random((16, *model.input_dim), dtype=np.float32)
t = rng.integers(0, model.output_size, 16)
adam = optim.Adam(lr=1e-3)
fastcnn.set_num_threads(1)


def steps(n):
    for _ in range(n):
        _, grads = model.loss_and_gradient(x, t)
        adam.update(model.params, grads)


steps(2)
before = T.workspace_stats()
steps(3)
after = T.workspace_stats()
T.workspace_release_thread_cache()
print(json.dumps({"before": before, "after": after, "released": T.workspace_stats()}))
"""


def test_training_steps_reuse_their_scratch():
    """After a first step, training steps take every scratch block from the cache: no
    allocations at all (one thread, so every call's scratch is the calling thread's). In a
    fresh process: the counters are the whole process's, and what earlier tests left in this
    one (threads, cached blocks) is no part of a steady run of steps."""
    res = subprocess.run([sys.executable, "-c", _STEADY_STEPS], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    stats = json.loads(res.stdout.strip().splitlines()[-1])
    before, after = stats["before"], stats["after"]
    own = after["cached_bytes"] - stats["released"]["cached_bytes"]
    assert after["allocations"] == before["allocations"]
    assert after["allocated_bytes"] == before["allocated_bytes"]
    assert 0 < own <= after["cache_limit_bytes"]


def test_a_call_needing_more_than_the_bound_leaves_only_the_bound():
    """A weight gradient whose scratch exceeds one thread's cache bound (a 4+ MiB transformed
    gradient): the blocks beyond the bound are freed, not kept."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 256, 8, 8), dtype=np.float32)
    w = rng.standard_normal((256, 256, 3, 3), dtype=np.float32)
    dy = rng.standard_normal((2, 256, 8, 8), dtype=np.float32)
    with fastcnn.threads(1), fastcnn.conv_algorithm("winograd_f2x2_3x3"):
        T.workspace_release_thread_cache()
        before = T.workspace_stats()
        F.conv2d_backward(dy, x, w, 1, 1)
        after = T.workspace_stats()
        T.workspace_release_thread_cache()
        cleared = T.workspace_stats()
    limit = before["cache_limit_bytes"]
    assert after["allocated_bytes"] - before["allocated_bytes"] > limit  # it needed more
    assert after["cached_bytes"] - before["cached_bytes"] <= limit
    assert cleared["cached_bytes"] == before["cached_bytes"]


def test_a_threads_cache_goes_with_it():
    """Scratch cached by a Python thread is freed when the thread exits (one kernel thread:
    no pool thread takes part, so only the exiting thread's cache changes)."""
    model = models.DeepConvNet(seed=0)
    x, t = _batch(model, 8)
    with fastcnn.threads(1):
        before = T.workspace_stats()
        worker = threading.Thread(target=_training_steps, args=(model, 1, x, t))
        worker.start()
        worker.join()
        # join() returns once the thread's Python part is done; its C++ thread-local state
        # goes a moment later, when the OS thread exits.
        deadline = time.monotonic() + 30
        while T.workspace_stats()["cached_bytes"] != before["cached_bytes"]:
            assert time.monotonic() < deadline, "the exited thread's cache was not freed"
            time.sleep(0.01)
    assert T.workspace_stats()["allocations"] > before["allocations"]  # it did take blocks


def test_concurrent_training_steps_from_python_threads():
    """Several Python threads train their own copy of a model at once, on two kernel threads
    with every region split: each gets the bits one thread alone gets (scratch is the calling
    thread's or a pool thread's, never shared by two calls)."""
    x, t = _batch(models.DeepConvNet(), 6)
    with fastcnn.threads(1):
        want = _training_steps(models.DeepConvNet(seed=0), 2, x, t)

    def train(_: int) -> bool:
        got = _training_steps(models.DeepConvNet(seed=0), 2, x, t)
        return all(a.tobytes() == b.tobytes() for a, b in zip(got, want))

    with fastcnn.threads(2), _config.min_thread_work(0), ThreadPoolExecutor(4) as ex:
        assert all(ex.map(train, range(6)))
