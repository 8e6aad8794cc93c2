"""Fast conv2d_forward / conv2d_backward against fastcnn.reference: random shapes (batch 1-8,
channels 1-64, H/W 1-32, kernel 1-7, stride 1-3, pad 0-3, non-square), both dtypes, mixed
dtypes, non-contiguous inputs, every ISA, bitwise equality across thread counts, bad input;
and the algorithm lists: each algorithm pinned in turn, the pin's API and environment
variable, the record of which ran, `fastcnn info`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastcnn
from fastcnn import _config
from fastcnn import _conv as fast
from fastcnn._bench import network_shapes
from fastcnn.reference import functional as ref
from naive import TOL, assert_close

# The production minimums of output tiles for Winograd, read before any test changes them.
DEFAULT_WINOGRAD_MIN_TILES = _config.get_winograd_min_tiles()


@pytest.fixture(autouse=True)
def _winograd_on_small_shapes():
    """The tests here run Winograd on small shapes wherever fastcnn.winograd(True) allows it
    (by default calls with few 2x2 output tiles take the direct form)."""
    with _config.winograd_min_tiles(0, 0):
        yield


def _random_case(rng, max_c=64, max_hw=32):
    n = int(rng.integers(1, 9))
    c, k = int(rng.integers(1, max_c + 1)), int(rng.integers(1, max_c + 1))
    r, s = int(rng.integers(1, 8)), int(rng.integers(1, 8))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    ph, pw = int(rng.integers(0, 4)), int(rng.integers(0, 4))
    h = int(rng.integers(max(1, r - 2 * ph), max_hw + 1))
    w = int(rng.integers(max(1, s - 2 * pw), max_hw + 1))
    return (n, c, h, w), (k, c, r, s), (sh, sw), (ph, pw)


def _check_case(rng, xs, ws, stride, pad, dtype, bias=True):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype) if bias else None
    y = fast.conv2d_forward(x, w, b, stride, pad)
    assert_close(y, ref.conv2d_forward(x, w, b, stride, pad), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    got = fast.conv2d_backward(dy, x, w, stride, pad)
    want = ref.conv2d_backward(dy, x, w, stride, pad)
    for a, e in zip(got, want):
        assert_close(a, e, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_shapes_match_reference(dtype, conv_algorithm, rng):
    for _ in range(40):
        xs, ws, stride, pad = _random_case(rng, max_c=16, max_hw=20)
        _check_case(rng, xs, ws, stride, pad, dtype, bias=bool(rng.integers(0, 2)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_wide_channels_match_reference(dtype, rng):
    for _ in range(4):
        xs, ws, stride, pad = _random_case(rng)
        _check_case(rng, xs, ws, stride, pad, dtype)


def test_every_isa_matches_reference(isa, conv_algorithm, rng):
    for dtype in (np.float32, np.float64):
        for xs, ws, stride, pad in [
            ((2, 3, 9, 11), (5, 3, 3, 3), 1, 1),
            ((3, 7, 13, 6), (17, 7, 2, 4), (2, 1), (1, 3)),
            ((1, 1, 28, 28), (16, 1, 3, 3), 1, 1),
            ((3, 19, 9, 7), (21, 19, 3, 3), 1, 2),  # Winograd: ragged channels, odd edges
        ]:
            _check_case(rng, xs, ws, stride, pad, dtype)


@pytest.mark.parametrize(
    "xs,ws,stride,pad",
    [
        ((1, 1, 1, 1), (1, 1, 1, 1), 1, 0),
        ((2, 3, 1, 1), (4, 3, 3, 3), 1, 1),  # only the centre tap sees data
        ((2, 2, 5, 5), (3, 2, 5, 5), 1, 0),  # 1x1 output
        ((1, 2, 4, 9), (3, 2, 7, 2), 3, 3),  # kernel larger than the input, big pad
        ((3, 2, 8, 8), (2, 2, 1, 1), 2, 0),  # 1x1 kernel with stride
    ],
)
def test_edge_geometries(xs, ws, stride, pad, rng):
    for dtype in (np.float32, np.float64):
        _check_case(rng, xs, ws, stride, pad, dtype)


def test_mixed_dtypes_promote_like_the_reference(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4).astype(np.float32)
    y = fast.conv2d_forward(x, w, b, 1, 1)
    assert y.dtype == np.float64
    assert_close(y, ref.conv2d_forward(x, w, b, 1, 1), np.float64)
    dx, dw, db = fast.conv2d_backward(y.astype(np.float32), x, w.astype(np.float32), 1, 1)
    assert dx.dtype == dw.dtype == db.dtype == np.float32


def test_non_contiguous_inputs_and_inputs_untouched(rng):
    big = rng.standard_normal((4, 6, 20, 20))
    x = big[::2, 1::2, ::2, 1::2]  # (2, 3, 10, 10), strided on every axis
    w = rng.standard_normal((3, 5, 3, 3)).transpose(1, 0, 2, 3)  # (5, 3, 3, 3) view
    x_copy, w_copy = x.copy(), w.copy()
    y = fast.conv2d_forward(x, w, None, 1, 1)
    assert_close(y, ref.conv2d_forward(x, w, None, 1, 1), np.float64)
    dy = rng.standard_normal(y.shape)[:, ::-1]
    for a, e in zip(fast.conv2d_backward(dy, x, w, 1, 1), ref.conv2d_backward(dy, x, w, 1, 1)):
        assert_close(a, e, np.float64)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(w, w_copy)


def test_need_dx_false(rng):
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((2, 3, 3, 3))
    dy = rng.standard_normal((2, 2, 3, 3))
    dx, dw, db = fast.conv2d_backward(dy, x, w, need_dx=False)
    assert dx is None
    _, dw_ref, db_ref = ref.conv2d_backward(dy, x, w)
    assert_close(dw, dw_ref, np.float64)
    assert_close(db, db_ref, np.float64)


# DeepConvNet's six convolutions at batch 13, as its forward pass runs them (the benchmarks'
# shapes): the forward runs over row-padded columns (conv1, conv2) or over pixel rows in groups
# of images (conv3-conv6), and 13 images leave a partial group on every thread count.
DEEP_CONVS = [(s.c, s.k, s.h, s.pad) for s in network_shapes()[0].values()]


def test_benchmark_shapes_are_the_networks():
    """conv4 pads by 2, so conv5 and conv6 run on 8x8 (not the 7x7 a hand-kept table had)."""
    convs, pools = network_shapes()
    assert [(s.c, s.k, s.h, s.w, s.size, s.stride, s.pad) for s in convs.values()] == [
        (1, 16, 28, 28, 3, 1, 1),
        (16, 16, 28, 28, 3, 1, 1),
        (16, 32, 14, 14, 3, 1, 1),
        (32, 32, 14, 14, 3, 1, 2),
        (32, 64, 8, 8, 3, 1, 1),
        (64, 64, 8, 8, 3, 1, 1),
    ]
    assert list(pools) == ["pool1_16x28x28", "pool2_32x16x16", "pool3_64x8x8"]
    assert list(convs)[4] == "conv5_32to64_8"


@pytest.mark.parametrize("c, k, hw, pad", DEEP_CONVS)
def test_deep_conv_net_shapes_match_reference(c, k, hw, pad, conv_algorithm, rng):
    for dtype in (np.float32, np.float64):
        _check_case(rng, (13, c, hw, hw), (k, c, 3, 3), 1, pad, dtype)


@pytest.mark.usefixtures("any_size_threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "xs, ws", [((13, 8, 15, 15), (16, 8, 3, 3)), ((13, 32, 7, 7), (64, 32, 3, 3))]
)
def test_bitwise_identical_for_any_thread_count(dtype, xs, ws, conv_algorithm, rng):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    results = []
    for nt in (1, 2, 3):
        with fastcnn.threads(nt):
            y = fast.conv2d_forward(x, w, b, 1, 1)
            results.append((y, *fast.conv2d_backward(y, x, w, 1, 1)))
    for other in results[1:]:
        for a, e in zip(other, results[0]):
            np.testing.assert_array_equal(a, e)


# Winograd F(2x2, 3x3): odd output sizes (edge tiles with one column or row), padding beyond
# the window (whole tiles of zeros), the channel threshold, ragged vector tails, images wide
# enough that a block holds a single row of tiles, and batches whose blocks span images.
WINOGRAD_CASES = [
    ((3, 8, 5, 6), (32, 8, 3, 3), 1, 0),
    ((2, 9, 7, 9), (29, 9, 3, 3), 1, (1, 3)),
    ((5, 16, 1, 2), (24, 16, 3, 3), 1, (2, 1)),
    ((1, 40, 66, 70), (72, 40, 3, 3), 1, 1),
    ((7, 33, 3, 3), (17, 33, 3, 3), 1, 1),
]


@pytest.mark.parametrize("xs, ws, stride, pad", WINOGRAD_CASES)
def test_winograd_matches_reference_and_runs(xs, ws, stride, pad, rng):
    """Winograd agrees with the reference (and so with the direct form) within the tolerance,
    forward, dx and dW, for both dtypes, and it is really the path taken: its rounding
    differs from the direct form's."""
    if fastcnn.get_isa() == "generic":
        pytest.skip("Winograd runs only with the SIMD (AVX2, AVX-512) micro-kernels")
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        with fastcnn.winograd(True):
            y = fast.conv2d_forward(x, w, b, stride, pad)
        with fastcnn.winograd(False):
            y_direct = fast.conv2d_forward(x, w, b, stride, pad)
        want = ref.conv2d_forward(x, w, b, stride, pad)
        assert_close(y, want, dtype)
        assert_close(y_direct, want, dtype)
        assert not np.array_equal(y, y_direct)
        dy = rng.standard_normal(y.shape).astype(dtype)
        with fastcnn.winograd(True):
            got = fast.conv2d_backward(dy, x, w, stride, pad)
        with fastcnn.winograd(False):
            direct = fast.conv2d_backward(dy, x, w, stride, pad)
        for a, d, e in zip(got, direct, ref.conv2d_backward(dy, x, w, stride, pad)):
            assert_close(a, e, dtype)
            assert_close(d, e, dtype)
        if max(np.broadcast_to(pad, 2)) < 3 and xs[1] >= 16:
            # dx runs as a (Winograd) forward convolution with xs[1] output channels
            assert not np.array_equal(got[0], direct[0])
        assert not np.array_equal(got[1], direct[1])  # dW


