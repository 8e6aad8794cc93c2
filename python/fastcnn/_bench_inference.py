"""``fastcnn bench``'s inference table: DeepConvNet's ``predict`` (the logits, inference mode)
on a batch of 100 (images/s) and on one image (latency), fastcnn against the runtimes that are
installed — PyTorch eager (NCHW and channels_last) and ONNX Runtime on the graph
``export_onnx`` writes. Every runtime's logits are checked against fastcnn's before it is
timed; all run with fastcnn's thread count, in this process, one after the other. The timing
and the table are _bench.py's.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

Run = Callable[[np.ndarray], np.ndarray]
BATCHES = (100, 1)


def _inputs() -> dict[int, np.ndarray]:
    rng = np.random.default_rng(5)
    return {n: rng.random((n, 1, 28, 28), dtype=np.float32) for n in BATCHES}


def _torch_runs(torch: Any, model: Any) -> dict[str, Run]:
    """torch's DeepConvNet in inference form: its dropout layers as DeepConvNet's inference
    scaling by 1 - ratio, so the logits are the same."""
    from fastcnn._bench_peers import _torch_deep

    class Scale(torch.nn.Module):
        def __init__(self, factor: float) -> None:
            super().__init__()
            self.factor = factor

        def forward(self, x: Any) -> Any:
            return x * self.factor

    def inference_form() -> Any:
        net = _torch_deep(torch, model)
        mods = [Scale(1.0 - m.p) if isinstance(m, torch.nn.Dropout) else m for m in net]
        return torch.nn.Sequential(*mods).eval()

    nchw = inference_form()
    last = inference_form().to(memory_format=torch.channels_last)

    def eager(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return nchw(torch.from_numpy(x)).numpy()

    def channels_last(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            xt = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)
            return last(xt).numpy()

    return {"torch eager": eager, "torch channels_last": channels_last}


def _onnxruntime_run(model: Any, threads: int) -> Run | None:
    """ONNX Runtime (CPU provider) on the graph export_onnx writes, or None when onnx or
    onnxruntime is not installed."""
    try:
        import onnx  # noqa: F401  (export_onnx needs it)
        import onnxruntime as ort
    except ImportError:
        return None
    from fastcnn.models import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "deep.onnx")
        export_onnx(model, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"input": x})[0]

    return run


def inference_runs(torch: Any = None) -> tuple[dict[str, Run], dict[str, str]]:
    """({runtime: run(x) -> logits}, {runtime: version}) for fastcnn and each runtime
    installed, each checked against fastcnn's logits on both batch sizes."""
    import fastcnn
    from fastcnn import models

    model = models.DeepConvNet(seed=0)
    runs: dict[str, Run] = {"fastcnn": model.predict}
    versions = {"fastcnn": fastcnn.__version__}
    if torch is not None:
        runs |= _torch_runs(torch, model)
        versions |= {"torch eager": torch.__version__, "torch channels_last": torch.__version__}
    ort_run = _onnxruntime_run(model, fastcnn.get_num_threads())
    if ort_run is not None:
        import onnxruntime

        runs["onnxruntime"] = ort_run
        versions["onnxruntime"] = onnxruntime.__version__
    for x in _inputs().values():
        want = model.predict(x)
        for name, run in runs.items():
            got = np.asarray(run(x))
            if got.shape != want.shape or not np.allclose(got, want, atol=1e-4, rtol=1e-3):
                raise AssertionError(f"bench: {name}'s DeepConvNet logits differ from fastcnn's")
    return runs, versions


def time_inference(
    runs: dict[str, Run], best_time: Callable[..., float], quick: bool
) -> dict[str, dict[int, float]]:
    """Seconds per call of each runtime at each batch size (best of N)."""
    reps, min_time = (3, 0.05) if quick else (9, 0.2)
    x = _inputs()
    out: dict[str, dict[int, float]] = {name: {} for name in runs}
    for n in BATCHES:
        for name, run in runs.items():
            call = functools.partial(run, x[n])
            out[name][n] = best_time(call, repeat=reps, min_time=min_time)
    return out
