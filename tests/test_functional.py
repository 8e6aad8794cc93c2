"""fastcnn.functional against fastcnn.reference.functional: the same public names and
signatures, and the functions not covered by their own kernel-family tests (affine on the GEMM,
the fused conv + ReLU) checked against the oracle, across dtypes and thread counts."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import fastcnn
from fastcnn import functional as fast
from fastcnn.reference import functional as ref
from naive import assert_close


def test_same_public_names_as_the_reference():
    assert fast.__all__ == ref.__all__
    for name in ref.__all__:
        assert callable(getattr(fast, name)), name


@pytest.mark.parametrize("name", ref.__all__)
def test_same_signature_as_the_reference(name):
    assert inspect.signature(getattr(fast, name)).parameters.keys() == (
        inspect.signature(getattr(ref, name)).parameters.keys()
    )
    for p_fast, p_ref in zip(
        inspect.signature(getattr(fast, name)).parameters.values(),
        inspect.signature(getattr(ref, name)).parameters.values(),
    ):
        assert (p_fast.kind, p_fast.default) == (p_ref.kind, p_ref.default), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, m",
    [
        ((1, 1), 1),
        ((7, 13), 5),
        ((100, 64, 3, 3), 50),
        ((100, 50), 10),
        ((3, 2, 5), 17),
        ((1, 64, 4, 4), 100),  # one sample, dw an outer product on the kernel
        ((1, 10, 10), 30),  # one sample, below OUTER_PRODUCT_KERNEL_MIN weights
        ((2, 64, 4, 4), 32),  # two samples at AFFINE_KERNEL_MACS: the kernel's products
        ((2, 64, 4, 4), 31),  # just below it: numpy's
    ],
)
def test_affine_matches_reference(x_shape, m, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    d = int(np.prod(x_shape[1:]))
    w = rng.standard_normal((d, m)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    assert_close(fast.affine_forward(x, w, b), ref.affine_forward(x, w, b), dtype)
    dy = rng.standard_normal((x_shape[0], m)).astype(dtype)
    for got, want in zip(fast.affine_backward(dy, x, w), ref.affine_backward(dy, x, w)):
        assert_close(got, want, dtype)


def test_affine_mixed_dtypes_non_contiguous_and_inputs_untouched(rng):
    x = rng.standard_normal((6, 8, 2)).astype(np.float32)[:, ::2, :]  # (6, 4, 2) view
    w = rng.standard_normal((16, 3))[::2]  # float64, (8, 3) strided rows
    b = rng.standard_normal(3).astype(np.float32)
    copies = [a.copy() for a in (x, w, b)]
    y = fast.affine_forward(x, w, b)
    assert y.dtype == np.float64
    assert_close(y, ref.affine_forward(x, w, b), np.float64)
    dy = rng.standard_normal((6, 3)).astype(np.float32)
    for got, want in zip(fast.affine_backward(dy, x, w), ref.affine_backward(dy, x, w)):
        assert_close(got, want, np.float64)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize(
    "call",
    [
        lambda F: F.affine_forward(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros(5)),
        lambda F: F.affine_forward(np.zeros((2, 4)), np.zeros((4, 5)), np.zeros(4)),
        lambda F: F.affine_forward(np.zeros(4), np.zeros((4, 5)), np.zeros(5)),
        lambda F: F.affine_forward(np.zeros((2, 4), complex), np.zeros((4, 5)), np.zeros(5)),
        lambda F: F.affine_backward(np.zeros((2, 4)), np.zeros((2, 4)), np.zeros((4, 5))),
        lambda F: F.conv2d_relu_forward(np.zeros((1, 2, 3, 3)), np.zeros((1, 3, 3, 3))),
    ],
)
def test_bad_input_is_rejected_like_the_reference(call):
    with pytest.raises((ValueError, TypeError)) as want:
        call(ref)
    with pytest.raises(want.type) as got:
        call(fast)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_relu_forward_is_relu_of_conv(dtype, rng):
    for xs, ws, stride, pad in [
        ((2, 1, 28, 28), (16, 1, 3, 3), 1, 1),
        ((3, 16, 14, 14), (32, 16, 3, 3), 1, 2),
        ((1, 5, 9, 7), (4, 5, 2, 3), (2, 1), (1, 0)),
    ]:
        x = rng.standard_normal(xs).astype(dtype)
        w = rng.standard_normal(ws).astype(dtype)
        b = rng.standard_normal(ws[0]).astype(dtype)
        y = fast.conv2d_relu_forward(x, w, b, stride, pad)
        assert_close(y, ref.conv2d_relu_forward(x, w, b, stride, pad), dtype)
        assert (y >= 0).all()
        np.testing.assert_array_equal(y, np.maximum(fast.conv2d_forward(x, w, b, stride, pad), 0))
    x[0, 0, 0, 0] = np.nan  # NaN propagates through the fused ReLU as through relu_forward
    y = fast.conv2d_relu_forward(x, w, b, 1, 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref.conv2d_relu_forward(x, w, b, 1, 1)))
    assert np.isnan(y).any()


@pytest.mark.usefixtures("any_size_threads")
def test_affine_bitwise_identical_for_any_thread_count(rng):
    x = rng.standard_normal((100, 576)).astype(np.float32)
    w = rng.standard_normal((576, 50)).astype(np.float32)
    b = rng.standard_normal(50).astype(np.float32)
    dy = rng.standard_normal((100, 50)).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        with fastcnn.threads(n):
            results.append((fast.affine_forward(x, w, b), *fast.affine_backward(dy, x, w)))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


# The checked geometries are remembered per (shapes, settings) for plain ints: the same call
# again must give the same result, and a setting that only compares equal to a remembered one
# (a bool, a float, a numpy integer) must still be checked (and refused or normalised) as
# before; a call that failed must fail again.
def test_remembered_geometries_do_not_skip_checks():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y, am = fast.max_pool2d_forward(x, 2, 2, 0)
    y2, am2 = fast.max_pool2d_forward(x, np.int64(2), (2, 2), np.int32(0))
    assert np.array_equal(y, y2) and np.array_equal(am, am2)
    for bad in (True, 2.0):
        with pytest.raises(TypeError):
            fast.max_pool2d_forward(x, bad, 2, 0)
    with pytest.raises(TypeError):
        fast.conv2d_forward(x, w, None, stride=True, pad=1)
    c1 = fast.conv2d_forward(x, w, None, stride=1, pad=1)
    with pytest.raises(TypeError):
        fast.conv2d_forward(x, w, None, stride=True, pad=1)
    assert np.array_equal(c1, fast.conv2d_forward(x, w, None, stride=(1, 1), pad=(1, 1)))
    for _ in range(2):  # an error is not remembered
        with pytest.raises(ValueError, match="pad must be smaller than window"):
            fast.max_pool2d_forward(x, 2, 2, 2)
        with pytest.raises(ValueError, match="channels"):
            fast.conv2d_forward(x[:, :2], w, None, stride=1, pad=1)
    assert_close(c1, ref.conv2d_forward(x, w, None, stride=1, pad=1), np.float32)
