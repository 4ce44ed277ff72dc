from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.fakes import write_fake_mnist


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding 600 training and 200 test synthetic images."""
    return write_fake_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Tests run on 2 shared cores; one thread each keeps them from fighting.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _pin_precision_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    # precision "auto" (the default) would time bf16 against float32 matmuls and train in
    # bf16 on some machines: tests pin "no bf16 gain" so every machine runs float32.
    # Tests of the probe itself replace this.
    from model import precision

    monkeypatch.setattr(precision, "_speedups", {"cpu": 1.0, "cuda:0": 1.0})
