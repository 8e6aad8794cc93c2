"""Differential fuzz: the fast backend against the reference on the inputs real code produces.

For every public function of fastcnn.functional, fastcnn.gemm and every layer class, hypothesis
generates arguments — shapes with empty dimensions, float32/float64/float16/integer/bool
arrays, pickled arrays, the other byte order, transposed, reversed, sliced, broadcast,
read-only and misaligned views, label arrays in every form, and bad scalars and arrays — and
both backends must either succeed with equal results (same dtype and shape, values within the
usual tolerance, in-place arguments updated alike) or raise the same exception type with the
same message, which names the argument.

Each case is drawn once as a plan and built twice, so each backend gets its own fresh, equal
inputs. FASTCNN_FUZZ_EXAMPLES sets the examples per function (default 40, derandomised for CI;
set it, e.g. to 2000, to run a larger random search by hand).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastcnn import functional as fast
from fastcnn import layers as fast_layers
from fastcnn.reference import functional as ref
from fastcnn.reference import layers as ref_layers

_EXAMPLES = os.environ.get("FASTCNN_FUZZ_EXAMPLES")
FUZZ = settings(
    max_examples=int(_EXAMPLES or 40),
    derandomize=_EXAMPLES is None,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ---------------------------------------------------------------------------------------------
# Array forms: how real code hands arrays over. Each form keeps the values (up to its dtype).
# ---------------------------------------------------------------------------------------------


def _misaligned(a: np.ndarray) -> np.ndarray:
    buf = np.empty(a.nbytes + 1, np.uint8)
    out = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


def _reversed(a: np.ndarray) -> np.ndarray:
    if a.ndim == 0:
        return a
    return np.ascontiguousarray(a[::-1])[::-1]  # same values, negative stride on axis 0


def _sliced(a: np.ndarray) -> np.ndarray:
    if a.ndim == 0:
        return a
    big = np.zeros((*a.shape[:-1], 2 * a.shape[-1] + 1), a.dtype)
    big[..., 1::2] = a
    return big[..., 1::2]


def _broadcast(a: np.ndarray) -> np.ndarray:
    if a.ndim == 0 or a.shape[0] == 0:
        return a
    return np.broadcast_to(a[:1], a.shape)  # zero stride on axis 0 (values: the first row)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def _as_int(a: np.ndarray, dtype: str) -> np.ndarray:
    v = np.round(a * 3)
    return (np.abs(v) if dtype.startswith("u") else v).astype(dtype)


FORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "plain": lambda a: a,
    "pickled": lambda a: pickle.loads(pickle.dumps(a)),
    "byteswapped": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "fortran": np.asfortranarray,
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
    "reversed": _reversed,
    "sliced": _sliced,
    "broadcast": _broadcast,
    "readonly": _readonly,
    "misaligned": _misaligned,
    "float16": lambda a: a.astype(np.float16),
    "int8": lambda a: _as_int(a, "int8"),
    "uint8": lambda a: _as_int(a, "uint8"),
    "int64": lambda a: _as_int(a, "int64"),
    "bool": lambda a: a > 0,
}
# In-place arguments (parameters, optimizer state, running statistics, gemm's out) stay float:
# the forms a caller may legitimately update in place, plus read-only to check the refusal.
_FLOAT64_KEEPING = {"plain", "pickled", "byteswapped", "fortran", "transposed", "reversed",
                    "sliced", "broadcast", "readonly", "misaligned"}  # fmt: skip
INPLACE_FORMS = ["plain", "pickled", "byteswapped", "fortran", "reversed", "sliced", "readonly",
                 "float16"]  # fmt: skip
BAD_ARRAYS: dict[str, Callable[[np.ndarray], Any]] = {
    "complex": lambda a: a.astype(np.complex64),
    "object": lambda a: a.astype(object),
    "strings": lambda a: a.astype("U4"),
    "extra axis": lambda a: a[None],
    "list": lambda a: a.tolist(),
    "None": lambda a: None,
}


class Case:
    """A drawn plan: ``build()`` makes a fresh, equal set of arguments every time it is
    called (its random data comes from one drawn seed)."""

    def __init__(self, draw: Callable[[Any], Any]) -> None:
        self.draw = draw
        self.seed = draw(st.integers(0, 2**32 - 1))
        self.steps: list[tuple[str, Any]] = []
        self.rng = np.random.default_rng(self.seed)

    # --- drawing (recorded once) -----------------------------------------------------------
    def dim(self, low: int = 0, high: int = 4) -> int:
        return self.draw(st.integers(low, high))

    def array(self, shape: tuple[int, ...], *, inplace: bool = False, dtype: Any = None,
              bad: bool = True, positive: bool = False) -> int:  # fmt: skip
        """Plan an argument array; returns its index into build()'s list."""
        if dtype is None:
            dtype = self.draw(st.sampled_from([np.float32, np.float64]))
        forms = INPLACE_FORMS if inplace else list(FORMS)
        choice = self.draw(st.sampled_from(forms))
        if bad and self.draw(st.integers(0, 19)) == 0:
            choice = self.draw(st.sampled_from(list(BAD_ARRAYS)))
        self.steps.append(("array", (shape, dtype, choice, positive)))
        return len(self.steps) - 1

    def value(self, good: Any, bad: list[Any] | None = None) -> int:
        """Plan a scalar: ``good`` (a strategy) mostly, one of ``bad`` now and then."""
        if bad and self.draw(st.integers(0, 9)) == 0:
            v = self.draw(st.sampled_from(bad))
        else:
            v = self.draw(good)
        self.steps.append(("value", v))
        return len(self.steps) - 1

    def raw(self, make: Callable[[np.random.Generator], Any]) -> int:
        """Plan an argument made by ``make(rng)`` (labels, masks, argmax, ...)."""
        self.steps.append(("raw", make))
        return len(self.steps) - 1

    @property
    def narrow(self) -> bool:
        """True when some planned array is not float64 (see _assert_same)."""
        return any(
            kind == "array" and (spec[1] is not np.float64 or spec[2] not in _FLOAT64_KEEPING)
            for kind, spec in self.steps
        )

    # --- building (every call) ------------------------------------------------------------
    def build(self) -> list[Any]:
        rng = np.random.default_rng(self.seed)
        out: list[Any] = []
        for kind, spec in self.steps:
            if kind == "value":
                out.append(spec)
            elif kind == "raw":
                out.append(spec(rng))
            else:
                shape, dtype, choice, positive = spec
                a = np.asarray(rng.standard_normal(shape), dtype=dtype)
                if positive:
                    a = np.asarray(np.abs(a) + 0.5, dtype=dtype)
                form = FORMS.get(choice) or BAD_ARRAYS[choice]
                out.append(form(a))
        return out


