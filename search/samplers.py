"""The samplers a launch can choose (``--sampler``) and the seed each process gives its own.

The pruners are search/pruning.py's; the seed bound is model/config.py's ``MAX_SEED``.
"""

from __future__ import annotations

import numpy as np
import optuna

from model.config import MAX_SEED
from model.errors import UserInputError

__all__ = ["DEFAULT_SAMPLER", "DEFAULT_TPE_STARTUP", "SAMPLERS", "make_sampler", "sampler_seed"]

SAMPLERS = ("tpe", "random", "cmaes", "gp")
DEFAULT_SAMPLER = "tpe"  # the launch's default (replayed by benchmarks/replay.py)
# Random draws before TPE models: Optuna's own default; paired runs against 3 resolved no
# difference (benchmarks/RESULTS.md#tpe-startup). Prior copies count too.
DEFAULT_TPE_STARTUP = 10


def make_sampler(name: str, seed: int | None, tpe_startup: int = DEFAULT_TPE_STARTUP) -> optuna.samplers.BaseSampler:
    """The Optuna sampler called ``name`` (one of SAMPLERS), seeded with ``seed``; TPE draws
    ``tpe_startup`` trials at random before it models (finished trials of the study count)."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        # CMA-ES handles the numeric parameters; categorical ones fall back to TPE.
        return optuna.samplers.CmaEsSampler(
            seed=seed, independent_sampler=optuna.samplers.TPESampler(seed=seed),
            warn_independent_sampling=False,
        )
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    raise UserInputError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def sampler_seed(seed: int, existing_trials: int, worker_index: int = 0) -> int:
    """The sampler's seed for one process joining a study, in 0..MAX_SEED.

    It depends on the trials the study already holds (a resumed sampler must not redraw the
    configurations it tried) and on the worker index (K workers started together see the
    same count and would otherwise draw identical configurations). The three are hashed
    (numpy's SeedSequence), not added: with a sum, study seed 7 resumed after 2 trials drew
    exactly the configurations that seed 8 drew after 1 (benchmarks/RESULTS.md#paired-runs).
    """
    state = np.random.SeedSequence([seed, existing_trials, worker_index]).generate_state(1)[0]
    return int(state) % (MAX_SEED + 1)