@pytest.mark.usefixtures("any_size_threads")
@pytest.mark.parametrize("which", ["forward", "dW"])
def test_winograd_blocks_inside_the_padding(which, rng):
    """Padding of 4 or more rows puts whole rows of tiles in the padding; with several threads
    (or a single tile row per block) a block can start or end there."""
    for xs, ws, pad, threads in [
        ((1, 16, 1, 3), (16, 16, 3, 3), (5, 0), 5),
        ((1, 16, 1, 3), (16, 16, 3, 3), (4, 0), 4),
        ((2, 16, 3, 5), (17, 16, 3, 3), (4, 1), 3),
        ((1, 130, 1, 70), (130, 130, 3, 3), (5, 0), 1),
    ]:
        x = rng.standard_normal(xs)
        w = rng.standard_normal(ws)
        with fastcnn.threads(threads), fastcnn.winograd(True):
            if which == "forward":
                assert_close(
                    fast.conv2d_forward(x, w, None, 1, pad),
                    ref.conv2d_forward(x, w, None, 1, pad),
                    np.float64,
                )
            else:
                dy = rng.standard_normal(ref.conv2d_forward(x, w, None, 1, pad).shape)
                got = fast.conv2d_backward(dy, x, w, 1, pad, need_dx=False)
                want = ref.conv2d_backward(dy, x, w, 1, pad)
                assert_close(got[1], want[1], np.float64)
                assert_close(got[2], want[2], np.float64)


