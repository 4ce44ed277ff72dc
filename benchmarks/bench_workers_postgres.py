"""K worker processes on one PostgreSQL study: throughput, round trips, connections, faults.

Starts a throwaway PostgreSQL server on loopback (tests/pgserver.py, as the tests do), then
for each K runs K processes on one fresh study. Each process opens the storage with the
service's own engine and heartbeat settings (search/connections.py) and runs trials of a
fake objective that sleeps (no torch, so 64 processes fit in memory). Printed per K:
trials per minute, SQL statements per trial (counted in every worker with SQLAlchemy's
``before_cursor_execute`` hook; server-side commits per trial beside it), peak client
connections (sampled from pg_stat_activity) against max_connections, and lost /
duplicate / RUNNING trials. With ``--faults`` the server is restarted once mid-run and a
quarter of the workers are SIGKILLed; the rest must still end the study at N finished.
``--real-ks`` also runs ``lstm-search launch --workers K`` with tiny real trials.

    PYTHONPATH=. python benchmarks/bench_workers_postgres.py --ks 8,16,32,64 --trials-per-worker 3 --fault-ks 16,64
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from search.connections import (
    GRACE_SECONDS,
    HEARTBEAT_SECONDS,
    ReconnectingRDBStorage,
    postgres_engine_kwargs,
)

ROOT = Path(__file__).resolve().parents[1]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def worker(url: str, study_name: str, n: int, sleep: tuple[float, float], out: Path) -> None:
    """One fake worker: the service's storage settings, a sleeping objective, run to N."""
    from sqlalchemy.exc import OperationalError

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    engine_kwargs = postgres_engine_kwargs()
    engine_kwargs["connect_args"] = {**engine_kwargs["connect_args"], "application_name": "bench-worker"}
    rng = random.Random(os.getpid())
    retry = RetryHeartbeatStaleTrialCallback(max_retry=3)
    storage = ReconnectingRDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                         grace_period=GRACE_SECONDS, heartbeat_stale_trial_callback=retry)
    statements = [0]
    sqlalchemy.event.listen(storage.engine, "before_cursor_execute",
                            lambda *a, **k: statements.__setitem__(0, statements[0] + 1))
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=optuna.samplers.RandomSampler(seed=os.getpid()))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(rng.uniform(*sleep))
        return x

    ran = errors = 0
    while True:
        try:
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in FINISHED for t in trials)
            pending = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
            if finished < n or any(t.state == TrialState.WAITING for t in pending):
                study.optimize(objective, n_trials=1)
                ran += 1
            elif pending:  # another worker's trial: it finishes, or its heartbeat goes stale
                optuna.storages.fail_stale_trials(study)
                time.sleep(1.0)
            else:
                break
        except (OperationalError, optuna.exceptions.StorageInternalError):
            errors += 1  # the server restarting: the pool's pre-ping reconnects on the next call
            time.sleep(0.5)
    out.write_text(json.dumps({"statements": statements[0], "ran": ran, "errors": errors}))


_MAIN_APP = "bench-main"


def _main_storage(url: str) -> RDBStorage:
    """The benchmark's own reads: unpooled and named, so the connection count leaves them out."""
    return RDBStorage(url, engine_kwargs={"poolclass": sqlalchemy.pool.NullPool,
                                          "connect_args": {"application_name": _MAIN_APP}})


def _sampler(server, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        try:
            count = int(server.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                                   f" AND datname = 'studies' AND application_name NOT IN ('psql', '{_MAIN_APP}')"))
            peak[0] = max(peak[0], count)
        except subprocess.CalledProcessError:
            pass  # the server restarting
        time.sleep(0.2)


