"""The launch as a frozen plan: bad values refused before anything is written, a resume
checked against the study's stored settings, studies lstm-search did not make refused,
a lost V1 baseline re-queued, storage failures reported in one line, and run_trials'
stop after failed trials in a row and its count of the search trials a run added."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from model.config import MAX_SEED, PRESETS, config_fields, field_flag
from search.cli import build_parser, main
from search.commands.launch import open_study
from search.exits import EXIT_TRIALS_FAILING, run_reporting
from search.pruning import DEFAULT_PRUNE_BY, make_pruner
from search.runner import TrialsKeepFailing, run_trials
from search.samplers import make_sampler, sampler_seed
from search.settings import DEFINING_KEYS, LaunchSettings, settings_differences
from search.storage import open_storage
from search.study import create_or_resume
from tests.search.conftest import REPO, launch_args

TS = optuna.trial.TrialState


def settings_of(argv: list[str]) -> LaunchSettings:
    return LaunchSettings.from_args(build_parser().parse_args(argv))


def made_by_launch(argv: list[str]) -> LaunchSettings:
    """Create the study exactly as `launch` does (settings stored, V1 baseline enqueued),
    without training anything."""
    settings = settings_of(argv)
    open_study(settings, make_pruner("none", 1))
    return settings


def snapshot(url: str) -> list[tuple[str, dict[str, object], list[tuple[int, str]]]]:
    storage = open_storage(url, heartbeat=False)
    out = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        out.append((summary.study_name, study.user_attrs,
                    [(t.number, t.state.name) for t in study.get_trials(deepcopy=False)]))
    return sorted(out, key=lambda row: row[0])


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle.lower() in err.lower(), err
    return err


@pytest.fixture
def created(tmp_path: Path, tiny_space: Path, fake_root: Path) -> tuple[str, list[str]]:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    argv = launch_args("s", 3, url, tiny_space, fake_root, "--subset", "200", "--seed", "1")
    made_by_launch(argv)
    return url, argv


@pytest.mark.parametrize(("extra", "needles"), [
    (["--subset", "100"], ["--subset 100 (the study was created with 200)"]),
    (["--val-size", "60"], ["--val-size 60 (the study was created with 50)"]),
    (["--seed", "2"], ["--seed 2 (the study was created with 1)"]),
    (["--seed", "2", "--val-size", "60"], ["--seed 2", "--val-size 60"]),  # every difference named
    (["--space", "quick"], ["the space (built-in space 'quick'"]),
    (["--precision", "bf16"], ["--precision bf16 (the study was created with fp32)"]),
])
def test_resume_with_other_defining_settings_is_refused(
    extra: list[str], needles: list[str], created: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, argv = created
    before = snapshot(url)
    one_line_error(capsys, [*argv, *extra], "was created with other settings", *needles)
    assert snapshot(url) == before  # no FAIL trial, no attr changed


def test_a_changed_sampler_or_pruner_is_not_a_difference(created: tuple[str, list[str]]) -> None:
    url, argv = created
    stored = optuna.load_study(study_name="s", storage=url).user_attrs
    assert settings_differences(stored, settings_of([*argv, "--sampler", "random", "--pruner", "median",
                                                     "--threads", "1", "--workers", "2"])) == []
    assert settings_differences(stored, settings_of([*argv, "--subset", "199"])) != []


def _options(command: str) -> set[str]:
    sub = next(a for a in build_parser()._subparsers._group_actions if a.choices)
    return set(sub.choices[command]._option_string_actions)


def test_every_flag_a_message_or_command_names_is_a_real_option() -> None:
    """field_flag is the one field -> flag rule: the flags of `train`, the differences a
    resume (or --prior: the same keys) names, and the report's reproduce commands all come from it."""
    train, launch = _options("train"), _options("launch")
    assert {field_flag(name) for name in config_fields()} <= train
    assert {field_flag(key) for key in DEFINING_KEYS if key != "space_description"} <= launch


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--val-size", "0", "--val-size must be >= 1"),
    ("--val-size", "-5", "--val-size must be >= 1"),
    ("--val-size", "60000", "--val-size must be >= 1 and <= 59999"),
    ("--val-size", "299", "--subset must be between 1 and 1"),  # the fake set holds 300 images
    ("--val-size", "300", "--val-size must be between 0 and 299"),
    ("--timeout", "nan", "--timeout must be"),
    ("--timeout", "inf", "--timeout must be"),
    ("--timeout", "-1", "--timeout must be"),
    ("--timeout", "0", "--timeout must be"),
    ("--timeout", "1e300", "--timeout must be"),
    ("--n-trials", "-3", "--n-trials must be >= 1"),
    ("--n-trials", "10000000000000000000000", "--n-trials must be >= 1 and <= 1000000000"),
    ("--threads", "0", "--threads must be >= 1"),
    ("--threads", "-2", "--threads must be >= 1"),
    ("--threads", "100000000", "--threads must be >= 1 and <= 4096"),
    ("--workers", "-1", "--workers must be >= 1"),
    ("--workers", "1e3", "--workers must be 'auto' or a whole number"),
    ("--workers", "1000000000", "--workers 1000000000 needs about"),
    ("--subset", "0", "--subset must be >= 1"),
    ("--subset", "-7", "--subset must be >= 1"),
    ("--subset", "99999999999999999999", "--subset must be >= 1 and <= 59950"),
    ("--subset", "1000", "--subset must be between 1 and 250"),  # more than the fake set holds
    ("--seed", "-1", "--seed must be >= 0"),
    ("--seed", str(MAX_SEED + 1), "--seed must be >= 0 and <= 2147483647"),
    ("--seed", "3000000000", "--seed must be >= 0 and <= 2147483647"),  # passed here, failed in TrainConfig
    ("--worker-index", "-1", "--worker-index must be >= 0"),
    ("--worker-index", "10000000000", "--worker-index must be >= 0"),
    ("--tpe-startup", "-1", "--tpe-startup must be >= 0"),
    ("--tpe-startup", "100000", "--tpe-startup must be >= 0 and <= 10000"),
])
def test_extreme_launch_values_are_refused_before_anything_is_written(
    flag: str, value: str, needle: str, created: tuple[str, list[str]], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, argv = created
    before = snapshot(url)
    one_line_error(capsys, [*argv, flag, value], needle)
    assert snapshot(url) == before
    fresh = tmp_path / "fresh.db"  # and a new study is not even created
    one_line_error(capsys, [*argv, "--storage", f"sqlite:///{fresh}", flag, value], needle)
    assert not fresh.exists()


def test_a_space_file_that_is_not_text_is_refused(created: tuple[str, list[str]], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _url, argv = created
    space = tmp_path / "space.toml"
    space.write_bytes(b"\xff\xfe[lr]\x00\x81")
    one_line_error(capsys, [*argv, "--space", str(space)], "is not UTF-8 text")
    one_line_error(capsys, [*argv, "--space", str(tmp_path)], "does not exist")  # a folder


def test_tpe_draws_at_random_until_its_startup_count_then_models() -> None:
    """Five finished trials: TPE with 10 start-up draws still draws what the random sampler
    of its seed draws; with 3 it models the five (the best at lr 1e-2, the rest far below)."""
    dist = optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)
    study = optuna.create_study(direction="maximize")
    for lr, value in ((1e-2, 0.99), (1e-5, 0.5), (2e-5, 0.5), (1e-4, 0.6), (2e-4, 0.6)):
        study.add_trial(optuna.trial.create_trial(params={"lr": lr}, distributions={"lr": dist}, value=value))
    trial = study.trials[-1]

    def draw(sampler: optuna.samplers.BaseSampler) -> float:
        return sampler.sample_independent(study, trial, "lr", dist)

    at_random = draw(optuna.samplers.RandomSampler(seed=7))
    assert draw(make_sampler("tpe", 7)) == at_random  # the default: 10 random draws first
    assert draw(make_sampler("tpe", 7, tpe_startup=3)) != at_random
    assert abs(math.log10(draw(make_sampler("tpe", 7, tpe_startup=3))) + 2) < 1  # near the good ones


def test_the_dry_run_names_the_tpe_startup_count(tiny_space: Path, fake_root: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    assert main([*launch_args("s", 3, url, tiny_space, fake_root), "--tpe-startup", "3", "--dry-run"]) == 0
    assert "sampler tpe (3 random draws first)" in capsys.readouterr().out
    assert not (tmp_path / "studies.db").exists()


def test_every_seed_a_worker_can_get_is_one_the_samplers_take() -> None:
    seed = sampler_seed(MAX_SEED, 10**6, 10**6)
    assert 0 <= seed <= MAX_SEED
    make_sampler("tpe", seed)  # numpy refuses seeds >= 2**32


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_a_study_made_by_optunas_own_cli_is_refused(direction: str, tmp_path: Path, tiny_space: Path,
                                                    fake_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna_cli = Path(sys.executable).with_name("optuna")
    # The console script where installed; else the same entry point (`optuna` has no __main__).
    entry = "import sys; from optuna.cli import main; sys.exit(main())"
    cmd = [str(optuna_cli)] if optuna_cli.exists() else [sys.executable, "-c", entry]
    subprocess.run([*cmd, "create-study", "--storage", url, "--study-name", "foreign", "--direction", direction],
                   check=True, capture_output=True)
    study = optuna.load_study(study_name="foreign", storage=url)
    study.add_trial(optuna.trial.create_trial(value=0.08, params={}, distributions={}))
    before = snapshot(url)
    needle = "is set to minimize" if direction == "minimize" else "was not made by lstm-search"
    for extra in ([], ["--resume"]):
        one_line_error(capsys, launch_args("foreign", 3, url, tiny_space, fake_root, *extra), needle)
    assert snapshot(url) == before  # no baseline enqueued, no settings written


def test_an_interrupted_baseline_is_queued_again_on_resume(created: tuple[str, list[str]],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    url, argv = created
    study = optuna.load_study(study_name="s", storage=url)
    baseline = study.ask()  # claims the enqueued baseline, as a worker does
    assert baseline.user_attrs["baseline"] == "v1"
    study.tell(baseline, state=TS.FAIL)  # what Ctrl-C during it leaves behind
    # --timeout ends the resumed run before any trial starts; only the resume itself runs.
    assert main([*argv, "--timeout", "1e-9"]) == 0
    assert "the V1 baseline never finished" in capsys.readouterr().out
    trials = optuna.load_study(study_name="s", storage=url).get_trials(deepcopy=False)
    waiting = [t for t in trials if t.state == TS.WAITING]
    assert [t.user_attrs.get("baseline") for t in waiting] == ["v1"]
    assert main([*argv, "--timeout", "1e-9"]) == 0  # queued once, not once per resume
    trials = optuna.load_study(study_name="s", storage=url).get_trials(deepcopy=False)
    assert sum(t.state == TS.WAITING for t in trials) == 1


def test_resume_with_a_mistyped_sqlite_path_creates_nothing(tmp_path: Path, tiny_space: Path, fake_root: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "studeis.db"
    one_line_error(capsys, launch_args("s", 3, f"sqlite:///{typo}", tiny_space, fake_root, "--resume"),
                   f"no SQLite study database at {typo}")
    assert list(tmp_path.iterdir()) == []  # neither the file nor studeis.artifacts/


@pytest.mark.parametrize("study_name", ["s", "new"])
def test_a_read_only_database_is_one_line(study_name: str, created: tuple[str, list[str]], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Root ignores file permissions, so SQLite's own read-only mode stands in for a
    # studies.db owned by another user: the same "attempt to write a readonly database".
    url, argv = created
    before = snapshot(url)
    monkeypatch.chdir(tmp_path)  # a file: URL keeps its artifacts in ./artifacts
    read_only = f"sqlite:///file:{tmp_path / 'studies.db'}?mode=ro&uri=true"
    one_line_error(capsys, [*argv, "--storage", read_only, "--study", study_name],
                   "cannot write to storage", "attempt to write a readonly database")
    assert snapshot(url) == before


def test_import_of_the_workers_does_not_import_the_cli() -> None:
    code = "import sys, search.workers; assert 'search.cli' not in sys.modules, 'search.cli imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def _study(tmp_path: Path) -> optuna.Study:
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'f.db'}", direction="maximize")


def test_consecutive_failed_trials_stop_the_run(tmp_path: Path) -> None:
    study = _study(tmp_path)
    with pytest.raises(TrialsKeepFailing, match=r"5 failed trials in a row .*the validation accuracy is nan"):
        run_trials(study, lambda trial: float("nan"), n_trials=1000, progress=False, max_consecutive_failures=5)
    assert [t.state for t in study.trials] == [TS.FAIL] * 5


def test_a_success_resets_the_count_of_failures(tmp_path: Path) -> None:
    study = _study(tmp_path)
    values = iter([float("nan")] * 4 + [0.5] + [float("nan")] * 4 + [0.6, 0.7])
    summary = run_trials(study, lambda trial: next(values), n_trials=3, progress=False,
                         max_consecutive_failures=5)
    states = [t.state for t in study.trials]
    assert states.count(TS.COMPLETE) == 3 and states.count(TS.FAIL) == 8
    assert summary.searched == 3  # failed trials do not count toward N


def test_a_resumed_run_counts_the_search_trials_it_added_not_those_before(tmp_path: Path) -> None:
    study = _study(tmp_path)
    for value in (0.1, 0.2):
        study.add_trial(optuna.trial.create_trial(value=value))  # an earlier run's
    summary = run_trials(study, lambda trial: 0.5, n_trials=5, progress=False)
    assert summary.searched == 3 and len(study.trials) == 5


def test_trials_that_keep_failing_are_one_line_and_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    def body() -> int:
        raise TrialsKeepFailing("stopped after 5 failed trials in a row")

    assert run_reporting("launch", body) == EXIT_TRIALS_FAILING
    assert capsys.readouterr().err == "lstm-search launch: error: stopped after 5 failed trials in a row\n"


def test_the_creator_writes_its_marker_and_a_second_opener_passes_the_check(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=False)
    from search.space import parse_space

    space = parse_space("[lr]\nlow = 1e-4\nhigh = 1e-2\nlog = true\n")
    first, made = create_or_resume("s", storage, make_sampler("tpe", 0), make_pruner("none", 1), space,
                                   PRESETS["v1"], {"seed": 0})
    assert made and first.user_attrs["lstm_search"] == 1
    _, made = create_or_resume("s", storage, make_sampler("tpe", 0), make_pruner("none", 1), space,
                               PRESETS["v1"], {"seed": 0}, differences=lambda stored: [])
    assert not made


def test_prune_by_progress_is_stored_used_and_fixed_per_study(
    tmp_path: Path, tiny_space: Path, fake_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    argv = launch_args("p", 2, url, tiny_space, fake_root, "--subset", "100", "--workers", "1",
                       "--threads", "1", "--prune-by", "progress")
    assert main(argv) == 0
    study = optuna.load_study(study_name="p", storage=url)
    assert study.user_attrs["prune_by"] == "progress"
    for trial in study.get_trials(states=(TS.COMPLETE,)):
        epochs = trial.user_attrs["config"]["epochs"]
        assert max(trial.intermediate_values) == 100  # the last epoch is 100% of the trial
        assert len(trial.intermediate_values) == epochs
    capsys.readouterr()
    before = snapshot(url)
    one_line_error(capsys, [*argv[:-2], "--prune-by", "epoch", "--n-trials", "3"], "--prune-by epoch")
    assert snapshot(url) == before
    # A study made with the non-default --prune-by resumes by the same command without the
    # flag (it keeps its own), so changing the default strands no study.
    other = "epoch" if DEFAULT_PRUNE_BY == "progress" else "progress"
    base = [*argv[:-2], "--study", "q"]
    assert main([*base, "--n-trials", "2", "--prune-by", other]) == 0
    assert main([*base, "--n-trials", "3"]) == 0
    q = optuna.load_study(study_name="q", storage=url)
    assert q.user_attrs["prune_by"] == other
    assert sum(t.state.is_finished() for t in q.trials) == 3
    pruner = settings_of(argv).make_pruner()
    assert isinstance(pruner, optuna.pruners.NopPruner)  # launch_args asks for --pruner none
    hb = settings_of([*argv, "--pruner", "hyperband"]).make_pruner()
    assert hb._max_resource == 100  # counts in percent of each trial's epochs


def test_a_ctrl_c_swallowed_mid_trial_still_stops_the_run(tmp_path: Path) -> None:
    # Python drops a KeyboardInterrupt raised inside a garbage-collector callback; a worker
    # once ran on after its parent's SIGINT that way. The run must stop after the trial.
    import signal

    def objective(trial: optuna.Trial) -> float:
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # swallowed, as in a finalizer
        return 0.5

    study = _study(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_trials(study, objective, n_trials=50, progress=False)
    assert [t.state for t in study.trials] == [TS.COMPLETE]
