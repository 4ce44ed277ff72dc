"""Artifact store location, best-so-far checkpoints from the objective, publish_report."""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
import torch
from optuna.artifacts import FileSystemArtifactStore

from model.checkpoint import load_checkpoint
from model.config import TrainConfig
from model.data import MnistSplits
from model.errors import UserInputError
from search.artifacts import (
    CHECKPOINT_ATTR,
    DEFAULT_ARTIFACTS_DIR,
    artifact_dir_for,
    download_best_checkpoint,
    list_artifacts,
    open_artifact_store,
    publish_report,
)
from search.objective import Objective
from search.space import parse_space
from search.storage import StudyError
from tests.search.dash_study import BEST_NUMBER, SUMMARY, make_small_study

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:////srv/runs/studies.db", Path("/srv/runs/studies.artifacts")),
    ("sqlite:///studies.db", Path("studies.artifacts")),
    ("sqlite:///sub/exp.sqlite3", Path("sub/exp.artifacts")),
    ("sqlite://", Path(DEFAULT_ARTIFACTS_DIR)),
    ("sqlite:///:memory:", Path(DEFAULT_ARTIFACTS_DIR)),
    ("postgresql://u:p@db.example/optuna", Path(DEFAULT_ARTIFACTS_DIR)),
])
def test_artifact_dir_derived_from_storage(url: str, expected: Path) -> None:
    assert artifact_dir_for(url) == expected


def test_artifact_dir_override_and_bad_url(tmp_path: Path) -> None:
    assert artifact_dir_for("sqlite:///studies.db", str(tmp_path / "x")) == tmp_path / "x"
    with pytest.raises(StudyError, match="malformed storage URL"):
        artifact_dir_for("not a url")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserInputError, match="cannot create artifact folder"):
        open_artifact_store("sqlite:///x.db", str(blocker / "sub"))


# Small and short so each trial takes well under a second; lr spans enough to vary results.
TINY_SPACE = parse_space("""
epochs = 2
batch_size = 32
[hidden_size]
low = 8
high = 24
[lr]
low = 1e-4
high = 0.3
log = true
""")


def _tiny_data(n: int = 64) -> MnistSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 28, 28, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return MnistSplits(x, y, x[:32], y[:32])


def test_objective_uploads_checkpoint_only_when_a_trial_beats_the_best(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    store = open_artifact_store(url)
    study = optuna.create_study(storage=url, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=3))
    objective = Objective(space=TINY_SPACE, base=TrainConfig(seed=0), data=_tiny_data(),
                          device=torch.device("cpu"), max_steps=1, artifact_store=store)
    study.optimize(objective, n_trials=1)
    # Trial 1 repeats trial 0 exactly (same params, same seed): a tie, which must not upload.
    study.enqueue_trial(study.trials[0].params)
    study.optimize(objective, n_trials=3)

    best_so_far = float("-inf")
    uploads = 0
    for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE]):
        has = CHECKPOINT_ATTR in t.user_attrs
        assert has == (t.value > best_so_far), (t.number, t.value, best_so_far)
        metas = list_artifacts(study, t)
        assert [m["filename"] for m in metas] == ([f"trial-{t.number}-checkpoint.pt"] if has else [])
        uploads += has
        best_so_far = max(best_so_far, t.value)
    assert uploads >= 1
    assert len(os.listdir(artifact_dir_for(url))) == uploads
    assert study.trials[1].value == study.trials[0].value
    assert CHECKPOINT_ATTR in study.trials[0].user_attrs
    assert CHECKPOINT_ATTR not in study.trials[1].user_attrs

    path = download_best_checkpoint(study, store, tmp_path / "best.pt")
    model, cfg, extra = load_checkpoint(path)
    assert cfg == TrainConfig.from_dict(study.best_trial.user_attrs["config"])
    assert extra == {"trial": study.best_trial.number, "val_acc": study.best_value}
    assert sum(p.numel() for p in model.parameters()) > 0


def test_objective_without_store_uploads_nothing(tmp_path: Path) -> None:
    study = optuna.create_study(direction="maximize")
    objective = Objective(space=TINY_SPACE, base=TrainConfig(seed=0), data=_tiny_data(),
                          device=torch.device("cpu"), max_steps=1)

    study.optimize(objective, n_trials=1)
    assert CHECKPOINT_ATTR not in study.trials[0].user_attrs
    with pytest.raises(StudyError, match="no checkpoint artifact"):
        download_best_checkpoint(study, FileSystemArtifactStore(tmp_path), tmp_path / "x.pt")


