"""Running trials in one process: the search until the study holds N finished search
trials, then the confirmation phase, with a progress bar and one line per trial.

"N trials" counts finished search trials in the study (search/trials.py), not trials run
by this process, so the same command resumes an interrupted study to N in total and
workers share one target. A Ctrl-C stops the run without leaving a trial RUNNING, and
several failed trials in a row stop it with TrialsKeepFailing. ``prepare_kernels`` builds
the C++ kernels before the first timed trial.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from tqdm.auto import tqdm

from model import lstm_ext
from search.best import REPEAT_OF, val_size_of
from search.confirm import (
    ConfirmPlan,
    SearchEnd,
    enqueue_repeats,
    running_repeats,
    waiting_repeats,
)
from search.connections import GRACE_SECONDS, HEARTBEAT_SECONDS
from search.interrupts import TrialInterrupt, one_interrupt
from search.objective import NotRun, Objective
from search.progress import budget_end, describe_trial, update_bar
from search.storage import sweep_stale_trials
from search.trials import finished_trials

__all__ = ["RunSummary", "TrialsKeepFailing", "prepare_kernels", "run_trials"]


def prepare_kernels(device: torch.device | str, echo: Callable[[str], None] | None = print) -> None:
    """Build (once, saying so) and load the C++ kernels before any timed training starts, so
    no trial or final run counts the compiler in its seconds. CPU only: on a GPU the
    kernels are never used and the minute of compiling would be wasted."""
    if torch.device(device).type == "cpu":
        lstm_ext.ensure_built(echo)


class TrialsKeepFailing(Exception):
    """Several trials in a row failed: something is wrong with every trial, not one config.

    Failed trials do not count toward N, so without this stop a launch whose every trial
    fails (a NaN score, a broken device) would run forever.
    """


@dataclass(frozen=True)
class RunSummary:
    """What one ``run_trials`` call did, for the launch's closing line."""

    # Finished search trials (what --n-trials counts) the study gained while the call ran,
    # by this process or any other on the same study; confirmation repeats are not counted.
    searched: int
    seconds: float  # wall-clock time of the call


def run_trials(
    study: optuna.Study,
    objective: Objective,
    n_trials: int,
    timeout: float | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
    max_consecutive_failures: int | None = None,
    confirm: ConfirmPlan | None = None,
    confirm_deadline: float | None = None,
    search_end: SearchEnd | None = None,
) -> RunSummary:
    """Optimize until the study has ``n_trials`` finished search trials or ``timeout``
    passes or ``search_end`` says the confirmation phase begins (SearchEnd.at), then (with
    ``confirm``) run that phase until ``confirm_deadline``.

    Raises TrialsKeepFailing after ``max_consecutive_failures`` FAIL trials in a row
    (of this process; Ctrl-C is not counted, it stops the run anyway).
    """
    start = time.perf_counter()
    before = finished_trials(study)
    if search_end is None and timeout is not None:
        ends = time.time() + timeout
        search_end = SearchEnd.fixed(confirm_deadline if confirm_deadline is not None else ends, ends)
    watch = _TrialWatch(study, n_trials, before, progress, echo, max_consecutive_failures, search_end,
                        deadline=confirm_deadline if search_end is None else search_end.deadline, plan=confirm)
    interrupt = watch.interrupt
    optimize = functools.partial(_optimize, study, _Recorded(objective, interrupt))
    try:
        if before < n_trials:
            with one_interrupt(interrupt, watch.write):
                _search(study, n_trials, timeout, optimize, watch)
        if confirm is not None and confirm.enabled and not watch.failing():
            with one_interrupt(interrupt, watch.write):
                _confirm(study, objective, confirm, confirm_deadline, optimize, watch)
    finally:
        watch.bar.close()
    sweep_stale_trials(study)
    watch.raise_if_failing()
    return RunSummary(searched=finished_trials(study) - before, seconds=time.perf_counter() - start)