PAIR_BAD = [0, -1, True, 1.5, "1", (1, 2, 3), 2**31, 2**63, (1, 2**40), None]


def _stride(c: Case) -> int:
    return c.value(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))),
                   PAIR_BAD)  # fmt: skip


def _pad(c: Case) -> int:
    return c.value(st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2))),
                   [-1, True, 2.0, "0", (0,), 2**31, 2**64])  # fmt: skip


def _real(c: Case, low: float, high: float) -> int:
    return c.value(st.floats(low, high), [None, "0.5", True, np.nan, np.inf, -1.0, 1j])


# ---------------------------------------------------------------------------------------------
# Comparing the two backends
# ---------------------------------------------------------------------------------------------

TOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}


def _assert_same(got: Any, want: Any, what: str, narrow: bool = False) -> None:
    """Equal results; ``narrow``: some input was narrower than float64, so even float64
    results may carry float32 roundings (numpy forms sub-expressions in the inputs' dtypes,
    e.g. a float32 batch variance folded into float64 running statistics)."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{what}[{i}]", narrow)
        return
    if want is None or isinstance(want, (bool, int)):
        assert got == want, what
        return
    if isinstance(want, float):
        assert isinstance(got, float), what
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=what)
        return
    got, want = np.asarray(got), np.asarray(want)
    assert (got.dtype, got.shape) == (want.dtype, want.shape), what
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    dt = np.dtype(np.float32) if narrow else np.dtype(want.dtype.newbyteorder("="))
    tol = max(TOL.get(dt, 1e-2), TOL.get(np.dtype(want.dtype.newbyteorder("=")), 1e-2))
    scale = max(1.0, float(np.abs(want.astype(np.float64)).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale, err_msg=what)


def _run(fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> tuple[str, Any]:
    try:
        # numpy's own warnings (0/0 in a float16 Adam step, say) are the same on both sides
        # and are not what this test is about; the NaNs they come with are compared.
        with np.errstate(all="ignore"):
            return "ok", fn(*args, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        return "error", exc


def _compare(
    name: str, case: Case, call_ref: Callable[[], Any], call_fast: Callable[[], Any]
) -> None:
    (k_ref, r_ref), (k_fast, r_fast) = call_ref(), call_fast()
    if k_ref == "error" or k_fast == "error":
        assert k_ref == k_fast, (
            f"{name}: reference {k_ref} ({r_ref!r}) but fast {k_fast} ({r_fast!r})"
        )
        assert type(r_fast) is type(r_ref), (name, r_ref, r_fast)
        assert str(r_fast) == str(r_ref), (name, r_ref, r_fast)
        return
    _assert_same(r_fast, r_ref, name, case.narrow)


def _check_function(name: str, case: Case, kwargs_idx: dict[str, int] | None = None,
                    inplace: tuple[int, ...] = ()) -> None:  # fmt: skip
    """Call reference.<name> and fast.<name> on their own builds of case; compare results and
    the in-place arguments (positions ``inplace``) afterwards."""
    kwargs_idx = kwargs_idx or {}
    pos_idx = [i for i in range(len(case.steps)) if i not in kwargs_idx.values()]

    def call(module: Any) -> Callable[[], tuple[str, Any]]:
        def run() -> tuple[str, Any]:
            built = case.build()
            args = [built[i] for i in pos_idx]
            kwargs = {k: built[i] for k, i in kwargs_idx.items()}
            kind, result = _run(getattr(module, name), args, kwargs)
            if kind == "ok" and inplace:
                result = (result, *(np.array(built[i]) for i in inplace))
            return kind, result

        return run

    _compare(name, case, call(ref), call(fast))


# ---------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------


def _conv_case(c: Case) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n, ch, k = c.dim(0, 3), c.dim(0, 4), c.dim(0, 4)
    h, w, r, s = c.dim(0, 7), c.dim(0, 7), c.dim(0, 3), c.dim(1, 3)
    return (n, ch, h, w), (k, ch, r, s)


def _conv_out_shape(xs, ws, stride, pad) -> tuple[int, ...]:
    """The reference's output shape, or a plausible one when the call is invalid anyway."""
    try:
        return ref.conv2d_forward(np.zeros(xs), np.zeros(ws), None, stride, pad).shape
    except (TypeError, ValueError):
        return (xs[0], ws[0], 2, 2)


