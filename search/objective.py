"""The Optuna objective: trial -> config -> fit, reporting validation accuracy each epoch.

The objective owns everything Optuna-specific about a training run: which config a trial
trains (``search_config``: the space's draw, or the V1 baseline exactly; a repeat's stored
config with its own seed), reporting and pruning (through ``search.pruning.report_epoch``),
the time budget, and writing what the run produced into the study (config, per-epoch
curves, timings, the best checkpoint) so that reports and the dashboard never need to
re-run a trial. benchmarks/replay.py draws and reports through the same two functions.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import optuna
import torch

from model.config import TrainConfig
from model.data import MnistSplits
from model.precision import resolve_precision
from model.train import EpochStats, NonFiniteLossError, fit
from search.artifacts import upload_checkpoint
from search.best import REPEAT_OF, REPEAT_SEED
from search.confirm import SearchEnd, duplicate_of
from search.pruning import report_epoch
from search.space import SearchSpace
from search.trials import best_trial

if TYPE_CHECKING:  # a Protocol in a private module: for annotations only
    from optuna.artifacts._protocol import ArtifactStore

__all__ = ["CURVE_ATTRS", "NOT_RUN", "NotRun", "Objective", "search_config"]

# Per-epoch lists stored as trial user attrs; val_acc lives in intermediate values.
CURVE_ATTRS = ("train_loss", "val_loss", "lr", "epoch_seconds")

_log = logging.getLogger(__name__)
NOT_RUN = "not run: "  # fail_reason of a trial that was never trained (not a failure of anything)


class NotRun(Exception):
    """A trial the confirmation phase does not train: a second copy of a repeat, or one
    sampled because another worker took the last repeat first. Recorded FAIL (which counts
    nowhere: not toward N, not as a failing streak, not for the samplers)."""


@dataclass
class Objective:
    space: SearchSpace
    base: TrainConfig
    data: MnistSplits
    device: torch.device
    max_steps: int | None = None  # cap on mini-batches per epoch (smoke runs)
    # Where a trial that beats the study's best so far uploads its checkpoint; None: nowhere.
    artifact_store: ArtifactStore | None = None
    # Wall-clock time (time.time()) of the study's budget end; a trial still training then
    # stops at its next epoch end as PRUNED (or one epoch sooner, when that epoch would end
    # past it), so `--timeout 2h` takes two hours, not two hours plus the longest trial.
    # None: no budget.
    deadline: float | None = None
    # Report each epoch at the percentage of the trial's own epochs done instead of at its
    # epoch number, so pruners compare trials at the same point of their LR schedules
    # (search/pruning.py). Must match the pruner built with make_pruner(progress=...).
    progress_steps: bool = False
    # When no search trial starts any more (--timeout minus the confirmation share) and a
    # running one stops (``_cut_by_budget``); repeats run to ``deadline``. None: no
    # confirmation share. ``confirming``: this process runs repeats only.
    search_end: SearchEnd | None = None
    confirming: bool = False

    def __call__(self, trial: optuna.Trial) -> float:
        with warnings.catch_warnings():
            # Optuna warns when enqueued values sit on a range's edge as "out of range";
            # the baseline's values are checked against the space by params_of instead.
            warnings.filterwarnings("ignore", message=r"Fixed parameter .* out of range")
            cfg = self._config_for(trial)
        repeat = REPEAT_OF in trial.user_attrs
        trial.set_user_attr("config", cfg.to_dict())
        # What "auto" resolved to in this process (the probe is cached, so fit agrees).
        trial.set_user_attr("precision_used", resolve_precision(cfg.precision, self.device))
        curves: dict[str, list[float]] = {name: [] for name in CURVE_ATTRS}
        start = time.perf_counter()

        def on_epoch(stats: EpochStats) -> None:
            for name, value in zip(CURVE_ATTRS, (stats.train_loss, stats.val_loss, stats.lr, stats.seconds)):
                curves[name].append(float(value))
                # Written every epoch so a killed worker still leaves its curves behind.
                trial.set_user_attr(name, curves[name])
            # A repeat confirms a configuration: it runs its full epochs, never pruned.
            if report_epoch(trial, stats.val_acc, stats.epoch, cfg.epochs, progress=self.progress_steps,
                            ask=not repeat):
                trial.set_user_attr("trial_seconds", time.perf_counter() - start)
                raise optuna.TrialPruned(
                    f"pruned at epoch {stats.epoch} (val acc {100 * stats.val_acc:.2f}%)"
                )
            if self._cut_by_budget(trial, repeat, stats.epoch, cfg.epochs, curves["epoch_seconds"]):
                trial.set_user_attr("trial_seconds", time.perf_counter() - start)
                trial.set_user_attr("fail_reason", "time budget (--timeout) reached")
                raise optuna.TrialPruned(f"time budget reached at epoch {stats.epoch}")

        d = self.data
        try:
            result = fit(
                cfg, d.train_x, d.train_y, d.val_x, d.val_y,
                device=self.device, on_epoch=on_epoch, max_steps=self.max_steps,
            )
        except NonFiniteLossError as exc:
            # Pruned rather than failed: samplers learn from pruned trials, not failed ones,
            # so the region that diverged is sampled less.
            trial.set_user_attr("fail_reason", str(exc))
            trial.set_user_attr("trial_seconds", time.perf_counter() - start)
            raise optuna.TrialPruned(str(exc)) from None
        value = result.history[-1].val_acc
        if self.artifact_store is not None and _beats_best(trial.study, value):
            try:
                upload_checkpoint(trial, self.artifact_store, result.model, cfg, val_acc=value)
            except OSError as exc:
                # A full disk must not throw away the trial's result; it just has no checkpoint.
                trial.set_user_attr("checkpoint_error", str(exc))
                _log.warning("trial %d: checkpoint not uploaded: %s", trial.number, exc)
        trial.set_user_attr("trial_seconds", time.perf_counter() - start)
        return value

    def _cut_by_budget(self, trial: optuna.Trial, repeat: bool, epoch: int, epochs: int,
                       epoch_seconds: list[float]) -> bool:
        """Whether the time budget stops the trial at the end of ``epoch`` (never its last).

        Past ``deadline``, every trial stops; so does one whose next epoch, not its last, would
        end past it even at its fastest epoch so far: it would be stopped there anyway, and
        that epoch would only run the launch over its budget (benchmarks/RESULTS.md §15).
        Past ``search_end`` a search trial stops too, unless it is at least half done and its
        other epochs, at its mean epoch time, end before ``deadline``: cutting it would throw
        away more training than the repeats gain (RESULTS §18: once a third of the workers'
        time, with the best-looking trial of the search).
        """
        now = time.time()
        if epoch >= epochs:
            return False
        if self.deadline is not None and (
                now >= self.deadline or (epoch + 1 < epochs and now + min(epoch_seconds) > self.deadline)):
            return True
        if repeat or self.search_end is None or not self.search_end.over(trial.study):
            return False
        if self.deadline is None or 2 * epoch < epochs:
            return True
        return now + (epochs - epoch) * sum(epoch_seconds) / len(epoch_seconds) > self.deadline

    def _config_for(self, trial: optuna.Trial) -> TrainConfig:
        """A sampled config, for the enqueued baseline exactly the baseline's config, for a
        repeat its original's stored config with the repeat's seed."""
        if REPEAT_OF in trial.user_attrs:
            return self._repeat_config(trial)
        if self.confirming and not _enqueued(trial):
            raise NotRun(NOT_RUN + "the confirmation phase had no repeat left for this worker")
        return search_config(trial, self.space, self.base)

    def _repeat_config(self, trial: optuna.Trial) -> TrainConfig:
        number, seed = int(trial.user_attrs[REPEAT_OF]), int(trial.user_attrs[REPEAT_SEED])
        trials = trial.study.get_trials(deepcopy=False)
        copy = duplicate_of(trials, trial.number, (number, seed))
        if copy is not None:
            raise NotRun(NOT_RUN + f"trial {copy} is the same repeat (enqueued by two workers at once)")
        original = next((t for t in trials if t.number == number), None)
        stored = None if original is None else original.user_attrs.get("config")
        if not isinstance(stored, dict):
            raise NotRun(NOT_RUN + f"trial {number}, which this repeats, recorded no config")
        cfg = TrainConfig.from_dict(stored).with_overrides(seed=seed)
        # The enqueued params are the original's; drawing them records them on this trial.
        return self.space.suggest(trial, cfg, only=[name for name in self.space.params if name in original.params])


def search_config(trial: optuna.Trial, space: SearchSpace, base: TrainConfig) -> TrainConfig:
    """The config a search trial trains: for the V1 baseline (enqueued with user attr
    ``baseline`` at the study's creation) exactly the study's stored ``baseline_config``,
    its in-space values recorded as params so samplers learn from it; for any other trial
    ``space``'s values drawn over ``base``. benchmarks/replay.py draws through here too."""
    baseline = trial.user_attrs.get("baseline") and trial.study.user_attrs.get("baseline_config")
    if not baseline:
        return space.suggest(trial, base)
    cfg = TrainConfig.from_dict(baseline)
    return space.suggest(trial, cfg, only=space.params_of(cfg))


def _enqueued(trial: optuna.Trial) -> bool:
    """Whether the trial came from the queue (fixed params: a repeat, the baseline, a retry
    or warm start) rather than from the sampler. Optuna keeps them in a system attr."""
    return bool(trial._cached_frozen_trial.system_attrs.get("fixed_params"))


def _beats_best(study: optuna.Study, value: float) -> bool:
    """Whether ``value`` beats every complete trial so far (the study maximises accuracy).

    Only these trials upload a checkpoint, so the best trial always has one while the
    artifact folder stays a handful of files, not one per trial.
    """
    best = best_trial(study)
    return best is None or value > best.value
