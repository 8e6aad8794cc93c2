"""Argument checking and normalisation shared by both backends (reference and fast).

Pure Python + numpy metadata only: nothing here computes on array data except label/index range
checks. Each ``check_<op>`` returns normalised arrays and a geometry so both backends accept and
reject exactly the same calls; every error names the function, the argument(s) and the shapes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, SupportsInt, Union, cast

import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "Geometry2d",
    "as_pair",
    "as_array",
    "compute_dtype",
    "promoted_dtype",
    "check_float_array",
    "check_int_array",
    "check_ndim",
    "check_shape",
    "check_same_shape",
    "check_inplace_array",
    "check_stride",
    "check_pad",
    "check_window",
    "check_pool_pad",
    "check_real",
    "check_int",
    "MAX_WINDOW_ARG",
    "check_bool",
    "check_seed",
    "check_x_shape",
    "conv_output_size",
    "pool_output_size",
    "result_dtype",
    "check_im2col",
    "check_col2im",
    "check_conv2d_forward",
    "check_conv2d_backward",
    "check_pool2d_forward",
    "check_pool2d_backward",
    "check_max_pool2d_backward",
    "check_argmax_dtype",
    "smallest_argmax_dtype",
    "check_affine_forward",
    "check_affine_backward",
    "check_unary_forward",
    "check_unary_backward",
    "check_softmax",
    "check_softmax_xent_forward",
    "check_softmax_xent_backward",
    "check_dropout_forward",
    "check_dropout_backward",
    "check_dropout_mask",
    "check_batchnorm_forward",
    "check_batchnorm_backward",
    "check_param_update",
    "check_update",
    "check_gemm",
]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

Pair = tuple[int, int]
IntOrPair = Union[int, Sequence[int]]


# Context appended to an error message: a string, or a function making it, so that the shape
# strings of a call that passes its checks are never formatted (small calls are per-call-bound).
Text = Union[str, Callable[[], str]]


def _msg(where: str, text: str) -> str:
    return f"{where}: {text}" if where else text


def _text(text: Text) -> str:
    return text() if callable(text) else text


def _shape(shape: Sequence[int]) -> str:
    return str(tuple(int(d) for d in shape))


# ---------------------------------------------------------------------------------------------
# Scalars and (h, w) pairs
# ---------------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    if type(value) is int:  # the common case, without the slower ABC check
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def as_pair(value: IntOrPair, name: str, where: str = "") -> Pair:
    """Normalise an int or an (h, w) pair of ints to a tuple ``(h, w)``.

    Rejects bools, floats and other non-integers (TypeError) and sequences whose length is not
    2 (ValueError). Range checks are left to the caller (see check_stride / check_pad / ...).
    """
    if _is_int(value):
        v = int(cast(SupportsInt, value))  # an int or another numbers.Integral
        return (v, v)
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise ValueError(
                _msg(
                    where,
                    f"{name} must be an int or an (h, w) pair, got an array of shape "
                    f"{_shape(value.shape)}",
                )
            )
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(
            _msg(
                where,
                f"{name} must be an int or an (h, w) pair of ints, got {type(value).__name__}",
            )
        )
    if len(value) != 2:
        raise ValueError(
            _msg(
                where,
                f"{name} must be an int or an (h, w) pair, got {len(value)} values: "
                f"{tuple(value)!r}",
            )
        )
    for v in value:
        if not _is_int(v):
            raise TypeError(
                _msg(where, f"{name} must hold ints, got {type(v).__name__} in {tuple(value)!r}")
            )
    return (int(value[0]), int(value[1]))


# Largest stride, padding or window size: the kernels index with int64, and geometry products
# (padded sizes times channels times windows) must stay far from overflowing it.
MAX_WINDOW_ARG = 2**31 - 1


def _pair_at_least(value: IntOrPair, name: str, where: str, low: int, what: str) -> Pair:
    pair = as_pair(value, name, where)
    if pair[0] < low or pair[1] < low:
        raise ValueError(_msg(where, f"{name} must be {what}, got {name}={pair}"))
    if pair[0] > MAX_WINDOW_ARG or pair[1] > MAX_WINDOW_ARG:
        raise ValueError(
            _msg(where, f"{name} must be at most 2**31 - 1 = {MAX_WINDOW_ARG}, got {name}={pair}")
        )
    return pair


def check_stride(stride: IntOrPair, where: str = "", name: str = "stride") -> Pair:
    """Normalise a stride to (sh, sw); both must be >= 1."""
    return _pair_at_least(stride, name, where, 1, ">= 1")


def check_pad(pad: IntOrPair, where: str = "", name: str = "pad") -> Pair:
    """Normalise a zero-padding amount to (ph, pw); both must be >= 0."""
    return _pair_at_least(pad, name, where, 0, ">= 0")


def check_window(window: IntOrPair, where: str = "", name: str = "window") -> Pair:
    """Normalise a window / kernel size to (r, s); both must be >= 1."""
    return _pair_at_least(window, name, where, 1, ">= 1")


def check_pool_pad(pad: Pair, window: Pair, where: str = "") -> None:
    """Pooling needs 0 <= pad < window per axis so every window holds a real element."""
    if not (pad[0] < window[0] and pad[1] < window[1]):
        raise ValueError(
            _msg(
                where,
                f"pad must be smaller than window on each axis, got pad={pad}, window={window}",
            )
        )


def check_real(
    value: Any,
    name: str,
    where: str = "",
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a Python float after checking it is a finite real in the range.

    Bools, complex numbers and non-numbers raise TypeError; NaN, inf and out-of-range values
    raise ValueError. A 0-d real array is accepted.
    """
    if type(value) is float or type(value) is int:  # the common cases, without ABC checks
        out = float(value)
    else:
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(
                _msg(where, f"{name} must be a real number, got {type(value).__name__}")
            )
        out = float(value)
    if not math.isfinite(out):
        raise ValueError(_msg(where, f"{name} must be finite, got {out!r}"))
    bad_low = low is not None and (out <= low if low_open else out < low)
    bad_high = high is not None and (out >= high if high_open else out > high)
    if bad_low or bad_high:
        lo = "-inf" if low is None else repr(float(low))
        hi = "inf" if high is None else repr(float(high))
        interval = (
            f"{'(' if low_open or low is None else '['}{lo}, {hi}"
            f"{')' if high_open or high is None else ']'}"
        )
        raise ValueError(_msg(where, f"{name} must be in {interval}, got {out!r}"))
    return out


