"""Peak resident memory (RSS) of one search worker running one trial.

Runs a child process that does what a worker does: import the service, load the full
training split, and run one Optuna trial of the Objective (training + validation), with
the largest hidden size and batch size of the default space unless told otherwise. The
parent reads the child's peak RSS from getrusage, so nothing is sampled or missed.

    PYTHONPATH=. python benchmarks/bench_rss.py --data-root ../shared/mnist
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

from benchmarks._common import banner

CHILD = """
import resource, sys, torch, optuna
torch.set_num_threads({threads})
from model.config import PRESETS
from model.data import load_splits
from search.objective import Objective
from search.space import load_space
optuna.logging.set_verbosity(optuna.logging.WARNING)
data = load_splits({root!r}, val_size=5000, download=False)
space = load_space("default")
study = optuna.create_study(direction="maximize")
study.enqueue_trial({{"hidden_size": {hidden}, "batch_size": {batch}, "epochs": {epochs}}})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB: imports + data loading
study.optimize(Objective(space, PRESETS["v1"], data, torch.device("cpu"), max_steps={steps}), n_trials=1)
t = study.trials[0]
print(f"trial state {{t.state.name}}, value {{t.value}}, params hidden_size={{t.params['hidden_size']}} "
      f"batch_size={{t.params['batch_size']}} epochs={{t.params['epochs']}}")
print(f"peak RSS before the trial (imports + data) {{before / 1024:.0f}} MiB")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="MNIST folder (default: $LSTM_SEARCH_DATA, else ./data)")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="lowest the default space allows")
    parser.add_argument("--max-steps", type=int, default=20,
                        help="mini-batches per epoch (memory does not grow with more)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    banner("peak RSS of one worker running one trial")
    code = CHILD.format(
        threads=args.threads, root=args.data_root, hidden=args.hidden, batch=args.batch,
        epochs=args.epochs, steps=args.max_steps,
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    print(out.stdout.strip())
    if out.returncode != 0:
        print(out.stderr[-2000:])
        raise SystemExit(out.returncode)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(f"H={args.hidden} B={args.batch} epochs={args.epochs} max_steps={args.max_steps}: "
          f"peak RSS {peak_kib / 1024**2:.2f} GiB ({peak_kib / 1024:.0f} MiB), {seconds:.0f} s")


if __name__ == "__main__":
    main()