@pytest.mark.parametrize("dtype, big", [(np.float32, 1e38), (np.float64, 5e307)])
def test_winograd_overflow_falls_back_to_the_direct_form(dtype, big, rng):
    """Finite values near the type's maximum can overflow inside Winograd's transforms where
    the direct sums do not: those calls run the direct form, so every output the reference
    computes as finite is finite here too."""
    x = np.zeros((1, 16, 4, 4), dtype)
    x[:, 0] = big  # direct sums reach 3 * big; Winograd's input transform 4 * big (> max)
    x[:, 0, 1::2] *= -1
    w = np.ones((16, 16, 3, 3), dtype)
    dy = rng.standard_normal((1, 16, 4, 4)).astype(dtype) / big  # dW = sum dy * x stays finite
    with np.errstate(over="ignore", invalid="ignore"), fastcnn.winograd(True):
        y = fast.conv2d_forward(x, w, None, 1, 1)
        want = ref.conv2d_forward(x, w, None, 1, 1)
        assert np.isfinite(want).all()
        _assert_same_non_finite([y], [want], dtype)
        got = fast.conv2d_backward(dy, x, w, 1, 1)
        want = ref.conv2d_backward(dy, x, w, 1, 1)
        assert all(np.isfinite(e).all() for e in want)
        _assert_same_non_finite(got, want, dtype)
        # With a fused ReLU a -inf from the overflow would be clamped to 0 and look finite.
        x2 = np.zeros((1, 8, 4, 4), dtype)
        x2[0, 0, 0, 0] = x2[0, 0, 2, 2] = 2 * big
        w2 = np.zeros((16, 8, 3, 3), dtype)
        w2[:, 0, 0, 0], w2[:, 0, 2, 2] = -0.5, 1.0
        want = np.maximum(ref.conv2d_forward(x2, w2, None, 1, 0), 0)
        assert np.isfinite(want).all()
        np.testing.assert_allclose(
            fast.conv2d_relu_forward(x2, w2, None, 1, 0), want, rtol=TOL[dtype], atol=0
        )


def test_empty_batch(conv_algorithm):
    """A batch of no images gives empty outputs and zero weight gradients, like the reference."""
    x = np.zeros((0, 16, 8, 8), np.float32)
    w = np.ones((16, 16, 3, 3), np.float32)
    assert fast.conv2d_forward(x, w, None, 1, 1).shape == (0, 16, 8, 8)
    dy = np.zeros((0, 16, 8, 8), np.float32)
    for a, e in zip(fast.conv2d_backward(dy, x, w, 1, 1), ref.conv2d_backward(dy, x, w, 1, 1)):
        assert a.shape == e.shape
        np.testing.assert_array_equal(a, e)