class _TrialWatch:
    """The Optuna callback after each trial, with the state the run's steps share: the
    progress bar, where trial lines go, the Ctrl-C state, and the current run of
    consecutive FAIL trials (the study is stopped once it reaches ``limit``)."""

    def __init__(self, study: optuna.Study, n_trials: int, before: int, progress: bool,
                 echo: Callable[[str], None] | None, limit: int | None, search_end: SearchEnd | None,
                 deadline: float | None, plan: ConfirmPlan | None = None) -> None:
        """``deadline``: when the whole time budget ends (shown on the bar); ``search_end``:
        when the search's share of it ends (the bar then counts the repeats ``plan`` asks for)."""
        self.bar = tqdm(
            total=n_trials, initial=min(before, n_trials), unit="trial", desc=f"{study.study_name} [search]",
            disable=not progress, dynamic_ncols=True,
        )
        self.write = echo or self.bar.write
        self.n_trials, self.limit, self.search_end, self.plan = n_trials, limit, search_end, plan
        # The bar's own ETA counts toward n_trials (often a large "until the budget" number),
        # so with a time budget the bar also says when that budget ends.
        self.ends = budget_end(deadline)
        if self.ends is not None:
            self.bar.set_postfix(ends=self.ends)
        self.val_size = val_size_of(study)
        self.interrupt = TrialInterrupt()
        self.failures: list[FrozenTrial] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.interrupt.raise_if_pressed()  # a Ctrl-C held back while the trial was recorded: stop now
        update_bar(self.bar, study, self.n_trials, self.ends, self.search_end, self.plan)
        self.write(describe_trial(trial, self.val_size))
        if trial.user_attrs.get("not_run"):
            return  # never trained: neither a failure nor a success
        if trial.state != TrialState.FAIL:
            self.failures.clear()
            return
        self.failures.append(trial)
        if self.failing():
            study.stop()  # after this trial; the error is raised once optimize returns

    def failing(self) -> bool:
        return self.limit is not None and len(self.failures) >= self.limit

    def raise_if_failing(self) -> None:
        if self.failing():
            numbers = ", ".join(str(t.number) for t in self.failures)
            reason = self.failures[-1].user_attrs.get("fail_reason")
            raise TrialsKeepFailing(
                f"stopped after {len(self.failures)} failed trials in a row (trials {numbers}"
                + (f"; the last: {reason}" if reason else "") + "); fix the cause and run the command again"
            )


def _optimize(study: optuna.Study, recorded: _Recorded, **kwargs: Any) -> None:
    """Optuna's optimize loop over the recorded objective. A trial that runs out of memory
    or is not run (NotRun) is recorded FAIL and the loop goes on; any other exception is
    recorded and ends the loop."""
    study.optimize(recorded, catch=(MemoryError, torch.OutOfMemoryError, NotRun), gc_after_trial=True, **kwargs)


def _search(study: optuna.Study, n_trials: int, timeout: float | None, optimize: Callable[..., None],
            watch: _TrialWatch) -> None:
    """The search phase: trials until the study holds ``n_trials`` finished search trials
    or ``timeout`` passes; then the retries of trials whose workers were killed."""
    optimize(timeout=timeout, callbacks=[_StopAtN(n_trials, watch.search_end), watch])
    watch.interrupt.raise_if_pressed()
    if finished_trials(study) >= n_trials:
        _rerun_orphans(study, lambda n: optimize(n_trials=n, callbacks=[watch]), watch.interrupt)


class _StopAtN:
    """Stop once the study holds ``n`` finished search trials (Optuna's MaxTrialsCallback
    would count the confirmation phase's repeats and prior copies too), or once the search's
    share of the budget is over: where SearchEnd.at puts the phase's start (it moves as the
    best trial changes; Optuna's own timeout ends the search at the deadline at the latest)."""

    def __init__(self, n: int, search_end: SearchEnd | None = None) -> None:
        self.n = n
        self.search_end = search_end

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if finished_trials(study) >= self.n or (self.search_end is not None and self.search_end.over(study)):
            study.stop()


