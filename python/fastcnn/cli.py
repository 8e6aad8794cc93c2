"""The ``fastcnn`` command line (also ``python -m fastcnn``): train, evaluate, predict, convert,
info, bench.

argparse only; each command is a thin layer over fastcnn.train, fastcnn.models,
fastcnn.datasets and fastcnn._bench. Expected failures (missing or corrupted files, bad
arguments, no data) print one line on stderr and exit with status 2, without a traceback;
set FASTCNN_DEBUG=1 to see the traceback. Ctrl-C during training exits with status 130 after
saving a checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import struct
import sys
import time
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from fastcnn import _env

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A usage error found after parsing: reported as one line, exit status 2."""


# What a user's files, arguments or environment can make a command raise: each is reported as
# one line on stderr with exit status 2 (FASTCNN_DEBUG=1 shows the traceback instead). The
# documented errors come first (ModelFileError and IDXError are ValueErrors, MNISTNotFoundError
# an OSError, TypeError a wrong argument, ImportError a missing Pillow, FloatingPointError a
# diverged run); the rest is what a damaged or hostile file can still raise from the readers
# underneath (zipfile, zlib, struct, a JSON header nested too deep, a zip member compressed by
# an unsupported method) or from an allocation that does not fit.
USER_ERRORS: tuple[type[BaseException], ...] = (
    CLIError, ValueError, TypeError, OSError, ImportError, FloatingPointError,
    EOFError, zipfile.BadZipFile, zlib.error, struct.error, RecursionError, NotImplementedError,
    MemoryError,
)  # fmt: skip


@contextlib.contextmanager
def _reading(path: Any) -> Iterator[None]:
    """Name ``path`` in any user error raised in the body whose message does not already."""
    try:
        yield
    except USER_ERRORS as exc:
        if str(path) in str(exc):
            raise
        text = _one_line(exc)
        kind = type(exc).__name__
        raise CLIError(f"{path}: {text if text == kind else f'{kind}: {text}'}") from exc


# ---------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------


def _set_threads(n: int | None) -> None:
    if n is not None:
        import fastcnn

        fastcnn.set_num_threads(n)


