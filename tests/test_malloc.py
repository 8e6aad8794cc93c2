"""fastcnn.keep_freed_memory: glibc's malloc keeps freed memory for the next allocation, so a
network's layer-by-layer arrays stop being faulted in page by page; the fastcnn command sets it,
a library call never does. Each case runs in a fresh process: the setting is the process's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import fastcnn
from fastcnn import _malloc

GLIBC = _malloc._libc() is not None


def _run(code: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "bad, error", [(0, ValueError), (-1, ValueError), (2048, ValueError), (True, TypeError),
                   (1.5, TypeError), ("256", TypeError), (None, TypeError)]
)  # fmt: skip
def test_bad_limits_are_refused(bad, error):
    with pytest.raises(error, match="limit_mib"):
        fastcnn.keep_freed_memory(bad)


def test_the_setting_and_what_children_get():
    out = _run(
        "import json, fastcnn; from fastcnn import _malloc\n"
        "before = (_malloc.kept_limit_mib(), _malloc.child_environment())\n"
        "ok = fastcnn.keep_freed_memory(64)\n"
        "print(json.dumps({'before': before, 'ok': ok, 'limit': _malloc.kept_limit_mib(),"
        " 'env': _malloc.child_environment()}))"
    )
    assert out["before"] == [None, {}]
    if not GLIBC:
        assert out == {"before": [None, {}], "ok": False, "limit": None, "env": {}}
        return
    assert out["ok"] is True and out["limit"] == 64
    assert out["env"] == {"MALLOC_TRIM_THRESHOLD_": str(64 << 20),
                          "MALLOC_MMAP_THRESHOLD_": str(32 << 20)}  # fmt: skip


_FAULTS = """
import json, resource, sys
import numpy as np
import fastcnn
from fastcnn import models
if sys.argv[1] == "keep":
    assert fastcnn.keep_freed_memory()
model = models.DeepConvNet(seed=0)
x = np.random.default_rng(0).random((100, 1, 28, 28), dtype=np.float32)
for _ in range(3):
    model.predict(x)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    model.predict(x)
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"faults": (after - before) / 5}))
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_predictions_stop_faulting_their_arrays_in():
    """After warm-up, a batch-100 DeepConvNet prediction faults (almost) no page in with the
    setting; the count without it is shown for comparison (it depends on glibc's dynamic
    thresholds, about 1,400 on the machines here), not asserted."""
    kept = subprocess.run([sys.executable, "-c", _FAULTS, "keep"], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert kept.returncode == 0, kept.stderr[-3000:]
    faults = json.loads(kept.stdout.strip().splitlines()[-1])["faults"]
    assert faults < 50, faults


def test_the_command_sets_it(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(_malloc, "keep_freed_memory", lambda *a: calls.append(a) or True)
    from fastcnn import cli

    assert cli.main(["info"]) == 0
    capsys.readouterr()
    assert calls == [()]