def check_int(
    value: Any, name: str, where: str = "", *, low: int | None = None, high: int | None = None
) -> int:
    """Return ``value`` as a Python int, checking low <= value <= high (bools rejected)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if not _is_int(value):
        raise TypeError(_msg(where, f"{name} must be an int, got {type(value).__name__}"))
    out = int(value)
    if (low is not None and out < low) or (high is not None and out > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        raise ValueError(_msg(where, f"{name} must be in [{lo}, {hi}], got {out}"))
    return out


def check_bool(value: Any, name: str, where: str = "") -> bool:
    """A flag: Python or numpy bool only (0/1 and other truthy values are rejected)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(_msg(where, f"{name} must be a bool, got {type(value).__name__}"))
    return bool(value)


def check_seed(seed: Any, where: str = "", name: str = "seed") -> int:
    """A dropout seed: an int with 0 <= seed < 2**64."""
    return check_int(seed, name, where, low=0, high=2**64 - 1)


def check_x_shape(
    x_shape: Any, where: str = "", name: str = "x_shape", ndim: int = 4
) -> tuple[int, ...]:
    """Normalise a shape argument to a tuple of ``ndim`` non-negative Python ints."""
    if isinstance(x_shape, (str, bytes)) or not isinstance(x_shape, (Sequence, np.ndarray)):
        raise TypeError(
            _msg(where, f"{name} must be a tuple of {ndim} ints, got {type(x_shape).__name__}")
        )
    dims = list(x_shape)
    if len(dims) != ndim:
        raise ValueError(_msg(where, f"{name} must have {ndim} entries, got {tuple(dims)!r}"))
    for d in dims:
        if not _is_int(d):
            raise TypeError(_msg(where, f"{name} must hold ints, got {tuple(dims)!r}"))
        if d < 0:
            raise ValueError(_msg(where, f"{name} must be non-negative, got {tuple(dims)!r}"))
    return tuple(int(d) for d in dims)


# ---------------------------------------------------------------------------------------------
# Arrays
# ---------------------------------------------------------------------------------------------


def as_array(a: Any, name: str, where: str = "") -> np.ndarray:
    """``np.asarray`` that reports a failed conversion as a TypeError naming the argument."""
    if a is None:
        raise TypeError(_msg(where, f"{name} must be an array, got None"))
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise TypeError(_msg(where, f"{name} could not be converted to an array: {exc}")) from exc


def kernel_array(a: Any, dtype: Any = None) -> np.ndarray:
    """a as the compiled kernels take an array: C-contiguous and aligned, of ``dtype`` (no copy
    when it already is one; 0-d stays 0-d). numpy keeps a misaligned C-contiguous view (e.g.
    one at an odd offset of a byte buffer) as it is, but the kernels load whole elements, and a
    misaligned load is undefined behaviour in C++, so such a view is copied."""
    a = np.asarray(a, dtype=dtype, order="C")
    return a if a.flags.aligned else a.copy()


def compute_dtype(dtype: np.dtype) -> np.dtype | None:
    """The float dtype an array of ``dtype`` is computed in, or None if it is not a real array.

    float32 and float64 stay as they are (in native byte order). Inputs the classic numpy code
    also feeds its layers are read as numpy promotes them against float32: float16, bool and
    integers of up to 16 bits as float32, wider integers as float64. So a float16 input with
    float64 weights computes in float64, as numpy does; an all-float16 call computes (and
    returns) float32, the kernels' narrowest precision. Complex, long double, object, string
    and other dtypes are not real arrays.
    """
    if dtype in FLOAT_DTYPES:
        return dtype
    kind, size = dtype.kind, dtype.itemsize
    if (kind == "f" and size in (2, 4, 8)) or kind in "biu":
        return np.promote_types(dtype, np.float32)
    return None


def promoted_dtype(*arrays: Any) -> np.dtype:
    """The dtype an op on these arrays computes in: numpy's promotion of each one's
    compute_dtype (a dtype that is not real is kept, for the op's own check to reject)."""
    dtypes = [np.asarray(a).dtype for a in arrays]
    return np.result_type(*(compute_dtype(d) or d for d in dtypes))


def check_float_array(
    a: Any, name: str, where: str = "", ndim: int | None = None, layout: str = ""
) -> np.ndarray:
    """Return ``a`` as an ndarray of float32 or float64 in native byte order.

    Float32/float64 arrays pass through without a copy (any strides; pickled arrays' equal
    dtypes included); other byte orders, float16, integer and bool arrays are converted as
    ``compute_dtype`` says. Anything else (complex, object, ...) raises TypeError naming
    ``name``. ``ndim`` (optional) is checked with check_ndim; ``layout`` describes the axes.
    """
    arr = a if type(a) is np.ndarray else as_array(a, name, where)
    dt = compute_dtype(arr.dtype)
    if dt is None:
        raise TypeError(
            _msg(
                where,
                f"{name} must be a real (float, integer or bool) array, got dtype {arr.dtype} "
                f"({name}.shape={_shape(arr.shape)})",
            )
        )
    if arr.dtype != dt:  # != also tells byte orders apart
        arr = arr.astype(dt)
    if ndim is not None:
        check_ndim(arr, ndim, name, where, layout)
    return arr