def test_winograd_needs_the_simd_kernels(rng):
    """With the portable scalar micro-kernels (slower there), convolutions take the direct form."""
    x = rng.standard_normal((2, 16, 9, 9)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    old = fastcnn.get_isa()
    try:
        fastcnn.set_isa("generic")
        with fastcnn.winograd(True):
            y = fast.conv2d_forward(x, w, None, 1, 1)
        with fastcnn.winograd(False):
            np.testing.assert_array_equal(y, fast.conv2d_forward(x, w, None, 1, 1))
    finally:
        fastcnn.set_isa(old)


def test_winograd_switch_and_its_fallbacks(rng):
    """set_winograd validates its argument; off, and for shapes Winograd does not take
    (stride 2, 5x5 windows, few channels; for the forward fewer than 16 output channels),
    results equal the direct form's bits."""
    with pytest.raises(TypeError, match="enabled must be a bool"):
        fastcnn.set_winograd(1)  # type: ignore[arg-type]
    for xs, ws, stride in [
        ((2, 16, 9, 9), (16, 16, 3, 3), 2),
        ((2, 16, 9, 9), (16, 16, 5, 5), 1),
        ((2, 4, 9, 9), (16, 4, 3, 3), 1),
        ((2, 16, 9, 9), (4, 16, 3, 3), 1),
        ((2, 64, 9, 9), (8, 64, 3, 3), 1),
    ]:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        with fastcnn.winograd(True):
            y = fast.conv2d_forward(x, w, None, stride, 1)
        with fastcnn.winograd(False):
            np.testing.assert_array_equal(y, fast.conv2d_forward(x, w, None, stride, 1))


def _raises_like_reference(fn_name, *args, **kwargs):
    with pytest.raises((ValueError, TypeError)) as want:
        getattr(ref, fn_name)(*args, **kwargs)
    with pytest.raises(want.type) as got:
        getattr(fast, fn_name)(*args, **kwargs)
    assert str(got.value) == str(want.value)


def test_bad_input_is_rejected_like_the_reference():
    x = np.ones((2, 3, 5, 5))
    w = np.ones((4, 3, 3, 3))
    _raises_like_reference("conv2d_forward", x, np.ones((4, 2, 3, 3)))  # channel mismatch
    _raises_like_reference("conv2d_forward", x[0], w)  # wrong ndim
    _raises_like_reference("conv2d_forward", x, np.ones((4, 3, 7, 7)))  # output size <= 0
    _raises_like_reference("conv2d_forward", x, w, None, 0)  # stride 0
    _raises_like_reference("conv2d_forward", x, w, None, 1, -1)  # negative pad
    _raises_like_reference("conv2d_forward", x, w, np.ones(5))  # bias shape
    _raises_like_reference("conv2d_forward", x.astype(np.complex64), w)  # complex input
    _raises_like_reference("conv2d_forward", x, w, None, (1, 2, 3))  # bad pair
    _raises_like_reference("conv2d_backward", np.ones((2, 4, 2, 2)), x, w)  # dy shape
    _raises_like_reference("conv2d_backward", np.ones((2, 4, 3, 3)), x, w, need_dx=1)
    with pytest.raises(ValueError, match="pad must be at most"):
        fast.conv2d_forward(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), None, 1, 2**61)
    with pytest.raises(ValueError, match="overflow"):
        fast.conv2d_forward(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), None, 1, 2**31 - 1)


def _assert_same_non_finite(got, want, dtype):
    for a, e in zip(got, want):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        np.testing.assert_array_equal(np.isinf(a), np.isinf(e))
        fin = np.isfinite(e)
        np.testing.assert_allclose(
            a[fin],
            e[fin],
            rtol=0,
            atol=TOL[dtype] * max(1.0, float(np.abs(e[fin]).max(initial=0))),
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "xs, ws, stride, pad",
    [
        ((2, 8, 4, 4), (3, 8, 3, 3), 1, 0),
        ((2, 16, 6, 5), (4, 16, 3, 3), 1, 1),
        ((1, 2, 5, 5), (3, 2, 3, 3), 1, 1),
        ((3, 16, 12, 12), (16, 16, 3, 3), 1, 1),  # forward over row-padded columns
        ((3, 8, 7, 7), (64, 8, 3, 3), 1, 1),  # forward over pixel rows
        ((2, 4, 9, 8), (5, 4, 3, 3), 2, 1),  # strided
    ],
)
def test_non_finite_values_stay_where_the_reference_has_them(
    xs, ws, stride, pad, dtype, conv_algorithm, rng
):
    """inf/NaN in x or w reach exactly the outputs the reference's sums reach: the fast paths
    that compute over padding (row-padded forward columns, dx as a forward convolution) must
    not turn 0 * inf into NaN elsewhere, and Winograd's transforms must not turn inf - inf
    into NaN (it hands such inputs to the direct form)."""
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    x[0, 0, 1, -1] = np.inf
    x[-1, -1, -1, 0] = np.nan
    dy = rng.standard_normal(ref.conv2d_forward(np.zeros(xs, dtype), w, None, stride, pad).shape)
    dy = dy.astype(dtype)
    w_inf = w.copy()
    w_inf[0, 0, 0, 0] = np.inf
    b = rng.standard_normal(ws[0]).astype(dtype)
    x_finite = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0)
    dy_inf = dy.copy()
    dy_inf[-1, 0, 0, -1] = -np.inf
    with np.errstate(invalid="ignore", over="ignore"):
        for xx, ww, dd in ((x, w, dy), (x_finite, w_inf, dy), (x_finite, w, dy_inf)):
            _assert_same_non_finite(
                [fast.conv2d_forward(xx, ww, b, stride, pad)],
                [ref.conv2d_forward(xx, ww, b, stride, pad)],
                dtype,
            )
            got = fast.conv2d_backward(dd, xx, ww, stride, pad)
            want = ref.conv2d_backward(dd, xx, ww, stride, pad)
            _assert_same_non_finite(got, want, dtype)


