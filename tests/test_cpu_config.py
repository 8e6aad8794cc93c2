"""The CPU description and the per-microarchitecture GEMM configuration: CPUID and sysfs cache
decoding on synthetic values, the microarchitecture classes, the blocking model on known
caches, what ``config()`` / ``fastcnn info`` report, and that the measured classes keep their
numbers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import fastcnn
from fastcnn import cli
from fastcnn._env import _core

T = _core._testing

KIB, MIB = 1 << 10, 1 << 20


def leaf(kind: int, level: int, sharing: int, ways: int, line: int, sets: int) -> tuple:
    """The (eax, ebx, ecx, edx) of a CPUID leaf-4 / 0x8000001D subleaf (one partition)."""
    eax = kind | (level << 5) | (1 << 8) | ((sharing - 1) << 14)
    ebx = (line - 1) | ((ways - 1) << 22)
    return eax, ebx, sets - 1, 0


# Sapphire Rapids-class Intel leaf 4: 48 KiB 12-way L1d, 32 KiB L1i, 2 MiB 16-way L2 (two
# hyperthreads each), 105 MiB 15-way L3 shared by up to 128 logical processors, then the end.
SPR_LEAF4 = [
    leaf(1, 1, 2, 12, 64, 64),
    leaf(2, 1, 2, 8, 64, 64),
    leaf(3, 2, 2, 16, 64, 2048),
    leaf(3, 3, 128, 15, 64, 105 * MIB // (15 * 64)),
    (0, 0, 0, 0),
]
SPR_CACHES = {
    "l1d": {"size": 48 * KIB, "line": 64, "ways": 12, "sharing": 2},
    "l2": {"size": 2 * MIB, "line": 64, "ways": 16, "sharing": 2},
    "l3": {"size": 105 * MIB, "line": 64, "ways": 15, "sharing": 128},
    "source": "cpuid",
}
# The Zen 4 development machine's AMD leaf 0x8000001D as read (EPYC Zen 4: 32 KiB L1d/L1i,
# 1 MiB L2, 32 MiB L3).
ZEN4_LEAF_8000001D = [
    (0x00000121, 0x01C0003F, 0x0000003F, 0),
    (0x00000122, 0x01C0003F, 0x0000003F, 0),
    (0x00000143, 0x01C0003F, 0x000007FF, 2),
    (0x00004163, 0x03C0003F, 0x00007FFF, 1),
    (0, 0, 0, 0),
]
# The Zen 5 machine's, as read (EPYC family 0x1A model 2: 48 KiB 12-way L1d, 32 KiB L1i, 1 MiB
# 16-way L2, 32 MiB L3).
ZEN5_LEAF_8000001D = [
    (0x00000121, 0x02C0003F, 0x0000003F, 0),
    (0x00000122, 0x01C0003F, 0x0000003F, 0),
    (0x00000143, 0x03C0003F, 0x000003FF, 2),
    (0x00004163, 0x03C0003F, 0x00007FFF, 1),
    (0, 0, 0, 0),
]

# Today's Zen 4 blocking (src/cpp/gemm/gemm.cpp kMeasured), per ISA and dtype: kernel, mc, kc, nc.
ZEN4_MEASURED = {
    "generic": {
        "float32": [("f32_gemm_ukernel_4x8__generic", 128, 256, 4096)],
        "float64": [("f64_gemm_ukernel_4x4__generic", 96, 256, 4096)],
    },
    "avx2": {
        "float32": [("f32_gemm_ukernel_6x16__avx2", 144, 256, 4080)],
        "float64": [("f64_gemm_ukernel_6x8__avx2", 96, 256, 2040)],
    },
    "avx512": {
        "float32": [
            ("f32_gemm_ukernel_12x32__avx512", 144, 256, 4096),
            ("f32_gemm_ukernel_8x32__avx512", 128, 256, 4096),
            ("f32_gemm_ukernel_8x16__avx512", 128, 256, 4096),
        ],
        "float64": [
            ("f64_gemm_ukernel_12x16__avx512", 96, 256, 2048),
            ("f64_gemm_ukernel_8x16__avx512", 96, 256, 2048),
            ("f64_gemm_ukernel_8x8__avx512", 96, 256, 2048),
        ],
    },
}


# ---- decoding -----------------------------------------------------------------------------


def test_decode_cache_leaf_fields():
    d = T.decode_cache_leaf(*leaf(1, 1, 2, 12, 64, 64))
    assert d == {"level": 1, "type": "data", "size": 48 * KIB, "line": 64, "ways": 12,
                 "sharing": 2}  # fmt: skip
    # partitions (EBX[21:12]) multiply the size; EDX's flags change nothing
    eax, ebx, ecx, _ = leaf(3, 2, 1, 8, 64, 1024)
    assert T.decode_cache_leaf(eax, ebx | (1 << 12), ecx, 0x7)["size"] == 2 * 8 * 64 * 1024
    assert T.decode_cache_leaf(0, 0, 0, 0)["type"] == "none"
    assert T.decode_cache_leaf(0x1F, 0, 0, 0)["type"] == "none"  # a reserved type


def test_caches_from_cpuid_sapphire_rapids():
    assert T.caches_from_cpuid(SPR_LEAF4) == SPR_CACHES


def test_caches_from_cpuid_zen4_as_read_there():
    c = T.caches_from_cpuid(ZEN4_LEAF_8000001D)
    assert [c[k]["size"] for k in ("l1d", "l2", "l3")] == [32 * KIB, 1 * MIB, 32 * MIB]
    assert c["l3"]["sharing"] == 2 and c["l1d"]["ways"] == 8


def test_caches_from_cpuid_zen5_as_read_there():
    c = T.caches_from_cpuid(ZEN5_LEAF_8000001D)
    assert [c[k]["size"] for k in ("l1d", "l2", "l3")] == [48 * KIB, 1 * MIB, 32 * MIB]
    assert [c[k]["ways"] for k in ("l1d", "l2", "l3")] == [12, 16, 16]
    # the model's float32 12x32 blocking there: 3 of 12 ways for A -> kc 256
    assert T.model_gemm_blocking(12, 32, 4, c) == (504, 256, 8192)


def test_caches_from_cpuid_stops_at_the_end_and_skips_what_it_does_not_use():
    # the instruction cache alone is no L1d; nothing after a type-0 subleaf is read
    c = T.caches_from_cpuid([leaf(2, 1, 1, 8, 64, 64), (0, 0, 0, 0), leaf(3, 2, 1, 8, 64, 512)])
    assert all(c[k]["size"] == 0 for k in ("l1d", "l2", "l3"))
    # a unified L1 counts as L1d; the first cache of a level wins
    c = T.caches_from_cpuid([leaf(3, 1, 1, 4, 64, 64), leaf(1, 1, 1, 8, 64, 64)])
    assert c["l1d"]["size"] == 16 * KIB and c["l2"]["size"] == 0


def _sysfs_index(root: Path, i: int, **files: str) -> None:
    d = root / f"index{i}"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text + "\n")


def test_caches_from_sysfs(tmp_path):
    common = {"coherency_line_size": "64"}
    _sysfs_index(tmp_path, 0, level="1", type="Data", size="48K", ways_of_associativity="12",
                 shared_cpu_list="0,56", **common)  # fmt: skip
    _sysfs_index(tmp_path, 1, level="1", type="Instruction", size="32K",
                 ways_of_associativity="8", shared_cpu_list="0,56", **common)  # fmt: skip
    _sysfs_index(tmp_path, 2, level="2", type="Unified", size="2048K",
                 ways_of_associativity="16", shared_cpu_list="0,56", **common)  # fmt: skip
    _sysfs_index(tmp_path, 3, level="3", type="Unified", size="105M",
                 ways_of_associativity="15", shared_cpu_list="0-55,56-111", **common)  # fmt: skip
    c = T.caches_from_sysfs(str(tmp_path))
    assert c["l1d"] == {"size": 48 * KIB, "line": 64, "ways": 12, "sharing": 2}
    assert c["l2"]["size"] == 2 * MIB
    assert c["l3"] == {"size": 105 * MIB, "line": 64, "ways": 15, "sharing": 112}
    assert c["source"] == "sysfs"
    # no directory, or a gap in the indices: what there is, nothing more
    assert T.caches_from_sysfs(str(tmp_path / "none"))["l1d"]["size"] == 0


@pytest.mark.skipif(
    not Path("/sys/devices/system/cpu/cpu0/cache/index0").is_dir(), reason="no sysfs caches"
)
def test_sysfs_agrees_with_cpuid_here():
    here = fastcnn.config()["cpu"]["caches"]
    sysfs = T.caches_from_sysfs("/sys/devices/system/cpu/cpu0/cache")
    for level in ("l1d", "l2", "l3"):
        if sysfs[level]["size"]:
            assert sysfs[level]["size"] == here[level]["size"], level


@pytest.mark.parametrize(
    ("eax", "family", "model"),
    [
        (0x00B00F21, 0x1A, 0x02),  # AMD EPYC 9005 (Turin, Zen 5)
        (0x00A10F11, 0x19, 0x11),  # AMD EPYC 9004 (Genoa, Zen 4)
        (0x00830F10, 0x17, 0x31),  # AMD EPYC 7002 (Rome, Zen 2)
        (0x000806F8, 6, 0x8F),  # Intel Xeon 4th gen (Sapphire Rapids)
        (0x00050654, 6, 0x55),  # Intel Xeon Scalable (Skylake-SP)
        (0x000306C3, 6, 0x3C),  # Intel Core 4th gen (Haswell)
        (0x00000F29, 0xF, 0x2),  # Pentium 4: base family 0xF, no extended family
    ],
)
def test_decode_family_model(eax, family, model):
    assert T.decode_family_model(eax) == (family, model)


AVX2 = {"avx2": True, "fma": True}
AVX512 = {**AVX2, "avx512f": True}


# vendor, family, features -> class: every class fastcnn has, with the CPUs that get it.
CLASSIFICATION = [
    ("AuthenticAMD", 0x1A, AVX512, "zen5"),  # Turin, Granite Ridge
    ("AuthenticAMD", 0x1A, AVX2, "generic"),  # family 0x1A without AVX-512: not measured
    ("AuthenticAMD", 0x19, AVX512, "zen4"),  # Genoa, Raphael
    ("AuthenticAMD", 0x19, AVX2, "zen3"),  # Milan, Vermeer
    ("AuthenticAMD", 0x17, AVX2, "zen3"),  # Rome, Naples
    ("HygonGenuine", 0x18, AVX2, "zen3"),  # Dhyana (Zen 1)
    ("AuthenticAMD", 0x1B, AVX512, "generic"),  # a later family: not classified yet
    ("AuthenticAMD", 0x15, AVX2, "generic"),  # Excavator
    ("GenuineIntel", 6, {**AVX512, "avx512fp16": True, "amx-tile": True}, "spr"),
    ("GenuineIntel", 6, {**AVX512, "amx-tile": True}, "spr"),
    ("GenuineIntel", 6, AVX512, "skx"),  # Skylake-SP .. Ice Lake-SP
    ("GenuineIntel", 6, AVX2, "haswell"),
    ("GenuineIntel", 6, {"avx2": True}, "generic"),  # AVX2 without FMA: no AVX2 kernels
    ("GenuineIntel", 0xF, AVX2, "generic"),
    ("", 0, {}, "generic"),  # not x86
]


@pytest.mark.parametrize(("vendor", "family", "features", "microarch"), CLASSIFICATION)
def test_classify_microarch(vendor, family, features, microarch):
    assert T.classify_microarch(vendor, family, features) == microarch


# ---- the blocking model -------------------------------------------------------------------


def _check_sane(mr: int, nr: int, elem: int, caches: dict[str, Any], blocking: tuple) -> None:
    mc, kc, nc = blocking
    assert mc % mr == 0 and nc % nr == 0 and kc % 8 == 0, blocking
    l1 = caches["l1d"]
    # the A and B micro-panels fit in L1 with a way to spare; the A block in half of L2
    assert (mr + nr) * kc * elem <= l1["size"] * (l1["ways"] - 1) // l1["ways"], blocking
    assert mc * kc * elem <= caches["l2"]["size"] // 2, blocking
    assert 16 * nr <= nc <= 8192


@pytest.mark.parametrize(
    ("mr", "nr", "elem", "expected"),
    [
        # f32 12x32: 3 of L1's 12 ways for A -> kc 256; 1020 rows (1 MiB); nc at its 16-NR floor
        (12, 32, 4, (1020, 256, 512)),
        (12, 16, 8, (780, 168, 320)),  # f64 12x16: 4 ways -> kc 170 -> 168
        (8, 32, 4, (1024, 256, 512)),
        (8, 16, 4, (680, 384, 272)),  # 3 ways; nc 280 -> 272
        (6, 16, 4, (510, 512, 256)),  # AVX2 on the same core: 3 ways -> kc 512
        (4, 8, 4, (340, 768, 136)),
    ],
)
def test_model_for_sapphire_rapids_caches(mr, nr, elem, expected):
    got = T.model_gemm_blocking(mr, nr, elem, SPR_CACHES)
    assert got == expected
    _check_sane(mr, nr, elem, SPR_CACHES, got)


def test_model_for_haswell_caches():
    # 32 KiB 8-way L1d, 256 KiB L2, 2.5 MiB of L3 per core: AVX2 float32 6x16
    caches = {
        "l1d": {"size": 32 * KIB, "ways": 8},
        "l2": {"size": 256 * KIB, "ways": 8},
        "l3": {"size": 20 * MIB, "ways": 20, "sharing": 8},
    }
    got = T.model_gemm_blocking(6, 16, 4, caches)
    assert got == (192, 168, 1936)
    _check_sane(6, 16, 4, caches, got)


def test_model_grows_with_the_caches():
    small = T.model_gemm_blocking(12, 32, 4, SPR_CACHES)
    big = T.model_gemm_blocking(
        12, 32, 4, {**SPR_CACHES, "l2": {"size": 4 * MIB}, "l3": {"size": 64 * MIB}}
    )
    assert big[1] == small[1] and big[0] > small[0] and big[2] > small[2]


def test_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="elem_bytes"):
        T.model_gemm_blocking(12, 32, 2, SPR_CACHES)
    with pytest.raises(ValueError, match="l3"):
        T.model_gemm_blocking(12, 32, 4, {"l1d": SPR_CACHES["l1d"], "l2": SPR_CACHES["l2"]})


# ---- what this process uses ---------------------------------------------------------------


def test_cpu_info_shape():
    info = fastcnn.cpu_info()
    assert info == fastcnn.config()["cpu"]
    assert fastcnn.gemm_configs() == fastcnn.config()["gemm"]
    assert set(info) == {"vendor", "family", "model", "microarch", "caches"}
    assert info["microarch"] in {row[3] for row in CLASSIFICATION}
    caches = info["caches"]
    for level in ("l1d", "l2", "l3"):  # always filled: read, or the documented defaults
        assert caches[level]["size"] > 0 and caches[level]["line"] > 0
    assert caches["source"].split("+")[0] in {"cpuid", "sysfs", "default"}


def test_gemm_configs_match_the_kernels():
    cfgs = fastcnn.config()["gemm"]
    kernels = fastcnn.config()["kernels"]
    assert cfgs["float32"][0]["kernel"] == kernels["f32_gemm"]
    assert cfgs["float64"][0]["kernel"] == kernels["f64_gemm"]
    for dtype, elem in (("float32", 4), ("float64", 8)):
        for c in cfgs[dtype]:
            assert c["kernel"].endswith(f"{c['mr']}x{c['nr']}__{fastcnn.get_isa()}")
            assert c["mc"] % c["mr"] == 0 and c["nc"] % c["nr"] == 0 and c["kc"] > 0
            if c["blocking"] == "modelled":
                caches = fastcnn.config()["cpu"]["caches"]
                model = T.model_gemm_blocking(c["mr"], c["nr"], elem, caches)
                assert (c["mc"], c["kc"], c["nc"]) == model
            else:
                assert c["blocking"] in ("measured", "FASTCNN_GEMM_BLOCKING")


def _blocking(isa: str) -> dict[str, list[tuple]]:
    with _isa(isa):
        return {
            dtype: [(c["kernel"], c["mc"], c["kc"], c["nc"]) for c in cfgs]
            for dtype, cfgs in fastcnn.config()["gemm"].items()
        }


class _isa:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.old = fastcnn.get_isa()
        fastcnn.set_isa(self.name)

    def __exit__(self, *exc: object) -> None:
        fastcnn.set_isa(self.old)


@pytest.mark.skipif(fastcnn.config()["cpu"]["microarch"] != "zen4", reason="not a Zen 4")
@pytest.mark.parametrize("isa", fastcnn.available_isas())
def test_zen4_keeps_the_measured_blocking(isa):
    assert _blocking(isa) == ZEN4_MEASURED[isa]
    with _isa(isa):
        assert all(c["blocking"] == "measured" for v in fastcnn.config()["gemm"].values()
                   for c in v)  # fmt: skip


# The classes with measured rows for the float32 AVX-512 tiles only (the rest is modelled).
MEASURED_F32 = {
    "spr": [
        ("f32_gemm_ukernel_12x32__avx512", 144, 256, 4096),
        ("f32_gemm_ukernel_8x32__avx512", 144, 256, 4096),
        ("f32_gemm_ukernel_8x16__avx512", 144, 256, 4096),
    ],
    "zen5": [
        ("f32_gemm_ukernel_12x32__avx512", 144, 384, 4096),
        ("f32_gemm_ukernel_8x32__avx512", 144, 384, 4096),
        ("f32_gemm_ukernel_8x16__avx512", 144, 384, 4096),
    ],
}
HERE = fastcnn.config()["cpu"]["microarch"]


@pytest.mark.parametrize(
    "arch",
    [pytest.param(a, marks=pytest.mark.skipif(HERE != a, reason=f"not {a}")) for a in MEASURED_F32],
)
@pytest.mark.skipif("avx512" not in fastcnn.available_isas(), reason="no AVX-512 kernels")
def test_keeps_its_measured_float32_blocking(arch):
    blocking = _blocking("avx512")
    assert blocking["float32"] == MEASURED_F32[arch]
    with _isa("avx512"):
        cfgs = fastcnn.config()["gemm"]
    assert all(c["blocking"] == "measured" for c in cfgs["float32"])
    assert all(c["blocking"] == "modelled" for c in cfgs["float64"])


def test_blocking_does_not_depend_on_threads():
    """Chosen once from the CPU: the same with 1 thread as with the default count, in a fresh
    process, so the K blocking (and with it every bit of a result) is the same for any count."""
    code = "import fastcnn, json; print(json.dumps(fastcnn.config()['gemm']))"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    assert json.loads(res.stdout) == fastcnn.config()["gemm"]
    with fastcnn.threads(1):
        one = fastcnn.config()["gemm"]
    assert one == fastcnn.config()["gemm"]


def test_fastcnn_isa_selects_that_isas_configuration():
    isa = fastcnn.available_isas()[0]
    code = "import fastcnn, json; print(json.dumps(fastcnn.config()['gemm']))"
    env = {**os.environ, "FASTCNN_ISA": isa}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    with _isa(isa):
        assert json.loads(res.stdout) == fastcnn.config()["gemm"]


# Run with another blocking (the modelled one: on Zen 4 kc 80 for the 12x32 tile, not 256; or
# one set by hand, odd and tiny so that every loop has edges): products and convolutions
# spanning several K blocks and edge tiles still match numpy, with the same bits on 1 and 2
# threads, and every configuration reports the blocking asked for.
_BLOCKING_CHECK = """
import json
import numpy as np
import fastcnn
from fastcnn import functional as F
from fastcnn.reference import functional as R
from fastcnn._env import _core
from fastcnn._config import min_thread_work