@given(st.data())
@FUZZ
@pytest.mark.parametrize("name", ["conv2d_forward", "conv2d_relu_forward"])
def test_conv2d_forward(name, data):
    c = Case(data.draw)
    xs, ws = _conv_case(c)
    c.array(xs)
    c.array(ws)
    c.array((ws[0],)) if data.draw(st.booleans()) else c.value(st.none())
    _stride(c)
    _pad(c)
    _check_function(name, c)


@given(st.data())
@FUZZ
def test_conv2d_backward(data):
    c = Case(data.draw)
    xs, ws = _conv_case(c)
    stride = data.draw(st.integers(1, 2))
    pad = data.draw(st.integers(0, 2))
    c.array(_conv_out_shape(xs, ws, stride, pad))
    c.array(xs)
    c.array(ws)
    c.value(st.just(stride), [0, True])
    c.value(st.just(pad), [-1, 2**31])
    c.value(st.booleans(), [1, "yes", None])
    _check_function("conv2d_backward", c)


def _pool_setup(c: Case, data) -> tuple[tuple[int, ...], int, int, int, tuple[int, ...]]:
    xs = (c.dim(0, 3), c.dim(0, 3), c.dim(0, 6), c.dim(0, 6))
    win, stride, pad = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), 0
    if win > 1:
        pad = data.draw(st.integers(0, win - 1))
    try:
        ys = ref.avg_pool2d_forward(np.zeros(xs), win, stride, pad).shape
    except ValueError:
        ys = (xs[0], xs[1], 1, 1)
    return xs, win, stride, pad, ys


