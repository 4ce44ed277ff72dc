from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.data import iterate_minibatches, load_splits, load_test, normalize, stratified_indices
from model.errors import DataError


def test_stratified_indices_exact_size_proportions_and_seed() -> None:
    labels = torch.tensor([0] * 600 + [1] * 300 + [2] * 100)
    rest, chosen = stratified_indices(labels, 100, seed=3)
    assert len(chosen) == 100 and len(rest) == 900
    assert set(chosen.tolist()).isdisjoint(rest.tolist())
    assert torch.bincount(labels[chosen]).tolist() == [60, 30, 10]
    again = stratified_indices(labels, 100, seed=3)[1]
    assert torch.equal(chosen.sort().values, again.sort().values)
    other = stratified_indices(labels, 100, seed=4)[1]
    assert not torch.equal(chosen.sort().values, other.sort().values)


def test_stratified_indices_distributes_remainder() -> None:
    labels = torch.tensor([0] * 5 + [1] * 5 + [2] * 5)
    _, chosen = stratified_indices(labels, 4, seed=0)
    assert len(chosen) == 4 and sorted(torch.bincount(labels[chosen], minlength=3).tolist()) == [1, 1, 2]


def test_load_splits_from_idx_files(fake_mnist: Path) -> None:
    s = load_splits(fake_mnist, val_size=100, subset=200, seed=0, download=False)
    assert s.train_x.shape == (200, 28, 28) and s.val_x.shape == (100, 28, 28)
    assert s.train_x.dtype == torch.float32 and s.train_y.dtype == torch.int64
    assert torch.bincount(s.val_y).tolist() == [10] * 10
    test_x, test_y = load_test(fake_mnist, download=False)
    assert test_x.shape == (200, 28, 28) and test_y.shape == (200,)


def test_normalize_uses_mnist_statistics() -> None:
    x = normalize(torch.tensor([[[0, 255]]], dtype=torch.uint8))
    torch.testing.assert_close(x, torch.tensor([[[-0.1307 / 0.3081, (1 - 0.1307) / 0.3081]]]))


def test_missing_data_offline_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--data-root"):
        load_splits(tmp_path / "nothing", download=False)


def test_truncated_file_is_reported_as_corrupt(fake_mnist: Path, tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (fake_mnist / "MNIST" / "raw").iterdir():
        data = f.read_bytes()
        (raw / f.name).write_bytes(data[: len(data) // 2] if "train-images" in f.name else data)
    with pytest.raises(DataError, match="corrupt"):
        load_splits(tmp_path, download=False)


def test_bad_sizes_are_refused(fake_mnist: Path) -> None:
    with pytest.raises(DataError, match="--subset"):
        load_splits(fake_mnist, val_size=100, subset=10_000, download=False)
    with pytest.raises(DataError, match="--val-size"):
        load_splits(fake_mnist, val_size=600, download=False)


def test_minibatches_cover_every_sample_once() -> None:
    x, y = torch.arange(10.0).view(10, 1), torch.arange(10)
    gen = torch.Generator().manual_seed(0)
    batches = list(iterate_minibatches(x, y, 4, gen))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))


FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _copy_without(fake_mnist: Path, dest: Path, drop: tuple[str, ...] = (), damage: tuple[str, ...] = ()) -> Path:
    raw = dest / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        if name in drop:
            continue
        data = (fake_mnist / "MNIST" / "raw" / name).read_bytes()
        (raw / name).write_bytes(data[: len(data) // 2] if name in damage else data)
    return dest


@pytest.mark.parametrize(("drop", "damage", "train_error", "test_error"), [
    # Only the training files: training works, the message for the test split names it.
    (FILES[2:], (), None, "MNIST test files not found.*missing t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"),
    (FILES[:2], (), "MNIST training files not found.*missing train-images", None),
    ((FILES[1],), (), "training files not found.*missing train-labels-idx1-ubyte\\);", None),
    ((FILES[2],), (), None, "test files not found.*missing t10k-images-idx3-ubyte\\);"),
    ((), (FILES[2],), None, "MNIST test files .* are corrupt or truncated"),
    ((), (FILES[1],), "MNIST training files .* are corrupt or truncated", None),
    ((FILES[2:]), (FILES[0],), "training files .* are corrupt", "test files not found"),
])
def test_every_combination_of_missing_or_damaged_files_is_named(
    drop: tuple[str, ...], damage: tuple[str, ...], train_error: str | None, test_error: str | None,
    fake_mnist: Path, tmp_path: Path,
) -> None:
    root = _copy_without(fake_mnist, tmp_path, drop, damage)
    for load, error in ((lambda: load_splits(root, val_size=100, download=False), train_error),
                        (lambda: load_test(root, download=False), test_error)):
        if error is None:
            load()
        else:
            with pytest.raises(DataError, match=error):
                load()
