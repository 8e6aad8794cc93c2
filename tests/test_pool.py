"""fastcnn._pool against the numpy reference: random geometries (padding, strides, non-square
windows), the 2x2 stride-2 fast path, ties, NaN/inf, non-contiguous inputs, empty batches,
thread-count determinism, and the same exceptions as the reference for bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import fastcnn
from fastcnn import _core
from fastcnn import _pool as F
from fastcnn.reference import functional as R

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-6, np.float64: 1e-12}


def _random_geometry(rng: np.random.Generator) -> tuple:
    """(x_shape, window, stride, pad) with 0 <= pad < window and a non-empty output."""
    while True:
        n, c = int(rng.integers(1, 9)), int(rng.integers(1, 65))
        h, w = (int(v) for v in rng.integers(1, 33, 2))
        win = tuple(int(v) for v in rng.integers(1, 6, 2))
        stride = tuple(int(v) for v in rng.integers(1, 4, 2))
        pad = (int(rng.integers(0, win[0])), int(rng.integers(0, win[1])))
        if h + 2 * pad[0] >= win[0] and w + 2 * pad[1] >= win[1] and n * c * h * w <= 60_000:
            return (n, c, h, w), win, stride, pad


def _compare_all(x, win, stride, pad, dy=None):
    """Runs all four ops on both backends and checks them; returns the fast results."""
    dt = x.dtype.type
    y, am = F.max_pool2d_forward(x, win, stride, pad)
    y_ref, am_ref = R.max_pool2d_forward(x, win, stride, pad)
    assert y.dtype == y_ref.dtype and am.dtype == am_ref.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)  # exact (NaN == NaN here)
    np.testing.assert_array_equal(am, am_ref)

    if dy is None:
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(dt)
    dx = F.max_pool2d_backward(dy, am_ref, x.shape, win, stride, pad)
    dx_ref = R.max_pool2d_backward(dy, am_ref, x.shape, win, stride, pad)
    assert dx.dtype == dx_ref.dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, dx_ref, rtol=RTOL[dt], atol=0)

    # uint8 argmax (what a network keeps): the same maxima and indices, the same gradient bits.
    y8, am8 = F.max_pool2d_forward(x, win, stride, pad, argmax_dtype=np.uint8)
    am8_ref = R.max_pool2d_forward(x, win, stride, pad, argmax_dtype=np.uint8)[1]
    assert am8.dtype == am8_ref.dtype == np.uint8
    assert y8.tobytes() == y.tobytes()
    np.testing.assert_array_equal(am8, am)
    np.testing.assert_array_equal(am8_ref, am)
    assert F.max_pool2d_backward(dy, am8, x.shape, win, stride, pad).tobytes() == dx.tobytes()

    a = F.avg_pool2d_forward(x, win, stride, pad)
    a_ref = R.avg_pool2d_forward(x, win, stride, pad)
    assert a.dtype == a_ref.dtype
    np.testing.assert_allclose(a, a_ref, rtol=RTOL[dt], atol=0)

    da = F.avg_pool2d_backward(dy, x.shape, win, stride, pad)
    da_ref = R.avg_pool2d_backward(dy, x.shape, win, stride, pad)
    assert da.dtype == da_ref.dtype and da.shape == x.shape
    np.testing.assert_allclose(da, da_ref, rtol=RTOL[dt], atol=0)
    return y, am, dx, a, da


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_geometries(dtype, rng):
    for _ in range(30):
        shape, win, stride, pad = _random_geometry(rng)
        x = rng.standard_normal(shape).astype(dtype)
        _compare_all(x, win, stride, pad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape",
    [
        (4, 16, 28, 28),  # DeepConvNet's pools at a smaller batch
        (3, 32, 14, 14),
        (5, 64, 7, 7),
        (2, 3, 17, 16),  # rows of exactly one 8-output block, around it, and two blocks + 1
        (2, 3, 16, 18),
        (2, 3, 9, 15),
        (1, 2, 33, 35),
        (2, 3, 1, 2),
        (1, 1, 2, 1),
    ],
)
def test_2x2_stride2_fast_path(dtype, shape, rng):
    # Odd sizes drop the last row/column, which must get zero gradient.
    x = rng.standard_normal(shape).astype(dtype)
    if min(shape[2:]) < 2:
        with pytest.raises(ValueError):
            R.max_pool2d_forward(x, 2, 2)
        with pytest.raises(ValueError):
            F.max_pool2d_forward(x, 2, 2)
        return
    _, _, dx, _, da = _compare_all(x, 2, 2, 0)
    if shape[2] % 2:
        assert not dx[:, :, -1].any() and not da[:, :, -1].any()
    if shape[3] % 2:
        assert not dx[..., -1].any() and not da[..., -1].any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "win,stride,pad", [(2, 2, 0), (3, 1, 1), (3, 2, 1), ((2, 3), (1, 2), (1, 0)), (5, 3, 4)]
)
def test_ties_first_max_wins(dtype, win, stride, pad, rng):
    # Few distinct integer values: most windows hold several equal maxima.
    x = rng.integers(-2, 2, size=(3, 5, 11, 10)).astype(dtype)
    x[0, 0] = 0  # a whole plane of ties
    # Integer dy: sums of overlapping contributions are exact, so dx must match exactly.
    dy = rng.integers(-4, 5, size=R.max_pool2d_forward(x, win, stride, pad)[0].shape)
    _, am, dx, _, _ = _compare_all(x, win, stride, pad, dy.astype(dtype))
    assert (am[0, 0] == 0).all() or pad != 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("win,stride,pad", [(2, 2, 0), (3, 1, 1), ((3, 2), (2, 1), (2, 1))])
def test_nan_and_inf_like_reference(dtype, win, stride, pad, rng):
    x = rng.standard_normal((2, 4, 9, 8)).astype(dtype)
    u = rng.random(x.shape)
    x[u < 0.08] = np.nan
    x[(u >= 0.08) & (u < 0.16)] = np.inf
    x[(u >= 0.16) & (u < 0.30)] = -np.inf
    x[1, 0] = np.nan  # windows of NaNs only: the first one wins
    x[1, 1] = -np.inf  # windows of -inf only, bordering padding: argmax as numpy picks it
    x[1, 2, ::2] = np.nan  # NaN after a finite max and before one
    y, am = F.max_pool2d_forward(x, win, stride, pad)
    y_ref, am_ref = R.max_pool2d_forward(x, win, stride, pad)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(am, am_ref)
    assert np.isnan(y[1, 0]).all() and (am[1, 0] == am_ref[1, 0]).all()
    # avg: NaN and inf propagate the same way (inf - inf = NaN included).
    with np.errstate(invalid="ignore"):
        a_ref = R.avg_pool2d_forward(x, win, stride, pad)
    np.testing.assert_array_equal(F.avg_pool2d_forward(x, win, stride, pad), a_ref)


def test_padding_never_wins_over_negative_values(rng):
    x = -1.0 - rng.random((2, 3, 5, 6))  # every real element is below the zero padding
    y, am = F.max_pool2d_forward(x, 3, 2, 1)
    assert (y < 0).all()
    np.testing.assert_array_equal(am, R.max_pool2d_forward(x, 3, 2, 1)[1])


def test_signed_zeros_match_reference():
    x = np.full((1, 2, 4, 4), -0.0)
    for win, stride in ((2, 2), (3, 1)):
        y, am = F.max_pool2d_forward(x, win, stride)
        y_ref, am_ref = R.max_pool2d_forward(x, win, stride)
        assert y.tobytes() == y_ref.tobytes() and np.array_equal(am, am_ref)
        assert F.avg_pool2d_forward(x, win, stride).tobytes() == (
            R.avg_pool2d_forward(x, win, stride).tobytes()
        )
        dy = np.full(y.shape, -0.0)  # the reference adds to +0, so dx holds +0
        fast = F.max_pool2d_backward(dy, am, x.shape, win, stride)
        assert fast.tobytes() == R.max_pool2d_backward(dy, am, x.shape, win, stride).tobytes()
        fast = F.avg_pool2d_backward(dy, x.shape, win, stride)
        assert fast.tobytes() == R.avg_pool2d_backward(dy, x.shape, win, stride).tobytes()
        assert not np.signbit(fast).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype, rng):
    base = rng.standard_normal((6, 7, 20, 22)).astype(dtype)
    views = [
        base[:, :, ::2, ::-1],
        base.transpose(1, 0, 2, 3),
        np.asfortranarray(base),
        base[1::2, 2:5, 3:, :-1],
    ]
    for x in views:
        for win, stride, pad in ((2, 2, 0), (3, 2, 1)):
            y_ref, am_ref = R.max_pool2d_forward(x, win, stride, pad)
            dy = rng.standard_normal(y_ref.shape + (2,)).astype(dtype)[..., 0]  # strided dy
            am_view = np.asfortranarray(am_ref.astype(np.int32))  # other int dtype, order
            x_copy = x.copy()
            _compare_all(x, win, stride, pad, dy)
            np.testing.assert_array_equal(
                F.max_pool2d_backward(dy, am_view, x.shape, win, stride, pad),
                R.max_pool2d_backward(dy, am_view, x.shape, win, stride, pad),
            )
            np.testing.assert_array_equal(x, x_copy)  # inputs are never written


@pytest.mark.parametrize("shape", [(0, 3, 6, 6), (2, 0, 6, 6)])
def test_empty(shape):
    x = np.zeros(shape, np.float32)
    y, am = F.max_pool2d_forward(x, 2, 2)
    y_ref, am_ref = R.max_pool2d_forward(x, 2, 2)
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype and am.dtype == am_ref.dtype
    assert F.avg_pool2d_forward(x, 3, 1, 1).shape == R.avg_pool2d_forward(x, 3, 1, 1).shape
    dx = F.max_pool2d_backward(y, am, shape, 2, 2)
    assert dx.shape == shape and dx.dtype == np.float32
    assert F.avg_pool2d_backward(y, shape, 2, 2).shape == shape


@pytest.mark.usefixtures("any_size_threads")
@pytest.mark.parametrize("win,stride,pad", [(2, 2, 0), (3, 1, 1), (4, 2, 3)])
def test_bitwise_identical_across_threads(win, stride, pad, rng):
    x = rng.standard_normal((3, 8, 17, 19)).astype(np.float32)
    y0 = R.max_pool2d_forward(x, win, stride, pad)[0]
    dy = rng.standard_normal(y0.shape).astype(np.float32)
    results = []
    for n in (1, 2):
        with fastcnn.threads(n):
            y, am = F.max_pool2d_forward(x, win, stride, pad)
            results.append(
                [
                    y,
                    am,
                    F.max_pool2d_backward(dy, am, x.shape, win, stride, pad),
                    F.avg_pool2d_forward(x, win, stride, pad),
                    F.avg_pool2d_backward(dy, x.shape, win, stride, pad),
                ]
            )
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


_X = np.zeros((2, 3, 6, 6), np.float32)
_DY = np.zeros((2, 3, 3, 3), np.float32)
_AM = np.zeros((2, 3, 3, 3), np.int64)

BAD_CALLS = [
    ("max_pool2d_forward", (_X[0], 2)),  # 3-D
    ("max_pool2d_forward", (_X.astype(np.complex64), 2)),
    ("max_pool2d_forward", (_X.astype(object), 2)),
    ("max_pool2d_forward", (None, 2)),
    ("max_pool2d_forward", (_X, 0)),
    ("max_pool2d_forward", (_X, 2.0)),
    ("max_pool2d_forward", (_X, True)),
    ("max_pool2d_forward", (_X, (2, 2, 2))),
    ("max_pool2d_forward", (_X, 2, 0)),
    ("max_pool2d_forward", (_X, 2, 2, 2)),  # pad == window
    ("max_pool2d_forward", (_X, 2, 2, -1)),
    ("max_pool2d_forward", (_X, 7)),  # window larger than the input
    ("avg_pool2d_forward", (_X, (1, 7))),
    ("avg_pool2d_forward", (_X, 3, 1, 3)),
    ("avg_pool2d_forward", (_X.astype(np.complex64), 2)),
    ("max_pool2d_backward", (_DY, _AM, _X.shape, 2, 1)),  # dy shape does not match
    ("max_pool2d_backward", (_DY, _AM.astype(np.float32), _X.shape, 2)),
    ("max_pool2d_backward", (_DY, _AM + 4, _X.shape, 2, 2)),  # argmax out of range
    ("max_pool2d_backward", (_DY, _AM - 1, _X.shape, 2, 2)),
    ("max_pool2d_backward", (_DY, _AM[:1], _X.shape, 2, 2)),
    ("max_pool2d_backward", (_DY, _AM.astype(bool), _X.shape, 2, 2)),
    ("max_pool2d_backward", (_DY.astype(np.complex128), _AM, _X.shape, 2, 2)),
    ("max_pool2d_backward", (_DY, _AM, (2, 3, 6), 2, 2)),
    ("max_pool2d_backward", (_DY, _AM, "2,3,6,6", 2, 2)),
    ("max_pool2d_backward", (_DY, _AM, (2, 3, 6, -6), 2, 2)),
    ("avg_pool2d_backward", (_DY, _X.shape, 2)),
    ("avg_pool2d_backward", (_DY, (2, 3, 6.0, 6), 2, 2)),
    ("avg_pool2d_backward", (_DY[0], _X.shape, 2, 2)),
    ("avg_pool2d_backward", (_DY, _X.shape, 2, 2, 2)),
]


@pytest.mark.parametrize(
    "name,args", BAD_CALLS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_CALLS)]
)
def test_bad_arguments_like_reference(name, args):
    with pytest.raises((TypeError, ValueError)) as ref:
        getattr(R, name)(*args)
    with pytest.raises(ref.type) as fast:
        getattr(F, name)(*args)
    assert str(fast.value) == str(ref.value)


def test_binding_checks_its_arrays():
    g = (2, 3, 6, 6, 3, 2, 2, 2, 2, 0, 0, 3, 3)
    x, y, am = np.zeros((2, 3, 6, 6), np.float32), _DY.copy(), _AM.copy()
    _core.max_pool2d_forward(x, y, am, g)
    with pytest.raises(TypeError):
        _core.max_pool2d_forward(x.astype(np.float64), y, am, g)
    with pytest.raises(TypeError):
        _core.max_pool2d_forward(x, y, am.astype(np.int32), g)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.avg_pool2d_forward(np.asfortranarray(x), y, g)
    with pytest.raises(ValueError, match="shape"):
        _core.avg_pool2d_forward(x[:1], y, g)
    with pytest.raises(ValueError, match="writeable"):
        y.flags.writeable = False
        _core.avg_pool2d_forward(x, y, g)
    with pytest.raises(ValueError, match="geometry"):
        _core.avg_pool2d_backward(_DY, x, (2, 3, 6, 6, 3, 2, 2, 2, 2, 0, 0, 4, 3))
    with pytest.raises(TypeError):
        _core.avg_pool2d_backward(_DY, x, g[:12])


def test_argmax_dtype_is_checked():
    x = np.zeros((1, 1, 20, 20), np.float32)
    for mod in (F, R):
        with pytest.raises(ValueError, match="argmax_dtype must be int64 or uint8, got int32"):
            mod.max_pool2d_forward(x, 2, 2, 0, argmax_dtype=np.int32)
        with pytest.raises(ValueError, match="argmax_dtype must be int64 or uint8"):
            mod.max_pool2d_forward(x, 2, 2, 0, argmax_dtype="bogus")
        # 17 x 17 = 289 window elements: uint8 cannot hold their indices
        with pytest.raises(ValueError, match="at most 256 elements, got window"):
            mod.max_pool2d_forward(x, 17, 1, 0, argmax_dtype=np.uint8)
        y, am = mod.max_pool2d_forward(x, 16, 1, 0, argmax_dtype=np.uint8)  # 256: fits
        assert am.dtype == np.uint8 and y.shape == (1, 1, 5, 5)


def test_kernel_rejects_uint8_argmax_for_a_large_window():
    # The binding checks what the Python face guarantees: uint8 only for windows that fit.
    x = np.zeros((1, 1, 20, 20), np.float32)
    geom = (1, 1, 20, 20, 1, 17, 17, 1, 1, 0, 0, 4, 4)
    with pytest.raises(ValueError, match="uint8 argmax needs a window of at most 256"):
        _core.max_pool2d_forward(x, np.empty((1, 1, 4, 4), np.float32),
                                 np.empty((1, 1, 4, 4), np.uint8), geom)  # fmt: skip
