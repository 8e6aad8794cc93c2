"""Train the tutorial networks of docs/models.md on MNIST and print their table row by row.

    python benchmarks/tutorial_nets.py --data-dir ../shared/data/mnist --epochs 5

Each network is trained with the classic recipe (Adam, lr 0.001, batch 100, seed 0, no
augmentation; --batch-size 1 --optimizer sgd trains per sample, as the per-sample tutorial
does) for the same number of epochs; a row gives its parameter count, the mean
training time per epoch (evaluation excluded) and the test accuracy on the whole test set
after the last epoch. The configs are the files in docs/examples/ (and the two classic
networks), so what the docs show is what is measured.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import fastcnn
from fastcnn import datasets, models, train

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
NETWORKS = {  # the order of docs/models.md's table
    "per-sample tutorial": lambda: models.Sequential.from_config(
        models.read_config(EXAMPLES / "per_sample_tutorial.json")
    ),
    "mini-batch tutorial": lambda: models.Sequential.from_config(
        models.read_config(EXAMPLES / "minibatch_tutorial.json")
    ),
    "SimpleConvNet": models.SimpleConvNet,
    "DeepConvNet": models.DeepConvNet,
    "small ResNet": lambda: models.Sequential.from_config(
        models.read_config(EXAMPLES / "small_resnet.json")
    ),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="the full MNIST (default: found as fastcnn train does)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=100, help="1: per-sample training")
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--only", nargs="*", choices=tuple(NETWORKS), help="a subset of the rows")
    args = p.parse_args(argv)
    if args.threads is not None:
        fastcnn.set_num_threads(args.threads)
    source = datasets.mnist_source(args.data_dir)
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if "model name" in ln),
        platform.processor(),
    )
    print(
        f"{source}; {args.epochs} epochs of batch {args.batch_size}, {args.optimizer} lr "
        f"{args.lr}; {fastcnn.get_num_threads()} threads; {cpu}"
    )
    print("| network | params | s / epoch | test accuracy |")
    print("|---|---:|---:|---:|")
    for label in args.only or NETWORKS:
        model = NETWORKS[label]()
        t0 = time.perf_counter()
        result = train.Trainer(
            model, source, epochs=args.epochs, batch_size=args.batch_size,
            optimizer=args.optimizer, lr=args.lr, progress=False, verbose=False,
            val=0,  # as the tutorials measure: all training images, then the test accuracy
        ).fit()  # fmt: skip
        per_epoch = sum(r["train_seconds"] for r in result.history) / len(result.history)
        print(
            f"| {label} | {model.num_params():,} | {per_epoch:.1f} | "
            f"{100 * result.test_accuracy:.2f} % |   ({time.perf_counter() - t0:.0f} s in all)",
            flush=True,
        )


if __name__ == "__main__":
    main()