def check_int_array(a: Any, name: str, where: str = "") -> np.ndarray:
    """Return ``a`` as an ndarray of an integer dtype (bool is not an integer here)."""
    arr = as_array(a, name, where)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            _msg(
                where,
                f"{name} must have an integer dtype, got {arr.dtype} "
                f"({name}.shape={_shape(arr.shape)})",
            )
        )
    return arr


def check_ndim(a: np.ndarray, ndim: int, name: str, where: str = "", layout: str = "") -> None:
    if a.ndim != ndim:
        lay = f" {layout}" if layout else ""
        raise ValueError(
            _msg(
                where,
                f"{name} must be {ndim}-D{lay}, got {a.ndim}-D {name}.shape={_shape(a.shape)}",
            )
        )


def check_shape(
    a: np.ndarray, expected: Sequence[int], name: str, where: str = "", context: Text = ""
) -> None:
    """Require ``a.shape == expected``; ``context`` (the shapes it derives from) is appended."""
    if tuple(a.shape) != tuple(expected):
        context = _text(context)
        extra = f" ({context})" if context else ""
        raise ValueError(
            _msg(
                where, f"{name} has shape {_shape(a.shape)} but expected {_shape(expected)}{extra}"
            )
        )


def check_same_shape(
    a: np.ndarray, b: np.ndarray, name_a: str, name_b: str, where: str = ""
) -> None:
    if a.shape != b.shape:
        raise ValueError(
            _msg(
                where,
                f"{name_a} and {name_b} must have the same shape, got "
                f"{name_a}.shape={_shape(a.shape)}, "
                f"{name_b}.shape={_shape(b.shape)}",
            )
        )


def check_inplace_array(
    a: Any, name: str, where: str = "", shape: Sequence[int] | None = None, shape_of: str = ""
) -> np.ndarray:
    """An array updated in place: a writeable ndarray of a float dtype (float16, float32 or
    float64, either byte order). It is never converted: the caller updates this very array."""
    if not isinstance(a, np.ndarray):
        raise TypeError(
            _msg(
                where,
                f"{name} is updated in place and must be a numpy array, got {type(a).__name__}",
            )
        )
    if a.dtype.kind != "f" or a.dtype.itemsize not in (2, 4, 8):
        raise TypeError(
            _msg(
                where,
                f"{name} is updated in place and must be a float16, float32 or float64 array, "
                f"got dtype {a.dtype} ({name}.shape={_shape(a.shape)})",
            )
        )
    if not a.flags.writeable:
        raise ValueError(_msg(where, f"{name} is updated in place but is read-only"))
    if shape is not None:
        check_shape(a, shape, name, where, f"the shape of {shape_of}" if shape_of else "")
    return a


def result_dtype(*arrays: np.ndarray | None) -> np.dtype:
    """numpy's promotion of the float inputs (None entries ignored): float32 or float64.

    Promotes the dtypes, not the arrays, so 0-d inputs never trigger numpy 1.x value-based
    casting and the answer is the same on every numpy version.
    """
    dtypes = {a.dtype for a in arrays if a is not None}
    return dtypes.pop() if len(dtypes) == 1 else np.result_type(*dtypes)


# ---------------------------------------------------------------------------------------------
# Sliding-window geometry
# ---------------------------------------------------------------------------------------------


GeometryTuple = tuple[int, int, int, int, int, int, int, int, int, int, int, int, int]


@dataclass(frozen=True)
class Geometry2d:
    """Geometry of a 2-D sliding window op on NCHW data.

    x is (n, c, h, w); the window is (r, s); y is (n, k, p, q) with p = (h + 2*ph - r)//sh + 1,
    q = (w + 2*pw - s)//sw + 1. k is the number of filters for conv and equals c for pooling.
    """

    n: int
    c: int
    h: int
    w: int
    k: int
    r: int
    s: int
    sh: int
    sw: int
    ph: int
    pw: int
    p: int
    q: int

    @property
    def empty(self) -> bool:
        """True when a dimension the kernels need to be >= 1 is 0 (an empty batch, no channels
        or filters, an empty image or window): the result is all-zero, bias-only or empty, and
        the backends compute it with the reference's numpy, which allocates nothing more."""
        return 0 in (self.n, self.c, self.h, self.w, self.k, self.r, self.s)

    def astuple(self) -> GeometryTuple:
        """(n, c, h, w, k, r, s, sh, sw, ph, pw, p, q): the form the kernels are bound with
        (src/cpp/bindings/bindings.h, GeometryTuple)."""
        return (self.n, self.c, self.h, self.w, self.k, self.r, self.s, self.sh, self.sw,
                self.ph, self.pw, self.p, self.q)  # fmt: skip

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.k, self.p, self.q)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.k, self.c, self.r, self.s)

    @property
    def col_shape(self) -> tuple[int, int]:
        return (self.n * self.p * self.q, self.c * self.r * self.s)

    @property
    def window(self) -> Pair:
        return (self.r, self.s)

    @property
    def stride(self) -> Pair:
        return (self.sh, self.sw)

    @property
    def pad(self) -> Pair:
        return (self.ph, self.pw)


def _output_hw(
    hw: Pair, window: Pair, stride: Pair, pad: Pair, where: str, window_name: str, context: Text
) -> Pair:
    out = []
    for axis, size, k, st, pd in zip(("height", "width"), hw, window, stride, pad):
        span = size + 2 * pd - k
        o = span // st + 1 if span >= 0 else 0
        if o <= 0:
            context = _text(context)
            extra = f"; {context}" if context else ""
            raise ValueError(
                _msg(
                    where,
                    f"output {axis} would be {o}: input {axis} {size} plus padding 2*{pd} "
                    f"is smaller than the {window_name} {axis} {k}{extra}",
                )
            )
        out.append(o)
    return (out[0], out[1])


