"""Named datasets, downloaded once, checked by their sha256, then read from a local cache.

    >>> text = load_text("tinyshakespeare")
    >>> len(text)
    1115394
    >>> text[:14]
    'First Citizen:'

Where the files come from, in order:
1. the folder named by $COURSE_LIB_DATA, if set (for machines without internet: put the
   files there by hand; they are still checked against their sha256);
2. the download cache (by default the operating system's cache folder; $COURSE_LIB_CACHE
   moves it), filled by `pooch` from the dataset's URL on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pooch

OFFLINE_ENV = "COURSE_LIB_DATA"
CACHE_ENV = "COURSE_LIB_CACHE"


@dataclass(frozen=True)
class Dataset:
    """A file the course needs: where to download it and the sha256 it must have."""

    name: str
    filename: str
    url: str
    sha256: str
    description: str


DATASETS: dict[str, Dataset] = {
    dataset.name: dataset
    for dataset in [
        Dataset(
            name="tinyshakespeare",
            filename="tinyshakespeare.txt",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            description="Tiny Shakespeare: 1,115,394 characters of public-domain Shakespeare plays",
        ),
    ]
}


class DatasetUnavailableError(RuntimeError):
    """The file is neither in the offline folder, nor cached, nor downloadable right now."""


def cache_dir() -> Path:
    """The folder that downloads are kept in: $COURSE_LIB_CACHE, else the OS cache folder."""
    return Path(os.environ.get(CACHE_ENV) or pooch.os_cache("course_lib"))


def fetch(name: str) -> Path:
    """Return the local path of dataset `name`, downloading and verifying it if needed."""
    dataset = _lookup(name)
    offline = os.environ.get(OFFLINE_ENV)
    if offline and (Path(offline) / dataset.filename).is_file():
        return _verified(Path(offline) / dataset.filename, dataset)
    try:
        path = pooch.retrieve(
            dataset.url,
            known_hash=f"sha256:{dataset.sha256}",
            fname=dataset.filename,
            path=cache_dir(),
        )
    except OSError as err:  # no network, DNS failure, HTTP error (requests' errors are OSErrors)
        raise DatasetUnavailableError(
            f"could not get {dataset.filename!r} ({dataset.description}).\n"
            f"  It is downloaded from {dataset.url}\n"
            f"  and that failed: {err}.\n"
            f"  Offline? Download the file on a machine with internet, put it in a folder and set"
            f" {OFFLINE_ENV}=/path/to/that/folder (expected sha256 {dataset.sha256})."
        ) from err
    return Path(path)


def load_text(name: str) -> str:
    """Return dataset `name` as one string (UTF-8)."""
    return fetch(name).read_text(encoding="utf-8")


def _lookup(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {sorted(DATASETS)}") from None


def _verified(path: Path, dataset: Dataset) -> Path:
    digest = pooch.file_hash(str(path), alg="sha256")
    if digest != dataset.sha256:
        raise ValueError(
            f"{path} does not have the expected content: its sha256 is {digest}, expected"
            f" {dataset.sha256}. Replace it with a fresh copy of {dataset.url}."
        )
    return path
