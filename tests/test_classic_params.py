"""models.load_classic_params: the classic book's params.pkl (a pickle of {"W1": array, ...})
into fastcnn's SimpleConvNet / DeepConvNet.

Every pickle is made here: the book's names and shapes (checked against fastcnn's models),
every pickle protocol, float64 and float32; predictions against the same arrays run through
fastcnn.reference layers the way the book wires them. Then every way a file can be wrong:
names, shapes, dtypes, other objects, payloads that would run code (a sentinel file proves
they did not), truncation, random bytes, huge declared sizes. A failed load changes nothing.
"""

from __future__ import annotations

import io
import os
import pickle
import sys

import numpy as np
import pytest

from fastcnn import models
from fastcnn.models import ClassicParamsError, DeepConvNet, ModelFileError, SimpleConvNet
from fastcnn.reference import layers as L

# What the book's save_params writes with its default hyperparameters (ch07/simple_convnet.py,
# ch08/deep_convnet.py): the params dict, W<i> and b<i> per Convolution/Affine layer in order.
BOOK_SHAPES = {
    "simple": {
        "W1": (30, 1, 5, 5), "b1": (30,),
        "W2": (4320, 100), "b2": (100,),
        "W3": (100, 10), "b3": (10,),
    },
    "deep": {
        "W1": (16, 1, 3, 3), "b1": (16,),
        "W2": (16, 16, 3, 3), "b2": (16,),
        "W3": (32, 16, 3, 3), "b3": (32,),
        "W4": (32, 32, 3, 3), "b4": (32,),
        "W5": (64, 32, 3, 3), "b5": (64,),
        "W6": (64, 64, 3, 3), "b6": (64,),
        "W7": (1024, 50), "b7": (50,),
        "W8": (50, 10), "b8": (10,),
    },
}  # fmt: skip
DEEP_PADS = (1, 1, 1, 2, 1, 1)
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def book_params(kind: str, dtype=np.float64, seed: int = 0) -> dict[str, np.ndarray]:
    """Random params with the book's names and shapes (non-zero biases, so they count)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in BOOK_SHAPES[kind].items():
        fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
        scale = np.sqrt(2.0 / fan_in) if key.startswith("W") else 0.1
        out[key] = (rng.standard_normal(shape) * scale).astype(dtype)
    return out


def book_predict(kind: str, p: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Inference the way the book's SimpleConvNet / DeepConvNet wire their layers, on the
    reference layers (float64)."""
    p = {k: v.astype(np.float64) for k, v in p.items()}
    relu = L.Relu()
    pool = L.Pooling(2, 2, stride=2)
    if kind == "simple":
        x = pool.forward(relu.forward(L.Convolution(p["W1"], p["b1"], 1, 0).forward(x)))
        x = relu.forward(L.Affine(p["W2"], p["b2"]).forward(x))
        return L.Affine(p["W3"], p["b3"]).forward(x)
    for i, pad in enumerate(DEEP_PADS, start=1):
        x = relu.forward(L.Convolution(p[f"W{i}"], p[f"b{i}"], 1, pad).forward(x))
        if i % 2 == 0:
            x = pool.forward(x)
    dropout = L.Dropout(0.5)
    x = dropout.forward(relu.forward(L.Affine(p["W7"], p["b7"]).forward(x)), train_flg=False)
    return dropout.forward(L.Affine(p["W8"], p["b8"]).forward(x), train_flg=False)


def write(path, obj, protocol: int = pickle.DEFAULT_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


def snapshot(model: models.Model) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in model.params.items()}


def assert_unchanged(model: models.Model, before: dict[str, np.ndarray]) -> None:
    for key, arr in before.items():
        np.testing.assert_array_equal(model.params[key], arr)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(7).random((3, 1, 28, 28))


# ---------------------------------------------------------------------------------------------
# The book's files load, for every protocol and dtype
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["simple", "deep"])
def test_fastcnn_models_have_the_books_names_and_shapes(kind):
    model = models.MODELS[kind](backend="reference")
    assert {k: v.shape for k, v in model.params.items()} == BOOK_SHAPES[kind]
    assert list(model.params) == list(BOOK_SHAPES[kind])  # the book's order too


