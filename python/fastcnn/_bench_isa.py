"""``fastcnn bench --isa ISA``: the DeepConvNet training step again with every framework limited
to one instruction set, in a fresh process, since torch and oneDNN read their limits once, at
import: fastcnn through FASTCNN_ISA, PyTorch's own kernels through ATEN_CPU_CAPABILITY and the
oneDNN convolutions of PyTorch and TensorFlow through ONEDNN_MAX_CPU_ISA. The process runs
fastcnn and the peers installed (not the reference, which no ISA setting reaches), timed as the
step table times them, and reports its FMA peak for that ISA and the capability torch took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from fastcnn import _malloc

# Per fastcnn ISA, the environment that limits each framework to it (generic: ATen's portable
# kernels and oneDNN's SSE4.1 ones, the least either offers on x86-64).
ISA_ENVIRONMENT = {
    "generic": {"FASTCNN_ISA": "generic", "ATEN_CPU_CAPABILITY": "default",
                "ONEDNN_MAX_CPU_ISA": "SSE41"},
    "avx2": {"FASTCNN_ISA": "avx2", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {"FASTCNN_ISA": "avx512", "ATEN_CPU_CAPABILITY": "avx512",
               "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
}  # fmt: skip


def check_isa(isa: str) -> None:
    """ValueError unless ``isa`` is one of ISA_ENVIRONMENT that this CPU and build run."""
    import fastcnn

    available = fastcnn.available_isas()
    if isa not in ISA_ENVIRONMENT or isa not in available:
        raise ValueError(f"bench --isa: {isa!r} is not an ISA this machine runs (it runs "
                         f"{', '.join(available)})")  # fmt: skip


def _child(quick: bool, torch: bool, tensorflow: bool, threads: int) -> None:
    """In the limited process: the FMA peak, fastcnn's step checked against the reference,
    every step timed; one JSON line on stdout."""
    import fastcnn
    from fastcnn import _bench
    from fastcnn._bench_peak import fma_peak
    from fastcnn._bench_peers import import_frameworks

    fastcnn.set_num_threads(threads)
    frameworks, notes = import_frameworks(torch, tensorflow)
    peak = fma_peak(quick=quick)
    _bench.check_training_step()
    backends = [b for b in _bench.STEP_BACKENDS if b != "reference"]
    steps = _bench.time_steps({b: _bench.training_step(b, frameworks) for b in backends}, quick)
    capability = None
    if "torch" in frameworks:
        capability = str(frameworks["torch"].backends.cpu.get_cpu_capability())
    print(json.dumps({"isa": fastcnn.get_isa(), "peak": peak, "steps": steps, "notes": notes,
                      "torch_capability": capability}))  # fmt: skip


def run_isa_steps(
    isa: str, quick: bool = False, torch: bool = True, tensorflow: bool = True
) -> dict[str, Any]:
    """Run the training-step comparison in a process limited to ``isa`` (ISA_ENVIRONMENT) with
    fastcnn's thread count: {"isa", "peak" (fma_peak's dict), "steps" ({backend: seconds}),
    "notes" ({framework: why left out}), "torch_capability" (torch's, or None)}."""
    import fastcnn

    check_isa(isa)
    code = (
        "from fastcnn import _bench_isa; "
        f"_bench_isa._child({quick!r}, {torch!r}, {tensorflow!r}, {fastcnn.get_num_threads()})"
    )
    env = {**os.environ, **_malloc.child_environment(), **ISA_ENVIRONMENT[isa]}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"bench --isa {isa}: the limited process failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["isa"] != isa:
        raise RuntimeError(f"bench --isa {isa}: the limited process ran {result['isa']}")
    return result
