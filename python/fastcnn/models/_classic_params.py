"""The classic book's ``params.pkl`` (``save_params``: a pickle of {"W1": ndarray, "b1": ...})
read into a fastcnn model, without letting the pickle run anything.

A restricted unpickler knows only the few names numpy's own array pickles use, and maps each
to a stand-in that checks its arguments: numpy never sees anything from the file but a
validated (bytes, plain float/int dtype, shape) triple given to ``np.frombuffer``. Writing
pickles, and reading any other pickled object, are deliberately left out.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import pickletools
from typing import Any, Union

import numpy as np

from fastcnn import _validation as V
from fastcnn.models._archive import ModelFileError
from fastcnn.models._sequential import Model

__all__ = ["ClassicParamsError", "load_classic_params"]

PathLike = Union[str, "os.PathLike[str]"]


class ClassicParamsError(ModelFileError):
    """A params pickle that cannot be loaded into the model: the message names the file and
    says why (unreadable or truncated, something other than named arrays, or names, shapes or
    dtypes that do not fit the model)."""


class _Refused(pickle.UnpicklingError):
    """Raised inside the unpickler for content it will not build; the message says what."""


# The dtype codes numpy writes for plain real numbers (dtype.__reduce__ gives "f8", "i4", ...;
# long double is "f16" on x86-64). Anything else (bool, complex, object, strings, structured,
# datetimes) is recorded as unsupported and reported under its key after loading.
_PLAIN_CODES = frozenset(
    ["f2", "f4", "f8", np.dtype(np.longdouble).str[1:]]
    + [f"{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8)]
)
_OTHER_KINDS = {
    "b": "bool",
    "c": "complex",
    "O": "object",
    "U": "str",
    "S": "bytes",
    "a": "bytes",
    "V": "void (structured)",
    "M": "datetime64",
    "m": "timedelta64",
}
_BYTE_ORDERS = ("<", ">", "|", "=")

# (module, name) the pickles of numpy arrays refer to -> the unpickler method standing in for
# it. Both numpy spellings (1.x "numpy.core", 2.x "numpy._core"); "_codecs.encode" and
# "bytes" are how protocols 0-2 store bytes; "_frombuffer" is protocol 5's in-band form.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "_reconstruct",
    ("numpy", "ndarray"): "_ndarray",
    ("numpy", "dtype"): "_dtype",
    ("numpy.core.numeric", "_frombuffer"): "_frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "_frombuffer",
    ("_codecs", "encode"): "_encode",
    ("__builtin__", "bytes"): "_empty_bytes",
    ("builtins", "bytes"): "_empty_bytes",
}

# Opcodes a numpy array pickle never contains and that would reach outside the file: the
# extension registry, persistent ids, out-of-band buffers.
_FORBIDDEN_OPS = frozenset(
    ["EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID", "NEXT_BUFFER", "READONLY_BUFFER"]
)


def _brief(obj: Any, limit: int = 40) -> str:
    """A short, bounded description of something read from the file (for messages)."""
    if isinstance(obj, (str, bytes, int, float)) and not isinstance(obj, bool):
        text = repr(obj)
        return text if len(text) <= limit else text[: limit - 3] + "..."
    if isinstance(obj, _Array):
        return "a numpy array"
    if isinstance(obj, _Dtype):
        return "a numpy dtype"
    if isinstance(obj, _NdarrayClass):
        return "the class numpy.ndarray"
    if isinstance(obj, _StandIn):
        return f"the function {obj._name}"
    name = type(obj).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _listing(items: list[str], limit: int = 10) -> str:
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


class _NdarrayClass:
    """Stands for numpy.ndarray in the pickle; only _reconstruct accepts it (never callable,
    so the file cannot allocate an array of its chosen shape)."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        raise _Refused("the pickle sets state on numpy.ndarray itself")


class _StandIn:
    """What find_class hands the unpickler for an allowed name: calls one checking method.
    No __dict__, and BUILD is refused, so a file cannot change it or its defaults."""

    __slots__ = ("_name", "_call")

    def __init__(self, name: str, call: Any) -> None:
        self._name = name
        self._call = call

    def __call__(self, *args: Any) -> Any:
        return self._call(*args)

    def __setstate__(self, state: Any) -> None:
        raise _Refused(f"the pickle sets state on {self._name}")