@pytest.mark.parametrize("model_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("file_dtype", [np.float64, np.float32])
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", ["simple", "deep"])
def test_round_trip_predictions_match_the_books_layers(
    kind, protocol, file_dtype, model_dtype, images, tmp_path
):
    params = book_params(kind, file_dtype)
    path = write(tmp_path / "params.pkl", params, protocol)
    model = models.MODELS[kind](dtype=model_dtype, seed=3)
    layer_arrays = {k: id(v) for k, v in model.params.items()}
    models.load_classic_params(path, model)
    for key, arr in params.items():
        assert model.params[key].dtype == model_dtype
        np.testing.assert_array_equal(model.params[key], arr.astype(model_dtype))
        assert id(model.params[key]) == layer_arrays[key]  # in place: the layers see it
    want = book_predict(kind, params, images)
    got = model.predict(images)
    tol = 1e-10 if model_dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_reference_backend_and_str_or_pathlike_paths(images, tmp_path):
    params = book_params("simple")
    path = write(tmp_path / "params.pkl", params)
    for given in (path, str(path)):
        model = SimpleConvNet(backend="reference", dtype=np.float64)
        models.load_classic_params(given, model)
        np.testing.assert_allclose(model.predict(images), book_predict("simple", params, images))


@pytest.mark.parametrize(
    "variant",
    ["big-endian", "fortran", "strided", "float16", "longdouble", "int32", "uint8", "0-d"],
)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_array_variants_are_accepted(variant, protocol, tmp_path):
    """Any real float/int array of the right shape is converted to the model's dtype."""
    params = book_params("simple")
    make = {
        "big-endian": lambda a: a.astype(">f8"),
        "fortran": np.asfortranarray,
        "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2],
        "float16": lambda a: a.astype(np.float16),
        "longdouble": lambda a: a.astype(np.longdouble),
        "int32": lambda a: np.round(a * 100).astype(np.int32),
        "uint8": lambda a: np.round(np.abs(a) * 100).astype(np.uint8),
    }
    if variant == "0-d":  # a shape the model does not have: rejected, by shape
        params["b3"] = np.array(1.0)
        with pytest.raises(ClassicParamsError, match=r"b3 \(\) instead of \(10,\)"):
            models.load_classic_params(write(tmp_path / "p.pkl", params, protocol), SimpleConvNet())
        return
    params = {k: make[variant](v) for k, v in params.items()}
    assert variant != "strided" or not params["W2"].flags.c_contiguous
    model = SimpleConvNet(dtype=np.float64)
    models.load_classic_params(write(tmp_path / "p.pkl", params, protocol), model)
    for key, arr in params.items():
        np.testing.assert_array_equal(model.params[key], arr.astype(np.float64))


def test_other_architectures_load_their_own_params(tmp_path):
    """Not only the defaults: whatever the model's params are, the file must match them."""
    src = SimpleConvNet((3, 10, 10), {"filter_num": 4, "filter_size": 3}, 7, 5, seed=1)
    dst = SimpleConvNet((3, 10, 10), {"filter_num": 4, "filter_size": 3}, 7, 5, seed=2)
    path = write(tmp_path / "p.pkl", {k: v.astype(np.float64) for k, v in src.params.items()})
    models.load_classic_params(path, dst)
    for key in src.params:
        np.testing.assert_array_equal(dst.params[key], src.params[key])


# ---------------------------------------------------------------------------------------------
# Names and shapes that do not fit, values out of range: one error, the model unchanged
# ---------------------------------------------------------------------------------------------


def test_missing_unexpected_and_wrong_shapes_in_one_error(tmp_path):
    params = book_params("simple")
    del params["b3"]
    params["W4"] = np.zeros((10, 10))
    params["W2"] = np.zeros((4320, 50))
    path = write(tmp_path / "params.pkl", params)
    model = SimpleConvNet()
    before = snapshot(model)
    with pytest.raises(ClassicParamsError) as exc:
        models.load_classic_params(path, model)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: the params do not fit this SimpleConvNet")
    assert "missing b3 (10,)" in msg
    assert "unexpected 'W4'" in msg
    assert "W2 (4320, 50) instead of (4320, 100)" in msg
    assert "\n" not in msg
    assert_unchanged(model, before)
    assert isinstance(exc.value, ModelFileError) and isinstance(exc.value, ValueError)


def test_the_other_books_network_is_refused(tmp_path):
    path = write(tmp_path / "params.pkl", book_params("simple"))
    model = DeepConvNet()
    before = snapshot(model)
    with pytest.raises(ClassicParamsError, match=r"missing W4 \(32, 32, 3, 3\), b4 \(32,\)"):
        models.load_classic_params(path, model)
    assert_unchanged(model, before)


def test_only_the_last_param_wrong_changes_nothing(tmp_path):
    params = book_params("deep")
    params["b8"] = np.zeros(11)
    model = DeepConvNet()
    before = snapshot(model)
    with pytest.raises(ClassicParamsError, match=r"b8 \(11,\) instead of \(10,\)"):
        models.load_classic_params(write(tmp_path / "p.pkl", params), model)
    assert_unchanged(model, before)


def test_values_beyond_float32_are_refused_and_nothing_is_copied(tmp_path):
    params = book_params("simple")
    params["b3"][4] = 1e300  # the last param: every other one was converted already
    model = SimpleConvNet(dtype=np.float32)
    before = snapshot(model)
    with pytest.raises(ClassicParamsError, match="b3 has values beyond the range of float32"):
        models.load_classic_params(write(tmp_path / "p.pkl", params), model)
    assert_unchanged(model, before)
    models.load_classic_params(tmp_path / "p.pkl", SimpleConvNet(dtype=np.float64))


def test_many_unexpected_names_are_listed_briefly(tmp_path):
    params = book_params("simple")
    params.update({f"extra{i}": np.zeros(1) for i in range(50)})
    with pytest.raises(ClassicParamsError, match=r"'extra9' and 40 more$"):
        models.load_classic_params(write(tmp_path / "p.pkl", params), SimpleConvNet())


# ---------------------------------------------------------------------------------------------
# Not a dict of plain arrays
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, what",
    [
        (object, "dtype object"),
        (np.complex128, "dtype complex"),
        (np.bool_, "dtype bool"),
        ("<U3", "dtype str"),
        ("S3", "dtype bytes"),
        ("datetime64[s]", "dtype datetime64"),
        ([("a", "f8")], "structured"),
    ],
)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_of_other_dtypes_name_their_key(dtype, what, protocol, tmp_path):
    params = book_params("simple")
    params["W2"] = np.zeros(3, dtype=dtype)
    path = write(tmp_path / "params.pkl", params, protocol)
    model = SimpleConvNet()
    before = snapshot(model)
    with pytest.raises(ClassicParamsError) as exc:
        models.load_classic_params(path, model)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: 'W2' holds an array of ") and what in msg, msg
    assert "real floats or integers" in msg
    assert_unchanged(model, before)