@pytest.mark.skipif(fastcnn.get_isa() == "generic", reason="Winograd needs SIMD kernels")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("where", [0, 5, 16, 17, -1])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
def test_one_non_finite_weight_anywhere_keeps_winograd_away(dtype, where, value, rng):
    """The finiteness check of the weights (which keeps Winograd's transforms from turning
    inf - inf into NaN) sees a single inf or NaN wherever it is: the first element, inside a
    vector, at a vector boundary, the last element (16 * 16 * 9 = 2304 weights: whole vectors
    of 16; 3 * 5 * 9 = 135: the last 7 past them). Winograd pinned runs on finite weights and
    hands these to a direct form."""
    x = rng.standard_normal((4, 16, 12, 12)).astype(dtype)
    for ws in ((16, 16, 3, 3), (5, 3, 3, 3)):
        w = rng.standard_normal(ws).astype(dtype)
        xx = x[:, : ws[1]]
        with fastcnn.conv_algorithm("winograd_f2x2_3x3"):
            fast.conv2d_forward(xx, w, None, 1, 1)
            assert fastcnn.last_conv_algorithms()["forward"] == "winograd_f2x2_3x3"
            w.reshape(-1)[where] = value
            with np.errstate(invalid="ignore", over="ignore"):
                _assert_same_non_finite(
                    [fast.conv2d_forward(xx, w, None, 1, 1)],
                    [ref.conv2d_forward(xx, w, None, 1, 1)],
                    dtype,
                )
            assert "winograd" not in fastcnn.last_conv_algorithms()["forward"]


def test_core_rejects_a_window_larger_than_the_padded_input():
    """The binding re-checks geometry: (h + 2*ph - r) // sh + 1 == 1 for h=1, r=2, sh=2 in
    C++'s truncating division, but the 2-row window does not fit a 1-row input."""
    from fastcnn import _core

    x = np.zeros((1, 1, 1, 1), np.float32)
    w = np.zeros((1, 1, 2, 2), np.float32)
    y = np.zeros((1, 1, 1, 1), np.float32)
    geom = (1, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="inconsistent window geometry"):
        _core.conv2d_forward(x, w, None, y, geom, False)


