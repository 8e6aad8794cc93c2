"""Optimizers that update a dict of parameter arrays in place, and learning-rate schedules.

Each optimizer calls its backend's ``<name>_update`` (fastcnn.functional for "fast" — fused
kernels where the core has them — or fastcnn.reference.functional), so the math is exactly
the reference's formulas. State is plain arrays and scalars (``state_dict``) so a checkpoint
fits an npz file without pickle. Gradient clipping, weight decay and param groups are left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Callable

import numpy as np

from fastcnn import _backends
from fastcnn import _validation as V

__all__ = [
    "Optimizer",
    "SGD",
    "Momentum",
    "Nesterov",
    "AdaGrad",
    "RMSprop",
    "Adam",
    "OPTIMIZERS",
    "from_state_dict",
    "Schedule",
    "Constant",
    "StepDecay",
    "CosineAnnealingWarmRestarts",
    "LinearWarmup",
    "SCHEDULES",
]

# Allowed range of every hyperparameter, as keyword arguments of _validation.check_real.
_RANGES: dict[str, dict[str, Any]] = {
    "lr": {"low": 0.0},
    "momentum": {"low": 0.0, "high": 1.0},
    "decay_rate": {"low": 0.0, "high": 1.0},
    "beta1": {"low": 0.0, "high": 1.0, "high_open": True},
    "beta2": {"low": 0.0, "high": 1.0, "high_open": True},
    "eps": {"low": 0.0},
}


class Optimizer:
    """Base class. ``update(params, grads)`` applies one step to every array of ``params``.

    ``params`` and ``grads`` are dicts with the same keys (e.g. a model's ``params`` and the
    dict returned by its ``gradient``); each param is updated in place, so layers sharing the
    arrays see the step. Per-parameter state (velocity, h, m, v) is created on first use as
    zeros shaped like the param and keyed by the param's name. ``step`` counts the updates done.
    """

    SLOTS: tuple[str, ...] = ()  # names of the per-parameter state arrays
    NONNEGATIVE: tuple[str, ...] = ()  # the slots that accumulate squares: never negative
    HYPER: tuple[str, ...] = ()  # hyperparameters besides lr, in constructor order

    def __init__(self, lr: float, *, backend: str = "fast", **hyper: float) -> None:
        where = type(self).__name__
        self.backend = _backends.check_backend(backend, where)
        self._F: ModuleType = _backends.functional_module(backend, where)
        self.lr = lr
        for name, value in hyper.items():
            setattr(self, name, V.check_real(value, name, where, **_RANGES[name]))
        self.step = 0
        self.state: dict[str, dict[str, np.ndarray]] = {slot: {} for slot in self.SLOTS}

    @property
    def lr(self) -> float:
        """The learning rate used by the next update; a schedule sets it between steps."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = V.check_real(value, "lr", type(self).__name__, **_RANGES["lr"])

    def __repr__(self) -> str:
        hyper = ", ".join(f"{h}={getattr(self, h)!r}" for h in ("lr", *self.HYPER))
        return f"{type(self).__name__}({hyper}, backend={self.backend!r})"

    # -- the step -------------------------------------------------------------------------------

    def update(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Update every ``params[key]`` in place from ``grads[key]``; the keys must match."""
        self._check_update_args(params, grads)
        self.step += 1
        for key, param in params.items():
            slots = [self._slot(slot, key, param) for slot in self.SLOTS]
            self._apply(param, grads[key], *slots)

    def _apply(self, param: np.ndarray, grad: np.ndarray, *slots: np.ndarray) -> None:
        raise NotImplementedError

    def _slot(self, slot: str, key: str, param: np.ndarray) -> np.ndarray:
        arrays = self.state[slot]
        if key not in arrays:
            arrays[key] = np.zeros_like(param)
        return arrays[key]

    def _check_update_args(self, params: Any, grads: Any) -> None:
        """Check everything before touching any array, so a bad call leaves no param half-done."""
        where = f"{type(self).__name__}.update"
        for name, d in (("params", params), ("grads", grads)):
            if not isinstance(d, Mapping):
                raise TypeError(f"{where}: {name} must be a dict of arrays, got {type(d).__name__}")
        missing = [k for k in params if k not in grads]
        extra = [k for k in grads if k not in params]
        if missing or extra:
            raise ValueError(
                f"{where}: params and grads must have the same keys; "
                f"no gradient for {missing}, gradients for unknown params {extra}"
            )
        for key, param in params.items():
            V.check_inplace_array(param, f"params[{key!r}]", where)
            grad = V.check_float_array(grads[key], f"grads[{key!r}]", where)
            V.check_same_shape(param, grad, f"params[{key!r}]", f"grads[{key!r}]", where)

    # -- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """A flat dict of plain values: ``"type"`` (the class name), ``"lr"``, each
        hyperparameter and ``"step"`` as Python scalars, and copies of the state arrays under
        ``"<slot>/<param key>"`` (e.g. ``"m/W1"``). Round-trips exactly through load_state_dict
        and through fastcnn.models.save_checkpoint (npz, no pickle)."""
        out: dict[str, Any] = {"type": type(self).__name__, "lr": self.lr}
        for h in self.HYPER:
            out[h] = getattr(self, h)
        out["step"] = self.step
        for slot in self.SLOTS:
            for key, arr in self.state[slot].items():
                out[f"{slot}/{key}"] = arr.copy()
        return out

    def load_state_dict(
        self, state: Mapping[str, Any], params: Mapping[str, np.ndarray] | None = None
    ) -> None:
        """Restore what state_dict returned (copies the arrays). Everything is checked first;
        on error the optimizer is unchanged.

        Every value must be valid for this optimizer: finite, ``step`` an int >= 0, the slots
        that accumulate squares (AdaGrad's and RMSprop's h, Adam's v) >= 0. Given the
        ``params`` the state is for (a model's), the state arrays must be exactly one per slot
        and param, each with its param's shape and dtype — or none at all at step 0 — so a
        resumed run continues the same run instead of silently restarting a moment at zero.
        """
        name = type(self).__name__
        where = f"{name}.load_state_dict"
        if not isinstance(state, Mapping):
            raise TypeError(f"{where}: state must be a dict, got {type(state).__name__}")
        kind = state.get("type")
        if kind != name:
            raise ValueError(f"{where}: the state is for optimizer {kind!r}, not {name!r}")
        scalars = ("lr", *self.HYPER, "step")
        missing = [k for k in scalars if k not in state]
        if missing:
            raise ValueError(f"{where}: the state lacks {missing}")
        values = {k: V.check_real(state[k], k, where, **_RANGES[k]) for k in ("lr", *self.HYPER)}
        step = V.check_int(state["step"], "step", where, low=0)
        slots: dict[str, dict[str, np.ndarray]] = {slot: {} for slot in self.SLOTS}
        unknown = []
        for k, value in state.items():
            if k in scalars or k == "type":
                continue
            slot, sep, key = k.partition("/")
            if not sep or slot not in slots or not key:
                unknown.append(k)
                continue
            # State arrays are updated in place by later steps: a float copy, never converted.
            arr = np.array(V.as_array(value, k, where), copy=True)
            slots[slot][key] = V.check_inplace_array(arr, k, where)
            _check_state_values(arr, k, slot in self.NONNEGATIVE, where)
        if unknown:
            expected = ", ".join(f"'{s}/<param>'" for s in self.SLOTS) or "no state arrays"
            raise ValueError(f"{where}: unknown entries {unknown} (expected {expected})")
        if params is not None:
            self._check_state_fits(slots, step, params, where)
        for k, v in values.items():
            setattr(self, k, v)
        self.step = step
        self.state = slots

    def _check_state_fits(
        self, slots: Mapping[str, Mapping[str, np.ndarray]], step: int, params: Any, where: str
    ) -> None:
        """The state arrays are one per slot and param, shaped and typed like the param (or,
        at step 0, there are none: the slots are created on the first update)."""
        if not isinstance(params, Mapping):
            raise TypeError(
                f"{where}: params must be a dict of arrays, got {type(params).__name__}"
            )
        given = [f"{slot}/{key}" for slot, arrays in slots.items() for key in arrays]
        if step == 0 and not given:
            return
        want = [f"{slot}/{key}" for slot in self.SLOTS for key in params]
        missing = [k for k in want if k not in given]
        if missing:
            raise ValueError(
                f"{where}: the state after {step} steps lacks {_few(missing)} (every param "
                f"has its {', '.join(self.SLOTS)}; a missing one would restart at zero)"
            )
        extra = [k for k in given if k not in want]
        if extra:
            raise ValueError(f"{where}: state {_few(extra)} for params the model does not have")
        for slot, arrays in slots.items():
            for key, arr in arrays.items():
                param = np.asarray(params[key])
                if arr.shape != param.shape or arr.dtype != param.dtype:
                    raise ValueError(
                        f"{where}: '{slot}/{key}' is {arr.dtype} {arr.shape} but "
                        f"param {key!r} is {param.dtype} {param.shape}"
                    )


def _check_state_values(arr: np.ndarray, name: str, nonnegative: bool, where: str) -> None:
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: {name} holds NaN or infinite values")
    if nonnegative and (arr < 0).any():
        raise ValueError(
            f"{where}: {name} holds negative values (a running mean of squared gradients "
            "is never negative)"
        )


def _few(names: list[str], limit: int = 6) -> str:
    """A bounded listing of state keys for a message."""
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


class SGD(Optimizer):
    """param -= lr * grad."""

    def __init__(self, lr: float = 0.01, *, backend: str = "fast") -> None:
        super().__init__(lr, backend=backend)

    def _apply(self, param: np.ndarray, grad: np.ndarray, *slots: np.ndarray) -> None:
        self._F.sgd_update(param, grad, self.lr)


class Momentum(Optimizer):
    """velocity = momentum*velocity - lr*grad; param += velocity."""

    SLOTS = ("velocity",)
    HYPER = ("momentum",)
    momentum: float

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, *, backend: str = "fast") -> None:
        super().__init__(lr, backend=backend, momentum=momentum)

    def _apply(self, param: np.ndarray, grad: np.ndarray, *slots: np.ndarray) -> None:
        self._F.momentum_update(param, grad, slots[0], self.lr, self.momentum)


class Nesterov(Optimizer):
    """Nesterov momentum in the "Deep Learning from Scratch" form (see nesterov_update)."""

    SLOTS = ("velocity",)
    HYPER = ("momentum",)
    momentum: float

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, *, backend: str = "fast") -> None:
        super().__init__(lr, backend=backend, momentum=momentum)

    def _apply(self, param: np.ndarray, grad: np.ndarray, *slots: np.ndarray) -> None:
        self._F.nesterov_update(param, grad, slots[0], self.lr, self.momentum)


class AdaGrad(Optimizer):
    """h += grad*grad; param -= lr*grad/(sqrt(h) + eps)."""

    SLOTS = ("h",)
    NONNEGATIVE = ("h",)
    HYPER = ("eps",)
    eps: float

    def __init__(self, lr: float = 0.01, eps: float = 1e-7, *, backend: str = "fast") -> None:
        super().__init__(lr, backend=backend, eps=eps)

    def _apply(self, param: np.ndarray, grad: np.ndarray, *slots: np.ndarray) -> None:
        self._F.adagrad_update(param, grad, slots[0], self.lr, self.eps)


class RMSprop(Optimizer):
    """h = decay_rate*h + (1 - decay_rate)*grad*grad; param -= lr*grad/(sqrt(h) + eps)."""

    SLOTS = ("h",)
    NONNEGATIVE = ("h",)
    HYPER = ("decay_rate", "eps")
    decay_rate: float
    eps: float

    def __init__(
        self,
        lr: float = 0.01,
        decay_rate: float = 0.99,
        eps: float = 1e-7,
        *,
        backend: str = "fast",
    ) -> None:
        super().__init__(lr, backend=backend, decay_rate=decay_rate, eps=eps)

    def _apply(self, param: np.ndarray, grad: np.ndarray, *slots: np.ndarray) -> None:
        self._F.rmsprop_update(param, grad, slots[0], self.lr, self.decay_rate, self.eps)


class Adam(Optimizer):
    """Adam with the bias correction folded into the step size (see adam_update); ``step``
    is the 1-based update count passed to the kernel."""

    SLOTS = ("m", "v")
    NONNEGATIVE = ("v",)
    HYPER = ("beta1", "beta2", "eps")
    beta1: float
    beta2: float
    eps: float

    def __init__(
        self,
        lr: float = 0.001,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        *,
        backend: str = "fast",
    ) -> None:
        super().__init__(lr, backend=backend, beta1=beta1, beta2=beta2, eps=eps)

    def _apply(self, param: np.ndarray, grad: np.ndarray, *slots: np.ndarray) -> None:
        m, v = slots
        self._F.adam_update(param, grad, m, v, self.lr, self.beta1, self.beta2, self.step, self.eps)


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def from_state_dict(
    state: Mapping[str, Any],
    backend: str = "fast",
    params: Mapping[str, np.ndarray] | None = None,
) -> Optimizer:
    """A new optimizer of the class named by ``state["type"]``, with that state loaded (and
    checked against ``params`` if given, as load_state_dict does)."""
    kind = state.get("type") if isinstance(state, Mapping) else None
    classes = {cls.__name__: cls for cls in OPTIMIZERS.values()}
    if kind not in classes:
        raise ValueError(
            f"from_state_dict: unknown optimizer type {kind!r} (known: {', '.join(classes)})"
        )
    cls = classes[kind]
    missing = [k for k in ("lr", *cls.HYPER) if k not in state]
    if missing:
        raise ValueError(f"from_state_dict: the {kind} state lacks {missing}")
    opt = cls(state["lr"], *[state[h] for h in cls.HYPER], backend=backend)
    opt.load_state_dict(state, params)
    return opt


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules: pure functions lr = schedule(base_lr, t).
#
# t is a 0-based count of the unit the caller steps on — epochs or iterations, the schedule
# does not care — and may be fractional (a per-iteration caller can pass
# t = epoch + i / iters_per_epoch to decay smoothly on an epoch scale). Step sizes, periods and
# warm-up lengths are in that same unit. The caller sets ``optimizer.lr = schedule(base, t)``.
# ---------------------------------------------------------------------------------------------


def _check_call(name: str, base_lr: Any, t: Any) -> tuple[float, float]:
    where = f"{name}.__call__"
    return V.check_real(base_lr, "base_lr", where, low=0.0), V.check_real(t, "t", where, low=0.0)


class Schedule:
    """Base class: ``__call__(base_lr, t) -> lr`` with no state, so any t can be asked any time
    (a resumed run only needs its step count)."""

    def __call__(self, base_lr: float, t: float) -> float:
        base_lr, t = _check_call(type(self).__name__, base_lr, t)
        return self._lr(base_lr, t)

    def _lr(self, base_lr: float, t: float) -> float:
        raise NotImplementedError


class Constant(Schedule):
    """lr = base_lr for every t."""

    def _lr(self, base_lr: float, t: float) -> float:
        return base_lr

    def __repr__(self) -> str:
        return "Constant()"


class StepDecay(Schedule):
    """lr = base_lr * gamma ** floor(t / step_size): multiply by gamma every step_size units."""

    def __init__(self, step_size: float, gamma: float = 0.1) -> None:
        self.step_size = V.check_real(step_size, "step_size", "StepDecay", low=0.0, low_open=True)
        self.gamma = V.check_real(gamma, "gamma", "StepDecay", low=0.0, low_open=True)

    def _lr(self, base_lr: float, t: float) -> float:
        return base_lr * self.gamma ** math.floor(t / self.step_size)

    def __repr__(self) -> str:
        return f"StepDecay(step_size={self.step_size!r}, gamma={self.gamma!r})"


class CosineAnnealingWarmRestarts(Schedule):
    """SGDR (Loshchilov & Hutter): cosine from base_lr down to eta_min over a period, then
    restart at base_lr. The first period lasts t0 units, each next one t_mult times longer.

    With t_cur the time since the last restart and t_i the current period:
    lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t_cur / t_i)) / 2.
    eta_min is an absolute learning rate.
    """

    def __init__(self, t0: float, t_mult: float = 1, eta_min: float = 0.0) -> None:
        where = "CosineAnnealingWarmRestarts"
        self.t0 = V.check_real(t0, "t0", where, low=0.0, low_open=True)
        self.t_mult = V.check_real(t_mult, "t_mult", where, low=1.0)
        self.eta_min = V.check_real(eta_min, "eta_min", where, low=0.0)

    def _position(self, t: float) -> tuple[float, float]:
        """(t_cur, t_i): the time into the current period and that period's length."""
        if self.t_mult == 1.0:
            return math.fmod(t, self.t0), self.t0
        start, length = 0.0, self.t0
        while t >= start + length:  # periods grow geometrically: O(log t) iterations
            start += length
            length *= self.t_mult
        return t - start, length

    def _lr(self, base_lr: float, t: float) -> float:
        t_cur, t_i = self._position(t)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2

    def __repr__(self) -> str:
        return (
            f"CosineAnnealingWarmRestarts(t0={self.t0!r}, t_mult={self.t_mult!r}, "
            f"eta_min={self.eta_min!r})"
        )


class LinearWarmup(Schedule):
    """Linear warm-up over the first ``warmup_steps`` units, then ``then`` (or base_lr).

    For t < warmup_steps: lr = base_lr * (t + 1) / (warmup_steps + 1), so the first step
    (t = 0) is never 0 and the ramp ends just below base_lr. Afterwards
    lr = then(base_lr, t - warmup_steps): the following schedule starts its own t at 0.
    warmup_steps = 0 means no warm-up.
    """

    def __init__(
        self, warmup_steps: float, then: Callable[[float, float], float] | None = None
    ) -> None:
        self.warmup_steps = V.check_real(warmup_steps, "warmup_steps", "LinearWarmup", low=0.0)
        if then is not None and not callable(then):
            raise TypeError(
                f"LinearWarmup: then must be a schedule (base_lr, t) -> lr or None, "
                f"got {type(then).__name__}"
            )
        self.then = then

    def _lr(self, base_lr: float, t: float) -> float:
        if t < self.warmup_steps:
            return base_lr * (t + 1) / (self.warmup_steps + 1)
        if self.then is None:
            return base_lr
        return float(self.then(base_lr, t - self.warmup_steps))

    def __repr__(self) -> str:
        return f"LinearWarmup(warmup_steps={self.warmup_steps!r}, then={self.then!r})"


SCHEDULES: dict[str, type[Schedule]] = {
    "constant": Constant,
    "step": StepDecay,
    "cosine": CosineAnnealingWarmRestarts,
    "warmup": LinearWarmup,
}