def test_an_object_array_holding_a_payload_is_refused_unbuilt(tmp_path):
    sentinel = tmp_path / "ran"
    params = book_params("simple")
    params["W1"] = np.array([1, OpenFile(sentinel)], dtype=object)
    with pytest.raises(ClassicParamsError, match="refused: the pickle asks for 'io.open'"):
        models.load_classic_params(write(tmp_path / "p.pkl", params), SimpleConvNet())
    assert not sentinel.exists()


@pytest.mark.parametrize(
    "top, what",
    [
        ([np.zeros(3)], "holds a list, not a dict of named arrays"),
        ((np.zeros(3),), "holds a tuple, not a dict"),
        (np.zeros(3), "holds a numpy array, not a dict"),
        (None, "holds a NoneType, not a dict"),
        (3, "holds 3, not a dict"),
        ("W1", "holds 'W1', not a dict"),
    ],
)
def test_a_top_level_other_than_a_dict(top, what, tmp_path):
    path = write(tmp_path / "p.pkl", top)
    with pytest.raises(ClassicParamsError, match=f"^{path}: {what}"):
        models.load_classic_params(path, SimpleConvNet())


@pytest.mark.parametrize(
    "key, value, what",
    [
        (1, np.zeros(3), "key 1 is not a string"),
        (("W", 1), np.zeros(3), "key a tuple is not a string"),
        ("W1", [[0.0, 1.0]], "'W1' holds a list, not a numpy array"),
        ("W1", 0.5, "'W1' holds 0.5, not a numpy array"),
        ("W1", {"data": np.zeros(3)}, "'W1' holds a dict, not a numpy array"),
        ("W1", np.dtype("f8"), "'W1' holds a numpy dtype, not a numpy array"),
    ],
)
def test_keys_and_values_other_than_names_and_arrays(key, value, what, tmp_path):
    params = book_params("simple")
    params[key] = value
    path = write(tmp_path / "p.pkl", params)
    with pytest.raises(ClassicParamsError, match=f"^{path}: {what}"):
        models.load_classic_params(path, SimpleConvNet())


