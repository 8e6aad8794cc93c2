"""Run fastcnn in a child process and measure what a hostile input costs it.

Hostile-file tests assert the issue's bound: a reader's peak resident memory stays under twice
the input file's size plus 100 MB (Python, numpy and fastcnn themselves take ~60 MB), and the
answer comes quickly. The child's own peak RSS comes from os.wait4 on its pid (the rusage of
that one child; RUSAGE_CHILDREN keeps the maximum over every child pytest ever waited for).

Linux carries the memory high-water mark across fork (and vfork) and exec: a child started
by pytest reports at least pytest's own RSS at that moment (hundreds of MB late in the suite).
So the child is started by a small launcher process (a bare Python of ~10 MB, itself started
by pytest), which waits for it with os.wait4 and passes its rusage back.
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
    """A finished child: exit status, output, peak resident memory (bytes), wall time (s) and
    CPU time (user + system, s: what the work costs, whatever else the machine is running)."""

    returncode: int
    stdout: str
    stderr: str
    peak_rss: int
    seconds: float
    cpu_seconds: float


# Runs argv[3:], kills it after argv[2] seconds, writes "<exit code> <peak RSS KiB> <CPU s>"
# (or "timeout") to the pipe whose fd is argv[1].
_LAUNCHER = """
import os, signal, sys, time
fd, timeout, argv = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
pid = os.fork()
if pid == 0:
    os.close(fd)
    os.execv(argv[0], argv)
start = time.monotonic()
while True:
    done, status, usage = os.wait4(pid, os.WNOHANG)
    if done:
        break
    if time.monotonic() - start > timeout:
        os.kill(pid, signal.SIGKILL)
        os.wait4(pid, 0)
        os.write(fd, b"timeout")
        sys.exit(0)
    time.sleep(0.005)
cpu = usage.ru_utime + usage.ru_stime
os.write(fd, b"%d %d %.6f" % (os.waitstatus_to_exitcode(status), usage.ru_maxrss, cpu))
"""


def run_python(*args: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> Run:
    """`python *args` in a child process (without FASTCNN_DEBUG, so CLI errors stay one line).

    The child is reaped with os.wait4 by the launcher (see above), so its rusage is its own.
    Raises TimeoutError (after killing it) when it runs longer than `timeout` seconds.
    """
    child_env = {k: v for k, v in os.environ.items() if k != "FASTCNN_DEBUG"}
    child_env.update(env or {})
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        launcher = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(write_end), str(timeout), sys.executable, *args],
            stdout=out, stderr=err, env=child_env, pass_fds=(write_end,),
        )  # fmt: skip
        os.close(write_end)
        with os.fdopen(read_end, "rb") as report:
            launcher.wait()
            seconds = time.monotonic() - start
            text = report.read().decode()
        if text == "timeout":
            raise TimeoutError(f"{args} ran longer than {timeout} s")
        code, rss_kib, cpu = text.split()
        out.seek(0)
        err.seek(0)
        return Run(int(code), out.read(), err.read(), int(rss_kib) * 1024, seconds, float(cpu))


def run_cli(*argv: str, timeout: float = 60.0) -> Run:
    """`python -m fastcnn *argv` in a child process."""
    return run_python("-m", "fastcnn", *argv, timeout=timeout)


def run_code(code: str, timeout: float = 60.0) -> Run:
    """`python -c code` in a child process."""
    return run_python("-c", code, timeout=timeout)


def rss_bound(*files: Path) -> int:
    """The issue's bound for a reader of `files`: twice their size plus 100 MB."""
    return 2 * sum(Path(f).stat().st_size for f in files) + BASE_RSS


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): for tests of stale files."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
