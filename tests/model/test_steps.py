"""Reading an image in other numbers of steps: 14 (two rows), 28 (rows), 56, 112, 784 (pixels)."""

from __future__ import annotations

import pytest
import torch

from model.classifier import build_model
from model.config import TrainConfig
from model.errors import ConfigError
from model.memory import trial_peak_bytes


@pytest.mark.parametrize("steps, width", [(14, 56), (28, 28), (56, 14), (112, 7), (784, 1)])
def test_images_are_reshaped_in_reading_order(steps: int, width: int) -> None:
    model = build_model(TrainConfig(hidden_size=3, steps=steps))
    images = torch.arange(2 * 784, dtype=torch.float32).view(2, 28, 28)
    seq = model.sequence(images)
    assert seq.shape == (2, steps, width) and model.cell.input_size == width
    # Step t holds pixels t*width .. (t+1)*width - 1 of the image read row by row.
    assert torch.equal(seq[1, 3], images[1].flatten()[3 * width : 4 * width])
    assert torch.equal(seq[1].flatten(), images[1].flatten())
    assert model(images).shape == (2, 10)
    assert model.sequence(images.unsqueeze(1)).shape == (2, steps, width)  # (B, 1, 28, 28) too


def test_28_steps_are_the_rows_themselves() -> None:
    images = torch.randn(2, 28, 28)
    seq = build_model(TrainConfig(hidden_size=3)).sequence(images)
    assert seq.data_ptr() == images.data_ptr() and torch.equal(seq, images)  # a view: same numbers


@pytest.mark.parametrize("steps", [0, 27, 785, 2.0])
def test_steps_must_divide_the_784_pixels(steps: object) -> None:
    with pytest.raises(ConfigError, match="steps must"):
        TrainConfig(steps=steps)


def test_memory_estimate_grows_with_the_steps() -> None:
    big = TrainConfig(hidden_size=256, batch_size=256)
    assert trial_peak_bytes(big.with_overrides(steps=784)) > 5 * trial_peak_bytes(big)
