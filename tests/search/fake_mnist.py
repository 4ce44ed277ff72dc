"""Tiny MNIST look-alikes written as the idx files torchvision reads, for fast tests.

The idx format (http://yann.lecun.com/exdb/mnist/): a big-endian magic number
(0x00000803 for uint8 3-D images, 0x00000801 for uint8 1-D labels), one big-endian
uint32 per dimension, then the raw bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

__all__ = ["write_fake_mnist"]


def write_fake_mnist(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """Write MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte under ``root``.

    Each class gets a bright stripe in its own rows, so a small LSTM can learn something
    within one epoch (trials then report real, varying accuracies).
    """
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label : 2 * label + 3, :] = 250
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())
    return Path(root)
