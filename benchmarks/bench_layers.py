"""Layer benchmark: DeepConvNet's six 3x3 convolutions and its first 2x2 max pool (forward,
backward) for fastcnn, the numpy reference and PyTorch's CPU path (when torch is importable),
and one whole DeepConvNet training step (forward, backward, Adam) for those and PyTorch
channels_last and TensorFlow (when importable). Batch 100, float32, fastcnn's thread count for
the peers too.

  pytest benchmarks/bench_layers.py --benchmark-group-by=param:case
  python benchmarks/bench_layers.py [--quick]      # ratio table + training-step peak memory

A pytest-benchmark front-end over ``fastcnn._bench`` (the implementation ``fastcnn bench``
runs): cases are built and checked against the reference there, before anything is timed.
"""

from __future__ import annotations

import sys

import pytest

import fastcnn
from fastcnn import _bench
from fastcnn._bench_peers import PEERS, import_frameworks, import_torch


@pytest.mark.parametrize("backend", _bench.BACKENDS)
@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("case", _bench.CASES)
def test_layer(benchmark, case, direction, backend):
    cases = _bench.layer_case(case, import_torch())
    if backend not in cases:
        pytest.skip("torch is not installed")
    benchmark.extra_info["threads"] = fastcnn.get_num_threads()
    if backend == "torch" and direction == "backward":
        benchmark.extra_info["note"] = "torch: forward + backward (backward frees the graph)"
    benchmark(cases[backend][0 if direction == "forward" else 1])


@pytest.mark.parametrize("backend", _bench.STEP_BACKENDS)
def test_training_step(benchmark, backend):
    if backend == "fastcnn":
        _bench.check_training_step()
    framework = PEERS.get(backend)
    frameworks, notes = import_frameworks(framework == "torch", framework == "tensorflow")
    step = _bench.training_step(backend, frameworks)
    if step is None:
        pytest.skip(f"{framework}: {notes[framework]}")
    benchmark.extra_info["threads"] = fastcnn.get_num_threads()
    benchmark.pedantic(step, rounds=3 if backend == "reference" else 10, warmup_rounds=1)


@pytest.mark.parametrize("backend", _bench.STEP_BACKENDS)
def test_peak_memory(backend):
    """Not a timing: the training step's VmHWM growth in a fresh process, printed."""
    mem = _bench.peak_memory(backend)
    if mem is None:
        pytest.skip(f"{PEERS.get(backend, backend)} is not installed (or no /proc)")
    print(f"{backend}: peak growth {mem['growth_kib'] / 1024:.0f} MiB")
    assert mem["growth_kib"] >= 0


def main() -> None:
    _bench.main(quick="--quick" in sys.argv[1:])


if __name__ == "__main__":
    main()
