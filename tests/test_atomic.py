"""fastcnn._atomic: the one atomic writer behind model files, checkpoints and training logs."""

from __future__ import annotations

import os

import pytest

from fastcnn import _atomic
from hostile import dead_pid


def test_a_failed_write_leaves_the_target_and_no_temporary(tmp_path):
    target = tmp_path / "log.json"
    target.write_text("old")

    def fail(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _atomic.write_atomic(target, fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.json"]


def test_a_write_replaces_keeps_the_mode_and_removes_a_killed_writers_temporary(tmp_path):
    target = tmp_path / "log.json"
    target.write_text("old")
    os.chmod(target, 0o600)
    stale = tmp_path / f".log.json.{_atomic._host()}.{dead_pid()}.x1y2z3.tmp"
    live = tmp_path / f".log.json.{_atomic._host()}.{os.getpid()}.x1y2z3.tmp"
    stale.write_bytes(b"left by kill -9")
    live.write_bytes(b"being written")
    _atomic.write_atomic(target, lambda f: f.write(b"new"))
    assert target.read_text() == "new"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert not stale.exists() and live.exists()
