"""The compiled core, ``fastcnn._core``, imported in one place for the modules that call it."""

from __future__ import annotations

from fastcnn import _core as core

__all__ = ["core"]