class _Dtype:
    """numpy.dtype(code, align, copy) followed by BUILD with numpy's dtype state."""

    __slots__ = ("code", "dtype", "problem", "done")

    def __init__(self, code: str) -> None:
        self.code = code
        self.dtype: np.dtype | None = None
        self.problem: str | None = None
        if code not in _PLAIN_CODES:
            self.problem = f"dtype {_OTHER_KINDS.get(code[:1], 'code')} {_brief(code)}"
        self.done = False

    def __setstate__(self, state: Any) -> None:
        if self.done:
            raise _Refused("a numpy dtype's state is given twice")
        self.done = True
        if not isinstance(state, tuple) or len(state) < 5 or state[0] not in (3, 4):
            raise _Refused(f"invalid numpy dtype state ({_brief(state)})")
        order, subarray, names, fields = state[1:5]
        if order not in _BYTE_ORDERS:
            raise _Refused(f"invalid byte order {_brief(order)} in a numpy dtype")
        if self.problem is None and (subarray, names, fields) != (None, None, None):
            self.problem = "a structured or sub-array dtype"
        if self.problem is None:
            # Made from the plain code and the byte order alone; the rest of the state (sizes,
            # flags) could only contradict them.
            self.dtype = np.dtype(order + self.code)


class _Array:
    """An array: _reconstruct(ndarray, (0,), b"b") then BUILD with numpy's array state, or
    protocol 5's _frombuffer(buffer, dtype, shape, order). Holds the built array or, for an
    unsupported dtype, what is wrong with it (reported under its key after loading)."""

    __slots__ = ("array", "problem", "done")

    def __init__(self) -> None:
        self.array: np.ndarray | None = None
        self.problem: str | None = None
        self.done = False

    def fill(self, data: Any, dtype: Any, shape: Any, fortran: bool) -> None:
        if self.done:
            raise _Refused("a numpy array's state is given twice")
        self.done = True
        if not isinstance(dtype, _Dtype):
            raise _Refused(f"a numpy array whose dtype is {_brief(dtype)}")
        if (
            not isinstance(shape, tuple)
            or len(shape) > 64
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise _Refused(f"a numpy array with an invalid shape ({_brief(shape)})")
        if not dtype.done:
            raise _Refused("a numpy dtype without its state")
        if dtype.problem is not None:
            # Not built at all: numpy would allocate the declared shape (an object array of
            # 2**40 elements) before noticing the data does not fill it.
            self.problem = f"an array of {dtype.problem}, shape {V._shape(shape)}"
            return
        dt = dtype.dtype
        assert dt is not None
        if not isinstance(data, (bytes, bytearray)):
            raise _Refused(f"a numpy array whose data is {_brief(data)}, not bytes")
        need = math.prod(shape) * dt.itemsize  # Python ints: no overflow
        if len(data) != need:
            raise _Refused(
                f"a numpy array of shape {V._shape(shape)} and dtype {dt} needs {need} bytes "
                f"of data, the file holds {len(data)}"
            )
        self.array = np.frombuffer(data, dtype=dt).reshape(shape, order="F" if fortran else "C")

    def __setstate__(self, state: Any) -> None:
        # numpy writes (version=1, shape, dtype, is_fortran, data); very old numpy left out
        # the version.
        if isinstance(state, tuple) and len(state) == 5 and state[0] == 1:
            state = state[1:]
        if not isinstance(state, tuple) or len(state) != 4 or state[2] not in (0, 1):
            raise _Refused(f"invalid numpy array state ({_brief(state)})")
        shape, dtype, fortran, data = state
        self.fill(data, dtype, shape, bool(fortran))


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only dicts, lists, tuples, strings, numbers and the stand-ins above.

    Arrays are views of bytes the file holds, so they cost no more than the file — except
    bytes made by _codecs.encode, which a pickle can call any number of times on one memoised
    string. Those are paid from a budget of the file's own length: a real params file encodes
    each array's text once, and its text has no more characters than the file has bytes.
    """

    def __init__(self, file: Any, budget: int) -> None:
        super().__init__(file)
        self._budget = budget

    def find_class(self, module: str, name: str) -> Any:
        method = _ALLOWED.get((module, name))
        if method is None:
            if str(module).split(".")[0] == "numpy":
                hint = "params are numpy arrays of real numbers, not numpy scalars or objects"
            else:
                hint = "a pickled network object cannot be loaded safely; save its params dict"
            raise _Refused(
                f"the pickle asks for {_brief(f'{module}.{name}', 60)}, which a params file "
                f"never needs ({hint})"
            )
        if method == "_ndarray":
            return _NdarrayClass()
        return _StandIn(f"{module}.{name}", getattr(self, method))

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("the pickle refers to persistent ids outside the file")

    # What the allowed names do, each checking its arguments are what numpy writes.

    def _reconstruct(self, cls: Any, shape: Any, typecode: Any) -> _Array:
        # numpy's ndarray.__reduce__ always writes _reconstruct(ndarray, (0,), b"b").
        if not isinstance(cls, _NdarrayClass) or shape != (0,) or typecode not in (b"b", "b"):
            raise _Refused(
                f"_reconstruct({_brief(cls)}, {_brief(shape)}, {_brief(typecode)}) is not "
                "how numpy pickles an array"
            )
        return _Array()

    def _dtype(self, code: Any, align: Any, copy: Any) -> _Dtype:
        if not isinstance(code, str) or align not in (0, 1) or copy not in (0, 1):
            raise _Refused(f"numpy.dtype({_brief(code)}, ...) is not how numpy pickles a dtype")
        return _Dtype(code)

    def _frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any) -> _Array:
        if order not in ("C", "F"):
            raise _Refused(f"a numpy array with memory order {_brief(order)}")
        array = _Array()
        array.fill(buf, dtype, shape, order == "F")
        return array

    def _encode(self, text: Any, encoding: Any) -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise _Refused("_codecs.encode is only used for bytes stored as latin-1 text")
        self._budget -= len(text)
        if self._budget < 0:
            raise _Refused(
                "the pickle builds more bytes of array data than the file holds (it reuses "
                "stored text), which a params file never does"
            )
        return text.encode("latin1")

    def _empty_bytes(self, *args: Any) -> bytes:
        if args:
            raise _Refused("bytes(...) is only used for empty bytes")
        return b""


def _scan(data: bytes) -> None:
    """Walk the opcodes without executing them: catches truncation and declared lengths larger
    than the file before the unpickler allocates anything, and opcodes reaching outside."""
    end = -1
    for op, _, found in pickletools.genops(data):
        pos = -1 if found is None else found
        if op.name in _FORBIDDEN_OPS:
            raise _Refused(f"opcode {op.name} at byte {pos} (not used by numpy array pickles)")
        end = pos
    if end + 1 != len(data):
        raise _Refused(f"{len(data) - end - 1} unexpected bytes after the end of the pickle")


def _read(path: str, max_bytes: int) -> dict[str, np.ndarray]:
    """The named arrays in the params pickle at ``path`` (at most ``max_bytes`` long)."""
    if os.path.isdir(path):
        raise ClassicParamsError(f"{path}: is a directory, not a params file")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ClassicParamsError(
            f"{path}: more than {max_bytes:,} bytes, far more than the model's params need; "
            "not a params file for this model"
        )
    if data[:4] == b"PK\x03\x04":
        raise ClassicParamsError(
            f"{path}: a zip archive, not a pickle (a fastcnn .npz model file? use models.load)"
        )
    try:
        _scan(data)
    except _Refused as exc:
        raise ClassicParamsError(f"{path}: refused: {exc}") from None
    except ValueError as exc:  # pickletools could not read the opcodes
        raise ClassicParamsError(f"{path}: not a pickle, or truncated ({exc})") from None
    try:
        top = _RestrictedUnpickler(io.BytesIO(data), budget=len(data)).load()
    except _Refused as exc:
        raise ClassicParamsError(f"{path}: refused: {exc}") from None
    except Exception as exc:  # the unpickler's errors are not a documented set
        text = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ClassicParamsError(f"{path}: not a readable params pickle ({text})") from None

    if not isinstance(top, dict):
        raise ClassicParamsError(
            f"{path}: holds {_brief(top)}, not a dict of named arrays "
            "(the book's save_params writes {'W1': array, 'b1': array, ...})"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, value in top.items():
        if not isinstance(key, str):
            raise ClassicParamsError(f"{path}: key {_brief(key)} is not a string")
        if not isinstance(value, _Array):
            raise ClassicParamsError(f"{path}: {key!r} holds {_brief(value)}, not a numpy array")
        if value.problem is not None:
            raise ClassicParamsError(
                f"{path}: {key!r} holds {value.problem}; params must be arrays of real "
                "floats or integers"
            )
        if value.array is None:
            raise ClassicParamsError(f"{path}: {key!r} holds a numpy array without its data")
        arrays[key] = value.array
    return arrays


def _fitted(path: str, found: dict[str, np.ndarray], model: Model) -> dict[str, np.ndarray]:
    """The file's arrays converted to the model's dtype, after checking every name and shape."""
    arch = type(model).__name__
    wants = model.params
    problems = []
    missing = [f"{k} {V._shape(w.shape)}" for k, w in wants.items() if k not in found]
    if missing:
        problems.append("missing " + _listing(missing))
    unexpected = [_brief(k) for k in found if k not in wants]
    if unexpected:
        problems.append("unexpected " + _listing(unexpected))
    wrong = [
        f"{k} {V._shape(found[k].shape)} instead of {V._shape(w.shape)}"
        for k, w in wants.items()
        if k in found and found[k].shape != w.shape
    ]
    if wrong:
        problems.append("wrong shapes " + _listing(wrong))
    if problems:
        problems_text = "; ".join(problems)
        raise ClassicParamsError(f"{path}: the params do not fit this {arch}: {problems_text}")
    converted = {}
    for key, want in wants.items():
        got = found[key]
        with np.errstate(over="ignore", invalid="ignore"):
            new = got.astype(want.dtype)  # a copy: the file's buffer is not kept
        if not np.isfinite(new).all() and np.isfinite(got).all():
            raise ClassicParamsError(
                f"{path}: {key} has values beyond the range of {want.dtype} (the {arch}'s dtype)"
            )
        converted[key] = new
    return converted


def looks_like_pickle(path: PathLike) -> bool:
    """True when ``path`` is named like a pickle (.pkl, .pickle) or starts like one of
    protocol 2 or later (the book's files are protocol 3 or 4); how the CLI tells a book
    params file from a fastcnn model file."""
    path = os.fspath(path)
    if os.path.splitext(path)[1].lower() in (".pkl", ".pickle"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(1) == b"\x80"
    except OSError:
        return False


def load_classic_params(path: PathLike, model: Model) -> None:
    """Copy the params saved by the classic book's ``save_params`` (``params.pkl``: a pickle of
    a dict mapping "W1", "b1", ... to numpy arrays) into ``model``, in place.

    The pickle is read by a restricted unpickler that builds numpy arrays of real float/int
    dtypes and plain containers only: a file can fail to load but cannot run code. The dict
    must hold exactly the model's param names with its shapes; values are converted to the
    model's dtype (a float32 model takes the book's float64). Anything wrong — unreadable,
    truncated or not a pickle, other objects, wrong names or shapes — raises
    ClassicParamsError (a ModelFileError, so a ValueError) naming the file, and the model is
    left unchanged. FileNotFoundError if there is no file.
    """
    if not isinstance(model, Model):
        raise TypeError(
            f"load_classic_params: model must be a fastcnn model, got {type(model).__name__}"
        )
    path = os.fspath(path)
    # A pickle stores a float64 value in 8 bytes (protocols 0-2 store bytes as text: up to 2x
    # that, 6x for protocol 0's escaped zero bytes); anything larger cannot be this model's
    # params and is not read.
    max_bytes = 64 * model.num_params() + (1 << 20)
    converted = _fitted(path, _read(path, max_bytes), model)
    for key, new in converted.items():
        model.params[key][...] = new