caches = fastcnn.config()["cpu"]["caches"]
for isa in fastcnn.available_isas():
    fastcnn.set_isa(isa)
    for dtype, elem in (("float32", 4), ("float64", 8)):
        for c in fastcnn.config()["gemm"][dtype]:
            if {by_hand}:
                mr, nr = c["mr"], c["nr"]
                want = (max(mr, 13 // mr * mr), 17, max(nr, 40 // nr * nr))
                assert c["blocking"] == "FASTCNN_GEMM_BLOCKING", c
            else:
                want = _core._testing.model_gemm_blocking(c["mr"], c["nr"], elem, caches)
                assert c["blocking"] == "modelled", c
            assert (c["mc"], c["kc"], c["nc"]) == want, c
rng = np.random.default_rng(0)
for isa in fastcnn.available_isas():
    fastcnn.set_isa(isa)
    for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-10)):
        for m, n, k in ((37, 45, 301), (200, 130, 1000), (13, 7, 777), (5, 3, 999)):
            a = rng.standard_normal((m, k)).astype(dtype)
            b = rng.standard_normal((k, n)).astype(dtype)
            with fastcnn.threads(1):
                one = F.gemm(a, b)
            with fastcnn.threads(2), min_thread_work(0):
                two = F.gemm(a, b)
            assert np.array_equal(one, two), (isa, dtype, m, n, k)
            ref = a.astype(np.float64) @ b.astype(np.float64)
            assert np.abs(one - ref).max() <= tol * np.sqrt(k) * np.abs(ref).max(), (isa, m, n, k)
        x = rng.standard_normal((3, 24, 9, 9)).astype(dtype)
        w = rng.standard_normal((20, 24, 3, 3)).astype(dtype)
        y = F.conv2d_forward(x, w, None, stride=1, pad=1)
        yr = R.conv2d_forward(x, w, None, stride=1, pad=1)
        assert np.allclose(y, yr, rtol=100 * tol, atol=100 * tol), (isa, dtype)