def _confirm(
    study: optuna.Study, objective: Objective, plan: ConfirmPlan, deadline: float | None,
    optimize: Callable[..., None], watch: _TrialWatch,
) -> None:
    """The confirmation phase (search/confirm.py): with no repeat waiting, enqueue the next one
    not yet done, waiting or running that fits the time left; run waiting ones one at a time
    until none is left or the budget ends.

    While other workers still run repeats this one waits: one may fail (Ctrl-C, a kill) and
    be queued again. ``objective.confirming`` makes a trial the sampler drew because another
    worker took the last repeat first end untrained (NotRun) instead of training.
    """
    objective.confirming = True
    try:
        while not watch.failing() and (deadline is None or time.time() < deadline):
            watch.interrupt.raise_if_pressed()
            sweep_stale_trials(study)  # a killed worker's repeat: failed and queued again
            trials = study.get_trials(deepcopy=False)
            left = None if deadline is None else deadline - time.time()
            if not waiting_repeats(trials) and enqueue_repeats(study, plan, trials, seconds_left=left, limit=1):
                trials = study.get_trials(deepcopy=False)
            if waiting_repeats(trials):
                remaining = None if deadline is None else max(0.0, deadline - time.time())
                optimize(n_trials=1, timeout=remaining, callbacks=[watch])
            elif running_repeats(trials):
                time.sleep(1.0)
            else:
                return
    finally:
        objective.confirming = False


def _rerun_orphans(study: optuna.Study, run: Callable[[int], None], interrupt: TrialInterrupt) -> None:
    """Before stopping, wait out the heartbeat grace period of trials still RUNNING.

    A worker killed mid-trial leaves its trial RUNNING until the heartbeat is GRACE_SECONDS
    old; Optuna fails (and re-queues) it only when some worker starts a trial. Without
    this wait, a survivor that reaches N first would stop and leave the trial RUNNING and
    its retry unrun. Trials of live workers simply finish meanwhile; the wait is bounded.
    """
    deadline = time.monotonic() + GRACE_SECONDS + 2 * HEARTBEAT_SECONDS
    while time.monotonic() < deadline:
        interrupt.raise_if_pressed()
        sweep_stale_trials(study)
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting:
            run(len(waiting))  # enqueued (retried) trials are run first
        elif not any(REPEAT_OF not in t.user_attrs  # repeats are waited for by _confirm
                     for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))):
            return
        else:
            time.sleep(1.0)


class _Recorded:
    """The objective, noting which worker runs each trial and why a trial failed.

    ``worker`` (host:pid) says which process or machine to look at when a trial fails.
    Optuna records a trial that raised or returned NaN as FAIL but keeps no reason; the
    ``fail_reason`` attr gives one (and tells a reader that a Ctrl-C failure says nothing
    about the configuration).
    """

    def __init__(self, objective: Callable[[optuna.Trial], float], interrupt: TrialInterrupt) -> None:
        self.objective = objective
        self.interrupt = interrupt
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", self.worker)
        try:
            # A Ctrl-C held back while Optuna created this trial fails it here, where Optuna
            # records it; only inside the objective may a Ctrl-C interrupt at once.
            self.interrupt.raise_if_pressed()
            self.interrupt.armed = True
            try:
                value = self.objective(trial)
            finally:
                self.interrupt.armed = False
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C); not a property of the config")
            raise
        except optuna.TrialPruned:
            raise
        except NotRun as exc:
            trial.set_user_attr("fail_reason", str(exc))
            trial.set_user_attr("not_run", True)
            raise
        except Exception as exc:  # Optuna records the trial FAIL; the reason stays with it
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {first}" if first else type(exc).__name__)
            raise
        if not math.isfinite(value):
            trial.set_user_attr("fail_reason", f"the validation accuracy is {value}")
        return value
