"""Warm starts: the best K configurations of an earlier study, fitted to the new space,
queued first; the source study is only read."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from model.config import TrainConfig
from search.cli import main
from search.space import parse_space
from search.warm_start import warm_start_configs
from tests.search.conftest import launch_args

NEW_SPACE = """
[hidden_size]
low = 8
high = 16
[lr]
low = 1e-3
high = 1e-2
log = true
[optimizer]
choices = ["adam", "adamw"]
"""


def old_study(url: str) -> optuna.Study:
    """An earlier study (another space): values, configs and params as launch stores them."""
    study = optuna.create_study(study_name="old", storage=url, direction="maximize")
    rows = [  # (val acc, hidden_size, lr, optimizer)
        (0.97, 256, 3e-3, "adam"),     # hidden_size above the new range: clipped to 16
        (0.96, 12, 5e-4, "adamw"),     # lr below the new range: clipped to 1e-3
        (0.95, 10, 2e-3, "rmsprop"),   # not a choice of the new space: skipped
        (0.94, 12, 4e-3, "adam"),
        (0.93, 9, 5e-3, "adam"),
        (0.10, 8, 1e-2, "adam"),       # the worst: beyond K
    ]
    dist = {"hidden_size": optuna.distributions.IntDistribution(8, 512),
            "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}
    for value, hidden, lr, opt in rows:
        cfg = TrainConfig(hidden_size=hidden, lr=lr, optimizer=opt).to_dict()
        study.add_trial(optuna.trial.create_trial(
            value=value, params={"hidden_size": hidden, "lr": lr}, distributions=dist, user_attrs={"config": cfg}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))  # never a start
    return study


def test_the_best_k_are_fitted_to_the_new_space_with_one_notice_each(tmp_path: Path) -> None:
    source = old_study(f"sqlite:///{tmp_path / 'old.db'}")
    starts, notices = warm_start_configs(source, parse_space(NEW_SPACE), TrainConfig(), k=3)
    assert [s.params for s in starts] == [
        {"hidden_size": 16, "lr": 3e-3, "optimizer": "adam"},
        {"hidden_size": 12, "lr": 1e-3, "optimizer": "adamw"},
        {"hidden_size": 12, "lr": 4e-3, "optimizer": "adam"},
    ]
    assert [s.origin for s in starts] == ["old#0", "old#1", "old#3"]
    assert notices == [
        "warm start: old#0: hidden_size=256 clipped to 16 (outside the new space)",
        "warm start: old#1: lr=0.0005 clipped to 0.001 (outside the new space)",
        "warm start: old#2 skipped: optimizer='rmsprop' is not one of ['adam', 'adamw'] in the new space",
    ]


def test_launch_queues_them_first_and_leaves_the_source_alone(tmp_path: Path, fake_root: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    source_url = f"sqlite:///{tmp_path / 'old.db'}"
    old_study(source_url)
    before = [(t.number, t.state, t.user_attrs) for t in optuna.load_study(study_name="old", storage=source_url).trials]
    space = tmp_path / "new.toml"
    space.write_text(NEW_SPACE)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    argv = launch_args("new", 3, url, space, fake_root, "--warm-start", "old", "--warm-start-storage", source_url,
                       "--warm-start-k", "2", "--timeout", "1e-9")  # stop before any trial runs
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "queued 2 configuration(s) of study 'old'" in out and "clipped to 16" in out
    waiting = optuna.load_study(study_name="new", storage=url).get_trials(
        states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs.get("warm_start") for t in waiting] == [None, "old#0", "old#1"]  # V1 first
    assert waiting[1].system_attrs["fixed_params"] == {"hidden_size": 16, "lr": 3e-3, "optimizer": "adam"}
    assert main(argv) == 0  # a resume with the same flag queues nothing twice
    assert "(2 already in this study)" in capsys.readouterr().out
    again = optuna.load_study(study_name="new", storage=url).get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(again) == 3
    after = [(t.number, t.state, t.user_attrs) for t in optuna.load_study(study_name="old", storage=source_url).trials]
    assert after == before


@pytest.mark.parametrize(("flags", "needle"), [
    (["--warm-start", "nope"], "no study named 'nope'"),
    (["--warm-start", "old", "--warm-start-k", "0"], "--warm-start-k must be >= 1"),
    (["--warm-start", "old", "--warm-start-storage", "sqlite:///typo.db"], "no SQLite study database at typo.db"),
])
def test_a_bad_warm_start_writes_nothing(flags: list[str], needle: str, tmp_path: Path, fake_root: Path,
                                         tiny_space: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    old_study(url)
    assert main(launch_args("fresh", 3, url, tiny_space, fake_root, *flags)) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["old"]
    assert not (tmp_path / "typo.db").exists()


def test_a_warm_start_queues_no_more_than_the_trials_still_missing(tmp_path: Path, fake_root: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """--n-trials 2 with --warm-start-k 3: the V1 baseline and the best configuration make
    the 2 trials; the other 2 are left out with a note, not queued past N (a later resume
    would otherwise run them first, whatever it was asked)."""
    source_url = f"sqlite:///{tmp_path / 'old.db'}"
    old_study(source_url)
    space = tmp_path / "new.toml"
    space.write_text(NEW_SPACE)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    argv = launch_args("new", 2, url, space, fake_root, "--warm-start", "old", "--warm-start-storage", source_url,
                       "--warm-start-k", "3", "--timeout", "1e-9")  # stop before any trial runs
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "queued 1 configuration(s) of study 'old' (2 left out: the study needs only 1 more trial(s)" in out
    waiting = optuna.load_study(study_name="new", storage=url).get_trials(
        states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs.get("warm_start") for t in waiting] == [None, "old#0"]  # V1, then the best