@given(st.data())
@FUZZ
@pytest.mark.parametrize("name", ["max_pool2d_forward", "avg_pool2d_forward"])
def test_pool_forward(name, data):
    c = Case(data.draw)
    xs, win, stride, pad, _ = _pool_setup(c, data)
    c.array(xs)
    c.value(st.just(win), [0, (2, 2, 2), 2**63])
    c.value(st.just(stride), PAIR_BAD)
    c.value(st.just(pad), [win, -1, 1.0])
    _check_function(name, c)


@given(st.data())
@FUZZ
def test_max_pool2d_backward(data):
    c = Case(data.draw)
    xs, win, stride, pad, ys = _pool_setup(c, data)
    c.array(ys)
    high = win * win + (1 if data.draw(st.integers(0, 9)) == 0 else 0)  # now and then too big
    am_dtype = data.draw(st.sampled_from(["int64", "int32", "uint8", ">i8", "float32", "bool"]))
    c.raw(lambda rng: rng.integers(0, high, ys).astype(am_dtype))
    c.value(st.just(xs), [xs[:3], (1.5, 1, 1, 1), "x", (-1, 1, 1, 1)])
    c.value(st.just(win))
    c.value(st.just(stride))
    c.value(st.just(pad))
    _check_function("max_pool2d_backward", c)


@given(st.data())
@FUZZ
def test_avg_pool2d_backward(data):
    c = Case(data.draw)
    xs, win, stride, pad, ys = _pool_setup(c, data)
    c.array(ys)
    c.value(st.just(xs), [xs[:3], (1.5, 1, 1, 1)])
    c.value(st.just(win))
    c.value(st.just(stride))
    c.value(st.just(pad))
    _check_function("avg_pool2d_backward", c)


@given(st.data())
@FUZZ
def test_im2col_col2im(data):
    c = Case(data.draw)
    xs = (c.dim(0, 2), c.dim(0, 3), c.dim(1, 5), c.dim(1, 5))
    r, s = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    c.array(xs)
    c.value(st.just(r), [0, 1.0])
    c.value(st.just(s))
    _stride(c)
    _pad(c)
    _check_function("im2col", c)
    col_shape = ref.im2col(np.zeros(xs), r, s, 1, 1).shape
    c2 = Case(data.draw)
    c2.array(col_shape)
    c2.value(st.just(xs), [xs[1:], "x"])
    c2.value(st.just(r))
    c2.value(st.just(s))
    c2.value(st.just(1))
    c2.value(st.just(1))
    _check_function("col2im", c2)


@given(st.data())
@FUZZ
def test_gemm(data):
    c = Case(data.draw)
    m, n, k = c.dim(0, 9), c.dim(0, 9), c.dim(0, 9)
    ta, tb = data.draw(st.booleans()), data.draw(st.booleans())
    c.array((k, m) if ta else (m, k))
    c.array((n, k) if tb else (k, n))
    kw = {
        "trans_a": c.value(st.just(ta), ["no", 1, None]),
        "trans_b": c.value(st.just(tb), ["yes", 0]),
        "alpha": _real(c, -2.0, 2.0),
        "beta": _real(c, -2.0, 2.0),
    }
    if data.draw(st.booleans()):  # an out of the wrong dtype is refused alike
        kw["out"] = c.array((m, n), inplace=True)
    _check_function("gemm", c, kw, inplace=(kw["out"],) if "out" in kw else ())


