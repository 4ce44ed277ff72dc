"""Small synthetic MNIST written in the idx format torchvision reads.

Each class c is a bright bar at a class-specific row band and column offset plus noise:
learnable within an epoch or two by a row-reading LSTM, so tests can assert learning.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def fake_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for k, c in enumerate(labels):
        row, col = 2 + 2 * c, 4 + (c % 5) * 4
        images[k, row : row + 3, col : col + 8] = 255
    return images, labels.astype(np.uint8)


def write_fake_mnist(root: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """Write MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte under root."""
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, s in (("train", n_train, seed), ("t10k", n_test, seed + 1)):
        images, labels = fake_images(n, s)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels.tobytes())
    return Path(root)


# A search space whose trials take well under a second: for tests and benchmarks that
# exercise the storage and the workers, not the CPU.
TINY_SPACE = """
[hidden_size]
low = 8
high = 16
[lr]
low = 1e-3
high = 1e-2
log = true
[batch_size]
choices = [32, 64]
[epochs]
low = 1
high = 2
"""