def test_numpy_scalars_are_not_params(tmp_path):
    params = book_params("simple")
    params["b3"] = np.float64(1.0)  # pickled through numpy's scalar(), which is not admitted
    match = r"asks for 'numpy\._?core\.multiarray\.scalar'.*not numpy scalars"
    with pytest.raises(ClassicParamsError, match=match):
        models.load_classic_params(write(tmp_path / "p.pkl", params), SimpleConvNet())


class Network:
    """A stand-in for pickling a whole network object instead of its params dict."""

    def __init__(self, params):
        self.params = params


def test_a_pickled_class_instance_is_refused(tmp_path):
    path = write(tmp_path / "net.pkl", Network(book_params("simple")))
    with pytest.raises(ClassicParamsError) as exc:
        models.load_classic_params(path, SimpleConvNet())
    msg = str(exc.value)
    assert msg.startswith(f"{path}: refused: the pickle asks for ")
    assert "Network" in msg and "save its params dict" in msg


# ---------------------------------------------------------------------------------------------
# Files that would run code: refused, and the sentinel file proves nothing ran
# ---------------------------------------------------------------------------------------------


class OpenFile:
    """Unpickles as open(path, "w"): creates the file (a visible side effect, no shell)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


class System:
    """Unpickles as os.system("touch PATH")."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch '{self.path}'",))


class Eval:
    """Unpickles as eval(...) of code creating PATH."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (eval, (f"open({self.path!r}, 'w').close()",))


RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, under its own module name


class ReconstructSomethingElse:
    """Asks numpy's (admitted) _reconstruct to build an instance of a payload class."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (RECONSTRUCT, (OpenFile, (0,), b"b"), None)


PAYLOADS = [OpenFile, System, Eval, ReconstructSomethingElse]


def test_the_payloads_do_run_under_plain_pickle(tmp_path):
    """The control: without the restricted unpickler these payloads would run."""
    for i, payload in enumerate([OpenFile, System, Eval]):
        sentinel = tmp_path / f"ran{i}"
        obj = pickle.loads(pickle.dumps({"W1": payload(sentinel)}))
        if hasattr(obj["W1"], "close"):
            obj["W1"].close()
        assert sentinel.exists(), payload


@pytest.mark.parametrize("where", ["top", "value", "nested"])
@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.__name__)
def test_payloads_are_refused_and_do_not_run(payload, protocol, where, tmp_path):
    sentinel = tmp_path / "ran"
    obj = payload(sentinel)
    params = book_params("simple")
    top = {
        "top": obj,
        "value": {**params, "W1": obj},
        "nested": {**params, "W1": [{"x": (obj,)}]},
    }[where]
    path = write(tmp_path / "evil.pkl", top, protocol)
    model = SimpleConvNet()
    before = snapshot(model)
    with pytest.raises(ClassicParamsError, match=f"^{path}: refused: "):
        models.load_classic_params(path, model)
    assert not sentinel.exists()
    assert_unchanged(model, before)


