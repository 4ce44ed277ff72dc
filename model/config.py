"""The one frozen configuration that flows sampler -> trainer -> checkpoint -> report.

Everything needed to rebuild and retrain a model lives here, so a checkpoint that stores
``asdict(cfg)`` beside its weights can be reloaded without the study that produced it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from model.errors import ConfigError

__all__ = [
    "CELLS",
    "MAX_EPOCHS",
    "MAX_SEED",
    "OPTIMIZERS",
    "PIXELS",
    "PRECISIONS",
    "PRESETS",
    "RECURRENT_INITS",
    "SCHEDULES",
    "TrainConfig",
    "check_seed",
    "config_fields",
    "field_flag",
]

CELLS = ("lstm", "gru", "rnn")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("none", "cosine", "onecycle")
RECURRENT_INITS = ("uniform", "orthogonal", "identity")
# auto: bf16 only where a start-up probe finds bf16 matmuls clearly faster (model.precision).
PRECISIONS = ("auto", "fp32", "bf16")
PIXELS = 28 * 28  # an MNIST image, read as ``steps`` time steps of PIXELS // steps inputs
# The one bound of every seed any command takes (launch, train, report, compare-cells) and
# of every seed derived from one (report's s..s+k-1, the samplers' per-worker offsets,
# taken modulo MAX_SEED + 1): torch, numpy's RandomState behind Optuna's samplers and
# scikit-learn's forests (fANOVA) all take it, and it fits a signed 32-bit integer.
MAX_SEED = 2**31 - 1
# Epochs of one run: far beyond any useful training, so a larger value is a typo that would
# otherwise only show as a run that never ends (and a pruner sized for it).
MAX_EPOCHS = 100_000
_FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (model and optimisation together)."""

    cell: str = "lstm"  # which hand-written cell unrolls over the 28 rows
    # Time steps an image is read in: 28 = one row a step; 14, 56, 112, 784 = two rows,
    # half rows, quarter rows, single pixels (the image's 784 pixels in reading order).
    steps: int = 28
    hidden_size: int = 128
    lr: float = 1e-3  # peak learning rate (the one-cycle maximum)
    batch_size: int = 128
    epochs: int = 10
    optimizer: str = "adam"
    momentum: float = 0.9  # used by sgd and rmsprop only
    weight_decay: float = 0.0
    dropout: float = 0.0  # on the last hidden state, before the output layer
    schedule: str = "none"
    grad_clip: float = 0.0  # max global grad norm; 0 turns clipping off
    forget_bias: float = 0.0  # added to b_f at init (1.0 is the classic trick)
    recurrent_init: str = "uniform"  # init of the W (hidden-to-hidden) matrices
    # Training images are moved by up to this many pixels in each direction (0: off).
    shift: int = 0
    # Training images are also rotated by up to this many degrees and scaled by up to this
    # fraction (0: off), each image by its own draw (model/augment.py).
    rotate: float = 0.0
    scale: float = 0.0
    # Decay of an exponential moving average of the weights, which is what gets evaluated
    # and saved (0: off; 0.999 averages over the last ~1,000 steps once past a warm-up,
    # model.train.ema_update).
    ema: float = 0.0
    seed: int = 0
    # fp32, or bf16 matmuls under autocast (fp32 master weights and cell state); auto: bf16
    # only where a start-up probe finds bf16 faster on this machine (model.precision).
    # fp32 by default: two seeds cannot show bf16's accuracy equal to fp32's
    # (benchmarks/RESULTS.md#bf16), and auto's probe can pick
    # differently at 1 and 2 threads, which would mix precisions within one study.
    precision: str = "fp32"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError with one line naming the first bad field and how to fix it."""
        _choice("cell", self.cell, CELLS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("recurrent_init", self.recurrent_init, RECURRENT_INITS)
        _choice("precision", self.precision, PRECISIONS)
        _integer("steps", self.steps, low=1)
        if PIXELS % self.steps:
            raise ConfigError(f"steps must divide the {PIXELS} pixels of an image, e.g. 14, 28, 56, 112 "
                              f"or 784 (got {self.steps})")
        _integer("hidden_size", self.hidden_size, low=1)
        _integer("batch_size", self.batch_size, low=1)
        _integer("epochs", self.epochs, low=1)
        if self.epochs > MAX_EPOCHS:
            raise ConfigError(f"epochs must be <= {MAX_EPOCHS} (got {self.epochs})")
        _integer("shift", self.shift, low=0)
        if self.shift > 8:
            raise ConfigError(f"shift must be <= 8 pixels of the 28 (got {self.shift})")
        _number("rotate", self.rotate, low=0.0, high=45.0)
        _number("scale", self.scale, low=0.0, high=0.5, high_open=True)
        _number("ema", self.ema, low=0.0, high=1.0, high_open=True)
        _integer("seed", self.seed, low=0)
        check_seed(self.seed, "seed")
        _number("lr", self.lr, positive=True)
        _number("momentum", self.momentum, low=0.0, high=1.0)
        _number("weight_decay", self.weight_decay, low=0.0)
        _number("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        _number("grad_clip", self.grad_clip, low=0.0)
        _number("forget_bias", self.forget_bias)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Rebuild from ``asdict`` output; unknown keys are an error, missing ones default."""
        unknown = sorted(set(values) - set(config_fields()))
        if unknown:
            raise ConfigError(
                f"unknown config key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(config_fields())}"
            )
        return cls(**values)

    def with_overrides(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (None values are ignored, for argparse)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def check_seed(value: int, what: str = "--seed", count: int = 1) -> None:
    """``value`` (and the ``count - 1`` seeds after it, for runs seeded s..s+count-1) within
    0..MAX_SEED; ConfigError naming ``what`` otherwise."""
    _integer(what, value, low=0)
    if value + count - 1 > MAX_SEED:
        also = "" if count == 1 else f" with its {count} runs seeded {value}..{value + count - 1}"
        raise ConfigError(f"{what} must be >= 0 and <= {MAX_SEED - count + 1}{also} (got {value})")


def config_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(TrainConfig))


def field_flag(name: str) -> str:
    """The command-line flag of a TrainConfig field, or of a launch setting named like one
    (``hidden_size`` -> ``--hidden-size``): the one rule that every command's flags, the
    report's reproduce commands and the messages naming a flag follow. argparse turns the
    flag back into the field's name (its ``dest``) by the reverse rule."""
    return "--" + name.replace("_", "-")


def _choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")


def _integer(name: str, value: object, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer (got {value!r})")
    if value < low:
        raise ConfigError(f"{name} must be >= {low} (got {value})")


def _number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    positive: bool = False,
    high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number (got {value!r})")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite (got {value})")
    if abs(value) > _FLOAT32_MAX:  # training runs in float32: a larger value becomes inf there
        raise ConfigError(f"{name} must be at most {_FLOAT32_MAX:.3g} in size (got {value:g})")
    if positive and value <= 0:
        raise ConfigError(f"{name} must be > 0 (got {value})")
    if low is not None and value < low:
        raise ConfigError(f"{name} must be >= {low} (got {value})")
    if high is not None and (value >= high if high_open else value > high):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise ConfigError(f"{name} must be {bound} (got {value})")


# The lab's two reference points. "template" is the lab handout's starting script;
# "v1" is the typical hand-tuned answer that students report as their V1.
PRESETS: dict[str, TrainConfig] = {
    "template": TrainConfig(hidden_size=32, lr=6e-5, batch_size=128, epochs=2, optimizer="adam"),
    "v1": TrainConfig(hidden_size=128, lr=1e-3, batch_size=128, epochs=10, optimizer="adam"),
}
