from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.fakes import write_fake_mnist

# skip_policy: under CI=true only the CUDA test may skip; pytester: that policy's own tests.
pytest_plugins = ["tests.skip_policy", "pytester"]


@pytest.fixture(scope="session")
def fake_mnist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding 600 training and 200 test synthetic images."""
    return write_fake_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Tests run on 2 shared cores; one thread each keeps them from fighting.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _pin_auto_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    # precision "auto" (the default) would time bf16 against float32 and train in bf16 on
    # some machines: tests pin it to float32 everywhere, subprocesses included (an env
    # var). Tests of the probe itself unset it.
    monkeypatch.setenv("LSTM_SEARCH_AUTO_PRECISION", "fp32")
