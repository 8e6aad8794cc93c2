"""fastcnn.train: the classification report, schedules by name, a short run that must learn,
exact resume after an interruption (callback or a real SIGINT), log.json and the plots."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

import fastcnn
from fastcnn import models, optim, train
from fastcnn.datasets import mnist_source

TINY_CONV = {"filter_num": 4}


@pytest.fixture(scope="module")
def embedded():
    return mnist_source(subset="embedded").load(flatten=False)


def tiny_deep(backend="fast", seed=3):
    """A DeepConvNet with 4 filters per conv and 8 hidden units: every layer kind (dropout
    included) at a fraction of the cost."""
    convs = {f"conv_param_{i}": TINY_CONV for i in range(1, 7)}
    return models.DeepConvNet(**convs, hidden_size=8, backend=backend, seed=seed)


def tiny_trainer(model, data, **kw):
    settings = dict(
        epochs=2,
        batch_size=50,
        limit_batches=4,
        eval_sample=100,
        schedule="cosine",
        warmup=0.5,
        augment=True,
        seed=5,
        progress=False,
        verbose=False,
    )
    settings.update(kw)
    return train.Trainer(model, data, **settings)


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def test_classification_report_hand_computed():
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2])
    r = train.classification_report(y_true, y_pred, 4)  # class 3: never present or predicted
    assert r["n"] == 7
    assert r["accuracy"] == pytest.approx(5 / 7)
    assert r["confusion"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    assert r["precision"] == pytest.approx([1 / 2, 2 / 3, 1.0, 0.0])
    assert r["recall"] == pytest.approx([1 / 2, 1.0, 2 / 3, 0.0])
    assert r["f1"] == pytest.approx([1 / 2, 0.8, 0.8, 0.0])
    assert r["support"] == [2, 2, 3, 0]
    assert r["macro"]["f1"] == pytest.approx((0.5 + 0.8 + 0.8) / 4)
    json.dumps(r)  # plain JSON types
    text = train.format_report(r)
    assert "test accuracy 71.43 % (5 / 7)" in text
    assert "    2     1.0000  0.6667  0.8000        3" in text


def test_classification_report_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"y_pred must be in \[0, 3\)"):
        train.classification_report(np.array([0, 1]), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="same length"):
        train.classification_report(np.array([0, 1]), np.array([0]), 3)
    with pytest.raises(TypeError, match="integers"):
        train.classification_report(np.array([0.0]), np.array([0]), 3)


def test_make_schedule():
    assert train.make_schedule(None, 20) is None
    cos = train.make_schedule("cosine", 20)
    assert cos(1e-3, 0) == pytest.approx(1e-3)
    assert cos(1e-3, 10) == pytest.approx(5e-4)
    assert cos(1e-3, 19.999) < 1e-9
    warm = train.make_schedule("cosine", 20, warmup=2)
    assert warm(1e-3, 0) == pytest.approx(1e-3 / 3)
    assert warm(1e-3, 2) == pytest.approx(1e-3)
    assert warm(1e-3, 11) == pytest.approx(5e-4)
    step = train.make_schedule("step", 30)
    assert [step(1.0, t) for t in (0, 9.9, 10, 25)] == pytest.approx([1, 1, 0.1, 0.01])
    assert train.make_schedule("warmup", 5)(1.0, 0.5) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="unknown schedule"):
        train.make_schedule("linear", 5)


# ---------------------------------------------------------------------------------------------
# A short run that must learn
# ---------------------------------------------------------------------------------------------


def test_short_run_learns_and_writes_everything(embedded, tmp_path):
    """SimpleConvNet, 2 epochs of the embedded subset (5,000 images): about 93.5 % in ~5 s on
    the 2-core development machine; the bar is 90 %."""
    source = mnist_source(subset="embedded")
    trainer = train.Trainer(
        models.SimpleConvNet(seed=0), source, epochs=2, out_dir=tmp_path, progress=False,
        verbose=False, command=["test"],
    )  # fmt: skip
    result = trainer.fit()
    assert result.test_accuracy >= 0.90
    assert [r["epoch"] for r in result.history] == [1, 2]
    # Every epoch is validated on 416 held-out images; the test set is looked at once.
    assert [r["val_n"] for r in result.history] == [416, 416]
    assert "test_acc" not in result.history[1]
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]
    assert len(result.iteration_losses) == 2 * 46  # 4,584 images in batches of 100

    log = json.loads((tmp_path / "log.json").read_text())
    assert log["status"] == "finished"
    assert log["command"] == ["test"]
    assert log["data"]["kind"] == "embedded"
    assert log["data"]["n_train"] == 5000 and log["data"]["n_test"] == 1000
    assert log["data"]["n_val"] == 416 and len(trainer.t_train) == 5000 - 416
    assert log["config"]["optimizer"] == "adam"
    assert log["config"]["optimizer_state"]["lr"] == 0.001
    assert log["config"]["batch_size"] == 100 and log["config"]["epochs"] == 2
    assert log["machine"]["threads"] >= 1 and log["machine"]["isa"]
    assert log["machine"]["winograd"] is fastcnn.get_winograd()
    assert log["iterations"]["every"] == 1
    assert log["iterations"]["loss"] == pytest.approx(result.iteration_losses.tolist())
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"):
        assert key in log["epochs"][0]
    assert log["report"]["accuracy"] == result.test_accuracy
    assert np.array(log["report"]["confusion"]).sum() == 1000

    loaded = models.load(tmp_path / "model.npz")
    assert loaded.accuracy(embedded[1][0], embedded[1][1]) == result.test_accuracy
    assert (tmp_path / "checkpoint.npz").is_file()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    if train.have_matplotlib():
        for name in ("curves.png", "misclassified.png"):
            assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert set(log["files"]) >= {"curves", "misclassified", "model", "log"}


def test_plots_when_matplotlib_installed(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(0)
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 0.9, "val_acc": 0.95,
         "val_n": 100}
        for e in (1, 2, 3)
    ]  # fmt: skip
    fig = train.plot_curves(history, list(rng.random(30) + 0.1), 1, 10, tmp_path / "c.png")
    for ax in fig.axes:  # no dropout: the training curves are not said to have it on
        assert [t.get_text() for t in ax.get_legend().get_texts()][-2:] == ["train", "val"]
    proba = rng.dirichlet(np.ones(10), size=50)
    t = rng.integers(0, 10, 50)
    wrong = int((proba.argmax(1) != t).sum())
    n = train.plot_misclassified(rng.random((50, 1, 28, 28)), t, proba, tmp_path / "m.png")
    assert n == min(36, wrong) and n > 0
    assert (tmp_path / "c.png").stat().st_size > 1000 and (tmp_path / "m.png").stat().st_size > 1000


# ---------------------------------------------------------------------------------------------
# Reproducibility, resume, interruption
# ---------------------------------------------------------------------------------------------


def _run_uninterrupted(embedded, **kw):
    trainer = tiny_trainer(tiny_deep(), embedded, **kw)
    return trainer.fit()


@pytest.mark.parametrize("stop_after", [3, 4, 6])  # mid-epoch, at the epoch's end, epoch 2
def test_interrupted_then_resumed_run_is_identical(embedded, tmp_path, stop_after):
    full = _run_uninterrupted(embedded)

    def stop(trainer, info):
        if info["iteration"] == stop_after:
            raise KeyboardInterrupt

    trainer = tiny_trainer(tiny_deep(), embedded, out_dir=tmp_path, callbacks=[stop])
    with pytest.raises(train.TrainingInterrupted) as info:
        trainer.fit()
    assert info.value.checkpoint == tmp_path / "checkpoint.npz"
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["status"] == "interrupted" and log["position"]["iteration"] == stop_after

    resumed = train.Trainer.resume(tmp_path / "checkpoint.npz", embedded, progress=False,
                                   verbose=False, out_dir=tmp_path)  # fmt: skip
    assert resumed.iteration == stop_after
    result = resumed.fit()
    for key, value in full.model.params.items():
        np.testing.assert_array_equal(result.model.params[key], value, err_msg=key)
    assert result.iteration_losses.tolist() == full.iteration_losses.tolist()
    timing = {"train_seconds", "eval_seconds", "images_per_s", "elapsed"}
    for a, b in zip(result.history, full.history):
        assert {k: v for k, v in a.items() if k not in timing} == {
            k: v for k, v in b.items() if k not in timing
        }
    assert result.report == full.report


def test_sigint_stops_after_the_iteration_and_saves(embedded, tmp_path):
    """A real SIGINT (what Ctrl-C sends): the handler lets the iteration finish, then the
    trainer saves a checkpoint from which the run continues identically."""
    full = _run_uninterrupted(embedded, epochs=1)

    def send_sigint(trainer, info):
        if info["iteration"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    trainer = tiny_trainer(tiny_deep(), embedded, epochs=1, out_dir=tmp_path,
                           callbacks=[send_sigint])  # fmt: skip
    # What was installed before (default_int_handler; SIG_IGN when pytest was started in the
    # background by a non-interactive shell) must be back afterwards.
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(train.TrainingInterrupted, match="iteration 2"):
        trainer.fit()
    assert signal.getsignal(signal.SIGINT) is before  # restored
    resumed = train.Trainer.resume(tmp_path / "checkpoint.npz", embedded, progress=False,
                                   verbose=False)  # fmt: skip
    result = resumed.fit()
    for key, value in full.model.params.items():
        np.testing.assert_array_equal(result.model.params[key], value, err_msg=key)


def test_same_seed_same_run_and_seed_matters(embedded):
    a = _run_uninterrupted(embedded, epochs=1)
    b = _run_uninterrupted(embedded, epochs=1)
    c = _run_uninterrupted(embedded, epochs=1, seed=6)
    assert a.iteration_losses.tolist() == b.iteration_losses.tolist()
    assert a.iteration_losses.tolist() != c.iteration_losses.tolist()


def test_backends_follow_the_same_loss_curve(embedded):
    fast = tiny_trainer(tiny_deep("fast"), embedded, epochs=1).fit()
    ref = tiny_trainer(tiny_deep("reference"), embedded, epochs=1).fit()
    np.testing.assert_allclose(fast.iteration_losses, ref.iteration_losses, rtol=1e-4)
    assert fast.history[0]["val_acc"] == pytest.approx(ref.history[0]["val_acc"], abs=0.011)


def test_resume_extends_the_run(embedded, tmp_path):
    tiny_trainer(tiny_deep(), embedded, epochs=1, out_dir=tmp_path).fit()
    longer = train.Trainer.resume(tmp_path / "checkpoint.npz", embedded, epochs=2,
                                  progress=False, verbose=False)  # fmt: skip
    assert (longer.epoch, longer.batch) == (1, 0)
    result = longer.fit()
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert len(result.iteration_losses) == 8


def test_resume_errors(embedded, tmp_path):
    model = tiny_deep()
    model.save(tmp_path / "model.npz")
    with pytest.raises(models.ModelFileError, match="not a training checkpoint"):
        train.Trainer.resume(tmp_path / "model.npz", embedded)
    tiny_trainer(tiny_deep(), embedded, epochs=1, out_dir=tmp_path).fit()
    (x, t), test = embedded
    with pytest.raises(ValueError, match="trained on 5000 images"):
        train.Trainer.resume(tmp_path / "checkpoint.npz", ((x[:100], t[:100]), test))


def test_optimizer_object_and_log_every(embedded):
    opt = optim.Momentum(lr=0.01, momentum=0.8)
    trainer = tiny_trainer(tiny_deep(), embedded, optimizer=opt, schedule=None, augment=None,
                           epochs=1, log_every=3)  # fmt: skip
    result = trainer.fit()
    assert trainer.config()["optimizer"] == "momentum"
    assert trainer.config()["optimizer_state"]["momentum"] == 0.8
    assert len(result.iteration_losses) == 2  # iterations 1 and 4 of 4
    assert opt.step == 4


def test_argument_errors(embedded):
    with pytest.raises(ValueError, match="unknown optimizer"):
        train.Trainer(tiny_deep(), embedded, optimizer="lbfgs")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        train.Trainer(tiny_deep(), embedded, epochs=0)
    with pytest.raises(ValueError, match=r"train images must be \(N, 1, 28, 28\)"):
        train.Trainer(tiny_deep(), ((np.zeros((3, 5)), np.zeros(3, int)), embedded[1]))


def test_curves_say_what_they_show(tmp_path):
    pytest.importorskip("matplotlib")
    history = [
        {"epoch": e, "train_loss": 0.1 / e, "test_loss": 0.12 / e, "test_n": 1000,
         "train_acc": 0.990 + e / 1000, "test_acc": acc}
        for e, acc in ((1, 0.993), (2, 0.994), (3, 1.0))
    ]  # fmt: skip
    fig = train.plot_curves(
        history, [], 1, 10, tmp_path / "c.png", title="Net on MNIST", dropout=True,
        eval_labels={"val": "validation (5,000)", "test": "test sample of 1,000"},
    )  # fmt: skip
    loss_ax, err_ax = fig.axes
    assert fig._suptitle.get_text() == "Net on MNIST"
    labels = [t.get_text() for t in err_ax.get_legend().get_texts()]
    assert labels == ["train (dropout on)", "test sample of 1,000"]  # no val_* in the records
    assert err_ax.get_yscale() == "log" and "error rate" in err_ax.get_ylabel()
    err = err_ax.get_lines()[1].get_ydata()
    np.testing.assert_allclose(err[:2], [0.7, 0.6])  # 99.3 % and 99.4 %, told apart
    assert err[2] == pytest.approx(0.05)  # no error: half of one image of 1,000
    for ax in (loss_ax, err_ax):
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
        assert ticks and all(float(t).is_integer() for t in ticks)


def test_run_title_and_evaluation_labels(embedded):
    from fastcnn.train._final import eval_labels, run_title

    t = tiny_trainer(tiny_deep(), embedded, eval_sample=100, test_each_epoch=True)
    assert eval_labels(t) == {"val": "validation sample of 100", "test": "test sample of 100"}
    assert run_title(t) == (
        "DeepConvNet on arrays, augmented: adam lr 0.001, schedule cosine (warm-up 0.5 "
        "epochs), batch 50"
    )
    whole = tiny_trainer(
        tiny_deep(), embedded, eval_sample=None, schedule=None, warmup=0, augment=None,
        weight_decay=1e-4,
    )  # fmt: skip
    assert eval_labels(whole) == {"val": "validation (416)"}
    assert run_title(whole).endswith(
        "weight decay 0.0001: adam lr 0.001, schedule constant, batch 50"
    )
    assert eval_labels(tiny_trainer(tiny_deep(), embedded, val=0)) == {}
