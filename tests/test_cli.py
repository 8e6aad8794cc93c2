"""The fastcnn command line: train (and --resume, and Ctrl-C), evaluate, predict, bench, and
the one-line errors with exit status 2 for missing or corrupted files and bad arguments."""

from __future__ import annotations

import csv
import gzip
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastcnn
from fastcnn import cli, models
from fastcnn.datasets import EMBEDDED_DIR, mnist_source

FULL = os.environ.get("FASTCNN_DATA_DIR")


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def test_set():
    return mnist_source(subset="embedded").load(flatten=False)[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A SimpleConvNet trained by the CLI for 2 epochs on the embedded subset (~93 %)."""
    out = tmp_path_factory.mktemp("run")
    rc = cli.main(["train", "--model", "simple", "--epochs", "2", "--subset", "embedded",
                   "--out", str(out), "--no-progress", "--eval-sample", "200"])  # fmt: skip
    assert rc == 0
    return out


def test_train_output_files_and_log(trained):
    for name in ("model.npz", "checkpoint.npz", "log.json"):
        assert (trained / name).is_file()
    log = json.loads((trained / "log.json").read_text())
    assert log["command"][:2] == ["fastcnn", "train"]
    assert log["config"]["model"] == "SimpleConvNet" and log["config"]["eval_sample"] == 200
    assert [e["val_n"] for e in log["epochs"]] == [200, 200]  # a sample of the 416 held out
    assert log["config"]["val"] == 416 and "test_n" not in log["epochs"][0]
    assert log["report"]["n"] == 1000 and log["report"]["accuracy"] >= 0.9
    # epochs.csv: the same per-epoch records, every float in full precision
    with open(trained / "epochs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert log["files"]["epochs_csv"] == str(trained / "epochs.csv")
    assert [list(r) for r in rows] == [list(e) for e in log["epochs"]]
    for row, record in zip(rows, log["epochs"]):
        for key, value in record.items():
            assert type(value)(row[key]) == value, key


def test_train_prints_header_epochs_and_report(capsys, tmp_path):
    rc, out, err = run(capsys, "train", "--model", "simple", "--epochs", "1", "--subset",
                       "embedded", "--limit-batches", "3", "--out", tmp_path, "--no-progress",
                       "--schedule", "cosine", "--augment", "--max-rotation", "5",
                       "--seed", "2")  # fmt: skip
    assert rc == 0, err
    assert "embedded MNIST subset (5000 train / 1000 test)" in out
    assert "1 epochs x 3 batches of 100, adam lr 0.001, schedule cosine" in out
    assert "augment shift 2 px / rotation 5 deg, seed 2" in out
    assert "epoch 1/1  train loss" in out
    assert "confusion matrix" in out and "macro" in out
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["config"]["augment"] == {"max_shift": 2, "max_rotation": 5.0}
    assert log["config"]["schedule"]["name"] == "cosine"


def test_train_resume_extends_and_refuses_changed_settings(capsys, tmp_path):
    args = ["train", "--model", "simple", "--epochs", "1", "--subset", "embedded",
            "--limit-batches", "2", "--out", tmp_path, "--no-progress",
            "--eval-sample", "50"]  # fmt: skip
    assert run(capsys, *args)[0] == 0
    ckpt = tmp_path / "checkpoint.npz"
    rc, out, err = run(capsys, "train", "--resume", ckpt, "--lr", "0.1")
    assert rc == 2 and "--lr cannot be changed when resuming" in err
    assert err.count("\n") == 1
    rc, out, err = run(capsys, "train", "--resume", ckpt, "--epochs", "2", "--no-progress")
    assert rc == 0, err
    assert "resuming" in out and "epoch 2, batch 0" in out and "epoch 2/2" in out
    log = json.loads((tmp_path / "log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2]
    assert log["resumed_from"] == str(ckpt)


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path):
    """A real SIGINT to `python -m fastcnn train`: exit 130, a message saying how to resume, and
    a checkpoint the run continues from."""
    cmd = [sys.executable, "-m", "fastcnn", "train", "--model", "simple", "--subset", "embedded",
           "--epochs", "30", "--limit-batches", "5", "--eval-sample", "50", "--no-progress",
           "--out", str(tmp_path)]  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline()
            while line and not line.startswith("epoch  1/30"):
                line = proc.stdout.readline()
            assert line.startswith("epoch  1/30"), proc.stderr.read()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 130, err
    ckpt = tmp_path / "checkpoint.npz"
    assert f"resume with: fastcnn train --resume {ckpt}" in err
    assert "Traceback" not in err
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["status"] == "interrupted"
    done = log["position"]["iteration"]
    assert done >= 5
    res = subprocess.run([sys.executable, "-m", "fastcnn", "train", "--resume", str(ckpt),
                          "--epochs", str(done // 5 + 1), "--no-progress"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0, res.stderr
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["status"] == "finished"
    assert len(log["iterations"]["loss"]) == 5 * (done // 5 + 1)


def test_evaluate(capsys, trained):
    rc, out, err = run(capsys, "evaluate", trained / "model.npz", "--subset", "embedded")
    assert rc == 0, err
    log = json.loads((trained / "log.json").read_text())
    acc = log["report"]["accuracy"]
    assert f"test accuracy {100 * acc:.2f} % ({round(acc * 1000)} / 1000)" in out
    assert "SimpleConvNet" in out and "confusion matrix" in out
    # A checkpoint is a model file too, on either backend.
    rc, out2, err = run(capsys, "evaluate", trained / "checkpoint.npz", "--subset", "embedded",
                        "--backend", "reference")  # fmt: skip
    assert rc == 0, err
    assert f"test accuracy {100 * acc:.2f} %" in out2


def _png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.round(img * 255).astype(np.uint8), mode="L").save(path)


def test_predict_png_inverted_resized_and_npy(capsys, tmp_path, trained, test_set):
    pytest.importorskip("PIL")
    from PIL import Image

    x, t = test_set
    model = models.load(trained / "model.npz")
    proba = model.predict_proba(x)
    # Confidently right digits, one per class where possible: the preprocessing must keep them.
    picks = [int(np.flatnonzero((t == d) & (proba.argmax(1) == d) & (proba.max(1) > 0.95))[0])
             for d in range(10)]  # fmt: skip
    paths, want = [], []
    for d, i in enumerate(picks):
        plain = tmp_path / f"digit{d}.png"
        _png(plain, x[i, 0])
        # Dark ink on light paper, 4x larger and off-centre on a wider page, as RGB.
        big = Image.fromarray(np.round((1 - x[i, 0]) * 255).astype(np.uint8), mode="L")
        big = big.resize((112, 112), Image.Resampling.BILINEAR)
        page = Image.new("L", (200, 150), 255)
        page.paste(big, (70, 10))
        scan = tmp_path / f"scan{d}.png"
        page.convert("RGB").save(scan)
        paths += [plain, scan]
        want += [d, d]
    np.save(tmp_path / "one.npy", x[picks[3], 0])
    np.save(tmp_path / "batch.npy", (x[picks[:3], 0] * 255).astype(np.uint8))
    rc, out, err = run(capsys, "predict", trained / "model.npz", *paths, tmp_path / "one.npy",
                       tmp_path / "batch.npy")  # fmt: skip
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == len(paths) + 1 + 3
    got = {}
    for line in lines:
        name, rest = line.rsplit(": ", 1)
        digit, prob = rest.split(" ")
        got[name] = int(digit)
        assert 0.0 < float(prob.strip("()")) <= 1.0
    for p, d in zip(paths, want):
        assert got[str(p)] == d, (p, line)
    assert got[str(tmp_path / "one.npy")] == 3
    assert [got[f"{tmp_path / 'batch.npy'}[{k}]"] for k in range(3)] == [0, 1, 2]


def test_predict_errors(capsys, tmp_path, trained):
    blank = tmp_path / "blank.png"
    _png(blank, np.ones((30, 30)))
    rc, out, err = run(capsys, "predict", trained / "model.npz", blank)
    assert rc == 2 and "no digit found" in err
    (tmp_path / "text.png").write_text("not a picture")
    rc, out, err = run(capsys, "predict", trained / "model.npz", tmp_path / "text.png")
    assert rc == 2 and "not an image file" in err
    rc, out, err = run(capsys, "predict", trained / "model.npz", tmp_path / "missing.png")
    assert rc == 2 and err == f"{tmp_path / 'missing.png'}: error: no such file\n"


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_missing_and_corrupted_model_files(capsys, tmp_path, trained, command):
    extra = ["--subset", "embedded"] if command == "evaluate" else [trained / "model.npz"]
    rc, out, err = run(capsys, command, tmp_path / "nope.npz", *extra)
    assert (rc, out) == (2, "")
    assert err == f"fastcnn {command}: error: {tmp_path / 'nope.npz'}: no such model file\n"
    broken = tmp_path / "broken.npz"
    data = (trained / "model.npz").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    rc, out, err = run(capsys, command, broken, *extra)
    assert rc == 2 and err.startswith(f"fastcnn {command}: error: {broken}: corrupted")
    assert err.count("\n") == 1 and "Traceback" not in err
    text = tmp_path / "text.npz"
    text.write_text("hello")
    rc, out, err = run(capsys, command, text, *extra)
    assert rc == 2 and "not a fastcnn model file" in err


def test_corrupted_idx_file(capsys, tmp_path, trained):
    data = tmp_path / "mnist"
    data.mkdir()
    for f in EMBEDDED_DIR.iterdir():
        if "idx" in f.name:
            shutil.copy(f, data / f.name)
    images = data / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(raw[:-100]))  # truncated data
    rc, out, err = run(capsys, "evaluate", trained / "model.npz", "--data-dir", data)
    assert rc == 2
    assert "t10k-images-idx3-ubyte.gz" in err and "needs" in err
    assert err.count("\n") == 1
    rc, out, err = run(capsys, "train", "--data-dir", data, "--epochs", "1", "--no-progress",
                       "--out", tmp_path / "run")  # fmt: skip
    assert rc == 2 and "t10k-images-idx3-ubyte.gz" in err
    rc, out, err = run(capsys, "evaluate", trained / "model.npz", "--data-dir", tmp_path)
    assert rc == 2 and "data_dir is incomplete" in err


def test_bad_arguments(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--epochs", "0"])
    assert exc.value.code == 2 and "must be > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--model", "resnet"])
    assert exc.value.code == 2
    rc, out, err = run(capsys, "train", "--max-shift", "3", "--out", tmp_path)
    assert rc == 2 and "need --augment" in err
    rc, out, err = run(capsys, "train", "--resume", tmp_path / "none.npz")
    assert rc == 2 and "no such checkpoint" in err


def test_python_m_fastcnn_info():
    res = subprocess.run([sys.executable, "-m", "fastcnn", "info"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert res.returncode == 0 and res.stdout.startswith("fastcnn ")
    assert "kernel isa:" in res.stdout


def test_bench_quick(capsys):
    argv = ["bench", "--quick", "--no-torch", "--no-tensorflow"]
    isa = "avx2" in fastcnn.available_isas()
    rc, out, err = run(capsys, *argv, *(["--isa", "avx2"] if isa else []))
    assert rc == 0, err
    for case in ("conv1_1to16_28", "conv6_64to64_8", "pool1_16x28x28"):
        assert case in out
    training, _, inference = out.partition("DeepConvNet inference")
    training, _, limited = training.partition("with every framework limited to")
    rows = {line.split()[0]: line.split() for line in training.splitlines() if line.strip()}
    assert float(rows["fastcnn"][2]) == 1.0  # time/fastcnn
    assert float(rows["reference"][1]) > 0 and float(rows["fastcnn"][4]) > 0  # ms, MiB
    assert "torch" not in rows and "tensorflow" not in rows
    assert "torch eager: left out" not in training  # not asked for: no note
    # the measured FMA peak, each convolution pass's % of it and the six convolutions' limit
    peak = next(line.split() for line in training.splitlines() if line.startswith("# FMA peak"))
    assert float(peak[3]) > 0 and peak[4] == "GFLOP/s:"
    header = next(line for line in training.splitlines() if "fast ms" in line)
    assert header.split().count("%peak") == 2
    # layer, fwd ms, ref ms, ref/fast, %peak, bwd ms, ref ms, ref/fast, %peak, algorithms
    for name in ("conv1_1to16_28", "conv2_16to16_28"):
        assert 0 < float(rows[name][4]) and 0 < float(rows[name][8])
    assert rows["pool1_16x28x28"][4] == rows["pool1_16x28x28"][8] == "-"  # no FMA count
    assert "x the limit" in training and "GFLOP useful in the algorithms used" in training
    # which algorithm each pass ran: conv1 (one channel) direct, conv2 Winograd at batch 100
    # (F(4x4) forward and backward-data, F(2x2) weight gradient)
    assert rows["conv1_1to16_28"][-5:] == ["cols", "/", "col2im", "/", "pixels"]
    assert rows["conv2_16to16_28"][-5:] == ["wino4", "/", "wino4", "/", "wino"]
    # --isa avx2: fastcnn's step in a process limited to AVX2, beside this one's
    if isa:
        lines = [line.split() for line in limited.splitlines() if line.strip()]
        assert lines[1][:3] == ["backend", f"{fastcnn.get_isa()}", "ms/step"]
        assert lines[2][0] == "fastcnn" and float(lines[2][1]) > 0 and float(lines[2][2]) > 0
        assert "FMA peak, measured:" in limited and "avx2" in limited
    # inference: fastcnn and ONNX Runtime (a test dependency), checked, then timed
    rows = {line.split()[0]: line.split() for line in inference.splitlines()[2:] if line}
    assert set(rows) == {"fastcnn", "onnxruntime"}
    assert float(rows["fastcnn"][4]) == 1.0 and float(rows["fastcnn"][3]) > 0  # ratio, img/s
    assert float(rows["onnxruntime"][5]) > 0  # batch-1 latency, us


def test_bench_refuses_an_isa_this_machine_lacks(capsys):
    rc, out, err = run(capsys, "bench", "--quick", "--isa", "avx1024")
    assert rc == 2 and "not an ISA this machine runs" in err and out == ""


@pytest.mark.skipif(not FULL, reason="FASTCNN_DATA_DIR (the full MNIST) is not set")
def test_full_data_train_and_evaluate(capsys, tmp_path):
    """Full MNIST: 150 batches of SimpleConvNet, then evaluate on all 10,000 test images."""
    rc, out, err = run(capsys, "train", "--model", "simple", "--epochs", "1", "--subset", "full",
                       "--limit-batches", "150", "--eval-sample", "500", "--out", tmp_path,
                       "--no-progress")  # fmt: skip
    assert rc == 0, err
    assert "full MNIST (60000 train / 10000 test)" in out
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["data"]["kind"] == "full" and log["report"]["n"] == 10000
    rc, out, err = run(capsys, "evaluate", tmp_path / "model.npz", "--subset", "full")
    assert rc == 0, err
    acc = log["report"]["accuracy"]
    assert acc >= 0.93
    assert f"test accuracy {100 * acc:.2f} % ({round(acc * 10000)} / 10000)" in out


# ---------------------------------------------------------------------------------------------
# The book's params.pkl: evaluate / predict --model, convert
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def book_pkl(trained, tmp_path_factory):
    """The trained SimpleConvNet's params as the book's save_params writes them: a pickle of a
    dict of float64 arrays."""
    model = models.load(trained / "model.npz")
    path = tmp_path_factory.mktemp("book") / "params.pkl"
    with open(path, "wb") as f:
        pickle.dump({k: v.astype(np.float64) for k, v in model.params.items()}, f)
    return path


def _accuracy_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("test accuracy"))


def test_evaluate_book_params(capsys, trained, book_pkl):
    rc, out, err = run(capsys, "evaluate", trained / "model.npz", "--subset", "embedded")
    assert rc == 0, err
    want = _accuracy_line(out)
    rc, out, err = run(capsys, "evaluate", book_pkl, "--model", "simple", "--subset", "embedded")
    assert rc == 0, err
    assert f"model:  {book_pkl}: SimpleConvNet, backend fast" in out
    assert _accuracy_line(out) == want and "/ 1000)" in want
    # --model with a fastcnn model file: accepted when it is the file's own architecture.
    rc, out, err = run(capsys, "evaluate", trained / "model.npz", "--model", "simple",
                       "--subset", "embedded")  # fmt: skip
    assert rc == 0 and _accuracy_line(out) == want


def test_book_params_errors(capsys, trained, book_pkl):
    rc, out, err = run(capsys, "evaluate", book_pkl, "--subset", "embedded")
    assert (rc, out) == (2, "")
    assert err == (
        f"fastcnn evaluate: error: {book_pkl}: a pickle (the book's params.pkl?); say which "
        "network it holds with --model simple|deep\n"
    )
    rc, out, err = run(capsys, "evaluate", book_pkl, "--model", "deep", "--subset", "embedded")
    assert rc == 2 and "the params do not fit this DeepConvNet: missing W4" in err
    assert err.count("\n") == 1
    rc, out, err = run(capsys, "evaluate", trained / "model.npz", "--model", "deep",
                       "--subset", "embedded")  # fmt: skip
    assert rc == 2
    assert "the file holds a SimpleConvNet, not the DeepConvNet of --model deep" in err
    rc, out, err = run(capsys, "predict", book_pkl, "digit.png")
    assert rc == 2 and "--model simple|deep" in err


def test_predict_book_params(capsys, tmp_path, trained, book_pkl, test_set):
    x, _ = test_set
    np.save(tmp_path / "digits.npy", x[:5, 0])
    rc, want, err = run(capsys, "predict", trained / "model.npz", tmp_path / "digits.npy")
    assert rc == 0, err
    rc, out, err = run(capsys, "predict", book_pkl, "--model", "simple", tmp_path / "digits.npy")
    assert rc == 0, err
    assert out == want


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_convert_writes_a_model_file(capsys, tmp_path, trained, book_pkl, dtype):
    out_path = tmp_path / "model.npz"
    rc, out, err = run(capsys, "convert", book_pkl, out_path, "--model", "simple",
                       "--dtype", dtype)  # fmt: skip
    assert rc == 0, err
    assert out == f"wrote {out_path}: SimpleConvNet (433,890 params, {dtype}) from {book_pkl}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    model = models.load(out_path)
    assert type(model) is models.SimpleConvNet and model.dtype == np.dtype(dtype)
    with open(book_pkl, "rb") as f:
        params = pickle.load(f)  # our own file, made by the fixture
    for key, arr in params.items():
        np.testing.assert_array_equal(model.params[key], arr.astype(dtype))
    rc, out, err = run(capsys, "evaluate", out_path, "--subset", "embedded")
    assert rc == 0, err
    rc, want, err = run(capsys, "evaluate", trained / "model.npz", "--subset", "embedded")
    assert _accuracy_line(out) == _accuracy_line(want)


def _listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_convert_failures_leave_nothing_behind(capsys, tmp_path, trained, book_pkl, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    sentinel = tmp_path / "ran"
    data = book_pkl.read_bytes()
    (src / "truncated.pkl").write_bytes(data[: len(data) // 2])
    (src / "evil.pkl").write_bytes(f"cos\nsystem\n(S'touch {sentinel}'\ntR.".encode())
    shutil.copy(trained / "model.npz", src / "model.npz")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "existing.npz").write_bytes(b"the old model file")
    cases = [
        (src / "truncated.pkl", "simple", "not a pickle, or truncated"),
        (src / "evil.pkl", "simple", "refused: the pickle asks for 'os.system'"),
        (book_pkl, "deep", "the params do not fit this DeepConvNet"),
        (src / "model.npz", "simple", "a zip archive, not a pickle"),
        (src / "missing.pkl", "simple", "missing.pkl: no such params file"),
    ]
    for source, arch, message in cases:
        for target in (out_dir / "new.npz", out_dir / "existing.npz"):
            before = _listing(out_dir)
            rc, out, err = run(capsys, "convert", source, target, "--model", arch)
            assert (rc, out) == (2, ""), err
            assert err.startswith("fastcnn convert: error: ") and message in err, err
            assert err.count("\n") == 1 and "Traceback" not in err
            assert _listing(out_dir) == before  # no output, no temporary file, old file intact
    assert not sentinel.exists()

    # A failure while writing (a full disk, say): the temporary file goes, the old file stays.
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", full_disk)
    before = _listing(out_dir)
    rc, out, err = run(capsys, "convert", book_pkl, out_dir / "existing.npz", "--model", "simple")
    assert rc == 2 and "No space left on device" in err
    assert _listing(out_dir) == before


def test_convert_argument_errors(capsys, tmp_path, book_pkl):
    with pytest.raises(SystemExit) as exc:
        cli.main(["convert", str(book_pkl), str(tmp_path / "m.npz")])  # --model is required
    assert exc.value.code == 2 and "--model" in capsys.readouterr().err
    copy = tmp_path / "params.pkl"
    shutil.copy(book_pkl, copy)
    for target, message in [
        (copy, "is the input file"),
        (tmp_path, "is a directory"),
        (tmp_path / "nowhere" / "m.npz", "no such directory"),
    ]:
        rc, out, err = run(capsys, "convert", copy, target, "--model", "simple")
        assert rc == 2 and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.pkl"]
    assert copy.read_bytes() == book_pkl.read_bytes()


# ---------------------------------------------------------------------------------------------
# A network of your own: --model FILE, info MODEL, evaluate / predict from the file alone
# ---------------------------------------------------------------------------------------------

SMALL_NET = {
    "input_shape": [1, 28, 28],
    "name": "My Net/1",
    "layers": [
        {"type": "conv", "filters": 4, "size": 3, "pad": "same"},
        {"type": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "flatten"},
        {"type": "affine", "units": 10},
    ],
}


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    """The CLI's default run directory for a config file's network, in a scratch cwd."""
    cwd = tmp_path_factory.mktemp("own")
    (cwd / "net.json").write_text(json.dumps(SMALL_NET))
    old = os.getcwd()
    os.chdir(cwd)
    try:
        rc = cli.main(["train", "--model", "net.json", "--epochs", "1", "--subset", "embedded",
                       "--limit-batches", "5", "--no-progress", "--dtype", "float64",
                       "--optimizer", "RMSprop"])  # fmt: skip
    finally:
        os.chdir(old)
    assert rc == 0
    (run_dir,) = (cwd / "runs").iterdir()
    return run_dir


def test_train_a_config_file(own_run):
    assert own_run.name.startswith("My_Net_1-")  # the model's name, made a directory name
    log = json.loads((own_run / "log.json").read_text())
    assert log["config"]["model"] == "My Net/1" and log["config"]["optimizer"] == "rmsprop"
    layers = models.Sequential.from_config(SMALL_NET).config["layers"]  # defaults filled in
    assert log["config"]["model_config"]["layers"] == layers
    model = models.load(own_run / "model.npz")
    assert model.name == "My Net/1" and model.dtype == np.float64  # --dtype over the default
    assert model.config["layers"] == layers


def test_bad_model_files_are_one_line_errors(capsys, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    bad_layer = tmp_path / "layer.json"
    bad_layer.write_text(json.dumps({**SMALL_NET, "layers": [{"type": "convolution"}]}))
    no_end = tmp_path / "end.json"
    no_end.write_text(json.dumps({**SMALL_NET, "layers": SMALL_NET["layers"][:2]}))
    for path in (tmp_path / "none.json", tmp_path):  # a usage error, as any bad option value
        with pytest.raises(SystemExit) as exc:
            cli.main(["train", "--model", str(path)])
        assert exc.value.code == 2
        assert "neither a built-in model (simple, deep) nor a config file" in (
            capsys.readouterr().err
        )
    cases = [
        (bad_json, "not a JSON config"),
        (bad_layer, "convolution"),
        (no_end, "end with an affine layer"),
    ]
    for path, words in cases:
        rc, out, err = run(capsys, "train", "--model", path, "--epochs", "1", "--subset",
                           "embedded", "--out", tmp_path / "out", "--no-progress")  # fmt: skip
        assert rc == 2 and words in err, (path, err)
        assert err.count("\n") == 1 and "Traceback" not in err
        assert not (tmp_path / "out").exists()


def test_info_prints_a_saved_models_summary(capsys, own_run, trained):
    rc, out, err = run(capsys, "info", own_run / "model.npz")
    assert rc == 0, err
    assert out.startswith('Model: "My Net/1" (float64') and "Total params:" in out
    want = models.load(own_run / "model.npz", backend="reference").format_summary()
    assert out.replace("'reference'", "'fast'") == want.replace("'reference'", "'fast'") + "\n"
    rc, out, err = run(capsys, "info", trained / "checkpoint.npz")
    assert rc == 0 and 'Model: "SimpleConvNet"' in out
    rc, out, err = run(capsys, "info", own_run / "none.npz")
    assert rc == 2 and "no such model file" in err


def test_evaluate_and_predict_a_config_networks_file(capsys, own_run, test_set):
    rc, out, err = run(capsys, "evaluate", own_run / "model.npz", "--subset", "embedded")
    assert rc == 0, err
    assert "My Net/1, backend fast" in out and "confusion matrix" in out
    x, _ = test_set
    np.save(own_run / "digits.npy", x[:3, 0])
    rc, out, err = run(capsys, "predict", own_run / "checkpoint.npz", own_run / "digits.npy")
    assert rc == 0, err
    want = models.load(own_run / "model.npz").predict_proba(x[:3]).argmax(axis=1)
    got = [int(line.split(": ")[1].split()[0]) for line in out.splitlines()]
    assert got == want.tolist()


def test_a_params_only_file_cannot_be_evaluated(capsys, tmp_path):
    from fastcnn.models._params_file import save_params_checkpoint

    path = tmp_path / "checkpoint.npz"
    save_params_checkpoint(path, "TwoLayerNet", {"W1": np.zeros((784, 4)), "b1": np.zeros(4)})
    for command in (["evaluate", path, "--subset", "embedded"], ["predict", path, path],
                    ["info", path]):  # fmt: skip
        rc, out, err = run(capsys, *command)
        assert rc == 2 and err.count("\n") == 1, err
        assert "holds the params of a TwoLayerNet only" in err
        assert "no architecture" in err and "cannot be loaded, evaluated" in err


REPO = Path(__file__).resolve().parents[1]


def _readme_section(title):
    text = (REPO / "README.md").read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_readme_trains_the_tutorial_network_from_its_config(capsys, tmp_path):
    import shlex

    section = _readme_section("Train your own network")
    blocks = [b.split("\n", 1) for b in section.split("```")[1::2]]  # (language, body)
    (config,) = [json.loads(body) for lang, body in blocks if lang.strip() == "json"]
    example = REPO / "docs" / "examples" / "tutorial_cnn.json"
    assert config == json.loads(example.read_text())  # the README shows the file as it is
    net = models.Sequential.from_config(config)
    assert net.num_params() == 15_898 and "15,898 params" in " ".join(section.split())
    assert [s["type"] for s in config["layers"]] == ["conv", "relu", "maxpool", "flatten",
                                                     "affine"]  # fmt: skip
    (command,) = [line for lang, body in blocks if lang.strip() == "bash"
                  for line in body.splitlines() if line.startswith("fastcnn train")]  # fmt: skip
    argv = shlex.split(command)[1:]
    assert argv == ["train", "--model", "docs/examples/tutorial_cnn.json", "--epochs", "1"]
    argv[2] = str(REPO / argv[2])
    rc, out, err = run(capsys, *argv, "--subset", "embedded", "--limit-batches", "5",
                       "--out", tmp_path, "--no-progress")  # fmt: skip
    assert rc == 0, err
    assert "TutorialCNN (15,898 params, float32)" in out
    saved = models.load(tmp_path / "model.npz")
    assert saved.config == net.config


def test_the_layer_table_the_readme_points_to_lists_every_type_and_option():
    text = (REPO / "docs" / "models.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = line.split("|")
        if line.startswith("| `") and len(cells) >= 4:  # | type | options | ...
            for name in cells[1].replace("`", "").split(","):
                rows[name.strip()] = cells[2]
    for name, spec in models.LAYER_TYPES.items():
        assert name in rows, name
        for option in spec.options:
            assert f"`{option}`" in rows[name], (name, option)


@pytest.mark.parametrize("command", [["info"], ["info", "MODEL"], ["evaluate", "MODEL"]])
def test_a_reader_that_left_is_not_an_error(trained, command):
    """`fastcnn evaluate model.npz | head -1`: the pipe's reader is gone before fastcnn
    writes; fastcnn stops quietly with status 0, no traceback and no error line."""
    argv = [str(trained / "model.npz") if a == "MODEL" else a for a in command]
    if command[0] == "evaluate":
        argv += ["--subset", "embedded"]
    r, w = os.pipe()
    os.close(r)  # every write to w now fails with EPIPE
    proc = subprocess.run(
        [sys.executable, "-m", "fastcnn", *argv],
        stdout=w, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
    )  # fmt: skip
    os.close(w)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