def test_a_hand_written_protocol_0_payload(tmp_path):
    sentinel = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(f"cos\nsystem\n(S'touch {sentinel}'\ntR.".encode())
    with pytest.raises(ClassicParamsError, match="asks for 'os.system'"):
        models.load_classic_params(path, SimpleConvNet())
    assert not sentinel.exists()


def test_build_on_an_admitted_name_is_refused(tmp_path):
    """BUILD (setstate) on numpy.dtype's stand-in would otherwise set attributes on it."""
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02cnumpy\ndtype\n}X\x01\x00\x00\x00xK\x01sb.")
    with pytest.raises(ClassicParamsError, match="sets state on numpy.dtype"):
        models.load_classic_params(path, SimpleConvNet())


def test_text_reused_for_many_arrays_is_refused_before_it_is_encoded(tmp_path):
    """_codecs.encode called again and again on one memoised string would build far more
    bytes than the file holds (a 10 KB file, 100 MB): the budget is the file's length."""
    text = b"X" + (10_000).to_bytes(4, "little") + b"a" * 10_000
    calls = b"h\x00h\x01h\x02\x86R" * 10_000
    path = tmp_path / "amp.pkl"
    path.write_bytes(
        b"\x80\x02c_codecs\nencode\nq\x00" + text + b"q\x01U\x06latin1q\x02](" + calls + b"e."
    )
    with pytest.raises(ClassicParamsError, match=r"amp.pkl: refused: the pickle builds more bytes"):
        models.load_classic_params(path, SimpleConvNet())
    # one encode per array, as every protocol-2 file has, stays within the budget
    model = SimpleConvNet()
    models.load_classic_params(write(tmp_path / "p2.pkl", book_params("simple"), 2), model)


class PersistentPickler(pickle.Pickler):
    def persistent_id(self, obj):
        return "outside" if isinstance(obj, np.ndarray) else None


def test_persistent_ids_and_out_of_band_buffers_are_refused(tmp_path):
    buf = io.BytesIO()
    PersistentPickler(buf, protocol=4).dump(book_params("simple"))
    path = tmp_path / "persistent.pkl"
    path.write_bytes(buf.getvalue())
    with pytest.raises(ClassicParamsError, match="opcode BINPERSID"):
        models.load_classic_params(path, SimpleConvNet())
    buffers = []
    data = pickle.dumps(book_params("simple"), protocol=5, buffer_callback=buffers.append)
    assert buffers
    path.write_bytes(data)
    with pytest.raises(ClassicParamsError, match="opcode NEXT_BUFFER"):
        models.load_classic_params(path, SimpleConvNet())


# ---------------------------------------------------------------------------------------------
# Broken files and huge declared sizes: one clear error
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 2, 20, 0.5, -9, -1])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_truncated_files(cut, protocol, tmp_path):
    data = pickle.dumps(book_params("deep"), protocol=protocol)
    n = int(len(data) * cut) if isinstance(cut, float) else cut % len(data)
    path = tmp_path / "params.pkl"
    path.write_bytes(data[:n])
    with pytest.raises(ClassicParamsError, match=f"^{path}: not a pickle, or truncated"):
        models.load_classic_params(path, DeepConvNet())


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes(seed, tmp_path):
    path = tmp_path / "params.pkl"
    path.write_bytes(np.random.default_rng(seed).bytes(4096))
    with pytest.raises(ClassicParamsError, match=f"^{path}: "):
        models.load_classic_params(path, SimpleConvNet())


