"""Epoch time of our training path vs a faithful re-implementation of the lab's script.

The lab's script: torchvision MNIST through a DataLoader with ToTensor (one PIL image at
a time), an LSTM written as four separate gate nn.Linear layers applied to the
concatenated [x_t, h_{t-1}], Adam, cross-entropy. Ours: model.train.train_one_epoch on the
in-memory normalised tensors with LSTMClassifier (the hand-written cell's fast path).
Both at the same hidden size, batch size, learning rate and thread count; timed over
--batches mini-batches each, alternating, several repeats; the epoch time is
55,000 / (median samples/s), and --full-epoch also times one whole epoch of each.
nn.LSTM (the same head, trained by the same train_one_epoch) is timed interleaved with
both: ours / lab = (ours / nn.LSTM) x (nn.LSTM / lab), so the speed-up over the lab script
is bounded by how far nn.LSTM itself is ahead of it, times our parity with nn.LSTM.

    PYTHONPATH=. python benchmarks/bench_lab_script.py   # data: $LSTM_SEARCH_DATA or --data-root
    PYTHONPATH=. python benchmarks/bench_lab_script.py --threads 2
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import torch
from torch import Tensor, nn

from benchmarks._common import NNLSTMClassifier, banner, median
from model.config import PRESETS
from model.data import load_splits, resolve_data_root
from model.train import make_optimizer, train_one_epoch

TRAIN_IMAGES = 55_000  # 60k minus the 5k validation split the service holds out


class LabLSTM(nn.Module):
    """The lab's model as students write it: one Linear per gate on cat([x_t, h])."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.input_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.forget_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.cell_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.output_gate = nn.Linear(input_size + hidden_size, hidden_size)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.zeros(x.size(0), self.hidden_size)
        c = torch.zeros(x.size(0), self.hidden_size)
        for t in range(x.size(1)):
            combined = torch.cat((x[:, t, :], h), dim=1)
            i = torch.sigmoid(self.input_gate(combined))
            f = torch.sigmoid(self.forget_gate(combined))
            g = torch.tanh(self.cell_gate(combined))
            o = torch.sigmoid(self.output_gate(combined))
            c = f * c + i * g
            h = o * torch.tanh(c)
        return self.fc(h)


def lab_runner(root: str, hidden: int, batch: int, lr: float):
    from torchvision import datasets, transforms

    dataset = datasets.MNIST(root, train=True, download=False, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True)
    model = LabLSTM(28, hidden, 10)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    batches = itertools.cycle(loader)  # re-shuffles each pass, as the lab's epoch loop does

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            images, labels = next(batches)
            images = images.reshape(-1, 28, 28)
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return n * batch / (time.perf_counter() - start)

    return run, len(loader)


def ours_runner(root: str, hidden: int, batch: int, lr: float, model_cls: type[nn.Module] | None = None):
    """train_one_epoch's samples/s for LSTMClassifier, or for ``model_cls`` (nn.LSTM's)."""
    from model.classifier import LSTMClassifier

    cfg = PRESETS["v1"].with_overrides(hidden_size=hidden, batch_size=batch, lr=lr)
    data = load_splits(root, val_size=5_000, download=False)
    model = (model_cls or LSTMClassifier)(28, hidden)
    optimizer = make_optimizer(model.parameters(), cfg)
    gen = torch.Generator().manual_seed(0)

    def run(n: int | None) -> float:
        start = time.perf_counter()
        train_one_epoch(model, optimizer, None, data.train_x, data.train_y, cfg, gen, max_steps=n)
        done = data.train_y.shape[0] if n is None else n * batch
        return done / (time.perf_counter() - start)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batches", type=int, default=60, help="mini-batches per timed repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full-epoch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    banner("epoch time: our training path vs the lab-style script")
    root = str(resolve_data_root(args.data_root))
    torch.manual_seed(0)
    lab, lab_batches = lab_runner(root, args.hidden, args.batch, args.lr)
    ours = ours_runner(root, args.hidden, args.batch, args.lr)
    nn_lstm = ours_runner(root, args.hidden, args.batch, args.lr, NNLSTMClassifier)
    lab(2), ours(2), nn_lstm(2)  # warm-up: first calls allocate, build or load the extension
    runs = {"lab": lab, "ours": ours, "nn": nn_lstm}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            rates[name].append(run(args.batches))
    med = {k: median(v) for k, v in rates.items()}
    print(f"H={args.hidden} B={args.batch}, {args.batches} batches x {args.repeats} repeats, interleaved"
          f"  (load avg {' '.join(f'{v:.2f}' for v in os.getloadavg())})")
    for name in runs:
        print(f"{name:5s} {med[name]:8.0f} samples/s  -> {TRAIN_IMAGES / med[name]:6.1f} s per 55k-image epoch"
              f"  (repeats: {', '.join(f'{r:.0f}' for r in rates[name])})")
    print(f"speed-up ours / lab: {med['ours'] / med['lab']:.2f}x"
          f" = ours / nn.LSTM {med['ours'] / med['nn']:.2f}x * nn.LSTM / lab {med['nn'] / med['lab']:.2f}x")
    if args.full_epoch:
        start = time.perf_counter()
        lab(lab_batches)
        lab_s = time.perf_counter() - start
        start = time.perf_counter()
        ours(None)
        ours_s = time.perf_counter() - start
        print(f"full epoch: lab {lab_s:.1f} s ({lab_batches} batches of 60k), ours {ours_s:.1f} s "
              f"(55k images), speed-up {lab_s / ours_s * TRAIN_IMAGES / 60_000:.2f}x per image")


if __name__ == "__main__":
    main()
