"""The trainer's validation split, weight decay, gradient clipping, early stopping, --save-best,
the learning rate it logs and how it shows progress."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from fastcnn import cli, models, train
from fastcnn.datasets import mnist_source
from fastcnn.train import _gradients, _progress
from fastcnn.train._split import default_val_size, validation_split


@pytest.fixture(scope="module")
def embedded():
    return mnist_source(subset="embedded").load(flatten=False)


def small_net(seed=0):
    layers = [
        {"type": "conv", "filters": 4, "size": 3, "pad": "same"},
        {"type": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "flatten"},
        {"type": "affine", "units": 10},
    ]
    return models.Sequential(layers, (1, 28, 28), seed=seed, name="Small")


def quiet(**kw):
    return dict(progress=False, verbose=False) | kw


# ---------------------------------------------------------------------------------------------
# The validation split
# ---------------------------------------------------------------------------------------------


def test_default_split_sizes_are_a_twelfth():
    assert default_val_size(60_000) == 5_000 and default_val_size(5_000) == 416
    assert default_val_size(11) == 0


def test_split_is_class_balanced_disjoint_and_seeded():
    rng = np.random.default_rng(0)
    counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # MNIST's train set
    labels = rng.permutation(np.repeat(np.arange(10), counts))
    kept, held = validation_split(labels, 5000, seed=7)
    assert len(held) == 5000 and len(kept) == 55_000
    assert np.intersect1d(kept, held).size == 0
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(60_000))
    per_class = np.bincount(labels[held], minlength=10)
    np.testing.assert_allclose(per_class, np.array(counts) / 12, atol=1)  # proportional shares
    again_kept, again_held = validation_split(labels, 5000, seed=7)
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    assert not np.array_equal(held, validation_split(labels, 5000, seed=8)[1])


def test_split_of_the_embedded_subset_and_its_edges(embedded):
    t = embedded[0][1]
    kept, held = validation_split(t, 416, seed=0)
    per_class = np.bincount(t[held], minlength=10)
    assert per_class.sum() == 416 and per_class.min() == 41 and per_class.max() == 42
    kept, held = validation_split(t, 0, seed=0)
    assert len(held) == 0 and np.array_equal(kept, np.arange(5000))
    with pytest.raises(ValueError, match=r"val must be in \[0, 4999\]"):
        validation_split(t, 5000, seed=0)


def test_trainer_holds_out_and_validates(embedded):
    trainer = train.Trainer(small_net(), embedded, epochs=1, limit_batches=3, **quiet())
    assert trainer.val == 416 and len(trainer.t_train) == 5000 - 416
    # The held-out images are exactly the split's, and none of them is trained on.
    x, t = embedded[0]
    kept, held = validation_split(t, 416, seed=0)
    assert np.array_equal(trainer.x_val, x[held]) and np.array_equal(trainer.x_train, x[kept])
    record = trainer.fit().history[0]
    assert record["val_n"] == 416 and "test_loss" not in record
    with pytest.raises(ValueError, match="need a validation set"):
        train.Trainer(small_net(), embedded, val=0, early_stopping=2, **quiet())
    with pytest.raises(ValueError, match="need a validation set"):
        train.Trainer(small_net(), embedded, val=0, save_best=True, **quiet())


def test_val_0_is_the_old_run_test_each_epoch_is_logged_apart(embedded):
    """val=0 trains on everything in the same order as before the split existed; the test
    figures per epoch appear only when asked for, as test_*."""
    a = train.Trainer(small_net(), embedded, epochs=1, limit_batches=4, val=0, **quiet())
    b = train.Trainer(small_net(), embedded, epochs=1, limit_batches=4, val=0,
                      test_each_epoch=True, **quiet())  # fmt: skip
    ra, rb = a.fit(), b.fit()
    assert ra.iteration_losses.tolist() == rb.iteration_losses.tolist()
    assert set(ra.history[0]) & {"val_loss", "test_loss"} == set()
    assert rb.history[0]["test_n"] == 1000
    assert rb.history[0]["test_acc"] == pytest.approx(rb.test_accuracy)  # reused, not redone


# ---------------------------------------------------------------------------------------------
# Weight decay and clipping
# ---------------------------------------------------------------------------------------------


def test_weight_decay_adds_lambda_w_to_the_weights_only():
    params = {"W1": np.full((2, 3), 2.0, np.float32), "b1": np.ones(3, np.float32)}
    grads = {"W1": np.ones((2, 3), np.float32), "b1": np.ones(3, np.float32)}
    names = _gradients.decayed_names(params)
    assert names == ("W1",)
    out = _gradients.add_weight_decay(params, grads, names, 0.1)
    np.testing.assert_array_equal(out["W1"], np.full((2, 3), 1.2, np.float32))
    assert out["b1"] is grads["b1"] and out["W1"].dtype == np.float32
    assert np.array_equal(grads["W1"], np.ones((2, 3)))  # the model's buffer left alone


def test_weight_decay_in_the_trainer_is_the_gradient_of_the_penalty(embedded):
    """One SGD step with weight decay lambda moves every weight by -lr * (g + lambda * W)."""
    lam, lr = 0.05, 0.1
    (x, t), test = embedded
    data = ((x[:50], t[:50]), test)
    net = small_net()
    before = {k: v.copy() for k, v in net.params.items()}
    trainer = train.Trainer(net, data, epochs=1, batch_size=50, optimizer="sgd", lr=lr, val=0,
                            weight_decay=lam, **quiet())  # fmt: skip
    xb, tb = next(iter(trainer.loader))
    _, grads = small_net().loss_and_gradient(xb, tb)
    trainer.fit()
    for k in net.params:
        decay = lam * before[k] if before[k].ndim >= 2 else 0
        np.testing.assert_allclose(net.params[k], before[k] - lr * (grads[k] + decay), atol=1e-6)
    assert trainer.config()["weight_decay"] == lam


def test_clip_by_norm_scales_to_the_limit_and_keeps_direction():
    grads = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([[4.0]], np.float32)}
    out, norm = _gradients.clip_by_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    assert _gradients.global_norm(out) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(out["a"], [0.6, 0.0], rtol=1e-6)
    same, norm = _gradients.clip_by_norm(grads, 10.0)
    assert norm == pytest.approx(5.0) and same["a"] is grads["a"]
    inf = {"a": np.array([np.inf], np.float32)}
    assert _gradients.clip_by_norm(inf, 1.0)[0]["a"] is inf["a"]


def test_clipping_in_the_trainer_is_recorded(embedded):
    trainer = train.Trainer(small_net(), embedded, epochs=1, limit_batches=5, clip_norm=1e-3,
                            **quiet())  # fmt: skip
    record = trainer.fit().history[0]
    assert record["clipped"] == 1.0 and record["grad_norm"] > 1e-3
    free = train.Trainer(small_net(), embedded, epochs=1, limit_batches=5, **quiet())
    assert "grad_norm" not in free.fit().history[0]
    with pytest.raises(ValueError, match="clip_norm must be a finite number > 0"):
        train.Trainer(small_net(), embedded, clip_norm=0.0, **quiet())
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        train.Trainer(small_net(), embedded, weight_decay=-1.0, **quiet())


# ---------------------------------------------------------------------------------------------
# Early stopping and the best epoch
# ---------------------------------------------------------------------------------------------


class FrozenNet:
    """A classic-protocol net whose gradient is zero: its validation loss never improves."""

    def __init__(self):
        self.params = {"W": np.zeros((784, 10))}

    def predict(self, x):
        return x.reshape(len(x), -1) @ self.params["W"]

    def loss(self, x, t):
        return 2.302585

    def accuracy(self, x, t):
        return 0.1

    def gradient(self, x, t):
        return {"W": np.zeros_like(self.params["W"])}


def test_early_stopping_stops_and_says_why_and_resume_keeps_it_stopped(embedded, tmp_path):
    with pytest.warns(UserWarning, match="not a fastcnn model"):
        trainer = train.Trainer(FrozenNet(), embedded, epochs=10, limit_batches=2,
                                early_stopping=2, out_dir=tmp_path, **quiet())  # fmt: skip
    result = trainer.fit()
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert result.report["early_stop"] == {"after_epoch": 3, "best_epoch": 1, "patience": 2}
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["status"] == "finished" and log["report"]["early_stop"]["after_epoch"] == 3
    again = train.Trainer.resume(tmp_path / "checkpoint.npz", embedded, model=FrozenNet(),
                                 epochs=20, **quiet())  # fmt: skip
    assert len(again.fit().history) == 3  # stopped where the uninterrupted run stopped


def test_save_best_keeps_the_lowest_validation_loss_model(embedded, tmp_path):
    trainer = train.Trainer(small_net(), embedded, epochs=3, limit_batches=6, optimizer="sgd",
                            lr=0.5, save_best=True, out_dir=tmp_path, **quiet())  # fmt: skip
    result = trainer.fit()
    best = min(result.history, key=lambda r: r["val_loss"])
    assert result.report["best"]["epoch"] == best["epoch"]
    model = models.load(tmp_path / "best.npz")
    again = train.evaluate(model, trainer.x_val, trainer.t_val)
    assert again.loss == pytest.approx(best["val_loss"], rel=1e-6)
    on_test = train.evaluate(model, trainer.x_test, trainer.t_test)
    assert result.report["best"]["test_acc"] == on_test.accuracy
    assert result.files["best"] == str(tmp_path / "best.npz")


# ---------------------------------------------------------------------------------------------
# The logged learning rate, the progress display, the CLI
# ---------------------------------------------------------------------------------------------


def test_logged_lr_is_the_one_the_epoch_used(embedded):
    """Cosine decays to 0 over the run: the last epoch's rate is small, not the restart's."""
    seen = []
    trainer = train.Trainer(small_net(), embedded, epochs=2, limit_batches=4, schedule="cosine",
                            callbacks=[lambda tr, info: seen.append(info["lr"])],
                            **quiet())  # fmt: skip
    history = trainer.fit().history
    assert [r["lr"] for r in history] == [seen[3], seen[7]]
    assert history[-1]["lr"] < 0.1 * 0.001


def test_progress_bar_only_on_a_terminal_or_in_a_notebook(monkeypatch):
    assert not _progress.bar_wanted(False)

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

        def write(self, text):
            pass

    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert not _progress.bar_wanted(True)
    monkeypatch.setattr(sys, "stderr", Stream(True))
    assert _progress.bar_wanted(True)
    monkeypatch.setattr(sys, "stderr", Stream(False))
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert _progress.in_notebook() and _progress.bar_wanted(True)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not _progress.in_notebook()


def test_cli_options_reach_the_trainer_and_stderr_gets_no_frames(tmp_path, capfd):
    out = tmp_path / "run"
    rc = cli.main(["train", "--model", "simple", "--epochs", "2", "--limit-batches", "3",
                   "--subset", "embedded", "--out", str(out), "--val", "500",
                   "--weight-decay", "1e-4", "--clip-norm", "5", "--early-stopping", "3",
                   "--save-best", "--test-each-epoch"])  # fmt: skip
    assert rc == 0
    captured = capfd.readouterr()
    assert "\r" not in captured.err  # stderr is no terminal here: whole lines only
    assert "validation (500) and test (1,000) after every epoch" in captured.out
    assert captured.out.count("val loss") == 2
    cfg = json.loads((out / "log.json").read_text())["config"]
    assert (cfg["val"], cfg["weight_decay"], cfg["clip_norm"]) == (500, 1e-4, 5.0)
    assert (cfg["early_stopping"], cfg["save_best"], cfg["test_each_epoch"]) == (3, True, True)
    assert (out / "best.npz").is_file()
    rc = cli.main(["train", "--resume", str(out / "checkpoint.npz"), "--val", "10"])
    assert rc == 2 and "--val cannot be changed when resuming" in capfd.readouterr().err
