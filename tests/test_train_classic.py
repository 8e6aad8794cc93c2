"""fastcnn.train.Trainer with any model: a user-built Sequential and a hand-written object with
the classic protocol (params, gradient, loss, accuracy) train, checkpoint and resume; the
classic optimizer spellings; what a params-only file is refused for, and the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fastcnn import models, optim, train
from fastcnn.datasets import mnist_source


@pytest.fixture(scope="module")
def embedded():
    return mnist_source(subset="embedded").load(flatten=False)


class TwoLayerNet:
    """The classic book's two-layer net, written here in plain numpy: affine - ReLU - affine -
    softmax cross-entropy, with the classic protocol and a predict. Images of any shape are
    flattened."""

    def __init__(self, hidden=16, seed=0, input_size=784):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": rng.standard_normal((input_size, hidden)) * np.sqrt(2 / input_size),
            "b1": np.zeros(hidden),
            "W2": rng.standard_normal((hidden, 10)) * np.sqrt(2 / hidden),
            "b2": np.zeros(10),
        }

    def _forward(self, x):
        x = x.reshape(len(x), -1)
        h = np.maximum(0, x @ self.params["W1"] + self.params["b1"])
        return x, h, h @ self.params["W2"] + self.params["b2"]

    def predict(self, x):
        return self._forward(x)[2]

    @staticmethod
    def _softmax(y):
        e = np.exp(y - y.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def loss(self, x, t):
        p = self._softmax(self.predict(x))
        return float(-np.log(p[np.arange(len(t)), t] + 1e-7).mean())

    def accuracy(self, x, t):
        return float((self.predict(x).argmax(axis=1) == t).mean())

    def gradient(self, x, t):
        x, h, y = self._forward(x)
        dy = self._softmax(y)
        dy[np.arange(len(t)), t] -= 1
        dy /= len(t)
        dh = (dy @ self.params["W2"].T) * (h > 0)
        return {"W1": x.T @ dh, "b1": dh.sum(axis=0), "W2": h.T @ dy, "b2": dy.sum(axis=0)}


class NoPredictNet:
    """Only the four names of the protocol: no predict, so no per-class report."""

    def __init__(self):
        self._net = TwoLayerNet(seed=1)
        self.params = self._net.params

    def gradient(self, x, t):
        return self._net.gradient(x, t)

    def loss(self, x, t):
        return self._net.loss(x, t)

    def accuracy(self, x, t):
        return self._net.accuracy(x, t)


# All of the training set trained on, the test set evaluated each epoch (what these tests were
# written for; the validation split has its own tests).
SETTINGS = dict(epochs=2, batch_size=50, limit_batches=10, eval_sample=200, seed=4, val=0,
                test_each_epoch=True, progress=False, verbose=False)  # fmt: skip


def user_net(seed=0):
    layers = [
        {"type": "conv", "filters": 4, "size": 3, "pad": "same"},
        {"type": "relu"},
        {"type": "maxpool", "size": 2},
        {"type": "dropout", "ratio": 0.2},
        {"type": "flatten"},
        {"type": "affine", "units": 10},
    ]
    return models.Sequential(layers, (1, 28, 28), seed=seed, name="MyNet")


# ---------------------------------------------------------------------------------------------
# A hand-written classic-protocol net
# ---------------------------------------------------------------------------------------------


def test_a_classic_protocol_net_trains_and_its_loss_falls(embedded):
    net = TwoLayerNet()
    before = {k: v.copy() for k, v in net.params.items()}
    trainer = train.Trainer(net, embedded, optimizer="Adam", optimizer_param={"lr": 0.01},
                            **SETTINGS)  # fmt: skip
    result = trainer.fit()
    losses = result.iteration_losses
    assert len(losses) == 20
    assert losses[-5:].mean() < 0.6 * losses[:5].mean()
    assert result.history[1]["train_loss"] < result.history[0]["train_loss"]
    assert result.test_accuracy > 0.6 and result.report["n"] == 1000
    assert len(result.report["confusion"]) == 10  # from its predict(x)
    assert result.model is net and not np.array_equal(net.params["W1"], before["W1"])
    cfg = trainer.config()
    assert cfg["model"] == "TwoLayerNet" and cfg["model_config"] is None
    assert cfg["files_hold"] == "params only" and cfg["optimizer"] == "adam"
    assert trainer.base_lr == 0.01
    # The evaluation loss is the object's own loss on the whole test set.
    x, t = embedded[1]
    assert result.report["loss"] == pytest.approx(net.loss(x.astype(np.float64), t), rel=1e-9)


def test_flat_arrays_and_an_object_without_predict(embedded):
    (x, t), (xt, tt) = embedded
    data = ((x.reshape(len(x), -1), t), (xt.reshape(len(xt), -1), tt))
    result = train.Trainer(NoPredictNet(), data, optimizer="sgd", lr=0.1, **SETTINGS).fit()
    assert set(result.report) == {"n", "accuracy", "loss"} and result.test_accuracy > 0.5
    text = train.format_report(result.report)
    assert text.startswith("test accuracy") and "no per-class report" in text
    evaluated = train.evaluate(NoPredictNet(), xt[:10], tt[:10])
    assert evaluated is not None and evaluated.proba is None
    with pytest.raises(ValueError, match="no predict"):
        _ = evaluated.predictions


@pytest.mark.parametrize(
    "name, cls",
    [("Adam", optim.Adam), ("adam", optim.Adam), ("SGD", optim.SGD),
     ("Momentum", optim.Momentum), ("AdaGrad", optim.AdaGrad), ("RMSprop", optim.RMSprop),
     ("Nesterov", optim.Nesterov), ("ADAGRAD", optim.AdaGrad)],
)  # fmt: skip
def test_classic_optimizer_spellings(embedded, name, cls):
    trainer = train.Trainer(TwoLayerNet(), embedded, optimizer=name,
                            optimizer_param={"lr": 0.003}, **SETTINGS)  # fmt: skip
    assert type(trainer.optimizer) is cls and trainer.optimizer.lr == 0.003
    assert trainer.config()["optimizer"] == name.lower()


def test_optimizer_param_with_hyperparameters_and_its_errors(embedded):
    t = train.Trainer(user_net(), embedded, optimizer="Momentum",
                      optimizer_param={"lr": 0.05, "momentum": 0.5}, **SETTINGS)  # fmt: skip
    assert (t.optimizer.lr, t.optimizer.momentum) == (0.05, 0.5)
    with pytest.raises(ValueError, match=r"Adam has no hyperparameters \['momentum'\]"):
        train.Trainer(user_net(), embedded, optimizer="Adam", optimizer_param={"momentum": 0.9})
    with pytest.raises(ValueError, match="lr is given twice"):
        train.Trainer(user_net(), embedded, lr=0.1, optimizer_param={"lr": 0.2})
    with pytest.raises(ValueError, match="not both"):
        train.Trainer(user_net(), embedded, optimizer_param={"lr": 0.2},
                      optimizer_kwargs={"lr": 0.2})  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown optimizer 'LBFGS' \(known, in any case: SGD"):
        train.Trainer(user_net(), embedded, optimizer="LBFGS")


def test_models_that_are_not_models(embedded):
    class Half:
        params = {"W": np.zeros(3)}

        def loss(self, x, t):
            return 0.0

    with pytest.raises(TypeError, match="Half lacks gradient, accuracy"):
        train.Trainer(Half(), embedded)
    with pytest.raises(TypeError, match="object lacks params, gradient, loss, accuracy"):
        train.Trainer(object(), embedded)
    net = TwoLayerNet()
    net.params["W1"] = net.params["W1"].tolist()
    with pytest.raises(TypeError, match=r"model.params\['W1'\] must be a float numpy array"):
        train.Trainer(net, embedded)
    net = TwoLayerNet()
    net.params = {}
    with pytest.raises(TypeError, match="lacks params"):
        train.Trainer(net, embedded)


# ---------------------------------------------------------------------------------------------
# Checkpoints and resume
# ---------------------------------------------------------------------------------------------


def _stop_at(n):
    def stop(trainer, info):
        if info["iteration"] == n:
            raise KeyboardInterrupt

    return stop


def test_a_user_sequential_checkpoints_and_resumes_from_the_file(embedded, tmp_path):
    full = train.Trainer(user_net(), embedded, **SETTINGS).fit()
    trainer = train.Trainer(user_net(), embedded, out_dir=tmp_path, callbacks=[_stop_at(13)],
                            **SETTINGS)  # fmt: skip
    with pytest.raises(train.TrainingInterrupted):
        trainer.fit()
    log = json.loads((tmp_path / "log.json").read_text())
    assert log["config"]["model"] == "MyNet" and log["config"]["files_hold"] == "the model"

    resumed = train.Trainer.resume(tmp_path / "checkpoint.npz", embedded, out_dir=tmp_path,
                                   progress=False, verbose=False)  # fmt: skip
    assert resumed.model.name == "MyNet" and resumed.iteration == 13
    result = resumed.fit()
    assert result.iteration_losses.tolist() == full.iteration_losses.tolist()
    for key, value in full.model.params.items():
        np.testing.assert_array_equal(result.model.params[key], value, err_msg=key)
    saved = models.load(tmp_path / "model.npz")
    assert saved.config == user_net().config and saved.name == "MyNet"
    x = embedded[1][0][:20]
    np.testing.assert_array_equal(saved.predict(x), result.model.predict(x))


def test_a_foreign_object_checkpoints_its_params_and_resumes_into_the_object(embedded, tmp_path):
    full = train.Trainer(TwoLayerNet(), embedded, **SETTINGS).fit()
    with pytest.warns(UserWarning, match="TwoLayerNet is not a fastcnn model.*params"):
        trainer = train.Trainer(TwoLayerNet(), embedded, out_dir=tmp_path,
                                callbacks=[_stop_at(7)], **SETTINGS)  # fmt: skip
    with pytest.raises(train.TrainingInterrupted):
        trainer.fit()
    ckpt = tmp_path / "checkpoint.npz"

    with pytest.raises(ValueError, match=r"holds its params only.*model=net"):
        train.Trainer.resume(ckpt, embedded)
    other = TwoLayerNet(hidden=8)
    kept = {k: v.copy() for k, v in other.params.items()}
    with pytest.raises(
        models.ModelFileError,
        match=r"param 'W1' has shape \(784, 16\) in the file but the model given expects",
    ):
        train.Trainer.resume(ckpt, embedded, model=other)
    for key, value in kept.items():  # checked before anything was copied
        np.testing.assert_array_equal(other.params[key], value)
    with pytest.raises(TypeError, match="classic protocol"):
        train.Trainer.resume(ckpt, embedded, model=object())
    (x, t), test = embedded
    untouched = TwoLayerNet(seed=2)
    with pytest.raises(ValueError, match="trained on 5000 images"):
        train.Trainer.resume(ckpt, ((x[:100], t[:100]), test), model=untouched)
    for key, value in TwoLayerNet(seed=2).params.items():  # a failed resume changes nothing
        np.testing.assert_array_equal(untouched.params[key], value)

    net = TwoLayerNet(seed=9)  # different weights: the checkpoint's replace them
    with pytest.warns(UserWarning, match="not its architecture"):
        resumed = train.Trainer.resume(ckpt, embedded, model=net, out_dir=tmp_path,
                                       progress=False, verbose=False)  # fmt: skip
    assert resumed.model is net and resumed.iteration == 7
    assert type(resumed.optimizer) is optim.Adam and resumed.optimizer.step == 7
    result = resumed.fit()
    assert result.iteration_losses.tolist() == full.iteration_losses.tolist()
    for key, value in full.model.params.items():
        np.testing.assert_array_equal(net.params[key], value, err_msg=key)

    # The files hold params only: nothing can be built, evaluated or predicted from them.
    for name in ("model.npz", "checkpoint.npz"):
        with pytest.raises(models.ParamsOnlyError, match="holds the params of a TwoLayerNet"):
            models.load(tmp_path / name)
    with pytest.raises(models.ParamsOnlyError, match="cannot be loaded, evaluated"):
        models.load_checkpoint(ckpt)


def test_a_fastcnn_checkpoint_is_not_resumed_into_a_foreign_object(embedded, tmp_path):
    train.Trainer(user_net(), embedded, out_dir=tmp_path, **SETTINGS).fit()
    with pytest.raises(ValueError, match="holds a fastcnn model; resume it without model="):
        train.Trainer.resume(tmp_path / "checkpoint.npz", embedded, model=TwoLayerNet())
    (x, t), test = embedded
    model = user_net(seed=5)
    with pytest.raises(ValueError, match="trained on 5000 images"):
        train.Trainer.resume(tmp_path / "checkpoint.npz", ((x[:100], t[:100]), test), model=model)
    for key, value in user_net(seed=5).params.items():  # a failed resume changes nothing
        np.testing.assert_array_equal(model.params[key], value)
    # ... but into a fastcnn model of the same architecture, in place.
    resumed = train.Trainer.resume(tmp_path / "checkpoint.npz", embedded, model=model,
                                   progress=False, verbose=False)  # fmt: skip
    assert resumed.model is model
    saved = models.load(tmp_path / "model.npz")
    for key, value in saved.params.items():
        np.testing.assert_array_equal(model.params[key], value, err_msg=key)