def conv_output_size(
    hw: Pair, kernel: Pair, stride: Pair, pad: Pair, where: str = "", context: Text = ""
) -> Pair:
    """(P, Q) = ((H + 2*ph - R)//sh + 1, (W + 2*pw - S)//sw + 1); ValueError if either <= 0."""
    return _output_hw(hw, kernel, stride, pad, where, "kernel", context)


def pool_output_size(
    hw: Pair, window: Pair, stride: Pair, pad: Pair, where: str = "", context: Text = ""
) -> Pair:
    """Same formula as conv_output_size, with messages that speak of the pooling window."""
    return _output_hw(hw, window, stride, pad, where, "window", context)


# ---------------------------------------------------------------------------------------------
# Per-op checkers. Each returns normalised inputs; the backends do nothing but compute.
# ---------------------------------------------------------------------------------------------

_NCHW = "(N, C, H, W)"


def check_im2col(
    x: Any, filter_h: Any, filter_w: Any, stride: IntOrPair, pad: IntOrPair, where: str = "im2col"
) -> tuple[np.ndarray, Geometry2d]:
    x = check_float_array(x, "x", where, 4, _NCHW)
    r = check_int(filter_h, "filter_h", where, low=1)
    s = check_int(filter_w, "filter_w", where, low=1)
    st, pd = check_stride(stride, where), check_pad(pad, where)
    n, c, h, w = x.shape
    p, q = conv_output_size((h, w), (r, s), st, pd, where, lambda: f"x.shape={_shape(x.shape)}")
    return x, Geometry2d(n, c, h, w, c, r, s, st[0], st[1], pd[0], pd[1], p, q)


def check_col2im(
    col: Any,
    x_shape: Any,
    filter_h: Any,
    filter_w: Any,
    stride: IntOrPair,
    pad: IntOrPair,
    where: str = "col2im",
) -> tuple[np.ndarray, Geometry2d]:
    col = check_float_array(col, "col", where, 2, "(N*P*Q, C*R*S)")
    shape = check_x_shape(x_shape, where)
    r = check_int(filter_h, "filter_h", where, low=1)
    s = check_int(filter_w, "filter_w", where, low=1)
    st, pd = check_stride(stride, where), check_pad(pad, where)
    n, c, h, w = shape
    p, q = conv_output_size((h, w), (r, s), st, pd, where, lambda: f"x_shape={_shape(shape)}")
    g = Geometry2d(n, c, h, w, c, r, s, st[0], st[1], pd[0], pd[1], p, q)
    check_shape(
        col,
        g.col_shape,
        "col",
        where,
        lambda: f"x_shape={_shape(shape)}, filter=({r}, {s}), stride={st}, pad={pd}",
    )
    return col, g


# Largest element count of any array an op makes (output, padded input, im2col rows): sizes
# whose products overflow are rejected here, before numpy or the C++ kernels see them.
_MAX_ELEMENTS = 2**62 // 8


def check_geometry_size(g: Geometry2d, where: str, shapes: Text) -> None:
    """ValueError if the output or the padded input of geometry g is too large to allocate."""
    sizes = {
        "output": g.n * g.k * g.p * g.q,
        "padded input": g.n * g.c * (g.h + 2 * g.ph) * (g.w + 2 * g.pw),
        "im2col": g.p * g.q * g.c * g.r * g.s,
    }
    for what, size in sizes.items():
        if size > _MAX_ELEMENTS:
            raise ValueError(
                _msg(
                    where,
                    f"the {what} would have {size} elements, which overflows ({_text(shapes)}, "
                    f"stride=({g.sh}, {g.sw}), pad=({g.ph}, {g.pw}))",
                )
            )


# Geometries already checked, by their arguments: a layer calls with the same shapes and
# settings every step, and the checks below cost more than a small kernel (a pool of one image
# takes a few microseconds). Only plain ints and pairs of them are keys: a bool, a float or a
# numpy integer goes through the checks, whose errors and normalisation it needs. Frozen
# results, so sharing them is safe; errors are never stored.
_GEOMETRIES: dict[tuple, Geometry2d] = {}
_GEOMETRIES_MAX = 512


def _plain(value: Any) -> bool:
    t = type(value)
    if t is int:
        return True
    return t is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int


def _remembered(key: tuple, settings: tuple, compute: Callable[[], Geometry2d]) -> Geometry2d:
    """compute(), remembered under key when every one of settings is _plain."""
    if not all(_plain(v) for v in settings):
        return compute()
    g = _GEOMETRIES.get(key)
    if g is None:
        g = compute()
        if len(_GEOMETRIES) >= _GEOMETRIES_MAX:
            _GEOMETRIES.clear()
        _GEOMETRIES[key] = g
    return g


def _conv_geometry(
    x: np.ndarray, w: np.ndarray, stride: IntOrPair, pad: IntOrPair, where: str
) -> Geometry2d:
    return _remembered(
        ("conv", x.shape, w.shape, stride, pad),
        (stride, pad),
        lambda: _check_conv_geometry(x, w, stride, pad, where),
    )


def _check_conv_geometry(
    x: np.ndarray, w: np.ndarray, stride: IntOrPair, pad: IntOrPair, where: str
) -> Geometry2d:
    def shapes() -> str:
        return f"x.shape={_shape(x.shape)}, w.shape={_shape(w.shape)}"

    if x.shape[1] != w.shape[1]:
        raise ValueError(
            _msg(where, f"x has {x.shape[1]} channels but w expects {w.shape[1]} ({shapes()})")
        )
    st, pd = check_stride(stride, where), check_pad(pad, where)
    n, c, h, wd = x.shape
    k, _, r, s = w.shape
    p, q = conv_output_size((h, wd), (r, s), st, pd, where, shapes)
    g = Geometry2d(n, c, h, wd, k, r, s, st[0], st[1], pd[0], pd[1], p, q)
    check_geometry_size(g, where, shapes)
    return g


