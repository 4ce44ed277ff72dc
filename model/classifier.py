"""MNIST read as a sequence: 28 time steps of 28 pixels, classified from the last h."""

from __future__ import annotations

from torch import Tensor, nn

from model.cell import CELL_TYPES
from model.config import TrainConfig

__all__ = ["LSTMClassifier", "build_model"]


class LSTMClassifier(nn.Module):
    """Unrolls a hand-written cell over the rows of a (B, 28, 28) batch.

    logits = W_out dropout(h_T) + b_out. The cell defaults to the lab's LSTM; ``cell``
    picks the GRU or plain RNN for the "simple RNN or LSTM?" comparison.
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
    ) -> None:
        super().__init__()
        if cell not in CELL_TYPES:
            raise ValueError(f"cell must be one of {', '.join(CELL_TYPES)} (got {cell!r})")
        self.cell = CELL_TYPES[cell](input_size, hidden_size)
        self.cell.reset_parameters(recurrent_init=recurrent_init, forget_bias=forget_bias)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, num_classes)  # W_out, b_out

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, T, D) -> logits (B, num_classes)."""
        if x.dim() == 4:  # (B, 1, 28, 28) straight from an image pipeline
            x = x.squeeze(1)
        h_T = self.cell.forward_sequence(x)  # (B, H)
        return self.fc(self.dropout(h_T))  # (B, C)


def build_model(cfg: TrainConfig, input_size: int = 28, num_classes: int = 10) -> LSTMClassifier:
    """The classifier a config describes, freshly initialised."""
    return LSTMClassifier(
        input_size=input_size,
        hidden_size=cfg.hidden_size,
        num_classes=num_classes,
        dropout=cfg.dropout,
        cell=cfg.cell,
        forget_bias=cfg.forget_bias,
        recurrent_init=cfg.recurrent_init,
    )
