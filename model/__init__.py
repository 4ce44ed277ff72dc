"""The hand-written recurrent models and how to train them. Knows nothing of Optuna."""

from model.cell import ManualGRUCell, ManualLSTMCell, ManualRNNCell
from model.classifier import LSTMClassifier, build_model
from model.config import PRESETS, TrainConfig
from model.errors import ConfigError, DataError, UserInputError

__all__ = [
    "PRESETS",
    "ConfigError",
    "DataError",
    "LSTMClassifier",
    "ManualGRUCell",
    "ManualLSTMCell",
    "ManualRNNCell",
    "TrainConfig",
    "UserInputError",
    "build_model",
]