@pytest.mark.parametrize("n, winograd_runs", [(1, False), (3, False), (16, True)])
def test_winograd_only_where_enough_tiles_amortise_the_weight_transforms(n, winograd_runs, rng):
    """By default a call with few 2x2 output tiles (DeepConvNet's conv6, 64 -> 64 at 8x8: 16 per
    image) takes the direct form, whose fixed cost is lower; from 16 images (256 tiles) it takes
    Winograd, which rounds differently."""
    if fastcnn.get_isa() == "generic":
        pytest.skip("Winograd needs the SIMD kernels")
    x = rng.standard_normal((n, 64, 8, 8)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((n, 64, 8, 8)).astype(np.float32)
    with _config.winograd_min_tiles(*DEFAULT_WINOGRAD_MIN_TILES):
        y = fast.conv2d_forward(x, w, None, 1, 1)
        _, dw, _ = fast.conv2d_backward(dy, x, w, 1, 1, need_dx=False)
        with fastcnn.winograd(False):
            y_direct = fast.conv2d_forward(x, w, None, 1, 1)
            _, dw_direct, _ = fast.conv2d_backward(dy, x, w, 1, 1, need_dx=False)
    assert_close(y, ref.conv2d_forward(x, w, None, 1, 1), np.float32)
    assert np.array_equal(y, y_direct) is not winograd_runs
    assert np.array_equal(dw, dw_direct) is not winograd_runs


@pytest.mark.parametrize("n, winograd_runs", [(1, False), (16, True)])
def test_the_record_names_the_default_choice(n, winograd_runs, rng):
    """With the production minimums, conv6 (64 -> 64 at 8x8) takes a direct form on one image
    and Winograd on 16, in all three passes, and last_conv_algorithms says so."""
    if fastcnn.get_isa() == "generic":
        pytest.skip("Winograd needs the SIMD kernels")
    x = rng.standard_normal((n, 64, 8, 8)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    with _config.winograd_min_tiles(*DEFAULT_WINOGRAD_MIN_TILES):
        y = fast.conv2d_forward(x, w, None, 1, 1)
        fast.conv2d_backward(y, x, w, 1, 1)
    last = fastcnn.last_conv_algorithms()
    assert set(last) == {"forward", "backward_data", "backward_weights"}
    for conv_pass, name in last.items():
        assert (name == "winograd_f2x2_3x3") is winograd_runs, conv_pass
        assert name in fastcnn.conv_algorithms()[conv_pass]


def test_the_lists_end_with_an_algorithm_for_every_call():
    lists = fastcnn.conv_algorithms()
    assert lists == {
        "forward": ["winograd_f4x4_3x3", "winograd_f2x2_3x3", "direct_columns", "direct_pixels"],
        "backward_data": [
            "winograd_f4x4_3x3",
            "winograd_f2x2_3x3",
            "direct_columns",
            "direct_pixels",
            "col2im_gemm",
        ],
        "backward_weights": ["winograd_f2x2_3x3", "direct_pixels"],
    }
    assert fastcnn.config()["conv_algorithms"] == lists


def _passes_ran(rng, xs, ws, stride, pad, dtype=np.float64):
    """Runs forward and backward on random operands, checks them against the reference, and
    returns what each pass ran."""
    _check_case(rng, xs, ws, stride, pad, dtype)
    return fastcnn.last_conv_algorithms()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_algorithm_of_every_pass_runs_where_pinned(isa, dtype, rng):
    """Pinned, each algorithm runs in every pass whose list has it, on a shape it supports, with
    every ISA (Winograd too, with the generic kernels, which the default order never picks;
    and with channel counts below its break-evens), and matches the reference."""
    lists = fastcnn.conv_algorithms()
    for xs, ws in [((3, 16, 9, 8), (16, 16, 3, 3)), ((2, 3, 6, 7), (2, 3, 3, 3))]:
        for name in dict.fromkeys(n for names in lists.values() for n in names):
            with fastcnn.conv_algorithm(name), _config.winograd_min_tiles(0, 0):
                ran = _passes_ran(rng, xs, ws, 1, 1, dtype)
            for conv_pass, names in lists.items():
                if name in names:
                    assert ran[conv_pass] == name, (conv_pass, name, xs)


@pytest.mark.parametrize(
    "name, xs, ws, stride, pad, conv_pass",
    [
        ("direct_columns", (2, 4, 9, 9), (5, 4, 3, 3), 2, 1, "forward"),  # needs unit strides
        ("winograd_f2x2_3x3", (2, 4, 9, 9), (5, 4, 5, 5), 1, 1, "forward"),  # needs 3x3
        ("winograd_f2x2_3x3", (2, 4, 9, 9), (5, 4, 5, 5), 1, 1, "backward_weights"),
        ("direct_pixels", (2, 16, 9, 9), (16, 16, 3, 3), 2, 1, "backward_data"),  # no flip
        ("direct_columns", (2, 16, 9, 9), (16, 16, 3, 3), 1, 3, "backward_data"),  # pad >= R
    ],
)
def test_a_pin_that_cannot_run_leaves_the_choice_to_the_default_order(
    name, xs, ws, stride, pad, conv_pass, rng
):
    with _config.winograd_min_tiles(0, 0):
        default = _passes_ran(rng, xs, ws, stride, pad)
        with fastcnn.conv_algorithm(name):
            pinned = _passes_ran(rng, xs, ws, stride, pad)
    assert pinned[conv_pass] != name
    assert pinned[conv_pass] == default[conv_pass]


def test_winograd_switched_off_does_not_run_even_pinned(rng):
    with fastcnn.winograd(False), fastcnn.conv_algorithm("winograd_f2x2_3x3"):
        ran = _passes_ran(rng, (2, 16, 9, 9), (16, 16, 3, 3), 1, 1)
    assert "winograd_f2x2_3x3" not in ran.values()


def test_winograd_declines_non_finite_data_and_the_record_shows_it(rng):
    """Pinned Winograd meets an infinity in x mid-run: the next algorithm of the list computes
    the forward and the weight gradient, and the record names it."""
    x = rng.standard_normal((2, 16, 6, 6))
    x[0, 0, 2, 2] = np.inf
    w = rng.standard_normal((16, 16, 3, 3))
    with (
        np.errstate(invalid="ignore", over="ignore"),
        fastcnn.conv_algorithm("winograd_f2x2_3x3"),
        _config.winograd_min_tiles(0, 0),
    ):
        y = fast.conv2d_forward(x, w, None, 1, 1)
        _assert_same_non_finite([y], [ref.conv2d_forward(x, w, None, 1, 1)], np.float64)
        assert fastcnn.last_conv_algorithms()["forward"] != "winograd_f2x2_3x3"
        dy = rng.standard_normal(y.shape)
        got = fast.conv2d_backward(dy, x, w, 1, 1)
        _assert_same_non_finite(got, ref.conv2d_backward(dy, x, w, 1, 1), np.float64)
        ran = fastcnn.last_conv_algorithms()
        assert ran["backward_weights"] == "direct_pixels"
        assert ran["backward_data"] == "winograd_f2x2_3x3"  # dy and w are finite


def test_the_record_is_per_thread(rng):
    fast.conv2d_forward(rng.standard_normal((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), None, 1, 1)
    assert fastcnn.last_conv_algorithms()["forward"] is not None
    seen = []
    t = threading.Thread(target=lambda: seen.append(fastcnn.last_conv_algorithms()))
    t.start()
    t.join()
    assert seen == [{"forward": None, "backward_data": None, "backward_weights": None}]


def test_pin_api_validates_and_restores():
    assert fastcnn.get_conv_algorithm() is None
    with fastcnn.conv_algorithm("direct_pixels"):
        assert fastcnn.get_conv_algorithm() == "direct_pixels"
        assert fastcnn.config()["conv_algorithm"] == "direct_pixels"
        with fastcnn.conv_algorithm(None):
            assert fastcnn.get_conv_algorithm() is None
        assert fastcnn.get_conv_algorithm() == "direct_pixels"
    assert fastcnn.get_conv_algorithm() is None
    known = "winograd_f4x4_3x3, winograd_f2x2_3x3, direct_columns, direct_pixels, col2im_gemm"
    with pytest.raises(
        ValueError, match=f"unknown convolution algorithm 'im2col' \\(known: {known}\\)"
    ):
        fastcnn.set_conv_algorithm("im2col")
    with pytest.raises(TypeError, match="name must be a str or None"):
        fastcnn.set_conv_algorithm(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown"), fastcnn.conv_algorithm("winograd"):
        pass  # pragma: no cover - the pin fails on entry
    assert fastcnn.get_conv_algorithm() is None


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def test_the_environment_variable_pins_at_import():
    code = (
        "import numpy as np, fastcnn; from fastcnn import functional as F;"
        "F.conv2d_forward(np.ones((1, 16, 6, 6)), np.ones((16, 16, 3, 3)), None, 1, 1);"
        "print(fastcnn.get_conv_algorithm(), fastcnn.last_conv_algorithms()['forward'])"
    )
    res = _run(code, FASTCNN_CONV_ALGORITHM="direct_pixels")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["direct_pixels", "direct_pixels"]
    res = _run("import fastcnn; print(fastcnn.get_conv_algorithm())", FASTCNN_CONV_ALGORITHM="")
    assert res.stdout.split() == ["None"]
    res = _run("import fastcnn; fastcnn.get_isa()", FASTCNN_CONV_ALGORITHM="fft")
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last == (
        "ValueError: environment variable FASTCNN_CONV_ALGORITHM: unknown convolution "
        "algorithm 'fft' (known: winograd_f4x4_3x3, winograd_f2x2_3x3, direct_columns, "
        "direct_pixels, col2im_gemm)"
    )


def test_info_shows_the_lists_and_the_pin(capsys):
    from fastcnn import cli

    with fastcnn.conv_algorithm("col2im_gemm"):
        assert cli.main(["info"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("  conv") or line.startswith(" " * 19)] == [
        "  conv algorithms: forward:          "
        "winograd_f4x4_3x3 > winograd_f2x2_3x3 > direct_columns > direct_pixels",
        "                   backward_data:    "
        "winograd_f4x4_3x3 > winograd_f2x2_3x3 > direct_columns > direct_pixels > col2im_gemm",
        "                   backward_weights: winograd_f2x2_3x3 > direct_pixels",
        "  conv pinned:     col2im_gemm",
    ]
    assert "  conv pinned:     col2im_gemm" in out
    assert cli.main(["info"]) == 0
    assert "  conv pinned:     none" in capsys.readouterr().out.splitlines()


def test_winograd_min_tiles_validation():
    with pytest.raises(ValueError, match=">= 0"):
        _config.set_winograd_min_tiles(-1, 0)
    with pytest.raises(TypeError, match="int"):
        _config.set_winograd_min_tiles(1.5, 0)  # type: ignore[arg-type]


# ---- Winograd F(4x4, 3x3) ------------------------------------------------------------------
# Its float32 error against a float64 reference on DeepConvNet's layers is at most 6.4e-6 of
# the output's largest value (docs/performance.md), 20x F(2x2)'s but 30x inside TOL, which the
# tests below hold it to. A wrong transform coefficient or a mishandled edge tile is O(1).
W4 = "winograd_f4x4_3x3"

# Output sizes P, Q = 1..9 (4x4 tiles with 1-4 rows and columns, one to three tiles) for pads
# 0, 1, 2 (so backward-data, a forward with pad 2 - pad, sees them too), batch 1 and 3, input
# and output channels 1, 3 and 17 (vector bodies and scalar tails), cycled over the cases.
W4_EDGE_CASES = [
    (p, q, pad) for pad in (0, 1, 2) for p in range(1, 10) for q in range(1, 10)
    if p + 2 - 2 * pad >= 1 and q + 2 - 2 * pad >= 1
]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd4_edge_shapes_match_reference(isa, dtype, rng):
    """Pinned, F(4x4) computes the forward and backward-data (the flipped forward) of every
    edge shape, with every ISA's kernels, within TOL of the reference, and the record names it."""
    channels = [(c, k) for c in (1, 3, 17) for k in (1, 3, 17)]
    with fastcnn.conv_algorithm(W4):
        for i, (p, q, pad) in enumerate(W4_EDGE_CASES):
            n = (1, 3)[i % 2]
            c, k = channels[i % len(channels)]
            x = rng.standard_normal((n, c, p + 2 - 2 * pad, q + 2 - 2 * pad)).astype(dtype)
            w = rng.standard_normal((k, c, 3, 3)).astype(dtype)
            b = rng.standard_normal(k).astype(dtype)
            y = fast.conv2d_forward(x, w, b, 1, pad)
            assert y.shape == (n, k, p, q)
            assert fastcnn.last_conv_algorithms()["forward"] == W4, (p, q, pad)
            assert_close(y, ref.conv2d_forward(x, w, b, 1, pad), dtype)
            dy = rng.standard_normal(y.shape).astype(dtype)
            dx = fast.conv2d_backward(dy, x, w, 1, pad)[0]
            assert fastcnn.last_conv_algorithms()["backward_data"] == W4, (p, q, pad)
            assert_close(dx, ref.conv2d_backward(dy, x, w, 1, pad)[0], dtype)


def test_winograd4_float32_error_on_the_networks_layers(rng):
    """On each DeepConvNet convolution (He-init weights, ReLU inputs), float32 F(4x4) stays
    within 2e-5 of the largest output of a float64 reference on the same values (3x its
    measured worst case, 6.4e-6), and F(2x2) within 2e-6: a transform that lost precision
    (e.g. a coefficient rounded to float32 where it need not be) would show here."""
    for s in network_shapes()[0].values():
        x = np.maximum(rng.standard_normal((2, s.c, s.h, s.w)), 0).astype(np.float32)
        w = (rng.standard_normal((s.k, s.c, 3, 3)) * np.sqrt(2 / (9 * s.c))).astype(np.float32)
        want = ref.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None, 1, s.pad)
        for name, bound in ((W4, 2e-5), ("winograd_f2x2_3x3", 2e-6)):
            with fastcnn.conv_algorithm(name):
                y = fast.conv2d_forward(x, w, None, 1, s.pad)
                assert fastcnn.last_conv_algorithms()["forward"] == name
            assert np.abs(y - want).max() <= bound * np.abs(want).max(), (name, s)


@pytest.mark.usefixtures("any_size_threads")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "xs, ws", [((13, 8, 15, 15), (16, 8, 3, 3)), ((13, 32, 8, 8), (64, 32, 3, 3))]
)
def test_winograd4_bitwise_identical_for_any_thread_count(dtype, xs, ws, rng):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    dy = rng.standard_normal((xs[0], ws[0], xs[2], xs[3])).astype(dtype)
    results = []
    with fastcnn.conv_algorithm(W4):
        for nt in (1, 2, 3):
            with fastcnn.threads(nt):
                y = fast.conv2d_forward(x, w, b, 1, 1)
                assert fastcnn.last_conv_algorithms()["forward"] == W4
                dx = fast.conv2d_backward(dy, x, w, 1, 1)[0]
                assert fastcnn.last_conv_algorithms()["backward_data"] == W4
                results.append((y, dx))
    for other in results[1:]:
        for a, e in zip(other, results[0]):
            np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize(
    "xs, ws, pad, forward, backward_data",
    [
        # conv2 at batch 8 (392 4x4 tiles): F(4x4) forward and backward-data
        ((8, 16, 28, 28), (16, 16, 3, 3), 1, W4, W4),
        # conv4 at batch 16: 16x16 out (F(4x4), 256 tiles); its backward-data has 14x14 out,
        # where 4x4 tiles waste what they save (F(2x2))
        ((16, 32, 14, 14), (32, 32, 3, 3), 2, W4, "winograd_f2x2_3x3"),
        # conv6 at batch 16: 64 4x4 tiles, too few for F(4x4)'s weight transform
        ((16, 64, 8, 8), (64, 64, 3, 3), 1, "winograd_f2x2_3x3", "winograd_f2x2_3x3"),
        # one input channel: no Winograd at all
        ((8, 1, 28, 28), (16, 1, 3, 3), 1, "direct_columns", "col2im_gemm"),
    ],
)
def test_winograd4_is_the_default_where_it_measured_faster(
    xs, ws, pad, forward, backward_data, rng
):
    if fastcnn.get_isa() == "generic":
        pytest.skip("Winograd needs the SIMD kernels")
    with _config.winograd_min_tiles(*DEFAULT_WINOGRAD_MIN_TILES):
        ran = _passes_ran(rng, xs, ws, 1, pad, np.float32)
    assert (ran["forward"], ran["backward_data"]) == (forward, backward_data)
    assert ran["backward_weights"] != W4  # F(4x4) has no weight gradient


def test_winograd4_declines_non_finite_data_and_the_record_shows_it(rng):
    x = rng.standard_normal((2, 16, 9, 9))
    x[1, 3, 4, 5] = -np.inf
    w = rng.standard_normal((16, 16, 3, 3))
    with np.errstate(invalid="ignore", over="ignore"), fastcnn.conv_algorithm(W4):
        y = fast.conv2d_forward(x, w, None, 1, 1)
        _assert_same_non_finite([y], [ref.conv2d_forward(x, w, None, 1, 1)], np.float64)
        assert fastcnn.last_conv_algorithms()["forward"] not in (W4, "winograd_f2x2_3x3")


def test_winograd4_switched_off_does_not_run_even_pinned(rng):
    with fastcnn.winograd(False), fastcnn.conv_algorithm(W4):
        ran = _passes_ran(rng, (2, 16, 9, 9), (16, 16, 3, 3), 1, 1)
    assert W4 not in ran.values()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
def test_zero_windows_give_exactly_the_bias(dtype, relu, conv_algorithm, rng):
    # Outputs whose 3x3 input window is all zeros are exactly the bias in the direct form (the
    # oracle). A rounding residue there (F(4x4)'s dense transforms leave one when other inputs
    # of the tile are not zero) flips a following ReLU: with a zero bias, DeepConvNet's bias
    # gradients at initialisation differed from the reference by 20 %. Half of each image is
    # background, as in MNIST, and the other half sparse, as after a ReLU.
    x = np.maximum(rng.standard_normal((6, 32, 8, 8)), 0).astype(dtype)
    x[:, :, :3] = 0
    w = rng.standard_normal((64, 32, 3, 3)).astype(dtype)
    for b in (np.zeros(64, dtype), rng.standard_normal(64).astype(dtype)):
        if relu:
            y = fast.conv2d_relu_forward(x, w, b, 1, 1)
        else:
            y = fast.conv2d_forward(x, w, b, 1, 1)
        window = ref.conv2d_forward((x != 0).astype(np.float64), np.ones((1, 32, 3, 3)), None, 1, 1)
        empty = np.broadcast_to(window == 0, y.shape)
        expect = np.broadcast_to((np.maximum(b, 0) if relu else b)[None, :, None, None], y.shape)
        assert empty.any()
        assert np.array_equal(y[empty], expect[empty])