@given(st.data())
@FUZZ
def test_affine(data):
    c = Case(data.draw)
    n, d1, d2, m = c.dim(0, 4), c.dim(0, 4), c.dim(1, 3), c.dim(0, 5)
    flat = data.draw(st.booleans())
    xs = (n, d1 * d2) if flat else (n, d1, d2)
    c.array(xs)
    c.array((d1 * d2, m))
    c.array((m,))
    _check_function("affine_forward", c)
    c2 = Case(data.draw)
    c2.array((n, m))
    c2.array(xs)
    c2.array((d1 * d2, m))
    _check_function("affine_backward", c2)


_SHAPES = st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple)


@given(st.data())
@FUZZ
@pytest.mark.parametrize("name", ["relu_forward", "sigmoid_forward"])
def test_unary_forward(name, data):
    c = Case(data.draw)
    c.array(data.draw(_SHAPES))
    _check_function(name, c)


@given(st.data())
@FUZZ
@pytest.mark.parametrize("name", ["relu_backward", "sigmoid_backward"])
def test_unary_backward(name, data):
    c = Case(data.draw)
    shape = data.draw(_SHAPES)
    c.array(shape)
    c.array(shape if data.draw(st.integers(0, 9)) else (*shape, 2))
    _check_function(name, c)


def _labels(c: Case, data, n: int, m: int) -> int:
    form = data.draw(st.sampled_from(
        ["labels", "column", "onehot-int", "onehot-float", "soft", "float-labels", "range",
         "short", "bool-labels"]))  # fmt: skip
    dtype = data.draw(st.sampled_from(["int8", "uint8", "int32", "int64", "uint64", ">i4"]))

    def make(rng: np.random.Generator) -> Any:
        labels = rng.integers(0, max(m, 1), n)
        if form == "labels":
            return labels.astype(dtype)
        if form == "column":
            return labels.astype(dtype).reshape(n, 1)
        if form in ("onehot-int", "onehot-float"):
            eye = np.eye(m, dtype=np.float64 if form == "onehot-float" else dtype)
            return eye[labels] if m else np.zeros((n, 0), dtype)
        if form == "soft":
            t = rng.random((n, m))
            return t / np.maximum(t.sum(axis=1, keepdims=True), 1e-12)
        if form == "float-labels":
            return labels.astype(np.float64)
        if form == "range":
            return labels + m
        if form == "bool-labels":
            return labels.astype(bool)
        return labels[: max(n - 1, 0)]

    return c.raw(make)


@given(st.data())
@FUZZ
def test_softmax(data):
    c = Case(data.draw)
    c.array((c.dim(0, 4), c.dim(0, 6)))
    _check_function("softmax", c)


@given(st.data())
@FUZZ
def test_softmax_cross_entropy(data):
    c = Case(data.draw)
    n, m = c.dim(0, 5), c.dim(0, 6)
    c.array((n, m))
    _labels(c, data, n, m)
    _check_function("softmax_cross_entropy_forward", c)
    c2 = Case(data.draw)
    c2.raw(lambda rng: ref.softmax(rng.standard_normal((n, m))) if m else np.zeros((n, 0)))
    _labels(c2, data, n, m)
    c2.value(st.floats(-2, 2), [None, "1", True, np.nan])
    _check_function("softmax_cross_entropy_backward", c2)


@given(st.data())
@FUZZ
def test_dropout(data):
    c = Case(data.draw)
    c.value(st.one_of(st.integers(0, 5), _SHAPES), [-1, 1.5, "3", (2, -1)])
    _real(c, 0.0, 1.0)
    c.value(st.integers(0, 2**64 - 1), [-1, 2**64, 1.0, None])
    _check_function("dropout_mask", c)

    c2 = Case(data.draw)
    shape = data.draw(_SHAPES)
    c2.array(shape)
    _real(c2, 0.0, 1.0)
    c2.value(st.booleans(), [1, None])  # train
    use_mask = data.draw(st.booleans())
    kw = {
        "seed": c2.value(st.integers(0, 2**63) if not use_mask else st.none(), [-5]),
        "mask": c2.raw(lambda rng: rng.random(shape) > 0.5) if use_mask else c2.value(st.none()),
    }
    _check_function("dropout_forward", c2, kw)

    c3 = Case(data.draw)
    c3.array(shape)
    mask_dtype = data.draw(st.sampled_from([bool, int]))
    c3.raw(lambda rng: (rng.random(shape) > 0.5).astype(mask_dtype))
    _check_function("dropout_backward", c3)


