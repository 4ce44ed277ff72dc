"""Trials per hour on this machine: how to split the cores between workers and threads.

A trial's cost is its training samples, so trials/hour is proportional to the samples/s
that all workers together sustain. Each layout below runs that many processes at once,
each with that many torch threads, training LSTMClassifier for --seconds; the total
samples/s of the layout is compared. Layouts alternate over the repeats.

    PYTHONPATH=. python benchmarks/bench_workers.py
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os

from benchmarks._common import banner, median


def _worker(threads: int, hidden: int, batch: int, seconds: float, queue: mp.Queue) -> None:
    import time

    import torch

    torch.set_num_threads(threads)
    from benchmarks._common import time_train_steps
    from model.classifier import LSTMClassifier

    run = time_train_steps(LSTMClassifier(28, hidden), batch, steps=4, device=torch.device("cpu"))
    done, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        done += 4 * batch
    queue.put(done / (time.perf_counter() - start))


def measure(workers: int, threads: int, hidden: int, batch: int, seconds: float) -> float:
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(threads, hidden, batch, seconds, queue)) for _ in range(workers)]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch", type=int, default=None, help="default: equal to the hidden size")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    banner("trials/hour: workers x threads per worker")
    cores = os.cpu_count() or 1
    layouts = [(1, 1), (1, cores), (cores, 1)]
    print("H | B | " + " | ".join(f"{w} worker(s) x {t} thread(s) samples/s" for w, t in layouts) + " | best")
    for hidden in args.hidden:
        batch = args.batch or hidden
        rates: dict[tuple[int, int], list[float]] = {lay: [] for lay in layouts}
        for _ in range(args.repeats):
            for lay in layouts:
                rates[lay].append(measure(*lay, hidden, batch, args.seconds))
        med = {lay: median(v) for lay, v in rates.items()}
        best = max(med, key=med.get)
        print(f"{hidden} | {batch} | " + " | ".join(f"{med[lay]:.0f}" for lay in layouts)
              + f" | {best[0]}x{best[1]} ({med[best] / med[(1, cores)]:.2f}x of 1x{cores})", flush=True)


if __name__ == "__main__":
    main()
