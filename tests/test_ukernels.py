"""Kernel-level tests: each GEMM micro-kernel form of every registered configuration this CPU
runs, and each Winograd F(2x2, 3x3) transform of every ISA, called one at a time through the
private binding fastcnn._core._testing (not public API) over the M/N/K edge cases.

The testers follow XNNPACK's (GemmMicrokernelTester): builder methods set m, n, k, strides and
alpha/beta, and test() builds random operands in the kernel's layout, calls the kernel once per
micro-tile, and compares with float64 numpy within a bound that grows with k. Buffers are
padded and filled with a sentinel (operand gaps with NaN) so a read outside the contract shows
as NaN and a write outside the m x n tile as a changed sentinel. Blocking, packing and threads
are the drivers' business (test_gemm.py, test_conv.py).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from fastcnn import _core

T = _core._testing
KERNELS: list[dict[str, Any]] = T.gemm_ukernels()
ISAS: list[str] = _core.available_isas()
FORMS = ["packed", "strided_a", "indirect_b", "indirect_a", "strided_ab"]
DTYPES = [np.float32, np.float64]
SENTINEL = -7777.25  # exact in both dtypes; never a result of the small operands below
ALIGN = 64  # bytes: packed panels are 64-byte aligned (gemm/pack.h)
PAD = 7  # sentinel values before and after each output buffer


def _aligned(n: int, dtype, fill: float) -> np.ndarray:
    """n values of dtype starting at a 64-byte boundary (a 1-D view into a larger buffer)."""
    item = np.dtype(dtype).itemsize
    raw = np.full(n + ALIGN // item, fill, dtype=dtype)
    start = (-raw.ctypes.data % ALIGN) // item
    return raw[start : start + n]


def _padded(n: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """A sentinel-filled buffer of PAD + n + PAD values and the view of its middle n: the
    kernel gets the view, the test checks that the pads are untouched."""
    full = np.full(n + 2 * PAD, SENTINEL, dtype=dtype)
    return full, full[PAD : PAD + n]


def _eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


# ---- GEMM micro-kernels -----------------------------------------------------------------------


class GemmMicrokernelTester:
    """One GEMM micro-kernel configuration (a dict of gemm_ukernels()) and one call's shape.

    m may exceed MR: test() then tiles the rows as a driver does, MR at a time (for packed A a
    panel per tile, for in-place A the tile's first row). n <= NR: one column tile.
    """

    def __init__(self, kernel: dict[str, Any], form: str) -> None:
        self.kernel, self.form = kernel, form
        self.mr, self.nr = int(kernel["mr"]), int(kernel["nr"])
        self.dtype = np.dtype(kernel["dtype"]).type
        self._m, self._n, self._k = self.mr, self.nr, 1
        self._a_stride: int | None = None  # elements between rows of in-place A (default k)
        self._a_k_stride = 1  # elements between columns of in-place A
        self._b_stride: int | None = None  # elements between rows of strided B (default n)
        self._cm_stride: int | None = None  # elements between rows of C (default n)
        self._alpha, self._beta = 1.0, 0.0
        self._seed = 0

    def m(self, v: int) -> GemmMicrokernelTester:
        self._m = v
        return self

    def n(self, v: int) -> GemmMicrokernelTester:
        self._n = v
        return self

    def k(self, v: int) -> GemmMicrokernelTester:
        self._k = v
        return self

    def a_stride(self, v: int) -> GemmMicrokernelTester:
        self._a_stride = v
        return self

    def a_k_stride(self, v: int) -> GemmMicrokernelTester:
        self._a_k_stride = v
        return self

    def b_stride(self, v: int) -> GemmMicrokernelTester:
        self._b_stride = v
        return self

    def cm_stride(self, v: int) -> GemmMicrokernelTester:
        self._cm_stride = v
        return self

    def alpha(self, v: float) -> GemmMicrokernelTester:
        self._alpha = v
        return self

    def beta(self, v: float) -> GemmMicrokernelTester:
        self._beta = v
        return self

    def seed(self, v: int) -> GemmMicrokernelTester:
        self._seed = v
        return self

    @property
    def alpha_applies(self) -> bool:
        return not self.form.startswith("indirect")  # the indirect kernels have alpha = 1

    # Operands in the form's layout: (kernel kwargs, A as the kernel sees it: rows x k)
    def _a_operand(self, rng, rows: int) -> tuple[dict[str, Any], np.ndarray]:
        k, dt, mr = self._k, self.dtype, self.mr
        a = rng.standard_normal((rows, k)).astype(dt)
        if self.form in ("packed", "indirect_b"):
            # A packed kc x MR panel; rows past `rows` are padding the kernel must discard.
            panel = _aligned(k * mr, dt, np.nan).reshape(k, mr)
            panel[:, :rows] = a.T
            return {"a": panel.reshape(-1)}, a
        if self.form == "indirect_a":
            # Rows and columns scattered in a larger buffer, in no particular order.
            buf = rng.standard_normal(4 * (rows + k) + 8).astype(dt)
            aoff = rng.choice(2 * (rows + k) + 4, size=rows, replace=False).astype(np.int64)
            koff = rng.choice(2 * (rows + k) + 4, size=k, replace=False).astype(np.int64)
            return {"a": buf, "aoff": aoff, "koff": koff}, buf[aoff[:, None] + koff[None, :]]
        rsa = k * self._a_k_stride if self._a_stride is None else self._a_stride
        csa = self._a_k_stride
        size = (rows - 1) * rsa + (k - 1) * csa + 1 if k > 0 else 1
        buf = np.full(size, np.nan, dtype=dt)  # gaps between A's elements stay NaN
        idx = np.arange(rows)[:, None] * rsa + np.arange(k)[None, :] * csa
        buf[idx] = a
        return {"a": buf, "rsa": rsa, "csa": csa}, a

    def _b_operand(self, rng) -> tuple[dict[str, Any], np.ndarray]:
        k, n, nr, dt = self._k, self._n, self.nr, self.dtype
        b = rng.standard_normal((k, n)).astype(dt)
        if self.form == "indirect_b":
            # Rows anywhere in a buffer, each NR wide (columns past n are read, not used).
            buf = rng.standard_normal((k + 3) * nr + 5).astype(dt)
            boff = rng.choice((k + 2) * nr + 5, size=k, replace=True).astype(np.int64)
            return {"b": buf, "boff": boff}, buf[boff[:, None] + np.arange(n)[None, :]]
        if self.form == "strided_ab":
            rsb = n if self._b_stride is None else self._b_stride
            buf = np.full(max((k - 1) * rsb + n, 1), np.nan, dtype=dt)
            buf[np.arange(k)[:, None] * rsb + np.arange(n)[None, :]] = b
            return {"b": buf, "rsb": rsb}, b
        # A packed kc x NR panel, 64-byte aligned; columns past n are padding (NaN here: the
        # kernel computes them and must discard them).
        panel = _aligned(k * nr, dt, np.nan).reshape(k, nr)
        panel[:, :n] = b
        return {"b": panel.reshape(-1)}, b

    def test(self) -> None:
        rng = np.random.default_rng(
            [self._seed, self._m, self._n, self._k, FORMS.index(self.form), self.mr, self.nr]
        )
        m, n, k, dt = self._m, self._n, self._k, self.dtype
        assert 1 <= n <= self.nr and m >= 1
        ldc = n if self._cm_stride is None else self._cm_stride
        alpha = self._alpha if self.alpha_applies else 1.0
        beta = self._beta
        bargs, b = self._b_operand(rng)
        cfull, c = _padded((m - 1) * ldc + n, dt)
        cidx = np.arange(m)[:, None] * ldc + np.arange(n)[None, :]
        c0 = rng.standard_normal((m, n)).astype(dt)
        # beta == 0: C is written without being read, so a NaN there must not survive.
        c[cidx] = c0 if beta != 0 else np.nan
        expect_a = np.empty((m, k), dtype=dt)
        for i0 in range(0, m, self.mr):
            rows = min(self.mr, m - i0)
            aargs, a = self._a_operand(rng, rows)
            expect_a[i0 : i0 + rows] = a
            T.gemm_ukernel(
                self.kernel["name"],
                self.form,
                k,
                rows,
                n,
                c=c[i0 * ldc :],
                ldc=ldc,
                alpha=alpha,
                beta=beta,
                **aargs,
                **bargs,
            )
        a64, b64 = expect_a.astype(np.float64), b.astype(np.float64)
        expect = alpha * (a64 @ b64) + (beta * c0.astype(np.float64) if beta != 0 else 0.0)
        # Each result is a k-term dot product (FMAs or multiply-adds, any order) scaled by alpha
        # plus beta*c: bounded by (k + 2) roundings of the sum of absolute values.
        bound = abs(alpha) * (np.abs(a64) @ np.abs(b64)) + abs(beta) * np.abs(c0)
        tol = (k + 2) * _eps(dt) * bound + np.finfo(dt).tiny
        got = c[cidx].astype(np.float64)
        where = f"{self.kernel['name']} {self.form} m={m} n={n} k={k} ldc={ldc} a={alpha} b={beta}"
        assert np.all(np.abs(got - expect) <= tol), where
        outside = np.ones(cfull.shape, dtype=bool)
        outside[PAD + cidx] = False
        assert np.all(cfull[outside] == SENTINEL), f"{where}: wrote outside the tile"


def _kernel_id(kernel: dict[str, Any]) -> str:
    return str(kernel["name"]).replace("_gemm_ukernel_", "_")


@pytest.fixture(params=KERNELS, ids=_kernel_id)
def kernel(request: pytest.FixtureRequest) -> dict[str, Any]:
    return request.param


@pytest.fixture(params=FORMS)
def tester(kernel, request: pytest.FixtureRequest) -> GemmMicrokernelTester:
    return GemmMicrokernelTester(kernel, request.param)


def test_every_available_isa_has_registered_kernels():
    # The list comes from the registered configurations (gemm_configs), per ISA the CPU runs.
    assert sorted({k["isa"] for k in KERNELS}) == sorted(ISAS)
    for dtype in ("float32", "float64"):
        assert {k["isa"] for k in KERNELS if k["dtype"] == dtype} == set(ISAS)
    for k in KERNELS:
        assert k["name"].startswith({"float32": "f32", "float64": "f64"}[k["dtype"]])
        assert k["name"].endswith(f"_{k['mr']}x{k['nr']}__{k['isa']}")
    # The configuration the active ISA uses is among them.
    names = {k["name"] for k in KERNELS}
    assert set(_core.kernel_info().values()) <= names


# Reduction lengths: none, the shortest, below / at / above the unroll of 4, odd, and long.
K_EDGES = [0, 1, 2, 3, 4, 5, 8, 11, 64, 257]


def test_full_tile_over_k(tester):
    for k in K_EDGES:
        tester.k(k).test()


def test_subtiles(tester):
    # Every m <= MR with every n <= NR (the masked and buffered edges), at a short and an odd k.
    for m, n in itertools.product(range(1, tester.mr + 1), range(1, tester.nr + 1)):
        tester.m(m).n(n).k(1 if (m + n) % 2 else 5).test()


def test_m_above_mr_tiled_like_a_caller(tester):
    for m in (tester.mr + 1, 2 * tester.mr + 3):
        for n in (1, tester.nr - 1 or 1, tester.nr):
            tester.m(m).n(n).k(7).test()


def test_alpha_beta(tester):
    for alpha, beta in itertools.product([0.0, 1.0, -1.75], [0.0, 1.0, 0.375]):
        for m, n in ((tester.mr, tester.nr), (1, 1), (tester.mr - 1 or 1, tester.nr - 1 or 1)):
            tester.m(m).n(n).k(9).alpha(alpha).beta(beta).test()


def test_c_stride_larger_than_tile(tester):
    for ldc in (tester.nr + 1, 2 * tester.nr + 5):
        for m, n in ((tester.mr, tester.nr), (tester.mr - 1 or 1, 3 if tester.nr > 3 else 1)):
            tester.m(m).n(n).k(6).cm_stride(ldc).beta(0.5).test()


@pytest.mark.parametrize("form", ["strided_a", "strided_ab"])
def test_a_strides(kernel, form):
    mr = int(kernel["mr"])
    for k, m in itertools.product((1, 3, 13), (1, mr - 1, mr)):
        # Padded rows; transposed with padded columns (the weight gradient's V^T); both strided.
        for rsa, csa in ((k + 5, 1), (1, m + 2), (3 * k + 1, 3)):
            GemmMicrokernelTester(kernel, form).m(m).k(k).a_stride(rsa).a_k_stride(csa).test()


def test_b_stride_strided_ab(kernel):
    tester = GemmMicrokernelTester(kernel, "strided_ab")
    for n in (1, tester.nr // 2 + 1, tester.nr):
        for rsb in (n, n + 1, tester.nr + 9):
            tester.n(n).k(10).b_stride(rsb).beta(1.0).test()


# ---- the binding refuses what the kernels' contract excludes (memory safety) ----------------


def _valid_call(kernel: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    mr, nr, dt = int(kernel["mr"]), int(kernel["nr"]), np.dtype(kernel["dtype"]).type
    k = 4
    c = np.full(mr * nr, SENTINEL, dtype=dt)
    args = dict(
        name=kernel["name"],
        form="packed",
        kc=k,
        m=mr,
        n=nr,
        a=_aligned(k * mr, dt, 1.0),
        b=_aligned(k * nr, dt, 1.0),
        c=c,
        ldc=nr,
    )
    return args, c


def test_binding_refuses_bad_arguments(kernel):
    mr, nr, dt = int(kernel["mr"]), int(kernel["nr"]), np.dtype(kernel["dtype"]).type
    other = np.float64 if dt == np.float32 else np.float32
    args, c = _valid_call(kernel)
    T.gemm_ukernel(**args)  # the valid call runs
    assert np.all(c == 4.0)
    c[:] = SENTINEL
    big = 2**62
    bad: list[tuple[type[Exception], dict[str, Any]]] = [
        (ValueError, {"name": "f32_gemm_ukernel_99x99__generic"}),
        (ValueError, {"form": "transposed"}),
        (ValueError, {"m": 0}),
        (ValueError, {"m": mr + 1}),
        (ValueError, {"n": 0}),
        (ValueError, {"n": nr + 1}),
        (ValueError, {"kc": -1}),
        (ValueError, {"ldc": nr - 1}),
        (ValueError, {"kc": 5}),  # a and b hold 4 rows
        (ValueError, {"ldc": nr + 1}),  # c too short for that stride
        (ValueError, {"c": c[1:]}),
        (ValueError, {"a": args["a"][:-1]}),
        (ValueError, {"b": args["b"][:-1]}),
        (ValueError, {"b": _aligned(4 * nr + 1, dt, 1.0)[1:]}),  # not 64-byte aligned
        (ValueError, {"c": np.full((mr, nr), SENTINEL, dtype=dt)}),  # 2-D
        (ValueError, {"c": np.full(2 * mr * nr, SENTINEL, dtype=dt)[::2]}),  # not contiguous
        (TypeError, {"a": args["a"].astype(other)}),
        (TypeError, {"c": c.astype(other)}),
        (TypeError, {"c": [0.0] * (mr * nr)}),
        (ValueError, {"rsa": 1}),  # strides of a form that has none
        (ValueError, {"boff": np.zeros(4, np.int64)}),
        (ValueError, {"form": "indirect_b", "boff": np.zeros(4, np.int64), "alpha": 2.0}),
        (ValueError, {"form": "indirect_b", "boff": np.zeros(3, np.int64)}),
        (ValueError, {"form": "indirect_b", "boff": np.array([0, 0, 0, -1], np.int64)}),
        (ValueError, {"form": "indirect_b", "boff": np.array([0, 0, 0, 3 * nr + 1], np.int64)}),
        (TypeError, {"form": "indirect_b", "boff": np.zeros(4, np.int32)}),
        (ValueError, {"form": "indirect_a", "aoff": np.zeros(mr, np.int64)}),  # no koff
        (
            ValueError,
            {
                "form": "indirect_a",
                "aoff": np.full(mr, big, np.int64),
                "koff": np.full(4, big, np.int64),
            },
        ),
        (
            ValueError,
            {
                "form": "indirect_a",
                "aoff": np.zeros(mr, np.int64),
                "koff": np.array([0, 0, 0, 4 * mr], np.int64),
            },
        ),
        (ValueError, {"form": "strided_a", "rsa": -1, "csa": 1}),
        (ValueError, {"form": "strided_a", "rsa": big, "csa": big}),
        (ValueError, {"form": "strided_a", "rsa": 4, "csa": 2}),
        (ValueError, {"form": "strided_ab", "rsa": 4, "csa": 1, "rsb": big}),
        (ValueError, {"form": "strided_ab", "rsa": 4, "csa": 1, "rsb": nr + 1}),
    ]
    for exc, change in bad:
        with pytest.raises(exc):
            T.gemm_ukernel(**{**args, **change})
    ro = c.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        T.gemm_ukernel(**{**args, "c": ro})
    assert np.all(c == SENTINEL)  # nothing ran


# ---- Winograd F(2x2, 3x3) transforms ----------------------------------------------------------

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

# Channel counts around every vector width the transforms use (16, 32 or 64 bytes, halved down
# to 16, then scalars: 2 to 16 lanes), plus primes.
CHANNELS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 37]


def _transform_tol(dtype, scale: np.ndarray, terms: int = 16) -> np.ndarray:
    # The transforms add at most `terms` values (and halve exactly): a few roundings each.
    return terms * _eps(dtype) * scale + np.finfo(dtype).tiny


class WinogradTransformTester:
    """One ISA's Winograd tile transforms on an image of th x tw tiles of `channels` channels,
    pixel-major with a padded row stride, tiles listed in a shuffled order (the kernels take
    any offsets)."""

    def __init__(self, isa: str, dtype) -> None:
        self.isa, self.dtype = isa, dtype
        self._channels, self._th, self._tw = 1, 1, 1
        self._odd_rows, self._odd_cols = False, False  # an output whose last tiles are cut
        self._row_pad, self._point_pad = 0, 0  # extra elements per image row, per point

    def channels(self, v: int) -> WinogradTransformTester:
        self._channels = v
        return self

    def tiles(self, th: int, tw: int) -> WinogradTransformTester:
        self._th, self._tw = th, tw
        return self

    def cut_edges(self, rows: bool, cols: bool) -> WinogradTransformTester:
        self._odd_rows, self._odd_cols = rows, cols
        return self

    def row_pad(self, v: int) -> WinogradTransformTester:
        self._row_pad = v
        return self

    def point_pad(self, v: int) -> WinogradTransformTester:
        self._point_pad = v
        return self

    def _tiles(self, rng) -> list[tuple[int, int]]:
        order = [(r, c) for r in range(self._th) for c in range(self._tw)]
        return [order[i] for i in rng.permutation(len(order))]

    def _rng(self, salt: int):
        return np.random.default_rng(
            [salt, ISAS.index(self.isa), self._channels, self._th, self._tw, self._row_pad]
        )

    def test_input(self) -> None:
        rng, dt, C = self._rng(1), self.dtype, self._channels
        h, w = 2 * self._th + 2, 2 * self._tw + 2
        ws = w * C + self._row_pad
        img = rng.standard_normal((h, w, C)).astype(dt)
        x = np.full(h * ws, np.nan, dtype=dt)  # row padding NaN: never read
        x.reshape(h, ws)[:, : w * C] = img.reshape(h, w * C)
        tiles = self._tiles(rng)
        nt = len(tiles)
        off = np.array([(2 * r) * ws + (2 * c) * C for r, c in tiles], np.int64)
        vs = nt * C + self._point_pad
        vfull, v = _padded(15 * vs + nt * C, dt)
        T.winograd_input(self.isa, C, nt, x, off, ws, v, vs)
        for t, (r, c) in enumerate(tiles):
            d = img[2 * r : 2 * r + 4, 2 * c : 2 * c + 4].astype(np.float64)  # 4 x 4 x C
            expect = np.einsum("ai,ijc,bj->abc", BT, d, BT).reshape(16, C)
            got = np.stack([v[xi * vs + t * C : xi * vs + (t + 1) * C] for xi in range(16)])
            tol = _transform_tol(dt, np.abs(d).sum(axis=(0, 1)))
            assert np.all(np.abs(got - expect) <= tol), (self.isa, C, t)
        written = np.zeros(vfull.shape, bool)
        for xi in range(16):
            written[PAD + xi * vs : PAD + xi * vs + nt * C] = True
        assert np.all(vfull[~written] == SENTINEL)

    def _output_grid(self) -> tuple[int, int]:
        return 2 * self._th - self._odd_rows, 2 * self._tw - self._odd_cols

    def _edges(self, tiles) -> np.ndarray:
        p, q = self._output_grid()
        return np.array(
            [(1 if 2 * c + 1 < q else 0) | (2 if 2 * r + 1 < p else 0) for r, c in tiles], np.uint8
        )

    def test_output(self) -> None:
        rng, dt, K = self._rng(2), self.dtype, self._channels
        tiles = self._tiles(rng)
        nt = len(tiles)
        ms = nt * K + self._point_pad
        m = np.full(16 * ms, np.nan, dtype=dt)
        mt = rng.standard_normal((nt, 16, K)).astype(dt)
        for xi in range(16):
            m[xi * ms : xi * ms + nt * K] = mt[:, xi, :].reshape(-1)
        p, q = self._output_grid()
        ys = q * K + self._row_pad
        yfull, y = _padded(p * ys, dt)
        off = np.array([(2 * r) * ys + (2 * c) * K for r, c in tiles], np.int64)
        edge = self._edges(tiles)
        T.winograd_output(self.isa, K, nt, m, ms, y, off, edge, ys)
        written = np.zeros(yfull.shape, bool)
        for t, (r, c) in enumerate(tiles):
            mm = mt[t].astype(np.float64).reshape(4, 4, K)
            expect = np.einsum("ai,ijk,bj->abk", AT, mm, AT)  # 2 x 2 x K
            tol = _transform_tol(dt, np.abs(mm).sum(axis=(0, 1)))
            for i, j in itertools.product(range(2), range(2)):
                if 2 * r + i >= p or 2 * c + j >= q:
                    continue  # a cut tile's missing pixels: must stay untouched
                at = off[t] + i * ys + j * K
                got = y[at : at + K].astype(np.float64)
                assert np.all(np.abs(got - expect[i, j]) <= tol), (self.isa, K, t, i, j)
                written[PAD + at : PAD + at + K] = True
        assert np.all(yfull[~written] == SENTINEL)

    def test_dy(self, nr: int) -> None:
        rng, dt, K = self._rng(3), self.dtype, self._channels
        tiles = self._tiles(rng)
        nt = len(tiles)
        p, q = self._output_grid()
        ys = q * K + self._row_pad
        dyimg = rng.standard_normal((p, q, K)).astype(dt)
        dy = np.full(p * ys, np.nan, dtype=dt)  # row padding NaN; so is nothing else read
        dy.reshape(p, ys)[:, : q * K] = dyimg.reshape(p, q * K)
        off = np.array([(2 * r) * ys + (2 * c) * K for r, c in tiles], np.int64)
        edge = self._edges(tiles)
        kpad = -(-K // nr) * nr
        zs = kpad * nt + self._point_pad
        zfull, z = _padded(15 * zs + kpad * nt, dt)
        T.winograd_dy(self.isa, K, nt, dy, off, edge, ys, z, zs, nr)
        written = np.zeros(zfull.shape, bool)
        for t, (r, c) in enumerate(tiles):
            g = np.zeros((2, 2, K))
            for i, j in itertools.product(range(2), range(2)):
                if 2 * r + i < p and 2 * c + j < q:
                    g[i, j] = dyimg[2 * r + i, 2 * c + j]
            expect = np.einsum("ia,abk,jb->ijk", AT.T, g, AT.T).reshape(16, K)
            tol = _transform_tol(dt, np.abs(g).sum(axis=(0, 1)), terms=4)
            for xi in range(16):
                at = xi * zs + (np.arange(kpad) // nr) * nt * nr + t * nr + np.arange(kpad) % nr
                got = z[at].astype(np.float64)
                assert np.all(np.abs(got[:K] - expect[xi]) <= tol), (self.isa, K, nr, t, xi)
                assert np.all(got[K:] == 0)  # the last panel's columns past K
                written[PAD + at] = True
        assert np.all(zfull[~written] == SENTINEL)


@pytest.fixture(params=ISAS)
def conv_isa(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_input_transform(conv_isa, dtype):
    for c in CHANNELS:
        WinogradTransformTester(conv_isa, dtype).channels(c).tiles(2, 3).row_pad(c % 3).test_input()
    for th, tw in ((1, 1), (1, 4), (3, 1)):
        tester = WinogradTransformTester(conv_isa, dtype).channels(5).tiles(th, tw)
        tester.row_pad(11).point_pad(3).test_input()


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_output_transform(conv_isa, dtype):
    for c, (rows, cols) in itertools.product(CHANNELS, [(False, False), (True, True)]):
        tester = WinogradTransformTester(conv_isa, dtype).channels(c).tiles(2, 3)
        tester.cut_edges(rows, cols).row_pad(c % 4).point_pad(c % 2).test_output()
    for th, tw, rows, cols in ((1, 1, True, False), (1, 1, False, True), (1, 1, True, True)):
        tester = WinogradTransformTester(conv_isa, dtype).channels(9).tiles(th, tw)
        tester.cut_edges(rows, cols).test_output()


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_dy_transform(conv_isa, dtype):
    # nr: the weight gradient's micro-tile widths (panels), and 1 (every channel its own).
    for c, nr in itertools.product(CHANNELS, [1, 8, 16, 32]):
        tester = WinogradTransformTester(conv_isa, dtype).channels(c).tiles(2, 2)
        tester.cut_edges(c % 2 == 1, c % 3 == 0).row_pad(c % 5).point_pad(nr % 3).test_dy(nr)


def _filter_transform(g: np.ndarray) -> np.ndarray:
    """U[xi, c, k] = (G g[k, c] G^T)[xi] in float64."""
    return np.einsum("ar,kcrs,bs->abck", G, g.astype(np.float64), G).reshape(16, *g.shape[1::-1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_filter_transform(dtype, rng):
    for K, C in ((1, 1), (1, 5), (7, 1), (8, 8), (17, 3)):
        w = rng.standard_normal((K, C, 3, 3)).astype(dtype)
        for k0, k1 in ((0, K), (0, K // 2), (K // 2, K), (K // 3, K // 3)):
            u = np.full(16 * C * K + 5, SENTINEL, dtype=dtype)
            T.transform_weights(w, k0, k1, u)
            got = u[: 16 * C * K].reshape(16, C, K)
            expect = _filter_transform(w)
            tol = _transform_tol(dtype, np.abs(w.astype(np.float64)).sum(axis=(2, 3)).T, terms=9)
            err = np.abs(got[:, :, k0:k1] - expect[:, :, k0:k1])
            assert np.all(err <= tol[:, k0:k1]), (K, C, k0, k1)
            assert np.all(got[:, :, :k0] == SENTINEL) and np.all(got[:, :, k1:] == SENTINEL)
            assert np.all(u[16 * C * K :] == SENTINEL)


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_filter_gradient_is_the_adjoint(dtype, rng):
    # dW = G^T dU G: for any filters g, <U(g), dU> = <g, dW(dU)> (the gradient of U's entries).
    for K, C in ((1, 1), (3, 2), (8, 9), (16, 1)):
        du = rng.standard_normal(16 * C * K).astype(dtype)
        dw = np.full((K, C, 3, 3), SENTINEL, dtype=dtype)
        T.gradient_to_weights(du, dw)
        d = du.astype(np.float64).reshape(4, 4, C, K)
        expect = np.einsum("ar,abck,bs->kcrs", G, d, G)
        tol = _transform_tol(dtype, np.abs(d).sum(axis=(0, 1)).T[:, :, None, None])
        assert np.all(np.abs(dw - expect) <= tol), (K, C)
        # The kernels themselves are adjoint: <U(g), dU> == <g, dW(dU)>.
        g = rng.standard_normal((K, C, 3, 3)).astype(dtype)
        u = np.empty(16 * C * K, dtype=dtype)
        T.transform_weights(g, 0, K, u)
        lhs = float(np.dot(u.astype(np.float64), d.reshape(-1)))
        rhs = float(np.sum(g.astype(np.float64) * dw))
        scale = float(np.abs(g).sum() * np.abs(d).sum())
        assert abs(lhs - rhs) <= 64 * _eps(dtype) * scale, (K, C)


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_transforms_compose_to_a_3x3_correlation(conv_isa, dtype, rng):
    # A^T [ sum_c (B^T d B) * (G g G^T) ] A over one tile = the 2 x 2 valid correlation of the
    # 4 x 4 window d with the 3 x 3 filter g: the ISA's input and output transforms and the
    # filter transform agree with each other, not just with the matrices above.
    C, K = 7, 5
    d = rng.standard_normal((4, 4, C)).astype(dtype)
    w = rng.standard_normal((K, C, 3, 3)).astype(dtype)
    v = np.empty(16 * C, dtype=dtype)
    T.winograd_input(conv_isa, C, 1, d.reshape(-1), np.zeros(1, np.int64), 4 * C, v, C)
    u = np.empty(16 * C * K, dtype=dtype)
    T.transform_weights(w, 0, K, u)
    m = np.einsum("xc,xck->xk", v.reshape(16, C), u.reshape(16, C, K)).astype(dtype).reshape(-1)
    y = np.empty(4 * K, dtype=dtype)
    T.winograd_output(
        conv_isa, K, 1, m, K, y, np.zeros(1, np.int64), np.array([3], np.uint8), 2 * K
    )
    expect = np.zeros((2, 2, K))
    for i, j in itertools.product(range(2), range(2)):
        expect[i, j] = np.einsum("rsc,kcrs->k", d[i : i + 3, j : j + 3].astype(np.float64), w)
    tol = 64 * C * _eps(dtype) * (np.abs(d).max() * np.abs(w).max() * 9)
    np.testing.assert_allclose(y.reshape(2, 2, K), expect, rtol=0, atol=tol)


# ---- the pixel-major copies of the same kernel table --------------------------------------------

# Sizes around the 32-byte transpose blocks (8 floats, 4 doubles).
COPY_SIZES = [1, 3, 4, 5, 7, 8, 9, 12, 17, 19]


@pytest.mark.parametrize("dtype", DTYPES)
def test_to_pixel_major(conv_isa, dtype, rng):
    for rows, cols in itertools.product(COPY_SIZES, COPY_SIZES):
        for run in sorted({cols, 3, 1}):
            lds = cols + rows % 3
            ldd = rows + cols % 2
            drs = run * ldd + 2
            src = np.full(rows * lds, np.nan, dtype=dtype)
            val = rng.standard_normal((rows, cols)).astype(dtype)
            src.reshape(rows, lds)[:, :cols] = val
            j = np.arange(cols)
            at = (j // run) * drs + (j % run) * ldd
            dfull, dst = _padded(int(at.max()) + rows, dtype)
            assert T.to_pixel_major(conv_isa, src, rows, cols, lds, dst, ldd, run, drs)
            idx = at[None, :] + np.arange(rows)[:, None]
            assert np.array_equal(dst[idx], val), (rows, cols, run)
            written = np.zeros(dfull.shape, bool)
            written[PAD + idx] = True
            assert np.all(dfull[~written] == SENTINEL)
    for bad in (np.inf, -np.inf, np.nan):  # in the block path and in the element path
        for rows, cols in ((9, 9), (3, 5)):
            src = np.ones(rows * cols, dtype=dtype)
            src[rows * cols // 2] = bad
            dst = np.empty(rows * cols, dtype=dtype)
            assert not T.to_pixel_major(conv_isa, src, rows, cols, cols, dst, rows, cols, 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_pixel_major(conv_isa, dtype, rng):
    for count, K in itertools.product(COPY_SIZES, COPY_SIZES):
        for with_bias, relu in itertools.product([False, True], repeat=2):
            lds = K + count % 3
            plane = count + K % 2
            src = np.full(count * lds, np.nan, dtype=dtype)
            val = rng.standard_normal((count, K)).astype(dtype)
            src.reshape(count, lds)[:, :K] = val
            b = rng.standard_normal(K).astype(dtype) if with_bias else None
            yfull, y = _padded((K - 1) * plane + count, dtype)
            assert T.from_pixel_major(conv_isa, src, count, K, lds, b, relu, y, plane)
            expect = val.T + (b[:, None] if b is not None else dtype(0))
            if relu:
                expect = np.maximum(expect, 0)
            idx = np.arange(K)[:, None] * plane + np.arange(count)[None, :]
            assert np.array_equal(y[idx], expect), (count, K, with_bias, relu)
            written = np.zeros(yfull.shape, bool)
            written[PAD + idx] = True
            assert np.all(yfull[~written] == SENTINEL)
    for count, K in ((9, 9), (3, 5)):  # -inf under a ReLU still reports
        src = np.ones(count * K, dtype=dtype)
        src[count * K // 2] = -np.inf
        y = np.empty(count * K, dtype=dtype)
        assert not T.from_pixel_major(conv_isa, src, count, K, K, None, True, y, count)


def test_conv_kernel_bindings_refuse_bad_arguments():
    isa = ISAS[0]
    f = np.float32
    off = np.zeros(1, np.int64)
    x = np.zeros(16 * 2, f)
    v = np.zeros(16 * 2, f)
    T.winograd_input(isa, 2, 1, x, off, 8, v, 2)
    bad_input = [
        (ValueError, (isa, 2, 1, x[:-1], off, 8, v, 2)),  # window past x
        (ValueError, (isa, 2, 1, x, off, 8, v[:-1], 2)),
        (ValueError, (isa, 2, 1, x, off, 8, v, 1)),  # vs < ntiles * C
        (ValueError, (isa, 2, 2, x, off, 8, v, 4)),  # fewer offsets than tiles
        (ValueError, (isa, 2, 1, x, np.array([-1], np.int64), 8, v, 2)),
        (ValueError, (isa, 2, 1, x, np.array([2**62], np.int64), 2**62, v, 2)),
        (ValueError, (isa, 0, 1, x, off, 8, v, 2)),
        (ValueError, ("avx1024", 2, 1, x, off, 8, v, 2)),
        (TypeError, (isa, 2, 1, x, off, 8, v.astype(np.float64), 2)),
        (TypeError, (isa, 2, 1, x, off.astype(np.int32), 8, v, 2)),
    ]
    for exc, args in bad_input:
        with pytest.raises(exc):
            T.winograd_input(*args)
    m = np.zeros(16, f)
    y = np.zeros(4, f)
    edge = np.array([3], np.uint8)
    T.winograd_output(isa, 1, 1, m, 1, y, off, edge, 2)
    for exc, args in [
        (ValueError, (isa, 1, 1, m, 1, y[:-1], off, edge, 2)),
        (ValueError, (isa, 1, 1, m, 1, y, off, np.array([4], np.uint8), 2)),
        (ValueError, (isa, 1, 1, m[:-1], 1, y, off, edge, 2)),
        (ValueError, (isa, 1, 1, m, 1, y, off, np.zeros(0, np.uint8), 2)),
    ]:
        with pytest.raises(exc):
            T.winograd_output(*args)
    z = np.zeros(16 * 4, f)
    dy = np.zeros(2 * 2 * 3, f)
    T.winograd_dy(isa, 3, 1, dy, off, edge, 6, z, 4, 4)
    for exc, args in [
        (ValueError, (isa, 3, 1, dy, off, edge, 6, z[:-1], 4, 4)),  # the zero columns too
        (ValueError, (isa, 3, 1, dy, off, edge, 6, z, 3, 4)),
        (ValueError, (isa, 3, 1, dy, off, edge, 6, z, 4, 0)),
        (ValueError, (isa, 3, 1, dy[:-1], off, edge, 6, z, 4, 4)),
        (ValueError, (isa, 2**63 - 1, 1, dy, off, edge, 6, z, 2**62, 2)),  # K rounds past int64
    ]:
        with pytest.raises(exc):
            T.winograd_dy(*args)
    src = np.zeros(12, f)
    with pytest.raises(ValueError):
        T.to_pixel_major(isa, src, 3, 4, 4, np.zeros(11, f), 3, 4, 0)
    with pytest.raises(ValueError):
        T.to_pixel_major(isa, src, 3, 4, 4, np.zeros(12, f), 3, 0, 0)
    with pytest.raises(ValueError):
        T.from_pixel_major(isa, src, 4, 3, 3, np.zeros(2, f), False, np.zeros(12, f), 4)
    with pytest.raises(ValueError):
        T.from_pixel_major(isa, src, 4, 3, 3, None, False, np.zeros(11, f), 4)
    w = np.zeros((2, 3, 3, 3), f)
    with pytest.raises(ValueError):
        T.transform_weights(w, 0, 2, np.zeros(16 * 6 - 1, f))
    with pytest.raises(ValueError):
        T.transform_weights(w, 1, 3, np.zeros(16 * 6, f))
    with pytest.raises(ValueError):
        T.transform_weights(np.zeros((2, 3, 3, 2), f), 0, 2, np.zeros(16 * 6, f))
    with pytest.raises(ValueError):
        T.gradient_to_weights(np.zeros(16 * 6 - 1, f), w)
    with pytest.raises(TypeError):
        T.gradient_to_weights(np.zeros(16 * 6, f), w.astype(np.float64))