@given(st.data())
@FUZZ
@pytest.mark.parametrize("spatial", [False, True])
def test_batchnorm(spatial, data):
    name = "spatial_batchnorm" if spatial else "batchnorm"
    n, d = data.draw(st.integers(0, 4)), data.draw(st.integers(0, 4))
    xs = (n, d, data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3))) if spatial else (n, d)
    c = Case(data.draw)
    c.array(xs)
    c.array((d,))
    c.array((d,))
    with_stats = data.draw(st.booleans())
    stats = (c.array((d,), inplace=True), c.array((d,), inplace=True, positive=True)) if (
        with_stats) else (c.value(st.none()), c.value(st.none()))  # fmt: skip
    _real(c, 0.0, 1.0)
    c.value(st.floats(1e-6, 1e-2), [-1.0, None])
    c.value(st.booleans(), [0, "train"])
    _check_function(f"{name}_forward", c, inplace=stats if with_stats else ())

    c2 = Case(data.draw)
    c2.array(xs)
    c2.array(xs)
    c2.array((d,))
    c2.array((d,))
    c2.array((d,), positive=True)
    _check_function(f"{name}_backward", c2)


_UPDATES = {  # name: (state arrays, scalar strategies)
    "sgd_update": (0, [st.floats(0, 1)]),
    "momentum_update": (1, [st.floats(0, 1), st.floats(0, 1)]),
    "nesterov_update": (1, [st.floats(0, 1), st.floats(0, 1)]),
    "adagrad_update": (1, [st.floats(0, 1), st.floats(1e-8, 1e-3)]),
    "rmsprop_update": (1, [st.floats(0, 1), st.floats(0, 0.999), st.floats(1e-8, 1e-3)]),
    "adam_update": (
        2,
        [
            st.floats(0, 1),
            st.floats(0, 0.99),
            st.floats(0, 0.999),
            st.integers(1, 100),
            st.floats(1e-8, 1e-3),
        ],
    ),  # fmt: skip
}


@given(st.data())
@FUZZ
@pytest.mark.parametrize("name", list(_UPDATES))
def test_optimizer_updates(name, data):
    n_states, scalars = _UPDATES[name]
    shape = data.draw(_SHAPES)
    c = Case(data.draw)
    positions = [c.array(shape, inplace=True)]
    c.array(shape)
    positions += [c.array(shape, inplace=True, positive=True) for _ in range(n_states)]
    for strategy in scalars:
        c.value(strategy, [None, "0.1", True, -1, np.nan])
    _check_function(name, c, inplace=tuple(positions))


def test_every_public_function_is_fuzzed():
    fuzzed = {
        "im2col", "col2im", "conv2d_forward", "conv2d_relu_forward", "conv2d_backward",
        "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
        "gemm", "affine_forward", "affine_backward", "relu_forward", "relu_backward",
        "sigmoid_forward", "sigmoid_backward", "softmax", "softmax_cross_entropy_forward",
        "softmax_cross_entropy_backward", "dropout_mask", "dropout_forward", "dropout_backward",
        "batchnorm_forward", "batchnorm_backward", "spatial_batchnorm_forward",
        "spatial_batchnorm_backward", *_UPDATES,
    }  # fmt: skip
    assert set(fast.__all__) == set(ref.__all__) == fuzzed
    assert {c.__name__ for c in fast_layers.LAYER_CLASSES} == set(_LAYERS)


# ---------------------------------------------------------------------------------------------
# Layers: construct, forward, backward, and compare every output and gradient attribute
# ---------------------------------------------------------------------------------------------


def _layer_conv(c: Case, data) -> tuple[list[int], list[int], tuple[int, ...]]:
    xs, ws = _conv_case(c)
    ctor = [c.array(ws), c.array((ws[0],)), _stride(c), _pad(c)]
    return ctor, [c.array(xs)], ()