def _check_bias(b: Any, k: int, where: str, context: Text) -> np.ndarray:
    """A bias of shape (k,), or a scalar added to every output as numpy's broadcasting adds it
    in the classic code (``Convolution(w, 0)``): returned as a (k,) array (a broadcast view)."""
    b = check_float_array(b, "b", where)
    if b.ndim == 0:
        return np.broadcast_to(b, (k,))
    check_shape(b, (k,), "b", where, context)
    return b


def check_conv2d_forward(
    x: Any, w: Any, b: Any, stride: IntOrPair, pad: IntOrPair, where: str = "conv2d_forward"
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Geometry2d, np.dtype]:
    """x (N,C,H,W), w (K,C,R,S), b (K,) or None -> (x, w, b, geometry, result dtype)."""
    x = check_float_array(x, "x", where, 4, _NCHW)
    w = check_float_array(w, "w", where, 4, "(K, C, R, S)")
    g = _conv_geometry(x, w, stride, pad, where)
    if b is not None:
        b = _check_bias(b, g.k, where, lambda: f"one bias per filter; w.shape={_shape(w.shape)}")
    return x, w, b, g, result_dtype(x, w, b)


def check_conv2d_backward(
    dy: Any,
    x: Any,
    w: Any,
    stride: IntOrPair,
    pad: IntOrPair,
    need_dx: Any = True,
    where: str = "conv2d_backward",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Geometry2d, np.dtype]:
    """dy (N,K,P,Q), x (N,C,H,W), w (K,C,R,S), need_dx a bool -> (dy, x, w, geometry, dtype)."""
    check_bool(need_dx, "need_dx", where)
    dy = check_float_array(dy, "dy", where, 4, "(N, K, P, Q)")
    x = check_float_array(x, "x", where, 4, _NCHW)
    w = check_float_array(w, "w", where, 4, "(K, C, R, S)")
    g = _conv_geometry(x, w, stride, pad, where)
    check_shape(
        dy,
        g.y_shape,
        "dy",
        where,
        lambda: f"the conv output for x.shape={_shape(x.shape)}, w.shape={_shape(w.shape)}",
    )
    return dy, x, w, g, result_dtype(dy, x, w)


def _pool_geometry(
    shape: tuple[int, ...],
    window: IntOrPair,
    stride: IntOrPair,
    pad: IntOrPair,
    where: str,
    shape_name: str,
) -> Geometry2d:
    return _remembered(
        ("pool", tuple(shape), window, stride, pad),
        (window, stride, pad),
        lambda: _check_pool_geometry(shape, window, stride, pad, where, shape_name),
    )


def _check_pool_geometry(
    shape: tuple[int, ...],
    window: IntOrPair,
    stride: IntOrPair,
    pad: IntOrPair,
    where: str,
    shape_name: str,
) -> Geometry2d:
    win = check_window(window, where)
    st, pd = check_stride(stride, where), check_pad(pad, where)
    check_pool_pad(pd, win, where)
    n, c, h, w = shape
    p, q = pool_output_size((h, w), win, st, pd, where, lambda: f"{shape_name}={_shape(shape)}")
    g = Geometry2d(n, c, h, w, c, win[0], win[1], st[0], st[1], pd[0], pd[1], p, q)
    check_geometry_size(g, where, f"{shape_name}={_shape(shape)}")
    return g


def check_pool2d_forward(
    x: Any, window: IntOrPair, stride: IntOrPair, pad: IntOrPair, where: str
) -> tuple[np.ndarray, Geometry2d]:
    """x (N,C,H,W); window/stride/pad int or pair, 0 <= pad < window -> (x, geometry)."""
    x = check_float_array(x, "x", where, 4, _NCHW)
    return x, _pool_geometry(x.shape, window, stride, pad, where, "x.shape")


def check_pool2d_backward(
    dy: Any, x_shape: Any, window: IntOrPair, stride: IntOrPair, pad: IntOrPair, where: str
) -> tuple[np.ndarray, Geometry2d]:
    """dy (N,C,P,Q) for an input of x_shape (N,C,H,W) -> (dy, geometry)."""
    dy = check_float_array(dy, "dy", where, 4, "(N, C, P, Q)")
    shape = check_x_shape(x_shape, where)
    g = _pool_geometry(shape, window, stride, pad, where, "x_shape")
    check_shape(
        dy, g.y_shape, "dy", where, lambda: f"the pooling output for x_shape={_shape(shape)}"
    )
    return dy, g


def check_max_pool2d_backward(
    dy: Any,
    argmax: Any,
    x_shape: Any,
    window: IntOrPair,
    stride: IntOrPair,
    pad: IntOrPair,
    where: str = "max_pool2d_backward",
    check_range: bool = True,
) -> tuple[np.ndarray, np.ndarray, Geometry2d]:
    """As check_pool2d_backward, plus argmax: integers shaped like dy in [0, r*s). A caller
    whose kernel checks the range itself passes check_range=False (and calls
    check_argmax_range for the message when the kernel rejects argmax)."""
    dy, g = check_pool2d_backward(dy, x_shape, window, stride, pad, where)
    argmax = check_int_array(argmax, "argmax", where)
    check_shape(argmax, dy.shape, "argmax", where, "it must match dy")
    if check_range:
        check_argmax_range(argmax, g, where)
    return dy, argmax, g


ARGMAX_DTYPES = (np.dtype(np.int64), np.dtype(np.uint8))
UINT8_MAX_WINDOW = 256  # the most window elements whose indices uint8 holds


def smallest_argmax_dtype(window_elements: int) -> np.dtype:
    """uint8 where it holds a window's indices (an eighth of int64's memory: what a network
    keeps for its backward pass), else int64."""
    return ARGMAX_DTYPES[1] if window_elements <= UINT8_MAX_WINDOW else ARGMAX_DTYPES[0]


