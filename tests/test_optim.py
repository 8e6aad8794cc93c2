"""Tests of fastcnn.optim: each optimizer equals its reference update function step by step on
both backends, state round-trips exactly, arguments are checked, schedules give the right values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastcnn import optim
from fastcnn.reference import functional as RF

BACKENDS = ("fast", "reference")
STEPS = 4


def _problem(seed: int = 0):
    """Two params of different dtype and shape, and STEPS gradients for each."""
    rng = np.random.default_rng(seed)
    params = {
        "W": rng.standard_normal((3, 4)),
        "b": rng.standard_normal(5).astype(np.float32),
    }
    grads = [{k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}]
    for _ in range(STEPS - 1):
        grads.append({k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()})
    return params, grads


def _expected(name: str, params, grads, hyper):
    """The same run done by hand with the reference update functions."""
    params = {k: v.copy() for k, v in params.items()}
    state = {k: [np.zeros_like(v), np.zeros_like(v)] for k, v in params.items()}
    for step, g in enumerate(grads, start=1):
        for k, p in params.items():
            s = state[k]
            if name == "sgd":
                RF.sgd_update(p, g[k], hyper["lr"])
            elif name == "momentum":
                RF.momentum_update(p, g[k], s[0], hyper["lr"], hyper["momentum"])
            elif name == "nesterov":
                RF.nesterov_update(p, g[k], s[0], hyper["lr"], hyper["momentum"])
            elif name == "adagrad":
                RF.adagrad_update(p, g[k], s[0], hyper["lr"], hyper["eps"])
            elif name == "rmsprop":
                RF.rmsprop_update(p, g[k], s[0], hyper["lr"], hyper["decay_rate"], hyper["eps"])
            else:
                RF.adam_update(
                    p, g[k], s[0], s[1], hyper["lr"], hyper["beta1"], hyper["beta2"], step
                )
    return params


HYPER = {
    "sgd": {"lr": 0.1},
    "momentum": {"lr": 0.05, "momentum": 0.8},
    "nesterov": {"lr": 0.05, "momentum": 0.7},
    "adagrad": {"lr": 0.2, "eps": 1e-7},
    "rmsprop": {"lr": 0.02, "decay_rate": 0.9, "eps": 1e-7},
    "adam": {"lr": 0.01, "beta1": 0.8, "beta2": 0.95},
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_optimizer_matches_reference_updates(name, backend):
    params, grads = _problem()
    want = _expected(name, params, grads, HYPER[name])
    opt = optim.OPTIMIZERS[name](**HYPER[name], backend=backend)
    arrays = dict(params)  # the same objects: the update must be in place
    for g in grads:
        opt.update(params, g)
    assert opt.step == STEPS
    for k in params:
        assert params[k] is arrays[k]
        assert params[k].dtype == want[k].dtype
        if backend == "reference":
            np.testing.assert_array_equal(params[k], want[k])
        else:
            rtol = 1e-12 if params[k].dtype == np.float64 else 1e-5
            np.testing.assert_allclose(params[k], want[k], rtol=rtol, atol=rtol)


def test_formulas_written_out():
    """Independent of the update functions: SGD, Momentum and Adam by their textbook formulas."""
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(6)
    g1, g2 = rng.standard_normal(6), rng.standard_normal(6)

    p = {"w": p0.copy()}
    sgd = optim.SGD(lr=0.3, backend="reference")
    sgd.update(p, {"w": g1})
    np.testing.assert_allclose(p["w"], p0 - 0.3 * g1, rtol=1e-15)

    p = {"w": p0.copy()}
    mom = optim.Momentum(lr=0.1, momentum=0.9, backend="reference")
    mom.update(p, {"w": g1})
    mom.update(p, {"w": g2})
    v1 = -0.1 * g1
    v2 = 0.9 * v1 - 0.1 * g2
    np.testing.assert_allclose(p["w"], p0 + v1 + v2, rtol=1e-14)

    p = {"w": p0.copy()}
    adam = optim.Adam(lr=0.01, beta1=0.9, beta2=0.999, backend="reference")
    adam.update(p, {"w": g1})
    adam.update(p, {"w": g2})
    m1, s1 = 0.1 * g1, 0.001 * g1 * g1
    m2, s2 = 0.9 * m1 + 0.1 * g2, 0.999 * s1 + 0.001 * g2 * g2
    lr2 = 0.01 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    lr1 = 0.01 * math.sqrt(1 - 0.999) / (1 - 0.9)
    want = p0 - lr1 * m1 / (np.sqrt(s1) + 1e-8) - lr2 * m2 / (np.sqrt(s2) + 1e-8)
    np.testing.assert_allclose(p["w"], want, rtol=1e-12)


def test_lr_change_takes_effect_on_next_update():
    p = {"w": np.ones(3)}
    opt = optim.SGD(lr=1.0, backend="reference")
    opt.lr = 0.25
    opt.update(p, {"w": np.ones(3)})
    np.testing.assert_array_equal(p["w"], np.full(3, 0.75))
    assert opt.lr == 0.25


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(optim.OPTIMIZERS))
def test_state_dict_round_trip_continues_identically(name, backend):
    params, grads = _problem(2)
    straight = {k: v.copy() for k, v in params.items()}
    opt_a = optim.OPTIMIZERS[name](**HYPER[name], backend=backend)
    for g in grads:
        opt_a.update(straight, g)

    resumed = {k: v.copy() for k, v in params.items()}
    opt_b = optim.OPTIMIZERS[name](**HYPER[name], backend=backend)
    for g in grads[:2]:
        opt_b.update(resumed, g)
    state = opt_b.state_dict()
    # Plain values only: str, float, int and arrays (so the state fits an npz file).
    assert state["type"] == type(opt_b).__name__
    assert all(isinstance(v, (str, float, int, np.ndarray)) for v in state.values())
    for slot in opt_b.SLOTS:
        for k in params:
            assert state[f"{slot}/{k}"] is not opt_b.state[slot][k]  # a copy
    opt_c = optim.from_state_dict(state, backend=backend)
    assert type(opt_c) is type(opt_b) and opt_c.step == 2 and opt_c.lr == opt_b.lr
    for g in grads[2:]:
        opt_c.update(resumed, g)
    for k in params:
        np.testing.assert_array_equal(resumed[k], straight[k])
    # load_state_dict on an existing instance as well
    opt_d = optim.OPTIMIZERS[name](backend=backend)
    opt_d.load_state_dict(opt_c.state_dict())
    assert opt_d.state_dict().keys() == opt_c.state_dict().keys()
    for key, value in opt_c.state_dict().items():
        np.testing.assert_array_equal(opt_d.state_dict()[key], value)


def test_load_state_dict_rejects_bad_state_and_changes_nothing():
    params, grads = _problem()
    opt = optim.Adam(lr=0.01, backend="reference")
    opt.update(params, grads[0])
    good = opt.state_dict()
    before = opt.state_dict()

    with pytest.raises(ValueError, match=r"Adam.load_state_dict: the state is for optimizer 'SGD'"):
        opt.load_state_dict(optim.SGD().state_dict())
    with pytest.raises(ValueError, match=r"lacks \['beta2'\]"):
        opt.load_state_dict({k: v for k, v in good.items() if k != "beta2"})
    with pytest.raises(ValueError, match=r"unknown entries \['velocity/W'\].*'m/<param>'"):
        opt.load_state_dict({**good, "velocity/W": np.zeros((3, 4))})
    with pytest.raises(ValueError, match=r"beta1 must be in \[0.0, 1.0\), got 1.5"):
        opt.load_state_dict({**good, "beta1": 1.5})
    with pytest.raises(
        TypeError, match=r"m/W is updated in place and must be a float16, float32 or float64"
    ):
        opt.load_state_dict({**good, "m/W": np.zeros((3, 4), dtype=np.int64)})
    with pytest.raises(TypeError, match=r"state must be a dict"):
        opt.load_state_dict([1, 2])
    after = opt.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    with pytest.raises(ValueError, match=r"unknown optimizer type 'Bogus'.*Adam"):
        optim.from_state_dict({"type": "Bogus"})


def test_update_checks_keys_and_shapes_before_touching_anything():
    params = {"a": np.ones(3), "b": np.ones(2)}
    opt = optim.Momentum(backend="reference")
    with pytest.raises(ValueError, match=r"Momentum.update: .*no gradient for \['b'\]"):
        opt.update(params, {"a": np.ones(3)})
    with pytest.raises(ValueError, match=r"gradients for unknown params \['c'\]"):
        opt.update(params, {"a": np.ones(3), "b": np.ones(2), "c": np.ones(1)})
    with pytest.raises(ValueError, match=r"params\['b'\].shape=\(2,\), grads\['b'\].shape=\(3,\)"):
        opt.update(params, {"a": np.ones(3), "b": np.ones(3)})
    ro = np.ones(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['b'\] is updated in place but is read-only"):
        opt.update({"a": np.ones(3), "b": ro}, {"a": np.ones(3), "b": np.ones(2)})
    with pytest.raises(TypeError, match=r"grads must be a dict"):
        opt.update(params, [np.ones(3)])
    np.testing.assert_array_equal(params["a"], np.ones(3))
    assert opt.step == 0 and opt.state == {"velocity": {}}


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: optim.SGD(lr=-0.1), r"SGD: lr must be in \[0.0, inf\), got -0.1"),
        (lambda: optim.Momentum(momentum=1.5), r"Momentum: momentum must be in \[0.0, 1.0\]"),
        (lambda: optim.Nesterov(momentum=-1), r"Nesterov: momentum must be in"),
        (lambda: optim.AdaGrad(eps=-1e-3), r"AdaGrad: eps must be in \[0.0, inf\)"),
        (lambda: optim.RMSprop(decay_rate=2), r"RMSprop: decay_rate must be in \[0.0, 1.0\]"),
        (lambda: optim.Adam(beta2=1.0), r"Adam: beta2 must be in \[0.0, 1.0\), got 1.0"),
        (lambda: optim.Adam(lr=float("nan")), r"Adam: lr must be finite"),
        (lambda: optim.SGD(backend="gpu"), r"SGD: backend must be one of 'fast', 'reference'"),
    ],
)
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_lr_setter_checks():
    opt = optim.Adam(backend="reference")
    with pytest.raises(ValueError, match=r"Adam: lr must be in \[0.0, inf\), got -1.0"):
        opt.lr = -1.0
    with pytest.raises(TypeError, match=r"Adam: lr must be a real number, got str"):
        opt.lr = "0.1"
    assert opt.lr == 0.001


def test_registries():
    assert set(optim.OPTIMIZERS) == {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"}
    assert optim.OPTIMIZERS["adam"]().lr == 0.001
    assert optim.OPTIMIZERS["sgd"]().lr == 0.01
    assert set(optim.SCHEDULES) == {"constant", "step", "cosine", "warmup"}
    want = "Adam(lr=0.001, beta1=0.9, beta2=0.999, eps=1e-08, backend='fast')"
    assert repr(optim.Adam()) == want


# ---------------------------------------------------------------------------------------------
# Schedules
# ---------------------------------------------------------------------------------------------


def test_step_decay():
    s = optim.StepDecay(step_size=3, gamma=0.5)
    got = [s(0.8, t) for t in range(8)]
    assert got == [0.8, 0.8, 0.8, 0.4, 0.4, 0.4, 0.2, 0.2]
    assert s(0.8, 2.99) == 0.8 and s(0.8, 3.0) == 0.4  # fractional t


def test_cosine_annealing_warm_restarts():
    s = optim.CosineAnnealingWarmRestarts(t0=4, eta_min=0.1)
    assert s(1.0, 0) == 1.0
    assert s(1.0, 2) == pytest.approx(0.55)  # halfway: the mean of base and eta_min
    assert s(1.0, 1) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2)
    assert s(1.0, 4) == 1.0  # restart
    assert s(1.0, 6) == pytest.approx(0.55)
    assert s(1.0, 3.999999) == pytest.approx(0.1, abs=1e-9)

    g = optim.CosineAnnealingWarmRestarts(t0=2, t_mult=2)  # periods [0,2) [2,6) [6,14) ...
    assert g(1.0, 1) == pytest.approx(0.5)
    assert g(1.0, 2) == 1.0
    assert g(1.0, 4) == pytest.approx(0.5)
    assert g(1.0, 6) == 1.0
    assert g(1.0, 10) == pytest.approx(0.5)
    assert g(1.0, 14) == 1.0


def test_linear_warmup():
    w = optim.LinearWarmup(4)
    assert [w(1.0, t) for t in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    then = optim.StepDecay(step_size=2, gamma=0.1)
    c = optim.LinearWarmup(3, then=then)
    assert c(2.0, 0) == pytest.approx(0.5)
    assert c(2.0, 2) == pytest.approx(1.5)
    assert c(2.0, 3) == 2.0  # then starts at its own t = 0
    assert c(2.0, 5) == pytest.approx(0.2)
    assert optim.LinearWarmup(0, then=then)(1.0, 2) == pytest.approx(0.1)
    assert optim.Constant()(0.3, 100) == 0.3


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: optim.StepDecay(0), r"StepDecay: step_size must be in \(0.0, inf\), got 0.0"),
        (lambda: optim.StepDecay(2, gamma=-1), r"StepDecay: gamma must be in \(0.0, inf\)"),
        (
            lambda: optim.CosineAnnealingWarmRestarts(10, t_mult=0.5),
            r"CosineAnnealingWarmRestarts: t_mult must be in \[1.0, inf\), got 0.5",
        ),
        (lambda: optim.CosineAnnealingWarmRestarts(0), r"t0 must be in \(0.0, inf\)"),
        (lambda: optim.CosineAnnealingWarmRestarts(5, eta_min=-1), r"eta_min must be in"),
        (lambda: optim.LinearWarmup(-2), r"LinearWarmup: warmup_steps must be in \[0.0, inf\)"),
        (lambda: optim.StepDecay(2)(0.1, -1), r"StepDecay.__call__: t must be in \[0.0, inf\)"),
        (lambda: optim.Constant()(-0.1, 0), r"Constant.__call__: base_lr must be in"),
    ],
)
def test_schedule_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_warmup_then_must_be_callable():
    with pytest.raises(TypeError, match=r"LinearWarmup: then must be a schedule"):
        optim.LinearWarmup(3, then=0.5)


def _adam_after_a_step(dtype=np.float64):
    params, grads = _problem()
    params = {k: v.astype(dtype) for k, v in params.items()}
    opt = optim.Adam(lr=0.01, backend="reference")
    opt.update(params, {k: g.astype(dtype) for k, g in grads[0].items()})
    return opt, params


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda s: s.pop("v/W"), r"the state after 1 steps lacks 'v/W' .*restart at zero"),
        (lambda s: s.update({"m/Z": np.zeros(2)}), r"state 'm/Z' for params the model does not"),
        (lambda s: s.update({"m/W": s["m/W"][:2]}), r"'m/W' is float64 \(2, 4\) but param 'W'"),
        (
            lambda s: s.update({"v/b": s["v/b"].astype(np.float32)}),
            r"'v/b' is float32 \(5,\) but param 'b' is float64 \(5,\)",
        ),
        (lambda s: s.update({"v/W": -s["v/W"]}), r"v/W holds negative values"),
        (lambda s: s["m/b"].__setitem__(0, np.nan), r"m/b holds NaN or infinite values"),
        (lambda s: s["v/W"].__setitem__((0, 0), np.inf), r"v/W holds NaN or infinite values"),
        (lambda s: s.update(step=-1), r"step must be in \[0, inf\], got -1"),
        (lambda s: s.update(step=1.5), r"step must be an int, got float"),
        (lambda s: s.update(lr=float("nan")), r"lr must be finite|lr .*nan"),
        (lambda s: s.update(beta2=float("inf")), r"beta2"),
    ],
)
def test_load_state_dict_checks_the_state_against_the_params(change, match):
    opt, params = _adam_after_a_step()
    state = opt.state_dict()
    change(state)
    target = optim.Adam(backend="reference")
    with pytest.raises((ValueError, TypeError), match=match):
        target.load_state_dict(state, params)
    assert target.step == 0 and target.state == {"m": {}, "v": {}}  # nothing changed
    with pytest.raises((ValueError, TypeError), match=match):
        optim.from_state_dict(state, backend="reference", params=params)


def test_load_state_dict_with_params_accepts_a_fresh_or_complete_state():
    opt, params = _adam_after_a_step(np.float32)
    target = optim.Adam(backend="reference")
    target.load_state_dict(opt.state_dict(), params)
    assert target.step == 1 and sorted(target.state["v"]) == sorted(params)
    fresh = optim.Adam(backend="reference").state_dict()  # step 0: no slots yet
    target.load_state_dict(fresh, params)
    assert target.step == 0 and target.state == {"m": {}, "v": {}}
    # without params only the values are checked (the state may be for any params)
    partial = opt.state_dict()
    del partial["m/W"]
    target.load_state_dict(partial)
    assert "W" not in target.state["m"]
    # the momentum slot may be negative, only the squared ones may not
    mom = optim.Momentum(backend="reference")
    mom.update(params, {k: np.ones_like(v) for k, v in params.items()})
    optim.Momentum(backend="reference").load_state_dict(mom.state_dict(), params)
    assert (mom.state["velocity"]["W"] < 0).all()
    h = optim.RMSprop(backend="reference").state_dict()
    with pytest.raises(ValueError, match=r"h/W holds negative values"):
        optim.RMSprop(backend="reference").load_state_dict({**h, "step": 1, "h/W": -np.ones(1)})