def test_small_study_best_checkpoint_roundtrip(tmp_path: Path) -> None:
    small = make_small_study(tmp_path, publish=False)
    assert small.study.best_trial.number == BEST_NUMBER
    store = open_artifact_store(small.url)
    _, cfg, extra = load_checkpoint(download_best_checkpoint(small.study, store, tmp_path / "b.pt"))
    assert cfg.hidden_size == 48 and extra["trial"] == BEST_NUMBER
    # A store that lacks the file (wrong --artifacts) is one clear error, not a traceback.
    with pytest.raises(StudyError, match="missing from the artifact store"):
        download_best_checkpoint(small.study, FileSystemArtifactStore(tmp_path / "empty"), tmp_path / "c.pt")


def test_publish_report_uploads_figures_and_note_and_replaces_on_rerun(tmp_path: Path) -> None:
    small = make_small_study(tmp_path, publish=False)
    store = open_artifact_store(small.url)
    report = tmp_path / "report"
    report.mkdir()
    (report / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\nfirst")
    (report / "history.png").write_bytes(b"\x89PNG\r\n\x1a\nsecond")
    (report / "report.md").write_text("# r\n")
    (report / "notes.txt").write_text("not uploaded")
    names = publish_report(small.study, store, report, SUMMARY)
    assert names == ["curves.png", "history.png", "report.md"]
    metas = {m["filename"]: m for m in list_artifacts(small.study)}
    assert set(metas) == set(names)
    assert metas["curves.png"]["mimetype"] == "image/png"
    with store.open_reader(metas["history.png"]["artifact_id"]) as f:
        assert f.read() == b"\x89PNG\r\n\x1a\nsecond"
    note = optuna_dashboard.get_note(small.study)
    assert "| 1 | 91.25% |" in note and "`curves.png`" in note

    (report / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\nnew")
    publish_report(small.study, store, report, SUMMARY.replace("91.25", "91.30"))
    metas2 = {m["filename"]: m for m in list_artifacts(small.study)}
    assert set(metas2) == set(names)  # replaced, not duplicated
    with store.open_reader(metas2["curves.png"]["artifact_id"]) as f:
        assert f.read().endswith(b"new")
    old = metas["curves.png"]["artifact_id"]
    assert not (small.artifacts / old).exists()
    assert "91.30%" in optuna_dashboard.get_note(small.study)
    # The best trial's checkpoint is a trial artifact and survives re-publishing.
    assert (small.artifacts / small.checkpoint_id).is_file()


def test_publish_report_rejects_missing_or_empty_folder(tmp_path: Path) -> None:
    small = make_small_study(tmp_path, publish=False)
    store = open_artifact_store(small.url)
    with pytest.raises(UserInputError, match="does not exist"):
        publish_report(small.study, store, tmp_path / "nope", SUMMARY)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="no figures"):
        publish_report(small.study, store, tmp_path / "empty", SUMMARY)
    assert list_artifacts(small.study) == []
    assert optuna_dashboard.get_note(small.study) == ""


@pytest.mark.slow
def test_launch_puts_best_checkpoints_beside_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_mnist: Path
) -> None:
    from search.cli import main

    url = f"sqlite:///{tmp_path / 'runs' / 'studies.db'}"
    (tmp_path / "runs").mkdir()
    rc = main(["launch", "--study", "ckpt", "--storage", url, "--space", "quick", "--n-trials", "2",
               "--subset", "200", "--val-size", "100", "--threads", "1", "--no-progress", "--pruner", "none",
               "--data-root", str(fake_mnist), "--no-confirm"])
    assert rc == 0, capsys.readouterr().err
    study = optuna.load_study(study_name="ckpt", storage=url)
    store = open_artifact_store(url)
    assert artifact_dir_for(url) == tmp_path / "runs" / "studies.artifacts"
    _, cfg, extra = load_checkpoint(download_best_checkpoint(study, store, tmp_path / "best.pt"))
    assert extra["trial"] == study.best_trial.number
    assert cfg == TrainConfig.from_dict(study.best_trial.user_attrs["config"])
