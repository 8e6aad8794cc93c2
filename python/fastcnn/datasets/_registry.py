"""The named datasets: one table row per dataset (what it is, its classes and image shape, its
files, their published checksums and the mirrors serving them).

Only facts live here; finding, downloading and reading are _fetch.py's and the formats'
(_mnist.py and _idx.py for IDX sets, _cifar.py for CIFAR-10's binary batches). A folder of
the user's own images ("folder", _folder.py) has no row: it has no files to fetch.
Tests point a row at generated files with ``dataclasses.replace`` (their own checksums and a
local mirror), never by weakening a check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DATASETS", "FOLDER", "MIRRORS", "MNIST_FILES", "MNIST_MD5", "MNIST_SHA256", "Dataset",
    "dataset_names",
]  # fmt: skip

# The name --dataset gives a folder of images, one sub-folder per class (not a table row).
FOLDER = "folder"


@dataclass(frozen=True)
class Dataset:
    """One named dataset.

    ``format``: "idx" (four IDX files, each raw or .gz, roles train_images, train_labels,
    test_images, test_labels) or "cifar10" (binary batches of 1 label byte + C*H*W pixel bytes
    per record). ``files``: role -> file name (IDX: without ".gz"). ``md5``: what a download is
    checked against (IDX: keyed by file name without ".gz", the hash of the .gz; CIFAR-10:
    keyed by ``archive``). ``n_train`` / ``n_test``: the published split sizes, also the most
    a file may declare. ``source``: where it comes from and its licence, for the docs and
    errors.
    """

    name: str
    title: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (C, H, W)
    format: str
    files: Mapping[str, str]
    md5: Mapping[str, str]
    mirrors: tuple[str, ...] | list[str]
    n_train: int
    n_test: int
    source: str
    archive: str = ""  # the one download holding every file (CIFAR-10); "" = each file alone

    @property
    def n_classes(self) -> int:
        return len(self.classes)


# MNIST's facts have names of their own (fastcnn.datasets re-exports them; tests edit them).
# Tried in order; each file comes from the first mirror serving the right MD5.
MIRRORS: list[str] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]

# Role -> file name without ".gz". A directory may hold each file raw or gzip-compressed.
# Fashion-MNIST and KMNIST publish their files under the same names.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

# MD5 of the .gz files as the public mirrors serve them (verifies a download).
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}

# SHA-256 of the uncompressed files: valid for any copy, however it was compressed.
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            name="mnist",
            title="MNIST",
            classes=tuple(str(k) for k in range(10)),
            image_shape=(1, 28, 28),
            format="idx",
            files=MNIST_FILES,
            md5=MNIST_MD5,
            # The same list object as fastcnn.datasets.MIRRORS (download_mnist reads that name).
            mirrors=MIRRORS,
            n_train=60_000,
            n_test=10_000,
            source="Yann LeCun, Corinna Cortes and Christopher Burges; CC BY-SA 3.0",
        ),
        Dataset(
            name="fashion-mnist",
            title="Fashion-MNIST",
            # The class order of the labels 0..9, as zalandoresearch/fashion-mnist's README
            # lists them (and torchvision's datasets/mnist.py FashionMNIST.classes).
            classes=(
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),  # fmt: skip
            image_shape=(1, 28, 28),
            format="idx",
            files=MNIST_FILES,
            # MD5 of the .gz files: the table in zalandoresearch/fashion-mnist's README, the same
            # as torchvision's datasets/mnist.py FashionMNIST.resources.
            md5={
                "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
            },
            mirrors=(
                "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            ),
            n_train=60_000,
            n_test=10_000,
            source="Zalando Research (Han Xiao, Kashif Rasul, Roland Vollgraf, 2017); MIT licence",
        ),
        Dataset(
            name="kmnist",
            title="KMNIST",
            # Kuzushiji-MNIST's romanised class names in label order (rois-codh/kmnist's
            # kmnist_classmap.csv: o, ki, su, tsu, na, ha, ma, ya, re, wo; torchvision's KMNIST).
            classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
            image_shape=(1, 28, 28),
            format="idx",
            files=MNIST_FILES,
            # MD5 of the .gz files as torchvision's datasets/mnist.py KMNIST.resources gives them.
            md5={
                "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
                "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
                "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
                "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
            },
            mirrors=(
                "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
                "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
            ),
            n_train=60_000,
            n_test=10_000,
            source="ROIS-DS Center for Open Data in the Humanities (Clanuwat et al., 2018), "
            "Kuzushiji-MNIST; CC BY-SA 4.0",
        ),
        Dataset(
            name="cifar10",
            title="CIFAR-10",
            classes=(
                "airplane",
                "automobile",
                "bird",
                "cat",
                "deer",
                "dog",
                "frog",
                "horse",
                "ship",
                "truck",
            ),  # fmt: skip  (batches.meta.txt of the binary version)
            image_shape=(3, 32, 32),
            format="cifar10",
            files={
                **{f"train_{i}": f"data_batch_{i}.bin" for i in range(1, 6)},
                "test": "test_batch.bin",
            },
            # The MD5 published beside the download on https://www.cs.toronto.edu/~kriz/cifar.html
            # ("CIFAR-10 binary version (suitable for C programs)", 162 MB).
            md5={"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
            mirrors=("https://www.cs.toronto.edu/~kriz/",),
            n_train=50_000,
            n_test=10_000,
            source="Alex Krizhevsky, Vinod Nair and Geoffrey Hinton (Learning Multiple Layers of "
            "Features from Tiny Images, 2009); no licence stated, cite the report",
            archive="cifar-10-binary.tar.gz",
        ),
    )
}


def dataset_names() -> tuple[str, ...]:
    """Every name ``dataset_source`` takes: the table's, then "folder"."""
    return (*DATASETS, FOLDER)
