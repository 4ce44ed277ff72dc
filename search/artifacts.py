"""Optuna artifacts for a study: where they live, the best checkpoints, and the report.

Optuna keeps only artifact *metadata* in the study storage (system attrs named
``artifacts:<id>``); the files go to an artifact store that the storage does not know
about. So every command derives the store from the storage URL the same way: a SQLite
study ``path/studies.db`` keeps its files in ``path/studies.artifacts/`` beside it, and
other storages (PostgreSQL, in-memory) use ``--artifacts DIR`` (default ``./artifacts``).
``optuna-dashboard sqlite:///studies.db --artifact-dir studies.artifacts`` then shows
the same files as ``lstm-search dashboard``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import optuna_dashboard
from optuna.artifacts import FileSystemArtifactStore, download_artifact, upload_artifact
from optuna.artifacts._upload import ARTIFACTS_ATTR_PREFIX
from optuna.artifacts.exceptions import ArtifactNotFound
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from model.checkpoint import save_checkpoint
from model.classifier import LSTMClassifier
from model.config import TrainConfig
from model.errors import UserInputError
from search.best import best_config
from search.redact import redact_url
from search.storage import StudyError

if TYPE_CHECKING:  # a Protocol in a private module: for annotations only
    from optuna.artifacts._protocol import ArtifactStore

__all__ = [
    "CHECKPOINT_ATTR",
    "DEFAULT_ARTIFACTS_DIR",
    "REPORT_FILES",
    "add_artifacts_arg",
    "artifact_dir_for",
    "download_best_checkpoint",
    "list_artifacts",
    "open_artifact_store",
    "publish_report",
    "upload_checkpoint",
]

DEFAULT_ARTIFACTS_DIR = "artifacts"
CHECKPOINT_ATTR = "checkpoint_artifact"  # trial user attr: the artifact id of its checkpoint
REPORT_FILES = ("*.png", "report.md")  # what publish_report uploads from a report folder


def add_artifacts_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--artifacts", metavar="DIR", default=None,
        help="artifact folder (checkpoints, report figures); default: beside a SQLite file "
        f"(studies.db -> studies.artifacts/), ./{DEFAULT_ARTIFACTS_DIR}/ for other storages",
    )


def artifact_dir_for(storage_url: str, override: str | None = None) -> Path:
    """The artifact folder for a storage URL (``override`` wins when given)."""
    if override:
        return Path(override)
    try:
        url = make_url(storage_url)
    except ArgumentError:
        raise StudyError(f"malformed storage URL {redact_url(storage_url)!r}") from None
    database = url.database if url.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not database.startswith("file:"):
        db = Path(database)
        return db.with_name(db.stem + ".artifacts")
    return Path(DEFAULT_ARTIFACTS_DIR)


def open_artifact_store(storage_url: str, override: str | None = None) -> FileSystemArtifactStore:
    folder = artifact_dir_for(storage_url, override)
    try:
        # Beside a SQLite file, the file's folder must already exist: a typo in the URL
        # must not create directories. An explicit --artifacts DIR is created as asked.
        folder.mkdir(parents=override is not None, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"cannot create artifact folder {folder}: {exc.strerror or exc}") from None
    return FileSystemArtifactStore(folder)


def upload_checkpoint(
    trial: optuna.Trial, store: ArtifactStore, model: LSTMClassifier, cfg: TrainConfig, **extra: Any
) -> str:
    """Save the trial's model as a checkpoint artifact; its id goes in user attr CHECKPOINT_ATTR."""
    with tempfile.TemporaryDirectory(prefix="lstm-search-ckpt-") as tmp:
        # The file name is what the dashboard lists and what a download is called.
        path = save_checkpoint(Path(tmp) / f"trial-{trial.number}-checkpoint.pt", model, cfg,
                               trial=trial.number, **extra)
        artifact_id = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial,
                                      mimetype="application/octet-stream")
    trial.set_user_attr(CHECKPOINT_ATTR, artifact_id)
    return artifact_id


def list_artifacts(
    study: optuna.Study, trial: optuna.trial.FrozenTrial | None = None
) -> list[dict[str, Any]]:
    """Artifact metadata of the study (or of one trial), skipping deleted entries.

    The dashboard deletes an artifact by overwriting its metadata with JSON ``null``,
    which ``optuna.artifacts.get_all_artifact_meta`` (Optuna 5.0) does not expect, so
    the attrs are read here directly.
    """
    storage = study._storage
    attrs = (storage.get_study_system_attrs(study._study_id) if trial is None
             else storage.get_trial_system_attrs(trial._trial_id))
    metas = [json.loads(v) for k, v in attrs.items() if k.startswith(ARTIFACTS_ATTR_PREFIX)]
    return [m for m in metas if m is not None]


def download_best_checkpoint(study: optuna.Study, store: ArtifactStore, dest: str | Path) -> Path:
    """Download V2's checkpoint (search/best.py: its first trial's) to ``dest``; StudyError
    if it has none (a trial uploads one only when it beats every single value before it)."""
    found = best_config(study)
    if found is None:
        raise StudyError(f"study {study.study_name!r} has no complete trial yet")
    best = next(t for t in study.get_trials(deepcopy=False) if t.number == found.number)
    artifact_id = best.user_attrs.get(CHECKPOINT_ATTR)
    if artifact_id is None:
        raise StudyError(f"best trial {best.number} of {study.study_name!r} has no checkpoint artifact")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        download_artifact(artifact_store=store, artifact_id=artifact_id, file_path=str(dest))
    except ArtifactNotFound:
        raise StudyError(f"checkpoint of trial {best.number} is missing from the artifact store "
                         "(wrong --artifacts folder?)") from None
    return dest


def publish_report(
    study: optuna.Study, artifact_store: ArtifactStore, report_dir: str | Path, summary_markdown: str
) -> list[str]:
    """Upload a report folder's figures and report.md as study artifacts; set the study note.

    Re-publishing replaces artifacts of the same file name rather than piling up copies
    (deleted the way the dashboard deletes: store file removed, metadata set to null).
    Returns the uploaded file names.
    """
    report_dir = Path(report_dir)
    if not report_dir.is_dir():
        raise UserInputError(f"report folder {report_dir} does not exist")
    files = _report_files(report_dir, REPORT_FILES)
    if not files:
        raise UserInputError(f"report folder {report_dir} holds no figures (*.png) or report.md")
    names = {f.name for f in files}
    for meta in list_artifacts(study):
        if meta["filename"] in names:
            try:
                artifact_store.remove(meta["artifact_id"])
            except ArtifactNotFound:
                pass  # already gone from the store; still drop its metadata
            study._storage.set_study_system_attr(
                study._study_id, ARTIFACTS_ATTR_PREFIX + meta["artifact_id"], json.dumps(None)
            )
    for f in files:
        upload_artifact(artifact_store=artifact_store, file_path=str(f), study_or_trial=study)
    listing = ", ".join(f"`{f.name}`" for f in files)
    optuna_dashboard.save_note(
        study, summary_markdown.rstrip() + f"\n\nReport files (study artifacts): {listing}\n"
    )
    return [f.name for f in files]


def _report_files(folder: Path, patterns: Sequence[str]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        found.extend(sorted(p for p in folder.glob(pattern) if p.is_file()))
    return found