def check_argmax_dtype(argmax_dtype: Any, g: Geometry2d, where: str) -> np.dtype:
    """The dtype max_pool2d_forward returns argmax in: int64 (the default, numpy's argmax
    dtype) or uint8, for windows of at most UINT8_MAX_WINDOW elements."""
    try:
        dt = None if argmax_dtype is None else np.dtype(argmax_dtype)
    except TypeError:
        dt = None
    if dt not in ARGMAX_DTYPES:
        got = dt.name if dt is not None else repr(argmax_dtype)
        raise ValueError(_msg(where, f"argmax_dtype must be int64 or uint8, got {got}"))
    if dt == np.uint8 and g.r * g.s > UINT8_MAX_WINDOW:
        raise ValueError(
            _msg(
                where,
                f"argmax_dtype uint8 holds windows of at most {UINT8_MAX_WINDOW} elements, got "
                f"window {g.window} ({g.r * g.s} elements)",
            )
        )
    return dt


def check_argmax_range(argmax: np.ndarray, g: Geometry2d, where: str) -> None:
    if argmax.size and (argmax.min() < 0 or argmax.max() >= g.r * g.s):
        raise ValueError(
            _msg(
                where,
                f"argmax values must be in [0, {g.r * g.s}) for window "
                f"{g.window}, got range [{argmax.min()}, {argmax.max()}]",
            )
        )


def check_affine_forward(
    x: Any, w: Any, b: Any, where: str = "affine_forward"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.dtype]:
    """x (N, ...) with prod(...) = D, w (D, M), b (M,)."""
    x = check_float_array(x, "x", where)
    w = check_float_array(w, "w", where, 2, "(D, M)")
    _check_affine_x(x, w, where)
    b = _check_bias(b, w.shape[1], where, lambda: f"w.shape={_shape(w.shape)}")
    return x, w, b, result_dtype(x, w, b)


def _check_affine_x(x: np.ndarray, w: np.ndarray, where: str) -> None:
    if x.ndim < 2:
        raise ValueError(
            _msg(where, f"x must be at least 2-D (N, ...), got x.shape={_shape(x.shape)}")
        )
    d = math.prod(x.shape[1:])
    if d != w.shape[0]:
        raise ValueError(
            _msg(
                where,
                f"x has {d} features per sample but w expects {w.shape[0]} "
                f"(x.shape={_shape(x.shape)}, w.shape={_shape(w.shape)})",
            )
        )


def check_affine_backward(
    dy: Any, x: Any, w: Any, where: str = "affine_backward"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.dtype]:
    """dy (N, M), x (N, ...), w (D, M)."""
    dy = check_float_array(dy, "dy", where, 2, "(N, M)")
    x = check_float_array(x, "x", where)
    w = check_float_array(w, "w", where, 2, "(D, M)")
    _check_affine_x(x, w, where)
    check_shape(
        dy,
        (x.shape[0], w.shape[1]),
        "dy",
        where,
        lambda: f"x.shape={_shape(x.shape)}, w.shape={_shape(w.shape)}",
    )
    return dy, x, w, result_dtype(dy, x, w)


def check_unary_forward(x: Any, where: str) -> np.ndarray:
    """Elementwise ops: any float array."""
    return check_float_array(x, "x", where)


def check_unary_backward(
    dy: Any, other: Any, other_name: str, where: str
) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    """Elementwise backward: dy and the saved forward array must have the same shape."""
    dy = check_float_array(dy, "dy", where)
    other = check_float_array(other, other_name, where)
    check_same_shape(dy, other, "dy", other_name, where)
    return dy, other, result_dtype(dy, other)


def check_softmax(x: Any, where: str = "softmax") -> np.ndarray:
    """x (N, M) with M >= 1."""
    x = check_float_array(x, "x", where, 2, "(N, M)")
    if x.shape[1] < 1:
        raise ValueError(
            _msg(where, f"x must have at least one column, got x.shape={_shape(x.shape)}")
        )
    return x


def _check_targets(t: Any, n: int, m: int, where: str, x_name: str) -> tuple[np.ndarray, bool]:
    """Targets in the forms the classic cross-entropy takes: integer class labels of shape
    (N,) or (N, 1) (any integer dtype), or per-class targets of shape (N, M) — one-hot or soft,
    of any real dtype (read as check_float_array reads it). As in the classic code, a t with
    as many elements as x is per-class targets (so with M == 1, (N, 1) is one-hot).
    Returns (t, True) with labels of shape (N,) or (t, False) with float targets (N, M)."""
    t = as_array(t, "t", where)
    if t.ndim == 2 and t.shape == (n, m):
        return check_float_array(t, "t", where), False
    if t.ndim == 2 and t.shape[1:] == (1,):
        t = t.reshape(t.shape[0])
    if t.ndim == 1:
        if t.dtype.kind not in "iu":
            raise TypeError(
                _msg(
                    where,
                    f"t of shape (N,) or (N, 1) must hold integer class labels, got "
                    f"dtype {t.dtype}; pass per-class targets as (N, M)",
                )
            )
        check_shape(t, (n,), "t", where, f"one label per row of {x_name}")
        if t.size and (t.min() < 0 or t.max() >= m):
            raise ValueError(
                _msg(
                    where,
                    f"labels in t must be in [0, {m}), got range "
                    f"[{t.min()}, {t.max()}] ({x_name} has {m} columns)",
                )
            )
        return t, True
    raise ValueError(
        _msg(
            where,
            f"t must be integer labels (N,) or (N, 1), or per-class targets (N, M) = "
            f"{_shape((n, m))}, got t.shape={_shape(t.shape)}",
        )
    )


def check_softmax_xent_forward(
    x: Any, t: Any, where: str = "softmax_cross_entropy_forward"
) -> tuple[np.ndarray, np.ndarray, bool, np.dtype]:
    """x (N, M) logits, N >= 1; t labels (N,) or targets (N, M) -> (x, t, t_is_labels, dtype)."""
    x = check_softmax(x, where)
    if x.shape[0] < 1:
        raise ValueError(
            _msg(
                where,
                "x must have at least one row (the loss is a batch mean), "
                f"got x.shape={_shape(x.shape)}",
            )
        )
    t, labels = _check_targets(t, x.shape[0], x.shape[1], where, "x")
    return x, t, labels, result_dtype(x) if labels else result_dtype(x, t)


