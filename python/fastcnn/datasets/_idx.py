"""Reading and writing MNIST's IDX files (raw or gzip-compressed), with strict checks.

Only the two MNIST kinds are handled: unsigned-byte labels (magic 2049, 1-D) and unsigned-byte
images (magic 2051, 3-D). Every malformed file is an IDXError that names the file and says what
is wrong; no other IDX element types (int16, float, ...) are supported.

A header is only a claim: the data size it declares is checked against a limit before anything
is allocated and, for an uncompressed file, against the file's size; no more than the declared
bytes (plus one chunk, to report trailing data) are ever decompressed. Sizes are Python ints, so
no product of dims can overflow.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Union

import numpy as np

from fastcnn._validation import check_int

__all__ = [
    "IDXError",
    "LABELS_MAGIC",
    "IMAGES_MAGIC",
    "MAX_DATA_BYTES",
    "read_idx",
    "read_idx_header",
    "write_idx",
]

PathLike = Union[str, "os.PathLike[str]"]

LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension
IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
_NDIM = {LABELS_MAGIC: 1, IMAGES_MAGIC: 3}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
# read_idx's default limit on the data bytes a header may declare: above MNIST's largest file
# (47,040,000 bytes of training images) and small enough that a tiny compressed file declaring
# it keeps the reader within the issue-12 memory target (2x the file's size + 100 MB).
MAX_DATA_BYTES = 64 * 2**20


class IDXError(ValueError):
    """A file is not a well-formed MNIST IDX file; the message names the file and the problem."""


def _fail(path: PathLike, text: str) -> IDXError:
    return IDXError(f"read_idx: {os.fspath(path)}: {text}")


@contextlib.contextmanager
def _open(path: PathLike) -> Iterator[tuple[io.BufferedIOBase, bool]]:
    """Open ``path`` for reading, decompressing it if its content is gzip (whatever its name)."""
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        if not is_gzip and os.fspath(path).endswith(".gz"):
            raise _fail(path, "the name ends in .gz but the content is not gzip data")
        if not is_gzip:
            yield raw, False
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as gz:  # closing it leaves raw open
            yield gz, True


def _read_exact(f: io.BufferedIOBase, n: int) -> bytes:
    """Read up to ``n`` bytes, looping over short reads; fewer only at end of file."""
    parts = []
    while n > 0:
        chunk = f.read(min(n, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _parse_header(f: io.BufferedIOBase, path: PathLike) -> tuple[int, tuple[int, ...]]:
    head = _read_exact(f, 4)
    if len(head) < 4:
        raise _fail(path, f"truncated header: expected at least 4 bytes, got {len(head)}")
    (magic,) = struct.unpack(">I", head)
    if magic not in _NDIM:
        raise _fail(
            path,
            f"bad magic number: expected {LABELS_MAGIC} (labels) or {IMAGES_MAGIC} (images), "
            f"got {magic} (bytes {head.hex(' ')}); not an MNIST IDX file",
        )
    ndim = _NDIM[magic]
    dims_raw = _read_exact(f, 4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise _fail(
            path,
            f"truncated header: magic {magic} needs {4 + 4 * ndim} header bytes, "
            f"got {4 + len(dims_raw)}",
        )
    dims = struct.unpack(f">{ndim}I", dims_raw)
    if ndim == 3 and (dims[1] == 0 or dims[2] == 0):
        raise _fail(path, f"wrong dims: image rows and columns must be positive, got {dims}")
    return magic, tuple(int(d) for d in dims)


def read_idx_header(path: PathLike) -> tuple[int, tuple[int, ...]]:
    """Return ``(magic, dims)`` of an IDX file from its header alone (the data is not read)."""
    try:
        with _open(path) as (f, _):
            return _parse_header(f, path)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _fail(path, f"corrupt gzip data ({exc})") from exc


def read_idx(path: PathLike, *, max_bytes: int = MAX_DATA_BYTES) -> np.ndarray:
    """Read an MNIST IDX file, raw or gzip-compressed (told apart by content).

    Returns uint8 labels of shape (N,) for magic 2049 or uint8 images of shape (N, rows, cols)
    for magic 2051. ``max_bytes`` bounds the data size a header may declare (default
    ``MAX_DATA_BYTES``, 64 MiB; ``load_mnist`` checks the headers against MNIST's sizes first
    and passes each file's exact size), checked before anything is allocated. Raises IDXError
    (a ValueError) naming the file when the magic number is neither, the header declares more
    than ``max_bytes``, the header or the data is shorter than the header says, bytes follow
    the data, the dims are zero, or the gzip stream is corrupt. A missing file is
    FileNotFoundError.
    """
    max_bytes = check_int(max_bytes, "max_bytes", "read_idx", low=0)
    try:
        with _open(path) as (f, is_gzip):
            magic, dims = _parse_header(f, path)
            expected = math.prod(dims)
            if not is_gzip:  # the file's size says exactly what is there: nothing to read yet
                present = os.fstat(f.fileno()).st_size - f.tell()
                _check_size(path, dims, expected, present, exact=True)
            if expected > max_bytes:
                raise _fail(
                    path,
                    f"too large: the header {dims} declares {expected:,} data bytes, over the "
                    f"limit of {max_bytes:,} (read_idx's max_bytes)",
                )
            # np.empty only reserves address space: memory is touched as the data arrives, so
            # a short stream costs what it holds, not what its header claims.
            out = np.empty(expected, dtype=np.uint8)
            view = out.data
            got = 0
            while got < expected:
                n = f.readinto(view[got : got + _CHUNK])
                if not n:
                    break
                got += n
            # One chunk past the data tells trailing bytes apart without decompressing them all.
            present = got + (len(f.read(_CHUNK)) if got == expected else 0)
            _check_size(path, dims, expected, present, exact=present < got + _CHUNK)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise _fail(path, f"corrupt gzip data ({exc})") from exc
    return out.reshape(dims)


def _check_size(
    path: PathLike, dims: tuple[int, ...], expected: int, present: int, exact: bool
) -> None:
    """Raise unless ``present`` data bytes (a lower bound unless ``exact``) are ``expected``."""
    if present < expected:
        raise _fail(
            path, f"truncated data: the header {dims} needs {expected} data bytes, got {present}"
        )
    if present > expected:
        extra = present - expected
        raise _fail(
            path,
            f"trailing data: {'' if exact else 'at least '}{extra} bytes after the {expected} "
            f"data bytes the header {dims} describes",
        )


def write_idx(path: PathLike, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write uint8 labels (N,) or images (N, rows, cols) as an MNIST IDX file.

    ``compress`` defaults to "the name ends in .gz". Compressed output is gzip level 9 with
    mtime 0 and no file name in the header, so the same array always gives the same bytes.
    Returns the path written.
    """
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise TypeError(f"write_idx: array must be uint8, got dtype {a.dtype}")
    if a.ndim == 1:
        magic = LABELS_MAGIC
    elif a.ndim == 3:
        magic = IMAGES_MAGIC
    else:
        raise ValueError(
            f"write_idx: array must be labels (N,) or images (N, rows, cols), got {a.ndim}-D "
            f"array.shape={a.shape}"
        )
    path = Path(path)
    if compress is None:
        compress = path.name.endswith(".gz")
    payload = struct.pack(f">I{a.ndim}I", magic, *a.shape) + np.ascontiguousarray(a).tobytes()
    if compress:
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=buf, mtime=0) as gz:
            gz.write(payload)
        payload = buf.getvalue()
    path.write_bytes(payload)
    return path
