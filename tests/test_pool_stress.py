"""The thread pool under stress: tests/cpp/pool_stress.cpp compiled with the pool's own source
(src/cpp/common/parallel.cpp) by the C++ compiler that builds fastcnn, then run for a few
seconds from several calling threads (see the C++ file for what each region checks)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "src/cpp/common/parallel.cpp", ROOT / "tests/cpp/pool_stress.cpp"]


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if cxx is None:  # fastcnn cannot be built here either
        pytest.fail("no C++ compiler (g++, c++ or $CXX) to build the pool stress test")
    return cxx


def test_pool_stress(tmp_path):
    exe = tmp_path / "pool_stress"
    build = subprocess.run(
        [_compiler(), "-std=c++17", "-O2", "-pthread", f"-I{ROOT / 'src/cpp'}",
         *map(str, SOURCES), "-o", str(exe)],  # fmt: skip
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), "3", "3"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok "), run.stdout
    assert int(run.stdout.split()[1]) > 100  # it ran regions, not just started
