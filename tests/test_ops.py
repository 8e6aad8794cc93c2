"""fastcnn._ops against the numpy reference: activations, softmax + cross-entropy, dropout,
batch normalisation and the in-place optimizer updates. Random shapes (empty, one element,
sizes off the vector width, several parallel blocks), float32/float64 and mixed promotion,
non-contiguous and read-only inputs, in-place updates of the caller's arrays, bit-identical
dropout masks, NaN/inf/-0 where the reference defines them, thread-count determinism, and the
same exceptions as the reference for bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

import fastcnn
from fastcnn import _core, functional
from fastcnn import _ops as F
from fastcnn.reference import functional as R

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-12}

# Flat sizes around the vector widths, one 16K parallel block and several of them.
ELEMENTWISE_SHAPES = [
    (0,),
    (1,),
    (7,),
    (3, 5),
    (2, 0, 4),
    (1, 1, 1, 1),
    (33, 17),
    (4, 3, 5, 7),
    (16384,),
    (16385,),
    (3, 7, 41, 43),
]


def _same(a, b) -> None:
    """Same type, dtype, shape and bits."""
    assert type(a) is type(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def _close(a, b, rtol: float) -> None:
    """Same dtype and shape; values within rtol, relative to the largest reference entry for
    entries that cancel to near zero."""
    assert a.dtype == b.dtype and a.shape == b.shape
    scale = float(np.abs(b).max()) if b.size else 0.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = a.copy() if a.base is None else a
    a.flags.writeable = False
    return a


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=str)
def test_activations_match_reference(dtype, shape, rng):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    _same(F.relu_forward(x), R.relu_forward(x))
    _same(F.relu_backward(dy, x), R.relu_backward(dy, x))
    _close(F.sigmoid_forward(x), R.sigmoid_forward(x), 4 * np.finfo(dtype).eps)
    y = R.sigmoid_forward(x)
    _same(F.sigmoid_backward(dy, y), R.sigmoid_backward(dy, y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_nan_inf_signed_zero(dtype, rng):
    x = rng.standard_normal(40_000).astype(dtype)
    u = rng.random(x.shape)
    x[u < 0.1] = np.nan
    x[(u >= 0.1) & (u < 0.2)] = np.inf
    x[(u >= 0.2) & (u < 0.3)] = -np.inf
    x[(u >= 0.3) & (u < 0.4)] = -0.0
    x[(u >= 0.4) & (u < 0.5)] = 0.0
    dy = rng.standard_normal(x.shape).astype(dtype)
    dy[::7] = np.nan
    dy[1::7] = -0.0
    y = F.relu_forward(x)
    _same(y, R.relu_forward(x))  # NaN propagates, -0 gives +0 as in np.maximum
    assert np.isnan(y[np.isnan(x)]).all() and not np.signbit(y[x == 0]).any()
    dx = F.relu_backward(dy, x)
    _same(dx, R.relu_backward(dy, x))
    assert (dx[np.isnan(x)] == 0).all()
    s = F.sigmoid_forward(x)
    _same(np.isnan(s), np.isnan(R.sigmoid_forward(x)))
    assert (s[x == np.inf] == 1).all() and (s[x == -np.inf] == 0).all()
    _close(s[np.isfinite(s)], R.sigmoid_forward(x)[np.isfinite(s)], 4 * np.finfo(dtype).eps)


def test_sigmoid_extremes_do_not_overflow():
    for dtype in DTYPES:
        x = np.array([-1e30, -800.0, -100.0, 0.0, 100.0, 800.0, 1e30]).astype(dtype)
        _close(F.sigmoid_forward(x), R.sigmoid_forward(x), 4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dt_dy,dt_x", [(np.float32, np.float64), (np.float64, np.float32)])
def test_activations_mixed_precision(dt_dy, dt_x, rng):
    x = rng.standard_normal((5, 9)).astype(dt_x)
    x[0, :4] = [1e-40, -1e-40, 1e-300, 0.0] if dt_x == np.float64 else [1e-40, -1e-40, 0, 0]
    dy = rng.standard_normal((5, 9)).astype(dt_dy)
    _same(F.relu_backward(dy, x), R.relu_backward(dy, x))
    assert F.relu_backward(dy, x).dtype == np.float64
    y = R.sigmoid_forward(x)
    _same(F.sigmoid_backward(dy, y), R.sigmoid_backward(dy, y))


def test_zero_dim_inputs_like_reference():
    for dtype in DTYPES:
        x, dy = np.asarray(dtype(-1.5)), np.asarray(dtype(2.0))
        for fn, args in [
            ("relu_forward", (x,)),
            ("relu_backward", (dy, x)),
            ("sigmoid_forward", (x,)),
            ("sigmoid_backward", (dy, x)),
            ("dropout_backward", (dy, np.asarray(True))),
        ]:
            a, b = getattr(F, fn)(*args), getattr(R, fn)(*args)
            assert type(a) is type(b) and a.dtype == b.dtype and a == b
        a, b = F.dropout_forward(x, 0.3, seed=5), R.dropout_forward(x, 0.3, seed=5)
        assert type(a[0]) is type(b[0]) and a[0] == b[0] and a[1] == b[1]


# ---------------------------------------------------------------------------------------------
# Softmax + cross-entropy
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_random(dtype, rng):
    label_dtypes = [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64]
    for trial in range(30):
        n, m = int(rng.integers(1, 9)), int(rng.integers(1, 65))
        if trial == 0:
            n, m = 100, 10  # DeepConvNet's head
        x = (4 * rng.standard_normal((n, m))).astype(dtype)
        labels = rng.integers(0, m, n).astype(label_dtypes[trial % len(label_dtypes)])
        t = rng.random((n, m)).astype(dtype)
        t /= t.sum(axis=1, keepdims=True)
        for tt in (labels, t):
            loss, p = F.softmax_cross_entropy_forward(x, tt)
            loss_ref, p_ref = R.softmax_cross_entropy_forward(x, tt)
            assert type(loss) is float
            np.testing.assert_allclose(loss, loss_ref, rtol=10 * RTOL[dtype])
            _close(p, p_ref, RTOL[dtype])
            dout = float(rng.standard_normal())
            # Given the same p, the backward pass is the reference's arithmetic bit for bit.
            _same(
                F.softmax_cross_entropy_backward(p_ref, tt, dout),
                R.softmax_cross_entropy_backward(p_ref, tt, dout),
            )


def test_softmax_xent_mixed_precision_and_layouts(rng):
    x = rng.standard_normal((6, 11))
    t = rng.random((6, 11))
    t /= t.sum(axis=1, keepdims=True)
    for xx, tt in [
        (x.astype(np.float32), t),  # x float32, targets float64 -> float64
        (x, t.astype(np.float32)),
        (np.asfortranarray(x.astype(np.float32)), t.astype(np.float32)[:, ::-1]),
        (_frozen(x[::-1]), _frozen(rng.integers(0, 11, 12)[::2])),
    ]:
        snapshot = (xx.copy(), tt.copy())
        loss, p = F.softmax_cross_entropy_forward(xx, tt)
        loss_ref, p_ref = R.softmax_cross_entropy_forward(xx, tt)
        rtol = RTOL[p_ref.dtype.type]
        np.testing.assert_allclose(loss, loss_ref, rtol=10 * rtol)
        _close(p, p_ref, rtol)
        _same(
            F.softmax_cross_entropy_backward(p_ref, tt, 0.5),
            R.softmax_cross_entropy_backward(p_ref, tt, 0.5),
        )
        np.testing.assert_array_equal(xx, snapshot[0])
        np.testing.assert_array_equal(tt, snapshot[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_xent_extremes_and_nan(dtype):
    x = np.array([[1e4, 0.0, -1e4], [-3e4, -3e4, -3e4], [0.0, np.nan, 1.0]], dtype=dtype)
    labels = np.array([2, 0, 1])
    loss, p = F.softmax_cross_entropy_forward(x[:2], labels[:2])
    loss_ref, p_ref = R.softmax_cross_entropy_forward(x[:2], labels[:2])
    assert np.isfinite(loss) and np.isfinite(p).all()  # log-sum-exp: no overflow
    np.testing.assert_allclose(loss, loss_ref, rtol=RTOL[dtype])
    _close(p, p_ref, RTOL[dtype])
    loss, p = F.softmax_cross_entropy_forward(x, labels)
    loss_ref, p_ref = R.softmax_cross_entropy_forward(x, labels)
    assert np.isnan(loss) and np.isnan(loss_ref)
    _same(np.isnan(p), np.isnan(p_ref))


# ---------------------------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------------------------

SEEDS = [0, 1, 12345, 2**32 - 1, 2**63, 2**64 - 1]
RATIOS = [0.0, 1e-300, 0.25, 0.5, 0.9, np.nextafter(1.0, 0.0), 1.0]


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_mask_bit_identical(seed):
    for ratio in RATIOS:
        for shape in [(), 0, 1, 17, (3, 0, 2), (5, 77), (2, 3, 5, 7), (40_001,)]:
            mask = F.dropout_mask(shape, ratio, seed)
            ref = R.dropout_mask(shape, ratio, seed)
            assert mask.dtype == ref.dtype == np.bool_ and mask.shape == ref.shape
            np.testing.assert_array_equal(mask, ref)
    assert F.dropout_mask(1000, 0.0, seed).all()
    assert not F.dropout_mask(1000, 1.0, seed).any()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ELEMENTWISE_SHAPES, ids=str)
def test_dropout_forward_backward(dtype, shape, rng):
    x = rng.standard_normal(shape).astype(dtype)
    specials = np.array([np.nan, np.inf, -np.inf, -1.0, -0.0], dtype)
    x.flat[::3] = specials[np.arange(len(x.flat[::3])) % 5]
    ratio = float(rng.random())
    # inf * 0 = NaN: numpy warns about it, the kernels just produce it (same bits).
    with np.errstate(invalid="ignore"):
        y_ref, mask_ref = R.dropout_forward(x, ratio, seed=77)
        given = rng.random(shape) < 0.5
        y2_ref, m_ref = R.dropout_forward(x, ratio, mask=given)
    y, mask = F.dropout_forward(x, ratio, seed=77)
    _same(y, y_ref)  # x * 0 keeps the reference's -0 and NaN
    _same(mask, mask_ref)
    y, m = F.dropout_forward(x, ratio, mask=given)
    _same(y, y2_ref)
    assert m is given and m_ref is given
    y, m = F.dropout_forward(x, ratio, train=False, seed=3)
    y_ref, m_ref = R.dropout_forward(x, ratio, train=False, seed=3)
    _same(y, y_ref)
    assert m is None and m_ref is None
    dy = rng.standard_normal(shape).astype(dtype)
    _same(F.dropout_backward(dy, mask_ref), R.dropout_backward(dy, mask_ref))


def test_dropout_non_contiguous_read_only(rng):
    base = rng.standard_normal((6, 40, 30)).astype(np.float32)
    x = _frozen(base[:, ::3, ::-1])
    mask = _frozen((rng.random((30, 14, 6)) < 0.4).T)
    x_copy = x.copy()
    y, _ = F.dropout_forward(x, 0.4, mask=mask)
    _same(y, R.dropout_forward(x, 0.4, mask=mask)[0])
    _same(F.dropout_forward(x, 0.4, seed=9)[0], R.dropout_forward(x, 0.4, seed=9)[0])
    _same(F.dropout_forward(x, 0.4, False)[0], R.dropout_forward(x, 0.4, False)[0])
    _same(F.dropout_backward(x, mask), R.dropout_backward(x, mask))
    np.testing.assert_array_equal(x, x_copy)


# ---------------------------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------------------------

BN_RTOL = {np.float32: 1e-4, np.float64: 1e-11}


def _bn_shapes(rng, spatial: bool):
    shapes = [(1, 1, 1, 1), (1, 3, 1, 1), (2, 5, 3, 3), (8, 64, 7, 9), (17, 2, 16, 16)]
    shapes += [
        (int(rng.integers(1, 9)), int(rng.integers(1, 65)), *map(int, rng.integers(1, 33, 2)))
        for _ in range(6)
    ]
    if spatial:
        return shapes
    return [(1, 1), (1, 7), (3, 0), (2, 5), (17, 33), (40, 1), (100, 50)] + [
        (s[0], s[1] * s[2]) for s in shapes[:4]
    ]


def _bn_compare(spatial, x, gamma, beta, rm, rv, train, rtol, dy=None):
    fwd = "spatial_batchnorm_forward" if spatial else "batchnorm_forward"
    bwd = "spatial_batchnorm_backward" if spatial else "batchnorm_backward"
    rm2 = None if rm is None else rm.copy()
    rv2 = None if rv is None else rv.copy()
    out = getattr(F, fwd)(x, gamma, beta, rm, rv, 0.8, 1e-5, train)
    ref = getattr(R, fwd)(x, gamma, beta, rm2, rv2, 0.8, 1e-5, train)
    for a, b in zip(out, ref):
        _close(a, b, rtol)
    if rm is not None:
        _close(rm, rm2, rtol)
        _close(rv, rv2, rtol)
    if train:
        dy = np.ones_like(x) if dy is None else dy
        _, mean, inv_std = ref
        for a, b in zip(
            getattr(F, bwd)(dy, x, gamma, mean, inv_std),
            getattr(R, bwd)(dy, x, gamma, mean, inv_std),
        ):
            _close(a, b, 10 * rtol)


@pytest.mark.parametrize("spatial", [False, True], ids=["batchnorm", "spatial"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_random_shapes(spatial, dtype, rng):
    for shape in _bn_shapes(rng, spatial):
        c = shape[1]
        x = 2 * rng.standard_normal(shape) + rng.standard_normal((1, c) + (1,) * (len(shape) - 2))
        x = x.astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        gamma = rng.random(c).astype(dtype) + 0.5
        beta = rng.standard_normal(c).astype(dtype)
        rm = rng.standard_normal(c).astype(dtype)
        rv = rng.random(c).astype(dtype) + 0.5
        _bn_compare(spatial, x, gamma, beta, rm, rv, True, BN_RTOL[dtype], dy)
        _bn_compare(spatial, x, gamma, beta, None, None, True, BN_RTOL[dtype], dy)
        _bn_compare(spatial, x, gamma, beta, rm, rv, False, BN_RTOL[dtype])


@pytest.mark.parametrize("spatial", [False, True], ids=["batchnorm", "spatial"])
def test_batchnorm_mixed_precision_and_running_stat_dtypes(spatial, rng):
    shape = (6, 5, 4, 3) if spatial else (6, 5)
    x = rng.standard_normal(shape)
    g, b = rng.random(5) + 0.5, rng.standard_normal(5)
    dy = rng.standard_normal(shape)
    cases = [
        (x.astype(np.float32), g, b.astype(np.float32)),  # float64 gamma promotes everything
        (x, g.astype(np.float32), b.astype(np.float32)),
        (x.astype(np.float32), g.astype(np.float32), b.astype(np.float32)),
    ]
    for xx, gg, bb in cases:
        dt = np.result_type(xx, gg, bb).type
        for stat_dtype in DTYPES:  # running stats keep their own dtype
            rm = rng.standard_normal(5).astype(stat_dtype)
            rv = (rng.random(5) + 0.5).astype(stat_dtype)
            _bn_compare(spatial, xx, gg, bb, rm, rv, True, BN_RTOL[dt], dy.astype(np.float32))
            _bn_compare(spatial, xx, gg, bb, rm, rv, False, BN_RTOL[dt])
            assert rm.dtype == stat_dtype


@pytest.mark.parametrize("spatial", [False, True], ids=["batchnorm", "spatial"])
def test_batchnorm_running_stats_in_place_and_views(spatial, rng):
    shape = (7, 6, 5, 4) if spatial else (7, 6)
    x = _frozen(rng.standard_normal(shape[::-1]).T)
    assert not x.flags.c_contiguous
    gamma, beta = _frozen(rng.random(12)[::2]), _frozen(rng.standard_normal(6))
    store = np.zeros(24)
    rm, rv = store[::4], store[1::4]  # strided views into one buffer, updated in place
    rv[...] = 1.0
    rm_ref, rv_ref = rm.copy(), rv.copy()
    fwd = F.spatial_batchnorm_forward if spatial else F.batchnorm_forward
    fwd_ref = R.spatial_batchnorm_forward if spatial else R.batchnorm_forward
    for _ in range(3):
        y, mean, inv_std = fwd(x, gamma, beta, rm, rv)
        y_ref, mean_ref, inv_ref = fwd_ref(x, gamma, beta, rm_ref, rv_ref)
        _close(y, y_ref, 1e-12)
    _close(rm, rm_ref, 1e-12)
    _close(rv, rv_ref, 1e-12)
    assert store[2::4].sum() == 0 and store[3::4].sum() == 0  # neighbours untouched
    y, mean, inv_std = fwd(x, gamma, beta, rm, rv, train=False)
    assert mean.base is None and not np.shares_memory(mean, rm)  # a copy, as astype makes


@pytest.mark.parametrize("spatial", [False, True], ids=["batchnorm", "spatial"])
def test_batchnorm_constant_features(spatial):
    # Zero variance: inv_std = 1/sqrt(eps); eps = 0 gives inf and NaN like the reference.
    x = np.full((4, 3, 2, 2) if spatial else (4, 3), 2.5)
    fwd = F.spatial_batchnorm_forward if spatial else F.batchnorm_forward
    fwd_ref = R.spatial_batchnorm_forward if spatial else R.batchnorm_forward
    g, b = np.ones(3), np.zeros(3)
    for a, r in zip(fwd(x, g, b, None, None), fwd_ref(x, g, b, None, None)):
        _same(a, r)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = fwd(x, g, b, None, None, eps=0.0)
        ref = fwd_ref(x, g, b, None, None, eps=0.0)
    for a, r in zip(out, ref):
        _same(np.isnan(a), np.isnan(r))
        _same(np.isinf(a), np.isinf(r))


# ---------------------------------------------------------------------------------------------
# Optimizer updates
# ---------------------------------------------------------------------------------------------

UPDATES = {
    "sgd_update": (0, (0.05,)),
    "momentum_update": (1, (0.05, 0.9)),
    "nesterov_update": (1, (0.05, 0.7)),
    "adagrad_update": (1, (0.05, 1e-7)),
    "rmsprop_update": (1, (0.05, 0.95, 1e-7)),
    "adam_update": (2, (1e-3, 0.9, 0.999, 7, 1e-8)),
}


def _update_arrays(rng, shape, dtypes):
    """param, grad and the non-negative (h, v) / signed (velocity, m) states."""
    p = np.array(rng.standard_normal(shape), dtype=dtypes[0])
    g = np.array(rng.standard_normal(shape), dtype=dtypes[1])
    states = [np.array(np.abs(rng.standard_normal(shape)), dtype=dt) for dt in dtypes[2:]]
    return p, g, states


def _run_update(name, param, grad, states, scalars):
    return getattr(F, name)(param, grad, *states, *scalars)


def _check_update(name, param, grad, states, scalars):
    """Runs both backends on copies laid out like the inputs; results must be the same bits."""
    p_ref, s_ref = param.copy(), [s.copy() for s in states]
    grad_copy = grad.copy()
    assert _run_update(name, param, grad, states, scalars) is None
    assert getattr(R, name)(p_ref, grad, *s_ref, *scalars) is None
    _same(np.ascontiguousarray(param), np.ascontiguousarray(p_ref))
    for s, r in zip(states, s_ref):
        _same(np.ascontiguousarray(s), np.ascontiguousarray(r))
    np.testing.assert_array_equal(grad, grad_copy)


@pytest.mark.parametrize("name", UPDATES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_updates_bit_identical(name, dtype, rng):
    nstates, scalars = UPDATES[name]
    for shape in [(0,), (1,), (7,), (3, 5), (16385,), (100, 1001), ()]:
        p, g, states = _update_arrays(rng, shape, [dtype] * (2 + nstates))
        _check_update(name, p, g, states, scalars)


@pytest.mark.parametrize("name", UPDATES)
def test_updates_mixed_dtypes_like_reference(name, rng):
    nstates, scalars = UPDATES[name]
    f32, f64 = np.float32, np.float64
    combos = [[f32, f64] + [f32] * nstates, [f64, f32] + [f64] * nstates]
    if nstates:
        combos.append([f32, f32] + [f64] * nstates)
    for dtypes in combos:
        p, g, states = _update_arrays(rng, (9, 4), dtypes)
        _check_update(name, p, g, states, scalars)
        assert p.dtype == dtypes[0]


@pytest.mark.parametrize("name", UPDATES)
def test_updates_non_contiguous_and_read_only_grad(name, rng):
    nstates, scalars = UPDATES[name]
    buf = rng.standard_normal((3 + nstates, 12, 10)).astype(np.float32)
    buf[2:] = np.abs(buf[2:])
    param = buf[0, ::2, ::-2]  # strided views: the caller's memory must be updated
    grad = _frozen(buf[1, 1::2, ::2])
    states = [buf[2 + i, ::2, 1::2] for i in range(nstates)]
    outside = buf[0, 1::2].copy()
    _check_update(name, param, grad, states, scalars)
    np.testing.assert_array_equal(buf[0, 1::2], outside)  # rows between the view's untouched


ALIAS_CASES = [("sgd_update", "grad_is_param")] + [
    (name, kind)
    for name in UPDATES
    if name != "sgd_update"
    for kind in ("grad_is_param", "grad_is_state", "states_overlap")
]


@pytest.mark.parametrize("name,kind", ALIAS_CASES)
def test_updates_with_aliased_arrays_like_reference(name, kind, rng):
    # Overlapping arrays take the reference's path: numpy's temporaries then see partly
    # updated values, which a fused pass would not.
    nstates, scalars = UPDATES[name]
    p0, g0, s0 = _update_arrays(rng, (50,), [np.float64] * (2 + nstates))
    buf0 = np.abs(rng.standard_normal(60))

    def build():
        p, g, states = p0.copy(), g0.copy(), [s.copy() for s in s0]
        if kind == "grad_is_param":
            return p, p, states
        if kind == "grad_is_state":
            return p, states[0], states
        buf = buf0.copy()
        return buf[:50], g, [buf[10:], *states[1:]]

    p, g, states = build()
    p_ref, g_ref, states_ref = build()
    _run_update(name, p, g, states, scalars)
    getattr(R, name)(p_ref, g_ref, *states_ref, *scalars)
    _same(p, p_ref)
    for a, b in zip(states, states_ref):
        _same(a, b)


def test_binding_rejects_overlapping_update_arrays():
    a = np.zeros(10)
    with pytest.raises(ValueError, match="must not overlap"):
        _core.sgd_update(a, a, 0.1)
    with pytest.raises(ValueError, match="must not overlap"):
        _core.momentum_update(a[:5], np.zeros(5), a[4:9], 0.1, 0.9)
    _core.momentum_update(a[:5], np.zeros(5), a[5:], 0.1, 0.9)  # adjacent is fine


def test_binding_checks_update_arity_and_state_types():
    p, g = np.zeros(4), np.zeros(4)
    with pytest.raises(ValueError, match="expected 2 state arrays and 4 numbers"):
        _core.adam_update(p, g, np.zeros(4), 0.1)
    with pytest.raises(TypeError, match="adam_update: v must be an array"):
        _core.adam_update(p, g, np.zeros(4), [0.0] * 4, 0.1, 0.9, 0.999, 1e-8)
    with pytest.raises(ValueError, match="adagrad_update: h"):
        _core.adagrad_update(p, g, np.zeros(3), 0.1, 1e-7)


# ---------------------------------------------------------------------------------------------
# Threads, bindings, the functional module
# ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("any_size_threads")
def test_bitwise_identical_across_threads(rng):
    x4 = rng.standard_normal((6, 5, 33, 31)).astype(np.float32)
    dy4 = rng.standard_normal(x4.shape).astype(np.float32)
    x2 = rng.standard_normal((300, 70))
    xs = rng.standard_normal((3000, 13)).astype(np.float32)
    labels = rng.integers(0, 13, 3000)
    g5, b5 = rng.random(5).astype(np.float32), rng.random(5).astype(np.float32)
    g70, b70 = rng.random(70), rng.random(70)
    results = []
    for n in (1, 2, 3):
        with fastcnn.threads(n):
            out = [F.relu_forward(x4), F.relu_backward(dy4, x4), F.sigmoid_forward(x4)]
            out += F.dropout_forward(x4, 0.3, seed=11)
            out.append(F.dropout_mask(50_000, 0.6, 4))
            loss, p = F.softmax_cross_entropy_forward(xs, labels)
            out += [np.float64(loss), p, F.softmax_cross_entropy_backward(p, labels)]
            y, mean, inv = F.spatial_batchnorm_forward(x4, g5, b5, None, None)
            out += [y, mean, inv, *F.spatial_batchnorm_backward(dy4, x4, g5, mean, inv)]
            y, mean, inv = F.batchnorm_forward(x2, g70, b70, None, None)
            out += [y, mean, inv, *F.batchnorm_backward(x2[::-1], x2, g70, mean, inv)]
            param, m, v = x4.copy(), np.zeros_like(x4), np.zeros_like(x4)
            F.adam_update(param, dy4, m, v, 1e-3, 0.9, 0.999, 1)
            out += [param, m, v]
            results.append(out)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.tobytes() == b.tobytes()


def test_binding_checks_its_arrays():
    x = np.zeros((4, 3), np.float32)
    y = np.empty_like(x)
    _core.relu_forward(x, y)
    with pytest.raises(TypeError):
        _core.relu_forward(x, y.astype(np.float64))
    with pytest.raises(TypeError):
        _core.relu_forward(x.astype(np.int32), y)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.relu_forward(np.asfortranarray(x), y)
    with pytest.raises(ValueError, match="shape"):
        _core.relu_backward(x, x[:2], y)
    with pytest.raises(ValueError, match="writeable"):
        _core.relu_forward(x, _frozen(y))
    with pytest.raises(TypeError):
        _core.dropout_apply(x, np.ones((4, 3), np.uint8), y)
    with pytest.raises(ValueError, match="label out of range"):
        _core.softmax_cross_entropy_forward(x, np.array([0, 1, 2, 3]), y)
    with pytest.raises(ValueError, match=r"\(N, D\) or \(N, C, H, W\)"):
        _core.batchnorm_stats(np.zeros(3, np.float32), np.zeros(3, np.float32), y)
    with pytest.raises(ValueError, match="ratio"):
        _core.dropout_mask(np.zeros(3, bool), 1.5, 0)


def test_functional_uses_the_fast_ops():
    for name in F.__all__:
        assert getattr(functional, name) is getattr(F, name), name
    for name in ("im2col", "col2im", "softmax"):
        assert getattr(functional, name) is getattr(R, name)


# ---------------------------------------------------------------------------------------------
# Bad arguments: the same exception type and message as the reference
# ---------------------------------------------------------------------------------------------

_X = np.zeros((4, 3), np.float32)
_X4 = np.zeros((2, 3, 4, 4), np.float32)
_C3 = np.ones(3, np.float32)
_P = np.zeros(6, np.float32)

BAD_CALLS = [
    ("relu_forward", (None,), {}),
    ("relu_forward", (_X.astype(np.complex128),), {}),
    ("relu_forward", (_X.astype(object),), {}),
    ("relu_backward", (_X, _X[:2]), {}),
    ("relu_backward", (_X, "x"), {}),
    ("sigmoid_forward", (_X.astype(np.complex64),), {}),
    ("sigmoid_backward", (_X.astype("U2"), _X), {}),
    ("softmax_cross_entropy_forward", (_X[0], np.zeros(4, int)), {}),
    ("softmax_cross_entropy_forward", (_X[:0], np.zeros(0, int)), {}),
    ("softmax_cross_entropy_forward", (_X[:, :0], np.zeros(4, int)), {}),
    ("softmax_cross_entropy_forward", (_X, np.array([0, 1, 2, 3])), {}),
    ("softmax_cross_entropy_forward", (_X, np.array([0, 1, -1, 2])), {}),
    ("softmax_cross_entropy_forward", (_X, np.zeros(4)), {}),
    ("softmax_cross_entropy_forward", (_X, np.zeros(3, int)), {}),
    ("softmax_cross_entropy_forward", (_X, np.zeros((4, 3), complex)), {}),
    ("softmax_cross_entropy_forward", (_X, np.zeros((4, 2))), {}),
    ("softmax_cross_entropy_forward", (_X, np.zeros((4, 3, 1))), {}),
    ("softmax_cross_entropy_backward", (_X, np.zeros(4, int), np.nan), {}),
    ("softmax_cross_entropy_backward", (_X, np.zeros(4, int), "1"), {}),
    ("softmax_cross_entropy_backward", (_X, np.zeros(4, int), True), {}),
    ("softmax_cross_entropy_backward", (_X[:0], np.zeros(0, int)), {}),
    ("softmax_cross_entropy_backward", (_X, np.full(4, 3)), {}),
    ("dropout_mask", ((2, -1), 0.5, 0), {}),
    ("dropout_mask", ("2", 0.5, 0), {}),
    ("dropout_mask", ((2, 3.0), 0.5, 0), {}),
    ("dropout_mask", ((2, 3), 1.5, 0), {}),
    ("dropout_mask", ((2, 3), np.nan, 0), {}),
    ("dropout_mask", ((2, 3), 0.5, -1), {}),
    ("dropout_mask", ((2, 3), 0.5, 2**64), {}),
    ("dropout_mask", ((2, 3), 0.5, 1.0), {}),
    ("dropout_forward", (_X, 0.5), {}),
    ("dropout_forward", (_X, 0.5), {"seed": 1, "mask": _X > 0}),
    ("dropout_forward", (_X, 0.5), {"mask": _X}),
    ("dropout_forward", (_X, 0.5), {"mask": _X[0] > 0}),
    ("dropout_forward", (_X, -0.1), {"seed": 1}),
    ("dropout_forward", (_X, 0.5, 1), {"seed": 1}),
    ("dropout_forward", (_X, 0.5), {"seed": True}),
    ("dropout_forward", (_X.astype(complex), 0.5), {"seed": 1}),
    ("dropout_backward", (_X, _X), {}),
    ("dropout_backward", (_X, _X.T > 0), {}),
    ("batchnorm_forward", (_X4, _C3, _C3, None, None), {}),
    ("batchnorm_forward", (_X, _C3[:2], _C3, None, None), {}),
    ("batchnorm_forward", (_X[:0], _C3, _C3, None, None), {}),
    ("batchnorm_forward", (_X, _C3, _C3, None, None), {"train": False}),
    ("batchnorm_forward", (_X, _C3, _C3, _C3.copy(), None), {}),
    ("batchnorm_forward", (_X, _C3, _C3, _frozen(_C3.copy()), _C3.copy()), {}),
    ("batchnorm_forward", (_X, _C3, _C3, [0.0] * 3, _C3.copy()), {}),
    ("batchnorm_forward", (_X, _C3, _C3, None, None), {"momentum": 1.5}),
    ("batchnorm_forward", (_X, _C3, _C3, None, None), {"eps": -1.0}),
    ("batchnorm_forward", (_X, _C3, _C3, None, None), {"train": 1}),
    ("batchnorm_backward", (_X, _X[:2], _C3, _C3, _C3), {}),
    ("batchnorm_backward", (_X, _X, _C3, _C3[:1], _C3), {}),
    ("batchnorm_backward", (_X, _X.astype(complex), _C3, _C3, _C3), {}),
    ("spatial_batchnorm_forward", (_X, _C3, _C3, None, None), {}),
    ("spatial_batchnorm_forward", (_X4[:, :, :0], _C3, _C3, None, None), {}),
    ("spatial_batchnorm_forward", (_X4, _C3[:2], _C3, None, None), {}),
    ("spatial_batchnorm_backward", (_X4, _X4[:1], _C3, _C3, _C3), {}),
    ("spatial_batchnorm_backward", (_X4, _X4, _C3, _C3, np.ones(4)), {}),
    ("sgd_update", ([0.0] * 6, _P, 0.1), {}),
    ("sgd_update", (_frozen(_P.copy()), _P, 0.1), {}),
    ("sgd_update", (_P.copy(), _P[:3], 0.1), {}),
    ("sgd_update", (_P.copy(), _P, np.inf), {}),
    ("sgd_update", (_P.copy(), _P, None), {}),
    ("sgd_update", (_P.copy().astype(int), _P, 0.1), {}),
    ("momentum_update", (_P.copy(), _P, _P[:3].copy(), 0.1), {}),
    ("momentum_update", (_P.copy(), _P, _P.copy(), 0.1, 1.5), {}),
    ("nesterov_update", (_P.copy(), _P, None, 0.1), {}),
    ("nesterov_update", (_P.copy(), _P, _P.copy(), 0.1, -0.1), {}),
    ("adagrad_update", (_P.copy(), _P, _P.copy(), 0.1, -1e-7), {}),
    ("adagrad_update", (_P.copy(), _P, _frozen(_P.copy()), 0.1), {}),
    ("rmsprop_update", (_P.copy(), _P, _P.copy(), 0.1, 1.01), {}),
    ("rmsprop_update", (_P.copy(), _P, _P.copy(), 0.1, 0.9, np.nan), {}),
    ("adam_update", (_P.copy(), _P, _P.copy(), _P.copy(), 0.1, 1.0, 0.999, 1), {}),
    ("adam_update", (_P.copy(), _P, _P.copy(), _P.copy(), 0.1, 0.9, 0.999, 0), {}),
    ("adam_update", (_P.copy(), _P, _P.copy(), _P.copy(), 0.1, 0.9, 0.999, 1.0), {}),
    ("adam_update", (_P.copy(), _P, _P.copy(), _P.copy().astype(np.int16), 0.1, 0.9, 0.9, 1), {}),
]


@pytest.mark.parametrize(
    "name,args,kwargs", BAD_CALLS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_CALLS)]
)
def test_bad_arguments_like_reference(name, args, kwargs):
    with pytest.raises((TypeError, ValueError)) as ref:
        getattr(R, name)(*args, **kwargs)
    with pytest.raises(ref.type) as fast:
        getattr(F, name)(*args, **kwargs)
    assert str(fast.value) == str(ref.value)
    assert str(fast.value).startswith(name)
