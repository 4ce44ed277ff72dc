"""The one definition of "the best configuration" and of how sure the study is of it.

A trial's validation accuracy is measured on a finite split: on n images an accuracy p is
known to about sqrt(p(1 - p) / n) (binomial standard error), and a second training seed
moves it by about as much. So the study ranks *configurations*, not single runs: a
configuration is a trial plus its repeats (trials with user attr ``repeat_of`` = its
number, the same parameters with another training seed; search/confirm.py queues them).

- **Score** of a configuration: the mean of its runs' validation accuracies.
- **Resolution** (the ± shown wherever a score is): one standard error. For one run, the
  binomial error of the split; for k runs, the spread over the runs (sample std), never
  taken below the one-run binomial error (two or three runs can agree by chance), / sqrt(k).
- **Tied**: two configurations whose means differ by at most ``TIE_Z`` standard errors of
  the difference, sqrt(se_a^2 + se_b^2): the data cannot tell them apart (either way round).
- **V2** (``best_config``): among the configurations tied with the best mean, the best mean
  of those *confirmed* (two or more complete runs), else the best mean; then the lower trial
  number. So a configuration run once cannot beat a confirmed one by one lucky draw, a
  confirmed one cannot beat a clearly better single run either (confirmation decides only
  between what the data ties), and between confirmed ones the mean decides, not how many
  runs the budget left room for. A study without repeats picks its best single trial.
- **Ranking** (``rank_configs``): V2 first, then the V2 of the configurations left, and so on.
- Prior copies (search/prior.py) are never ranked: a configuration must be trained here.
- **V2 lite**: the tied configuration with the fewest parameters (then the least training
  time: epochs x seconds per epoch); V2 itself when nothing tied is cheaper.

``report`` (V2), ``train --study S`` (no --trial), ``export``, warm starts, the launch's
lines and progress bar all call ``best_config`` / ``rank_configs`` here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from model.config import TrainConfig
from search.prior import is_prior

__all__ = [
    "REPEAT_OF", "REPEAT_SEED", "TIE_Z", "Best", "ConfigScore", "best_config", "binomial_se", "format_score",
    "is_repeat", "parameter_count", "rank_configs", "tied_with", "val_size_of",
]

REPEAT_OF = "repeat_of"  # trial user attr: the number of the trial this one repeats
REPEAT_SEED = "repeat_seed"  # trial user attr: the training seed of the repeat
TIE_Z = 2.0  # standard errors of the difference within which two configurations are tied


def is_repeat(trial: FrozenTrial) -> bool:
    return REPEAT_OF in trial.user_attrs


def binomial_se(p: float, n: int | None) -> float | None:
    """Standard error of an accuracy ``p`` measured on ``n`` images (None: size unknown)."""
    if not n or not math.isfinite(p):
        return None
    p = min(max(p, 0.0), 1.0)
    return math.sqrt(p * (1 - p) / n)


def val_size_of(study: optuna.Study) -> int | None:
    """The validation images every trial of ``study`` was scored on (stored at creation)."""
    value = study.user_attrs.get("val_size")
    return value if isinstance(value, int) and value > 0 else None


def format_score(mean: float, se: float | None, runs: int = 1) -> str:
    """``99.40 ± 0.09%`` (± one standard error), ``(3 runs)`` when repeated."""
    text = f"{100 * mean:.2f}%" if se is None else f"{100 * mean:.2f} ± {100 * se:.2f}%"
    return text + (f" ({runs} runs)" if runs > 1 else "")


@dataclass(frozen=True)
class ConfigScore:
    """One configuration: its first trial and every complete run of it (repeats included)."""

    number: int  # the trial that first ran it: ``train --study S --trial N`` rebuilds it
    runs: tuple[int, ...]  # complete trials, the original first
    values: tuple[float, ...]
    params: dict[str, Any]
    config: dict[str, Any] | None  # the original trial's full config (its seed)
    epoch_seconds: float | None  # mean seconds per epoch over the runs
    val_size: int | None

    @property
    def n(self) -> int:
        return len(self.values)

    @cached_property  # ranking compares every pair: computed once
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @cached_property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if self.n > 1 else None

    @cached_property
    def se(self) -> float | None:
        spreads = [x for x in (self.std, binomial_se(self.mean, self.val_size)) if x is not None]
        return max(spreads) / math.sqrt(self.n) if spreads else None

    def text(self) -> str:
        return format_score(self.mean, self.se, self.n)

    @property
    def train_config(self) -> TrainConfig | None:
        return TrainConfig.from_dict(self.config) if isinstance(self.config, dict) else None

    @property
    def parameters(self) -> int | None:
        cfg = self.train_config
        return None if cfg is None else parameter_count(cfg.cell, cfg.hidden_size, cfg.steps)

    @property
    def train_seconds(self) -> float | None:
        """Epochs x mean seconds per epoch: what one run of it costs to train."""
        cfg = self.train_config
        if cfg is None or self.epoch_seconds is None:
            return None
        return cfg.epochs * self.epoch_seconds


@dataclass(frozen=True)
class Best:
    """V2 and how sure: the configurations tied with it and the cheapest of them."""

    v2: ConfigScore
    tied: tuple[ConfigScore, ...]  # V2 first, then by mean
    lite: ConfigScore  # the cheapest tied configuration (V2 when none is cheaper)
    ranking: tuple[ConfigScore, ...]  # every configuration, V2 first

    @property
    def number(self) -> int:
        return self.v2.number

    @property
    def mean(self) -> float:
        return self.v2.mean


def rank_configs(trials: Iterable[FrozenTrial], val_size: int | None) -> list[ConfigScore]:
    """Complete configurations, best first by the V2 rule (see the module's rules)."""
    trials = list(trials)
    by_number = {t.number: t for t in trials}
    groups: dict[int, list[FrozenTrial]] = {}
    for t in trials:
        if t.state != TrialState.COMPLETE or t.value is None or not math.isfinite(t.value) or is_prior(t):
            continue  # a prior copy (search/prior.py) was not trained here: never V2
        origin = t.user_attrs.get(REPEAT_OF, t.number)
        if not isinstance(origin, int) or origin not in by_number:
            continue
        groups.setdefault(origin, []).append(t)
    scores = []
    for origin, runs in groups.items():
        original = by_number[origin]
        if original.state != TrialState.COMPLETE:  # repeats of a failed original: no reference run
            continue
        runs.sort(key=lambda t: (t.number != origin, t.number))
        scores.append(ConfigScore(
            number=origin, runs=tuple(t.number for t in runs), values=tuple(float(t.value) for t in runs),
            params=dict(original.params), config=original.user_attrs.get("config"),
            epoch_seconds=_mean_epoch_seconds(runs), val_size=val_size,
        ))
    return _rule_order(scores)


def _rule_order(scores: list[ConfigScore]) -> list[ConfigScore]:
    """The V2 rule applied again and again: the V2 of the configurations not yet placed."""
    left = sorted(scores, key=lambda s: (-s.mean, s.number))  # the first is the best mean
    order = []
    while left:
        pick = min((s for s in left if tied_with(left[0], s)), key=lambda s: (s.n < 2, -s.mean, s.number))
        order.append(pick)
        left.remove(pick)
    return order


def best_config(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> Best | None:
    """V2 of ``study`` (see the module's rules), or None before any trial completed."""
    ranking = rank_configs(study.get_trials(deepcopy=False) if trials is None else trials, val_size_of(study))
    if not ranking:
        return None
    v2 = ranking[0]
    tied = [v2, *sorted((s for s in ranking[1:] if tied_with(v2, s)), key=lambda s: (-s.mean, s.number))]
    lite = min(tied, key=_cost)
    if _cost(lite) == _cost(v2):
        lite = v2
    return Best(v2=v2, tied=tuple(tied), lite=lite, ranking=tuple(ranking))


def tied_with(a: ConfigScore, b: ConfigScore) -> bool:
    """Whether the means of ``a`` and ``b`` lie within TIE_Z standard errors of their
    difference of each other, above or below (without a known error: equal means only)."""
    se = math.sqrt((a.se or 0.0) ** 2 + (b.se or 0.0) ** 2)
    return abs(a.mean - b.mean) <= TIE_Z * se


@lru_cache(maxsize=256)
def parameter_count(cell: str, hidden_size: int, steps: int) -> int:
    """Trainable parameters of the classifier a config builds (built once per shape)."""
    # torch modules: only when a count is asked for
    from model.classifier import build_model

    cfg = TrainConfig(cell=cell, hidden_size=hidden_size, steps=steps)
    return sum(p.numel() for p in build_model(cfg).parameters() if p.requires_grad)


def _cost(score: ConfigScore) -> tuple[float, float]:
    params, seconds = score.parameters, score.train_seconds
    return (math.inf if params is None else params, math.inf if seconds is None else seconds)


def _mean_epoch_seconds(runs: list[FrozenTrial]) -> float | None:
    times = [float(x) for t in runs for x in (t.user_attrs.get("epoch_seconds") or [])
             if isinstance(x, (int, float))]
    return statistics.fmean(times) if times else None