def _layer_pool(c: Case, data) -> tuple[list[int], list[int], tuple[int, ...]]:
    xs, win, stride, pad, _ = _pool_setup(c, data)
    ctor = [c.value(st.just(win), [0]), c.value(st.just(win)), c.value(st.just(stride)),
            c.value(st.just(pad))]  # fmt: skip
    return ctor, [c.array(xs)], ()


def _layer_affine(c: Case, data) -> tuple[list[int], list[int], tuple[int, ...]]:
    n, d, m = c.dim(0, 4), c.dim(0, 6), c.dim(0, 5)
    return [c.array((d, m)), c.array((m,))], [c.array((n, d))], ()


def _layer_unary(c: Case, data) -> tuple[list[int], list[int], tuple[int, ...]]:
    return [], [c.array(data.draw(_SHAPES))], ()


def _layer_softmax(c: Case, data) -> tuple[list[int], list[int], tuple[int, ...]]:
    n, m = c.dim(0, 5), c.dim(0, 6)
    return [], [c.array((n, m)), _labels(c, data, n, m)], ()


def _layer_dropout(c: Case, data) -> tuple[list[int], list[int], tuple[int, ...]]:
    ctor = [_real(c, 0.0, 1.0), c.value(st.integers(0, 2**32), [-1])]
    return ctor, [c.array(data.draw(_SHAPES)), c.value(st.booleans(), [1])], ()


def _layer_bn(spatial: bool) -> Callable[[Case, Any], tuple[list[int], list[int], tuple]]:
    def setup(c: Case, data) -> tuple[list[int], list[int], tuple[int, ...]]:
        n, d = c.dim(0, 4), c.dim(0, 4)
        xs = (n, d, c.dim(0, 3), c.dim(0, 3)) if spatial else (n, d)
        rm, rv = c.array((d,), inplace=True), c.array((d,), inplace=True, positive=True)
        ctor = [c.array((d,)), c.array((d,)), _real(c, 0.0, 1.0), rm, rv]
        return ctor, [c.array(xs), c.value(st.booleans(), [1])], (rm, rv)

    return setup


_LAYERS = {
    "Convolution": _layer_conv,
    "Pooling": _layer_pool,
    "AvgPooling": _layer_pool,
    "Affine": _layer_affine,
    "Relu": _layer_unary,
    "Sigmoid": _layer_unary,
    "SoftmaxWithLoss": _layer_softmax,
    "Dropout": _layer_dropout,
    "BatchNormalization": _layer_bn(False),
    "SpatialBatchNormalization": _layer_bn(True),
}
_GRADS = ("dW", "db", "dgamma", "dbeta")
_TRAIN_FLAG_LAYERS = ("Dropout", "BatchNormalization", "SpatialBatchNormalization")


@given(st.data())
@FUZZ
@pytest.mark.parametrize("name", list(_LAYERS))
def test_layer(name, data):
    c = Case(data.draw)
    ctor, fwd, inplace = _LAYERS[name](c, data)
    dout_seed = data.draw(st.integers(0, 2**32 - 1))

    def run(module: Any) -> Callable[[], tuple[str, Any]]:
        def go() -> tuple[str, Any]:
            built = c.build()
            kind, layer = _run(getattr(module, name), [built[i] for i in ctor], {})
            if kind == "error":
                return kind, layer
            kind, y = _run(layer.forward, [built[i] for i in fwd], {})
            if kind == "error":
                return kind, y
            if name == "SoftmaxWithLoss":
                dout: Any = 1.0
            else:
                dout = np.random.default_rng(dout_seed).standard_normal(np.shape(y))
                dout = dout.astype(np.asarray(y).dtype)
            inference = name in _TRAIN_FLAG_LAYERS and built[fwd[1]] is not True
            if inference:
                kind, dx = "ok", None  # inference: no backward state
            else:
                kind, dx = _run(layer.backward, [dout], {})
            if kind == "error":
                return kind, dx
            grads = tuple(getattr(layer, g, None) for g in _GRADS)
            return "ok", (y, dx, grads, *(np.array(built[i]) for i in inplace))

        return go

    _compare(name, c, run(ref_layers), run(fast_layers))