def _commits(server) -> int:
    return int(server.sql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'studies'"))


def run_fake(server, k: int, n: int, sleep: tuple[float, float], faults: bool, tmp: Path) -> dict:
    name = f"fake-k{k}" + ("-faults" if faults else "")
    optuna.create_study(study_name=name, storage=_main_storage(server.url), direction="maximize")
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_sampler, args=(server, stop, peak), daemon=True)
    sampler.start()
    commits0, start = _commits(server), time.perf_counter()
    outs = [tmp / f"{name}-{i}.json" for i in range(k)]
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", server.url, name, str(n),
                               f"{sleep[0]},{sleep[1]}", str(out)]) for out in outs]
    _STARTED.extend(procs)
    killed: list[subprocess.Popen] = []
    if faults:
        _wait_finished(server.url, name, n // 4)
        server.restart()
        _wait_finished(server.url, name, n // 2)
        killed = procs[: max(1, k // 4)]
        for proc in killed:
            proc.send_signal(signal.SIGKILL)
    for proc in procs:
        proc.wait(timeout=600)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    commits = _commits(server) - commits0  # since the restart when faulted: statistics reset then
    reports = [json.loads(out.read_text()) for out in outs if out.exists()]
    trials = optuna.load_study(study_name=name, storage=_main_storage(server.url)).get_trials(deepcopy=False)
    return _figures(k, n, trials, seconds, reports, commits, peak[0], len(killed), server)


def _wait_finished(url: str, name: str, count: int, timeout: float = 300.0) -> None:
    study = optuna.load_study(study_name=name, storage=_main_storage(url))
    give_up = time.monotonic() + timeout
    while sum(t.state in FINISHED for t in study.get_trials(deepcopy=False)) < count:
        if time.monotonic() > give_up:
            raise RuntimeError(f"{name}: fewer than {count} finished trials after {timeout:.0f} s")
        time.sleep(0.2)


def _figures(k, n, trials, seconds, reports, commits, peak, killed, server) -> dict:
    numbers = [t.number for t in trials]
    finished = sum(t.state in FINISHED for t in trials)
    statements = sum(r["statements"] for r in reports)
    done = [t for t in trials if t.state in FINISHED]
    window = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds() \
        if done else 0.0
    return {
        "K": k, "N": n, "finished": finished, "seconds": round(seconds, 1),
        "trials/min": round(60 * finished / seconds, 1),  # wall clock, process start-up included
        "trials/min running": round(60 * finished / window, 1) if window else None,  # first start to last end
        "statements/trial": round(statements / max(1, len(trials)), 1) if not killed else None,
        "commits/trial": round(commits / max(1, len(trials)), 1) if not killed else None,
        "peak conns": peak, "max_connections": int(server.sql("SHOW max_connections")),
        "killed": killed, "failed (killed)": sum(t.state == TrialState.FAIL for t in trials),
        "reconnect errors": sum(r["errors"] for r in reports),
        "lost": max(0, n - finished), "duplicate numbers": len(numbers) - len(set(numbers)),
        "left RUNNING": sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials),
    }


def run_real(server, k: int, n: int, tmp: Path) -> dict:
    """``lstm-search launch --workers K`` with tiny real trials on fake MNIST."""
    from tests.fakes import TINY_SPACE, write_fake_mnist

    root = write_fake_mnist(tmp / "mnist", n_train=200, n_test=50)
    (tmp / "tiny.toml").write_text(TINY_SPACE)
    name = f"real-k{k}"
    cmd = [sys.executable, "-m", "search.cli", "launch", "--study", name, "--n-trials", str(n),
           "--storage", server.url, "--space", str(tmp / "tiny.toml"), "--pruner", "none",
           "--data-root", str(root), "--val-size", "50", "--workers", str(k), "--threads", "1", "--no-progress"]
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_sampler, args=(server, stop, peak), daemon=True)
    sampler.start()
    commits0, start = _commits(server), time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
    _STARTED.append(proc)
    proc.wait()
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    trials = optuna.load_study(study_name=name, storage=_main_storage(server.url)).get_trials(deepcopy=False)
    figures = _figures(k, n, trials, seconds, [], _commits(server) - commits0, peak[0], 0, server)
    figures["statements/trial"] = None  # counted only in the fake workers
    figures["exit"] = proc.returncode
    return figures


_STARTED: list[subprocess.Popen] = []


def _stop_all(*_: object) -> None:
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()
    for proc in _STARTED:
        proc.wait()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, name, n, sleep, out = sys.argv[2:7]
        low, high = (float(x) for x in sleep.split(","))
        worker(url, name, int(n), (low, high), Path(out))
        return 0
    from tests.pgserver import missing_postgres, postgres_server

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ks", default="8,16,32,64", help="worker counts, comma-separated")
    p.add_argument("--trials-per-worker", type=int, default=4, help="N = K x this")
    p.add_argument("--sleep", default="0.5,2.0", help="fake trial length range in seconds")
    p.add_argument("--fault-ks", default="", help="K values that also get a run with a restart and a kill wave")
    p.add_argument("--real-ks", default="", help="K values for tiny real trials via lstm-search launch")
    p.add_argument("--real-trials-per-worker", type=int, default=2)
    p.add_argument("--max-connections", type=int, default=200)
    args = p.parse_args()
    if missing := missing_postgres():
        print(missing)
        return 2
    low, high = (float(x) for x in args.sleep.split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: workers killed, server stopped
    rows = []
    try:
        with postgres_server(max_connections=args.max_connections) as server, \
                tempfile.TemporaryDirectory() as tmp:
            for k in [int(x) for x in args.ks.split(",") if x]:
                for faults in (False, True) if str(k) in args.fault_ks.split(",") else (False,):
                    rows.append({"run": "fake" + (" +faults" if faults else ""),
                                 **run_fake(server, k, k * args.trials_per_worker, (low, high), faults, Path(tmp))})
                    print(json.dumps(rows[-1]), flush=True)
            for k in [int(x) for x in args.real_ks.split(",") if x]:
                rows.append({"run": "real", **run_real(server, k, k * args.real_trials_per_worker, Path(tmp))})
                print(json.dumps(rows[-1]), flush=True)
    finally:
        _stop_all()
    keys = [key for key in rows[0] if key not in ("max_connections",)] if rows else []
    print("\n| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join("-" if row.get(key) is None else str(row.get(key)) for key in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
