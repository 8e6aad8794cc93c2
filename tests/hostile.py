"""Run fastcnn in a child process and measure what a hostile input costs it.

Hostile-file tests assert the issue's bound: a reader's peak resident memory stays under twice
the input file's size plus 100 MB (Python, numpy and fastcnn themselves take ~60 MB), and the
answer comes quickly. The child's own peak RSS comes from os.wait4 on its pid (the rusage of
that one child; RUSAGE_CHILDREN keeps the maximum over every child pytest ever waited for).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BASE_RSS = 100 * 2**20


@dataclass
class Run:
    """A finished child: exit status, output, peak resident memory (bytes) and wall time (s)."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss: int
    seconds: float


def run_python(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> Run:
    """`python *args` in a child process (without FASTCNN_DEBUG, so CLI errors stay one line).

    The child is reaped here with os.wait4, not by subprocess, so its rusage is its own.
    Raises TimeoutError (after killing it) when it runs longer than `timeout` seconds.
    """
    child_env = {k: v for k, v in os.environ.items() if k != "FASTCNN_DEBUG"}
    child_env.update(env or {})
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        pid = subprocess.Popen([sys.executable, *args], stdout=out, stderr=err,
                               env=child_env).pid  # fmt: skip
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() - start > timeout:
                os.kill(pid, signal.SIGKILL)
                os.wait4(pid, 0)
                raise TimeoutError(f"{args} ran longer than {timeout} s")
            time.sleep(0.005)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        rss = usage.ru_maxrss * 1024  # KiB on Linux
        return Run(os.waitstatus_to_exitcode(status), out.read(), err.read(), rss, seconds)


def run_cli(*argv: str, timeout: float = 60.0) -> Run:
    """`python -m fastcnn *argv` in a child process."""
    return run_python("-m", "fastcnn", *argv, timeout=timeout)


def run_code(code: str, timeout: float = 60.0) -> Run:
    """`python -c code` in a child process."""
    return run_python("-c", code, timeout=timeout)


def rss_bound(*files: Path) -> int:
    """The issue's bound for a reader of `files`: twice their size plus 100 MB."""
    return 2 * sum(Path(f).stat().st_size for f in files) + BASE_RSS
