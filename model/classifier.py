"""MNIST read as a sequence, classified from the last h: by default 28 time steps of one
28-pixel row each, or the 784 pixels split into ``steps`` equal pieces in reading order."""

from __future__ import annotations

from torch import Tensor, nn

from model.cell import CELL_TYPES
from model.config import PIXELS, TrainConfig

__all__ = ["LSTMClassifier", "build_model"]


class LSTMClassifier(nn.Module):
    """Unrolls a hand-written cell over a (B, 28, 28) batch read as ``steps`` time steps.

    logits = W_out dropout(h_T) + b_out. The cell defaults to the lab's LSTM; ``cell``
    picks the GRU or plain RNN for the "simple RNN or LSTM?" comparison. With the lab's
    28 steps each step is one row; other ``steps`` split the 784 pixels, in reading
    order, into that many equal pieces (``input_size`` must be 784 // steps).
    """

    def __init__(
        self,
        input_size: int = 28,
        hidden_size: int = 128,
        num_classes: int = 10,
        dropout: float = 0.0,
        cell: str = "lstm",
        forget_bias: float = 0.0,
        recurrent_init: str = "uniform",
        steps: int = 28,
    ) -> None:
        super().__init__()
        self.steps = steps
        if cell not in CELL_TYPES:
            raise ValueError(f"cell must be one of {', '.join(CELL_TYPES)} (got {cell!r})")
        self.cell = CELL_TYPES[cell](input_size, hidden_size)
        self.cell.reset_parameters(recurrent_init=recurrent_init, forget_bias=forget_bias)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, num_classes)  # W_out, b_out

    def sequence(self, x: Tensor) -> Tensor:
        """Images (B, 28, 28) or (B, 1, 28, 28) -> the (B, steps, 784 // steps) sequence.

        Row-major, so 28 steps are the rows themselves (a view: no copy, same numbers)."""
        return x.reshape(x.shape[0], self.steps, -1)

    def forward(self, x: Tensor) -> Tensor:
        """x: images (B, 28, 28), (B, 1, 28, 28) or a (B, steps, D) sequence -> logits (B, C)."""
        h_T = self.cell.forward_sequence(self.sequence(x))  # (B, H)
        return self.fc(self.dropout(h_T))  # (B, C)


def build_model(cfg: TrainConfig, num_classes: int = 10) -> LSTMClassifier:
    """The classifier a config describes, freshly initialised."""
    return LSTMClassifier(
        input_size=PIXELS // cfg.steps,
        steps=cfg.steps,
        hidden_size=cfg.hidden_size,
        num_classes=num_classes,
        dropout=cfg.dropout,
        cell=cfg.cell,
        forget_bias=cfg.forget_bias,
        recurrent_init=cfg.recurrent_init,
    )