print("ok")
"""


@pytest.mark.parametrize("blocking", ["modelled", "13,17,40"])
def test_other_blockings_compute_the_same_results(blocking):
    env = {**os.environ, "FASTCNN_GEMM_BLOCKING": blocking}
    code = _BLOCKING_CHECK.replace("{by_hand}", str(blocking != "modelled"))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


_BAD_BLOCKINGS = ["fast", "1,2", "1,2,3,4", "0,256,4096", "144,,4096", "-1,2,3",
                  "144,256,99999999", "1e3,256,4096", "144, 256, 4096"]  # fmt: skip


def test_info_shows_a_blocking_set_by_hand():
    env = {**os.environ, "FASTCNN_GEMM_BLOCKING": "96,128,2048"}
    res = subprocess.run([sys.executable, "-m", "fastcnn", "info"], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "MC 96 KC 128 NC 2048 (set by FASTCNN_GEMM_BLOCKING)" in res.stdout, res.stdout


@pytest.mark.parametrize("value", _BAD_BLOCKINGS)
def test_bad_gemm_blocking_value_is_a_one_line_error(value):
    env = {**os.environ, "FASTCNN_GEMM_BLOCKING": value}
    res = subprocess.run([sys.executable, "-c", "import fastcnn; fastcnn.config()"], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode != 0
    assert f"FASTCNN_GEMM_BLOCKING: unknown value '{value}'" in res.stderr, res.stderr[-2000:]


# ---- what is shown ------------------------------------------------------------------------


def _expected_lines() -> list[str]:
    cfg = fastcnn.config()
    cpu = cfg["cpu"]
    lines = [f"family {cpu['family']:#x} model {cpu['model']:#x} ({cpu['microarch']})",
             f"(from {cpu['caches']['source']})"]  # fmt: skip
    for dtype, cfgs in cfg["gemm"].items():
        for c in cfgs:
            head = f"gemm {dtype}:"
            lines.append(f"{head:<17}{c['mr']}x{c['nr']} MC {c['mc']} KC {c['kc']} NC {c['nc']}")
    return lines


def test_show_config_shows_cpu_caches_and_gemm():
    buf = io.StringIO()
    fastcnn.show_config(file=buf)
    text = buf.getvalue()
    for line in _expected_lines():
        assert line in text, (line, text)
    l1 = fastcnn.config()["cpu"]["caches"]["l1d"]
    assert f"L1d {l1['size'] // KIB} KiB {l1['ways']}-way" in text


def test_info_command_shows_the_configuration(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    for line in _expected_lines():
        assert line in out, (line, out)
    assert ("measured on" in out) or ("modelled from the caches" in out)
