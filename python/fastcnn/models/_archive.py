"""The container of fastcnn model files and checkpoints: an npz archive (a zip of .npy members)
read one member at a time, each member's declared sizes checked before any of its data is
decompressed, and written atomically without leaving stale temporary files behind.

What the members mean (architectures, params, optimizer state) is models._file's business; this
module knows zip, .npy and the size limits only. Members are never unpickled.
"""

from __future__ import annotations

import io
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from fastcnn._atomic import write_atomic


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be loaded: the message names the file and says why."""


# What a reader accepts, in one place. A member's .npy header is ~128 bytes as numpy writes it;
# the architecture JSON a few hundred; checkpoint meta (settings, per-epoch history) some KB.
# fastcnn writes members uncompressed, so decompressed data larger than twice the file (plus
# 32 MiB for np.savez_compressed files of mostly-zero weights) is a decompression bomb: it
# would need memory out of proportion to the file (the bound: 2x the file + 100 MB).
LIMITS = {
    "npy header": 1 << 16,
    "architecture JSON": 1 << 20,
    "meta JSON": 64 << 20,
    "inflation": 2,
    "inflation slack": 32 << 20,
    "params": 1 << 30,  # elements of a model's params: 4 GB of float32, far beyond MNIST's needs
    # zip entries: a checkpoint has ~60; zipfile holds ~700 bytes per entry it indexes
    "entries": 4096,
}
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_CHUNK = 1 << 20  # bytes decompressed per read: bounds the transient copy of a member
_READ_ERRORS = (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, struct.error)


def _declared_entries(path: str, size: int) -> int | None:
    """The entry count in the zip's end-of-central-directory record (zip64's if it says so),
    found as zipfile finds it; None if there is none (zipfile then reports the damage).
    Read before zipfile indexes the central directory, which costs memory per entry."""
    eocd, eocd64_locator = b"PK\x05\x06", b"PK\x06\x07"
    with open(path, "rb") as f:
        start = max(0, size - (22 + 0xFFFF))  # the record, after it a comment of < 64 KiB
        f.seek(start)
        tail = f.read()
        pos = len(tail) - 22 if tail[-22:-18] == eocd else tail.rfind(eocd)
        if pos < 0 or len(tail) < pos + 22:
            return None
        count = int.from_bytes(tail[pos + 10 : pos + 12], "little")
        if count != 0xFFFF or pos < 20 or tail[pos - 20 : pos - 16] != eocd64_locator:
            return count
        f.seek(int.from_bytes(tail[pos - 12 : pos - 4], "little"))
        record = f.read(56)
        if len(record) < 40 or record[:4] != b"PK\x06\x06":
            return None
        return int.from_bytes(record[32:40], "little")


@dataclass(frozen=True)
class Member:
    """One .npy member as declared by its headers (nothing of its data read yet)."""

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    data_offset: int  # bytes of .npy header before the data


class Archive:
    """An npz archive opened for checked reading; use as a context manager.

    Opening reads only the zip's central directory and refuses members fastcnn never writes
    (not ``<key>.npy``, duplicated, encrypted, or compressed other than stored/deflated), so
    an unreadable member is reported as a ModelFileError before anything is decompressed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                magic = f.read(4)
        except IsADirectoryError:
            raise ModelFileError(f"{path}: is a directory, not a model file") from None
        if magic != b"PK\x03\x04":
            raise ModelFileError(f"{path}: not a fastcnn model file (not an npz/zip archive)")
        self.size = os.path.getsize(path)
        entries = _declared_entries(path, self.size)
        if entries is not None and entries > LIMITS["entries"]:
            raise ModelFileError(
                f"{path}: a zip archive of {entries:,} entries (a fastcnn file has at most "
                f"{LIMITS['entries']:,}); refused"
            )
        try:
            self._zip = zipfile.ZipFile(path)
        except (*_READ_ERRORS, NotImplementedError) as exc:
            raise ModelFileError(f"{path}: corrupted or unreadable npz archive ({exc})") from exc
        try:
            self.infos = self._index()
        except BaseException:
            self._zip.close()
            raise
        self._members: dict[str, Member] = {}

    def _index(self) -> dict[str, zipfile.ZipInfo]:
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in self._zip.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise ModelFileError(f"{self.path}: unexpected entry {name!r} (not a .npy array)")
            key = name[: -len(".npy")]
            if key in infos:
                raise ModelFileError(f"{self.path}: entry {key!r} is stored twice")
            if info.flag_bits & 0x1:
                raise ModelFileError(f"{self.path}: entry {key!r} is encrypted")
            if info.compress_type not in _METHODS:
                raise ModelFileError(
                    f"{self.path}: entry {key!r} uses zip compression method "
                    f"{info.compress_type}, which fastcnn does not read (only "
                    f"{' or '.join(_METHODS.values())})"
                )
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                raise ModelFileError(
                    f"{self.path}: entry {key!r} is stored uncompressed but declares "
                    f"{info.file_size} bytes in {info.compress_size}"
                )
            infos[key] = info
        return infos

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._zip.close()

    # -- sizes ----------------------------------------------------------------------------------

    def check_inflation(self, keys: Iterable[str]) -> None:
        """Refuse to decompress the members ``keys`` if together they declare more bytes than
        the file could legitimately hold (see LIMITS)."""
        keys = list(keys)
        declared = sum(self.infos[k].file_size for k in keys)
        allowed = LIMITS["inflation"] * self.size + LIMITS["inflation slack"]
        if declared > allowed:
            raise ModelFileError(
                f"{self.path}: its entries declare {declared:,} bytes once decompressed, more "
                f"than {LIMITS['inflation']}x the file's {self.size:,} bytes; refused as a "
                "decompression bomb (fastcnn writes members uncompressed)"
            )

    def member(self, key: str) -> Member:
        """The .npy header of ``key``: its shape and dtype, read without touching its data."""
        if key not in self._members:
            self._members[key] = self._read_npy_header(key)
        return self._members[key]

    def _read_npy_header(self, key: str) -> Member:
        where = f"{self.path}: entry {key!r}"
        info = self.infos[key]
        limit = LIMITS["npy header"]
        try:
            with self._zip.open(info) as f:
                prefix = f.read(8)
                if len(prefix) < 8 or prefix[:6] != b"\x93NUMPY":
                    raise ModelFileError(f"{where} is not a .npy array")
                major = prefix[6]
                if major not in (1, 2, 3):
                    raise ModelFileError(f"{where}: unknown .npy format version {major}")
                size_bytes = f.read(2 if major == 1 else 4)
                if len(size_bytes) < (2 if major == 1 else 4):
                    raise ModelFileError(f"{where}: truncated .npy header")
                n = int.from_bytes(size_bytes, "little")
                if n > limit:
                    raise ModelFileError(
                        f"{where}: .npy header of {n:,} bytes (more than {limit:,}); refused"
                    )
                text = f.read(n)
        except ModelFileError:
            raise
        except _READ_ERRORS as exc:
            raise ModelFileError(f"{self.path}: corrupted or unreadable npz archive "
                                 f"(entry {key!r}: {exc})") from exc  # fmt: skip
        if len(text) < n:
            raise ModelFileError(f"{where}: truncated .npy header")
        read_header = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        try:
            # numpy parses the header text with ast.literal_eval (no code runs); it reads the
            # length itself, so it is given the bytes already checked above.
            shape, fortran, dtype = read_header(io.BytesIO(size_bytes + text))
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
            raise ModelFileError(f"{where}: invalid .npy header ({exc})") from None
        if dtype.hasobject:
            raise ModelFileError(
                f"{where} holds Python objects (a pickle), which fastcnn never loads"
            )
        offset = len(prefix) + len(size_bytes) + n
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
        if info.file_size != offset + nbytes:
            raise ModelFileError(
                f"{where}: its .npy header declares {dtype} {tuple(shape)} ({nbytes:,} bytes) "
                f"but the zip entry holds {info.file_size - offset:,} bytes of data"
            )
        return Member(key, tuple(shape), dtype, bool(fortran), offset)

    # -- data -----------------------------------------------------------------------------------

    def read(self, key: str, out: np.ndarray | None = None) -> np.ndarray:
        """The array in member ``key``, in ``out`` if given (C-contiguous, of the member's
        shape and dtype). Check ``member(key)`` first: the array it declares is allocated
        here, and filled in chunks (never a second whole copy)."""
        m = self.member(key)
        flat = np.empty(math.prod(m.shape), m.dtype)
        if out is not None:
            if out.shape != m.shape or out.dtype != m.dtype or not out.flags.c_contiguous:
                raise ValueError(f"Archive.read: out does not fit entry {key!r}")
            if not m.fortran:
                flat = out.reshape(-1)
        view = flat.data.cast("B")
        try:
            with self._zip.open(self.infos[key]) as f:
                f.read(m.data_offset)
                pos = 0
                while pos < len(view):
                    chunk = f.read(min(_CHUNK, len(view) - pos))
                    if not chunk:
                        raise EOFError(f"{len(view) - pos} bytes of data missing")
                    view[pos : pos + len(chunk)] = chunk
                    pos += len(chunk)
                f.read(1)  # at the end: zipfile checks the CRC
        except _READ_ERRORS as exc:
            raise ModelFileError(f"{self.path}: corrupted or unreadable npz archive "
                                 f"(entry {key!r}: {exc})") from exc  # fmt: skip
        arr = flat.reshape(m.shape, order="F" if m.fortran else "C")
        if out is not None and m.fortran:
            out[...] = arr
        return arr if out is None else out

    def read_text(self, key: str, limit_name: str) -> str:
        """A 0-d string member of at most LIMITS[limit_name] bytes."""
        m = self.member(key)
        if m.shape != () or m.dtype.kind != "U":
            raise ModelFileError(
                f"{self.path}: metadata {key!r} must be a 0-d string, got dtype {m.dtype} "
                f"shape {m.shape}"
            )
        if m.dtype.itemsize > LIMITS[limit_name]:
            raise ModelFileError(
                f"{self.path}: metadata {key!r} is {m.dtype.itemsize:,} bytes, more than the "
                f"{LIMITS[limit_name]:,} a {limit_name} may have"
            )
        return str(self.read(key)[()])


def write_npz(path: str, entries: Mapping[str, np.ndarray]) -> None:
    """Write ``entries`` as an npz archive of uncompressed .npy members to ``path``, atomically
    (see fastcnn._atomic)."""

    def write(f: BinaryIO) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, arr in entries.items():
                with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asarray(arr), allow_pickle=False)

    write_atomic(path, write)
