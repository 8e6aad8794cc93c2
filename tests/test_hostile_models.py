"""Hostile model files, checkpoints and params pickles (issue 12): each is small on disk but
asks a naive reader for gigabytes, a traceback, or a model that predicts NaN. Each must be one
ModelFileError naming the file — from the library, and from the CLI as one line with exit
status 2 — with the reader's peak RSS under hostile.rss_bound and an answer within seconds.

The makers at the top build each case from a valid model (importable to measure a case by
hand). Zip members are written by zipfile directly, not np.savez, so a case can choose each
member's compression, declared sizes and .npy header. The optimizer-state checks of
load_checkpoint are unit-tested in test_models.py and test_optim.py.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import hostile
from fastcnn import models, optim

ZEROS = 200_000_000  # the extra member: 2e8 zeros
CHUNK = 1 << 24


def entries(model: models.Model) -> dict[str, np.ndarray]:
    return models._file._model_entries(model)


def header(model: models.Model, **kwargs: object) -> np.ndarray:
    """The architecture member of ``model`` with ``kwargs`` changed."""
    return np.array(
        json.dumps({"class": type(model).__name__, "kwargs": {**model.arguments(), **kwargs}})
    )


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A version 1.0 .npy header for an array of ``shape`` and ``dtype``."""
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
         "shape": shape}  # fmt: skip
    text = repr(d).encode("latin1")
    pad = 64 - (10 + len(text) + 1) % 64
    body = text + b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def write_zip(path: Path, members: dict[str, np.ndarray], compressed: tuple[str, ...] = ()) -> Path:
    """``members`` as an npz: stored, except the keys in ``compressed`` (deflated)."""
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for key, arr in members.items():
            method = zipfile.ZIP_DEFLATED if key in compressed else zipfile.ZIP_STORED
            info = zipfile.ZipInfo(f"{key}.npy")
            info.compress_type = method
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(arr), allow_pickle=False)
    return path


def add_zeros_member(path: Path, key: str, shape: tuple[int, ...], dtype: object) -> None:
    """Append a deflated .npy member of zeros, streamed (never held in memory here)."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dt.itemsize
    zeros = bytes(CHUNK)
    with zipfile.ZipFile(path, "a", allowZip64=True) as zf:
        info = zipfile.ZipInfo(f"{key}.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            f.write(npy_header(shape, dt))
            left = nbytes
            while left:
                n = min(left, CHUNK)
                f.write(zeros[:n])
                left -= n


def model_file(path: Path, model: models.Model, **changes: np.ndarray) -> Path:
    """``model``'s file with entries replaced (or added) as given."""
    return write_zip(path, {**entries(model), **changes})


def extra_zeros_member(path: Path, model: models.Model) -> Path:
    """The issue's case: a valid model plus one compressed member of 2e8 float32 zeros."""
    write_zip(path, entries(model))
    add_zeros_member(path, "params/W9", (ZEROS,), np.float32)
    return path


def huge_hidden_size(path: Path, model: models.Model, hidden: int = 40_000) -> Path:
    """The issue's case: the header says hidden_size=40000, the params are the model's."""
    return model_file(path, model, __fastcnn_model__=header(model, hidden_size=hidden))


def huge_consistent_model(path: Path, model: models.Model, hidden: int = 40_000) -> Path:
    """Header and member shapes agree on hidden_size=40000, the weights are deflated zeros:
    a few MB that would legitimately need ~700 MB once decompressed."""
    # the hidden layer's params: W2 (fan_in, hidden), b2 (hidden,), W3 (hidden, output_size)
    fan_in, out = model.params["W2"].shape[0], model.params["W3"].shape[1]
    shapes = {"W2": (fan_in, hidden), "b2": (hidden,), "W3": (hidden, out)}
    members = {k: v for k, v in entries(model).items() if k[len("params/") :] not in shapes}
    members["__fastcnn_model__"] = header(model, hidden_size=hidden)
    write_zip(path, members)
    for k, shape in shapes.items():
        add_zeros_member(path, f"params/{k}", shape, model.dtype)
    return path