def check_softmax_xent_backward(
    p: Any, t: Any, dout: Any, where: str = "softmax_cross_entropy_backward"
) -> tuple[np.ndarray, np.ndarray, bool, float, np.dtype]:
    """p (N, M) probabilities, N >= 1; t as in forward; dout a finite real scalar."""
    p = check_float_array(p, "p", where, 2, "(N, M)")
    if p.shape[0] < 1 or p.shape[1] < 1:
        raise ValueError(_msg(where, f"p must be non-empty, got p.shape={_shape(p.shape)}"))
    t, labels = _check_targets(t, p.shape[0], p.shape[1], where, "p")
    dout = check_real(dout, "dout", where)
    return p, t, labels, dout, result_dtype(p) if labels else result_dtype(p, t)


def check_offset(offset: Any, where: str) -> int:
    """A dropout stream offset: an int in [0, 2**64)."""
    if not _is_int(offset):
        raise TypeError(_msg(where, f"offset must be an int, got {type(offset).__name__}"))
    offset = int(offset)
    if not 0 <= offset < 2**64:
        raise ValueError(_msg(where, f"offset must be in [0, 2**64), got {offset}"))
    return offset


def check_dropout_mask(
    shape: Any, ratio: Any, seed: Any, where: str = "dropout_mask"
) -> tuple[tuple[int, ...], float, int]:
    """shape: int or tuple of non-negative ints; 0 <= ratio <= 1; 0 <= seed < 2**64."""
    if _is_int(shape):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
        raise TypeError(
            _msg(where, f"shape must be an int or a tuple of ints, got {type(shape).__name__}")
        )
    shape = check_x_shape(shape, where, "shape", ndim=len(shape))
    ratio = check_real(ratio, "ratio", where, low=0.0, high=1.0)
    return shape, ratio, check_seed(seed, where)


def check_dropout_forward(
    x: Any, ratio: Any, train: Any, seed: Any, mask: Any, where: str = "dropout_forward"
) -> tuple[np.ndarray, float, bool, int | None, np.ndarray | None]:
    """In training exactly one of seed / mask (bool, shaped like x) must be given."""
    x = check_float_array(x, "x", where)
    ratio = check_real(ratio, "ratio", where, low=0.0, high=1.0)
    train = check_bool(train, "train", where)
    if train:
        if (seed is None) == (mask is None):
            raise ValueError(
                _msg(
                    where,
                    "in training exactly one of seed and mask must be given"
                    f" (got seed={'None' if seed is None else 'given'}, "
                    f"mask={'None' if mask is None else 'given'})",
                )
            )
        if seed is not None:
            seed = check_seed(seed, where)
        else:
            mask = _check_mask(mask, x.shape, where)
    return x, ratio, train, seed, mask