def _source(args: argparse.Namespace) -> Any:
    """The DatasetSource chosen by --dataset / --data-dir / --subset (MNIST's fallback
    warning is printed once)."""
    from fastcnn.datasets import dataset_source, mnist_source

    name = args.dataset or "mnist"
    subset = None if args.subset in (None, "auto") else args.subset
    if name != "mnist":
        if subset is not None:
            raise CLIError(f"--subset is MNIST's only (its embedded subset); {name} has none")
        if name == "folder" and args.data_dir is None:
            raise CLIError("--dataset folder needs --data-dir DIR (one sub-folder per class)")
        return dataset_source(name, args.data_dir)
    if args.data_dir is not None and subset == "embedded":
        raise CLIError("--data-dir and --subset embedded contradict each other")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = mnist_source(args.data_dir, subset=subset)
    for w in caught:
        print(f"fastcnn: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    return source


def _add_data_args(p: argparse.ArgumentParser, default_subset: str | None = "auto") -> None:
    from fastcnn.datasets import dataset_names

    p.add_argument(
        "--dataset",
        choices=dataset_names(),
        help="the data: a named dataset (downloaded into the cache when not found, its "
        "checksums verified) or folder, your own pictures in --data-dir, one sub-folder per "
        "class, prepared as predict prepares them (default: mnist)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="the dataset's files: the four IDX files (.gz or raw) of mnist, fashion-mnist or "
        "kmnist, cifar10's .bin batches, or the folder of pictures; default: the cache "
        "($FASTCNN_DATA_DIR first for mnist), else a download",
    )
    p.add_argument(
        "--subset",
        choices=("auto", "full", "embedded"),
        default=default_subset,
        help="mnist only: the full MNIST, the embedded 5,000/1,000 subset, or auto: full when "
        "available, else the subset (default: %(default)s)",
    )


def _add_model_args(p: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """The model file of evaluate and predict, and --model for a book params pickle."""
    p.add_argument(
        "file",
        metavar="MODEL",
        help="a model file (model.npz or checkpoint.npz), or the book's params.pkl with --model",
    )
    p.add_argument(
        "--model",
        choices=names,
        help="the network a params.pkl holds (required for one; it is read without running "
        "code from it, into a float32 model); with a model file it must name the file's own",
    )


def _model_spec(text: str) -> str:
    """--model of train: a models.MODELS name or an existing file (read when training)."""
    from fastcnn.models import MODELS

    if text in MODELS or Path(text).is_file():
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither a built-in model ({', '.join(MODELS)}) nor a config file"
    )


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _non_negative(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


# ---------------------------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------------------------


def _cmd_info(args: argparse.Namespace) -> int:
    if args.file is not None:  # a saved model: its layers, output shapes and param counts
        print(_load_model(args.file, "fast").format_summary())
        return 0
    from fastcnn._config import show_config

    show_config()
    return 0


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------

# Training settings a checkpoint fixes: giving them with --resume is an error.
_FIXED_ON_RESUME = (
    "model", "batch_size", "optimizer", "lr", "schedule", "warmup", "augment", "max_shift",
    "max_rotation", "seed", "val", "test_each_epoch", "eval_sample", "weight_decay", "clip_norm",
    "early_stopping", "save_best", "limit_batches", "dtype",
)  # fmt: skip


def _cmd_train(args: argparse.Namespace) -> int:
    from fastcnn import train
    from fastcnn.distributed import DistributedError, _launch

    comm = _launch.communicator(args.threads)  # None unless mpirun started several ranks
    if comm is None:
        _set_threads(args.threads)
        return _train(args, None)
    comm.stop_on_terminate()
    try:
        return _train(args, comm)
    except (DistributedError, train.TrainingDiverged) as exc:  # every rank alike: said once
        if comm.is_root:
            print(f"fastcnn train: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except BaseException as exc:  # this rank alone: the others would wait for it
        comm.abort(f"error: {_one_line(exc)}", EXIT_ERROR)
        raise


def _train(args: argparse.Namespace, comm: Any) -> int:
    from fastcnn import train
    from fastcnn.datasets import Augment

    say = print if comm is None or comm.is_root else _quiet
    command = ["fastcnn", *args.argv]
    if args.resume is not None:
        given = [
            "--" + name.replace("_", "-")
            for name in _FIXED_ON_RESUME
            if getattr(args, name) not in (None, False)
        ]
        if given:
            raise CLIError(
                f"{', '.join(given)} cannot be changed when resuming: the checkpoint fixes the "
                "training settings (only --epochs, --out, --backend, --threads, --dataset, "
                "--data-dir, --subset and --no-progress may be given)"
            )
        resume = Path(args.resume)
        if not resume.is_file() and (comm is None or comm.is_root):
            raise CLIError(f"{resume}: no such checkpoint file")
        out = Path(args.out) if args.out else resume.parent
        if comm is not None:
            from fastcnn.distributed import _launch

            resume = _launch.shared_file(comm, resume)
        if args.dataset is None and args.data_dir is not None:  # the files of the run's dataset
            from fastcnn.train._data import recorded_dataset

            with _reading(resume):
                args.dataset = recorded_dataset(resume)
        data = _source(args) if (args.data_dir or args.subset or args.dataset) else None
        trainer = train.Trainer.resume(
            resume,
            data,
            backend=args.backend or "fast",
            epochs=args.epochs,
            out_dir=out,
            progress=not args.no_progress,
            command=command,
            comm=comm,
        )
        say(
            f"resuming {args.resume}: epoch {trainer.epoch + 1}, batch {trainer.batch} "
            f"(iteration {trainer.iteration}) of {trainer.epochs} epochs"
        )
    else:
        if not args.augment and (args.max_shift is not None or args.max_rotation is not None):
            raise CLIError("--max-shift / --max-rotation need --augment")
        dtype_given = args.dtype
        for key, value in train.DEFAULTS.items():
            if getattr(args, key, False) is None:  # an option left out (not the Trainer-only ones)
                setattr(args, key, value)
        if args.subset is None:
            args.subset = "auto"
        source = _source(args)
        model = _train_model(args.model, args.backend, args.seed, dtype_given or args.dtype,
                             dtype_given is not None, source)  # fmt: skip
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(args.out) if args.out else Path("runs") / f"{_file_name(model.name)}-{stamp}"
        trainer = train.Trainer(
            model,
            source,
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
            lr=args.lr,
            schedule=args.schedule,
            warmup=args.warmup,
            augment=Augment(args.max_shift, args.max_rotation) if args.augment else None,
            val=args.val,
            test_each_epoch=bool(args.test_each_epoch),
            eval_sample=args.eval_sample,
            weight_decay=args.weight_decay,
            clip_norm=args.clip_norm,
            early_stopping=args.early_stopping,
            save_best=bool(args.save_best),
            seed=args.seed,
            out_dir=out,
            progress=not args.no_progress,
            limit_batches=args.limit_batches,
            command=command,
            comm=comm,
        )
    if comm is not None:
        comm.stop_on_terminate(f"; the last checkpoint is kept in {out}")
    if comm is None or comm.is_root:
        _print_run_header(trainer, out)
    try:
        trainer.fit()
    except train.TrainingInterrupted as exc:
        say(f"\nfastcnn: {exc}", file=sys.stderr)
        if exc.checkpoint is not None:
            say(f"fastcnn: resume with: fastcnn train --resume {exc.checkpoint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _quiet(*args: Any, **kwargs: Any) -> None:
    """print, on the ranks that do not print (all but rank 0)."""


def _train_model(
    spec: str, backend: str, seed: int, dtype: str, dtype_given: bool, source: Any
) -> Any:
    """The network ``--model`` names: a built-in one (models.MODELS) for the images and
    classes of ``source``, or the Sequential a JSON config file describes (its own dtype
    unless --dtype is given; the Trainer checks it fits the data)."""
    from fastcnn import models

    if spec in models.MODELS:
        return models.MODELS[spec](
            input_dim=source.image_shape, output_size=len(source.classes),
            backend=backend, seed=seed, dtype=dtype,
        )  # fmt: skip
    with _reading(spec):  # a file (_model_spec checked that when parsing)
        config = models.read_config(spec)
        return models.Sequential.from_config(
            config, backend=backend, seed=seed, dtype=dtype if dtype_given else None
        )


def _file_name(name: str) -> str:
    """A model's name as a directory name: letters, digits, '.', '_' and '-' kept."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
    return safe.strip(".") or "model"


def _evaluation_text(trainer: Any) -> str:
    """What is evaluated when: the per-epoch sets, the test set at the end, what chooses."""
    from fastcnn.train._final import eval_labels

    labels = eval_labels(trainer)
    each = " and ".join(labels.values())
    text = f"{each} after every epoch, " if each else "no per-epoch evaluation (val 0), "
    text += f"the test set ({len(trainer.t_test):,}) at the end"
    if trainer.val:
        text += f"; {len(trainer.t_train):,} images trained on"
    chooses = [
        f"early stopping after {trainer.early_stopping} epochs without improvement"
        if trainer.early_stopping is not None
        else "",
        "best.npz kept" if trainer.save_best else "",
    ]
    chosen = ", ".join(c for c in chooses if c)
    return text + (f"; by validation loss: {chosen}" if chosen else "")


def _threads_text(comm: Any) -> str:
    import fastcnn

    n = fastcnn.get_num_threads()
    text = f"{n} thread{'s' if n != 1 else ''}"
    return text if comm is None else f"{text} per rank (stop: kill -USR1 the mpirun)"


def _print_run_header(trainer: Any, out: Path) -> None:
    import fastcnn

    cfg = trainer.config()
    sched = cfg["schedule"]
    sched_text = sched["name"] + (
        f" after {sched['warmup']:g} warm-up epochs" if sched.get("warmup") else ""
    )
    aug = cfg["augment"]
    lines = [
        f"data:      {trainer.source_info.get('description', trainer.source_info['kind'])}",
        f"model:     {trainer.net.describe()}, {_threads_text(trainer.comm)}, "
        f"isa {fastcnn.get_isa()}",
        f"training:  {trainer.epochs} epochs x {trainer.batches_per_epoch} batches of "
        f"{trainer.batch_size}, {cfg['optimizer']} lr {trainer.base_lr:g}, schedule {sched_text}, "
        + (
            f"augment shift {aug['max_shift']} px / rotation {aug['max_rotation']:g} deg"
            if aug
            else "no augmentation"
        )
        + f", seed {trainer.seed}",
        f"evaluation: {_evaluation_text(trainer)}",
        f"output:    {out}/ (log.json, checkpoint.npz, model.npz, plots)",
    ]
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------------------------------------
# evaluate / predict
# ---------------------------------------------------------------------------------------------


def _load_model(path: str, backend: str, arch: str | None = None) -> Any:
    """The model in a fastcnn model file, or (with ``arch``, a models.MODELS name) a book
    params pickle loaded into a new model of that architecture."""
    if not Path(path).exists():
        raise CLIError(f"{path}: no such model file")
    with _reading(path):
        return _read_model(path, backend, arch)


def _read_model(path: str, backend: str, arch: str | None) -> Any:
    from fastcnn import models
    from fastcnn.models._classic_params import looks_like_pickle

    if looks_like_pickle(path):
        if arch is None:
            raise CLIError(
                f"{path}: a pickle (the book's params.pkl?); say which network it holds with "
                f"--model {'|'.join(models.MODELS)}"
            )
        model = models.MODELS[arch](backend=backend)
        models.load_classic_params(path, model)
        return model
    model = models.load(path, backend=backend)
    if arch is not None and type(model) is not models.MODELS[arch]:
        raise CLIError(
            f"{path}: the file holds a {model.name}, not the "
            f"{models.MODELS[arch].__name__} of --model {arch}"
        )
    return model


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from fastcnn import train

    _set_threads(args.threads)
    model = _load_model(args.file, args.backend, args.model)
    classes = getattr(model, "classes", None)
    if args.dataset is None and classes is not None:  # the dataset whose classes it names
        from fastcnn.datasets import DATASETS

        named = [n for n, row in DATASETS.items() if row.classes == tuple(classes)]
        args.dataset = named[0] if named else None
    source = _source(args)
    if classes is not None and tuple(classes) != tuple(source.classes):
        raise CLIError(
            f"{args.file}: the model was trained on the classes {', '.join(classes)}, not "
            f"{source.title}'s ({', '.join(source.classes)}); give its --dataset"
        )
    shape, k = tuple(source.image_shape), len(source.classes)
    if (tuple(model.input_dim), model.output_size) != (shape, k):
        raise CLIError(
            f"{args.file}: {model.name} takes {'x'.join(map(str, model.input_dim))} images "
            f"with {model.output_size} outputs, but {source.title} has "
            f"{'x'.join(map(str, shape))} images and {k} classes"
        )
    with _reading(source.directory):
        x_test, t_test = train.load_test_set(source, dtype=model.dtype)
    t0 = time.perf_counter()
    result = train.evaluate(model, x_test, t_test)
    assert result is not None
    seconds = time.perf_counter() - t0
    print(f"model:  {args.file}: {model.name}, backend {model.backend}")
    print(f"data:   {source}")
    print(f"test loss {result.loss:.4f}, {len(t_test) / seconds:.0f} images/s\n")
    report = train.classification_report(
        t_test, result.predictions, model.output_size, source.classes
    )
    print(train.format_report(report))
    return 0


def _check_output(out: Path, source: Path, what: str) -> None:
    """Refuse an output path that cannot be written as a new ``what`` before anything is
    read: a directory, one in a missing directory, or the input file itself."""
    if out.is_dir():
        raise CLIError(f"{out}: is a directory; give the {what}'s name")
    if not out.parent.is_dir():
        raise CLIError(f"{out.parent}: no such directory")
    if out.exists() and source.exists() and out.samefile(source):
        raise CLIError(f"{out}: is the input file; write the {what} elsewhere")


def _cmd_convert(args: argparse.Namespace) -> int:
    from fastcnn import models

    source, out = Path(args.params), Path(args.out)
    if not source.is_file():
        raise CLIError(f"{source}: no such params file")
    _check_output(out, source, "model file")
    # The reference backend: building the model needs no compiled code, and a model file
    # does not record a backend.
    model = models.MODELS[args.model](backend="reference", dtype=args.dtype)
    with _reading(source):
        models.load_classic_params(source, model)  # checks everything before anything is written
    with _reading(out):
        model.save(out)  # atomic: a temporary file renamed over ``out``, removed on failure
    print(
        f"wrote {out}: {type(model).__name__} ({model.num_params():,} params, "
        f"{model.dtype.name}) from {source}"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from fastcnn import models
    from fastcnn.models._onnx import require_onnx

    require_onnx()  # say how to install it before reading anything
    out = Path(args.out)
    _check_output(out, Path(args.file), "ONNX file")
    model = _load_model(args.file, "reference", args.model)  # no compiled code is needed
    with _reading(out):
        models.export_onnx(model, out, opset=args.opset)  # atomic, as model files are
    print(
        f"wrote {out}: {model.name} ({model.num_params():,} params, {model.dtype.name}), "
        f"ONNX opset {args.opset}, input (N, {', '.join(map(str, model.input_dim))}), "
        f"output logits (N, {model.output_size})"
    )
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    """One line per input, in order: a prediction on stdout, or ``NAME: error: ...`` on stderr
    for a file that cannot be read or prepared (the rest still run); status 2 if any failed."""
    from fastcnn import _inputs

    _set_threads(args.threads)
    show = _show_directory(args.show, args.images) if args.show is not None else None
    model = _load_model(args.file, args.backend, args.model)
    classes = getattr(model, "classes", None)
    failed = 0
    for path in map(Path, args.images):
        try:
            with _reading(path):
                inputs = _inputs.read_inputs(path, model.input_dim)
                done = 0
                for x in inputs.chunks():  # a large .npy batch: its float32 form a chunk at a time
                    names = inputs.names[done : done + len(x)]
                    for name, p, seen in zip(names, model.predict_proba(x), x):
                        if show is not None:
                            _inputs.write_input_png(seen, show / f"{Path(name).name}.png")
                        _print_prediction(name, p, args.top, classes)
                    done += len(x)
        except USER_ERRORS as exc:
            if _env.flag("FASTCNN_DEBUG", False):
                raise
            failed += 1
            name = _printable(str(path))
            text = str(exc) or type(exc).__name__
            text = text[len(f"{path}: ") :] if text.startswith(f"{path}: ") else text
            text = _one_line(Exception(text.replace(str(path), name)))
            text = text if text.startswith("error: ") else f"error: {text}"  # zlib.error's name
            sys.stdout.flush()  # the lines before it come first in a merged stream
            print(f"{name}: {text}", file=sys.stderr, flush=True)
    return EXIT_ERROR if failed else 0


def _printable(name: str) -> str:
    """A file name for a one-line report: control characters (a newline in a name) and bytes
    that are not text (surrogate escapes) written as Python escapes them, so every input
    still has exactly one line and printing it cannot fail."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _show_directory(show: str, images: Sequence[str]) -> Path:
    """--show's directory, created if missing (its parent must exist), checked before any
    model or image is read: inputs are written as <file name>.png, so two IMAGEs of the same
    name in different directories would overwrite each other."""
    out = Path(show)
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out}: --show takes a directory, and this is a file")
    if not out.parent.is_dir():
        raise CLIError(f"{out.parent}: no such directory")
    names = [Path(image).name for image in images]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise CLIError(f"--show: two IMAGEs are named {twice[0]}; their PNGs would collide")
    out.mkdir(exist_ok=True)
    return out


def _print_prediction(name: str, p: Any, top: int, classes: Any = None) -> None:
    """``name: class (probability)``, the class by its name when the model has names (a
    digit model's are its digits), then the next ``top - 1``."""
    import numpy as np

    def label(k: int) -> str:
        return str(classes[k]) if classes is not None else str(k)

    best = int(p.argmax())
    extra = ""
    if top > 1:
        order = np.argsort(-p, kind="stable")[1:top]
        extra = "  next: " + ", ".join(f"{label(int(k))} ({p[k]:.3f})" for k in order)
    print(f"{_printable(name)}: {label(best)} ({p[best]:.3f}){extra}")


# ---------------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------------


def _cmd_bench(args: argparse.Namespace) -> int:
    from fastcnn import _bench

    _set_threads(args.threads)
    _bench.main(quick=args.quick, torch=not args.no_torch, memory=not args.no_memory,
                inference=not args.no_inference, tensorflow=not args.no_tensorflow,
                isa=args.isa)  # fmt: skip
    return 0


# ---------------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from fastcnn import __version__
    from fastcnn._backends import BACKENDS
    from fastcnn._validation import FLOAT_DTYPES
    from fastcnn.models import MODELS
    from fastcnn.models._onnx import DEFAULT_OPSET
    from fastcnn.optim import OPTIMIZERS
    from fastcnn.train import DEFAULTS, SCHEDULE_NAMES

    dtypes = tuple(dt.name for dt in FLOAT_DTYPES)

    parser = argparse.ArgumentParser(
        prog="fastcnn", description="Fast CPU building blocks for convolutional neural networks."
    )
    parser.add_argument("--version", action="version", version=f"fastcnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # train -- every default is None so that --resume can tell what was given explicitly.
    p = sub.add_parser(
        "train",
        help="train a model on MNIST or another dataset (--dataset)",
        description="Train SimpleConvNet, DeepConvNet or a network of your own (a JSON "
        "config file) on MNIST, Fashion-MNIST, KMNIST, CIFAR-10 or a folder of your own "
        "pictures (--dataset); a built-in model is built for the dataset's image shape and "
        "classes. The defaults are the "
        "published DeepConvNet recipe: 20 epochs, batch 100, Adam lr 0.001, no schedule, no "
        "augmentation. Writes log.json, checkpoint.npz (every epoch), model.npz and plots to "
        "--out.",
    )
    p.add_argument(
        "--model",
        type=_model_spec,
        metavar="NAME_OR_FILE",
        help=f"{'|'.join(MODELS)}, or a JSON config file of your own network "
        '({"input_shape": [1, 28, 28], "layers": [...]}, see docs/models.md) '
        f"(default: {DEFAULTS['model']})",
    )
    p.add_argument("--epochs", type=_positive(int), help=f"epochs (default: {DEFAULTS['epochs']})")
    p.add_argument(
        "--batch-size",
        type=_positive(int),
        help=f"mini-batch size (default: {DEFAULTS['batch_size']})",
    )
    p.add_argument(
        "--optimizer",
        type=str.lower,
        choices=tuple(OPTIMIZERS),
        help=f"optimizer, in any case (default: {DEFAULTS['optimizer']})",
    )
    p.add_argument(
        "--lr", type=_positive(float), help="base learning rate (default: the optimizer's, "
        "0.001 for adam)"
    )  # fmt: skip
    p.add_argument(
        "--schedule",
        choices=SCHEDULE_NAMES,
        help="learning-rate schedule, stepped every iteration on a fractional-epoch scale: "
        "cosine = one cosine decay to 0 over the run, step = x0.1 every third of the run, "
        "warmup = linear warm-up then constant (default: constant)",
    )
    p.add_argument(
        "--warmup",
        type=_non_negative(float),
        metavar="EPOCHS",
        help="linear warm-up epochs before the schedule (default: 0; 1 for --schedule warmup)",
    )
    p.add_argument(
        "--augment",
        action="store_true",
        default=None,
        help="random shifts and rotations of the training images",
    )
    p.add_argument(
        "--max-shift",
        type=_non_negative(int),
        metavar="PX",
        help=f"default: {DEFAULTS['max_shift']}",
    )
    p.add_argument(
        "--max-rotation",
        type=_non_negative(float),
        metavar="DEG",
        help=f"default: {DEFAULTS['max_rotation']:g}",
    )
    p.add_argument("--threads", type=_positive(int), help="kernel threads (default: all cores)")
    p.add_argument("--backend", choices=BACKENDS, help=f"default: {DEFAULTS['backend']}")
    p.add_argument("--dtype", choices=dtypes, help=f"default: {DEFAULTS['dtype']}")
    _add_data_args(p, default_subset=None)
    p.add_argument(
        "--out",
        metavar="DIR",
        help="output directory (default: runs/NAME-TIME, NAME the model's name)",
    )
    p.add_argument(
        "--seed",
        type=_non_negative(int),
        help=f"seed of everything (default: {DEFAULTS['seed']})",
    )
    p.add_argument(
        "--val",
        type=_non_negative(int),
        metavar="N",
        help="hold out N training images (seeded, class-balanced) as the validation set that "
        "every epoch is evaluated on and early stopping and --save-best choose by (default: "
        "a twelfth, 5,000 of MNIST's 60,000); 0 trains on all of them, as the classic "
        "recipe's published test accuracy does",
    )
    p.add_argument(
        "--test-each-epoch",
        action="store_true",
        default=None,
        help="also evaluate the test set after every epoch (logged as test_*; by default it is "
        "evaluated once, at the end)",
    )
    p.add_argument(
        "--eval-sample",
        type=_positive(int),
        metavar="N",
        help="evaluate each epoch on a fixed random sample of N images of each per-epoch set "
        "(default: all); the final report always uses the whole test set",
    )
    p.add_argument(
        "--weight-decay",
        type=_non_negative(float),
        metavar="LAMBDA",
        help="L2 weight decay: LAMBDA * W added to the gradient of every weight, not biases "
        f"(default: {DEFAULTS['weight_decay']:g})",
    )
    p.add_argument(
        "--clip-norm",
        type=_positive(float),
        metavar="MAX",
        help="scale the gradients down when their global L2 norm exceeds MAX (default: none)",
    )
    p.add_argument(
        "--early-stopping",
        type=_positive(int),
        metavar="EPOCHS",
        help="stop when the validation loss has not improved for EPOCHS epochs (default: none)",
    )
    p.add_argument(
        "--save-best",
        action="store_true",
        default=None,
        help="keep the lowest-validation-loss epoch's model as best.npz (model.npz is the last)",
    )
    p.add_argument(
        "--limit-batches",
        type=_positive(int),
        metavar="N",
        help="run only the first N batches of each epoch (smoke tests)",
    )
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in CHECKPOINT")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    # evaluate
    p = sub.add_parser(
        "evaluate",
        help="accuracy and per-class report of a model on the test set",
        description="Evaluate a fastcnn model file, or a pickle of the book's params "
        "(save_params' params.pkl, read without running any code from it) given --model.",
    )
    _add_model_args(p, tuple(MODELS))
    p.add_argument("--backend", choices=BACKENDS, default="fast")
    p.add_argument("--threads", type=_positive(int))
    _add_data_args(p)
    p.set_defaults(func=_cmd_evaluate)

    # predict
    p = sub.add_parser(
        "predict",
        help="classify images (PNG, JPEG, .npy)",
        description="Print 'file: class (probability)' per input, in order; a file that cannot "
        "be read or prepared prints 'file: error: why' on stderr instead, the rest still run, "
        "and the exit status is then 2. For a 1x28x28 model a picture of any size is prepared "
        "as MNIST was made, after finding the digit: uneven lighting corrected, a light "
        "background inverted, Otsu's threshold, specks dropped; then the digit's box scaled "
        "into 20x20 and centred by mass in 28x28. A 28x28 .npy, or an (N, 28, 28) .npy batch, "
        "is used as MNIST pixels. For other input shapes (C, H, W) a picture is resized to "
        "H x W (RGB for C=3), and a .npy must be (C, H, W) or (N, C, H, W).",
    )
    _add_model_args(p, tuple(MODELS))
    p.add_argument("images", metavar="IMAGE", nargs="+", help="PNG/JPEG files or .npy arrays")
    p.add_argument("--top", type=_positive(int), default=1, help="also show the next k-1 classes")
    p.add_argument(
        "--show",
        metavar="DIR",
        help="write each input as the model saw it to DIR/<name>.png (8x, nearest neighbour; "
        "<name>: the file's name, e.g. digit.jpg.png, digits.npy[3].png); DIR is created",
    )
    p.add_argument("--backend", choices=BACKENDS, default="fast")
    p.add_argument("--threads", type=_positive(int))
    p.set_defaults(func=_cmd_predict)

    # convert
    p = sub.add_parser(
        "convert",
        help="write the book's params.pkl as a fastcnn model file",
        description="Read a pickle of the book's params (save_params' params.pkl: a dict of "
        "'W1', 'b1', ... arrays) without running any code from it, check every name and "
        "shape against --model, and write a fastcnn model file (npz, no pickle) that "
        "evaluate, predict and models.load open. The output is written atomically: on any "
        "error no file is left and an existing one is kept.",
    )
    p.add_argument("params", metavar="PARAMS", help="the book's params.pkl")
    p.add_argument("out", metavar="OUT", help="the model file to write (e.g. model.npz)")
    p.add_argument("--model", choices=tuple(MODELS), required=True, help="the network it holds")
    p.add_argument(
        "--dtype",
        choices=dtypes,
        default="float32",
        help="of the model file (default: %(default)s)",
    )
    p.set_defaults(func=_cmd_convert)

    # export
    p = sub.add_parser(
        "export",
        help="write a model file as an ONNX graph (needs fastcnn[onnx])",
        description="Write the network in a fastcnn model file (or the book's params.pkl, "
        "with --model) as a standard ONNX graph in inference form: dropout as its inference "
        "scaling, batch norm with its running statistics, the logits as output, a dynamic "
        "batch size. Written atomically. See docs/onnx.md.",
    )
    p.add_argument("file", metavar="MODEL", help="a fastcnn model file or checkpoint")
    p.add_argument("out", metavar="OUT", help="the ONNX file to write (e.g. model.onnx)")
    p.add_argument(
        "--model", choices=tuple(MODELS), help="for a book params.pkl: the network it holds"
    )
    p.add_argument(
        "--opset", type=_positive(int), default=DEFAULT_OPSET, help="(default: %(default)s)"
    )
    p.set_defaults(func=_cmd_export)

    # info
    p = sub.add_parser(
        "info",
        help="show version, threads, CPU features and the kernel ISA, or a saved model's layers",
        description="Without MODEL: the version, threads, CPU features and kernel ISA. With a "
        "model file: its summary (each layer, its output shape and parameter count).",
    )
    p.add_argument("file", metavar="MODEL", nargs="?", help="a model file or checkpoint")
    p.set_defaults(func=_cmd_info)

    # bench
    p = sub.add_parser(
        "bench",
        help="time fastcnn against the numpy reference, PyTorch and TensorFlow (when installed)",
        description="DeepConvNet's layers at batch 100 (forward, backward, and each "
        "convolution pass's %% of the FMA peak measured on this CPU) and its whole training "
        "step: fastcnn vs the numpy reference vs PyTorch eager (NCHW and channels_last) and "
        "TensorFlow (a tf.function step), each when importable, with fastcnn's thread count; "
        "best-of-N wall times and ratios, each backend's peak memory for training steps in a "
        "fresh process, and inference (predict on batch 100 and on one image) against PyTorch "
        "and ONNX Runtime when they are installed.",
    )
    p.add_argument("--quick", action="store_true", help="fewer repeats; the reference once")
    p.add_argument("--threads", type=_positive(int))
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    p.add_argument("--no-tensorflow", action="store_true", help="leave TensorFlow out")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    p.add_argument("--no-inference", action="store_true", help="skip the inference table")
    p.add_argument(
        "--isa",
        metavar="ISA",
        help="also time the training step in a process where fastcnn (FASTCNN_ISA), PyTorch "
        "(ATEN_CPU_CAPABILITY) and oneDNN (ONEDNN_MAX_CPU_ISA) are all limited to ISA "
        "(generic, avx2, avx512), printed beside the default ISA's",
    )
    p.set_defaults(func=_cmd_bench)
    return parser


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _env.check_environment()  # FASTCNN_DEBUG decides how errors are shown, below
    except ValueError as exc:
        print(f"fastcnn: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints them and exits with 2
    args.argv = argv
    # The command is an application: it may set the process's malloc policy (fastcnn._malloc),
    # which a library call never does by itself.
    from fastcnn import _malloc

    _malloc.keep_freed_memory()
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that left shows here, as BrokenPipeError, not at exit
        return code
    except KeyboardInterrupt:
        print("\nfastcnn: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`fastcnn evaluate ... | head`): what it wanted was printed.
        # Point stdout at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
    except USER_ERRORS as exc:
        if _env.flag("FASTCNN_DEBUG", False):
            raise
        print(f"fastcnn {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