def nested_json_header(path: Path, model: models.Model, depth: int = 100_000) -> Path:
    """The issue's case: the architecture JSON is 100,000 nested brackets."""
    return model_file(path, model, __fastcnn_model__=np.array("[" * depth + "]" * depth))


def compression_method(path: Path, model: models.Model, method: int = 99) -> Path:
    """The issue's case: one member (params/W1) says compression method ``method``."""
    model_file(path, model)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("params/W1.npy")
    struct.pack_into("<H", data, info.header_offset + 8, method)  # the local header
    # W1's central directory record: its name follows the record's fixed 46 bytes
    pos = data.index(b"PK\x01\x02")
    while data[pos + 46 : pos + 46 + len(info.filename)] != info.filename.encode():
        pos = data.index(b"PK\x01\x02", pos + 4)
    struct.pack_into("<H", data, pos + 10, method)
    path.write_bytes(bytes(data))
    return path


def non_finite(path: Path, model: models.Model, key: str, value: float) -> Path:
    """The model with one element of param ``key`` set to ``value`` (NaN or inf)."""
    arr = model.params[key].copy()
    arr.flat[arr.size // 2] = value
    return model_file(path, model, **{f"params/{key}": arr})


def huge_declared_member(path: Path, model: models.Model) -> Path:
    """params/W1's .npy header declares (10**12, 784) float32; its data is 100 bytes."""
    members = entries(model)
    with zipfile.ZipFile(path, "w") as zf:
        for key, arr in members.items():
            with zf.open(f"{key}.npy", "w") as f:
                if key == "params/W1":
                    f.write(npy_header((10**12, 784), np.float32) + bytes(100))
                else:
                    np.lib.format.write_array(f, np.asarray(arr), allow_pickle=False)
    return path


def encode_amplifier(path: Path, size: int = 1 << 20, calls: int = 300) -> Path:
    """A protocol-2 pickle that calls _codecs.encode ``calls`` times on one memoised
    ``size``-character string: a ~1 MB file that builds calls * size bytes."""
    out = bytearray(b"\x80\x02")
    out += b"c_codecs\nencode\nq\x00"  # GLOBAL, BINPUT 0
    out += b"X" + struct.pack("<I", size) + b"a" * size + b"q\x01"  # BINUNICODE, BINPUT 1
    out += b"U\x06latin1q\x02"  # SHORT_BINSTRING, BINPUT 2
    out += b"]("  # EMPTY_LIST, MARK
    for _ in range(calls):
        out += b"h\x00h\x01h\x02\x86R"  # BINGET x3, TUPLE2, REDUCE
    out += b"e."  # APPENDS, STOP
    path.write_bytes(bytes(out))
    return path


def many_entries(path: Path, model: models.Model, n: int = 70_000) -> Path:
    """A valid model plus ``n`` empty entries: more than 65,535, so the count is in the zip64
    end record. zipfile would index all of them (~700 bytes each) before anything is read."""
    model_file(path, model)
    with zipfile.ZipFile(path, "a") as zf:
        for i in range(n):
            zf.writestr(f"meta/{i}.npy", b"")
    return path


def checkpoint_with_optim_bomb(path: Path, model: models.Model) -> Path:
    """A valid Adam checkpoint plus an extra optimizer entry of 2e8 deflated zeros."""
    opt = optim.Adam(backend="reference")
    opt.update(model.params, {k: np.ones_like(v) for k, v in model.params.items()})
    models.save_checkpoint(path, model, opt)
    add_zeros_member(path, "optim/m/W9", (ZEROS,), np.float32)
    return path


# ---------------------------------------------------------------------------------------------
# The tests: every case is one ModelFileError naming the file, in bounded memory and time,
# from the library and from the CLI (one line on stderr, exit status 2, nothing written).
# ---------------------------------------------------------------------------------------------

SECONDS = 10.0  # CPU seconds (user + system), generous: well under one on an idle machine

# case -> (how to make it, what the error says)
CASES = {
    "extra zeros member": (extra_zeros_member, r"unexpected params \['W9'\] for the SimpleConvNet"),
    "hidden_size 40000": (
        huge_hidden_size,
        r"param 'W2' has shape \(4320, 100\) in the file but the SimpleConvNet expects "
        r"\(4320, 40000\)",
    ),
    "consistent deflated 40000": (
        huge_consistent_model,
        r"declare [\d,]+ bytes once decompressed, more than 2x the file's",
    ),
    "huge declared shape": (
        huge_declared_member,
        r"entry 'params/W1': its .npy header declares float32 \(1000000000000, 784\)",
    ),
    "nested JSON": (nested_json_header, r"metadata '__fastcnn_model__' nests too deeply"),
    "compression method 99": (
        compression_method,
        r"entry 'params/W1' uses zip compression method 99, which fastcnn does not read",
    ),
    "NaN param": (
        lambda p, m: non_finite(p, m, "W2", float("nan")),
        r"param 'W2' holds NaN or infinite values",
    ),
    "inf param": (
        lambda p, m: non_finite(p, m, "b3", float("inf")),
        r"param 'b3' holds NaN or infinite values",
    ),
    "70,000 entries": (
        many_entries,
        r"a zip archive of 70,008 entries \(a fastcnn file has at most 4,096\); refused",
    ),
    "checkpoint optim bomb": (
        checkpoint_with_optim_bomb,
        r"declare .* bytes once decompressed, more than 2x the file's",
    ),
}
MEMORY_CASES = (
    "extra zeros member",
    "hidden_size 40000",
    "consistent deflated 40000",
    "huge declared shape",
    "70,000 entries",
    "checkpoint optim bomb",
)
# models.load and predict never read a checkpoint's optimizer state (so never its bomb).
CHECKPOINT_ONLY = ("checkpoint optim bomb",)
MODEL_CASES = [c for c in CASES if c not in CHECKPOINT_ONLY]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every case's file, made once (the bombs take a second or two to deflate)."""
    d = tmp_path_factory.mktemp("hostile")
    model = models.SimpleConvNet(backend="reference")
    return {
        name: make(d / f"{name.replace(' ', '_')}.npz", model) for name, (make, _) in CASES.items()
    }


def _check_bounded(run: hostile.Run, path: Path) -> None:
    assert run.peak_rss < hostile.rss_bound(path), f"{run.peak_rss / 2**20:.0f} MB"
    assert run.cpu_seconds < SECONDS, (run.cpu_seconds, run.seconds)


@pytest.mark.parametrize(
    "case, loader",
    [(c, "load_checkpoint") for c in MEMORY_CASES]
    + [(c, "load") for c in MEMORY_CASES if c not in CHECKPOINT_ONLY],
)
def test_library_refuses_in_bounded_memory(files, case, loader):
    path = files[case]
    code = (
        "from fastcnn import models\n"
        "try:\n"
        f"    models.{loader}({str(path)!r}, backend='reference')\n"
        "except models.ModelFileError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    raise SystemExit('loaded')\n"
    )
    run = hostile.run_code(code)
    assert run.returncode == 0, run.stderr
    assert re.search(CASES[case][1], run.stdout) and run.stdout.startswith(f"{path}: ")
    _check_bounded(run, path)


@pytest.mark.parametrize("case", [c for c in CASES if c not in MEMORY_CASES])
def test_library_refuses_in_process(files, case):
    path = files[case]
    for load in (models.load, models.load_checkpoint):
        with pytest.raises(
            models.ModelFileError, match=rf"^{re.escape(str(path))}: .*{CASES[case][1]}"
        ):
            load(path, backend="reference")
    with pytest.raises(models.ModelFileError, match=CASES[case][1]):
        models.SimpleConvNet(backend="reference").load_params(path)


def _one_line_exit_2(run: hostile.Run, command: str, path: Path, match: str) -> None:
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fastcnn {command}: error: {path}: ")
    assert re.search(match, lines[0]) and run.stdout == ""


@pytest.mark.parametrize("case", MODEL_CASES)
def test_cli_predict_one_line_exit_2(files, case, tmp_path):
    image = tmp_path / "digit.npy"
    np.save(image, np.zeros((28, 28), np.float32))
    path = files[case]
    run = hostile.run_cli("predict", str(path), str(image))
    _one_line_exit_2(run, "predict", path, CASES[case][1])
    _check_bounded(run, path)


@pytest.mark.parametrize(
    "case", ["extra zeros member", "nested JSON", "NaN param", "checkpoint optim bomb"]
)
def test_cli_evaluate_and_resume_one_line_exit_2(files, case, tmp_path):
    path = files[case]
    if case not in CHECKPOINT_ONLY:
        run = hostile.run_cli("evaluate", str(path))
        _one_line_exit_2(run, "evaluate", path, CASES[case][1])
        _check_bounded(run, path)
    out = tmp_path / "run"
    run = hostile.run_cli("train", "--resume", str(path), "--out", str(out), "--no-progress")
    _one_line_exit_2(run, "train", path, CASES[case][1])
    _check_bounded(run, path)
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_params_pickle_reusing_text_is_refused_in_bounded_memory(tmp_path):
    pkl = encode_amplifier(tmp_path / "amp.pkl")  # 1 MB; 300 MB when unpickled naively
    out = tmp_path / "model.npz"
    run = hostile.run_cli("convert", str(pkl), str(out), "--model", "simple")
    _one_line_exit_2(run, "convert", pkl, r"refused: the pickle builds more bytes")
    _check_bounded(run, pkl)
    assert sorted(os.listdir(tmp_path)) == ["amp.pkl"]


def test_cases_are_what_they_claim(files):
    """The files really are small, and without the checks they would be read as described."""
    for name in MEMORY_CASES:  # a few MB each (70,000 entry headers take 9 MB)
        assert files[name].stat().st_size < 10 * 2**20
    with zipfile.ZipFile(files["extra zeros member"]) as zf:
        assert zf.getinfo("params/W9.npy").file_size > 4 * ZEROS
    with zipfile.ZipFile(files["compression method 99"]) as zf:
        assert zf.getinfo("params/W1.npy").compress_type == 99
    with open(files["70,000 entries"], "rb") as f:  # the count is in the zip64 end record
        assert b"PK\x06\x06" in f.read()[-200:]
    with zipfile.ZipFile(files["consistent deflated 40000"]) as zf:
        assert zf.getinfo("params/W2.npy").file_size > 4320 * 40_000 * 4


@pytest.fixture(scope="module")
def training_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `fastcnn train` checkpoint (Adam, one short epoch on the embedded subset)."""
    from fastcnn import cli

    out = tmp_path_factory.mktemp("run")
    rc = cli.main(["train", "--model", "simple", "--epochs", "1", "--subset", "embedded",
                   "--limit-batches", "3", "--eval-sample", "50", "--out", str(out),
                   "--no-progress"])  # fmt: skip
    assert rc == 0
    return out / "checkpoint.npz"


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda e: e.pop("optim/v/W2"), r"lacks 'v/W2'"),
        (
            lambda e: e.update({"optim/m/W1": e["optim/m/W1"].astype(np.float64)}),
            r"'m/W1' is float64",
        ),
        (
            lambda e: e.update({"optim/v/b1": -np.ones_like(e["optim/v/b1"])}),
            r"v/b1 holds negative",
        ),
    ],
)
def test_cli_resume_names_the_wrong_optimizer_entry(training_checkpoint, tmp_path, change, match):
    entries = dict(np.load(training_checkpoint, allow_pickle=False))
    change(entries)
    bad = tmp_path / "checkpoint.npz"
    np.savez(bad, **entries)
    before = sorted(os.listdir(tmp_path))
    run = hostile.run_cli("train", "--resume", str(bad), "--no-progress")
    _one_line_exit_2(run, "train", bad, rf"invalid optimizer state .*{match}")
    assert sorted(os.listdir(tmp_path)) == before  # nothing written next to it
