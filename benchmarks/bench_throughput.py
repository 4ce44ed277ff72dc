"""Training samples/s of LSTMClassifier (our hand-written LSTM) vs an nn.LSTM classifier,
and the achieved GFLOP/s against a measured matmul peak of the same process.

Same H, B, Adam and head for both; the repeats alternate between the models (and the
peaks are re-measured between repeats) so a machine shared with other jobs slows all
of them alike. Prints the median of the repeats. The header gives lscpu's model and
flags (bf16 speed depends on amx_bf16 / avx512_bf16) and what ``--precision auto``
picks on this machine.

--precision fp32 (default): ours vs nn.LSTM in float32, ratio = ours / nn.LSTM, % of the
float32 peak (the faster of MKL's sgemm and oneDNN's matmul, both measured; the header
says which of them the C++ kernels use here). --threads takes several counts: one table each, in one
process (the lead's idle rerun of the whole grid is the two commands below, about 4-5
minutes each on an idle 2-core machine). Every row ends with the 1-minute load average
(other jobs on a shared machine slow both models, not their ratio, but widen its spread).
--precision bf16: ours under bf16 autocast vs ours fp32 vs nn.LSTM
fp32 vs nn.LSTM under bf16 autocast, % of the bf16 matmul peak. --precision auto: the
table of whichever precision auto resolves to here.

    PYTHONPATH=. python benchmarks/bench_throughput.py                 # CPU, 1 thread
    PYTHONPATH=. python benchmarks/bench_throughput.py --threads 2
    PYTHONPATH=. python benchmarks/bench_throughput.py --hidden 64 128 256 512 --batch 64 128 256 --threads 1
    PYTHONPATH=. python benchmarks/bench_throughput.py --hidden 64 128 256 512 --batch 64 128 256 --threads 2
    PYTHONPATH=. python benchmarks/bench_throughput.py --threads 2 --serial-loops   # + fused loops on 1 thread
    PYTHONPATH=. python benchmarks/bench_throughput.py --precision bf16 --hidden 128 256 512 --batch 256
    PYTHONPATH=. python benchmarks/bench_throughput.py --packed-gemm   # + ours with MKL packed W
    PYTHONPATH=. python benchmarks/bench_throughput.py --blas-gemm     # + ours with ATen's BLAS
    PYTHONPATH=. python benchmarks/bench_throughput.py --device cuda   # vs cuDNN
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch

from benchmarks._common import (
    NNLSTMClassifier,
    banner,
    matmul_peak_gflops,
    median,
    onednn_matmul_available,
    time_train_steps,
    train_flop_per_sample,
)
from model.classifier import LSTMClassifier
from model.precision import PRECISIONS, bf16_speedup, resolve_precision


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=2048, help="samples per timed repeat")
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="one table per count")
    parser.add_argument(
        "--min-parallel", type=int, default=None,
        help="elements per thread before the fused loops split over threads (0: never; "
        "default: the kernels' own; model.lstm_ext.set_min_parallel_elems)",
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="which table: fp32, bf16 (all four runs), or what auto picks here")
    parser.add_argument("--peak-n", type=int, default=1024, help="size of the n^3 matmul that measures the peak")
    parser.add_argument(
        "--python-path", action="store_true",
        help="also time the pure-torch autograd.Function (no C++ extension)",
    )
    parser.add_argument(
        "--packed-gemm", action="store_true",
        help="fp32 table: also time ours with MKL's packed recurrent GEMM (model.lstm_ext.set_packed_gemm)",
    )
    parser.add_argument(
        "--serial-loops", action="store_true",
        help="fp32 table: also time ours with the fused per-step loops kept on one thread "
        "(what the kernels did before they split them over threads)",
    )
    parser.add_argument(
        "--blas-gemm", action="store_true",
        help="fp32 table: also time ours with every product through ATen's BLAS (MKL on x86), "
        "where the default here is oneDNN's matmul (model.lstm_ext.set_onednn_gemm)",
    )
    return parser.parse_args()


def describe_kernels(device: torch.device, args: argparse.Namespace) -> str:
    """Print how the C++ kernels are set up here (thread split, build, precision probe, GEMM
    backend); returns the table to time: fp32 or bf16 (what ``auto`` picks here)."""
    from model import lstm_ext

    if args.min_parallel is not None:
        lstm_ext.set_min_parallel_elems(args.min_parallel)
    min_elems = lstm_ext.set_min_parallel_elems(0)
    if min_elems is not None:
        lstm_ext.set_min_parallel_elems(min_elems)
    print(f"# fused per-step loops split over threads from {min_elems} elements (batch rows x H) per thread"
          " (0: never)")

    print(f"# C++ extension: {'built' if lstm_ext.load() is not None else 'unavailable'}"
          f"  (LSTM_SEARCH_NO_EXT={os.environ.get('LSTM_SEARCH_NO_EXT', '')})")
    auto = resolve_precision("auto", device)
    print(f"# precision auto here: {auto} (probe: a bf16 training step {bf16_speedup(device):.2f}x as fast"
          f" as float32 at H=256, B=64, on {torch.get_num_threads()} thread(s))")
    table = auto if args.precision == "auto" else args.precision
    print(f"# float32 products of the C++ kernels: {lstm_ext.gemm_backend()}"
          f"  (LSTM_SEARCH_ONEDNN_GEMM={os.environ.get('LSTM_SEARCH_ONEDNN_GEMM', '')})")
    if args.packed_gemm:
        print(f"# packed GEMM available: {lstm_ext.set_packed_gemm(True)}")
        lstm_ext.set_packed_gemm(False)
    return table


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads[0])
    device = torch.device(args.device)
    banner("training throughput: LSTMClassifier vs nn.LSTM")
    table = describe_kernels(device, args)
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n# threads {torch.get_num_threads()}  load avg {_load()}")
        print(_bf16_header() if table == "bf16" else _fp32_header(args))
        for hidden in args.hidden:
            for batch in args.batch:
                row_of = _bf16_row if table == "bf16" else _fp32_row
                row = row_of(hidden, batch, args, device)
                print(f"{row} | {_load()}", flush=True)


def _load() -> str:
    """The 1-, 5- and 15-minute load averages, as uptime prints them."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _runs(hidden: int, batch: int, args: argparse.Namespace, device: torch.device,
          which: dict[str, tuple[type[torch.nn.Module], str]]) -> dict[str, float]:
    """Median samples/s of each (model class, precision), interleaved over the repeats;
    the run named "packed" uses MKL's packed recurrent GEMM, "blas" ATen's BLAS for all
    products and "serial" keeps the fused loops on one thread, the others the kernels'
    defaults here."""
    from model import lstm_ext

    torch.manual_seed(0)
    steps = max(2, args.samples // batch)
    default_onednn = lstm_ext.gemm_backend() == "onednn"
    default_min = lstm_ext.set_min_parallel_elems(0)
    lstm_ext.set_min_parallel_elems(default_min or 0)

    def select_gemm(name: str) -> None:
        lstm_ext.set_onednn_gemm(default_onednn and name not in ("packed", "blas"))
        lstm_ext.set_packed_gemm(name == "packed")
        lstm_ext.set_min_parallel_elems(0 if name == "serial" else default_min or 0)

    def timed(name: str, cls: type[torch.nn.Module], precision: str) -> Callable[[], float]:
        select_gemm(name)  # also during the warm-up steps
        run = time_train_steps(cls(28, hidden).to(device), batch, steps, device, precision=precision)

        def switched() -> float:
            select_gemm(name)
            return run()

        return switched

    runs = {name: timed(name, cls, precision) for name, (cls, precision) in which.items()}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    peaks: dict[str, list[float]] = {"fp32": [], "dnnl": [], "bf16": []}
    for _ in range(args.repeats):
        for name, run in runs.items():
            rates[name].append(run())
        peaks["fp32"].append(matmul_peak_gflops(device, torch.float32, args.peak_n, repeats=2))
        if onednn_matmul_available(device):
            peaks["dnnl"].append(matmul_peak_gflops(device, torch.float32, args.peak_n, repeats=2, onednn=True))
        if any(p == "bf16" for _, p in which.values()):
            peaks["bf16"].append(matmul_peak_gflops(device, torch.bfloat16, args.peak_n, repeats=2))
    select_gemm("ours")
    med = {name: median(v) for name, v in rates.items()}
    med.update({f"peak_{k}": median(v) for k, v in peaks.items() if v})
    return med


def _fp32_header(args: argparse.Namespace) -> str:
    cols = ["H", "B", "ours/s", "nn.LSTM/s", "ratio"]
    if args.serial_loops:
        cols += ["1-loop/s", "1-loop/nn"]
    if args.blas_gemm:
        cols += ["blas/s", "blas/nn"]
    if args.packed_gemm:
        cols += ["packed/s", "packed/nn"]
    if args.python_path:
        cols += ["py-path/s", "py/nn"]
    cols += ["ours GF/s", "nn GF/s", "sgemm GF/s", "dnnl GF/s", "ours %peak", "nn %peak", "load 1/5/15"]
    return " | ".join(cols)


def _fp32_row(hidden: int, batch: int, args: argparse.Namespace, device: torch.device) -> str:
    which = {"ours": (LSTMClassifier, "fp32"), "nn": (NNLSTMClassifier, "fp32")}
    serial = args.serial_loops and torch.get_num_threads() > 1  # on 1 thread it is "ours"
    if serial:
        which["serial"] = (LSTMClassifier, "fp32")
    if args.blas_gemm:
        which["blas"] = (LSTMClassifier, "fp32")
    if args.packed_gemm:
        which["packed"] = (LSTMClassifier, "fp32")
    if args.python_path:
        which["py"] = (_PythonPathClassifier, "fp32")
    med = _runs(hidden, batch, args, device, which)
    dnnl = med.get("peak_dnnl", float("nan"))
    peak, flop = max(med["peak_fp32"], med.get("peak_dnnl", 0.0)), train_flop_per_sample(hidden)
    row = [f"{hidden}", f"{batch}", f"{med['ours']:.0f}", f"{med['nn']:.0f}", f"{med['ours'] / med['nn']:.2f}"]
    if args.serial_loops:
        row += [f"{med['serial']:.0f}", f"{med['serial'] / med['nn']:.2f}"] if serial else ["=ours", "=ratio"]
    if args.blas_gemm:
        row += [f"{med['blas']:.0f}", f"{med['blas'] / med['nn']:.2f}"]
    if args.packed_gemm:
        row += [f"{med['packed']:.0f}", f"{med['packed'] / med['nn']:.2f}"]
    if args.python_path:
        row += [f"{med['py']:.0f}", f"{med['py'] / med['nn']:.2f}"]
    g_ours, g_nn = med["ours"] * flop / 1e9, med["nn"] * flop / 1e9
    row += [f"{g_ours:.1f}", f"{g_nn:.1f}", f"{med['peak_fp32']:.1f}", f"{dnnl:.1f}",
            f"{100 * g_ours / peak:.0f}%", f"{100 * g_nn / peak:.0f}%"]
    return " | ".join(row)


def _bf16_header() -> str:
    return " | ".join([
        "H", "B", "ours bf16/s", "ours fp32/s", "nn fp32/s", "nn bf16/s", "ours bf16/fp32",
        "ours bf16 / nn bf16", "ours fp32 / nn fp32", "bf16 peak GF/s", "sgemm GF/s",
        "ours bf16 %bf16peak", "nn bf16 %bf16peak", "load 1/5/15",
    ])


def _bf16_row(hidden: int, batch: int, args: argparse.Namespace, device: torch.device) -> str:
    which = {
        "ours16": (LSTMClassifier, "bf16"), "ours32": (LSTMClassifier, "fp32"),
        "nn32": (NNLSTMClassifier, "fp32"), "nn16": (NNLSTMClassifier, "bf16"),
    }
    med = _runs(hidden, batch, args, device, which)
    flop = train_flop_per_sample(hidden)
    peak16 = med["peak_bf16"]
    return " | ".join([
        f"{hidden}", f"{batch}", *(f"{med[k]:.0f}" for k in ("ours16", "ours32", "nn32", "nn16")),
        f"{med['ours16'] / med['ours32']:.2f}", f"{med['ours16'] / med['nn16']:.2f}",
        f"{med['ours32'] / med['nn32']:.2f}", f"{peak16:.1f}", f"{med['peak_fp32']:.1f}",
        f"{100 * med['ours16'] * flop / 1e9 / peak16:.0f}%", f"{100 * med['nn16'] * flop / 1e9 / peak16:.0f}%",
    ])


class _PythonPathClassifier(LSTMClassifier):
    """LSTMClassifier forced onto the pure-torch autograd.Function (the CUDA/fallback path)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from model.fused_lstm import LSTMSequenceFunction

        c = self.cell
        h = LSTMSequenceFunction.apply(x.transpose(0, 1).contiguous(), c.weight_ih, c.weight_hh, c.bias)
        return self.fc(self.dropout(h))


if __name__ == "__main__":
    main()
