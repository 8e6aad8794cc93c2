"""Finding a named dataset's files and downloading them: the per-user cache, the search order
(an explicit directory, an environment variable, the cache, a download) and the mirror loop.

pooch does each transfer, the MD5 check and the atomic write (a temporary file renamed only
once its checksum matches); this module tries the mirrors in turn and says what each did.
What a dataset's files are (and how to unpack an archive) is its format's; no reading here.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Union

__all__ = ["DOWNLOAD_TIMEOUT", "DatasetNotFoundError", "cache_dir", "find", "retrieve"]

PathLike = Union[str, "os.PathLike[str]"]

DOWNLOAD_TIMEOUT = 30  # seconds per connection attempt / read; a dead mirror must not hang us


class DatasetNotFoundError(FileNotFoundError):
    """A dataset was not found where it was looked for and could not be downloaded."""


def cache_dir() -> Path:
    """The per-user cache root: ``$FASTCNN_CACHE_DIR`` or pooch's OS cache for "fastcnn".

    Each dataset lives in the subdirectory of its name (``mnist``, ``fashion-mnist``, ...).
    Nothing is created here.
    """
    env = os.environ.get("FASTCNN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("fastcnn"))


def missing_text(directory: Path, missing: Sequence[str], label: Callable[[str], str] = str) -> str:
    if not directory.is_dir():
        return f"{directory} is not a directory"
    return f"{directory} lacks " + ", ".join(label(m) for m in missing)


def short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def retrieve(
    files: Mapping[str, str],
    mirrors: Sequence[str],
    target: Path,
    where: str,
    progressbar: bool | None = None,
) -> Path:
    """Download each of ``files`` (name -> MD5) into ``target`` from the first of ``mirrors``
    (base URLs) serving it with that MD5; a failed or corrupted transfer leaves nothing under
    the real name and the next mirror is tried. Raises DatasetNotFoundError listing every
    mirror's failure for a file no mirror served. The progress bar (tqdm) defaults to on
    when stderr is a terminal."""
    import pooch

    if progressbar is None:
        progressbar = sys.stderr.isatty()
    if not mirrors:
        raise DatasetNotFoundError(f"{where}: no mirrors configured")
    try:  # a cache path that is (or runs through) a file, or a read-only one
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetNotFoundError(
            f"{where}: cannot create the download directory {target}: {short(exc)} "
            "(set FASTCNN_CACHE_DIR or pass data_dir)"
        ) from exc
    for name, md5 in files.items():
        failures: list[str] = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                pooch.retrieve(
                    url,
                    known_hash=f"md5:{md5}",
                    fname=name,
                    path=target,
                    downloader=pooch.HTTPDownloader(
                        progressbar=progressbar, timeout=DOWNLOAD_TIMEOUT
                    ),
                )
                break
            except Exception as exc:  # network, HTTP status and checksum failures alike
                failures.append(f"{url}: {short(exc)}")
        else:
            raise DatasetNotFoundError(
                f"{where}: could not download {name} into {target}; every mirror failed:\n  "
                + "\n  ".join(failures)
            )
    return target


def find(
    title: str,
    where: str,
    data_dir: PathLike | None,
    download: bool,
    missing: Callable[[Path], list[str]],
    fetch: Callable[[Path, list[str]], Path],
    cache: Path,
    env: str | None = None,
    label: Callable[[str], str] = str,
) -> Path:
    """The directory holding a dataset's files, in the search order every dataset shares.

    ``data_dir`` when given (if ``missing(data_dir)`` lists anything that is an error: an
    explicit choice is never silently replaced), else ``$env`` when the dataset has such a
    variable (a warning if it is set but incomplete), then ``cache``, then
    ``fetch(cache, missing)`` when ``download``; ``label`` shows a missing name in messages.
    Raises DatasetNotFoundError listing every
    place looked at and, for a failed download, what each mirror did.
    """
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        lacking = missing(d)
        if lacking:
            raise DatasetNotFoundError(
                f"{where}: data_dir is incomplete: {missing_text(d, lacking, label)}"
            )
        return d

    looked: list[str] = []
    value = os.environ.get(env) if env else None
    if env and value:
        d = Path(value).expanduser()
        lacking = missing(d)
        if not lacking:
            return d
        text = f"{env}: {missing_text(d, lacking, label)}"
        warnings.warn(f"{where}: ignoring {text}", UserWarning, stacklevel=4)
        looked.append(text)
    elif env:
        looked.append(f"{env}: not set")

    lacking = missing(cache)
    if not lacking:
        return cache
    looked.append(f"cache: {missing_text(cache, lacking, label)}")
    if not download:
        raise DatasetNotFoundError(
            f"{where}: {title} not found and download=False; looked in:\n  " + "\n  ".join(looked)
        )
    try:
        return fetch(cache, lacking)
    except DatasetNotFoundError as exc:
        raise DatasetNotFoundError(
            f"{where}: {title} not found; looked in:\n  " + "\n  ".join(looked) + f"\n{exc}"
        ) from exc
