"""The installed fastcnn is whole and is the one under test: its compiled core, type stubs and
embedded MNIST subset sit beside its Python files, and the tests import that installation, not
a checkout's python/ directory. How wheels are built and repaired is .ci/run's business."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

import fastcnn

DATA = [
    "fastcnn/datasets/data/README.md",
    "fastcnn/datasets/data/train-images-idx3-ubyte.gz",
    "fastcnn/datasets/data/train-labels-idx1-ubyte.gz",
    "fastcnn/datasets/data/t10k-images-idx3-ubyte.gz",
    "fastcnn/datasets/data/t10k-labels-idx1-ubyte.gz",
]


def _installed_files() -> dict[str, Path]:
    """The installed distribution's files (RECORD), by their path inside site-packages. Skips
    the test when fastcnn is an editable install (its RECORD lists an import hook, not the
    package) or not installed at all (the tests then import the source tree by design)."""
    try:
        dist = metadata.distribution("fastcnn")
    except metadata.PackageNotFoundError:
        pytest.skip("fastcnn is not installed (imported from a source tree)")
    files = {f.as_posix(): Path(str(dist.locate_file(f))) for f in dist.files or []}
    if "fastcnn/__init__.py" not in files:
        pytest.skip("fastcnn is an editable install")
    return files


def test_tests_import_the_installed_package():
    files = _installed_files()
    assert Path(fastcnn.__file__).resolve() == files["fastcnn/__init__.py"].resolve()


def test_installed_package_has_core_stubs_and_embedded_data():
    files = _installed_files()
    for name in ["fastcnn/_core.pyi", "fastcnn/py.typed", *DATA]:
        assert name in files, f"{name} is not in the installed distribution"
        assert files[name].is_file(), f"{files[name]} is missing"
    cores = [name for name in files if name.startswith("fastcnn/_core.") and name.endswith(".so")]
    assert len(cores) == 1, f"expected one compiled core, found {cores}"
    from fastcnn import _core

    assert Path(_core.__file__).resolve() == files[cores[0]].resolve()


def test_core_and_metadata_versions_match_the_package():
    from fastcnn import _core

    assert _core.__version__ == fastcnn.__version__
    assert metadata.version("fastcnn") == fastcnn.__version__
