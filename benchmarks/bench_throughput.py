"""Training samples/s of LSTMClassifier (our hand-written LSTM) vs an nn.LSTM classifier,
and the achieved GFLOP/s against a measured sgemm peak of the same process.

Same H, B, Adam and head for both; the repeats alternate between the models (and the
sgemm peak is re-measured between repeats) so a machine shared with other jobs slows all
of them alike. Prints the median of the repeats and ratio = ours / nn.LSTM.

    PYTHONPATH=. python benchmarks/bench_throughput.py                 # CPU, 1 thread
    PYTHONPATH=. python benchmarks/bench_throughput.py --threads 2
    PYTHONPATH=. python benchmarks/bench_throughput.py --device cuda   # vs cuDNN
"""

from __future__ import annotations

import argparse
import os

import torch

from _common import (
    NNLSTMClassifier,
    banner,
    median,
    sgemm_peak_gflops,
    time_train_steps,
    train_flop_per_sample,
)
from model.classifier import LSTMClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=2048, help="samples per timed repeat")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument(
        "--python-path", action="store_true",
        help="also time the pure-torch autograd.Function (no C++ extension)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    banner("training throughput: LSTMClassifier vs nn.LSTM")
    from model import lstm_ext

    print(f"# C++ extension: {'built' if lstm_ext.load() is not None else 'unavailable'}"
          f"  (LSTM_SEARCH_NO_EXT={os.environ.get('LSTM_SEARCH_NO_EXT', '')})")
    cols = ["H", "B", "ours/s", "nn.LSTM/s", "ratio"]
    if args.python_path:
        cols += ["py-path/s", "py/nn"]
    cols += ["ours GF/s", "nn GF/s", "sgemm GF/s", "ours %peak", "nn %peak"]
    print(" | ".join(cols))
    for hidden in args.hidden:
        for batch in args.batch:
            torch.manual_seed(0)
            steps = max(2, args.samples // batch)
            runs = {
                "ours": time_train_steps(LSTMClassifier(28, hidden).to(device), batch, steps, device),
                "nn": time_train_steps(NNLSTMClassifier(28, hidden).to(device), batch, steps, device),
            }
            if args.python_path:
                runs["py"] = time_train_steps(_PythonPathClassifier(28, hidden).to(device), batch, steps, device)
            rates: dict[str, list[float]] = {k: [] for k in runs}
            peaks: list[float] = []
            for _ in range(args.repeats):
                for name, run in runs.items():
                    rates[name].append(run())
                peaks.append(sgemm_peak_gflops(device, repeats=2))
            med = {k: median(v) for k, v in rates.items()}
            peak = median(peaks)
            flop = train_flop_per_sample(hidden)
            row = [f"{hidden}", f"{batch}", f"{med['ours']:.0f}", f"{med['nn']:.0f}",
                   f"{med['ours'] / med['nn']:.2f}"]
            if args.python_path:
                row += [f"{med['py']:.0f}", f"{med['py'] / med['nn']:.2f}"]
            g_ours, g_nn = med["ours"] * flop / 1e9, med["nn"] * flop / 1e9
            row += [f"{g_ours:.1f}", f"{g_nn:.1f}", f"{peak:.1f}",
                    f"{100 * g_ours / peak:.0f}%", f"{100 * g_nn / peak:.0f}%"]
            print(" | ".join(row), flush=True)


class _PythonPathClassifier(LSTMClassifier):
    """LSTMClassifier forced onto the pure-torch autograd.Function (the CUDA/fallback path)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from model.fused_lstm import LSTMSequenceFunction

        c = self.cell
        h = LSTMSequenceFunction.apply(x.transpose(0, 1).contiguous(), c.weight_ih, c.weight_hh, c.bias)
        return self.fc(self.dropout(h))


if __name__ == "__main__":
    main()
