"""Workers on one SQLite file must never claim the same WAITING trial twice.

Optuna claims an enqueued trial with SELECT ... FOR UPDATE, which SQLite ignores; without
BEGIN IMMEDIATE two workers could both run (and then both try to finish) one trial.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import optuna

from search.storage import open_storage

N_WAITING = 60
N_PROCESSES = 4


def _claim_all(url: str, start: mp.synchronize.Event, out: mp.queues.Queue) -> None:
    study = optuna.load_study(study_name="claims", storage=open_storage(url, heartbeat=False))
    start.wait()
    claimed = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:
        claimed.append(trial_id)
    out.put(claimed)


def test_each_waiting_trial_is_claimed_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    study = optuna.create_study(study_name="claims", storage=open_storage(url, heartbeat=False))
    for i in range(N_WAITING):
        study.enqueue_trial({"x": i})
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(url, start, out)) for _ in range(N_PROCESSES)]
    for p in procs:
        p.start()
    start.set()
    claims = [trial_id for _ in procs for trial_id in out.get(timeout=120)]
    for p in procs:
        p.join(60)
    assert sorted(claims) == sorted(set(claims)), "a WAITING trial was claimed by two workers"
    assert len(claims) == N_WAITING
