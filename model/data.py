"""MNIST as in-memory tensors: read once through torchvision, then batch by index.

Per-sample PIL decoding and ToTensor cost more than the LSTM itself on a small CPU, so
the whole set is held as one normalised float tensor and mini-batches are index_select
calls. Splits are stratified and seeded so every trial sees the same validation set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from model.errors import DataError

__all__ = [
    "DATA_ENV",
    "DEFAULT_DATA_ROOT",
    "MNIST_MEAN",
    "MNIST_STD",
    "MNIST_TEST_IMAGES",
    "MNIST_TRAIN_IMAGES",
    "MnistSplits",
    "iterate_minibatches",
    "load_mnist",
    "load_splits",
    "load_test",
    "normalize",
    "resolve_data_root",
    "stratified_indices",
]

DATA_ENV = "LSTM_SEARCH_DATA"
DEFAULT_DATA_ROOT = "./data"
# Sizes of the real data set, for checks and memory plans made before it is loaded.
MNIST_TRAIN_IMAGES = 60_000
MNIST_TEST_IMAGES = 10_000
# Canonical statistics of the 60,000 training images (pixels scaled to [0, 1]).
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


class MnistSplits(NamedTuple):
    """Normalised images (N, 28, 28) float32 and labels (N,) int64."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """--data-root, else $LSTM_SEARCH_DATA, else ./data."""
    return Path(root or os.environ.get(DATA_ENV) or DEFAULT_DATA_ROOT).expanduser()


def load_mnist(
    root: str | os.PathLike[str] | None, train: bool, download: bool = True
) -> tuple[Tensor, Tensor]:
    """Raw uint8 images (N, 28, 28) and int64 labels, downloading only if files are absent."""
    from torchvision.datasets import (
        MNIST,  # torchvision is slow to import; only when needed
    )
    from torchvision.datasets.mnist import read_image_file, read_label_file

    root_path = resolve_data_root(root)
    split = "training" if train else "test"
    prefix = "train" if train else "t10k"
    raw = root_path / "MNIST" / "raw"
    files = [raw / f"{prefix}-{kind}-ubyte" for kind in ("images-idx3", "labels-idx1")]
    _check_readable(raw, files, split)
    missing = ", ".join(f.name for f in files if not f.is_file())
    if missing:
        if not download:
            raise DataError(f"MNIST {split} files not found under {raw} (missing {missing}); {_hint()}")
        try:
            MNIST(str(root_path), train=train, download=True)
        except Exception as exc:  # network errors come in many types (URLError, OSError, ...)
            raise DataError(
                f"MNIST {split} files are not under {raw} (missing {missing}) and downloading "
                f"them failed ({type(exc).__name__}); {_hint()}"
            ) from exc
    # The idx files of this split only: torchvision's MNIST(download=False) wants all four
    # files, so a folder with the training files alone was reported as corrupt training files.
    try:
        x, y = read_image_file(str(files[0])), read_label_file(str(files[1]))
    except OSError as exc:  # permissions, a file that is a folder, an I/O error: not corruption
        raise DataError(f"cannot read the MNIST {split} file {exc.filename or raw}: "
                        f"{exc.strerror or exc}; fix its permissions or pass another --data-root") from None
    except Exception as exc:  # a truncated or corrupt idx file fails inside torchvision's parser
        raise DataError(
            f"MNIST {split} files under {raw} are corrupt or truncated "
            f"({type(exc).__name__}); delete them to re-download, or {_hint()}"
        ) from exc
    if x.dim() != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise DataError(
            f"MNIST {split} files under {root_path} hold {tuple(x.shape)} images and "
            f"{tuple(y.shape)} labels, expected (N, 28, 28) and (N,); the files are corrupt"
        )
    if int(y.min()) < 0 or int(y.max()) > 9:
        raise DataError(f"MNIST {split} labels under {root_path} fall outside 0-9; the files are corrupt")
    return x, y.long()


def _check_readable(raw: Path, files: list[Path], split: str) -> None:
    """A folder or file we may not read is a permission problem, never "missing" (which
    would start a download) nor "corrupt" (which would tell the user to delete intact data)."""
    for folder in (raw.parent.parent, raw.parent, raw):
        if folder.is_dir() and not os.access(folder, os.R_OK | os.X_OK):
            raise DataError(f"cannot read the MNIST folder {folder}: permission denied; "
                            "fix its permissions or pass another --data-root")
    for f in files:
        if f.exists() and not os.access(f, os.R_OK):
            raise DataError(f"cannot read the MNIST {split} file {f}: permission denied; "
                            "fix its permissions (the file is not known to be damaged) or pass another --data-root")


def normalize(images: Tensor) -> Tensor:
    """uint8 (N, 28, 28) -> float32 standardised with the training-set mean and std."""
    return (images.float().div_(255.0) - MNIST_MEAN).div_(MNIST_STD)


def stratified_indices(labels: Tensor, size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Split indices into (rest, chosen) with ``size`` chosen, class proportions kept.

    Each class contributes floor(size * share); the remaining slots go to the classes with
    the largest fractional parts, so the total is exactly ``size``.
    """
    n = labels.numel()
    if not 0 <= size <= n:
        raise DataError(f"cannot take {size} of {n} images; choose a size between 0 and {n}")
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * size / n
    take = exact.floor().long()
    short = size - int(take.sum())
    if short:
        take[torch.argsort(exact - take, descending=True)[:short]] += 1
    chosen, rest = [], []
    shuffled = labels[perm]
    for cls, k in zip(classes.tolist(), take.tolist()):
        idx = perm[shuffled == cls]
        chosen.append(idx[:k])
        rest.append(idx[k:])
    return torch.cat(rest), torch.cat(chosen)


def load_splits(
    root: str | os.PathLike[str] | None = None,
    val_size: int = 5_000,
    subset: int | None = None,
    seed: int = 0,
    download: bool = True,
) -> MnistSplits:
    """The 60k training images split into train / validation, stratified and seeded.

    ``subset`` keeps only that many (stratified) training images after the split; the
    validation set is unaffected so subset runs are scored on the same images.
    """
    images, labels = load_mnist(root, train=True, download=download)
    if not 0 <= val_size < labels.numel():
        raise DataError(f"--val-size must be between 0 and {labels.numel() - 1} (got {val_size})")
    train_idx, val_idx = stratified_indices(labels, val_size, seed)
    if subset is not None:
        if not 0 < subset <= train_idx.numel():
            raise DataError(
                f"--subset must be between 1 and {train_idx.numel()} (got {subset})"
            )
        _, keep = stratified_indices(labels[train_idx], subset, seed + 1)
        train_idx = train_idx[keep]
    x = normalize(images)
    return MnistSplits(x[train_idx], labels[train_idx], x[val_idx], labels[val_idx])


def load_test(root: str | os.PathLike[str] | None = None, download: bool = True) -> tuple[Tensor, Tensor]:
    """The 10k test images, normalised. Only the final V1/V2 evaluation should call this."""
    images, labels = load_mnist(root, train=False, download=download)
    return normalize(images), labels


def iterate_minibatches(
    x: Tensor, y: Tensor, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches by index; shuffled when a generator is given. The last batch may be short."""
    n = y.shape[0]
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    order = order.to(x.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield x.index_select(0, idx), y.index_select(0, idx)


def _hint() -> str:
    return (
        f"pass --data-root DIR (or set {DATA_ENV}) to a folder holding MNIST/raw/*-ubyte, "
        "or run once with internet access to download it"
    )