def _check_mask(mask: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    mask = as_array(mask, "mask", where)
    if mask.dtype != np.bool_:
        raise TypeError(_msg(where, f"mask must be a bool array, got dtype {mask.dtype}"))
    check_shape(mask, shape, "mask", where, "it must match the data")
    return mask


def check_dropout_backward(
    dy: Any, mask: Any, where: str = "dropout_backward"
) -> tuple[np.ndarray, np.ndarray]:
    dy = check_float_array(dy, "dy", where)
    return dy, _check_mask(mask, dy.shape, where)


def _check_bn_layout(x: np.ndarray, spatial: bool, where: str) -> int:
    if spatial:
        check_ndim(x, 4, "x", where, _NCHW)
    else:
        check_ndim(x, 2, "x", where, "(N, D)")
    if x.shape[0] < 1 or (spatial and x.shape[2] * x.shape[3] < 1):
        raise ValueError(
            _msg(
                where, f"x must hold at least one sample per feature, got x.shape={_shape(x.shape)}"
            )
        )
    return x.shape[1]


def check_batchnorm_forward(
    x: Any,
    gamma: Any,
    beta: Any,
    running_mean: Any,
    running_var: Any,
    momentum: Any,
    eps: Any,
    train: Any,
    spatial: bool = False,
    where: str = "batchnorm_forward",
) -> tuple[Any, ...]:
    """x (N, D) (or (N, D, H, W) when spatial); gamma, beta, running stats (D,).

    Running stats are updated in place in training, so they must be writeable float ndarrays;
    both may be None only in training. Returns (x, gamma, beta, running_mean, running_var,
    momentum, eps, train, dtype) where dtype = result_type(x, gamma, beta).
    """
    x = check_float_array(x, "x", where)
    d = _check_bn_layout(x, spatial, where)
    gamma = check_float_array(gamma, "gamma", where)
    beta = check_float_array(beta, "beta", where)
    feat = "channel" if spatial else "feature"
    for name, arr in (("gamma", gamma), ("beta", beta)):
        check_shape(arr, (d,), name, where, lambda: f"one per {feat} of x.shape={_shape(x.shape)}")
    train = check_bool(train, "train", where)
    if (running_mean is None) != (running_var is None):
        raise ValueError(
            _msg(where, "running_mean and running_var must both be given or both be None")
        )
    if running_mean is None:
        if not train:
            raise ValueError(
                _msg(where, "inference (train=False) needs running_mean and running_var")
            )
    else:

        def shape_of() -> str:
            return f"one per {feat} of x.shape={_shape(x.shape)}"

        if train:
            running_mean = check_inplace_array(running_mean, "running_mean", where)
            running_var = check_inplace_array(running_var, "running_var", where)
        else:
            running_mean = check_float_array(running_mean, "running_mean", where)
            running_var = check_float_array(running_var, "running_var", where)
        check_shape(running_mean, (d,), "running_mean", where, shape_of)
        check_shape(running_var, (d,), "running_var", where, shape_of)
    momentum = check_real(momentum, "momentum", where, low=0.0, high=1.0)
    eps = check_real(eps, "eps", where, low=0.0)  # eps = 0 is allowed; inf for constant features
    return (
        x,
        gamma,
        beta,
        running_mean,
        running_var,
        momentum,
        eps,
        train,
        result_dtype(x, gamma, beta),
    )


def check_batchnorm_backward(
    dy: Any,
    x: Any,
    gamma: Any,
    saved_mean: Any,
    saved_inv_std: Any,
    spatial: bool = False,
    where: str = "batchnorm_backward",
) -> tuple[Any, ...]:
    """dy and x (N, D) (or (N, D, H, W)); gamma, saved_mean, saved_inv_std (D,).

    Returns (dy, x, gamma, saved_mean, saved_inv_std, dtype), dtype = result_type of all five.
    """
    dy = check_float_array(dy, "dy", where)
    x = check_float_array(x, "x", where)
    d = _check_bn_layout(x, spatial, where)
    check_same_shape(dy, x, "dy", "x", where)
    out = [dy, x]
    feat = "channel" if spatial else "feature"
    for name, arr in (
        ("gamma", gamma),
        ("saved_mean", saved_mean),
        ("saved_inv_std", saved_inv_std),
    ):
        arr = check_float_array(arr, name, where)
        check_shape(arr, (d,), name, where, lambda: f"one per {feat} of x.shape={_shape(x.shape)}")
        out.append(arr)
    return (*out, result_dtype(*out))


def check_param_update(
    param: Any, grad: Any, states: Sequence[tuple[str, Any]], where: str
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """param and the named state arrays are updated in place; grad must match param's shape."""
    param = check_inplace_array(param, "param", where)
    grad = check_float_array(grad, "grad", where)
    check_same_shape(param, grad, "param", "grad", where)
    out = [check_inplace_array(arr, name, where, param.shape, "param") for name, arr in states]
    return param, grad, out


_UNIT = {"low": 0.0, "high": 1.0}
_BETA = {"low": 0.0, "high": 1.0, "high_open": True}
_NON_NEGATIVE = {"low": 0.0}

# Each optimizer update's state arrays and then its scalar arguments, in signature order:
# (name, check_real bounds), or (name, None) for the integer step count (>= 1).
UPDATE_ARGUMENTS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, dict | None], ...]]] = {
    "sgd_update": ((), (("lr", {}),)),
    "momentum_update": (("velocity",), (("lr", {}), ("momentum", _UNIT))),
    "nesterov_update": (("velocity",), (("lr", {}), ("momentum", _UNIT))),
    "adagrad_update": (("h",), (("lr", {}), ("eps", _NON_NEGATIVE))),
    "rmsprop_update": (("h",), (("lr", {}), ("decay_rate", _UNIT), ("eps", _NON_NEGATIVE))),
    "adam_update": (
        ("m", "v"),
        (("lr", {}), ("beta1", _BETA), ("beta2", _BETA), ("step", None), ("eps", _NON_NEGATIVE)),
    ),
}


def check_gemm(
    a: Any, b: Any, trans_a: Any, trans_b: Any, alpha: Any, beta: Any, out: Any, where: str = "gemm"
) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray | None, np.dtype]:
    """gemm's arguments: a and b 2-D real arrays (read as check_float_array reads them) whose
    op() shapes chain; trans_a/trans_b bools; alpha/beta finite reals; out None or a writeable
    (M, N) ndarray of the result dtype (numpy's promotion of a and b), native byte order.
    Returns (op(a), op(b), alpha, beta, out, dtype); op() transposes are views."""
    a = check_float_array(a, "a", where, 2, "(M, K), or (K, M) with trans_a")
    b = check_float_array(b, "b", where, 2, "(K, N), or (N, K) with trans_b")
    trans_a = check_bool(trans_a, "trans_a", where)
    trans_b = check_bool(trans_b, "trans_b", where)
    alpha = check_real(alpha, "alpha", where)
    beta = check_real(beta, "beta", where)
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    (m, k), (k2, n) = op_a.shape, op_b.shape
    if k != k2:
        raise ValueError(
            _msg(
                where,
                f"inner dimensions differ: op(a) is {_shape(op_a.shape)} and op(b) is "
                f"{_shape(op_b.shape)} (a.shape={_shape(a.shape)}, trans_a={trans_a}, "
                f"b.shape={_shape(b.shape)}, trans_b={trans_b})",
            )
        )
    dt = result_dtype(a, b)
    if out is not None:
        if not isinstance(out, np.ndarray):
            raise TypeError(_msg(where, f"out must be a numpy array, got {type(out).__name__}"))
        if out.dtype != dt:
            raise TypeError(
                _msg(where, f"out.dtype={out.dtype} but the product of a and b is {dt}")
            )
        check_shape(out, (m, n), "out", where, "the shape of op(a) @ op(b)")
        if not out.flags.writeable:
            raise ValueError(_msg(where, "out is read-only"))
        if np.may_share_memory(out, a) or np.may_share_memory(out, b):
            raise ValueError(_msg(where, "out must not overlap a or b"))
    return op_a, op_b, alpha, beta, out, dt


def check_update(
    where: str, param: Any, grad: Any, states: Sequence[Any], scalars: Sequence[Any]
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[Any]]:
    """Checks the arguments of optimizer update `where` (see UPDATE_ARGUMENTS): returns param,
    grad, the state arrays and the scalars (floats; the step count an int)."""
    state_names, scalar_specs = UPDATE_ARGUMENTS[where]
    param, grad, out = check_param_update(param, grad, tuple(zip(state_names, states)), where)
    values = [
        check_int(value, name, where, low=1)
        if bounds is None
        else check_real(value, name, where, **bounds)
        for (name, bounds), value in zip(scalar_specs, scalars)
    ]
    return param, grad, out, values
