"""launch --prior: an earlier study's trials join the history, marked, never counted or V2."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from search.cli import main
from search.prior import PRIOR_ATTR, builtin_storage, is_prior
from search.space import load_space
from search.trials import best_trial, finished_trials
from tests.search.conftest import expect_one_line_error, launch_args, snapshot


def _source(url: str, space: Path, val_size: int = 50, seed: int = 0) -> optuna.Study:
    """A finished study as launch would leave it, with values no real trial reaches."""
    study = optuna.create_study(study_name="old", storage=url, direction="maximize")
    for key, value in {"seed": seed, "val_size": val_size, "subset": None, "prune_by": "progress"}.items():
        study.set_user_attr(key, value)
    dists = {"hidden_size": optuna.distributions.IntDistribution(8, 16),
             "lr": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True),
             "batch_size": optuna.distributions.CategoricalDistribution([32, 64]),
             "epochs": optuna.distributions.IntDistribution(1, 2)}
    rows = [(12, 3e-3, 32, 2, 1.0), (9, 5e-3, 64, 1, 0.99), (100, 5e-3, 64, 1, 0.98)]  # the last: outside
    for hidden, lr, batch, epochs, value in rows:
        params = {"hidden_size": hidden, "lr": lr, "batch_size": batch, "epochs": epochs}
        d = dict(dists, hidden_size=optuna.distributions.IntDistribution(8, 128))
        study.add_trial(optuna.trial.create_trial(params=params, distributions=d, value=value,
                                                  intermediate_values={50: value - 0.01, 100: value}))
    return study


def test_prior_trials_are_marked_and_never_counted_nor_best(tmp_path: Path, tiny_space: Path,
                                                           fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    _source(url, tiny_space)
    argv = launch_args("new", 2, url, tiny_space, fake_root, "--prior", "old", "--workers", "1")
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "prior: 1 trials of old skipped" in out and "prior: 2 finished trial(s)" in out
    assert "study holds 2 complete, 0 pruned, 0 failed (and 2 prior copies, not trained here)" in out
    study = optuna.load_study(study_name="new", storage=url)
    copies = [t for t in study.trials if is_prior(t)]
    assert sorted(t.user_attrs[PRIOR_ATTR] for t in copies) == ["old#0", "old#1"]
    assert finished_trials(study) == 2  # N counts what was trained here only
    best = best_trial(study)
    assert best is not None and not is_prior(best) and best.value < 1.0
    # the same command again: nothing copied twice, still 2 trained trials
    assert main(argv) == 0
    study = optuna.load_study(study_name="new", storage=url)
    assert sum(is_prior(t) for t in study.trials) == 2
    assert finished_trials(study) == 2


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"val_size": 60}, "--val-size 60 (this launch: 50)"),
    ({"seed": 3}, "--seed 3 (this launch: 0)"),
])
def test_a_prior_from_another_split_is_refused_and_nothing_written(
    kwargs: dict[str, int], needle: str, tmp_path: Path, tiny_space: Path, fake_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    _source(url, tiny_space, **kwargs)
    before = snapshot(url)
    expect_one_line_error(capsys, launch_args("new", 2, url, tiny_space, fake_root, "--prior", "old"), needle)
    assert snapshot(url) == before  # no study "new"


def test_an_unknown_prior_study_is_one_line(tmp_path: Path, tiny_space: Path, fake_root: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    _source(url, tiny_space)
    expect_one_line_error(capsys, launch_args("new", 2, url, tiny_space, fake_root, "--prior", "nope"), "nope")
    assert snapshot(url) == [("old", 3)]


def test_the_builtin_prior_fits_the_default_space() -> None:
    from model.config import TrainConfig
    from search.prior import BUILTIN_STUDY, prior_trials

    source = optuna.load_study(study_name=BUILTIN_STUDY, storage=builtin_storage())
    copies, notice = prior_trials(source, load_space("default"), TrainConfig(seed=0))
    assert len(copies) >= 20 and notice is None
    assert all(t.state.is_finished() for t in copies)
    # built from studies that were themselves launched with a prior: each original once
    origins = [t.user_attrs[PRIOR_ATTR] for t in source.get_trials(deepcopy=False)]
    assert len(origins) == len(set(origins))
