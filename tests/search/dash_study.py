"""A small study built without training, for the dashboard, CLI and export tests.

Three complete trials and one pruned, with the same intermediate values and user attrs
the objective writes, a real checkpoint artifact on the best trial (uploaded through
``upload_checkpoint``, as the objective does) and a published fake report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from model.classifier import build_model
from model.config import TrainConfig
from search.artifacts import open_artifact_store, publish_report, upload_checkpoint

STUDY = "tiny-dash"
DISTRIBUTIONS = {
    "hidden_size": IntDistribution(16, 64, log=True),
    "lr": FloatDistribution(1e-4, 1e-2, log=True),
    "optimizer": CategoricalDistribution(["adam", "rmsprop"]),
}
# (params, per-epoch val acc, final state)
TRIALS = [
    ({"hidden_size": 16, "lr": 1e-3, "optimizer": "adam"}, [0.61, 0.74, 0.80], "complete"),
    ({"hidden_size": 48, "lr": 3e-3, "optimizer": "rmsprop"}, [0.70, 0.86, 0.9125], "complete"),
    ({"hidden_size": 24, "lr": 1e-4, "optimizer": "adam"}, [0.20], "pruned"),
    ({"hidden_size": 32, "lr": 5e-4, "optimizer": "adam"}, [0.55, 0.71, 0.83], "complete"),
]
BEST_NUMBER = 1
SUMMARY = "## Summary\n\n| trial | val acc |\n|---|---|\n| 1 | 91.25% |\n| 0 | 80.00% |\n"


@dataclass
class SmallStudy:
    url: str
    db: Path
    artifacts: Path
    study: optuna.Study
    checkpoint_id: str


def make_small_study(folder: Path, publish: bool = True) -> SmallStudy:
    db = folder / "studies.db"
    url = f"sqlite:///{db}"
    store = open_artifact_store(url)
    study = optuna.create_study(study_name=STUDY, storage=url, direction="maximize")
    checkpoint_id = ""
    for params, accs, state in TRIALS:
        study.enqueue_trial(params)  # ask() alone would sample; enqueued values are taken as given
        trial = study.ask({name: DISTRIBUTIONS[name] for name in params})
        assert trial.params == params
        cfg = TrainConfig(hidden_size=params["hidden_size"], lr=params["lr"], optimizer=params["optimizer"],
                          epochs=3)
        trial.set_user_attr("config", cfg.to_dict())
        trial.set_user_attr("train_loss", [1.5 - 0.4 * i for i in range(len(accs))])
        trial.set_user_attr("epoch_seconds", [0.5] * len(accs))
        for epoch, acc in enumerate(accs, start=1):
            trial.report(acc, epoch)
        if state == "pruned":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        if trial.number == BEST_NUMBER:
            checkpoint_id = upload_checkpoint(trial, store, build_model(cfg), cfg, val_acc=accs[-1])
        study.tell(trial, accs[-1])
    if publish:
        report = folder / "report"
        report.mkdir()
        for name in ("history.png", "importance.png"):
            fig, ax = plt.subplots(figsize=(2, 2))
            ax.plot([0, 1], [0, 1])
            fig.savefig(report / name)
            plt.close(fig)
        (report / "report.md").write_text("# Report\n\n" + SUMMARY)
        publish_report(study, store, report, SUMMARY)
    return SmallStudy(url=url, db=db, artifacts=folder / "studies.artifacts", study=study,
                      checkpoint_id=checkpoint_id)