def test_flipped_bytes_inside_a_valid_file(tmp_path):
    """Corruption in the middle: either refused or, if it only touched array data, loaded."""
    data = bytearray(pickle.dumps(book_params("deep"), protocol=4))
    rng = np.random.default_rng(1)
    for pos in rng.integers(0, 600, 40):  # the opcodes and names, before the big arrays
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        path = tmp_path / "params.pkl"
        path.write_bytes(bytes(bad))
        model = DeepConvNet()
        before = snapshot(model)
        try:
            models.load_classic_params(path, model)
        except ClassicParamsError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
            assert_unchanged(model, before)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not a pickle, or truncated"),
        (b"hello, world\n", "not a pickle, or truncated"),
        (pickle.dumps(book_params("simple"))[:-1] + b".trailing", "unexpected bytes after"),
    ],
)
def test_empty_text_and_trailing_garbage(content, match, tmp_path):
    path = tmp_path / "params.pkl"
    path.write_bytes(content)
    with pytest.raises(ClassicParamsError, match=f"^{path}: .*{match}"):
        models.load_classic_params(path, SimpleConvNet())


def test_a_fastcnn_model_file_is_pointed_to_models_load(tmp_path):
    path = tmp_path / "model.npz"
    SimpleConvNet().save(path)
    with pytest.raises(ClassicParamsError, match="a zip archive, not a pickle"):
        models.load_classic_params(path, SimpleConvNet())


class Raw:
    """Pickles as the given (callable, args[, state]): numpy's own names with other values."""

    def __init__(self, *reduced):
        self.reduced = reduced

    def __reduce__(self):
        return self.reduced


HUGE = 2**40


@pytest.mark.parametrize(
    "value, match",
    [
        # numpy would allocate 8 TiB for this object array before seeing its 2 items
        (
            Raw(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (HUGE,), np.dtype(object), False, [1])),
            r"'W1' holds an array of dtype object 'O8', shape \(1099511627776,\)",
        ),
        (
            Raw(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (HUGE,), np.dtype("f8"), False, b"1")),
            "needs 8796093022208 bytes of data, the file holds 1",
        ),
        (Raw(RECONSTRUCT, (np.ndarray, (HUGE,), b"b")), "is not how numpy pickles an array"),
        (
            Raw(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (-1,), np.dtype("f8"), False, b"")),
            "invalid shape",
        ),
        (
            Raw(RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (2,), np.dtype("f8"), False, [1.0])),
            "whose data is a list, not bytes",
        ),
        (Raw(np.dtype, ([("a", "f8")], False, True)), "is not how numpy pickles a dtype"),
    ],
)
def test_numpy_names_with_values_numpy_never_writes(value, match, tmp_path):
    params = book_params("simple")
    params["W1"] = value
    path = write(tmp_path / "p.pkl", params, protocol=4)
    with pytest.raises(ClassicParamsError, match=match):
        models.load_classic_params(path, SimpleConvNet())


def test_a_declared_length_beyond_the_file(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(b"\x80\x04\x8e" + (2**60).to_bytes(8, "little") + b"abc.")  # BINBYTES8
    with pytest.raises(ClassicParamsError, match="not a pickle, or truncated"):
        models.load_classic_params(path, SimpleConvNet())


def test_a_file_far_larger_than_the_model_is_not_read(tmp_path):
    model = SimpleConvNet((1, 6, 6), {"filter_num": 2, "filter_size": 3}, 3, 2)
    params = {k: v.astype(np.float64) for k, v in model.params.items()}
    params["padding"] = np.zeros(2**18)  # 2 MiB against a few hundred params
    with pytest.raises(ClassicParamsError, match="far more than the model's params need"):
        models.load_classic_params(write(tmp_path / "p.pkl", params), model)


def test_missing_file_directory_and_non_model(tmp_path):
    with pytest.raises(FileNotFoundError):
        models.load_classic_params(tmp_path / "nope.pkl", SimpleConvNet())
    with pytest.raises(ClassicParamsError, match="is a directory"):
        models.load_classic_params(tmp_path, SimpleConvNet())
    path = write(tmp_path / "p.pkl", book_params("simple"))
    with pytest.raises(TypeError, match="model must be a fastcnn model"):
        models.load_classic_params(path, {"W1": np.zeros(1)})


def test_exported_from_models():
    assert {"load_classic_params", "ClassicParamsError"} <= set(models.__all__)
    assert issubclass(ClassicParamsError, ModelFileError)
    assert "fastcnn.models._classic_params" in sys.modules
