"""Run fastcnn in a child process and measure what a hostile input costs it.

Hostile-file tests assert the issue's bound: a reader's peak resident memory stays under twice
the input file's size plus 100 MB (Python, numpy and fastcnn themselves take ~60 MB), and the
answer comes quickly. The child's own peak RSS is its VmHWM (/proc/self/status), which a small
wrapper writes at exit: rusage's ru_maxrss would not do, as Linux carries the parent's peak
into a child across exec (subprocess uses vfork), so every child of a pytest that once held
500 MB would report 500 MB.
"""

from __future__ import annotations

import os
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


# Runs `python MODE TARGET ARGS...` (MODE -m or -c) in this process, then writes its VmHWM in
# bytes to the file named first; atexit runs after SystemExit and uncaught exceptions alike.
_WRAPPER = """
import atexit, runpy, sys
def _report(path=sys.argv[1]):
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    with open(path, "w") as f:
        f.write(str(kib * 1024))
atexit.register(_report)
mode, target, *rest = sys.argv[2:]
if mode == "-m":
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c", *rest]
    exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
"""


def run_python(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> Run:
    """`python -m MODULE ...` or `python -c CODE ...` in a child process (without FASTCNN_DEBUG,
    so CLI errors stay one line).

    Raises TimeoutError (after killing it) when it runs longer than `timeout` seconds.
    """
    if len(args) < 2 or args[0] not in ("-m", "-c"):
        raise ValueError(f"run_python: args must start with -m MODULE or -c CODE, got {args}")
    child_env = {k: v for k, v in os.environ.items() if k != "FASTCNN_DEBUG"}
    child_env.update(env or {})
    with tempfile.TemporaryDirectory() as tmp:
        hwm, out_path, err_path = (Path(tmp) / name for name in ("hwm", "out", "err"))
        start = time.monotonic()
        with open(out_path, "w") as out, open(err_path, "w") as err:
            try:
                proc = subprocess.run(
                    [sys.executable, "-c", _WRAPPER, str(hwm), *args],
                    stdout=out,
                    stderr=err,
                    env=child_env,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                raise TimeoutError(f"{args} ran longer than {timeout} s") from None
        seconds = time.monotonic() - start
        if not hwm.exists():  # killed, or os._exit: no measurement is not a small one
            raise RuntimeError(f"{args} exited with {proc.returncode} without reporting VmHWM")
        rss = int(hwm.read_text())
        return Run(proc.returncode, out_path.read_text(), err_path.read_text(), rss, seconds)


def run_cli(*argv: str, timeout: float = 60.0) -> Run:
    """`python -m fastcnn *argv` in a child process."""
    return run_python("-m", "fastcnn", *argv, timeout=timeout)


def run_code(code: str, timeout: float = 60.0) -> Run:
    """`python -c code` in a child process."""
    return run_python("-c", code, timeout=timeout)


def rss_bound(*files: Path) -> int:
    """The issue's bound for a reader of `files`: twice their size plus 100 MB."""
    return 2 * sum(Path(f).stat().st_size for f in files) + BASE_RSS
